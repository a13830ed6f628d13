//! Portal links and the console sessions they open. A link is single use: taking it marks it used
//! in the same statement that checks it is unused and unexpired, so two browsers racing on one
//! link open one session between them. Both are stored as hashes of their secrets only.

use super::admin::OrgScope;
use super::directory::{NewToken, hash_token, mint_token};
use super::sql::Bind;
use super::{Store, StoreResult, Tx, new_id, on_read, on_tx};

/// What every portal link's secret starts with (no other token does).
pub const PORTAL_LINK_PREFIX: &str = "idbl_";
/// What every console session's secret starts with.
pub const CONSOLE_SESSION_PREFIX: &str = "idbc_";

/// A link that was just taken, to open a session from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TakenLink {
    pub id: String,
    pub org_id: String,
    pub intent: String,
    pub return_url: Option<String>,
}

/// The intent of a console session opened by a sign-in: every page the person's role allows.
pub const SIGNED_IN_INTENT: &str = "all";

/// A console session that is neither expired nor ended.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsoleSessionRow {
    pub id: String,
    pub org_id: String,
    /// The portal link that opened it, or `None` when a sign-in did.
    pub link_id: Option<String>,
    /// The person who signed in, for a session a sign-in opened.
    pub org_user_id: Option<String>,
    /// That person's effective access as now stored (JSON); `None` when they are no longer
    /// active, which ends the session.
    pub access: Option<String>,
    pub intent: String,
    pub return_url: Option<String>,
    pub expires_at: i64,
}

/// Stores a new link of the scope's organization, valid until `expires_at` (microseconds).
pub async fn create_portal_link(
    tx: &mut Tx,
    scope: &OrgScope,
    intent: &str,
    return_url: Option<&str>,
    expires_at: i64,
) -> StoreResult<NewToken> {
    let now = tx.now();
    let link = NewToken {
        id: new_id(),
        token: mint_token(PORTAL_LINK_PREFIX),
    };
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO portal_links (id, org_id, token_hash, intent, return_url, created_by, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&link.id).bind(scope.org_id()).bind(hash_token(&link.token)).bind(intent)
        .bind(return_url).bind(scope.actor()).bind(now).bind(expires_at)
        .execute(&mut *c).await?.rows_affected());
    Ok(link)
}

/// Marks the link behind `token` used, if it is unused and unexpired, and returns it; `None` for
/// anything else (unknown, used, expired), which the caller cannot tell apart on purpose.
pub async fn take_portal_link(tx: &mut Tx, token: &str) -> StoreResult<Option<TakenLink>> {
    if token.len() > 256 || !token.starts_with(PORTAL_LINK_PREFIX) {
        return Ok(None);
    }
    let now = tx.now();
    Ok(on_tx!(tx, c => sqlx::query_as::<_, TakenLink>(
        "UPDATE portal_links SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
         RETURNING id, org_id, intent, return_url")
        .bind(hash_token(token)).bind(now).fetch_optional(&mut *c).await?))
}

/// Opens a console session from a link just taken, ending at `expires_at`.
pub async fn create_console_session(
    tx: &mut Tx,
    link: &TakenLink,
    expires_at: i64,
) -> StoreResult<NewToken> {
    let now = tx.now();
    let session = NewToken {
        id: new_id(),
        token: mint_token(CONSOLE_SESSION_PREFIX),
    };
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO console_sessions (id, org_id, link_id, token_hash, intent, return_url, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&session.id).bind(&link.org_id).bind(&link.id).bind(hash_token(&session.token))
        .bind(&link.intent).bind(&link.return_url).bind(now).bind(expires_at)
        .execute(&mut *c).await?.rows_affected());
    Ok(session)
}

