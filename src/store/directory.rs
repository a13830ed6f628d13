//! Organizations, SCIM directories and their bearer tokens.

use crate::domain::ids::OrgUserId;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::admin::OrgScope;
use super::auth_cache::{Accepted, AuthCache};
use super::{Store, StoreError, StoreResult, Tx, new_id, on_read, on_tx};

/// Who directory and token changes are recorded as: the operator (`cli`), whoever made them,
/// which is what the audit log has always said of them.
pub fn audit_actor(scope: &OrgScope, directory_id: &str) -> DirectoryScope {
    DirectoryScope::for_directory(scope.org_id(), directory_id, "cli")
}

/// Proof that a request authenticated as one directory. Only [`Store::authenticate_directory`]
/// makes these, and every SCIM query is bound to its ids, so a query without a tenant cannot be
/// written.
#[derive(Debug, Clone)]
pub struct DirectoryScope {
    org_id: String,
    directory_id: String,
    token_id: String,
}

impl DirectoryScope {
    pub fn org_id(&self) -> &str {
        &self.org_id
    }
    pub fn directory_id(&self) -> &str {
        &self.directory_id
    }
    /// The authenticating token's id: the actor in the audit log.
    pub fn token_id(&self) -> &str {
        &self.token_id
    }
    /// For tests and the CLI, which act with the directory's authority without a token.
    #[doc(hidden)]
    pub fn for_directory(org_id: &str, directory_id: &str, actor: &str) -> Self {
        Self {
            org_id: org_id.into(),
            directory_id: directory_id.into(),
            token_id: actor.into(),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRecord {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DirectoryRecord {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: i64,
}

/// A freshly minted token: the secret is returned once and only its hash is stored.
pub struct NewToken {
    pub id: String,
    pub token: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenInfo {
    pub id: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// When the token last authenticated a request, to the minute; null if never.
    pub last_used_at: Option<i64>,
}

/// The row of a directory token that authenticates a request.
#[derive(sqlx::FromRow)]
struct DirectoryTokenRow {
    token_id: String,
    org_id: String,
    last_used_at: Option<i64>,
}

/// How many tokens may be valid at once: the current one and the one being rotated out.
pub const MAX_ACTIVE_TOKENS: usize = 2;

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A 256-bit random secret, URL-safe, after a prefix that tells what it is for.
pub(crate) fn mint_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// An organization's name, trimmed: what a new one or a rename must be.
pub(super) fn check_org_name(name: &str) -> StoreResult<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(StoreError::Invalid(
            "organization name must be 1-200 characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// Inserts an organization in the caller's transaction, so that what makes it complete (its
/// owner) commits with it.
pub async fn insert_org(tx: &mut super::Tx, name: &str) -> StoreResult<OrgRecord> {
    let name = check_org_name(name)?;
    let org = OrgRecord {
        id: new_id(),
        name,
        created_at: tx.now(),
    };
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO organizations (id, name, name_ci, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&org.id).bind(&org.name).bind(org.name.to_lowercase()).bind(org.created_at)
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(|e| StoreError::on_unique(e, "an organization with this name"))?;
    Ok(org)
}

/// Inserts a directory with its first token (minted by the service; only its hash is stored).
pub async fn insert_directory(
    tx: &mut Tx,
    scope: &OrgScope,
    name: &str,
    token: &NewToken,
) -> StoreResult<DirectoryRecord> {
    let dir = DirectoryRecord {
        id: new_id(),
        org_id: scope.org_id().to_string(),
        name: name.to_string(),
        created_at: tx.now(),
    };
    on_tx!(tx, c => {
        sqlx::query("INSERT INTO directories (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&dir.id).bind(&dir.org_id).bind(&dir.name).bind(dir.created_at)
            .execute(&mut *c).await?;
        sqlx::query("INSERT INTO directory_tokens (id, directory_id, token_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&token.id).bind(&dir.id).bind(hash_token(&token.token)).bind(dir.created_at)
            .execute(&mut *c).await?;
    });
    Ok(dir)
}

/// Whether the organization has directory `id`; another organization's is not found.
async fn has_directory(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM directories WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(id).fetch_one(&mut *c).await?);
    Ok(n > 0)
}

/// Adds a token (minted by the service) to the directory. The previous one stays valid so the
/// IdP can be switched over without an outage; the oldest beyond [`MAX_ACTIVE_TOKENS`] is revoked.
pub async fn rotate_directory_token(
    tx: &mut Tx,
    scope: &OrgScope,
    directory_id: &str,
    token: &NewToken,
) -> StoreResult<()> {
    if !has_directory(tx, scope, directory_id).await? {
        return Err(StoreError::NotFound);
    }
    let now = tx.now();
    on_tx!(tx, c => {
        sqlx::query("INSERT INTO directory_tokens (id, directory_id, token_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&token.id).bind(directory_id).bind(hash_token(&token.token)).bind(now)
            .execute(&mut *c).await?;
        let active: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM directory_tokens WHERE directory_id = $1 AND revoked_at IS NULL ORDER BY id DESC")
            .bind(directory_id).fetch_all(&mut *c).await?;
        for old in active.iter().skip(MAX_ACTIVE_TOKENS) {
            sqlx::query("UPDATE directory_tokens SET revoked_at = $1 WHERE id = $2")
                .bind(now).bind(old).execute(&mut *c).await?;
        }
    });
    Ok(())
}

/// Revokes one active token, or with `token_id` None every token but the newest (ending a
/// rotation). Returns the ids revoked; not found when the directory is not the organization's or
/// the token is not one of its active ones.
pub async fn revoke_directory_tokens(
    tx: &mut Tx,
    scope: &OrgScope,
    directory_id: &str,
    token_id: Option<&str>,
) -> StoreResult<Vec<String>> {
    if !has_directory(tx, scope, directory_id).await? {
        return Err(StoreError::NotFound);
    }
    let now = tx.now();
    Ok(on_tx!(tx, c => {
        let active: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM directory_tokens WHERE directory_id = $1 AND revoked_at IS NULL ORDER BY id DESC")
            .bind(directory_id).fetch_all(&mut *c).await?;
        let targets: Vec<String> = match token_id {
            Some(t) if active.iter().any(|a| a == t) => vec![t.to_string()],
            Some(_) => return Err(StoreError::NotFound),
            None => active.into_iter().skip(1).collect(),
        };
        for t in &targets {
            sqlx::query("UPDATE directory_tokens SET revoked_at = $1 WHERE id = $2")
                .bind(now).bind(t).execute(&mut *c).await?;
        }
        targets
    }))
}

impl Store {
    /// Finds an organization by id or by (case-insensitive) name.
    pub async fn find_org(&self, id_or_name: &str) -> StoreResult<OrgRecord> {
        let row = on_read!(self, c => sqlx::query_as::<_, OrgRecord>(
            "SELECT id, name, created_at FROM organizations WHERE id = $1 OR name_ci = $2 \
             ORDER BY (id = $1) DESC LIMIT 1")
            .bind(id_or_name).bind(id_or_name.to_lowercase())
            .fetch_optional(c).await?);
        row.ok_or(StoreError::NotFound)
    }

    /// Any organization's directory, by id: for the operator's CLI, whose directory commands name
    /// no organization, to find the scope to act in.
    pub async fn find_directory(&self, id: &str) -> StoreResult<DirectoryRecord> {
        let row = on_read!(self, c => sqlx::query_as::<_, DirectoryRecord>(
            "SELECT id, org_id, name, created_at FROM directories WHERE id = $1")
            .bind(id).fetch_optional(c).await?);
        row.ok_or(StoreError::NotFound)
    }

    /// The organization's directory `id`; another organization's is not found.
    pub async fn directory(&self, scope: &OrgScope, id: &str) -> StoreResult<DirectoryRecord> {
        match self.find_directory(id).await {
            Ok(dir) if dir.org_id == scope.org_id() => Ok(dir),
            Ok(_) => Err(StoreError::NotFound),
            Err(e) => Err(e),
        }
    }

    pub async fn list_directory_tokens(
        &self,
        scope: &OrgScope,
        directory_id: &str,
    ) -> StoreResult<Vec<TokenInfo>> {
        Ok(on_read!(self, c => sqlx::query_as::<_, TokenInfo>(
            "SELECT t.id AS id, t.created_at AS created_at, t.revoked_at AS revoked_at, \
             t.last_used_at AS last_used_at FROM directory_tokens t \
             JOIN directories d ON d.id = t.directory_id \
             WHERE t.directory_id = $1 AND d.org_id = $2 ORDER BY t.id")
            .bind(directory_id).bind(scope.org_id()).fetch_all(c).await?))
    }

    /// Checks a bearer token against one directory. A token of another directory does not
    /// authenticate here, whatever it is valid for elsewhere.
    pub async fn authenticate_directory(
        &self,
        directory_id: &str,
        token: &str,
    ) -> StoreResult<Option<DirectoryScope>> {
        if token.len() > 256 {
            return Ok(None);
        }
        let hash = hash_token(token);
        let key = AuthCache::key(&hash, Some(directory_id));
        if let Some(Accepted::Directory(scope)) = self.auth_cache.get(&key, self.now()) {
            return Ok(Some(scope));
        }
        let generation = self.auth_cache.generation();
        let found = on_read!(self, c => sqlx::query_as::<_, DirectoryTokenRow>(
        "SELECT t.id AS token_id, d.org_id AS org_id, t.last_used_at AS last_used_at FROM directory_tokens t \
         JOIN directories d ON d.id = t.directory_id \
         WHERE t.token_hash = $1 AND t.directory_id = $2 AND t.revoked_at IS NULL")
        .bind(&hash).bind(directory_id)
        .fetch_optional(c).await?
        .map(|r| (DirectoryScope {
            org_id: r.org_id,
            directory_id: directory_id.to_string(),
            token_id: r.token_id,
        }, r.last_used_at)));
        let Some((scope, last_used_at)) = found else {
            return Ok(None);
        };
        self.note_token_use(TokenKind::Directory, &scope.token_id, last_used_at)
            .await;
        self.auth_cache
            .put(key, generation, Accepted::Directory(scope.clone()), None);
        Ok(Some(scope))
    }

    /// Records that a token authenticated a request, at most once a minute per token: the
    /// answer to "is this still in use" needs no finer grain, and SCIM's request rate must not
    /// turn into a write per request.
    pub(crate) async fn note_token_use(
        &self,
        kind: TokenKind,
        id: &str,
        last_used_at: Option<i64>,
    ) {
        const GRAIN: i64 = 60_000_000;
        let now = self.now();
        if last_used_at.is_some_and(|at| now - at < GRAIN) {
            return;
        }
        let sql = match kind {
            TokenKind::Admin => {
                "UPDATE admin_tokens SET last_used_at = $1 WHERE id = $2 \
                                 AND (last_used_at IS NULL OR last_used_at < $3)"
            }
            TokenKind::Directory => {
                "UPDATE directory_tokens SET last_used_at = $1 WHERE id = $2 \
                                     AND (last_used_at IS NULL OR last_used_at < $3)"
            }
            TokenKind::Platform => {
                "UPDATE platform_tokens SET last_used_at = $1 WHERE id = $2 \
                                    AND (last_used_at IS NULL OR last_used_at < $3)"
            }
        };
        let written = async {
            let mut tx = self.begin().await?;
            on_tx!(&mut tx, c => sqlx::query(sql).bind(now).bind(id).bind(now - GRAIN)
                .execute(&mut *c).await?.rows_affected());
            tx.commit().await?;
            StoreResult::Ok(())
        };
        // The request is authenticated either way; a missed note only makes the record older.
        if let Err(e) = written.await {
            tracing::warn!(error = %e, token = id, "could not record the token's use");
        }
    }
}

/// The tokens whose use is recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TokenKind {
    Admin,
    Directory,
    Platform,
}

/// The organization users that the directory's SCIM users are faces of.
pub async fn org_users_of_directory(
    tx: &mut super::Tx,
    scope: &OrgScope,
    directory_id: &str,
) -> StoreResult<Vec<OrgUserId>> {
    let ids: Vec<String> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT DISTINCT s.org_user_id FROM scim_users s JOIN directories d ON d.id = s.directory_id \
         WHERE d.org_id = $1 AND s.directory_id = $2 AND s.org_user_id IS NOT NULL")
        .bind(scope.org_id()).bind(directory_id).fetch_all(&mut *c).await?);
    Ok(ids.into_iter().map(OrgUserId::new).collect())
}

/// Deletes one of the organization's directories with its tokens, SCIM users, groups and
/// memberships (the schema cascades). Returns false when it has no such directory.
pub async fn delete_directory(
    tx: &mut super::Tx,
    scope: &OrgScope,
    directory_id: &str,
) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query("DELETE FROM directories WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(directory_id).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}
