//! The admin API's single sign-on part: connections, verified domains, the organization's OpenID
//! clients, and revoking sessions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::admin::{ApiJson, ApiResult, Items, Problem, caller};
use crate::app::AppState;
use crate::service::admin::{Action, AdminError};
use crate::sso::connection::{
    MAX_METADATA_BYTES, OidcSettings, SamlSettings, SettingsError, parse_idp_metadata,
};
use crate::store::admin::AdminPrincipal;
use crate::store::sso::{Client, Connection, ConnectionWrite, Domain};

/// An OIDC connection's settings as the admin gives them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcInput {
    #[serde(flatten)]
    pub settings: OidcSettings,
    /// Stored sealed; never returned.
    pub client_secret: Option<String>,
}

/// A SAML connection's settings: the IdP's metadata (XML, or an https URL to fetch it from), or
/// its entity id, SSO URL and certificates given one by one. Explicit fields win over metadata.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlInput {
    pub metadata_xml: Option<String>,
    pub metadata_url: Option<String>,
    pub idp_entity_id: Option<String>,
    pub idp_sso_url: Option<String>,
    pub idp_certificates: Option<Vec<String>>,
    #[serde(default)]
    pub idp_initiated: bool,
    pub clock_skew_seconds: Option<i64>,
    pub sp_entity_id: Option<String>,
    pub email_attribute: Option<String>,
    pub name_attribute: Option<String>,
    pub groups_attribute: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    pub name: String,
    /// Just-in-time provisioning (off by default). Never applies while a SCIM directory manages
    /// the organization.
    #[serde(default)]
    pub jit: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub oidc: Option<OidcInput>,
    pub saml: Option<SamlInput>,
}

fn yes() -> bool {
    true
}

/// A partial update: what is given replaces what is stored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    pub name: Option<String>,
    pub jit: Option<bool>,
    pub enabled: Option<bool>,
    pub oidc: Option<OidcInput>,
    pub saml: Option<SamlInput>,
}

/// A connection and the addresses the IdP's admin needs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    #[serde(flatten)]
    pub connection: Connection,
    #[schema(value_type = Object)]
    pub endpoints: Value,
}

fn view(state: &AppState, connection: Connection) -> ConnectionView {
    let base = &state.public_url;
    let id = &connection.id;
    let endpoints = match connection.kind.as_str() {
        "saml" => json!({
            "sp_entity_id": connection.config.get("sp_entity_id").and_then(Value::as_str)
                .map(str::to_string).unwrap_or_else(|| format!("{base}/sso/saml/{id}")),
            "acs_url": format!("{base}/sso/saml/{id}/acs"),
            "sp_metadata_url": format!("{base}/sso/saml/{id}/metadata"),
            "start_url": format!("{base}/sso/{id}/start"),
        }),
        _ => json!({
            "redirect_uri": format!("{base}/sso/oidc/callback"),
            "start_url": format!("{base}/sso/{id}/start"),
        }),
    };
    ConnectionView {
        connection,
        endpoints,
    }
}

fn invalid(e: impl std::fmt::Display) -> AdminError {
    AdminError::Invalid(e.to_string())
}

