//! The admin API under `/api/v1`: JSON in and out, RFC 9457 problem details for every error, admin
//! tokens for authentication, and an OpenAPI 3.1 document generated from these handlers.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::error::{Problem, problem};
use crate::app::AppState;
use crate::domain::access::EventType;
use crate::mapping::Grant;
use crate::service::admin::{
    self as svc, AccessView, AdminError, AdminTokenInfo, AuditView, Caller, Changes,
    DirectoryRecord, EventRecord, GrantRecord, GroupChoice, GroupDetails, LinkedScimUser,
    NewDirectory, NewToken, OrgDetails, OrgGroup, OrgPatch, OrgUser, Project, RuleChange,
    RuleChangeResult, RuleInput, RuleReach, RuleRecord, RuleWithReach, Seats, SessionInfo,
    SessionsRevoked, SubAccount, TokenInfo, UserDetail, WebhookCreated, WebhookInfo,
};
use crate::store::access::EventFilter;
use crate::store::admin::{AuditFilter, UserQuery};

pub(super) type ApiResult<T> = Result<T, AdminError>;

/// A JSON body whose rejections are problem details too.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Read as a JSON value first so every text field is bounded before any type sees it,
        // whatever the operation's own validation does.
        let v = match Json::<Value>::from_request(req, state).await {
            Ok(Json(v)) => v,
            Err(e) => {
                let status = match &e {
                    JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                return Err(problem(status, e.body_text()));
            }
        };
        crate::domain::limits::check(&v, &crate::domain::limits::for_field)
            .map_err(|e| problem(StatusCode::BAD_REQUEST, e.to_string()))?;
        // The type is read from the parsed value, naming the path of what does not fit, in the
        // words axum's own rejection uses.
        serde_path_to_error::deserialize(v)
            .map(ApiJson)
            .map_err(|e| {
                problem(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to deserialize the JSON body into the target type: {e}"),
                )
            })
    }
}

// ---- authentication ----------------------------------------------------------------------------

/// Authenticates the admin token and checks it belongs to the organization in the path. Another
/// organization's id answers 404, as if it did not exist, so ids cannot be probed.
pub async fn authenticate(
    State(state): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = super::extract::bearer(req.headers()) else {
        return AdminError::Unauthorized.into_response();
    };
    let org = params.iter().find(|(k, _)| k == "org").map(|(_, v)| v);
    // A platform token reaches every organization, but only the operations whose handlers take an
    // [`OrgCaller`]; the others refuse it (see the `Caller` extractor).
    if let Some(org) = org
        && token.starts_with(crate::store::platform::PLATFORM_TOKEN_PREFIX)
    {
        return match super::platform::org_caller(&state, &token, org).await {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                next.run(req).await
            }
            Err(resp) => resp,
        };
    }
    let principal = match state.store.authenticate_admin(&token).await {
        Ok(Some(p)) => p,
        Ok(None) => return AdminError::Unauthorized.into_response(),
        Err(e) => return AdminError::from(e).into_response(),
    };
    if org.is_some_and(|o| o != principal.scope.org_id()) {
        return problem(StatusCode::NOT_FOUND, "no such organization");
    }
    if let Err(wait) = state
        .rate
        .check(crate::rate::Limit::Admin, &principal.token_id)
    {
        return super::error::too_many_problem(wait);
    }
    match Caller::authenticated(principal) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// The caller [`authenticate`] put on the request, made from an admin token: every admin handler
/// takes one, so none can run without an authenticated organization scope and a parsed role. A
/// platform token is refused here (403): it is not an organization admin token, and reaches only
/// the operations that take an [`OrgCaller`].
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let OrgCaller(caller) = OrgCaller::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if caller.authority() == svc::Authority::Platform {
            return Err(problem(
                StatusCode::FORBIDDEN,
                "a platform token is not an organization admin token; mint one with \
                 POST /api/v1/orgs/{org}/admin-tokens",
            ));
        }
        Ok(caller)
    }
}