/// Opens a console session for the organization user `org_user_id`, who signed in through their
/// organization's SSO, ending at `expires_at`.
pub async fn create_signed_in_session(
    tx: &mut Tx,
    org_id: &str,
    org_user_id: &str,
    expires_at: i64,
) -> StoreResult<NewToken> {
    let now = tx.now();
    let session = NewToken {
        id: new_id(),
        token: mint_token(CONSOLE_SESSION_PREFIX),
    };
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO console_sessions (id, org_id, org_user_id, token_hash, intent, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&session.id).bind(org_id).bind(org_user_id).bind(hash_token(&session.token))
        .bind(SIGNED_IN_INTENT).bind(now).bind(expires_at)
        .execute(&mut *c).await?.rows_affected());
    Ok(session)
}

/// Ends the console sessions a sign-in of `org_user_id` opened, at commit (see [`Tx::defer`]).
pub async fn end_user_console_sessions(
    tx: &mut Tx,
    org_user_id: &str,
    now: i64,
) -> StoreResult<()> {
    tx.defer(|b| {
        b.push("UPDATE console_sessions SET revoked_at = ")
            .bind(Bind::Int(now))
            .push(" WHERE org_user_id = ")
            .bind_text(org_user_id)
            .push(" AND revoked_at IS NULL");
    })
    .await
}

/// Ends a session; true when it was still open.
pub async fn end_console_session(tx: &mut Tx, id: &str) -> StoreResult<bool> {
    let now = tx.now();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE console_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

impl Store {
    /// The open console session behind a cookie's secret, if any.
    pub async fn console_session(&self, token: &str) -> StoreResult<Option<ConsoleSessionRow>> {
        if token.len() > 256 || !token.starts_with(CONSOLE_SESSION_PREFIX) {
            return Ok(None);
        }
        // The person's access is read with the session, so that a role the mapping took away,
        // or a deactivation, counts from the next request on.
        Ok(on_read!(self, c => sqlx::query_as::<_, ConsoleSessionRow>(
            "SELECT s.id, s.org_id, s.link_id, s.org_user_id, u.access, s.intent, s.return_url, \
                    s.expires_at \
             FROM console_sessions s \
             LEFT JOIN org_users u ON u.id = s.org_user_id AND u.org_id = s.org_id AND u.active \
             WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2")
            .bind(hash_token(token)).bind(self.now()).fetch_optional(c).await?))
    }
}

/// A user's effective access as the recomputation in `tx` left it (JSON with reasons).
pub async fn user_access(
    tx: &mut Tx,
    org_id: &str,
    user_id: &str,
) -> StoreResult<serde_json::Value> {
    let access: Option<String> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT access FROM org_users WHERE id = $1 AND org_id = $2")
        .bind(user_id).bind(org_id).fetch_optional(&mut *c).await?);
    Ok(access
        .and_then(|a| serde_json::from_str(&a).ok())
        .unwrap_or(serde_json::Value::Null))
}

/// Keeps what a test sign-in of `session_id` came back with (JSON); returns its id.
pub async fn put_test(
    tx: &mut Tx,
    session_id: &str,
    connection_id: &str,
    result: &serde_json::Value,
) -> StoreResult<String> {
    let now = tx.now();
    let id = new_id();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO console_tests (id, session_id, connection_id, result, created_at) \
         VALUES ($1, $2, $3, $4, $5)")
        .bind(&id).bind(session_id).bind(connection_id).bind(result.to_string())
        .bind(now).execute(&mut *c).await?.rows_affected());
    Ok(id)
}

impl Store {
    /// A test result of this console session (another session's is not found).
    pub async fn console_test(
        &self,
        session_id: &str,
        id: &str,
    ) -> StoreResult<Option<(String, serde_json::Value)>> {
        #[derive(sqlx::FromRow)]
        struct TestRow {
            connection_id: String,
            result: String,
        }
        let row = on_read!(self, c => sqlx::query_as::<_, TestRow>(
            "SELECT connection_id, result FROM console_tests WHERE id = $1 AND session_id = $2")
            .bind(id).bind(session_id).fetch_optional(c).await?);
        Ok(row.map(|r| {
            (
                r.connection_id,
                serde_json::from_str(&r.result).unwrap_or_default(),
            )
        }))
    }
}

