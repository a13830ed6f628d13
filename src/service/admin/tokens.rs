//! Admin tokens: who mints them, and who may see and revoke which.

use serde::{Deserialize, Serialize};

use super::views::AdminTokenInfo;
use super::{Action, AdminError, AdminResult, AdminRole, Caller};
use crate::domain::access::OrgRole;
use crate::store::{Store, StoreError};

/// An admin token to mint.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenInput {
    /// `org_owner`, `org_admin`, `org_viewer`, `billing_admin`, `billing_viewer`, or
    /// `sub_account_admin` with `sub_account_id`.
    pub role: String,
    /// The sub-account of a `sub_account_admin` token, and only of one.
    #[serde(default)]
    pub sub_account_id: Option<String>,
    /// A name to recognize the token by in lists.
    #[serde(default = "default_token_name")]
    pub name: String,
    /// When the token stops working (an RFC 3339 date-time in the future); none: never.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

fn default_token_name() -> String {
    "admin token".into()
}

/// A minted admin token: the secret is shown here once, and only its hash is kept.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminTokenCreated {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub role: String,
    pub sub_account_id: Option<String>,
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    /// The bearer token (`idba_...`); shown once.
    pub token: String,
}

/// Mints an admin token of the caller's organization: the operator (CLI) and a platform token
/// only, never another admin token, so no admin can give themselves a wider role.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn mint_admin_token(
    store: &Store,
    caller: &Caller,
    input: &AdminTokenInput,
) -> AdminResult<AdminTokenCreated> {
    caller.require(Action::Operate)?;
    let role: AdminRole = input.role.parse().map_err(AdminError::Invalid)?;
    if (role == AdminRole::SubAccountAdmin) != input.sub_account_id.is_some() {
        return Err(AdminError::Invalid(
            "a sub_account_admin token needs its sub-account (sub_account_id, or --sub-account), \
             and no other role takes one"
                .into(),
        ));
    }
    let expires_at = input
        .expires_at
        .as_deref()
        .map(crate::store::rfc3339::parse)
        .transpose()
        .map_err(|e| AdminError::Invalid(format!("expires_at: {e}")))?;
    let token = store
        .create_admin_token_expiring(
            caller.scope(),
            &role.to_string(),
            input.sub_account_id.as_deref(),
            &input.name,
            expires_at,
        )
        .await?;
    Ok(AdminTokenCreated {
        id: token.id,
        org_id: caller.scope().org_id().to_string(),
        name: input.name.trim().to_string(),
        role: role.to_string(),
        sub_account_id: input.sub_account_id.clone(),
        expires_at,
        token: token.token,
    })
}

/// Whether a caller may see (and so revoke) a token of `role`: managing tokens is for the owner and
/// admins, and only the owner sees owner tokens, so an admin cannot lock the owner out.
fn token_visible(caller: &Caller, role: &str) -> bool {
    caller.role == AdminRole::Org(OrgRole::OrgOwner) || role != "org_owner"
}

/// The organization's admin tokens the caller may see: never a secret or a hash.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_admin_tokens(store: &Store, caller: &Caller) -> AdminResult<Vec<AdminTokenInfo>> {
    caller.require(Action::Manage)?;
    let mut items = store.list_admin_tokens(caller.scope()).await?;
    items.retain(|t| token_visible(caller, &t.role));
    Ok(items.into_iter().map(Into::into).collect())
}

/// Revokes a token; the next request that presents it is refused.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), token_id = id))]
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
