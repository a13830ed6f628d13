//! Headers every response carries, and the stricter set for HTML pages: the failure page, the
//! sign-out page and the API reference must not be framed (clickjacking), must not run anything
//! they did not ship, and must not leak their URL (which may hold a state) to another site.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Nothing loads from elsewhere and nothing runs: our pages have no scripts, only inline style.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                           form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn security(req: Request, next: Next) -> Response {
    let console = req.uri().path().starts_with("/console");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    // The console's pages keep their own policy, which lets them load the script file they
    // ship; every other page gets this one.
    if html && !(console && h.contains_key(header::CONTENT_SECURITY_POLICY)) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
    }
    if html {
        // For browsers that predate frame-ancestors.
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}
