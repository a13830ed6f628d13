//! HTTP: every route in one place, the extractors, and the mapping of errors to responses.

mod extract;
mod ops;
mod scim;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::app::AppState;

pub use extract::ScimBody;

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

    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(scim)
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(middleware::from_fn(ops::record_metrics))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
