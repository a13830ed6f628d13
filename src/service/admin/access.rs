//! A user's effective access, explained.

use crate::domain::ids::OrgUserId;
use serde::Serialize;

use super::{Action, AdminResult, AdminRole, Caller};
use crate::domain::access::OrgRole;
use crate::mapping::explain::{ScopeReasons, explain};
use crate::mapping::{EffectiveAccess, Reason, SubAccountAccess};
use crate::store::Store;
use crate::store::access::{self as access_db, OrgLock};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgRoleView {
    pub role: OrgRole,
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubAccountView {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub access: SubAccountAccess,
}

/// A user's effective access: organization roles, and the access in every sub-account of the
/// organization (including sub-accounts created after the grants), each with its reasons.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccessView {
    pub user_id: String,
    pub user_name: String,
    pub active: bool,
    pub org_roles: Vec<OrgRoleView>,
    pub sub_accounts: Vec<SubAccountView>,
    /// Every source of access per scope (organization, each sub-account, feature, project),
    /// including those outranked by a higher grant; `wins` marks those that give what is held.
    pub scopes: Vec<ScopeReasons>,
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), user_id = user_id))]
pub async fn user_access(store: &Store, caller: &Caller, user_id: &str) -> AdminResult<AccessView> {
    let own = caller.sub_account();
    match (caller.role, own) {
        (AdminRole::SubAccountAdmin, Some(sa)) => caller.require(Action::ReadSubAccount(sa))?,
        _ => caller.require(Action::Read)?,
    }
    let scope = caller.scope();
    let user = store.get_org_user(scope, user_id).await?;
    let access: EffectiveAccess = serde_json::from_str(&user.access).unwrap_or_default();
    let sub_accounts = store.list_sub_accounts(scope).await?;
    let restricted = caller.role == AdminRole::SubAccountAdmin;
    let visible: Vec<String> = sub_accounts
        .iter()
        .filter(|sa| !restricted || own == Some(sa.id.as_str()))
        .map(|sa| sa.id.clone())
        .collect();
    // The same inputs the last recomputation read, to show the sources it discarded too.
    let mut tx = store.begin().await?;
    let org = access_db::load_org(&mut tx, scope.org_id(), OrgLock::Share).await?;
    let id = OrgUserId::new(user.id.clone());
    let facts = access_db::user_facts(&mut tx, std::slice::from_ref(&id))
        .await?
        .remove(&id)
        .unwrap_or_default();
    tx.rollback().await?;
    let groups = crate::mapping::UserGroups {
        directory_ids: facts.directory_ids,
        groups: facts.groups,
        claim_values: facts.claims,
        claims_from: facts.claims_from,
    };
    let is_owner = org.owner_user_id.as_deref() == Some(user.id.as_str());
    let mut scopes = explain(
        &groups,
        is_owner,
        user.active,
        &org.rules,
        &facts.manual,
        &org.settings,
        &visible,
    );
    if restricted {
        scopes.retain(|s| s.scope != "organization");
    }
    Ok(AccessView {
        scopes,
        user_id: user.id,
        user_name: user.user_name,
        active: user.active,
        org_roles: if restricted {
            Vec::new()
        } else {
            access
                .org_roles()
                .iter()
                .map(|(role, reasons)| OrgRoleView {
                    role: *role,
                    reasons: reasons.iter().cloned().collect(),
                })
                .collect()
        },
        sub_accounts: sub_accounts
            .into_iter()
            .filter(|sa| !restricted || own == Some(sa.id.as_str()))
            .map(|sa| SubAccountView {
                access: access.for_sub_account(&sa.id),
                id: sa.id,
                name: sa.name,
            })
            .collect(),
    })
}
