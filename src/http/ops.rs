//! Health, readiness, metrics, and the fallbacks.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::app::AppState;
use crate::scim::error::ScimError;

#[tracing::instrument(skip_all)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready only when the database answers.
#[tracing::instrument(skip_all)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// The recorder's series, then readings taken now: the process, the database pools and the
/// webhook backlog. These are read per scrape rather than kept as gauges in the process-wide
/// recorder, which every app in the process shares.
#[tracing::instrument(skip_all)]
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    // The series name every directory, route and connection: for the operator's scraper only.
    let Some(token) = state.metrics_token.as_deref() else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let presented = super::extract::bearer(&headers).unwrap_or_default();
    if presented.len() != token.len()
        || !openssl::memcmp::eq(presented.as_bytes(), token.as_bytes())
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a metrics token is required",
        )
            .into_response();
    }
    let mut out = state.metrics.render();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        if samples.is_empty() {
            return;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    let one = |v: Option<f64>| {
        v.map(|v| (String::new(), v))
            .into_iter()
            .collect::<Vec<_>>()
    };

    let p = crate::telemetry::process_stats();
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        &one(p.resident_memory_bytes.map(|v| v as f64)),
    );
    family(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        &one(p.open_fds.map(|v| v as f64)),
    );
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        &one(p.cpu_seconds),
    );
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
        &one(p.start_time_seconds),
    );

    let pools = state.store.pool_stats();
    let connections: Vec<(String, f64)> = pools
        .iter()
        .flat_map(|p| {
            [("idle", p.idle), ("in_use", p.size.saturating_sub(p.idle))].map(|(s, n)| {
                (
                    format!("{{pool=\"{}\",state=\"{s}\"}}", p.pool),
                    f64::from(n),
                )
            })
        })
        .collect();
    family(
        "idbridge_db_pool_connections",
        "gauge",
        "Open database connections by pool and state.",
        &connections,
    );
    let max: Vec<(String, f64)> = pools
        .iter()
        .map(|p| (format!("{{pool=\"{}\"}}", p.pool), f64::from(p.max)))
        .collect();
    family(
        "idbridge_db_pool_max_connections",
        "gauge",
        "The most connections each database pool opens.",
        &max,
    );

    if let Some(w) = state.store.writer_stats() {
        family(
            "idbridge_sqlite_write_transactions_total",
            "counter",
            "Write transactions committed on SQLite.",
            &one(Some(w.transactions as f64)),
        );
        family(
            "idbridge_sqlite_commits_total",
            "counter",
            "SQLite commits; each carries the write transactions that were queued for it.",
            &one(Some(w.commits as f64)),
        );
        family(
            "idbridge_sqlite_write_transactions_waiting",
            "gauge",
            "Write transactions waiting for SQLite's one writer.",
            &one(Some(w.waiting as f64)),
        );
    }

    // A database that does not answer leaves these out; /readyz says why.
    match state.store.webhook_backlog().await {
        Ok(b) => {
            let age = b
                .oldest_at
                .map_or(0.0, |at| (state.store.now() - at).max(0) as f64 / 1e6);
            family(
                "idbridge_webhook_pending_deliveries",
                "gauge",
                "Webhook deliveries not yet made (one per webhook and undelivered event).",
                &one(Some(b.pending as f64)),
            );
            family(
                "idbridge_webhook_oldest_pending_age_seconds",
                "gauge",
                "Age of the oldest event a webhook has not yet received; 0 when none is pending.",
                &one(Some(age)),
            );
        }
        Err(e) => tracing::warn!(error = %e, "webhook backlog not read for /metrics"),
    }

    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[tracing::instrument(skip_all)]
pub async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/scim/") {
        ScimError::not_found(format!("no such endpoint {}", req.uri().path())).into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found").into_response()
    }
}

#[tracing::instrument(skip_all)]
pub async fn method_not_allowed(req: Request) -> Response {
    let detail = format!("{} is not allowed on {}", req.method(), req.uri().path());
    if req.uri().path().starts_with("/scim/") {
        ScimError::new(405, None, detail).into_response()
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, detail).into_response()
    }
}

/// Requests may name themselves with this header (a proxy's or the client's id); every
/// response carries the id the request ran under.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The outermost layer: gives the request its id, then after the response one INFO line and the
/// request metrics. The line names the route template, never the path or query, which carry ids,
/// filters and authorization codes; headers (tokens) are never read.
pub async fn observe(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = request_id(req.headers().get(&REQUEST_ID));
    req.headers_mut()
        .insert(REQUEST_ID, request_id_value(&request_id));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_label(p.as_str(), req.uri().path()))
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    // Every line logged while the request runs carries its id.
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut resp = next.run(req).instrument(span).await;
    resp.headers_mut()
        .insert(REQUEST_ID, request_id_value(&request_id));
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    tracing::info!(
        method,
        route,
        status,
        latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        request_id,
        "request"
    );
    let labels = [
        ("route", route),
        ("method", method),
        ("status", status.to_string()),
    ];
    metrics::counter!("idbridge_http_requests_total", &labels).increment(1);
    metrics::histogram!("idbridge_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    resp
}

/// The caller's id when it is 1 to 128 visible ASCII characters (safe in a log line and a
/// header), else a new time-ordered one.
fn request_id(given: Option<&HeaderValue>) -> String {
    given
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn request_id_value(id: &str) -> HeaderValue {
    // Visible ASCII by construction, so this never falls back.
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
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
    use axum::http::HeaderValue;

    #[test]
    fn a_request_id_is_kept_when_it_is_1_to_128_visible_ascii_characters() {
        let kept = |v: &str| super::request_id(Some(&HeaderValue::from_str(v).unwrap())) == v;
        assert!(kept("abc-123"));
        assert!(kept(&"x".repeat(128)));
        assert!(!kept(&"x".repeat(129)));
        assert!(!kept(""));
        assert!(!kept("two words"));
        let minted = super::request_id(None);
        assert_eq!(uuid::Uuid::parse_str(&minted).unwrap().get_version_num(), 7);
    }

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
