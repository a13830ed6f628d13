//! What the platform API reads and writes beyond one organization: the platform tokens, the list
//! of organizations and their keys in the SaaS, and the deletion of an organization with
//! everything it owns.
//!
//! A platform token is proof of nothing inside an organization by itself: the organization-scoped
//! operations still take an [`OrgScope`], which the service makes for the organization the
//! request names once it is known to exist.

use sqlx::AssertSqlSafe;

use super::admin::{ORG_COLUMNS, OrgDetails, OrgScope};
use super::directory::{NewToken, TokenKind, check_org_name, hash_token};
use super::{Store, StoreError, StoreResult, Tx, on_read, on_tx};

/// What every platform token starts with, and no other token does: admin tokens start with
/// `idba_`, SCIM tokens with `idb_`, sessions with `idbs_`.
pub const PLATFORM_TOKEN_PREFIX: &str = "idbp_";

/// An authenticated platform token.
#[derive(Debug, Clone)]
pub struct PlatformPrincipal {
    pub token_id: String,
}

impl PlatformPrincipal {
    /// How the token is named in audit logs.
    pub fn actor(&self) -> String {
        format!("platform-token:{}", self.token_id)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlatformTokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Null: never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// When the token last authenticated a request, to the minute; null if never.
    pub last_used_at: Option<i64>,
}

/// Stores a platform token minted by the service (see [`PLATFORM_TOKEN_PREFIX`]); only its hash
/// is kept. The name and the expiry are checked by the service.
pub async fn insert_platform_token(
    tx: &mut Tx,
    token: &NewToken,
    name: &str,
    expires_at: Option<i64>,
) -> StoreResult<()> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO platform_tokens (id, name, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)")
        .bind(&token.id).bind(name).bind(hash_token(&token.token)).bind(now)
        .bind(expires_at).execute(&mut *c).await?.rows_affected());
    Ok(())
}

/// Revokes a token that is not revoked yet; false when there is no such token.
pub async fn revoke_platform_token(tx: &mut Tx, id: &str) -> StoreResult<bool> {
    let now = tx.now();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE platform_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// The row of a platform token that authenticates a request.
#[derive(sqlx::FromRow)]
struct PlatformTokenRow {
    id: String,
    last_used_at: Option<i64>,
}

impl Store {
    pub async fn list_platform_tokens(&self) -> StoreResult<Vec<PlatformTokenInfo>> {
        Ok(on_read!(self, c => sqlx::query_as::<_, PlatformTokenInfo>(
            "SELECT id, name, created_at, expires_at, revoked_at, last_used_at FROM platform_tokens \
             ORDER BY id")
            .fetch_all(c).await?))
    }

    /// The platform token this bearer token is, if it is one that is neither revoked nor
    /// expired. Only the platform prefix is looked up, so an admin, SCIM or session token never
    /// authenticates here, and a platform token never matches their tables.
    pub async fn authenticate_platform(
        &self,
        token: &str,
    ) -> StoreResult<Option<PlatformPrincipal>> {
        if token.len() > 256 || !token.starts_with(PLATFORM_TOKEN_PREFIX) {
            return Ok(None);
        }
        let found = on_read!(self, c => sqlx::query_as::<_, PlatformTokenRow>(
            "SELECT id, last_used_at FROM platform_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)")
            .bind(hash_token(token)).bind(self.now()).fetch_optional(c).await?);
        let Some(found) = found else {
            return Ok(None);
        };
        self.note_token_use(TokenKind::Platform, &found.id, found.last_used_at)
            .await;
        Ok(Some(PlatformPrincipal { token_id: found.id }))
    }

    /// A page of every organization in id (creation) order after `after`; with `external_key`,
    /// the one organization with that key, if any.
    pub async fn list_orgs(
        &self,
        after: &str,
        limit: i64,
        external_key: Option<&str>,
    ) -> StoreResult<Vec<OrgDetails>> {
        let sql = format!(
            "{ORG_COLUMNS} WHERE o.id > $1 AND (CAST($3 AS TEXT) IS NULL OR o.external_key = $3) \
             ORDER BY o.id LIMIT $2"
        );
        Ok(
            on_read!(self, c => sqlx::query_as::<_, OrgDetails>(AssertSqlSafe(sql))
            .bind(after).bind(limit).bind(external_key).fetch_all(c).await?),
        )
    }
}

/// Renames the organization; names are unique across the deployment, without case.
pub async fn set_org_name(tx: &mut Tx, scope: &OrgScope, name: &str) -> StoreResult<String> {
    let name = check_org_name(name)?;
    on_tx!(tx, c => sqlx::query("UPDATE organizations SET name = $2, name_ci = $3 WHERE id = $1")
        .bind(scope.org_id()).bind(&name).bind(name.to_lowercase())
        .execute(&mut *c).await.map(|r| r.rows_affected()))
    .map_err(|e| StoreError::on_unique(e, "an organization with this name"))?;
    Ok(name)
}

/// Sets (or with `None` clears) the SaaS's key of the organization; keys are unique across the
/// deployment and compared exactly. The service checks the key's form.
pub async fn set_external_key(tx: &mut Tx, scope: &OrgScope, key: Option<&str>) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query("UPDATE organizations SET external_key = $2 WHERE id = $1")
        .bind(scope.org_id()).bind(key).execute(&mut *c).await.map(|r| r.rows_affected()))
    .map_err(|e| StoreError::on_unique(e, "an organization with this external_key"))?;
    Ok(())
}

