//! The organization's users and groups as the admin API reads them, and users' sessions.

use serde::Serialize;

use super::views::{LinkedScimUser, OrgGroup, OrgUser, SessionInfo};
use super::{Action, AdminError, AdminResult, Caller};
use crate::domain::audit::{AuditOp, AuditResource};
use crate::store::admin::{UserQuery, org_user_exists};
use crate::store::{Store, audit, sso};

/// One page of groups after the id `after`.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_groups(
    store: &Store,
    caller: &Caller,
    after: &str,
    limit: i64,
) -> AdminResult<Vec<OrgGroup>> {
    caller.require(Action::Read)?;
    let groups = store.list_org_groups(caller.scope(), after, limit).await?;
    Ok(groups.into_iter().map(Into::into).collect())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupDetails {
    #[serde(flatten)]
    pub group: OrgGroup,
    pub member_count: i64,
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), group_id = id))]
pub async fn get_group(store: &Store, caller: &Caller, id: &str) -> AdminResult<GroupDetails> {
    caller.require(Action::Read)?;
    let (group, member_count) = store.get_org_group(caller.scope(), id).await?;
    Ok(GroupDetails {
        group: group.into(),
        member_count,
    })
}

/// The longest search text: longer than any name or email a person types into a search box.
const MAX_SEARCH: usize = 256;

/// A search box's text, trimmed; `None` when blank (a search that finds everything).
pub(super) fn search_text(q: Option<&str>) -> AdminResult<Option<String>> {
    let q = q.map(str::trim).filter(|q| !q.is_empty());
    if let Some(q) = q
        && (q.chars().count() > MAX_SEARCH || q.chars().any(char::is_control))
    {
        return Err(AdminError::Invalid(format!(
            "q must be at most {MAX_SEARCH} characters, without control characters"
        )));
    }
    Ok(q.map(str::to_string))
}

/// One page of the users that match `filter`, after the id `after`. A search (`filter.search`)
/// finds a part of the userName, display name or any email, ASCII letters without case, as every
/// name of the product compares; blank, it finds everyone.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_users(
    store: &Store,
    caller: &Caller,
    filter: &UserQuery,
    after: &str,
    limit: i64,
) -> AdminResult<Vec<OrgUser>> {
    caller.require(Action::Read)?;
    let mut filter = filter.clone();
    filter.search = search_text(filter.search.as_deref())?;
    let filter = &filter;
    let users = store
        .find_org_users(caller.scope(), filter, after, limit)
        .await?;
    Ok(users.into_iter().map(Into::into).collect())
}

/// A user with what makes it up: its SCIM users and the claims of its last sign-in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: OrgUser,
    /// One per directory that provisioned this person; only active ones give access.
    pub scim_users: Vec<LinkedScimUser>,
    /// The group-claim values of the last sign-in, which `claim` mapping rules match.
    pub claims: Vec<String>,
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), user_id = id))]
pub async fn get_user(store: &Store, caller: &Caller, id: &str) -> AdminResult<UserDetail> {
    caller.require(Action::Read)?;
    let scope = caller.scope();
    let user = store.get_org_user(scope, id).await?;
    let scim_users = store.scim_users_of(scope, id).await?;
    let claims = store.claims_of(scope, id).await?;
    Ok(UserDetail {
        user: user.into(),
        scim_users: scim_users.into_iter().map(Into::into).collect(),
        claims,
    })
}

/// The SCIM users that make up a person, one per directory that provisioned them.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), user_id = user_id))]
pub async fn user_scim_users(
    store: &Store,
    caller: &Caller,
    user_id: &str,
) -> AdminResult<Vec<LinkedScimUser>> {
    caller.require(Action::Read)?;
    store.get_org_user(caller.scope(), user_id).await?;
    let linked = store.scim_users_of(caller.scope(), user_id).await?;
    Ok(linked.into_iter().map(Into::into).collect())
}

/// How many sessions signing a person out everywhere ended.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionsRevoked {
    pub user_id: String,
    /// Sessions that were live (not already revoked) and are now revoked; 0 when there were none.
    pub revoked: u64,
}

/// Signs a person out everywhere: every session not yet revoked, with the access tokens and
/// codes issued from them, stops working at the next request. Audited, even when there was none.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), user_id = user_id))]
pub async fn revoke_user_sessions(
    store: &Store,
    caller: &Caller,
    user_id: &str,
) -> AdminResult<SessionsRevoked> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    if !org_user_exists(&mut tx, scope, user_id).await? {
        return Err(AdminError::NotFound("not found".into()));
    }
    let revoked = sso::revoke_user_sessions(&mut tx, scope, user_id).await?;
    let detail = serde_json::json!({ "sessions": revoked }).to_string();
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::RevokeSessions,
        AuditResource::User,
        Some(user_id),
        Some(&detail),
    )
    .await?;
    tx.commit().await?;
    Ok(SessionsRevoked {
        user_id: user_id.to_string(),
        revoked,
    })
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), user_id = user_id))]
pub async fn list_sessions(
    store: &Store,
    caller: &Caller,
    user_id: &str,
) -> AdminResult<Vec<SessionInfo>> {
    caller.require(Action::Read)?;
    store.get_org_user(caller.scope(), user_id).await?;
    let sessions = store.list_sessions(caller.scope(), user_id).await?;
    Ok(sessions.into_iter().map(Into::into).collect())
}