/// Fetches IdP metadata from an https URL (no redirects, bounded size and time).
async fn fetch_metadata(url: &str, allow_private: bool) -> Result<String, AdminError> {
    crate::webhook::check_url(url, allow_private)
        .map_err(|e| invalid(format!("metadata_url: {e}")))?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|_| AdminError::Internal)?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| invalid(format!("metadata_url: {e}")))?;
    if !resp.status().is_success() {
        return Err(invalid(format!("metadata_url answered {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| invalid(format!("metadata_url: {e}")))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_METADATA_BYTES {
            return Err(invalid("metadata_url: the document is larger than 512 KiB"));
        }
    }
    String::from_utf8(body).map_err(|_| invalid("metadata_url: not UTF-8"))
}

async fn saml_settings(state: &AppState, input: SamlInput) -> Result<SamlSettings, AdminError> {
    let xml = match (&input.metadata_xml, &input.metadata_url) {
        (Some(xml), _) => Some(xml.clone()),
        (None, Some(url)) => Some(fetch_metadata(url, state.allow_private_urls).await?),
        (None, None) => None,
    };
    let metadata = xml
        .as_deref()
        .map(parse_idp_metadata)
        .transpose()
        .map_err(|e: SettingsError| invalid(e))?;
    let pick = |given: Option<String>, from: Option<String>, field: &str| {
        given.or(from).ok_or_else(|| {
            invalid(format!(
                "saml.{field} is required (or give metadata_xml or metadata_url)"
            ))
        })
    };
    let settings = SamlSettings {
        idp_entity_id: pick(
            input.idp_entity_id,
            metadata.as_ref().map(|m| m.entity_id.clone()),
            "idp_entity_id",
        )?,
        idp_sso_url: pick(
            input.idp_sso_url,
            metadata.as_ref().map(|m| m.sso_url.clone()),
            "idp_sso_url",
        )?,
        idp_certificates: input
            .idp_certificates
            .or(metadata.map(|m| m.certificates))
            .unwrap_or_default(),
        metadata_url: input.metadata_url,
        idp_initiated: input.idp_initiated,
        clock_skew_seconds: input.clock_skew_seconds,
        sp_entity_id: input.sp_entity_id,
        email_attribute: input.email_attribute,
        name_attribute: input.name_attribute,
        groups_attribute: input.groups_attribute,
    };
    settings.check(state.allow_private_urls).map_err(invalid)?;
    Ok(settings)
}

/// The kind, the settings to store, and the secret (outer `Some`: change it).
type Checked = (&'static str, Value, Option<Option<String>>);

async fn check_settings(
    state: &AppState,
    oidc: Option<OidcInput>,
    saml: Option<SamlInput>,
) -> Result<Option<Checked>, AdminError> {
    match (oidc, saml) {
        (Some(_), Some(_)) => Err(invalid("give either oidc or saml, not both")),
        (Some(mut o), None) => {
            o.settings
                .check(state.allow_private_urls)
                .map_err(invalid)?;
            let value = serde_json::to_value(&o.settings).map_err(invalid)?;
            Ok(Some(("oidc", value, o.client_secret.map(Some))))
        }
        (None, Some(s)) => {
            let settings = saml_settings(state, s).await?;
            Ok(Some((
                "saml",
                serde_json::to_value(&settings).map_err(invalid)?,
                None,
            )))
        }
        (None, None) => Ok(None),
    }
}

fn check_name(name: &str) -> Result<(), AdminError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(invalid("name must be 1-200 printable characters"));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/sso/connections", tag = "sso", request_body = ConnectionInput,
    description = "Creates an OIDC or SAML connection to the organization's IdP. The response has the addresses to give the IdP (redirect URI, or SP entity id, ACS and metadata URLs).",
    params(("org" = String, Path)), responses((status = 201, body = ConnectionView), (status = 400, body = Problem)))]
pub async fn create_connection(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
    ApiJson(body): ApiJson<ConnectionInput>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let c = caller(&p)?;
    c.require(Action::Manage)?;
    check_name(&body.name)?;
    let Some((kind, config, secret)) = check_settings(&s, body.oidc, body.saml).await? else {
        return Err(invalid("give oidc or saml settings"));
    };
    let secret = secret.flatten();
    if kind == "oidc" && secret.as_deref().is_none_or(str::is_empty) {
        return Err(invalid("oidc.client_secret is required"));
    }
    let write = ConnectionWrite {
        kind,
        name: body.name.trim(),
        config: &config,
        secret: Some(secret.as_deref()),
        jit: body.jit,
        enabled: body.enabled,
    };
    let conn = s.store.create_connection(c.scope(), &write).await?;
    Ok((StatusCode::CREATED, Json(view(&s, conn))))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/sso/connections", tag = "sso",
    params(("org" = String, Path)), responses((status = 200, body = Items<ConnectionView>)))]
