//! The self-service console's operations: portal links the SaaS makes for an organization's IT
//! admin (the platform API and the CLI call [`create_portal_link`]), the console session a link
//! opens, and what that session may reach. The console's pages then call the same admin
//! operations as the API and the CLI, with the session's [`Caller`].

use crate::domain::audit::{AuditOp, AuditResource};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::access::OrgRole;
use crate::service::admin::{
    self, Action, AdminError, AdminResult, Caller, DirectoryRecord, TokenInfo,
};
use crate::service::sign_in;
use crate::sso::identity::GroupClaim;
use crate::store::Store;
use crate::store::admin::OrgScope;
use crate::store::audit::{self, Actor};
use crate::store::console::{self as db, ConsoleSessionRow, ScimFailure};

/// How long a portal link can be opened: enough to follow it from the SaaS's page, too short to
/// be worth forwarding or leaking.
pub const LINK_VALIDITY: Duration = Duration::from_secs(5 * 60);
/// How long the console session a link opens lasts, used or not: one sitting of set-up.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// What a portal link is for: the console pages its session reaches, and none other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    /// Single sign-on: the set-up wizard per IdP and the test sign-in.
    Sso,
    /// Directory sync: SCIM directories and their tokens.
    Scim,
    /// Email domains: claim and verify.
    Domains,
    /// IdP group to role mapping rules (and the People page, read only: what the rules give).
    Mapping,
    /// The audit log and the access change events.
    Activity,
    /// People: their access, sessions (sign out) and grants made by hand.
    People,
}

impl Intent {
    pub const ALL: [Intent; 6] = [
        Intent::Sso,
        Intent::Scim,
        Intent::Domains,
        Intent::Mapping,
        Intent::Activity,
        Intent::People,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Sso => "sso",
            Intent::Scim => "scim",
            Intent::Domains => "domains",
            Intent::Mapping => "mapping",
            Intent::Activity => "activity",
            Intent::People => "people",
        }
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Intent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Intent::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| {
                format!("unknown intent {s:?}: sso, scim, domains, mapping, activity or people")
            })
    }
}

/// A portal link to make.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalLinkInput {
    /// The pages the link's session reaches.
    pub intent: Intent,
    /// Where the console's "back" link leads (an absolute http or https URL of the SaaS).
    pub return_url: Option<String>,
}

/// A portal link, in this answer only: the link is stored hashed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PortalLink {
    pub id: String,
    /// Open it once, before `expires_at`; it opens a console session of this organization.
    pub url: String,
    pub intent: Intent,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
}

const MAX_RETURN_URL: usize = 2048;

/// A return URL is put in a page as a link, so only http and https ones are taken (never
/// `javascript:`), absolute, without credentials.
fn check_return_url(raw: &str) -> AdminResult<String> {
    let invalid = |why: &str| AdminError::Invalid(format!("return_url {why}"));
    if raw.len() > MAX_RETURN_URL {
        return Err(invalid("is longer than 2048 characters"));
    }
    let url = url::Url::parse(raw.trim())
        .map_err(|e| invalid(&format!("is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("must be an http or https URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry a user name or password"));
    }
    Ok(url.to_string())
}

/// Makes a single-use link to the console of the caller's organization, valid for `valid_for`
/// ([`LINK_VALIDITY`] from the API and the CLI). Only the SaaS (a platform token) and the operator make links: whoever
/// opens one administers the organization's SSO or SCIM.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn create_portal_link(
    store: &Store,
    caller: &Caller,
    public_url: &str,
    input: &PortalLinkInput,
    valid_for: Duration,
) -> AdminResult<PortalLink> {
    caller.require(Action::Operate)?;
    let return_url = input
        .return_url
        .as_deref()
        .map(check_return_url)
        .transpose()?;
    let expires_at = store.now() + valid_for.as_micros() as i64;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let link = db::create_portal_link(
        &mut tx,
        scope,
        input.intent.as_str(),
        return_url.as_deref(),
        expires_at,
    )
    .await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Create,
        AuditResource::PortalLink,
        Some(&link.id),
        Some(&format!("intent {}", input.intent)),
    )
    .await?;
    tx.commit().await?;
    Ok(PortalLink {
        id: link.id,
        url: format!("{public_url}/console/open/{}", link.token),
        intent: input.intent,
        expires_at,
    })
}

