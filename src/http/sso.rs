//! Sign-in with the organization's IdP (`/sso/...`) and idbridge as an OpenID provider for the SaaS
//! (`/.well-known/openid-configuration`, `/oauth/...`).
//!
//! Everything a sign-in needs between two requests (state, nonce, PKCE verifier, SAML request id,
//! the SaaS's own authorization request) is in the database, so any replica can finish what
//! another started. The user sees one generic page for every failure; the log and the audit say
//! exactly why (with a reference the page shows).

use std::time::Duration;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::oauth::token::{self, SigningKey};
use crate::service::sso::{self as svc, GroupClaim, SsoIdentity};
use crate::sso::connection::{
    EMAIL_ATTRIBUTES, GROUPS_ATTRIBUTES, NAME_ATTRIBUTES, OidcSettings, SamlSettings,
};
use crate::sso::saml::{self, sp};
use crate::store::sso::{Connection, LiveSession};
use crate::store::{StoreError, now_micros};

pub const SESSION_COOKIE: &str = "idbridge_session";
/// How long a sign-in may take at the IdP.
const FLOW_TTL: Duration = Duration::from_secs(600);
/// RFC 6749 §4.1.2 recommends at most 10 minutes; a browser redirect needs seconds.
const CODE_TTL: Duration = Duration::from_secs(60);
const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
pub const ID_TOKEN_TTL: Duration = Duration::from_secs(600);
/// A retired signing key stays in the JWKS this long: past every token it signed.
pub const RETIRED_KEY_PUBLISHED: Duration = Duration::from_secs(600 + 3600);
/// Entra's SAML overage: a link to Graph instead of the groups.
const SAML_GROUPS_LINK: &str = "http://schemas.microsoft.com/claims/groups.link";

fn micros(d: Duration) -> i64 {
    d.as_micros() as i64
}

// ---- the user's pages --------------------------------------------------------------------------

/// The one page a failed sign-in shows, whatever failed; `reference` finds the log line.
fn failure_page(status: StatusCode, reference: &str) -> Response {
    failure_page_saying(status, reference, None)
}

/// The failure page, with a reason when it is about set-up rather than about the user or their
/// answer (nothing an attacker could learn from).
fn failure_page_saying(status: StatusCode, reference: &str, why: Option<&str>) -> Response {
    let why = why
        .map(|w| format!("<p>{}</p>", html_escape(w)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Sign-in failed</title>\
         <h1>Sign-in failed</h1>{why}<p>We could not sign you in. Try again from your company's \
         portal; if it keeps failing, give your administrator this reference: \
         <code>{}</code>.</p>",
        html_escape(reference)
    );
    let mut resp = (status, Html(body)).into_response();
    no_store(&mut resp);
    resp
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn no_store(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Logs why a sign-in failed, audits it when the connection is known, and shows the page.
pub(super) async fn fail(
    state: &AppState,
    conn: Option<&Connection>,
    code: &str,
    reason: impl std::fmt::Display,
) -> Response {
    let reference = report_failure(state, conn, code, reason).await;
    failure_page(StatusCode::FORBIDDEN, &reference)
}

/// Logs and audits a failed sign-in; returns the reference the log line has.
async fn report_failure(
    state: &AppState,
    conn: Option<&Connection>,
    code: &str,
    reason: impl std::fmt::Display,
) -> String {
    let reference = crate::store::new_id();
    let reason = reason.to_string();
    tracing::warn!(reference, code, connection = conn.map(|c| c.id.as_str()), %reason, "sign-in failed");
    metrics::counter!("idbridge_sso_failures_total", "reason" => code.to_string()).increment(1);
    if let Some(conn) = conn {
        svc::record_failure(
            &state.store,
            conn,
            code,
            &format!("{reason} (reference {reference})"),
        )
        .await;
    }
    reference
}

/// A connection still waiting for its IdP's details: said plainly on the page, since the admin
/// finishing the set-up is who will try it first.
async fn fail_incomplete(state: &AppState, conn: &Connection, missing: &[&str]) -> Response {
    let reference = crate::store::new_id();
    let reason = format!(
        "the SAML connection is incomplete: the IdP's {} have not been given yet",
        missing.join(", ")
    );
    tracing::warn!(reference, code = "connection_incomplete", connection = %conn.id, %reason, "sign-in failed");
    metrics::counter!("idbridge_sso_failures_total", "reason" => "connection_incomplete")
        .increment(1);
    svc::record_failure(
        &state.store,
        conn,
        "connection_incomplete",
        &format!("{reason} (reference {reference})"),
    )
    .await;
    failure_page_saying(
        StatusCode::FORBIDDEN,
        &reference,
        Some(&format!(
            "This sign-in connection is not set up yet: {}. Ask your administrator to finish \
             setting it up with the identity provider's metadata.",
            reason
        )),
    )
}

fn session_cookie(state: &AppState, token: &str, max_age: Duration) -> HeaderValue {
    // Secure whenever browsers allow it: over https, and on http://localhost, which they treat
    // as secure.
    let secure = if secure_context(&state.public_url) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.as_secs()
    ))
    .expect("token and numbers are valid header text")
}

/// Every `name=value` pair of the request's Cookie headers.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookies(headers)
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The cookie that ties a sign-in in flight to the browser that started it. The state alone is
/// not enough (RFC 6749 §10.12): an attacker could start a sign-in, stop at their own IdP answer,
/// and have a victim's browser deliver it, signing the victim in as the attacker.
fn flow_cookie_name(flow_state: &str) -> String {
    let short: String = flow_state.chars().take(12).collect();
    format!("idbridge_flow_{short}")
}

/// Whether browsers keep and send `Secure` cookies for our public URL: https, or http on a
/// loopback host, which browsers treat as a secure context (a developer trying the service at
/// http://localhost with a cloud IdP needs the SAML flow cookie to survive the IdP's POST).
fn secure_context(public_url: &str) -> bool {
    let Ok(url) = url::Url::parse(public_url) else {
        return false;
    };
    url.scheme() == "https"
        || (url.scheme() == "http"
            && match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            })
}

