//! Admin tokens: who may see and revoke which.

use super::{Action, AdminError, AdminResult, AdminRole, Caller};
use crate::domain::access::OrgRole;
use crate::store::admin::{self as db};
use crate::store::{Store, StoreError};

/// Whether a caller may see (and so revoke) a token of `role`: managing tokens is for the owner and
/// admins, and only the owner sees owner tokens, so an admin cannot lock the owner out.
fn token_visible(caller: &Caller, role: &str) -> bool {
    caller.role == AdminRole::Org(OrgRole::OrgOwner) || role != "org_owner"
}

/// The organization's admin tokens the caller may see: never a secret or a hash.
pub async fn list_admin_tokens(
    store: &Store,
    caller: &Caller,
) -> AdminResult<Vec<db::AdminTokenInfo>> {
    caller.require(Action::Manage)?;
    let mut items = store.list_admin_tokens(caller.scope()).await?;
    items.retain(|t| token_visible(caller, &t.role));
    Ok(items)
}

/// Revokes a token; the next request that presents it is refused.
pub async fn revoke_admin_token(store: &Store, caller: &Caller, id: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    let tokens = store.list_admin_tokens(caller.scope()).await?;
    let Some(t) = tokens
        .iter()
        .find(|t| t.id == id && token_visible(caller, &t.role))
    else {
        return Err(AdminError::NotFound("no such admin token".into()));
    };
    if t.revoked_at.is_some() {
        return Err(AdminError::Conflict(
            "this admin token is already revoked".into(),
        ));
    }
    store
        .revoke_admin_token(caller.scope(), id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                AdminError::Conflict("this admin token is already revoked".into())
            }
            e => e.into(),
        })
}