/// What deleting an organization took with it, for the audit log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct OrgFootprint {
    pub directories: i64,
    pub users: i64,
    pub connections: i64,
    pub admin_tokens: i64,
    pub sessions: i64,
    pub webhooks: i64,
}

pub async fn org_footprint(tx: &mut Tx, scope: &OrgScope) -> StoreResult<OrgFootprint> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, OrgFootprint>(
        "SELECT (SELECT COUNT(*) FROM directories WHERE org_id = $1) AS directories, \
                (SELECT COUNT(*) FROM org_users WHERE org_id = $1) AS users, \
                (SELECT COUNT(*) FROM sso_connections WHERE org_id = $1) AS connections, \
                (SELECT COUNT(*) FROM admin_tokens WHERE org_id = $1 AND revoked_at IS NULL) AS admin_tokens, \
                (SELECT COUNT(*) FROM sessions WHERE org_id = $1 AND revoked_at IS NULL) AS sessions, \
                (SELECT COUNT(*) FROM webhooks WHERE org_id = $1) AS webhooks")
        .bind(scope.org_id()).fetch_one(&mut *c).await?))
}

/// Deletes the organization and, through the schema's cascades, everything it owns: directories
/// with their tokens, SCIM users, groups and memberships; sub-accounts and projects; organization
/// users with their claims, grants and sessions (and the authorization codes and access tokens
/// issued for those sessions); rules; admin tokens; webhooks; SSO connections, their sign-ins in
/// flight and domains; its own OAuth clients. The event outbox has no foreign key (events are
/// numbered per organization, not tied to a row), so its events go here. The audit log stays:
/// it is append-only, and the record of what was done (this deletion included) outlives what it
/// was done to. Returns false when there was no such organization.
pub async fn delete_org(tx: &mut Tx, scope: &OrgScope) -> StoreResult<bool> {
    let backend = tx.backend();
    let n = on_tx!(tx, c => {
        sqlx::query("DELETE FROM events WHERE org_id = $1")
            .bind(scope.org_id()).execute(&mut *c).await?;
        if backend == super::Backend::Postgres {
            sqlx::query("DELETE FROM pending_events WHERE org_id = $1")
                .bind(scope.org_id()).execute(&mut *c).await?;
        }
        sqlx::query("DELETE FROM organizations WHERE id = $1")
            .bind(scope.org_id()).execute(&mut *c).await?.rows_affected()
    });
    Ok(n > 0)
}