/// SAML answers arrive as a cross-site POST from the IdP, which a `SameSite=Lax` cookie does not
/// follow; in a secure context the flow cookie is `SameSite=None; Secure` for them. Elsewhere
/// (plain http on a real host) browsers drop such a cookie, so SAML needs an https public URL.
fn flow_cookie(state: &AppState, flow_state: &str, cross_site_post: bool) -> HeaderValue {
    let https = secure_context(&state.public_url);
    let same_site = if cross_site_post && https {
        "None"
    } else {
        "Lax"
    };
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={flow_state}; Path=/sso/; Max-Age={}; HttpOnly; SameSite={same_site}{secure}",
        flow_cookie_name(flow_state),
        FLOW_TTL.as_secs()
    ))
    .expect("state is URL-safe text")
}

/// Whether this browser started the sign-in `flow_state` names.
pub(super) fn flow_bound(headers: &HeaderMap, flow_state: &str) -> bool {
    let name = flow_cookie_name(flow_state);
    cookies(headers).any(|(n, v)| {
        n == name
            && v.len() == flow_state.len()
            && openssl::memcmp::eq(v.as_bytes(), flow_state.as_bytes())
    })
}

async fn current_session(state: &AppState, headers: &HeaderMap) -> Option<LiveSession> {
    let token = cookie_token(headers)?;
    state
        .store
        .live_session(&token, state.session_idle)
        .await
        .ok()
        .flatten()
}

// ---- starting a sign-in ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct StartByEmail {
    email: Option<String>,
}

/// Home-realm discovery: the connection of the organization that verified the address's domain.
pub async fn start_by_email(State(s): State<AppState>, Query(q): Query<StartByEmail>) -> Response {
    let Some(email) = q.email.filter(|e| e.len() <= 320) else {
        return fail(&s, None, "no_email", "/sso/start without an email").await;
    };
    match s.store.connection_for_email(&email).await {
        Ok(Some(conn)) => start_flow(&s, &conn, None, Some(&email)).await,
        Ok(None) => {
            fail(
                &s,
                None,
                "unknown_domain",
                format!("no organization verified the domain of {email:?}"),
            )
            .await
        }
        Err(e) => fail(&s, None, "store", e).await,
    }
}

pub async fn start_connection(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.store.connection_by_id(&id).await {
        Ok(conn) if conn.enabled => start_flow(&s, &conn, None, None).await,
        Ok(conn) => {
            fail(
                &s,
                Some(&conn),
                "connection_disabled",
                "connection is disabled",
            )
            .await
        }
        Err(e) => {
            fail(
                &s,
                None,
                "unknown_connection",
                format!("connection {id:?}: {e}"),
            )
            .await
        }
    }
}

fn saml_endpoints(state: &AppState, conn_id: &str) -> (String, String) {
    let base = format!("{}/sso/saml/{conn_id}", state.public_url);
    (base.clone(), format!("{base}/acs"))
}

fn saml_settings(
    state: &AppState,
    conn: &Connection,
) -> Result<(SamlSettings, saml::SamlConnection), String> {
    let settings: SamlSettings =
        serde_json::from_value(conn.config.clone()).map_err(|e| format!("stored settings: {e}"))?;
    let (entity, acs) = saml_endpoints(state, &conn.id);
    let validator = settings
        .connection(&entity, &acs)
        .map_err(|e| format!("connection settings: {e}"))?;
    Ok((settings, validator))
}

