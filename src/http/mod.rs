//! HTTP: every route in one place, the extractors, and (in [`error`]) the mapping of errors to
//! responses.

pub mod admin;
mod admin_sso;
pub mod api_docs;
mod console;
mod error;
mod extract;
mod headers;
mod ops;
pub mod platform;
mod scim;
mod sso;

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, post};

use crate::app::AppState;

pub use extract::ScimBody;

/// How long a request's body may take to arrive once its headers have (the connection loop,
/// `server.rs`, bounds the headers).
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn router(state: AppState) -> Router {
    let d = "/scim/v2/{directory}";
    // Static segments (Bulk, Schemas, ...) take precedence over the `{resource}` capture, which
    // the handlers resolve to Users or Groups (a SCIM 404 for anything else).
    let scim = Router::new()
        .route(
            &format!("{d}/{{resource}}"),
            get(scim::list).post(scim::create),
        )
        .route(&format!("{d}/{{resource}}/.search"), post(scim::search))
        .route(
            &format!("{d}/{{resource}}/{{id}}"),
            get(scim::get)
                .put(scim::replace)
                .patch(scim::patch)
                .delete(scim::delete),
        )
        .route(&format!("{d}/.search"), post(scim::search_root))
        .route(&format!("{d}/Bulk"), post(scim::bulk))
        .route(
            &format!("{d}/ServiceProviderConfig"),
            get(scim::service_provider_config),
        )
        .route(&format!("{d}/ResourceTypes"), get(scim::resource_types))
        .route(
            &format!("{d}/ResourceTypes/{{name}}"),
            get(scim::resource_type),
        )
        .route(&format!("{d}/Schemas"), get(scim::schemas))
        .route(&format!("{d}/Schemas/{{id}}"), get(scim::schema))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            extract::authenticate,
        ));

    let o = "/api/v1/orgs/{org}";
    let api = Router::new()
        .route(
            o,
            get(admin::get_org)
                .patch(admin::patch_org)
                .delete(platform::delete_org),
        )
        .route(&format!("{o}/seats"), get(admin::seats))
        .route(&format!("{o}/owner"), post(admin::transfer_owner))
        .route(
            &format!("{o}/sub-accounts"),
            get(admin::list_sub_accounts).post(admin::create_sub_account),
        )
        .route(
            &format!("{o}/sub-accounts/{{id}}"),
            get(admin::get_sub_account).delete(admin::delete_sub_account),
        )
        .route(
            &format!("{o}/sub-accounts/{{id}}/projects"),
            get(admin::list_projects).post(admin::create_project),
        )
        .route(
            &format!("{o}/sub-accounts/{{id}}/projects/{{project}}"),
            delete(admin::delete_project),
        )
        .route(
            &format!("{o}/directories"),
            get(admin::list_directories).post(admin::create_directory),
        )
        .route(
            &format!("{o}/directories/{{id}}"),
            delete(platform::delete_directory),
        )
        .route(
            &format!("{o}/directories/{{id}}/tokens"),
            get(admin::list_directory_tokens).post(admin::rotate_directory_token),
        )
        .route(
            &format!("{o}/directories/{{id}}/tokens/{{token}}"),
            delete(admin::revoke_directory_token),
        )
        .route(&format!("{o}/groups"), get(admin::list_groups))
        .route(&format!("{o}/groups/{{id}}"), get(admin::get_group))
        .route(&format!("{o}/users"), get(admin::list_users))
        .route(&format!("{o}/users/{{id}}"), get(admin::get_user))
        .route(&format!("{o}/users/{{id}}/access"), get(admin::user_access))
        .route(
            &format!("{o}/users/{{id}}/sessions"),
            get(admin::list_sessions),
        )
        .route(
            &format!("{o}/users/{{id}}/sessions/revoke"),
            post(admin::revoke_user_sessions),
        )
        .route(
            &format!("{o}/users/{{id}}/scim-users"),
            get(admin::list_user_scim_users),
        )
        .route(
            &format!("{o}/users/{{id}}/grants"),
            get(admin::list_grants).post(admin::create_grant),
        )
        .route(&format!("{o}/grants/{{id}}"), delete(admin::delete_grant))
        .route(
            &format!("{o}/mappings"),
            get(admin::list_rules).post(admin::create_rule),
        )
        .route(&format!("{o}/mappings/preview"), post(admin::preview_rule))
        .route(
            &format!("{o}/mappings/groups"),
            get(admin::search_rule_groups),
        )
        .route(
            &format!("{o}/mappings/{{id}}/reach"),
            get(admin::rule_reach),
        )
        .route(
            &format!("{o}/mappings/{{id}}"),
            get(admin::get_rule)
                .put(admin::replace_rule)
                .delete(admin::delete_rule),
        )
        .route(
            &format!("{o}/sso/connections"),
            get(admin_sso::list_connections).post(admin_sso::create_connection),
        )
        .route(
            &format!("{o}/sso/connections/{{id}}"),
            get(admin_sso::get_connection)
                .patch(admin_sso::patch_connection)
                .delete(admin_sso::delete_connection),
        )
        .route(
            &format!("{o}/domains"),
            get(admin_sso::list_domains).post(admin_sso::add_domain),
        )
        .route(
            &format!("{o}/domains/{{domain}}"),
            delete(admin_sso::delete_domain).patch(admin_sso::patch_domain),
        )
        .route(
            &format!("{o}/domains/{{domain}}/verify"),
            post(admin_sso::verify_domain),
        )
        .route(
            &format!("{o}/clients"),
            get(admin_sso::list_clients).post(admin_sso::create_client),
        )
        .route(
            &format!("{o}/clients/{{id}}"),
            delete(admin_sso::revoke_client),
        )
        .route(
            &format!("{o}/sessions/{{id}}"),
            delete(admin_sso::revoke_session),
        )
        .route(&format!("{o}/audit"), get(admin::audit))
        .route(&format!("{o}/events"), get(admin::events))
        .route(
            &format!("{o}/webhooks"),
            get(admin::list_webhooks).post(admin::create_webhook),
        )
        .route(
            &format!("{o}/webhooks/{{id}}"),
            delete(admin::delete_webhook),
        )
        .route(
            &format!("{o}/admin-tokens"),
            get(admin::list_admin_tokens).post(platform::mint_admin_token),
        )
        .route(
            &format!("{o}/admin-tokens/{{id}}"),
            delete(admin::revoke_admin_token),
        )
        .route(
            &format!("{o}/portal-links"),
            post(platform::create_portal_link),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            admin::authenticate,
        ))
        .merge(platform::routes(state.clone()))
        .route("/api/v1/openapi.json", get(admin::openapi))
        .route("/api/v1/docs", get(api_docs::docs))
        .route("/api/v1/{*rest}", axum::routing::any(admin::not_found));

    // The ACS takes a posted SAMLResponse: base64 of at most saml::MAX_RESPONSE_BYTES, in a form.
    let sign_in = Router::new()
        .route("/sso/start", get(sso::start_by_email))
        .route("/sso/{connection}/start", get(sso::start_connection))
        .route("/sso/oidc/callback", get(sso::oidc_callback))
        .route("/sso/saml/{connection}/metadata", get(sso::saml_metadata))
        .route(
            "/sso/saml/{connection}/acs",
            post(sso::saml_acs).layer(axum::extract::DefaultBodyLimit::max(1024 * 1024)),
        )
        .route("/sso/logout", get(sso::logout_page).post(sso::logout))
        .route("/.well-known/openid-configuration", get(sso::discovery))
        .route("/oauth/authorize", get(sso::authorize))
        .route("/oauth/token", post(sso::token_endpoint))
        .route("/oauth/userinfo", get(sso::userinfo).post(sso::userinfo))
        .route("/oauth/jwks", get(sso::jwks));

    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(scim)
        .merge(api)
        .merge(sign_in)
        .merge(console::routes())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_TIMEOUT,
        ))
        .layer(middleware::from_fn(headers::security))
        // Last, so outermost: it sees the final status, and the request id is set first.
        .layer(middleware::from_fn(ops::observe))
        .with_state(state)
}
