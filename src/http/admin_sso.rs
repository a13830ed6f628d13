//! The admin API's single sign-on part: connections, verified domains, the organization's OpenID
//! clients, and revoking sessions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::admin::{ApiJson, ApiResult, Items, OrgCaller};
use super::error::Problem;
use crate::app::AppState;
use crate::service::admin::{self, Caller, Client, Domain};
use crate::service::sso::{self, ConnectionInput, ConnectionPatch, ConnectionView};
use crate::store::sso::Connection;

fn view(state: &AppState, connection: Connection) -> ConnectionView {
    sso::connection_view(&state.public_url, connection)
}

/// Create a single sign-on connection
#[utoipa::path(post, path = "/api/v1/orgs/{org}/sso/connections", tag = "sso", request_body = ConnectionInput,
    description = "Creates an OIDC or SAML connection to the organization's IdP. The response has the addresses to give the IdP (redirect URI, or SP entity id, ACS and metadata URLs). An OIDC issuer is checked against its discovery document (`{issuer}/.well-known/openid-configuration` must name exactly that issuer; 400 saying how they differ, or why discovery failed). Every URL is fetched under the outbound policy: https, public addresses only (checked on the resolved address), no redirects. A SAML connection may be created without the IdP's details (`\"saml\": {}`): it is then `incomplete`, lists what is `missing`, and signs nobody in until a PATCH gives them.",
    params(("org" = String, Path)), responses((status = 201, body = ConnectionView), (status = 400, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn create_connection(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<ConnectionInput>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let conn = sso::create_connection(&s.store, &c, &s.outbound, body).await?;
    Ok((StatusCode::CREATED, Json(view(&s, conn))))
}

/// List single sign-on connections
#[utoipa::path(get, path = "/api/v1/orgs/{org}/sso/connections", tag = "sso",
    security(("admin_token" = []), ("platform_token" = [])), params(("org" = String, Path)), responses((status = 200, body = Items<ConnectionView>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_connections(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
) -> ApiResult<Json<Items<ConnectionView>>> {
    let items = admin::list_connections(&s.store, &c).await?;
    Ok(Json(Items {
        items: items.into_iter().map(|conn| view(&s, conn)).collect(),
        next: None,
    }))
}

/// Get a single sign-on connection
#[utoipa::path(get, path = "/api/v1/orgs/{org}/sso/connections/{id}", tag = "sso",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = ConnectionView), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), connection_id = id))]
pub async fn get_connection(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(view(
        &s,
        admin::get_connection(&s.store, &c, &id).await?,
    )))
}

/// Update a single sign-on connection
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/sso/connections/{id}", tag = "sso", request_body = ConnectionPatch,
    description = "Changes a connection: its name, switches, or its settings. SAML settings merge into the stored ones: `metadata_xml` or `metadata_url` set the IdP's entity id, SSO URL and certificates, and each field given replaces its stored value (to rotate IdP certificates give the new list, old and new while both are valid). OIDC settings are replaced whole, and their issuer checked against its discovery document again.",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = ConnectionView), (status = 400, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), connection_id = id))]
pub async fn patch_connection(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ConnectionPatch>,
) -> ApiResult<Json<ConnectionView>> {
    let conn = sso::update_connection(&s.store, &c, &s.outbound, &id, body).await?;
    Ok(Json(view(&s, conn)))
}

/// Delete a single sign-on connection
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/sso/connections/{id}", tag = "sso",
    security(("admin_token" = []), ("platform_token" = [])), params(("org" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), connection_id = id))]