/// What a console session reaches.
#[derive(Debug, Clone)]
enum Reach {
    /// A portal link's: the pages of its intent, as an org admin.
    Link { link_id: String, intent: Intent },
    /// A person's who signed in: every page, with their organization role.
    Person { org_user_id: String, role: OrgRole },
}

/// The organization role that lets a person into the console, from their effective access (as
/// stored: `org_roles` maps each role to its reasons): the owner, an admin, or a viewer (who
/// reads only). `None` for everyone else.
pub fn console_role(access: &serde_json::Value) -> Option<OrgRole> {
    let roles = access.get("org_roles")?.as_object()?;
    [OrgRole::OrgOwner, OrgRole::OrgAdmin, OrgRole::OrgViewer]
        .into_iter()
        .find(|r| roles.contains_key(r.as_str()))
}

/// An open console session: one organization, until it expires; a portal link's reaches the
/// pages of its intent, a person's those their role allows.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    row: ConsoleSessionRow,
    reach: Reach,
}

impl ConsoleSession {
    /// `None` for a row that no longer opens anything: a person no longer active, or whose role
    /// no longer reaches the console.
    fn from_row(row: ConsoleSessionRow) -> Option<ConsoleSession> {
        let reach = match (&row.link_id, &row.org_user_id) {
            (Some(link_id), _) => Reach::Link {
                link_id: link_id.clone(),
                intent: row.intent.parse().ok()?,
            },
            (None, Some(user)) => {
                let access = serde_json::from_str(row.access.as_deref()?).ok()?;
                Reach::Person {
                    org_user_id: user.clone(),
                    role: console_role(&access)?,
                }
            }
            (None, None) => return None,
        };
        Some(ConsoleSession { row, reach })
    }
    pub fn id(&self) -> &str {
        &self.row.id
    }
    pub fn org_id(&self) -> &str {
        &self.row.org_id
    }
    /// The pages' intents the session reaches, the first being where it opens.
    pub fn intents(&self) -> &[Intent] {
        match &self.reach {
            Reach::Link { intent, .. } => std::slice::from_ref(intent),
            Reach::Person { .. } => &Intent::ALL,
        }
    }
    /// The organization role of the person who signed in; `None` for a portal link's session.
    pub fn role(&self) -> Option<OrgRole> {
        match &self.reach {
            Reach::Link { .. } => None,
            Reach::Person { role, .. } => Some(*role),
        }
    }
    pub fn return_url(&self) -> Option<&str> {
        self.row.return_url.as_deref()
    }
    pub fn expires_at(&self) -> i64 {
        self.row.expires_at
    }
    /// How the session is named in the audit log.
    pub fn actor(&self) -> String {
        match &self.reach {
            Reach::Link { link_id, .. } => format!("portal-link:{link_id}"),
            Reach::Person { org_user_id, .. } => format!("console-user:{org_user_id}"),
        }
    }
    /// Refuses (403) the pages of another intent than the link's.
    pub fn require(&self, intent: Intent) -> AdminResult<()> {
        if self.intents().contains(&intent) {
            Ok(())
        } else {
            Err(AdminError::Forbidden)
        }
    }
    /// The caller the admin operations see, acting for the page's intent.
    pub fn caller(&self, intent: Intent) -> AdminResult<Caller> {
        self.caller_of(&[intent])
    }
    /// The caller for a page that several intents reach (the People page: read by a mapping
    /// session, which checks what its rules give, and changed by a people session only).
    pub fn caller_of(&self, intents: &[Intent]) -> AdminResult<Caller> {
        if !intents.iter().any(|i| self.intents().contains(i)) {
            return Err(AdminError::Forbidden);
        }
        let scope = OrgScope::for_org(&self.row.org_id, &self.actor());
        Ok(match &self.reach {
            Reach::Link { link_id, .. } => Caller::console(scope, link_id),
            Reach::Person { org_user_id, role } => Caller::console_user(scope, *role, org_user_id),
        })
    }
}