/// Sends the browser to the IdP, keeping what the answer will be checked against.
async fn start_flow(
    state: &AppState,
    conn: &Connection,
    authz: Option<Value>,
    login_hint: Option<&str>,
) -> Response {
    let flow_state = crate::store::directory::mint_token("");
    let expires = now_micros() + micros(FLOW_TTL);
    let missing = crate::sso::connection::missing_settings(&conn.kind, &conn.config);
    if !missing.is_empty() {
        return fail_incomplete(state, conn, &missing).await;
    }
    let (url, mut data) = match conn.kind.as_str() {
        "saml" => {
            let (settings, validator) = match saml_settings(state, conn) {
                Ok(v) => v,
                Err(e) => return fail(state, Some(conn), "connection_invalid", e).await,
            };
            let request_id = match sp::new_request_id() {
                Ok(id) => id,
                Err(e) => return fail(state, Some(conn), "internal", e).await,
            };
            let request = sp::AuthnRequest::for_connection(
                &validator,
                &request_id,
                &settings.idp_sso_url,
                time::OffsetDateTime::now_utc(),
            );
            match request.redirect_url(Some(&flow_state)) {
                Ok(url) => (url.to_string(), json!({ "saml_request_id": request_id })),
                Err(e) => return fail(state, Some(conn), "connection_invalid", e).await,
            }
        }
        "oidc" => match super::sso_oidc::start(state, conn, &flow_state, login_hint).await {
            Ok(v) => v,
            Err(e) => return fail(state, Some(conn), "idp_unreachable", e).await,
        },
        other => {
            return fail(
                state,
                Some(conn),
                "connection_invalid",
                format!("kind {other}"),
            )
            .await;
        }
    };
    if let Some(authz) = authz {
        data["authz"] = authz;
    }
    if let Err(e) = state
        .store
        .put_flow(&flow_state, &conn.id, &data, expires)
        .await
    {
        return fail(state, Some(conn), "store", e).await;
    }
    let mut resp = Redirect::to(&url).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        flow_cookie(state, &flow_state, conn.kind == "saml"),
    );
    no_store(&mut resp);
    resp
}

// ---- finishing a sign-in -----------------------------------------------------------------------

/// After the IdP's answer was verified: sign the user in, then either hand a code to the SaaS
/// application that asked, or show that the user is signed in.
pub(super) async fn finish_sign_in(
    state: &AppState,
    conn: &Connection,
    identity: SsoIdentity,
    authz: Option<&Value>,
) -> Response {
    let signed = match svc::sign_in(&state.store, conn, &identity, state.session_lifetime).await {
        Ok(s) => s,
        Err(e) => {
            // The IdP's answer was verified and this browser started the sign-in: the refusal
            // is the organization's word on a known user, which the application that asked must
            // hear (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6) rather than strand the user
            // here. Its redirect URI was checked when the request began.
            if let (Some(authz), Some(description)) = (authz, e.refusal()) {
                let redirect_uri = authz["redirect_uri"].as_str().unwrap_or_default();
                report_failure(state, Some(conn), e.code(), &e).await;
                let mut resp = authz_error(
                    state,
                    redirect_uri,
                    authz["state"].as_str(),
                    "access_denied",
                    description,
                );
                no_store(&mut resp);
                resp.extensions_mut().insert(SignInOutcome("denied"));
                return resp;
            }
            let outcome = SignInOutcome(if e.refusal().is_some() {
                "denied"
            } else {
                "failed"
            });
            let mut resp = fail(state, Some(conn), e.code(), e).await;
            resp.extensions_mut().insert(outcome);
            return resp;
        }
    };
    let cookie = session_cookie(state, &signed.session_token, state.session_lifetime);
    let mut resp = match authz {
        Some(authz) => {
            let session = LiveSession {
                id: signed.session_id.clone(),
                org_id: signed.org_id.clone(),
                org_user_id: signed.org_user_id.clone(),
                created_at: now_micros(),
                expires_at: now_micros() + micros(state.session_lifetime),
            };
            match issue_code(state, &session, authz).await {
                Ok(r) => r,
                Err(e) => return fail(state, Some(conn), "store", e).await,
            }
        }
        None => Html(
            "<!doctype html><meta charset=utf-8><title>Signed in</title><h1>Signed in</h1>\
             <p>You are signed in. You can return to the application.</p>",
        )
        .into_response(),
    };
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    no_store(&mut resp);
    resp.extensions_mut().insert(SignInOutcome("success"));
    resp
}

