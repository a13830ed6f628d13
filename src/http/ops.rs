//! Health, readiness, metrics, and the fallbacks.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::scim::error::ScimError;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready only when the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

pub async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/scim/") {
        ScimError::not_found(format!("no such endpoint {}", req.uri().path())).into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found").into_response()
    }
}

pub async fn method_not_allowed(req: Request) -> Response {
    let detail = format!("{} is not allowed on {}", req.method(), req.uri().path());
    if req.uri().path().starts_with("/scim/") {
        ScimError::new(405, None, detail).into_response()
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, detail).into_response()
    }
}

/// Request counts and latency by route template (never the raw path: ids would explode the label
/// set) and status.
pub async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_label(p.as_str(), req.uri().path()))
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("idbridge_http_requests_total", &labels).increment(1);
    metrics::histogram!("idbridge_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// The route template, with `{resource}` resolved to the resource type when it is one: the label
/// set stays bounded, and Users and Groups are told apart.
fn route_label(template: &str, path: &str) -> String {
    let actual: Vec<&str> = path.split('/').collect();
    template
        .split('/')
        .enumerate()
        .map(|(i, seg)| match (seg, actual.get(i)) {
            ("{resource}", Some(a)) if crate::service::Kind::from_endpoint(a).is_some() => *a,
            _ => seg,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_labels_name_the_resource_type_but_never_ids() {
        let t = "/scim/v2/{directory}/{resource}/{id}";
        assert_eq!(
            super::route_label(t, "/scim/v2/d1/Users/u1"),
            "/scim/v2/{directory}/Users/{id}"
        );
        assert_eq!(super::route_label(t, "/scim/v2/d1/Widgets/u1"), t);
    }
}