/// A session just opened, with the secret for its cookie.
#[derive(Debug)]
pub struct Opened {
    pub session: ConsoleSession,
    pub token: String,
}

/// Takes a portal link and opens its console session, audited in the organization's log. `None`
/// when the link is unknown, used or expired: the page says so without telling which.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn open_portal_link(store: &Store, token: &str) -> AdminResult<Option<Opened>> {
    let mut tx = store.begin().await?;
    let Some(link) = db::take_portal_link(&mut tx, token).await? else {
        return Ok(None);
    };
    let expires_at = store.now() + SESSION_LIFETIME.as_micros() as i64;
    let secret = db::create_console_session(&mut tx, &link, expires_at).await?;
    let actor = format!("portal-link:{}", link.id);
    audit::record_as(
        &mut tx,
        &Actor {
            org_id: &link.org_id,
            directory_id: None,
            actor: &actor,
        },
        AuditOp::Open,
        AuditResource::ConsoleSession,
        Some(&secret.id),
        Some(&format!("intent {}", link.intent)),
    )
    .await?;
    tx.commit().await?;
    let row = ConsoleSessionRow {
        id: secret.id,
        org_id: link.org_id,
        link_id: Some(link.id),
        org_user_id: None,
        access: None,
        intent: link.intent,
        return_url: link.return_url,
        expires_at,
    };
    let session = ConsoleSession::from_row(row).ok_or(AdminError::Internal)?;
    Ok(Some(Opened {
        session,
        token: secret.token,
    }))
}

/// How a sign-in to the console ended.
#[derive(Debug)]
pub enum ConsoleSignIn {
    /// A session for the person, with the secret for its cookie.
    Opened(Opened),
    /// The person signed in, but their role does not reach the console: nothing was kept.
    NoAccess { email: String },
    /// The organization did not admit the person (not provisioned, deactivated...): said and
    /// audited like any refused sign-in.
    Refused(sign_in::SignInError),
}

/// Opens a console session for whoever signed in through `verified` (a console sign-in) when the
/// mapping makes them the organization's owner, an admin or a viewer, in the transaction of their
/// admission (audited as `console.sign_in`). Anyone else is refused and nothing of the sign-in
/// is kept: no session of any kind, no claim.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %verified.connection.org_id, connection_id = %verified.connection.id))]
pub async fn sign_in(store: &Store, verified: &sign_in::Verified) -> AdminResult<ConsoleSignIn> {
    let conn = &verified.connection;
    let (mut tx, user_id, email) =
        match sign_in::admit_for_console(store, conn, &verified.identity).await {
            Ok(admitted) => admitted,
            Err(e) if e.is_unavailable() => return Err(AdminError::Unavailable(e.to_string())),
            Err(e) => return Ok(ConsoleSignIn::Refused(e)),
        };
    let access = db::user_access(&mut tx, &conn.org_id, &user_id).await?;
    let Some(role) = console_role(&access) else {
        // Dropped without a commit: the admission is rolled back.
        drop(tx);
        let reason = format!("{email} has no organization role that opens the console");
        sign_in::record_failure(store, conn, "console_no_access", &reason).await;
        return Ok(ConsoleSignIn::NoAccess { email });
    };
    let expires_at = store.now() + SESSION_LIFETIME.as_micros() as i64;
    let secret = db::create_signed_in_session(&mut tx, &conn.org_id, &user_id, expires_at).await?;
    let actor = format!("sso:{}", conn.id);
    let detail = serde_json::json!({"email": email, "role": role.as_str(), "user": user_id});
    audit::record_as(
        &mut tx,
        &Actor {
            org_id: &conn.org_id,
            directory_id: None,
            actor: &actor,
        },
        AuditOp::ConsoleSignIn,
        AuditResource::ConsoleSession,
        Some(&secret.id),
        Some(&detail.to_string()),
    )
    .await?;
    tx.commit().await?;
    let row = ConsoleSessionRow {
        id: secret.id,
        org_id: conn.org_id.clone(),
        link_id: None,
        org_user_id: Some(user_id.into_string()),
        access: Some(access.to_string()),
        intent: db::SIGNED_IN_INTENT.to_string(),
        return_url: None,
        expires_at,
    };
    let session = ConsoleSession::from_row(row).ok_or(AdminError::Internal)?;
    Ok(ConsoleSignIn::Opened(Opened {
        session,
        token: secret.token,
    }))
}

