//! The OIDC half of sign-in: starting at the IdP and its callback. The protocol is in
//! [`crate::sso::oidc`]; here are the database and the per-replica cache of discovery documents.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::sso::{finish_sign_in, oidc_settings};
use crate::app::AppState;
use crate::service::sso::{GroupClaim, SsoIdentity};
use crate::sso::oidc::{self, Callback, Groups, HttpClient, OidcConnection, Provider};
use crate::store::sso::Connection;

/// Discovery documents are re-read after this long when a sign-in starts; the callback always
/// reads them (and the keys) afresh.
const PROVIDER_TTL: Duration = Duration::from_secs(300);

/// Per replica: nothing here is needed for correctness, only to spare the IdP.
#[derive(Default)]
pub struct Providers {
    cache: Mutex<HashMap<(String, i64), (Instant, Provider)>>,
}

fn http(state: &AppState) -> HttpClient {
    HttpClient::new(state.outbound.clone())
}

async fn connection(state: &AppState, conn: &Connection) -> Result<OidcConnection, String> {
    let settings = oidc_settings(conn)?;
    let secret = state
        .store
        .connection_secret(&conn.id)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let redirect = format!("{}/sso/oidc/callback", state.public_url);
    OidcConnection::new(
        &settings.issuer,
        &settings.client_id,
        &secret,
        &settings.scopes,
        &redirect,
    )
    .and_then(|c| c.with_groups_claim(&settings.groups_claim))
    .map_err(|e| e.to_string())
}

async fn provider(
    state: &AppState,
    conn: &Connection,
    oidc_conn: &OidcConnection,
    fresh: bool,
) -> Result<Provider, String> {
    // Keyed by the connection's version, so an edited issuer is never served from the cache.
    let key = (conn.id.clone(), conn.updated_at);
    if !fresh
        && let Some((at, p)) = state.oidc.cache.lock().expect("not poisoned").get(&key)
        && at.elapsed() < PROVIDER_TTL
    {
        return Ok(p.clone());
    }
    let p = oidc::discover(&http(state), oidc_conn)
        .await
        .map_err(|e| e.to_string())?;
    state
        .oidc
        .cache
        .lock()
        .expect("not poisoned")
        .insert(key, (Instant::now(), p.clone()));
    Ok(p)
}

/// The redirect to the IdP and what to keep for the callback.
pub(super) async fn start(
    state: &AppState,
    conn: &Connection,
    flow_state: &str,
    login_hint: Option<&str>,
) -> Result<(String, Value), String> {
    let oidc_conn = connection(state, conn).await?;
    let p = provider(state, conn, &oidc_conn, false).await?;
    let started = oidc::start(&p, &oidc_conn, flow_state, login_hint);
    Ok((
        started.url,
        json!({ "nonce": started.nonce, "pkce_verifier": started.pkce_verifier }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The redirect URI of every OIDC connection (Core §3.1.2.5); `state` finds the sign-in.
pub async fn callback(
    state: State<AppState>,
    headers: axum::http::HeaderMap,
    query: Query<CallbackParams>,
) -> Response {
    super::sso::count_sign_in("oidc", finish(state, headers, query).await)
}

async fn finish(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<CallbackParams>,
) -> Response {
    use super::sso::{fail, flow_bound};
    let Some(flow_state) = q.state.as_deref() else {
        return fail(&s, None, "oidc_invalid", "callback without state").await;
    };
    // The cookie is checked before the sign-in is taken, so that whoever sees a state (in a
    // referrer, a log) cannot spend, and so cancel, someone else's sign-in by presenting it first.
    if !flow_bound(&headers, flow_state) {
        let why = "the sign-in was started in another browser (no flow cookie)";
        let conn = match s.store.flow_connection(flow_state).await {
            Ok(Some(id)) => s.store.connection_by_id(&id).await.ok(),
            _ => None,
        };
        return fail(&s, conn.as_ref(), "flow_unbound", why).await;
    }
    let (conn_id, data) = match s.store.take_flow(flow_state).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return fail(&s, None, "oidc_invalid", "unknown, used or expired state").await;
        }
        Err(e) => return fail(&s, None, "store", e).await,
    };
    let conn = match s.store.connection_by_id(&conn_id).await {
        Ok(c) => c,
        Err(e) => return fail(&s, None, "unknown_connection", e).await,
    };
    if let Some(error) = q.error.as_deref() {
        let reason = format!(
            "the IdP answered {error}: {}",
            q.error_description.as_deref().unwrap_or("")
        );
        return fail(&s, Some(&conn), "idp_error", reason).await;
    }
    let Some(code) = q.code.as_deref() else {
        return fail(&s, Some(&conn), "oidc_invalid", "callback without code").await;
    };
    let oidc_conn = match connection(&s, &conn).await {
        Ok(c) => c,
        Err(e) => return fail(&s, Some(&conn), "connection_invalid", e).await,
    };
    let nonce = data["nonce"].as_str().unwrap_or_default();
    let verifier = data["pkce_verifier"].as_str().unwrap_or_default();
    let cb = Callback {
        code,
        iss: q.iss.as_deref(),
    };
    // Fresh keys for the check: an IdP that rotated its signing key since the cached discovery
    // must not fail a sign-in whose code can be exchanged only once.
    let p = match provider(&s, &conn, &oidc_conn, true).await {
        Ok(p) => p,
        Err(e) => return fail(&s, Some(&conn), "idp_unreachable", e).await,
    };
    let now = time::OffsetDateTime::now_utc();
    let identity = match oidc::finish(&http(&s), &p, &oidc_conn, cb, nonce, verifier, now).await {
        Ok(i) => i,
        Err(e) => return fail(&s, Some(&conn), "oidc_invalid", e).await,
    };
    let identity = SsoIdentity {
        subject: identity.subject,
        email: identity.email,
        email_verified: identity.email_verified,
        name: identity.name,
        groups: match identity.groups {
            Groups::Present(v) => GroupClaim::Values(v),
            Groups::Overage => GroupClaim::Overage,
            Groups::Absent => GroupClaim::Absent,
        },
    };
    finish_sign_in(&s, &conn, identity, data.get("authz")).await
}
