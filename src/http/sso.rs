//! Sign-in with the organization's IdP (`/sso/...`) and idbridge as an OpenID provider for the SaaS
//! (`/.well-known/openid-configuration`, `/oauth/...`): the requests parsed, the cookies set and
//! read, the redirects and pages. What happens in between is [`crate::service::sign_in`] and
//! [`crate::service::oauth`].
//!
//! The user sees one generic page for every failure; the log and the audit say exactly why (with a
//! reference the page shows).

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::error::{retry_after, with_retry_after};
use super::extract::ClientAddr;
use crate::app::AppState;
use crate::domain::access::ConnectionKind;
use crate::oauth::token;
use crate::rate::Limit;
use crate::service::oauth::{self, Authorize, AuthzError, TokenError, UserinfoError};
use crate::service::sign_in::{
    self, FLOW_TTL, Failure, MetadataError, OidcAnswer, SamlAnswer, Started, Verified,
};

pub const SESSION_COOKIE: &str = "idbridge_session";

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

pub(super) fn no_store(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Logs, counts and audits why a sign-in failed, and shows the page. While the database cannot be
/// reached the page says to try again in a moment, with `Retry-After`, and nothing is audited
/// (there is nowhere to write it).
pub(super) async fn fail(state: &AppState, failure: Failure) -> Response {
    if failure.unavailable {
        let reference = sign_in::report(
            &state.store,
            &state.rate,
            &Failure {
                connection: None,
                ..failure
            },
        )
        .await;
        return with_retry_after(failure_page_saying(
            StatusCode::SERVICE_UNAVAILABLE,
            &reference,
            Some("Sign-in is briefly unavailable. Try again in a moment."),
        ));
    }
    let reference = sign_in::report(&state.store, &state.rate, &failure).await;
    failure_page_saying(StatusCode::FORBIDDEN, &reference, failure.setup.as_deref())
}

/// The sign-in endpoints' limits, checked before anything is read or written: per client
/// address, then per connection when the request names one. Past either, the failure page says to
/// wait, with 429 and `Retry-After`.
pub(super) fn sign_in_limited(
    state: &AppState,
    client: &ClientAddr,
    connection: Option<&str>,
) -> Option<Response> {
    let by_address = client
        .0
        .map(|ip| state.rate.check(Limit::SignInAddress, &ip.to_string()))
        .unwrap_or(Ok(()));
    let wait = by_address
        .and_then(|()| match connection {
            Some(id) => state.rate.check(Limit::SignInConnection, id),
            None => Ok(()),
        })
        .err()?;
    let reference = crate::store::new_id();
    tracing::warn!(reference, connection, wait = wait.0, "sign-in rate limited");
    let page = failure_page_saying(
        StatusCode::TOO_MANY_REQUESTS,
        &reference,
        Some(&format!(
            "Too many sign-in attempts right now. Wait {} seconds, then try again.",
            wait.0
        )),
    );
    Some(retry_after(page, wait))
}

#[expect(
    clippy::expect_used,
    reason = "the token is URL-safe base64 we made and the rest is static text and numbers"
)]
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
pub(super) fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
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
pub(super) fn secure_context(public_url: &str) -> bool {
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
#[expect(
    clippy::expect_used,
    reason = "the state is URL-safe base64 we made and the rest is static text and numbers"
)]
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
fn flow_bound(headers: &HeaderMap, flow_state: &str) -> bool {
    let name = flow_cookie_name(flow_state);
    cookies(headers).any(|(n, v)| {
        n == name
            && v.len() == flow_state.len()
            && openssl::memcmp::eq(v.as_bytes(), flow_state.as_bytes())
    })
}

// ---- starting a sign-in ------------------------------------------------------------------------

/// Sends the browser to the IdP with the cookie that binds the sign-in to it.
pub(super) async fn redirect_to_idp(
    state: &AppState,
    started: Result<Started, Failure>,
) -> Response {
    let started = match started {
        Ok(s) => s,
        Err(f) => return fail(state, f).await,
    };
    let mut resp = Redirect::to(&started.url).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        flow_cookie(state, &started.flow_state, started.cross_site_post),
    );
    no_store(&mut resp);
    resp
}

#[derive(Debug, Deserialize)]
pub struct StartByEmail {
    email: Option<String>,
}

/// Home-realm discovery: the connection of the organization that verified the address's domain.
#[tracing::instrument(skip_all)]
pub async fn start_by_email(
    State(s): State<AppState>,
    client: ClientAddr,
    Query(q): Query<StartByEmail>,
) -> Response {
    if let Some(resp) = sign_in_limited(&s, &client, None) {
        return resp;
    }
    let started = sign_in::start_by_email(s.sign_in(), q.email.as_deref()).await;
    redirect_to_idp(&s, started).await
}