/// The caller of an operation the platform API shares with the admin API (the organization
/// itself, its admin tokens, directories and connections): an admin token of the organization,
/// or a platform token acting as its owner.
pub struct OrgCaller(pub Caller);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for OrgCaller {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(OrgCaller)
            .ok_or(AdminError::Unauthorized)
    }
}

// ---- paging ------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next` value of the previous page.
    pub after: Option<String>,
    /// 1-1000, default 100.
    pub limit: Option<i64>,
}

impl PageParams {
    pub(super) fn limit(&self) -> ApiResult<i64> {
        match self.limit {
            None => Ok(100),
            Some(l) if (1..=1000).contains(&l) => Ok(l),
            Some(_) => Err(AdminError::Invalid("limit must be 1-1000".into())),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

pub(super) fn page<T>(items: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Page<T> {
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(key))
        .flatten();
    Page { items, next }
}

/// A list that fits in one page: the same shape as a [`Page`], with `next` always null, so that
/// every list of the API reads the same way.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
    /// Always null: the whole list is in `items`.
    pub next: Option<String>,
}

/// Query parameters whose every rejection (a malformed number, say) is an RFC 9457 problem, not the
/// framework's plain-text answer.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(problem(
                StatusCode::BAD_REQUEST,
                format!("invalid query string: {}", e.body_text()),
            )),
        }
    }
}

// ---- organization ------------------------------------------------------------------------------

