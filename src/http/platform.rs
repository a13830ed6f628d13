//! The platform API: what the SaaS's backend calls with a platform token (`idbp_...`) to create,
//! find, change and delete organizations, mint their admin tokens, and remove their directories
//! and connections. `/api/v1/orgs` itself takes a platform token only; under
//! `/api/v1/orgs/{org}`, the operations the platform shares with the admin API take either
//! token ([`OrgCaller`]), and the rest of the admin API refuses a platform token.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use serde::Deserialize;

use super::admin::{ApiJson, ApiQuery, ApiResult, OrgCaller, Page, page};
use super::error::{Problem, problem, unauthorized};
use crate::app::AppState;
use crate::service::admin::{
    self as svc, AdminTokenCreated, AdminTokenInput, Caller, DirectoryDeleted, NewOrg, OrgDetails,
};
use crate::service::console::{self as console_svc, PortalLink, PortalLinkInput};
use crate::service::platform::{self as platform_svc, Platform};

const UNAUTHORIZED: &str = "a valid platform token is required (Authorization: Bearer idbp_...)";

/// The routes under `/api/v1/orgs` that only a platform token reaches.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs", get(list_orgs).post(create_org))
        .route_layer(middleware::from_fn_with_state(state, authenticate))
}

/// A platform token's requests share one allowance, on the admin API's limit, whichever
/// organization they act on.
fn spend(state: &AppState, platform: &Platform) -> Result<(), crate::rate::RetryAfter> {
    let key = format!("platform:{}", platform.token_id());
    state.rate.check(crate::rate::Limit::Admin, &key)
}

/// A platform token acting on organization `org` (404 when there is no such organization), for
/// the admin API's authentication to put on the request.
pub(super) async fn org_caller(
    state: &AppState,
    token: &str,
    org: &str,
) -> Result<Caller, Response> {
    match platform_svc::authenticate(&state.store, token).await {
        Ok(Some(platform)) => {
            spend(state, &platform).map_err(super::error::too_many_problem)?;
            platform_svc::org_caller(&state.store, &platform, org)
                .await
                .map_err(IntoResponse::into_response)
        }
        Ok(None) => Err(unauthorized(UNAUTHORIZED)),
        Err(e) => Err(e.into_response()),
    }
}

