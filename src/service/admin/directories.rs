//! SCIM directories of the organization and their bearer tokens.

use crate::domain::audit::{AuditOp, AuditResource};
use serde::Serialize;

use super::views::{DirectoryRecord, NewToken, TokenInfo};
use super::{Action, AdminError, AdminResult, Caller};
use crate::service::provision::Provision;
use crate::store::admin::OrgScope;
use crate::store::directory::{self as db, mint_token};
use crate::store::{Store, StoreError, audit, new_id};

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_directories(store: &Store, caller: &Caller) -> AdminResult<Vec<DirectoryRecord>> {
    caller.require(Action::Read)?;
    let directories = store.list_org_directories(caller.scope()).await?;
    Ok(directories.into_iter().map(Into::into).collect())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewDirectory {
    pub directory: DirectoryRecord,
    /// The SCIM base URL to give the IdP.
    pub scim_base_url: String,
    /// Shown once; only its hash is kept.
    pub token: NewToken,
}

/// A new directory with its first token; `public_url` is the service's, for the SCIM base URL.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn create_directory(
    store: &Store,
    caller: &Caller,
    public_url: &str,
    name: &str,
) -> AdminResult<NewDirectory> {
    caller.require(Action::Manage)?;
    let (directory, token) = add_directory(store, caller.scope(), name).await?;
    let scim_base_url = format!("{public_url}/scim/v2/{}", directory.id);
    Ok(NewDirectory {
        directory: directory.into(),
        scim_base_url,
        token: token.into(),
    })
}

/// A new directory of `scope`'s organization with its first token, and its audit row: what
/// [`create_directory`] does once the caller may, and what tests and benches set up.
pub async fn add_directory(
    store: &Store,
    scope: &OrgScope,
    name: &str,
) -> AdminResult<(db::DirectoryRecord, db::NewToken)> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AdminError::Invalid(
            "directory name must be 1-200 characters".into(),
        ));
    }
    let token = directory_token();
    let mut tx = store.begin().await?;
    let dir = db::insert_directory(&mut tx, scope, name, &token).await?;
    audit::record(
        &mut tx,
        &db::audit_actor(scope, &dir.id),
        AuditOp::Create,
        AuditResource::Directory,
        Some(&dir.id),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok((dir, token))
}

fn directory_token() -> db::NewToken {
    db::NewToken {
        id: new_id(),
        token: mint_token("idb_"),
    }
}

/// The organization's directory `id`, or a 404 that names it (another organization's too: ids
/// cannot be probed).
async fn directory(store: &Store, caller: &Caller, id: &str) -> AdminResult<db::DirectoryRecord> {
    store
        .directory(caller.scope(), id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AdminError::NotFound(format!("no directory {id:?}")),
            e => e.into(),
        })
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), directory_id = directory_id))]
pub async fn list_directory_tokens(
    store: &Store,
    caller: &Caller,
    directory_id: &str,
) -> AdminResult<Vec<TokenInfo>> {
    caller.require(Action::Read)?;
    directory(store, caller, directory_id).await?;
    let tokens = store
        .list_directory_tokens(caller.scope(), directory_id)
        .await?;
    Ok(tokens.into_iter().map(Into::into).collect())
}

/// A new token; the previous one stays valid until revoked.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), directory_id = directory_id))]
pub async fn rotate_directory_token(
    store: &Store,
    caller: &Caller,
    directory_id: &str,
) -> AdminResult<NewToken> {
    caller.require(Action::Manage)?;
    directory(store, caller, directory_id).await?;
    let scope = caller.scope();
    let token = directory_token();
    let mut tx = store.begin().await?;
    db::rotate_directory_token(&mut tx, scope, directory_id, &token).await?;
    audit::record(
        &mut tx,
        &db::audit_actor(scope, directory_id),
        AuditOp::Rotate,
        AuditResource::Token,
        Some(&token.id),
        None,
    )
    .await?;
    tx.commit().await?;
    store.tokens_changed();
    Ok(token.into())
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), directory_id = directory_id, token_id = token_id))]
pub async fn revoke_directory_token(
    store: &Store,
    caller: &Caller,
    directory_id: &str,
    token_id: &str,
) -> AdminResult<()> {
    revoke_directory_tokens(store, caller, directory_id, Some(token_id)).await?;
    Ok(())
}

/// Revokes one token, or with `token_id` None every token but the newest (ending a rotation);
/// returns the ids revoked.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), directory_id = directory_id))]
pub async fn revoke_directory_tokens(
    store: &Store,
    caller: &Caller,
    directory_id: &str,
    token_id: Option<&str>,
) -> AdminResult<Vec<String>> {
    caller.require(Action::Manage)?;
    directory(store, caller, directory_id).await?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let revoked = db::revoke_directory_tokens(&mut tx, scope, directory_id, token_id).await?;
    let actor = db::audit_actor(scope, directory_id);
    for t in &revoked {
        audit::record(
            &mut tx,
            &actor,
            AuditOp::Revoke,
            AuditResource::Token,
            Some(t),
            None,
        )
        .await?;
    }
    tx.commit().await?;
    store.tokens_changed();
    Ok(revoked)
}

/// Deletes a directory with its tokens, SCIM users and groups, in one transaction with what that
/// does to access: each person the directory provisioned is recomputed exactly as when the IdP
/// deletes their SCIM user, so one no other directory provisions is deprovisioned (grants derived
/// from its groups removed, sessions revoked, events written) and one another directory still
/// provisions keeps what that directory gives. Refused (409) when it would deprovision the owner:
/// transfer ownership first, as for any deprovisioning of the owner.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), directory_id = directory_id))]
pub async fn delete_directory(
    store: &Store,
    caller: &Caller,
    directory_id: &str,
) -> AdminResult<DirectoryDeleted> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let users = db::org_users_of_directory(&mut tx, scope, directory_id).await?;
    if !db::delete_directory(&mut tx, scope, directory_id).await? {
        return Err(AdminError::NotFound(format!(
            "no directory {directory_id:?}"
        )));
    }
    // The rules bound to it reached only its users, who are recomputed here.
    let source = crate::mapping::rule::Source::Directory(directory_id.to_string());
    super::rules::delete_rules_bound_to(&mut tx, scope, &source).await?;
    let mut prov = Provision::new(scope.org_id(), scope.actor());
    for u in &users {
        prov.unlinked(u);
    }
    let changes = prov.finish(&mut tx).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Delete,
        AuditResource::Directory,
        Some(directory_id),
        Some(&format!("{} users recomputed", users.len())),
    )
    .await?;
    tx.commit().await?;
    store.tokens_changed();
    Ok(DirectoryDeleted { changes })
}

/// Who gained or lost what when a directory was deleted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DirectoryDeleted {
    pub changes: Vec<crate::service::provision::UserOutcome>,
}
