//! What a verified sign-in does: find (or, just in time, create) the organization user, feed the
//! groups the IdP sent into the same mapping engine as SCIM, and open a session, in one
//! transaction. Which IdP answered and how it was verified is the caller's business (`http::sso`);
//! here the identity is already trusted.
//!
//! SCIM is the source of truth when a directory provisions the organization: a sign-in never
//! creates a user there, and never reactivates one SCIM deactivated or deleted.

use std::time::Duration;

use crate::service::provision::Provision;
use crate::store::audit::{Actor, record_as};
use crate::store::sso::{self as db, Connection};
use crate::store::{Store, StoreError};

/// The groups an IdP sent with a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupClaim {
    Values(Vec<String>),
    /// Entra's overage: too many groups for the token, a reference to Graph instead. The user's
    /// SCIM groups (and the claims of an earlier sign-in) stand.
    Overage,
    /// The IdP sent no groups: the claims of an earlier sign-in stand.
    Absent,
}

/// A verified identity from the IdP.
#[derive(Debug, Clone)]
pub struct SsoIdentity {
    /// The IdP's subject (OIDC `sub`, SAML NameID), for the log.
    pub subject: String,
    pub email: Option<String>,
    /// `Some(false)` when the IdP says the address is not verified.
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub groups: GroupClaim,
}

