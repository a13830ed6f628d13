//! Admin tokens: who mints them, and who may see and revoke which.

use serde::{Deserialize, Serialize};

use super::views::AdminTokenInfo;
use super::{Action, AdminError, AdminResult, AdminRole, Caller};
use crate::domain::access::OrgRole;
use crate::domain::audit::{AuditOp, AuditResource};
use crate::store::admin::{self as db, AdminTokenRow, OrgScope};
use crate::store::directory::mint_token;
use crate::store::{NewToken, Store, audit, new_id};

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
    let role = role.to_string();
    let token = create_admin_token(
        store,
        caller.scope(),
        &role,
        input.sub_account_id.as_deref(),
        &input.name,
        expires_at,
    )
    .await?;
    Ok(AdminTokenCreated {
        id: token.id,
        org_id: caller.scope().org_id().to_string(),
        name: input.name.trim().to_string(),
        role,
        sub_account_id: input.sub_account_id.clone(),
        expires_at,
        token: token.token,
    })
}

/// Mints an admin token of `role` for `scope`'s organization, with its audit row. Whoever calls
/// this decided the role: [`mint_admin_token`] for requests and the CLI, tests and benches for
/// their set-up (a role this service does not know included, to see it refused).
pub async fn create_admin_token(
    store: &Store,
    scope: &OrgScope,
    role: &str,
    sub_account_id: Option<&str>,
    name: &str,
    expires_at: Option<i64>,
) -> AdminResult<NewToken> {
    let name = db::check_name(name, "token")?;
    let mut tx = store.begin().await?;
    if expires_at.is_some_and(|e| e <= tx.now()) {
        return Err(AdminError::Invalid(
            "the token's expiry must be in the future".into(),
        ));
    }
    if let Some(sa) = sub_account_id
        && !db::sub_account_exists(&mut tx, scope, sa).await?
    {
        return Err(AdminError::Invalid(format!(
            "no sub-account {sa:?} in this organization"
        )));
    }
    let token = NewToken {
        id: new_id(),
        token: mint_token("idba_"),
    };
    let row = AdminTokenRow {
        token: &token,
        role,
        sub_account_id,
        name: &name,
        expires_at,
    };
    db::insert_admin_token(&mut tx, scope, &row).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Create,
        AuditResource::AdminToken,
        Some(&token.id),
        Some(role),
    )
    .await?;
    tx.commit().await?;
    Ok(token)
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
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    if !db::revoke_admin_token(&mut tx, scope, id).await? {
        return Err(AdminError::Conflict(
            "this admin token is already revoked".into(),
        ));
    }
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Revoke,
        AuditResource::AdminToken,
        Some(id),
        None,
    )
    .await?;
    tx.commit().await?;
    store.tokens_changed();
    Ok(())
}