/// The connections a person of `org_id` can sign in to the console through: enabled and
/// complete. Connection ids are public (each has a start URL), and so are their names here.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = org_id))]
pub async fn sign_in_connections(
    store: &Store,
    org_id: &str,
) -> AdminResult<Vec<crate::store::sso::Connection>> {
    let scope = OrgScope::for_org(org_id, "console");
    Ok(store
        .list_connections(&scope)
        .await?
        .into_iter()
        .filter(|c| c.enabled && c.is_complete())
        .collect())
}

/// The open session behind a cookie's secret, if any.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn authenticate(store: &Store, token: &str) -> AdminResult<Option<ConsoleSession>> {
    Ok(store
        .console_session(token)
        .await?
        .and_then(ConsoleSession::from_row))
}

/// Ends the session (sign out), audited.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %session.org_id()))]
pub async fn sign_out(store: &Store, session: &ConsoleSession) -> AdminResult<()> {
    let mut tx = store.begin().await?;
    if db::end_console_session(&mut tx, session.id()).await? {
        let actor = session.actor();
        audit::record_as(
            &mut tx,
            &Actor {
                org_id: session.org_id(),
                directory_id: None,
                actor: &actor,
            },
            AuditOp::End,
            AuditResource::ConsoleSession,
            Some(session.id()),
            None,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_have_one_spelling() {
        for i in Intent::ALL {
            assert_eq!(i.as_str().parse::<Intent>(), Ok(i));
            assert_eq!(serde_json::to_value(i).unwrap(), i.as_str());
        }
        assert!("SSO".parse::<Intent>().is_err());
    }

    #[test]
    fn return_urls_are_http_links_only() {
        assert_eq!(
            check_return_url("https://app.example.test/settings").unwrap(),
            "https://app.example.test/settings"
        );
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "https://user:pw@app.example.test/",
            "data:text/html,x",
        ] {
            assert!(check_return_url(bad).is_err(), "{bad}");
        }
    }
}

// ---- the test sign-in --------------------------------------------------------------------------

/// What a test sign-in came back with, as the admin who ran it reads it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TestResult {
    /// Whether the sign-in would have succeeded.
    pub ok: bool,
    /// Why it failed, in words.
    pub reason: Option<String>,
    pub subject: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The groups the IdP sent; `None` when it sent none.
    pub groups: Option<Vec<String>>,
    /// Said about the groups (Entra's overage).
    pub groups_note: Option<String>,
    /// The organization user it matched, or would have created.
    pub user_id: Option<String>,
    pub created: bool,
    /// The effective access the mapping would give, with reasons.
    pub access: serde_json::Value,
}

async fn keep_test(
    store: &Store,
    session_id: &str,
    connection_id: &str,
    result: &TestResult,
) -> AdminResult<String> {
    let value = serde_json::to_value(result).map_err(|_| AdminError::Internal)?;
    let mut tx = store.begin().await?;
    let id = db::put_test(&mut tx, session_id, connection_id, &value).await?;
    tx.commit().await?;
    Ok(id)
}