/// How a sign-in ended, left on the response by [`finish_sign_in`]: `denied` when the
/// organization refused a verified user. A response without it failed earlier (no flow, a bad
/// answer from the IdP, an unusable connection).
#[derive(Clone, Copy)]
struct SignInOutcome(&'static str);

/// Counts a sign-in that ended at the ACS or the OIDC callback, by protocol and outcome.
pub(super) fn count_sign_in(protocol: &'static str, resp: Response) -> Response {
    let outcome = resp
        .extensions()
        .get::<SignInOutcome>()
        .map_or("failed", |o| o.0);
    metrics::counter!("idbridge_sign_ins_total", "protocol" => protocol, "outcome" => outcome)
        .increment(1);
    resp
}

#[derive(Debug, Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// The assertion consumer service (SAML Bindings §3.5, HTTP-POST).
pub async fn saml_acs(
    state: State<AppState>,
    id: Path<String>,
    headers: HeaderMap,
    form: Form<AcsForm>,
) -> Response {
    count_sign_in("saml", acs(state, id, headers, form).await)
}

async fn acs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<AcsForm>,
) -> Response {
    let conn = match s.store.connection_by_id(&id).await {
        Ok(c) if c.kind == "saml" => c,
        Ok(c) => return fail(&s, Some(&c), "connection_invalid", "not a SAML connection").await,
        Err(e) => {
            return fail(
                &s,
                None,
                "unknown_connection",
                format!("connection {id:?}: {e}"),
            )
            .await;
        }
    };
    let missing = crate::sso::connection::missing_settings(&conn.kind, &conn.config);
    if !missing.is_empty() {
        return fail_incomplete(&s, &conn, &missing).await;
    }
    let Some(response) = form.saml_response else {
        return fail(
            &s,
            Some(&conn),
            "saml_invalid",
            "no SAMLResponse in the form",
        )
        .await;
    };
    let (settings, mut validator) = match saml_settings(&s, &conn) {
        Ok(v) => v,
        Err(e) => return fail(&s, Some(&conn), "connection_invalid", e).await,
    };
    // Our key for encrypted assertions, sealed with the connection.
    if settings.sp_encryption_certificate.is_some() {
        let key = match s.store.connection_secret(&conn.id).await {
            Ok(Some(key)) => key,
            Ok(None) => {
                return fail(
                    &s,
                    Some(&conn),
                    "connection_invalid",
                    "no SP decryption key",
                )
                .await;
            }
            Err(e) => return fail(&s, Some(&conn), "store", e).await,
        };
        validator = match validator.with_decryption_key(key.as_bytes()) {
            Ok(v) => v,
            Err(e) => return fail(&s, Some(&conn), "connection_invalid", e).await,
        };
    }
    // The RelayState we sent names the request this answers. Anything else (none, or an IdP
    // portal's own RelayState) is an unsolicited response, which the validator refuses unless the
    // connection allows IdP-initiated sign-in.
    let mut flow = None;
    if let Some(relay) = form.relay_state.as_deref().filter(|r| !r.is_empty()) {
        // The cookie is checked before the sign-in is taken, so that whoever sees a RelayState
        // cannot spend, and so cancel, someone else's sign-in by posting it first.
        match s.store.flow_connection(relay).await {
            Ok(Some(_)) if !flow_bound(&headers, relay) => {
                return fail(
                    &s,
                    Some(&conn),
                    "flow_unbound",
                    "the sign-in was started in another browser (no flow cookie)",
                )
                .await;
            }
            Ok(_) => {}
            Err(e) => return fail(&s, Some(&conn), "store", e).await,
        }
        match s.store.take_flow(relay).await {
            Ok(Some((conn_id, data))) if conn_id == conn.id => flow = Some(data),
            Ok(Some(_)) => {
                return fail(
                    &s,
                    Some(&conn),
                    "saml_invalid",
                    "RelayState of another connection",
                )
                .await;
            }
            Ok(None) => {}
            Err(e) => return fail(&s, Some(&conn), "store", e).await,
        }
    }
    let expected = flow
        .as_ref()
        .and_then(|f| f.get("saml_request_id"))
        .and_then(Value::as_str);
    let now = time::OffsetDateTime::now_utc();
    let identity = match saml::validate_response(&response, &validator, expected, now) {
        Ok(i) => i,
        Err(e) => return fail(&s, Some(&conn), "saml_invalid", e).await,
    };
    // SAML Profiles §4.1.4.5: an assertion is good for one sign-in, on every replica.
    let until = crate::store::micros(identity.replay_cache_until);
    let fresh = async {
        let mut tx = s.store.begin().await?;
        let fresh =
            crate::store::sso::remember_assertion(&mut tx, &conn.id, &identity.assertion_id, until)
                .await?;
        tx.commit().await?;
        Ok::<bool, StoreError>(fresh)
    }
    .await;
    match fresh {
        Ok(true) => {}
        Ok(false) => {
            return fail(
                &s,
                Some(&conn),
                "saml_replay",
                format!("assertion {} was already used", identity.assertion_id),
            )
            .await;
        }
        Err(e) => return fail(&s, Some(&conn), "store", e).await,
    }
    let pick = |configured: &Option<String>, defaults: &[&str]| -> Option<String> {
        match configured {
            Some(name) => identity.attribute(name).map(str::to_string),
            None => defaults
                .iter()
                .find_map(|n| identity.attribute(n))
                .map(str::to_string),
        }
    };
    let email = pick(&settings.email_attribute, EMAIL_ATTRIBUTES).or_else(|| {
        identity
            .name_id
            .contains('@')
            .then(|| identity.name_id.clone())
    });
    let name = pick(&settings.name_attribute, NAME_ATTRIBUTES);
    let groups = if identity.attributes.contains_key(SAML_GROUPS_LINK) {
        GroupClaim::Overage
    } else {
        let names: Vec<&str> = match &settings.groups_attribute {
            Some(n) => vec![n.as_str()],
            None => GROUPS_ATTRIBUTES.to_vec(),
        };
        match names.iter().find_map(|n| identity.attributes.get(*n)) {
            Some(values) => GroupClaim::Values(values.clone()),
            None => GroupClaim::Absent,
        }
    };
    let sso_identity = SsoIdentity {
        subject: identity.name_id.clone(),
        email,
        email_verified: None,
        name,
        groups,
    };
    let authz = flow.as_ref().and_then(|f| f.get("authz"));
    finish_sign_in(&s, &conn, sso_identity, authz).await
}