/// Why a verified identity may still not sign in. The user sees a generic page; this is for the
/// log and the audit.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the connection is disabled")]
    Disabled,
    #[error("the IdP sent no email address for subject {0:?}")]
    NoEmail(String),
    #[error("the IdP says the email address {0:?} is not verified")]
    EmailNotVerified(String),
    #[error("{0:?} is not a user of the organization, and {1}")]
    NotProvisioned(String, &'static str),
    #[error("{0:?} is deprovisioned by SCIM; a sign-in does not reactivate them")]
    Deprovisioned(String),
    #[error("{0:?} is inactive")]
    Inactive(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SignInError {
    /// A short code for the audit log and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SignInError::Disabled => "connection_disabled",
            SignInError::NoEmail(_) => "no_email",
            SignInError::EmailNotVerified(_) => "email_not_verified",
            SignInError::NotProvisioned(..) => "not_provisioned",
            SignInError::Deprovisioned(_) => "deprovisioned",
            SignInError::Inactive(_) => "inactive",
            SignInError::Store(StoreError::SeatLimit(_)) => "seat_limit",
            SignInError::Store(_) => "store",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session_id: String,
    /// For the cookie; only its hash is stored.
    pub session_token: String,
    pub org_id: String,
    pub org_user_id: String,
    /// Whether this sign-in created the user.
    pub created: bool,
}

/// Signs a verified identity in through `conn`: one transaction that links or creates the user,
/// stores the group claims, recomputes access, and opens a session.
pub async fn sign_in(
    store: &Store,
    conn: &Connection,
    identity: &SsoIdentity,
    session_lifetime: Duration,
) -> Result<SignedIn, SignInError> {
    if !conn.enabled {
        return Err(SignInError::Disabled);
    }
    let email = identity
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| e.contains('@'))
        .ok_or_else(|| SignInError::NoEmail(identity.subject.clone()))?;
    if identity.email_verified == Some(false) {
        return Err(SignInError::EmailNotVerified(email.to_string()));
    }
    let key = email.to_lowercase();
    let org_id = conn.org_id.as_str();
    let actor = format!("sso:{}", conn.id);
    let mut tx = store.begin().await?;
    let managed_by_scim = db::org_has_directory(&mut tx, org_id).await?;
    let existing = db::find_sign_in_user(&mut tx, org_id, &key).await?;
    let mut p = Provision::new(org_id, &actor);
    // The organization's share lock comes first, as in every other writer, so that a rule
    // change cannot interleave with this recomputation.
    p.org(&mut tx).await?;
    let (user_id, created) = match existing {
        Some(user) if user.active => (user.id, false),
        Some(user) if user.scim_links > 0 || managed_by_scim => {
            return Err(SignInError::Deprovisioned(email.to_string()));
        }
        Some(_) => return Err(SignInError::Inactive(email.to_string())),
        None if managed_by_scim => {
            return Err(SignInError::NotProvisioned(
                email.to_string(),
                "a SCIM directory manages the organization",
            ));
        }
        None if !conn.jit => {
            return Err(SignInError::NotProvisioned(
                email.to_string(),
                "the connection does not provision users just in time",
            ));
        }
        None => {
            let (id, created) = crate::store::access::link_org_user(
                &mut tx,
                org_id,
                email,
                identity.name.as_deref(),
                crate::store::now_micros(),
            )
            .await?;
            if created {
                p.created(&id);
            }
            (id, created)
        }
    };
    db::set_email(&mut tx, &user_id, email).await?;
    p.signed_in(&user_id);
    match &identity.groups {
        GroupClaim::Values(values) => {
            db::replace_claims(&mut tx, org_id, &user_id, values).await?;
        }
        GroupClaim::Overage => tracing::warn!(
            connection = %conn.id, user = %user_id,
            "group overage: the IdP sent a reference instead of the groups; using the user's SCIM groups"
        ),
        GroupClaim::Absent => {}
    }
    p.finish(&mut tx).await?;
    let session = db::insert_session(&mut tx, org_id, &user_id, &conn.id, session_lifetime).await?;
    let who = Actor {
        org_id,
        directory_id: None,
        actor: &actor,
    };
    let detail = serde_json::json!({
        "subject": identity.subject,
        "email": email,
        "created": created,
        "groups": match &identity.groups {
            GroupClaim::Values(v) => serde_json::json!(v.len()),
            GroupClaim::Overage => serde_json::json!("overage"),
            GroupClaim::Absent => serde_json::Value::Null,
        },
    })
    .to_string();
    record_as(
        &mut tx,
        &who,
        "sso.sign_in",
        "Session",
        Some(&session.id),
        Some(&detail),
    )
    .await?;
    tx.commit().await?;
    Ok(SignedIn {
        session_id: session.id,
        session_token: session.token,
        org_id: org_id.to_string(),
        org_user_id: user_id,
        created,
    })
}

/// Writes why a sign-in through `conn` failed to the organization's audit log.
pub async fn record_failure(store: &Store, conn: &Connection, code: &str, reason: &str) {
    let actor = format!("sso:{}", conn.id);
    let detail = serde_json::json!({ "reason": code, "detail": reason }).to_string();
    let result = async {
        let mut tx = store.begin().await?;
        let who = Actor {
            org_id: &conn.org_id,
            directory_id: None,
            actor: &actor,
        };
        record_as(
            &mut tx,
            &who,
            "sso.sign_in_failed",
            "SsoConnection",
            Some(&conn.id),
            Some(&detail),
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not audit a failed sign-in");
    }
}

/// What idbridge says of a signed-in user to the SaaS (id_token and userinfo): who they are, their
/// organization roles, and their access in each sub-account where they have any, from the
/// effective access the mapping last computed.
pub async fn user_claims(
    store: &Store,
    org_id: &str,
    org_user_id: &str,
) -> Result<serde_json::Value, StoreError> {
    use crate::mapping::EffectiveAccess;
    let (user_name, display_name, email, access) = store.token_subject(org_user_id).await?;
    let access: EffectiveAccess = serde_json::from_str(&access).unwrap_or_default();
    let org_roles: Vec<_> = access.org_roles().keys().collect();
    let accounts: Vec<serde_json::Value> = store
        .sub_account_ids(org_id)
        .await?
        .into_iter()
        .filter_map(|(id, _)| {
            let a = access.for_sub_account(&id);
            (a.role.is_some() || !a.features.is_empty() || !a.projects.is_empty()).then(|| {
                serde_json::json!({
                    "id": id,
                    "role": a.role,
                    "permissions": a.features,
                    "projects": a.projects,
                })
            })
        })
        .collect();
    Ok(serde_json::json!({
        "sub": org_user_id,
        "email": email.unwrap_or_else(|| user_name.clone()),
        "name": display_name.unwrap_or(user_name),
        "org": org_id,
        "org_roles": org_roles,
        "accounts": accounts,
    }))
}