impl Store {
    /// How many SCIM users and groups a directory of the scope's organization holds.
    pub async fn directory_counts(
        &self,
        scope: &OrgScope,
        directory_id: &str,
    ) -> StoreResult<(i64, i64)> {
        #[derive(sqlx::FromRow)]
        struct Counts {
            user_count: i64,
            group_count: i64,
        }
        let n = on_read!(self, c => sqlx::query_as::<_, Counts>(
            "SELECT (SELECT COUNT(*) FROM scim_users u JOIN directories d ON d.id = u.directory_id \
                     WHERE d.id = $1 AND d.org_id = $2) AS user_count, \
                    (SELECT COUNT(*) FROM scim_groups g JOIN directories d ON d.id = g.directory_id \
                     WHERE d.id = $1 AND d.org_id = $2) AS group_count")
            .bind(directory_id).bind(scope.org_id()).fetch_one(c).await?);
        Ok((n.user_count, n.group_count))
    }
}

// ---- failed SCIM requests ----------------------------------------------------------------------

/// How many failed SCIM requests a directory keeps: enough to see a pattern, too few to matter.
pub const SCIM_ERRORS_KEPT: i64 = 10;
/// A detail longer than this is cut: it is read on a page, and a body can be echoed into it.
const MAX_DETAIL_CHARS: usize = 500;
const MAX_PATH_CHARS: usize = 300;

/// A SCIM request of a directory that failed, as its error answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimFailure {
    pub at: i64,
    pub method: String,
    /// The request's path, without its query.
    pub path: String,
    pub status: u16,
    pub scim_type: Option<String>,
    pub detail: Option<String>,
}

/// A failed request as `scim_errors` keeps it.
#[derive(sqlx::FromRow)]
struct ScimFailureRow {
    at: i64,
    method: String,
    path: String,
    status: i32,
    scim_type: Option<String>,
    detail: Option<String>,
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl Store {
    /// Keeps a failed request of the directory, and forgets those beyond the newest
    /// [`SCIM_ERRORS_KEPT`]. Its own short transaction, after the request was answered.
    pub async fn record_scim_failure(
        &self,
        directory_id: &str,
        f: &ScimFailure,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO scim_errors (id, directory_id, at, method, path, status, scim_type, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(new_id()).bind(directory_id).bind(f.at).bind(cut(&f.method, 16))
            .bind(cut(&f.path, MAX_PATH_CHARS)).bind(i32::from(f.status))
            .bind(f.scim_type.as_deref().map(|t| cut(t, 40)))
            .bind(f.detail.as_deref().map(|d| cut(d, MAX_DETAIL_CHARS)))
            .execute(&mut *c).await?.rows_affected());
        on_tx!(&mut tx, c => sqlx::query(
            "DELETE FROM scim_errors WHERE directory_id = $1 AND id NOT IN \
             (SELECT id FROM scim_errors WHERE directory_id = $1 ORDER BY at DESC, id DESC LIMIT $2)")
            .bind(directory_id).bind(SCIM_ERRORS_KEPT).execute(&mut *c).await?.rows_affected());
        tx.commit().await
    }

    /// The failed requests a directory of the scope's organization keeps, newest first.
    pub async fn scim_failures(
        &self,
        scope: &OrgScope,
        directory_id: &str,
    ) -> StoreResult<Vec<ScimFailure>> {
        let rows = on_read!(self, c => sqlx::query_as::<_, ScimFailureRow>(
            "SELECT e.at, e.method, e.path, e.status, e.scim_type, e.detail \
             FROM scim_errors e JOIN directories d ON d.id = e.directory_id \
             WHERE e.directory_id = $1 AND d.org_id = $2 ORDER BY e.at DESC, e.id DESC")
            .bind(directory_id).bind(scope.org_id()).fetch_all(c).await?);
        Ok(rows
            .into_iter()
            .map(|r| ScimFailure {
                at: r.at,
                method: r.method,
                path: r.path,
                status: u16::try_from(r.status).unwrap_or(0),
                scim_type: r.scim_type,
                detail: r.detail,
            })
            .collect())
    }
}