/// Our SP metadata for the IdP's admin (SAML Metadata §2.4.4).
pub async fn saml_metadata(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let conn = match s.store.connection_by_id(&id).await {
        Ok(c) if c.kind == "saml" => c,
        _ => return (StatusCode::NOT_FOUND, "no such SAML connection").into_response(),
    };
    // Served before the IdP's details are known: the IdP's admin needs it to make the app that
    // shows them.
    let settings: SamlSettings = match serde_json::from_value(conn.config.clone()) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(connection = %conn.id, error = %e, "SAML metadata");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "connection settings are invalid",
            )
                .into_response();
        }
    };
    let (entity, acs) = saml_endpoints(&s, &conn.id);
    let metadata = sp::SpMetadata {
        entity_id: settings.sp_entity_id.as_deref().unwrap_or(&entity),
        acs_url: &acs,
        signing_certificate: None,
        encryption_certificate: settings
            .sp_encryption_certificate
            .as_deref()
            .map(str::as_bytes),
    };
    match metadata.to_xml() {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(connection = %conn.id, error = %e, "SAML metadata");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Asks before signing out: a GET must change nothing, or any page could sign a user out with an
/// image tag.
pub async fn logout_page() -> Response {
    let mut resp = Html(
        "<!doctype html><meta charset=utf-8><title>Sign out</title><h1>Sign out</h1>\
         <form method=post action=/sso/logout><button type=submit>Sign out</button></form>",
    )
    .into_response();
    no_store(&mut resp);
    resp
}

/// Whether a POST came from another site: the browser says so in `Sec-Fetch-Site`, or its
/// `Origin` is not ours. A client that sends neither (curl, an old browser) is not a browser
/// being forged into posting.
fn cross_site(headers: &HeaderMap, public_url: &str) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return true;
    }
    let ours = url::Url::parse(public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o != ours)
}

/// Ends the browser's session, when the browser itself asks.
pub async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if cross_site(&headers, &s.public_url) {
        let mut resp = (
            StatusCode::FORBIDDEN,
            Html(
                "<!doctype html><meta charset=utf-8><title>Not signed out</title>\
                 <h1>Not signed out</h1><p>Another site asked to sign you out; \
                 <a href=/sso/logout>sign out here</a> if you meant to.</p>",
            ),
        )
            .into_response();
        no_store(&mut resp);
        return resp;
    }
    if let Some(token) = cookie_token(&headers)
        && let Err(e) = s.store.end_session(&token).await
    {
        tracing::error!(error = %e, "logout");
    }
    let mut resp =
        Html("<!doctype html><meta charset=utf-8><title>Signed out</title><h1>Signed out</h1>")
            .into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("idbridge_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    resp
}

// ---- OpenID provider ---------------------------------------------------------------------------