/// Get the organization
#[utoipa::path(get, path = "/api/v1/orgs/{org}", tag = "organization",
    security(("admin_token" = []), ("platform_token" = [])), params(("org" = String, Path)), responses((status = 200, body = OrgDetails), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn get_org(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
) -> ApiResult<Json<OrgDetails>> {
    Ok(Json(svc::org_details(&s.store, &c).await?))
}

/// Count the seats in use
#[utoipa::path(get, path = "/api/v1/orgs/{org}/seats", tag = "organization",
    params(("org" = String, Path)), responses((status = 200, body = Seats)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn seats(State(s): State<AppState>, c: Caller) -> ApiResult<Json<Seats>> {
    Ok(Json(svc::seats(&s.store, &c).await?))
}

/// Update the organization
#[utoipa::path(patch, path = "/api/v1/orgs/{org}", tag = "organization", request_body = OrgPatch,
    description = "Fields left out are kept. `seat_limit` takes an org owner, admin or billing admin token, `default_role` an owner or admin; `name` and `external_key` a platform token only (403 for any admin token). A name or key another organization has is 409. The owner changes only by `POST /owner`.",
    security(("admin_token" = []), ("platform_token" = [])), params(("org" = String, Path)), responses((status = 200, body = Changes), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn patch_org(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
    ApiJson(body): ApiJson<OrgPatch>,
) -> ApiResult<Json<Changes>> {
    Ok(Json(svc::update_org(&s.store, &c, &body).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerTransfer {
    pub user_id: String,
}

/// Transfer ownership of the organization
#[utoipa::path(post, path = "/api/v1/orgs/{org}/owner", tag = "organization", request_body = OwnerTransfer,
    params(("org" = String, Path)), responses((status = 200, body = Changes), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn transfer_owner(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<OwnerTransfer>,
) -> ApiResult<Json<Changes>> {
    Ok(Json(
        svc::transfer_owner(&s.store, &c, &body.user_id).await?,
    ))
}

// ---- sub-accounts and projects -----------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameInput {
    pub name: String,
}

/// List sub-accounts
#[utoipa::path(get, path = "/api/v1/orgs/{org}/sub-accounts", tag = "sub-accounts",
    params(("org" = String, Path)), responses((status = 200, body = Items<SubAccount>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_sub_accounts(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<Items<SubAccount>>> {
    let items = svc::list_sub_accounts(&s.store, &c).await?;
    Ok(Json(Items { items, next: None }))
}

/// Create a sub-account
#[utoipa::path(post, path = "/api/v1/orgs/{org}/sub-accounts", tag = "sub-accounts", request_body = NameInput,
    params(("org" = String, Path)), responses((status = 201, body = SubAccount), (status = 409, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn create_sub_account(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NameInput>,
) -> ApiResult<(StatusCode, Json<SubAccount>)> {
    let sa = svc::create_sub_account(&s.store, &c, &body.name).await?;
    Ok((StatusCode::CREATED, Json(sa)))
}

/// Get a sub-account
#[utoipa::path(get, path = "/api/v1/orgs/{org}/sub-accounts/{id}", tag = "sub-accounts",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = SubAccount)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), sub_account_id = id))]
pub async fn get_sub_account(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<SubAccount>> {
    Ok(Json(svc::get_sub_account(&s.store, &c, &id).await?))
}

/// Delete a sub-account
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/sub-accounts/{id}", tag = "sub-accounts",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 409, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), sub_account_id = id))]
pub async fn delete_sub_account(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    svc::delete_sub_account(&s.store, &c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a sub-account's projects
#[utoipa::path(get, path = "/api/v1/orgs/{org}/sub-accounts/{id}/projects", tag = "sub-accounts",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = Items<Project>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), sub_account_id = id))]
pub async fn list_projects(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Items<Project>>> {
    Ok(Json(Items {
        items: svc::list_projects(&s.store, &c, &id).await?,
        next: None,
    }))
}

/// Create a project in a sub-account
#[utoipa::path(post, path = "/api/v1/orgs/{org}/sub-accounts/{id}/projects", tag = "sub-accounts", request_body = NameInput,
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 201, body = Project)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), sub_account_id = id))]
pub async fn create_project(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<NameInput>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let project = svc::create_project(&s.store, &c, &id, &body.name).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// Delete a project
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/sub-accounts/{id}/projects/{project}", tag = "sub-accounts",
    params(("org" = String, Path), ("id" = String, Path), ("project" = String, Path)), responses((status = 204)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), sub_account_id = id, project_id = project))]
pub async fn delete_project(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id, project)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    svc::delete_project(&s.store, &c, &id, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- directories -------------------------------------------------------------------------------

/// List SCIM directories
#[utoipa::path(get, path = "/api/v1/orgs/{org}/directories", tag = "directories",
    security(("admin_token" = []), ("platform_token" = [])), params(("org" = String, Path)), responses((status = 200, body = Items<DirectoryRecord>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_directories(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
) -> ApiResult<Json<Items<DirectoryRecord>>> {
    Ok(Json(Items {
        items: svc::list_directories(&s.store, &c).await?,
        next: None,
    }))
}

/// Create a SCIM directory
#[utoipa::path(post, path = "/api/v1/orgs/{org}/directories", tag = "directories", request_body = NameInput,
    params(("org" = String, Path)), responses((status = 201, body = NewDirectory)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn create_directory(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NameInput>,
) -> ApiResult<(StatusCode, Json<NewDirectory>)> {
    let created = svc::create_directory(&s.store, &c, &s.public_url, &body.name).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List a directory's SCIM tokens
#[utoipa::path(get, path = "/api/v1/orgs/{org}/directories/{id}/tokens", tag = "directories",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = Items<TokenInfo>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), directory_id = id))]
pub async fn list_directory_tokens(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Items<TokenInfo>>> {
    Ok(Json(Items {
        items: svc::list_directory_tokens(&s.store, &c, &id).await?,
        next: None,
    }))
}

/// Issue a new SCIM token for a directory
#[utoipa::path(post, path = "/api/v1/orgs/{org}/directories/{id}/tokens", tag = "directories",
    description = "Rotates: a new token, the previous one stays valid until revoked.",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 201, body = NewToken)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), directory_id = id))]
pub async fn rotate_directory_token(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(svc::rotate_directory_token(&s.store, &c, &id).await?),
    ))
}

/// Revoke a SCIM token
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/directories/{id}/tokens/{token}", tag = "directories",
    params(("org" = String, Path), ("id" = String, Path), ("token" = String, Path)), responses((status = 204)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), directory_id = id, token_id = token))]
pub async fn revoke_directory_token(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id, token)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    svc::revoke_directory_token(&s.store, &c, &id, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- groups and users --------------------------------------------------------------------------

/// List groups
#[utoipa::path(get, path = "/api/v1/orgs/{org}/groups", tag = "users",
    params(("org" = String, Path), PageParams), responses((status = 200, body = Page<OrgGroup>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_groups(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<OrgGroup>>> {
    let limit = q.limit()?;
    let items = svc::list_groups(&s.store, &c, q.after.as_deref().unwrap_or(""), limit).await?;
    Ok(Json(page(items, limit, |g| g.id.clone())))
}

/// Get a group
#[utoipa::path(get, path = "/api/v1/orgs/{org}/groups/{id}", tag = "users",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = GroupDetails)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), group_id = id))]
pub async fn get_group(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<GroupDetails>> {
    Ok(Json(svc::get_group(&s.store, &c, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// Only the user with this userName (exact, case-insensitive).
    #[serde(rename = "userName")]
    pub user_name: Option<String>,
    /// Only users with this email (exact, case-insensitive): their userName, or an email of one
    /// of their SCIM users.
    pub email: Option<String>,
    /// Search: users whose userName, display name or any email contains this text (ASCII
    /// letters without case; a prefix is a part too). Blank finds everyone; at most 256
    /// characters.
    pub q: Option<String>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
    /// 1-1000, default 100.
    pub limit: Option<i64>,
}

/// List users
#[utoipa::path(get, path = "/api/v1/orgs/{org}/users", tag = "users",
    params(("org" = String, Path), UserListParams), responses((status = 200, body = Page<OrgUser>), (status = 400, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_users(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<UserListParams>,
) -> ApiResult<Json<Page<OrgUser>>> {
    let limit = PageParams {
        after: None,
        limit: q.limit,
    }
    .limit()?;
    let filter = UserQuery {
        user_name: q.user_name,
        email: q.email,
        search: q.q,
    };
    let after = q.after.as_deref().unwrap_or("");
    let items = svc::list_users(&s.store, &c, &filter, after, limit).await?;
    Ok(Json(page(items, limit, |u| u.id.clone())))
}

/// Get a user
#[utoipa::path(get, path = "/api/v1/orgs/{org}/users/{id}", tag = "users",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = UserDetail)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), user_id = id))]
pub async fn get_user(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<UserDetail>> {
    Ok(Json(svc::get_user(&s.store, &c, &id).await?))
}

/// Explain a user's effective access
#[utoipa::path(get, path = "/api/v1/orgs/{org}/users/{id}/access", tag = "users",
    description = "The user's effective access in every sub-account, with the reason for each grant.",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = AccessView)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), user_id = id))]
pub async fn user_access(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<AccessView>> {
    Ok(Json(svc::user_access(&s.store, &c, &id).await?))
}

/// List a user's sign-in sessions
#[utoipa::path(get, path = "/api/v1/orgs/{org}/users/{id}/sessions", tag = "users",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = Items<SessionInfo>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), user_id = id))]
pub async fn list_sessions(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Items<SessionInfo>>> {
    Ok(Json(Items {
        items: svc::list_sessions(&s.store, &c, &id).await?,
        next: None,
    }))
}

/// List a user's SCIM users
#[utoipa::path(get, path = "/api/v1/orgs/{org}/users/{id}/scim-users", tag = "users",
    description = "The SCIM users that make up this person, one per directory that provisioned them (directory id and name, SCIM id, userName, active). Only active ones give access.",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = Items<LinkedScimUser>), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), user_id = id))]
pub async fn list_user_scim_users(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Items<LinkedScimUser>>> {
    Ok(Json(Items {
        items: svc::user_scim_users(&s.store, &c, &id).await?,
        next: None,
    }))
}

/// Sign a user out everywhere
#[utoipa::path(post, path = "/api/v1/orgs/{org}/users/{id}/sessions/revoke", tag = "users",
    description = "Revokes every session of the user: their cookies, and the codes and access tokens issued from them, stop working at the next request. Recorded in the audit log (`revoke_sessions`, with how many), even when there was none. Org owner and admins.",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = SessionsRevoked), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), user_id = id))]
pub async fn revoke_user_sessions(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<SessionsRevoked>> {
    Ok(Json(svc::revoke_user_sessions(&s.store, &c, &id).await?))
}

// ---- grants made by hand -----------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantInput {
    pub grant: Grant,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantCreated {
    pub grant: GrantRecord,
    pub changes: Vec<crate::service::provision::UserOutcome>,
}

/// List a user's grants made by hand
#[utoipa::path(get, path = "/api/v1/orgs/{org}/users/{id}/grants", tag = "grants",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = Items<GrantRecord>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), user_id = id))]
pub async fn list_grants(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<Items<GrantRecord>>> {
    let items = svc::list_grants(&s.store, &c, &id).await?;
    Ok(Json(Items { items, next: None }))
}

/// Grant access to a user by hand
#[utoipa::path(post, path = "/api/v1/orgs/{org}/users/{id}/grants", tag = "grants", request_body = GrantInput,
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 201, body = GrantCreated)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), user_id = id))]
pub async fn create_grant(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<GrantInput>,
) -> ApiResult<(StatusCode, Json<GrantCreated>)> {
    let (grant, changes) = svc::create_grant(&s.store, &c, &id, body.grant).await?;
    Ok((StatusCode::CREATED, Json(GrantCreated { grant, changes })))
}

