//! Grants made by hand.

use super::rules::validate_grant;
use super::views::GrantRecord;
use super::{Action, AdminError, AdminResult, Caller};
use crate::domain::audit::{AuditOp, AuditResource};
use crate::domain::ids::OrgUserId;
use crate::mapping::Grant;
use crate::service::provision::{Provision, UserOutcome};
use crate::store::admin::{self as db, grant_sub_account};
use crate::store::{Store, audit, new_id};

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), user_id = user_id))]
pub async fn create_grant(
    store: &Store,
    caller: &Caller,
    user_id: &str,
    grant: Grant,
) -> AdminResult<(GrantRecord, Vec<UserOutcome>)> {
    caller.require(Action::ManageGrant(grant_sub_account(&grant)))?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    if !db::org_user_exists(&mut tx, scope, user_id).await? {
        return Err(AdminError::NotFound(format!("no user {user_id:?}")));
    }
    validate_grant(&mut tx, scope, &grant).await?;
    let rec = db::GrantRecord {
        id: new_id(),
        user_id: user_id.to_string(),
        sub_account_id: grant_sub_account(&grant).map(str::to_string),
        grant,
        granted_by: scope.actor().to_string(),
        created_at: store.now(),
    };
    db::insert_grant(&mut tx, scope, &rec).await?;
    let mut prov = Provision::new(scope.org_id(), scope.actor());
    prov.touch([OrgUserId::new(user_id)]);
    let changes = prov.finish(&mut tx).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Create,
        AuditResource::Grant,
        Some(&rec.id),
        Some(&format!("user {user_id}")),
    )
    .await?;
    tx.commit().await?;
    Ok((rec.into(), changes))
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), grant_id = grant_id))]
pub async fn delete_grant(
    store: &Store,
    caller: &Caller,
    grant_id: &str,
) -> AdminResult<Vec<UserOutcome>> {
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let rec = db::get_grant_tx(&mut tx, scope, grant_id).await?;
    caller.require(Action::ManageGrant(rec.sub_account_id.as_deref()))?;
    db::delete_grant(&mut tx, scope, grant_id).await?;
    let mut prov = Provision::new(scope.org_id(), scope.actor());
    prov.touch([OrgUserId::new(rec.user_id.clone())]);
    let changes = prov.finish(&mut tx).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Delete,
        AuditResource::Grant,
        Some(grant_id),
        Some(&format!("user {}", rec.user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(changes)
}

/// A user's grants made by hand that the caller may see: all of them, or a sub-account admin's
/// in their sub-account.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), user_id = user_id))]
pub async fn list_grants(
    store: &Store,
    caller: &Caller,
    user_id: &str,
) -> AdminResult<Vec<GrantRecord>> {
    let mut items = store.list_grants(caller.scope(), user_id).await?;
    if caller.require(Action::Read).is_err() {
        items.retain(|g| {
            caller
                .require(Action::ManageGrant(g.sub_account_id.as_deref()))
                .is_ok()
        });
        if caller.sub_account().is_none() {
            return Err(AdminError::Forbidden);
        }
    }
    Ok(items.into_iter().map(Into::into).collect())
}