/// OpenID Connect Discovery 1.0 §3.
pub async fn discovery(State(s): State<AppState>) -> Response {
    let issuer = &*s.public_url;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "jwks_uri": format!("{issuer}/oauth/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "email", "name", "org", "org_roles", "accounts"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

use axum::Json;

/// How long a replica signs with the key it read before reading again: a rotation made on another
/// replica is picked up within this, and tokens signed meanwhile with the previous key still verify
/// (it stays published).
const SIGNER_TTL: Duration = Duration::from_secs(60);

/// The key that signs now, made on first use. Parsing and checking a key costs milliseconds, far
/// more than a signature, so each replica keeps the current one for a while.
async fn signing_key(state: &AppState) -> Result<SigningKey, String> {
    if let Some((at, key)) = state.signer.lock().expect("not poisoned").as_ref()
        && at.elapsed() < SIGNER_TTL
    {
        return Ok(key.clone());
    }
    let key = load_signing_key(state).await?;
    *state.signer.lock().expect("not poisoned") = Some((std::time::Instant::now(), key.clone()));
    Ok(key)
}

async fn load_signing_key(state: &AppState) -> Result<SigningKey, String> {
    let keys = state
        .store
        .signing_keys(RETIRED_KEY_PUBLISHED)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(k) = keys.iter().find(|k| k.retired_at.is_none()) {
        return SigningKey::from_pem(&k.kid, &k.private_pem).map_err(|e| e.to_string());
    }
    rotate_signing_key(&state.store, false).await
}

/// Makes a new signing key; with `retire`, the current ones stop signing (and stay published
/// until their tokens have expired).
pub async fn rotate_signing_key(
    store: &crate::store::Store,
    retire: bool,
) -> Result<SigningKey, String> {
    let key = SigningKey::generate().map_err(|e| e.to_string())?;
    store
        .add_signing_key(&key.kid, key.private_pem(), &key.public_jwk(), retire)
        .await
        .map_err(|e| e.to_string())?;
    Ok(key)
}

pub async fn jwks(State(s): State<AppState>) -> Response {
    if let Err(e) = signing_key(&s).await {
        tracing::error!(error = %e, "signing key");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    match s.store.signing_keys(RETIRED_KEY_PUBLISHED).await {
        Ok(keys) => {
            let public: Vec<Value> = keys.into_iter().map(|k| k.public_jwk).collect();
            Json(token::jwks(&public)).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "jwks");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
    org: Option<String>,
    /// The connection to sign in with, one of the organization's (an idbridge extension for an
    /// application that knows which IdP its user belongs to).
    connection: Option<String>,
    prompt: Option<String>,
}

/// An error for the client, sent back to its (verified) redirect URI: RFC 6749 §4.1.2.1, with
/// the issuer (RFC 9207 §2).
fn authz_error(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return failure_page(StatusCode::BAD_REQUEST, "invalid redirect_uri"),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", error);
        q.append_pair("error_description", description);
        if let Some(st) = client_state {
            q.append_pair("state", st);
        }
        q.append_pair("iss", &state.public_url);
    }
    Redirect::to(url.as_str()).into_response()
}

/// The authorization endpoint (OpenID Connect Core §3.1.2): code flow with PKCE S256 only.
pub async fn authorize(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    // Until the client and its redirect URI are verified, errors go to the user, never to a URI
    // (§3.1.2.6: an open redirector otherwise).
    let client = match p.client_id.as_deref() {
        Some(id) => match s.store.client(id).await {
            Ok(Some(c)) => c,
            Ok(None) => return fail(&s, None, "unknown_client", format!("client_id {id:?}")).await,
            Err(e) => return fail(&s, None, "store", e).await,
        },
        None => return fail(&s, None, "unknown_client", "no client_id").await,
    };
    let Some(redirect_uri) = p
        .redirect_uri
        .as_deref()
        .filter(|r| client.redirect_uris.iter().any(|u| u == r))
    else {
        return fail(
            &s,
            None,
            "redirect_uri_mismatch",
            format!("client {} redirect_uri {:?}", client.id, p.redirect_uri),
        )
        .await;
    };
    let err = |e: &str, d: &str| authz_error(&s, redirect_uri, p.state.as_deref(), e, d);
    if p.response_type.as_deref() != Some("code") {
        return err(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let scope = p.scope.clone().unwrap_or_default();
    if !scope.split(' ').any(|v| v == "openid") {
        return err("invalid_scope", "the openid scope is required");
    }
    if p.code_challenge_method.as_deref() != Some("S256")
        || !p
            .code_challenge
            .as_deref()
            .is_some_and(token::valid_pkce_challenge)
    {
        return err(
            "invalid_request",
            "PKCE with code_challenge_method=S256 is required",
        );
    }
    if p.state.as_ref().is_some_and(|st| st.len() > 1024)
        || p.nonce.as_ref().is_some_and(|n| n.len() > 1024)
    {
        return err(
            "invalid_request",
            "state and nonce are limited to 1024 bytes",
        );
    }
    // Which organization: the one named, the one whose domain the hint is in, or the client's own.
    let hinted = match p.login_hint.as_deref() {
        Some(hint) => match s.store.org_for_email(hint).await {
            Ok(o) => o,
            Err(e) => return fail(&s, None, "store", e).await,
        },
        None => None,
    };
    let named = match p.connection.as_deref() {
        Some(id) => match s.store.connection_by_id(id).await {
            Ok(c) => Some(c),
            Err(StoreError::NotFound) => {
                return err("invalid_request", "connection names no connection");
            }
            Err(e) => return fail(&s, None, "store", e).await,
        },
        None => None,
    };
    if let Some(c) = &named {
        if client.org_id.as_ref().is_some_and(|o| *o != c.org_id)
            || p.org.as_ref().is_some_and(|o| *o != c.org_id)
        {
            return err(
                "invalid_request",
                "connection is not a connection of this client's organization",
            );
        }
        if !c.enabled || !c.is_complete() {
            return err(
                "access_denied",
                "the connection is disabled or not set up yet",
            );
        }
    }
    let org = named
        .as_ref()
        .map(|c| c.org_id.clone())
        .or(p.org.clone())
        .or(hinted)
        .or(client.org_id.clone());
    let Some(org) = org else {
        return err(
            "invalid_request",
            "login_hint (an email of a verified domain) or org is required",
        );
    };
    if client.org_id.as_ref().is_some_and(|o| *o != org) {
        return err(
            "access_denied",
            "this client signs in users of another organization",
        );
    }
    let authz = json!({
        "client_id": client.id,
        "redirect_uri": redirect_uri,
        "state": p.state,
        "nonce": p.nonce,
        "code_challenge": p.code_challenge,
        "scope": scope,
    });
    let prompt = p.prompt.as_deref().unwrap_or("");
    if prompt.split(' ').all(|v| v != "login")
        && let Some(session) = current_session(&s, &headers).await
        && session.org_id == org
    {
        return match issue_code(&s, &session, &authz).await {
            Ok(r) => r,
            Err(e) => fail(&s, None, "store", e).await,
        };
    }
    if prompt.split(' ').any(|v| v == "none") {
        return err("login_required", "the user is not signed in");
    }
    if let Some(conn) = named {
        return start_flow(&s, &conn, Some(authz), p.login_hint.as_deref()).await;
    }
    let conn = match p.login_hint.as_deref() {
        Some(hint) => s.store.connection_for_email(hint).await,
        None => Ok(None),
    };
    let conn = match conn {
        Ok(Some(c)) if c.org_id == org => Ok(Some(c)),
        Ok(_) => s.store.connection_for_org(&org).await,
        Err(e) => Err(e),
    };
    match conn {
        Ok(Some(conn)) => start_flow(&s, &conn, Some(authz), p.login_hint.as_deref()).await,
        Ok(None) => err(
            "access_denied",
            "the organization has no enabled SSO connection",
        ),
        Err(e) => fail(&s, None, "store", e).await,
    }
}

/// Hands the SaaS application a code for a signed-in session (§3.1.2.5).
async fn issue_code(
    state: &AppState,
    session: &LiveSession,
    authz: &Value,
) -> Result<Response, StoreError> {
    let client_id = authz["client_id"].as_str().unwrap_or_default();
    let redirect_uri = authz["redirect_uri"].as_str().unwrap_or_default();
    let data = json!({
        "redirect_uri": redirect_uri,
        "nonce": authz["nonce"],
        "code_challenge": authz["code_challenge"],
        "scope": authz["scope"],
        "auth_time": session.created_at / 1_000_000,
    });
    let code = state
        .store
        .put_code(
            client_id,
            &session.id,
            &data,
            now_micros() + micros(CODE_TTL),
        )
        .await?;
    let mut url = url::Url::parse(redirect_uri)
        .map_err(|e| StoreError::Invalid(format!("redirect_uri: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(st) = authz["state"].as_str() {
            q.append_pair("state", st);
        }
        q.append_pair("iss", &state.public_url);
    }
    let mut resp = Redirect::to(url.as_str()).into_response();
    no_store(&mut resp);
    Ok(resp)
}

/// RFC 6749 §5.2.
fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"idbridge\""),
        );
    }
    no_store(&mut resp);
    resp
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The token endpoint (OpenID Connect Core §3.1.3).
pub async fn token_endpoint(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    // RFC 6749 §2.3.1: Basic, or the form's client_id and client_secret; not both.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(token::parse_basic_auth);
    let (client_id, secret) = match (basic, f.client_id.as_deref(), f.client_secret.as_deref()) {
        (Some(b), None, None) => b,
        (Some(b), Some(id), None) if id == b.0 => b,
        (None, Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
        _ => {
            return token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required (client_secret_basic or client_secret_post)",
            );
        }
    };
    let client = match s.store.client(&client_id).await {
        Ok(Some(c))
            if openssl::memcmp::eq(
                c.secret_hash.as_bytes(),
                crate::store::directory::hash_token(&secret).as_bytes(),
            ) =>
        {
            c
        }
        Ok(_) => {
            return token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client or wrong secret",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "token endpoint");
            return token_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            );
        }
    };
    if f.grant_type.as_deref() != Some("authorization_code") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        );
    }
    let invalid = |d: &str| token_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let Some(code) = f.code.as_deref() else {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is required",
        );
    };
    let (code_client, session_id, data) = match s.store.take_code(code).await {
        Ok(Some(v)) => v,
        Ok(None) => return invalid("the code is unknown, used or expired"),
        Err(e) => {
            tracing::error!(error = %e, "token endpoint");
            return token_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            );
        }
    };
    if code_client != client.id {
        return invalid("the code was issued to another client");
    }
    if f.redirect_uri.as_deref() != data["redirect_uri"].as_str() {
        return invalid("redirect_uri differs from the authorization request's");
    }
    let challenge = data["code_challenge"].as_str().unwrap_or_default();
    if !f
        .code_verifier
        .as_deref()
        .is_some_and(|v| token::pkce_s256_matches(v, challenge))
    {
        return invalid("code_verifier does not match the code_challenge");
    }
    let session = match s.store.session_is_live(&session_id, s.session_idle).await {
        Ok(Some(session)) => session,
        Ok(None) => return invalid("the session has ended"),
        Err(e) => {
            tracing::error!(error = %e, "token endpoint");
            return token_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            );
        }
    };
    match mint_tokens(&s, &client.id, &session, &data).await {
        Ok(body) => {
            let mut resp = Json(body).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "token endpoint");
            token_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }
}