#[tracing::instrument(skip_all, fields(connection_id = id))]
pub async fn start_connection(
    State(s): State<AppState>,
    client: ClientAddr,
    Path(id): Path<String>,
) -> Response {
    if let Some(resp) = sign_in_limited(&s, &client, Some(&id)) {
        return resp;
    }
    let started = sign_in::start_with(s.sign_in(), &id).await;
    redirect_to_idp(&s, started).await
}

// ---- finishing a sign-in -----------------------------------------------------------------------

/// After the IdP's answer was verified: sign the user in, then either hand a code to the SaaS
/// application that asked, or show that the user is signed in.
async fn finish_sign_in(state: &AppState, verified: Result<Verified, Failure>) -> Response {
    let verified = match verified {
        Ok(v) => v,
        Err(f) if f.test.is_some() => return super::console::test_failed(state, f).await,
        Err(f) => return fail(state, f).await,
    };
    if verified.test.is_some() {
        return super::console::test_answered(state, &verified).await;
    }
    if verified.console {
        return super::console::sign_in_page::answered(state, &verified).await;
    }
    let Verified {
        connection: conn,
        identity,
        authz,
        ..
    } = verified;
    let signed =
        match sign_in::sign_in(&state.store, &conn, &identity, state.session_lifetime).await {
            Ok(s) => s,
            Err(e) => {
                // The IdP's answer was verified and this browser started the sign-in: the
                // refusal is the organization's word on a known user, which the application that
                // asked must hear (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6) rather than
                // strand the user here. Its redirect URI was checked when the request began.
                if let (Some(authz), Some(description)) = (&authz, e.refusal()) {
                    let failure = Failure::new(Some(&conn), e.code(), &e);
                    sign_in::report(&state.store, &state.rate, &failure).await;
                    let error = AuthzError {
                        redirect_uri: authz.redirect_uri.clone(),
                        state: authz.state.clone(),
                        error: "access_denied",
                        description,
                    };
                    let mut resp = authz_error(state, &error);
                    no_store(&mut resp);
                    resp.extensions_mut().insert(SignInOutcome("denied"));
                    return resp;
                }
                let outcome = SignInOutcome(if e.refusal().is_some() {
                    "denied"
                } else {
                    "failed"
                });
                let mut resp = fail(state, Failure::sign_in(&conn, &e)).await;
                resp.extensions_mut().insert(outcome);
                return resp;
            }
        };
    let cookie = session_cookie(state, &signed.session_token, state.session_lifetime);
    let mut resp = match authz {
        Some(authz) => {
            match oauth::issue_code(
                state.sign_in(),
                &signed.session_id,
                state.store.now(),
                &authz,
            )
            .await
            {
                Ok(url) => Redirect::to(&url).into_response(),
                Err(e) => return fail(state, Failure::new(Some(&conn), "store", e)).await,
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
fn count_sign_in(protocol: &'static str, resp: Response) -> Response {
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
#[tracing::instrument(skip_all, fields(connection_id = id))]
pub async fn saml_acs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    client: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<AcsForm>,
) -> Response {
    if let Some(resp) = sign_in_limited(&s, &client, Some(&id)) {
        return resp;
    }
    let relay_state = form.relay_state.as_deref();
    let answer = SamlAnswer {
        saml_response: form.saml_response.as_deref(),
        relay_state,
        browser_bound: relay_state.is_some_and(|r| flow_bound(&headers, r)),
    };
    let verified = sign_in::finish_saml(s.sign_in(), &id, answer).await;
    count_sign_in(
        ConnectionKind::Saml.as_str(),
        finish_sign_in(&s, verified).await,
    )
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
#[tracing::instrument(skip_all)]
pub async fn oidc_callback(
    State(s): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Query(q): Query<CallbackParams>,
) -> Response {
    // The connection is known only once the state finds the sign-in: the limit per address
    // here, and the failures' audit limit per connection, bound what a flood can do.
    if let Some(resp) = sign_in_limited(&s, &client, None) {
        return resp;
    }
    let answer = OidcAnswer {
        code: q.code.as_deref(),
        state: q.state.as_deref(),
        iss: q.iss.as_deref(),
        error: q.error.as_deref(),
        error_description: q.error_description.as_deref(),
        browser_bound: q
            .state
            .as_deref()
            .is_some_and(|st| flow_bound(&headers, st)),
    };
    let verified = sign_in::finish_oidc(s.sign_in(), answer).await;
    count_sign_in(
        ConnectionKind::Oidc.as_str(),
        finish_sign_in(&s, verified).await,
    )
}

/// Our SP metadata for the IdP's admin (SAML Metadata §2.4.4).
#[tracing::instrument(skip_all, fields(connection_id = id))]
pub async fn saml_metadata(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match sign_in::sp_metadata(s.sign_in(), &id).await {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(MetadataError::NotFound) => {
            (StatusCode::NOT_FOUND, "no such SAML connection").into_response()
        }
        Err(MetadataError::InvalidSettings) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "connection settings are invalid",
        )
            .into_response(),
        Err(MetadataError::Internal) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Asks before signing out: a GET must change nothing, or any page could sign a user out with an
/// image tag.
#[tracing::instrument(skip_all)]
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
#[tracing::instrument(skip_all)]
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
    if let Some(token) = cookie_token(&headers) {
        sign_in::sign_out(&s.store, &token).await;
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
#[tracing::instrument(skip_all)]
pub async fn discovery(State(s): State<AppState>) -> Response {
    Json(oauth::discovery_document(&s.public_url)).into_response()
}

#[tracing::instrument(skip_all)]
pub async fn jwks(State(s): State<AppState>) -> Response {
    match oauth::jwks(s.sign_in()).await {
        Ok(keys) => Json(keys).into_response(),
        Err(()) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// An error for the client at its verified redirect URI.
fn authz_error(state: &AppState, error: &AuthzError) -> Response {
    match error.url(&state.public_url) {
        Some(url) => Redirect::to(&url).into_response(),
        None => failure_page(StatusCode::BAD_REQUEST, "invalid redirect_uri"),
    }
}

/// The authorization endpoint (OpenID Connect Core §3.1.2).
#[tracing::instrument(skip_all)]
pub async fn authorize(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<oauth::AuthorizeParams>,
) -> Response {
    let session = cookie_token(&headers);
    match oauth::authorize(s.sign_in(), p, session.as_deref()).await {
        Authorize::Fail { code, reason } => fail(&s, Failure::new(None, code, reason)).await,
        Authorize::Error(e) => authz_error(&s, &e),
        Authorize::Code(url) => {
            let mut resp = Redirect::to(&url).into_response();
            no_store(&mut resp);
            resp
        }
        Authorize::SignIn {
            connection,
            authz,
            login_hint,
        } => {
            let started =
                sign_in::start(s.sign_in(), &connection, Some(authz), login_hint.as_deref()).await;
            redirect_to_idp(&s, started).await
        }
    }
}

/// The token endpoint (OpenID Connect Core §3.1.3), errors as RFC 6749 §5.2 has them.
#[tracing::instrument(skip_all)]
pub async fn token_endpoint(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<oauth::TokenRequest>,
) -> Response {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(token::parse_basic_auth);
    // Keyed by the client_id the request claims, before it is checked: a flood of bad secrets
    // for one client is what this limit stops.
    let client_id = basic
        .as_ref()
        .map(|(id, _)| id.as_str())
        .or(f.client_id.as_deref())
        // An id no client has (they are short) shares one key rather than pin memory.
        .filter(|id| id.len() <= 128)
        .unwrap_or_default();
    if let Err(wait) = s.rate.check(Limit::Token, client_id) {
        // RFC 6749 §5.2 has no code for a rate limit; `temporarily_unavailable` is the one
        // clients read as "try again later" (§4.1.2.1), and 429 with Retry-After says when.
        let body = serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": format!(
                "this client sent more token requests than its rate limit allows; retry after {} s",
                wait.0
            ),
        });
        let mut resp = retry_after(
            (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response(),
            wait,
        );
        no_store(&mut resp);
        return resp;
    }
    let mut resp = match oauth::exchange_code(s.sign_in(), basic, f).await {
        Ok(body) => Json(body).into_response(),
        Err(e) => {
            let status = match e {
                TokenError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
                TokenError::Server => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            let body =
                serde_json::json!({ "error": e.error(), "error_description": e.description() });
            let mut resp = (status, Json(body)).into_response();
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"idbridge\""),
                );
            }
            resp
        }
    };
    no_store(&mut resp);
    resp
}

/// The UserInfo endpoint (OpenID Connect Core §5.3), a bearer token's errors as RFC 6750 §3.
#[tracing::instrument(skip_all)]
pub async fn userinfo(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let unauthorized = |challenge: &'static str| {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        r
    };
    let Some(token) = super::extract::bearer(&headers) else {
        return unauthorized("Bearer");
    };
    match oauth::userinfo(s.sign_in(), &token).await {
        Ok(claims) => {
            let mut resp = Json(claims).into_response();
            no_store(&mut resp);
            resp
        }
        Err(UserinfoError::InvalidToken) => unauthorized("Bearer error=\"invalid_token\""),
        Err(UserinfoError::Server) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
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
