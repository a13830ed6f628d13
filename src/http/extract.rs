//! Extractors: the SCIM JSON body and bearer-token authentication of a directory.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::app::AppState;
use crate::scim::error::ScimError;
use crate::service::store_error;

/// A JSON request body whose every failure (too large, not JSON, not an object) is an RFC 7644
/// §3.12 error rather than the framework's plain-text rejection.
pub struct ScimBody(pub Value);

impl FromRequest<AppState> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = if req.uri().path().ends_with("/Bulk") {
            state.sizes.bulk_payload_bytes
        } else {
            state.sizes.body_bytes
        };
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ScimError::new(413, None, format!("the request body exceeds {limit} bytes"))
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax("the request body is empty"));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}"))
        })?;
        if !v.is_object() {
            return Err(ScimError::invalid_syntax(
                "the request body must be a JSON object",
            ));
        }
        use crate::domain::limits;
        limits::check(&v, &|_| limits::SCIM_VALUE)
            .map_err(|e| ScimError::invalid_value(e.to_string()))?;
        Ok(ScimBody(v))
    }
}

/// RFC 7644 §2: a bearer token, valid for the directory named in the path and no other.
/// RFC 6750 §2.1: the token of an `Authorization: Bearer` header (scheme case-insensitive).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
}

pub async fn authenticate(
    State(state): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(directory) = params
        .iter()
        .find(|(k, _)| k == "directory")
        .map(|(_, v)| v.clone())
    else {
        return ScimError::unauthorized().into_response();
    };
    let Some(token) = bearer(req.headers()) else {
        return ScimError::unauthorized().into_response();
    };
    match state.store.authenticate_directory(&directory, &token).await {
        Ok(Some(scope)) => {
            // Counted per directory after authentication: a stranger's bad tokens cannot spend
            // a directory's allowance, and its rotating tokens share one.
            if let Err(wait) = state
                .rate
                .check(crate::rate::Limit::Scim, scope.directory_id())
            {
                return super::error::too_many_scim(wait);
            }
            let directory_id = scope.directory_id().to_string();
            let (method, path) = (req.method().to_string(), req.uri().path().to_string());
            req.extensions_mut().insert(scope);
            let resp = next.run(req).await;
            // Only a failure writes, once answered; a success never waits on this. The 429 above
            // is not kept: a flood would turn into as many writes.
            let status = resp.status();
            if status.is_client_error() || status.is_server_error() {
                let said = resp.extensions().get::<super::error::ScimErrorSaid>();
                let failure = crate::store::console::ScimFailure {
                    at: state.store.now(),
                    method,
                    path,
                    status: status.as_u16(),
                    scim_type: said.and_then(|s| s.scim_type.clone()),
                    detail: said.map(|s| s.detail.clone()),
                };
                if let Err(e) = state
                    .store
                    .record_scim_failure(&directory_id, &failure)
                    .await
                {
                    tracing::warn!(error = %e, "a failed SCIM request could not be kept");
                }
            }
            resp
        }
        Ok(None) => ScimError::unauthorized().into_response(),
        Err(e) => store_error(e).into_response(),
    }
}

/// The address the request came from, when the server that accepted it said (requests handed to
/// the router in-process carry none). The peer itself: a forwarded-for header is the client's
/// word, which a limit must not take.
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
