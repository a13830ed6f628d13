//! Signing in to the console through the organization's own SSO, for its owner and admins (and
//! viewers, who read): the same sign-in as the application's (home-realm discovery by the email's
//! verified domain, or a connection picked on the organization's page), whose answer opens a
//! console session instead of an application session when the mapping gives the person one of
//! those roles. Nobody else gets anything.
//!
//! The forms here are GET forms that only start a sign-in, like `/sso/start`: there is no session
//! yet for a CSRF token to come from, and the flow cookie binds the answer to this browser.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{PageError, intent_page, page, session_cookie};
use crate::app::AppState;
use crate::http::extract::ClientAddr;
use crate::http::sso::{no_store, redirect_to_idp, sign_in_limited};
use crate::service::console::{self as console_svc, ConsoleSignIn, SESSION_LIFETIME};
use crate::service::sign_in::{self, ConsoleIdp, Failure};

#[derive(Deserialize)]
pub(super) struct SignInQuery {
    org: Option<String>,
    email: Option<String>,
    connection: Option<String>,
}

/// The sign-in page: a work email address, or with `?org=` that organization's connections.
#[tracing::instrument(skip_all)]
pub(super) async fn sign_in_page(
    State(s): State<AppState>,
    q: Result<Query<SignInQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = q.map_err(|e| PageError::BadForm(e.body_text()))?;
    let connections = match q.org.as_deref().filter(|o| !o.is_empty() && o.len() <= 64) {
        Some(org) => Some(console_svc::sign_in_connections(&s.store, org).await?),
        None => None,
    };
    Ok(page(
        StatusCode::OK,
        "Sign in to the console",
        None,
        html! {
            p { "Owners and admins of an organization sign in here with their organization's \
                 single sign-on; what the console lets you do follows your role." }
            @if let Some(connections) = &connections {
                @if connections.is_empty() {
                    p { "This organization has no single sign-on connection ready. Sign in with \
                         your email address below, or open the console from your application." }
                } @else {
                    h2 { "Your organization's single sign-on" }
                    ul {
                        @for c in connections {
                            li { a.button href={ "/console/sign-in/start?connection=" (c.id) } { "Sign in with " (c.name) } }
                        }
                    }
                }
            }
            h2 { "Sign in with your work email" }
            form.stack method="get" action="/console/sign-in/start" {
                div {
                    label for="email" { "Work email address" }
                    input type="email" id="email" name="email" autocomplete="email" required;
                }
                div { button type="submit" { "Continue" } }
            }
        },
    ))
}

/// A console page saying why no sign-in started.
fn not_started(status: StatusCode, why: &str) -> Response {
    page(
        status,
        "The sign-in could not start",
        None,
        html! {
            p.error role="alert" { (why) }
            p { a href="/console/sign-in" { "Back to the sign-in" } }
        },
    )
}

/// Starts the sign-in at the IdP of the connection named, or of the email's verified domain.
#[tracing::instrument(skip_all)]
pub(super) async fn start(
    State(s): State<AppState>,
    client: ClientAddr,
    q: Result<Query<SignInQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return not_started(StatusCode::BAD_REQUEST, "This address could not be read.");
    };
    if let Some(resp) = sign_in_limited(&s, &client, q.connection.as_deref()) {
        return resp;
    }
    let conn = if let Some(id) = q.connection.as_deref() {
        match sign_in::console_connection(s.sign_in(), ConsoleIdp::Named(id)).await {
            Ok(Some(c)) => c,
            _ => {
                return not_started(
                    StatusCode::NOT_FOUND,
                    "This single sign-on connection does not exist, or is not ready.",
                );
            }
        }
    } else {
        let email = q.email.as_deref().map(str::trim).unwrap_or_default();
        if !email.contains('@') || email.len() > 320 {
            return not_started(StatusCode::BAD_REQUEST, "Give your work email address.");
        }
        match sign_in::console_connection(s.sign_in(), ConsoleIdp::ForEmail(email)).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                return not_started(
                    StatusCode::NOT_FOUND,
                    "No organization signs in people of this email address's domain here: it \
                     verified no such domain, or has no single sign-on ready for it. Check the \
                     address, or open the console from your application.",
                );
            }
            Err(e) => return PageError::Admin(e.into()).into_response(),
        }
    };
    let login_hint = q.email.as_deref().map(str::trim);
    let started = sign_in::start_console(s.sign_in(), &conn, login_hint).await;
    redirect_to_idp(&s, started).await
}

/// The end of a console sign-in whose answer was verified: a console session for an owner,
/// admin or viewer; a page saying there is no access for anyone else.
pub(in crate::http) async fn answered(state: &AppState, verified: &sign_in::Verified) -> Response {
    let no_access = |detail: String| {
        page(
            StatusCode::FORBIDDEN,
            "You have no access to the console",
            None,
            html! {
                p.error role="alert" { (detail) }
                p { "The console is for the organization's owner and admins (viewers may read \
                     it). Ask one of them for access, or for a link to the page you need." }
            },
        )
    };
    match console_svc::sign_in(&state.store, verified).await {
        Ok(ConsoleSignIn::Opened(opened)) => {
            let (href, _) = intent_page(opened.session.intents()[0]);
            let mut resp = Redirect::to(href).into_response();
            if let Some(cookie) = session_cookie(state, &opened.token, SESSION_LIFETIME.as_secs()) {
                resp.headers_mut().append(header::SET_COOKIE, cookie);
            }
            no_store(&mut resp);
            resp
        }
        Ok(ConsoleSignIn::NoAccess { email }) => no_access(format!(
            "You signed in as {email}, but your role in this organization does not open the \
             console."
        )),
        Ok(ConsoleSignIn::Refused(e)) => {
            let failure = Failure::sign_in(&verified.connection, &e);
            let reference = sign_in::report(&state.store, &state.rate, &failure).await;
            no_access(format!(
                "Your organization did not let you sign in (reference {reference})."
            ))
        }
        Err(e) => PageError::Admin(e).into_response(),
    }
}