/// Remove a grant made by hand
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/grants/{id}", tag = "grants",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 204)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), grant_id = id))]
pub async fn delete_grant(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    svc::delete_grant(&s.store, &c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- mapping rules -----------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RuleListParams {
    /// `true`: each rule also says how many active users it reaches now (`reach`).
    pub with_reach: Option<bool>,
}

/// List mapping rules
#[utoipa::path(get, path = "/api/v1/orgs/{org}/mappings", tag = "mappings",
    params(("org" = String, Path), RuleListParams), responses((status = 200, body = Items<RuleWithReach>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_rules(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<RuleListParams>,
) -> ApiResult<Json<Items<RuleWithReach>>> {
    let items = if q.with_reach == Some(true) {
        svc::list_rules_with_reach(&s.store, &c).await?
    } else {
        svc::list_rules(&s.store, &c)
            .await?
            .into_iter()
            .map(|rule| RuleWithReach { rule, reach: None })
            .collect()
    };
    Ok(Json(Items { items, next: None }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupSearchParams {
    /// A part of a SCIM group's display name or externalId, or of a claim value; blank finds
    /// every one. At most 256 characters.
    pub q: Option<String>,
    /// How many of each source: 1-1000, default 100.
    pub limit: Option<i64>,
}

/// Search the IdP groups a rule can name
#[utoipa::path(get, path = "/api/v1/orgs/{org}/mappings/groups", tag = "mappings",
    description = "The organization's SCIM groups whose display name (without case) or externalId contains `q` (`source: scim_group`), then the group-claim values its sign-ins brought that contain `q` (`source: claim`, with the connection and when it was last seen), each with the `matcher` a rule would use. Up to `limit` of each source.",
    params(("org" = String, Path), GroupSearchParams), responses((status = 200, body = Items<GroupChoice>), (status = 400, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn search_rule_groups(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<GroupSearchParams>,
) -> ApiResult<Json<Items<GroupChoice>>> {
    let limit = PageParams {
        after: None,
        limit: q.limit,
    }
    .limit()?;
    let items = svc::search_rule_groups(&s.store, &c, q.q.as_deref(), limit).await?;
    Ok(Json(Items { items, next: None }))
}

/// List the users a mapping rule reaches
#[utoipa::path(get, path = "/api/v1/orgs/{org}/mappings/{id}/reach", tag = "mappings",
    description = "How many active users the rule applies to now (`count`), and one page of them in id order, each with what in their groups or claims it matched. Page with `after` = `next`.",
    params(("org" = String, Path), ("id" = String, Path), PageParams), responses((status = 200, body = RuleReach), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), rule_id = id))]
pub async fn rule_reach(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<RuleReach>> {
    let limit = q.limit()?;
    let after = q.after.as_deref().unwrap_or("");
    Ok(Json(
        svc::rule_reach(&s.store, &c, &id, after, limit).await?,
    ))
}

/// Create a mapping rule
#[utoipa::path(post, path = "/api/v1/orgs/{org}/mappings", tag = "mappings", request_body = RuleInput,
    params(("org" = String, Path)), responses((status = 201, body = RuleChangeResult)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn create_rule(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(rule): ApiJson<RuleInput>,
) -> ApiResult<(StatusCode, Json<RuleChangeResult>)> {
    let r = svc::change_rule(&s.store, &c, &RuleChange::Create { rule }).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Get a mapping rule
#[utoipa::path(get, path = "/api/v1/orgs/{org}/mappings/{id}", tag = "mappings",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = RuleRecord)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), rule_id = id))]
pub async fn get_rule(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<RuleRecord>> {
    Ok(Json(svc::get_rule(&s.store, &c, &id).await?))
}

/// Replace a mapping rule
#[utoipa::path(put, path = "/api/v1/orgs/{org}/mappings/{id}", tag = "mappings", request_body = RuleInput,
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = RuleChangeResult)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), rule_id = id))]
pub async fn replace_rule(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
    ApiJson(rule): ApiJson<RuleInput>,
) -> ApiResult<Json<RuleChangeResult>> {
    let change = RuleChange::Update { id, rule };
    Ok(Json(svc::change_rule(&s.store, &c, &change).await?))
}

/// Delete a mapping rule
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/mappings/{id}", tag = "mappings",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = RuleChangeResult)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), rule_id = id))]
pub async fn delete_rule(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<RuleChangeResult>> {
    let change = RuleChange::Delete { id };
    Ok(Json(svc::change_rule(&s.store, &c, &change).await?))
}

/// Preview a mapping rule change
#[utoipa::path(post, path = "/api/v1/orgs/{org}/mappings/preview", tag = "mappings", request_body = svc::RuleChangeSchema,
    description = "Who would gain and who would lose which access if the change were applied; changes nothing.",
    params(("org" = String, Path)), responses((status = 200, body = RuleChangeResult)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn preview_rule(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(change): ApiJson<RuleChange>,
) -> ApiResult<Json<RuleChangeResult>> {
    Ok(Json(svc::preview_rule(&s.store, &c, &change).await?))
}

// ---- audit and events --------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Who did it: `cli`, `admin-token:{id}`, `platform-token:{id}`, `scim:{directory}`,
    /// `sso:{connection}`...
    pub actor: Option<String>,
    /// What was done, e.g. `sso.sign_in_failed` for failed sign-ins, `revoke_sessions`.
    pub operation: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// RFC 3339 date-time, inclusive (e.g. `2026-01-31T09:00:00Z`).
    pub since: Option<String>,
    /// RFC 3339 date-time, exclusive.
    pub until: Option<String>,
    pub after: Option<String>,
    pub limit: Option<i64>,
}

fn seq_cursor(after: Option<&str>) -> ApiResult<i64> {
    match after {
        None | Some("") => Ok(0),
        Some(a) => a
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| AdminError::Invalid(format!("invalid cursor {a:?}"))),
    }
}

fn time_param(name: &str, v: Option<&str>) -> ApiResult<Option<i64>> {
    v.map(|v| {
        crate::store::rfc3339::parse(v).map_err(|e| AdminError::Invalid(format!("{name}: {e}")))
    })
    .transpose()
}

/// Read the audit log
#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit", tag = "audit",
    description = "Oldest first; every filter narrows. A failed sign-in (`sso.sign_in_failed`) also has an `explanation`: what went wrong and what usually fixes it, in plain words.",
    params(("org" = String, Path), AuditParams), responses((status = 200, body = Page<AuditView>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn audit(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<Page<AuditView>>> {
    let limit = PageParams {
        after: None,
        limit: q.limit,
    }
    .limit()?;
    let filter = AuditFilter {
        actor: q.actor,
        operation: q.operation,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        after: seq_cursor(q.after.as_deref())?,
        before: None,
        limit,
        newest_first: false,
    };
    let items = svc::audit(&s.store, &c, &filter).await?;
    Ok(Json(page(items, limit, |e| e.entry.seq.to_string())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events of this type (`user.provisioned`, `access.granted`...).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub ty: Option<String>,
    /// Only events about this user.
    pub user_id: Option<String>,
    /// RFC 3339 date-time, inclusive.
    pub since: Option<String>,
    /// RFC 3339 date-time, exclusive.
    pub until: Option<String>,
    /// The `next` value of the previous page, or the `seq` of the last event processed.
    pub after: Option<String>,
    /// 1-1000, default 100.
    pub limit: Option<i64>,
}

/// Read the access change events
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events", tag = "audit",
    description = "Every access change, in commit order. Page with `after` = `next`; once `next` is null, poll with `after` = the `seq` of the last event processed. `type`, `user_id`, `since` and `until` narrow; an unknown type is a 400 naming the known ones.",
    params(("org" = String, Path), EventParams), responses((status = 200, body = Page<EventRecord>), (status = 400, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn events(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<EventParams>,
) -> ApiResult<Json<Page<EventRecord>>> {
    let limit = PageParams {
        after: None,
        limit: q.limit,
    }
    .limit()?;
    let ty =
        q.ty.as_deref()
            .map(|t| {
                t.parse::<EventType>()
                    .map_err(|e| AdminError::Invalid(format!("type: {e}")))
            })
            .transpose()?;
    let filter = EventFilter {
        after: seq_cursor(q.after.as_deref())?,
        limit,
        ty,
        user_id: q.user_id,
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        ..EventFilter::default()
    };
    let items = svc::events(&s.store, &c, &filter).await?;
    // Like every list, `next` is null on the last page; a consumer polls on with the `seq` of the
    // last event it processed, which every event carries.
    Ok(Json(page(items, limit, |e| e.seq.to_string())))
}

// ---- admin tokens ------------------------------------------------------------------------------

/// List admin tokens
#[utoipa::path(get, path = "/api/v1/orgs/{org}/admin-tokens", tag = "admin tokens",
    description = "Id, name, role, sub-account, creation, expiry and revocation of each token; never the secret. Org owner and admins only; an admin does not see owner tokens.",
    security(("admin_token" = []), ("platform_token" = [])), params(("org" = String, Path)), responses((status = 200, body = Page<AdminTokenInfo>), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_admin_tokens(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
) -> ApiResult<Json<Page<AdminTokenInfo>>> {
    let items = svc::list_admin_tokens(&s.store, &c).await?;
    Ok(Json(Page { items, next: None }))
}

/// Revoke an admin token
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/admin-tokens/{id}", tag = "admin tokens",
    description = "The token is refused from the next request on.",
    security(("admin_token" = []), ("platform_token" = [])), params(("org" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), token_id = id))]
pub async fn revoke_admin_token(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    svc::revoke_admin_token(&s.store, &c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- webhooks ----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    pub url: String,
}

/// List webhooks
#[utoipa::path(get, path = "/api/v1/orgs/{org}/webhooks", tag = "webhooks",
    params(("org" = String, Path)), responses((status = 200, body = Items<WebhookInfo>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<Items<WebhookInfo>>> {
    Ok(Json(Items {
        items: svc::list_webhooks(&s.store, &c).await?,
        next: None,
    }))
}

/// Register a webhook
#[utoipa::path(post, path = "/api/v1/orgs/{org}/webhooks", tag = "webhooks", request_body = WebhookInput,
    params(("org" = String, Path)), responses((status = 201, body = WebhookCreated)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn create_webhook(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<WebhookInput>,
) -> ApiResult<(StatusCode, Json<WebhookCreated>)> {
    let created = svc::create_webhook(&s.store, &c, &s.outbound, &body.url).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Delete a webhook
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/webhooks/{id}", tag = "webhooks",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 204)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), webhook_id = id))]
pub async fn delete_webhook(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    svc::delete_webhook(&s.store, &c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- OpenAPI -----------------------------------------------------------------------------------

#[derive(OpenApi)]
#[openapi(
    info(title = "idbridge admin API", description = "Organizations, sub-accounts, IdP-group to role mappings, grants, audit and events. Two kinds of bearer token: an organization's admin token (`idba_...`) reaches that organization only, within its role; a platform token (`idbp_...`, minted with `idbridge platform-token create`) is the SaaS's backend and reaches every organization, but only the operations tagged `platform` and those whose security lists `platform_token` (the organization itself, its admin tokens, directories and connections). Deleting an organization (`DELETE /api/v1/orgs/{org}`) deletes everything it owns: its directories, SCIM users and groups, users, grants, sessions, rules, admin tokens, webhooks and events, connections and domains; its tokens and sessions stop working at once; its audit log is kept."),
    paths(
        get_org, patch_org, seats, transfer_owner,
        list_sub_accounts, create_sub_account, get_sub_account, delete_sub_account,
        list_projects, create_project, delete_project,
        list_directories, create_directory, list_directory_tokens, rotate_directory_token, revoke_directory_token,
        list_groups, get_group, list_users, get_user, user_access, list_sessions,
        list_user_scim_users, revoke_user_sessions,
        super::admin_sso::revoke_session,
        super::admin_sso::create_connection, super::admin_sso::list_connections,
        super::admin_sso::get_connection, super::admin_sso::patch_connection,
        super::admin_sso::delete_connection,
        super::admin_sso::add_domain, super::admin_sso::verify_domain, super::admin_sso::list_domains, super::admin_sso::patch_domain, super::admin_sso::delete_domain,
        super::admin_sso::create_client, super::admin_sso::list_clients, super::admin_sso::revoke_client,
        list_grants, create_grant, delete_grant,
        list_rules, create_rule, get_rule, replace_rule, delete_rule, preview_rule,
        search_rule_groups, rule_reach,
        audit, events,
        list_webhooks, create_webhook, delete_webhook,
        list_admin_tokens, revoke_admin_token,
        super::platform::list_orgs, super::platform::create_org, super::platform::delete_org,
        super::platform::mint_admin_token, super::platform::delete_directory,
        super::platform::create_portal_link,
    ),
    modifiers(&BearerAuth, &RateLimited),
    security(("admin_token" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "platform_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every operation takes a token, and every token has a rate limit: each may answer 429.
struct RateLimited;

impl utoipa::Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{Content, Ref, ResponseBuilder, header::HeaderBuilder};
        let too_many = ResponseBuilder::new()
            .description("The token's rate limit is spent; retry after `Retry-After` seconds")
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("seconds to wait before the next request"))
                    .build(),
            )
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .insert("429".into(), too_many.clone().into());
            }
        }
    }
}

/// The admin API's OpenAPI document, as served at `/api/v1/openapi.json` and printed by
/// `idbridge openapi`.
pub fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}))
}

#[tracing::instrument(skip_all)]
pub async fn openapi() -> Json<Value> {
    Json(document())
}

#[tracing::instrument(skip_all)]
pub async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "no such endpoint")
}