async fn mint_tokens(
    state: &AppState,
    client_id: &str,
    session: &LiveSession,
    data: &Value,
) -> Result<Value, String> {
    let now = now_micros();
    let access_expires = (now + micros(ACCESS_TOKEN_TTL)).min(session.expires_at);
    let scope = data["scope"].as_str().unwrap_or("openid");
    let access_token = state
        .store
        .put_access_token(client_id, &session.id, scope, access_expires)
        .await
        .map_err(|e| e.to_string())?;
    let mut claims = svc::user_claims(&state.store, &session.org_id, &session.org_user_id)
        .await
        .map_err(|e| e.to_string())?;
    let iat = now / 1_000_000;
    let extra = json!({
        "iss": &*state.public_url,
        "aud": client_id,
        "azp": client_id,
        "iat": iat,
        "exp": iat + ID_TOKEN_TTL.as_secs() as i64,
        "auth_time": data["auth_time"],
        "at_hash": token::at_hash(&access_token),
        "sid": session.id,
    });
    if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        c.extend(extra);
        if let Some(nonce) = data["nonce"].as_str() {
            c.insert("nonce".into(), json!(nonce));
        }
    }
    let key = signing_key(state).await?;
    let id_token = key.sign(&claims).map_err(|e| e.to_string())?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": (access_expires - now) / 1_000_000,
        "id_token": id_token,
        "scope": scope,
    }))
}