pub async fn delete_connection(
    State(s): State<AppState>,
    OrgCaller(c): OrgCaller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    admin::delete_connection(&s.store, &c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    pub domain: String,
    /// The connection users of this domain sign in with; by default the organization's first.
    pub connection_id: Option<String>,
}

/// Claim an email domain
#[utoipa::path(post, path = "/api/v1/orgs/{org}/domains", tag = "sso", request_body = DomainInput,
    description = "Claims an email domain for the organization. The claim routes nothing until it is verified: publish the returned `verification` TXT record, then call `…/domains/{domain}/verify`. A domain another organization verified cannot be claimed.",
    params(("org" = String, Path)), responses((status = 201, body = Domain), (status = 409, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn add_domain(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<DomainInput>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    let d = admin::add_domain(&s.store, &c, &body.domain, body.connection_id.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

/// Verify a domain's DNS TXT record
#[utoipa::path(post, path = "/api/v1/orgs/{org}/domains/{domain}/verify", tag = "sso",
    description = "Looks up the claim's TXT record in DNS; when it holds the expected text, the domain is verified and sends its users to the organization's IdP (`/sso/start?email=`, `login_hint`). 409 when the record is not (yet) there or another organization verified the domain first; 503 when DNS did not answer.",
    params(("org" = String, Path), ("domain" = String, Path)),
    responses((status = 200, body = Domain), (status = 404, body = Problem), (status = 409, body = Problem), (status = 503, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), domain = domain))]
pub async fn verify_domain(
    State(s): State<AppState>,
    c: Caller,
    Path((_, domain)): Path<(String, String)>,
) -> ApiResult<Json<Domain>> {
    Ok(Json(
        sso::verify_domain(&s.store, &s.dns, &c, &domain).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainPatch {
    /// The connection the domain's users sign in with, one of the organization's; null for the
    /// organization's first.
    pub connection_id: Option<String>,
}

/// Move a domain to another connection
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/domains/{domain}", tag = "sso", request_body = DomainPatch,
    description = "Sends the domain's users to another connection of the same organization. A verified domain stays verified: no new TXT record is needed. 400 for a connection of another organization, 409 for a connection that is incomplete.",
    params(("org" = String, Path), ("domain" = String, Path)),
    responses((status = 200, body = Domain), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), domain = domain))]
pub async fn patch_domain(
    State(s): State<AppState>,
    c: Caller,
    Path((_, domain)): Path<(String, String)>,
    ApiJson(body): ApiJson<DomainPatch>,
) -> ApiResult<Json<Domain>> {
    Ok(Json(
        sso::move_domain(&s.store, &c, &domain, body.connection_id.as_deref()).await?,
    ))
}

/// List email domains
#[utoipa::path(get, path = "/api/v1/orgs/{org}/domains", tag = "sso",
    params(("org" = String, Path)), responses((status = 200, body = Items<Domain>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_domains(State(s): State<AppState>, c: Caller) -> ApiResult<Json<Items<Domain>>> {
    Ok(Json(Items {
        items: admin::list_domains(&s.store, &c).await?,
        next: None,
    }))
}

/// Remove an email domain
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/domains/{domain}", tag = "sso",
    params(("org" = String, Path), ("domain" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), domain = domain))]
pub async fn delete_domain(
    State(s): State<AppState>,
    c: Caller,
    Path((_, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    admin::delete_domain(&s.store, &c, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    pub name: String,
    /// Exact URIs the application receives codes at (https, or http on loopback for development).
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientCreated {
    pub client: Client,
    /// The client secret, shown once.
    pub client_secret: String,
}

/// Register an OpenID Connect client
#[utoipa::path(post, path = "/api/v1/orgs/{org}/clients", tag = "sso", request_body = ClientInput,
    description = "Registers an application that signs the organization's users in through idbridge (OpenID Connect, code flow with PKCE).",
    params(("org" = String, Path)), responses((status = 201, body = ClientCreated), (status = 400, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn create_client(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<ClientInput>,
) -> ApiResult<(StatusCode, Json<ClientCreated>)> {
    let (client, client_secret) =
        admin::create_client(&s.store, &c, &body.name, &body.redirect_uris).await?;
    Ok((
        StatusCode::CREATED,
        Json(ClientCreated {
            client,
            client_secret,
        }),
    ))
}

/// List OpenID Connect clients
#[utoipa::path(get, path = "/api/v1/orgs/{org}/clients", tag = "sso",
    params(("org" = String, Path)), responses((status = 200, body = Items<Client>)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id()))]
pub async fn list_clients(State(s): State<AppState>, c: Caller) -> ApiResult<Json<Items<Client>>> {
    Ok(Json(Items {
        items: admin::list_clients(&s.store, &c).await?,
        next: None,
    }))
}

/// Revoke an OpenID Connect client
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/clients/{id}", tag = "sso",
    description = "Revokes a client and every access token it holds.",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), client_id = id))]
pub async fn revoke_client(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    admin::revoke_client(&s.store, &c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a sign-in session
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/sessions/{id}", tag = "users",
    description = "Signs a session out: its cookie and the access tokens issued from it stop working.",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(org_id = %c.scope().org_id(), session_id = id))]
pub async fn revoke_session(
    State(s): State<AppState>,
    c: Caller,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    admin::revoke_session(&s.store, &c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