pub async fn list_connections(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
) -> ApiResult<Json<Items<ConnectionView>>> {
    let c = caller(&p)?;
    c.require(Action::Read)?;
    let items = s.store.list_connections(c.scope()).await?;
    Ok(Json(Items {
        items: items.into_iter().map(|conn| view(&s, conn)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/sso/connections/{id}", tag = "sso",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = ConnectionView), (status = 404, body = Problem)))]
pub async fn get_connection(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<Json<ConnectionView>> {
    let c = caller(&p)?;
    c.require(Action::Read)?;
    Ok(Json(view(
        &s,
        s.store.get_connection(c.scope(), &id).await?,
    )))
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org}/sso/connections/{id}", tag = "sso", request_body = ConnectionPatch,
    description = "Changes a connection: its name, switches, or its settings (replaced whole, as on creation; to rotate IdP certificates give the new list, old and new while both are valid).",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 200, body = ConnectionView), (status = 400, body = Problem)))]
pub async fn patch_connection(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ConnectionPatch>,
) -> ApiResult<Json<ConnectionView>> {
    let c = caller(&p)?;
    c.require(Action::Manage)?;
    let before = s.store.get_connection(c.scope(), &id).await?;
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let checked = check_settings(&s, body.oidc, body.saml).await?;
    let (kind, config, secret) = match checked {
        Some((kind, config, secret)) => (kind, config, secret),
        None => (
            if before.kind == "oidc" {
                "oidc"
            } else {
                "saml"
            },
            before.config.clone(),
            None,
        ),
    };
    let write = ConnectionWrite {
        kind,
        name: body.name.as_deref().map(str::trim).unwrap_or(&before.name),
        config: &config,
        secret: secret.as_ref().map(|s| s.as_deref()),
        jit: body.jit.unwrap_or(before.jit),
        enabled: body.enabled.unwrap_or(before.enabled),
    };
    let conn = s.store.update_connection(c.scope(), &id, &write).await?;
    Ok(Json(view(&s, conn)))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/sso/connections/{id}", tag = "sso",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_connection(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let c = caller(&p)?;
    c.require(Action::Manage)?;
    s.store.delete_connection(c.scope(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    pub domain: String,
    /// The connection users of this domain sign in with; by default the organization's first.
    pub connection_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/domains", tag = "sso", request_body = DomainInput,
    description = "Declares an email domain as the organization's, for home-realm discovery (`/sso/start?email=`, `login_hint`). A domain belongs to one organization; a second claim is a conflict.",
    params(("org" = String, Path)), responses((status = 201, body = Domain), (status = 409, body = Problem)))]
pub async fn add_domain(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
    ApiJson(body): ApiJson<DomainInput>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    let c = caller(&p)?;
    c.require(Action::Manage)?;
    let d = s
        .store
        .add_domain(c.scope(), &body.domain, body.connection_id.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/domains", tag = "sso",
    params(("org" = String, Path)), responses((status = 200, body = Items<Domain>)))]
pub async fn list_domains(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
) -> ApiResult<Json<Items<Domain>>> {
    let c = caller(&p)?;
    c.require(Action::Read)?;
    Ok(Json(Items {
        items: s.store.list_domains(c.scope()).await?,
    }))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/domains/{domain}", tag = "sso",
    params(("org" = String, Path), ("domain" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_domain(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
    Path((_, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let c = caller(&p)?;
    c.require(Action::Manage)?;
    s.store.delete_domain(c.scope(), &domain).await?;
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

/// Redirect URIs are compared exactly; each must be absolute, without a fragment (RFC 6749
/// §3.1.2), and https unless it is on loopback (RFC 8252 §7.3).
pub fn check_redirect_uris(uris: &[String]) -> Result<(), AdminError> {
    if uris.is_empty() || uris.len() > 20 {
        return Err(invalid("redirect_uris must list 1 to 20 URIs"));
    }
    for uri in uris {
        let u = url::Url::parse(uri).map_err(|e| invalid(format!("redirect_uri {uri:?}: {e}")))?;
        let loopback = matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
        if u.fragment().is_some() || uri.len() > 2048 {
            return Err(invalid(format!(
                "redirect_uri {uri:?} has a fragment or is too long"
            )));
        }
        if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
            return Err(invalid(format!(
                "redirect_uri {uri:?} must be https (or http on loopback)"
            )));
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/clients", tag = "sso", request_body = ClientInput,
    description = "Registers an application that signs the organization's users in through idbridge (OpenID Connect, code flow with PKCE).",
    params(("org" = String, Path)), responses((status = 201, body = ClientCreated), (status = 400, body = Problem)))]
pub async fn create_client(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
    ApiJson(body): ApiJson<ClientInput>,
) -> ApiResult<(StatusCode, Json<ClientCreated>)> {
    let c = caller(&p)?;
    c.require(Action::Manage)?;
    check_name(&body.name)?;
    check_redirect_uris(&body.redirect_uris)?;
    let (client, client_secret) = s
        .store
        .create_client(Some(c.scope()), body.name.trim(), &body.redirect_uris)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ClientCreated {
            client,
            client_secret,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/clients", tag = "sso",
    params(("org" = String, Path)), responses((status = 200, body = Items<Client>)))]
pub async fn list_clients(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
) -> ApiResult<Json<Items<Client>>> {
    let c = caller(&p)?;
    c.require(Action::Read)?;
    Ok(Json(Items {
        items: s.store.list_clients(Some(c.scope())).await?,
    }))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/clients/{id}", tag = "sso",
    description = "Revokes a client and every access token it holds.",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_client(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let c = caller(&p)?;
    c.require(Action::Manage)?;
    s.store.revoke_client(Some(c.scope()), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/sessions/{id}", tag = "users",
    description = "Signs a session out: its cookie and the access tokens issued from it stop working.",
    params(("org" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_session(
    State(s): State<AppState>,
    Extension(p): Extension<AdminPrincipal>,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let c = caller(&p)?;
    c.require(Action::Manage)?;
    s.store.revoke_session(c.scope(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
