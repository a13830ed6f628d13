//! The platform API's operations: what the SaaS's backend does with a platform token across
//! organizations (list them, find one by its key, delete one), the caller a platform token
//! becomes inside one organization, and the operator's platform tokens. Creating an organization,
//! changing it and minting its admin tokens are the admin operations in [`crate::service::admin`],
//! which the CLI calls too; a platform token reaches them as [`Caller::platform`].

use crate::domain::audit::{AuditOp, AuditResource};
use crate::service::admin::{
    Action, AdminError, AdminResult, Caller, OrgDetails, PlatformTokenInfo,
};
use crate::store::access::{self as access_db, OrgLock};
use crate::store::admin::OrgScope;
use crate::store::directory::mint_token;
use crate::store::platform::{self as db, PlatformPrincipal};
use crate::store::{NewToken, Store, StoreError, audit, new_id};

/// An authenticated platform token: only [`authenticate`] makes one, so every operation that
/// takes one runs for the SaaS's backend and no one else.
#[derive(Debug, Clone)]
pub struct Platform {
    principal: PlatformPrincipal,
}

impl Platform {
    pub fn token_id(&self) -> &str {
        &self.principal.token_id
    }
    /// How this token is named in audit logs: `platform-token:{id}`.
    pub fn actor(&self) -> String {
        self.principal.actor()
    }
}

/// The platform token behind a bearer token, or `None` for anything else (an admin, SCIM or
/// session token; a revoked or expired platform token).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn authenticate(store: &Store, token: &str) -> AdminResult<Option<Platform>> {
    Ok(store
        .authenticate_platform(token)
        .await?
        .map(|principal| Platform { principal }))
}

/// The platform token acting on organization `org_id`, which must exist (404 otherwise).
#[tracing::instrument(level = "debug", skip_all, fields(org_id = org_id))]
pub async fn org_caller(store: &Store, platform: &Platform, org_id: &str) -> AdminResult<Caller> {
    let scope = OrgScope::for_org(org_id, &platform.actor());
    match store.org_details(&scope).await {
        Ok(_) => Ok(Caller::platform(scope, platform.token_id())),
        Err(StoreError::NotFound) => Err(AdminError::NotFound("no such organization".into())),
        Err(e) => Err(e.into()),
    }
}

/// A page of organizations in creation order after `after` (an organization id), or with
/// `external_key` the one organization with that key (none when no organization has it).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list_orgs(
    store: &Store,
    _platform: &Platform,
    after: &str,
    limit: i64,
    external_key: Option<&str>,
) -> AdminResult<Vec<OrgDetails>> {
    let orgs = store.list_orgs(after, limit, external_key).await?;
    Ok(orgs.into_iter().map(Into::into).collect())
}

/// Deletes the organization and everything it owns (see [`db::delete_org`]): its admin, SCIM and
/// session tokens stop working with the commit, since the rows they name are gone. The
/// organization row is locked first, so provisioning under way finishes before, or finds nothing
/// after. The deletion is recorded in the organization's audit log, which is kept.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn delete_org(store: &Store, caller: &Caller) -> AdminResult<()> {
    caller.require(Action::Operate)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    access_db::load_org(&mut tx, scope.org_id(), OrgLock::Exclusive)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AdminError::NotFound("no such organization".into()),
            e => e.into(),
        })?;
    let f = db::org_footprint(&mut tx, scope).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Delete,
        AuditResource::Organization,
        Some(scope.org_id()),
        Some(&format!(
            "{} directories, {} users, {} connections, {} admin tokens, {} sessions, {} webhooks",
            f.directories, f.users, f.connections, f.admin_tokens, f.sessions, f.webhooks
        )),
    )
    .await?;
    if !db::delete_org(&mut tx, scope).await? {
        return Err(AdminError::NotFound("no such organization".into()));
    }
    tx.commit().await?;
    store.tokens_changed();
    tracing::info!(
        org = scope.org_id(),
        actor = scope.actor(),
        "organization deleted"
    );
    Ok(())
}

// ---- platform tokens (the operator's CLI) -------------------------------------------------------

/// Mints a platform token, shown once. The operator alone does this, on the machine with the
/// database: a platform token reaches every organization, so no API mints one.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_platform_token(
    store: &Store,
    name: &str,
    expires_at: Option<i64>,
) -> AdminResult<NewToken> {
    let name = crate::store::admin::check_name(name, "token")?;
    let mut tx = store.begin().await?;
    if expires_at.is_some_and(|e| e <= tx.now()) {
        return Err(AdminError::Invalid(
            "the token's expiry must be in the future".into(),
        ));
    }
    let token = NewToken {
        id: new_id(),
        token: mint_token(db::PLATFORM_TOKEN_PREFIX),
    };
    db::insert_platform_token(&mut tx, &token, &name, expires_at).await?;
    tx.commit().await?;
    tracing::info!(token = token.id, "platform token created");
    Ok(token)
}

/// Every platform token, never a secret or a hash.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list_platform_tokens(store: &Store) -> AdminResult<Vec<PlatformTokenInfo>> {
    let tokens = store.list_platform_tokens().await?;
    Ok(tokens.into_iter().map(Into::into).collect())
}

/// Revokes a platform token: it is refused from the next request on.
#[tracing::instrument(level = "debug", skip_all, fields(token_id = id))]
pub async fn revoke_platform_token(store: &Store, id: &str) -> AdminResult<()> {
    let mut tx = store.begin().await?;
    if !db::revoke_platform_token(&mut tx, id).await? {
        return Err(AdminError::NotFound(format!(
            "no active platform token {id:?}"
        )));
    }
    tx.commit().await?;
    tracing::info!(token = id, "platform token revoked");
    Ok(())
}