/// The UserInfo endpoint (OpenID Connect Core §5.3): the same claims as the id_token's, current.
pub async fn userinfo(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let unauthorized = |error: &str| {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        let v = if error.is_empty() {
            "Bearer".to_string()
        } else {
            format!("Bearer error=\"{error}\"")
        };
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&v).expect("static text"),
        );
        r
    };
    let Some(token) = super::extract::bearer(&headers) else {
        return unauthorized("");
    };
    let session = match s.store.access_token(&token).await {
        Ok(Some((session_id, _))) => s.store.session_is_live(&session_id, s.session_idle).await,
        Ok(None) => return unauthorized("invalid_token"),
        Err(e) => Err(e),
    };
    let session = match session {
        Ok(Some(session)) => session,
        Ok(None) => return unauthorized("invalid_token"),
        Err(e) => {
            tracing::error!(error = %e, "userinfo");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    match svc::user_claims(&s.store, &session.org_id, &session.org_user_id).await {
        Ok(claims) => {
            let mut resp = Json(claims).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// For `OidcSettings` in the OIDC half.
pub(super) fn oidc_settings(conn: &Connection) -> Result<OidcSettings, String> {
    serde_json::from_value(conn.config.clone()).map_err(|e| format!("stored settings: {e}"))
}

#[cfg(test)]
mod tests {
    use super::secure_context;

    #[test]
    fn secure_cookies_over_https_and_on_loopback_only() {
        for url in [
            "https://sso.example.com",
            "http://localhost:8080",
            "http://LOCALHOST",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080",
        ] {
            assert!(secure_context(url), "{url}");
        }
        for url in [
            "http://sso.example.com",
            "http://10.0.0.5:8080",
            "http://localhost.example.com",
            "not a url",
        ] {
            assert!(!secure_context(url), "{url}");
        }
    }
}