/// RFC 6750 §3.1: no token or an invalid one is 401; a valid token of another kind (an
/// organization's admin token) is 403, since it can never manage organizations.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = super::extract::bearer(req.headers()) else {
        return unauthorized(UNAUTHORIZED);
    };
    match platform_svc::authenticate(&state.store, &token).await {
        Ok(Some(platform)) => {
            if let Err(wait) = spend(&state, &platform) {
                return super::error::too_many_problem(wait);
            }
            req.extensions_mut().insert(platform);
            return next.run(req).await;
        }
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    match state.store.authenticate_admin(&token).await {
        Ok(Some(_)) => problem(
            StatusCode::FORBIDDEN,
            "an organization admin token cannot list or create organizations; use a platform token",
        ),
        Ok(None) => unauthorized(UNAUTHORIZED),
        Err(e) => svc::AdminError::from(e).into_response(),
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Platform {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Platform>()
            .cloned()
            .ok_or_else(|| unauthorized(UNAUTHORIZED))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgListParams {
    /// The `next` value of the previous page.
    pub after: Option<String>,
    /// 1-1000, default 100.
    pub limit: Option<i64>,
    /// Only the organization with this key (exact): a page of one, or none.
    pub external_key: Option<String>,
}

/// List organizations
#[utoipa::path(get, path = "/api/v1/orgs", tag = "platform",
    description = "Every organization in creation order, paged with `after` and `limit`; with `external_key`, the one organization the SaaS knows by that key (an empty page when none has it). A platform token only: an organization admin token is refused with 403.",
    params(OrgListParams), security(("platform_token" = [])),
    responses((status = 200, body = Page<OrgDetails>), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn list_orgs(
    State(s): State<AppState>,
    platform: Platform,
    ApiQuery(q): ApiQuery<OrgListParams>,
) -> ApiResult<Json<Page<OrgDetails>>> {
    let limit = super::admin::PageParams {
        after: None,
        limit: q.limit,
    }
    .limit()?;
    let items = platform_svc::list_orgs(
        &s.store,
        &platform,
        q.after.as_deref().unwrap_or(""),
        limit,
        q.external_key.as_deref(),
    )
    .await?;
    Ok(Json(page(items, limit, |o| o.id.clone())))
}

/// Create an organization
#[utoipa::path(post, path = "/api/v1/orgs", tag = "platform", request_body = NewOrg,
    description = "With its owner when `owner_email` is given (a person of the organization at once, inactive and taking no seat until SCIM or a sign-in brings them), its key in the SaaS and its seat limit, all in one transaction. A name or key another organization has is 409. Recorded in the new organization's audit log as `platform-token:{id}`.",
    security(("platform_token" = [])),
    responses((status = 201, body = OrgDetails), (status = 400, body = Problem), (status = 409, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn create_org(
    State(s): State<AppState>,
    platform: Platform,
    ApiJson(body): ApiJson<NewOrg>,
) -> ApiResult<Response> {
    let created = svc::create_org(&s.store, &body, &platform.actor()).await?;
    let caller = platform_svc::org_caller(&s.store, &platform, &created.org.id).await?;
    let org = svc::org_details(&s.store, &caller).await?;
    let location = format!("{}/api/v1/orgs/{}", s.public_url, org.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(org),
    )
        .into_response())
}

/// Delete an organization
#[utoipa::path(delete, path = "/api/v1/orgs/{org}", tag = "platform",
    description = "Deletes the organization and everything it owns, in one transaction: its directories with their SCIM tokens, users, groups and memberships; its sub-accounts and projects; its users with their grants, claims and sign-in sessions (and the codes and access tokens issued for those sessions); its mapping rules; its admin tokens; its webhooks and undelivered events; its SSO connections, sign-ins in flight and domains; its own OAuth clients. Every one of its tokens and sessions is refused from the next request on. Its audit log is kept, with this deletion recorded in it. A platform token only (403 for any admin token).",
    params(("org" = String, Path)), security(("platform_token" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn delete_org(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
) -> ApiResult<StatusCode> {
    platform_svc::delete_org(&s.store, &c).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mint an admin token
#[utoipa::path(post, path = "/api/v1/orgs/{org}/admin-tokens", tag = "admin tokens", request_body = AdminTokenInput,
    description = "The secret (`idba_...`) is in this answer only; the token is stored hashed. A platform token only (an admin token cannot mint admin tokens).",
    params(("org" = String, Path)), security(("platform_token" = [])),
    responses((status = 201, body = AdminTokenCreated), (status = 400, body = Problem), (status = 403, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn mint_admin_token(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
    ApiJson(body): ApiJson<AdminTokenInput>,
) -> ApiResult<(StatusCode, Json<AdminTokenCreated>)> {
    let created = svc::mint_admin_token(&s.store, &c, &body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Delete a directory
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/directories/{id}", tag = "directories",
    description = "Deletes the directory with its SCIM tokens, users and groups, and recomputes everyone it provisioned as if the IdP had deleted them: a person no other directory provisions is deprovisioned (derived grants removed, sessions revoked, events written). Refused with 409 when it would deprovision the owner. An org owner or admin token, or a platform token.",
    params(("org" = String, Path), ("id" = String, Path)),
    security(("admin_token" = []), ("platform_token" = [])),
    responses((status = 200, body = DirectoryDeleted), (status = 404, body = Problem), (status = 409, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), directory_id = id))]
pub async fn delete_directory(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<DirectoryDeleted>> {
    Ok(Json(svc::delete_directory(&s.store, &c, &id).await?))
}

/// Make a portal link
#[utoipa::path(post, path = "/api/v1/orgs/{org}/portal-links", tag = "platform", request_body = PortalLinkInput,
    description = "A single-use link, valid five minutes, that the SaaS hands the organization's IT admin: opening it starts a console session (one hour, HttpOnly cookie) of this organization only, limited to the pages of `intent` (`sso`: the SSO set-up wizard and test sign-in; `scim`: directories and their tokens; `domains`; `mapping`; `activity`). The console's back link leads to `return_url`. The link is in this answer only (stored hashed); making and opening it are recorded in the organization's audit log. A platform token only (403 for any admin token).",
    params(("org" = String, Path)), security(("platform_token" = [])),
    responses((status = 201, body = PortalLink), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn create_portal_link(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
    ApiJson(body): ApiJson<PortalLinkInput>,
) -> ApiResult<(StatusCode, Json<PortalLink>)> {
    let link = console_svc::create_portal_link(
        &s.store,
        &c,
        &s.public_url,
        &body,
        console_svc::LINK_VALIDITY,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(link)))
}