/// Admits the verified answer of a test sign-in without keeping anything of it (see
/// [`sign_in::test_sign_in`]) and keeps what came back for the console session that ran it.
/// Returns the connection and the result's id.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %verified.connection.org_id, connection_id = %verified.connection.id))]
pub async fn answer_test(
    store: &Store,
    verified: &sign_in::Verified,
) -> AdminResult<Option<(String, String)>> {
    let Some(session_id) = verified.test.as_deref() else {
        return Ok(None);
    };
    let conn = &verified.connection;
    let id = &verified.identity;
    let (groups, groups_note) = match &id.groups {
        GroupClaim::Values(v) => (Some(v.clone()), None),
        GroupClaim::Overage => (
            None,
            Some(
                "The IdP sent a reference instead of the groups (too many for the token): \
                 the user's SCIM groups count instead."
                    .to_string(),
            ),
        ),
        GroupClaim::Absent => (None, None),
    };
    let mut result = TestResult {
        subject: Some(id.subject.clone()),
        email: id.email.clone(),
        name: id.name.clone(),
        groups,
        groups_note,
        ..Default::default()
    };
    match sign_in::test_sign_in(store, conn, &verified.identity).await {
        Ok(admitted) => {
            result.ok = true;
            result.user_id = Some(admitted.org_user_id.into_string());
            result.created = admitted.created;
            result.access = admitted.access;
        }
        Err(e) => result.reason = Some(e.to_string()),
    }
    let test = keep_test(store, session_id, &conn.id, &result).await?;
    Ok(Some((conn.id.clone(), test)))
}

/// Keeps why a test sign-in failed before its answer could be admitted (a signature, an
/// audience, a clock), for the console session that ran it.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn test_failed(
    store: &Store,
    failure: &sign_in::Failure,
) -> AdminResult<Option<(String, String)>> {
    let (Some(session_id), Some(conn)) = (failure.test.as_deref(), failure.connection.as_ref())
    else {
        return Ok(None);
    };
    let result = TestResult {
        reason: Some(format!("{} ({})", failure.reason, failure.code)),
        ..Default::default()
    };
    let test = keep_test(store, session_id, &conn.id, &result).await?;
    Ok(Some((conn.id.clone(), test)))
}

/// A test result the session ran, with its connection id; another session's is not found.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %session.org_id(), test_id = id))]
pub async fn test_result(
    store: &Store,
    session: &ConsoleSession,
    id: &str,
) -> AdminResult<(String, TestResult)> {
    session.require(Intent::Sso)?;
    let (conn, value) = store
        .console_test(session.id(), id)
        .await?
        .ok_or_else(|| AdminError::NotFound("no such test sign-in".into()))?;
    let result = serde_json::from_value(value).map_err(|_| AdminError::Internal)?;
    Ok((conn, result))
}

// ---- directories -------------------------------------------------------------------------------

/// A directory as the console shows it: where the IdP pushes, its tokens, and whether it does.
#[derive(Debug, Clone)]
pub struct DirectorySummary {
    pub directory: DirectoryRecord,
    pub scim_base_url: String,
    pub tokens: Vec<TokenInfo>,
    /// The last request a token of it authenticated, to the minute.
    pub last_request_at: Option<i64>,
    pub users: i64,
    pub groups: i64,
    /// Its last failed SCIM requests, newest first, so the admin sees why their IdP fails.
    pub failures: Vec<ScimFailure>,
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn directory_summaries(
    store: &Store,
    caller: &Caller,
    public_url: &str,
) -> AdminResult<Vec<DirectorySummary>> {
    let mut out = Vec::new();
    for directory in admin::list_directories(store, caller).await? {
        let tokens = admin::list_directory_tokens(store, caller, &directory.id).await?;
        let (users, groups) = store
            .directory_counts(caller.scope(), &directory.id)
            .await?;
        let failures = store.scim_failures(caller.scope(), &directory.id).await?;
        out.push(DirectorySummary {
            scim_base_url: format!("{public_url}/scim/v2/{}", directory.id),
            last_request_at: tokens.iter().filter_map(|t| t.last_used_at).max(),
            tokens,
            directory,
            users,
            groups,
            failures,
        });
    }
    Ok(out)
}
