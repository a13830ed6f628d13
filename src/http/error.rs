//! Where errors become HTTP responses, in one place: the admin API's [`AdminError`] as RFC 9457
//! problem details, and [`ScimError`] as RFC 7644 §3.12 error bodies. Internal causes were logged
//! where they were turned into these errors; nothing here sends one to the client.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::scim::error::ScimError;
use crate::service::admin::AdminError;

/// RFC 9457 problem details.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub ty: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = Problem {
        ty: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail: detail.into(),
    };
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// RFC 6750 §3: a 401 names the scheme the client should authenticate with.
pub fn unauthorized(detail: &str) -> Response {
    let mut r = problem(StatusCode::UNAUTHORIZED, detail);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

/// RFC 9110 §10.2.3: how long a client should wait before trying a 503 again. A few seconds: the
/// outages it covers (a database restarting or failing over) are short, and IdPs retry.
pub const RETRY_AFTER_SECONDS: &str = "5";

pub fn with_retry_after(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    resp
}

/// RFC 6585 §4: 429 says how long to wait, in seconds, as `Retry-After` (RFC 9110 §10.2.3).
pub fn retry_after(mut resp: Response, wait: crate::rate::RetryAfter) -> Response {
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(wait.0));
    resp
}

/// The admin and platform API's 429, as problem details.
pub fn too_many_problem(wait: crate::rate::RetryAfter) -> Response {
    retry_after(
        problem(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this token sent more requests than its rate limit allows; retry after {} s",
                wait.0
            ),
        ),
        wait,
    )
}

/// SCIM's 429, as an RFC 7644 §3.12 error body: IdPs retry it after `Retry-After`.
pub fn too_many_scim(wait: crate::rate::RetryAfter) -> Response {
    retry_after(
        ScimError::new(
            429,
            None,
            format!(
                "this directory sent more requests than its rate limit allows; retry after {} s",
                wait.0
            ),
        )
        .into_response(),
        wait,
    )
}

/// The status an admin operation's error answers with, the same for the admin API's problem
/// details and the console's pages.
pub fn admin_status(e: &AdminError) -> StatusCode {
    match e {
        AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
        AdminError::Forbidden => StatusCode::FORBIDDEN,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AdminError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = admin_status(&self);
        match self {
            AdminError::Unauthorized => {
                unauthorized("a valid admin token is required (Authorization: Bearer idba_...)")
            }
            AdminError::Forbidden => {
                problem(status, "this token's role does not allow this operation")
            }
            AdminError::NotFound(d) | AdminError::Conflict(d) | AdminError::Invalid(d) => {
                problem(status, d)
            }
            AdminError::Unavailable(d) => with_retry_after(problem(status, d)),
            AdminError::Internal => problem(status, "internal error"),
        }
    }
}

/// What a SCIM error answered, carried on its response so that the directory's record of failed
/// requests has the scimType and detail without reading the body back.
#[derive(Debug, Clone)]
pub struct ScimErrorSaid {
    pub scim_type: Option<String>,
    pub detail: String,
}

// RFC 7644 §3.12: the SCIM error body, with its own media type; RFC 6750 §3 asks a 401 to name
// the scheme.
impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let said = ScimErrorSaid {
            scim_type: self
                .scim_type
                .and_then(|t| serde_json::to_value(t).ok())
                .and_then(|v| v.as_str().map(str::to_string)),
            detail: self.detail.clone(),
        };
        let status = axum::http::StatusCode::from_u16(self.status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, crate::scim::MEDIA_TYPE)],
            self.body().to_string(),
        )
            .into_response();
        if self.status == 503 {
            resp = with_retry_after(resp);
        }
        if self.status == 401 {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"idbridge\""),
            );
        }
        resp.extensions_mut().insert(said);
        resp
    }
}
