//! Sub-accounts and their projects.

use super::views::{Project, SubAccount};
use super::{Action, AdminError, AdminResult, Caller};
use crate::domain::audit::{AuditOp, AuditResource};
use crate::store::access::{self as access_db, OrgLock};
use crate::store::admin::{self as db};
use crate::store::{Store, audit};

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn create_sub_account(
    store: &Store,
    caller: &Caller,
    name: &str,
) -> AdminResult<SubAccount> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let sa = db::insert_sub_account(&mut tx, scope, name).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Create,
        AuditResource::SubAccount,
        Some(&sa.id),
        Some(&sa.name),
    )
    .await?;
    tx.commit().await?;
    Ok(sa.into())
}

/// Refused while a rule or a grant made by hand names the sub-account: deleting it would silently
/// change what those mean.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), sub_account_id = id))]
pub async fn delete_sub_account(store: &Store, caller: &Caller, id: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    access_db::load_org(&mut tx, scope.org_id(), OrgLock::Exclusive).await?;
    let refs = db::references(&mut tx, scope, id).await?;
    if refs > 0 {
        return Err(AdminError::Conflict(format!(
            "{refs} rules or grants give access in this sub-account; delete them first"
        )));
    }
    if !db::delete_sub_account(&mut tx, scope, id).await? {
        return Err(AdminError::NotFound(format!("no sub-account {id:?}")));
    }
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Delete,
        AuditResource::SubAccount,
        Some(id),
        None,
    )
    .await?;
    tx.commit().await?;
    store.tokens_changed();
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), sub_account_id = sub_account_id))]
pub async fn create_project(
    store: &Store,
    caller: &Caller,
    sub_account_id: &str,
    name: &str,
) -> AdminResult<Project> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    if !db::sub_account_exists(&mut tx, scope, sub_account_id).await? {
        return Err(AdminError::NotFound(format!(
            "no sub-account {sub_account_id:?}"
        )));
    }
    let p = db::insert_project(&mut tx, scope, sub_account_id, name).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Create,
        AuditResource::Project,
        Some(&p.id),
        Some(&p.name),
    )
    .await?;
    tx.commit().await?;
    Ok(p.into())
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), sub_account_id = sub_account_id, project_id = id))]
pub async fn delete_project(
    store: &Store,
    caller: &Caller,
    sub_account_id: &str,
    id: &str,
) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    access_db::load_org(&mut tx, scope.org_id(), OrgLock::Exclusive).await?;
    let refs = db::references(&mut tx, scope, id).await?;
    if refs > 0 {
        return Err(AdminError::Conflict(format!(
            "{refs} rules or grants give a role in this project; delete them first"
        )));
    }
    if !db::delete_project(&mut tx, scope, sub_account_id, id).await? {
        return Err(AdminError::NotFound(format!("no project {id:?}")));
    }
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Delete,
        AuditResource::Project,
        Some(id),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The sub-accounts the caller may read: all of them, or a sub-account admin's own. A caller that
/// may read none is refused.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_sub_accounts(store: &Store, caller: &Caller) -> AdminResult<Vec<SubAccount>> {
    let mut items = store.list_sub_accounts(caller.scope()).await?;
    if caller.require(Action::Read).is_err() {
        items.retain(|sa| caller.require(Action::ReadSubAccount(&sa.id)).is_ok());
        if items.is_empty() && caller.sub_account().is_none() {
            return Err(AdminError::Forbidden);
        }
    }
    Ok(items.into_iter().map(Into::into).collect())
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), sub_account_id = id))]
pub async fn get_sub_account(store: &Store, caller: &Caller, id: &str) -> AdminResult<SubAccount> {
    caller.require(Action::ReadSubAccount(id))?;
    Ok(store.get_sub_account(caller.scope(), id).await?.into())
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), sub_account_id = sub_account_id))]
pub async fn list_projects(
    store: &Store,
    caller: &Caller,
    sub_account_id: &str,
) -> AdminResult<Vec<Project>> {
    caller.require(Action::ReadSubAccount(sub_account_id))?;
    store
        .get_sub_account(caller.scope(), sub_account_id)
        .await?;
    let projects = store.list_projects(caller.scope(), sub_account_id).await?;
    Ok(projects.into_iter().map(Into::into).collect())
}
