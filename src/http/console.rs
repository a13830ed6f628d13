//! The self-service console under `/console`: server-rendered pages for the IT admin a portal
//! link lets in. Thin like the rest of `http`: each handler finds the session, asks it for the
//! [`Caller`](crate::service::admin::Caller) of its page's intent (403 for another intent), calls
//! the same service operation the admin API calls, and renders.
//!
//! Pages are HTML from `maud` templates, which escape every interpolated value. They run no
//! inline script and load nothing from elsewhere (the CSP below), and cannot be framed. Every
//! form carries a CSRF token derived from the session's secret; the session cookie is HttpOnly,
//! `SameSite=Lax`, `Secure` whenever browsers keep it, and scoped to `/console`.

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, extract::Query};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::sso::{cookies, no_store, secure_context};
use crate::app::AppState;
use crate::service::admin::{self as svc, AdminError};
use crate::service::console::{self as console_svc, ConsoleSession, Intent, SESSION_LIFETIME};
use crate::store::admin::AuditFilter;
use crate::store::rfc3339;

pub const CONSOLE_COOKIE: &str = "idbridge_console";

/// Only what idbridge serves: the stylesheet and the one script file, no inline script or
/// style, no plugins; forms post back here only; no framing (clickjacking).
const POLICY: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                      form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("console/console.css");
const JS: &str = include_str!("console/console.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/open/{token}", get(open))
        .route("/console/sign-out", post(sign_out))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route("/console/sso", get(sso_page))
        .route("/console/directories", get(directories_page))
        .route("/console/domains", get(domains_page))
        .route("/console/mapping", get(mapping_page))
        .route("/console/activity", get(activity_page))
}

/// The page each intent opens on, and its name in the navigation.
fn intent_page(intent: Intent) -> (&'static str, &'static str) {
    match intent {
        Intent::Sso => ("/console/sso", "Single sign-on"),
        Intent::Scim => ("/console/directories", "Directory sync (SCIM)"),
        Intent::Domains => ("/console/domains", "Domains"),
        Intent::Mapping => ("/console/mapping", "Group to role mapping"),
        Intent::Activity => ("/console/activity", "Activity"),
    }
}

// ---- the session -------------------------------------------------------------------------------

/// The console session of the request's cookie, with the CSRF token its forms carry.
pub struct Console {
    pub session: ConsoleSession,
    csrf: String,
}

/// The CSRF token of a session: a hash of its secret under a label of its own, so it is tied to
/// the session, needs no storage, and reveals nothing of the cookie it is derived from.
fn csrf_token(session_secret: &str) -> String {
    hex::encode(Sha256::digest(
        format!("idbridge console csrf\0{session_secret}").as_bytes(),
    ))
}

impl Console {
    /// Refuses a form whose CSRF token is not this session's (a page from another site, or one
    /// from an earlier session).
    fn check(&self, given: &str) -> Result<(), PageError> {
        // memcmp::eq compares in constant time and asserts equal lengths, so length first.
        if given.len() == self.csrf.len()
            && openssl::memcmp::eq(given.as_bytes(), self.csrf.as_bytes())
        {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }
}

impl FromRequestParts<AppState> for Console {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let Some(secret) = cookies(&parts.headers)
            .find(|(name, _)| *name == CONSOLE_COOKIE)
            .map(|(_, v)| v.to_string())
        else {
            return Err(PageError::NoSession);
        };
        match console_svc::authenticate(&state.store, &secret).await? {
            Some(session) => Ok(Console {
                session,
                csrf: csrf_token(&secret),
            }),
            None => Err(PageError::NoSession),
        }
    }
}

fn session_cookie(state: &AppState, value: &str, max_age_secs: u64) -> Option<HeaderValue> {
    let secure = if secure_context(&state.public_url) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{CONSOLE_COOKIE}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .ok()
}

// ---- pages -------------------------------------------------------------------------------------

/// Why a console page could not be shown, as a page.
pub enum PageError {
    NoSession,
    Csrf,
    BadForm(String),
    Admin(AdminError),
}

impl From<AdminError> for PageError {
    fn from(e: AdminError) -> Self {
        PageError::Admin(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            PageError::NoSession => (
                StatusCode::UNAUTHORIZED,
                "You are not signed in to the console, or your session has ended. Open a new \
                 link from the application you came from."
                    .to_string(),
            ),
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form could not be accepted: it did not come from this console session. \
                 Reload the page and try again."
                    .to_string(),
            ),
            PageError::BadForm(why) => (StatusCode::BAD_REQUEST, why),
            PageError::Admin(AdminError::Forbidden) => (
                StatusCode::FORBIDDEN,
                "Your link does not open this page. Ask the application you came from for a \
                 link to it."
                    .to_string(),
            ),
            PageError::Admin(AdminError::Unauthorized) => (
                StatusCode::UNAUTHORIZED,
                "Your console session has ended.".to_string(),
            ),
            PageError::Admin(AdminError::NotFound(d)) => (StatusCode::NOT_FOUND, d),
            PageError::Admin(AdminError::Invalid(d)) => (StatusCode::BAD_REQUEST, d),
            PageError::Admin(AdminError::Conflict(d)) => (StatusCode::CONFLICT, d),
            PageError::Admin(AdminError::Unavailable(d)) => (StatusCode::SERVICE_UNAVAILABLE, d),
            PageError::Admin(AdminError::Internal) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Try again in a moment.".to_string(),
            ),
        };
        let title = if status.is_server_error() {
            "Something went wrong"
        } else {
            "This did not work"
        };
        page(
            status,
            title,
            None,
            html! { p.error role="alert" { (message) } },
        )
    }
}

/// The page around `body`: a skip link, the console's name, the navigation of the session's
/// pages, its way back to the SaaS and out, and one `h1`.
fn page(status: StatusCode, title: &str, console: Option<&Console>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · idbridge console" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    p.brand { "idbridge console" }
                    @if let Some(c) = console {
                        @let (href, label) = intent_page(c.session.intent());
                        nav aria-label="Console" {
                            ul {
                                li { a href=(href) aria-current="page" { (label) } }
                                @if let Some(back) = c.session.return_url() {
                                    li { a href=(back) { "Back to the application" } }
                                }
                            }
                        }
                        form.sign-out method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(c.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                @if let Some(c) = console {
                    footer {
                        p { "This session ends at " (rfc3339::format(c.session.expires_at())) "." }
                    }
                }
            }
        }
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    no_store(&mut resp);
    resp
}

fn ok(title: &str, console: &Console, body: Markup) -> Result<Response, PageError> {
    Ok(page(StatusCode::OK, title, Some(console), body))
}

async fn css() -> Response {
    static_file("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    static_file("text/javascript; charset=utf-8", JS)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

// ---- opening and leaving -----------------------------------------------------------------------

/// Opens the session of a portal link (once) and goes to its intent's page. The cookie is
/// scoped to `/console` and lives as long as the session.
async fn open(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    match console_svc::open_portal_link(&s.store, &token).await {
        Ok(Some(opened)) => {
            let (href, _) = intent_page(opened.session.intent());
            let mut resp = Redirect::to(href).into_response();
            if let Some(cookie) = session_cookie(&s, &opened.token, SESSION_LIFETIME.as_secs()) {
                resp.headers_mut().append(header::SET_COOKIE, cookie);
            }
            no_store(&mut resp);
            resp
        }
        Ok(None) => page(
            StatusCode::NOT_FOUND,
            "This link cannot be opened",
            None,
            html! {
                p role="alert" {
                    "A console link opens once, within five minutes of being made. This one was "
                    "already used, has expired, or is not a link we made. Go back to the "
                    "application you came from and open the console again."
                }
            },
        ),
        Err(e) => PageError::Admin(e).into_response(),
    }
}

async fn home(console: Console) -> Response {
    Redirect::to(intent_page(console.session.intent()).0).into_response()
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

fn form<T>(f: Result<Form<T>, FormRejection>) -> Result<T, PageError> {
    f.map(|Form(t)| t)
        .map_err(|e| PageError::BadForm(format!("This form could not be read: {}", e.body_text())))
}

async fn sign_out(
    State(s): State<AppState>,
    console: Console,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    console.check(&form(f)?.csrf)?;
    console_svc::sign_out(&s.store, &console.session).await?;
    let mut resp = page(
        StatusCode::OK,
        "Signed out",
        None,
        html! {
            p { "You are signed out of the console." }
            @if let Some(back) = console.session.return_url() {
                p { a href=(back) { "Back to the application" } }
            }
        },
    );
    if let Some(cookie) = session_cookie(&s, "", 0) {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(resp)
}

// ---- the pages of each intent ------------------------------------------------------------------

async fn sso_page(State(s): State<AppState>, console: Console) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Sso)?;
    let connections = svc::list_connections(&s.store, &caller).await?;
    ok(
        "Single sign-on",
        &console,
        html! {
            h2 { "Connections" }
            @if connections.is_empty() {
                p { "No connection yet." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Protocol" } th scope="col" { "State" } } }
                    tbody {
                        @for c in &connections {
                            tr {
                                td { (c.name) }
                                td { (c.kind.as_str().to_uppercase()) }
                                td { @if c.enabled { "enabled" } @else { "disabled" } }
                            }
                        }
                    }
                }
            }
        },
    )
}

async fn directories_page(
    State(s): State<AppState>,
    console: Console,
) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Scim)?;
    let directories = svc::list_directories(&s.store, &caller).await?;
    ok(
        "Directory sync (SCIM)",
        &console,
        html! {
            h2 { "Directories" }
            @if directories.is_empty() {
                p { "No directory yet." }
            } @else {
                ul {
                    @for d in &directories {
                        li { (d.name) " — SCIM base URL " code { (s.public_url) "/scim/v2/" (d.id) } }
                    }
                }
            }
        },
    )
}

async fn domains_page(State(s): State<AppState>, console: Console) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Domains)?;
    let domains = svc::list_domains(&s.store, &caller).await?;
    ok(
        "Domains",
        &console,
        html! {
            h2 { "Your domains" }
            @if domains.is_empty() {
                p { "No domain claimed yet." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Domain" } th scope="col" { "State" } } }
                    tbody {
                        @for d in &domains {
                            tr {
                                td { (d.domain) }
                                td { @if d.verified { "verified" } @else { "not verified yet" } }
                            }
                        }
                    }
                }
            }
        },
    )
}

async fn mapping_page(State(s): State<AppState>, console: Console) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Mapping)?;
    let rules = svc::list_rules(&s.store, &caller).await?;
    ok(
        "Group to role mapping",
        &console,
        html! {
            h2 { "Rules" }
            @if rules.is_empty() {
                p { "No rule yet: people get the organization's default role." }
            } @else {
                ul {
                    @for r in &rules {
                        li {
                            code { (serde_json::to_string(&r.matcher).unwrap_or_default()) }
                            " grants "
                            code { (serde_json::to_string(&r.grant).unwrap_or_default()) }
                        }
                    }
                }
            }
        },
    )
}

#[derive(Deserialize)]
struct ActivityQuery {
    after: Option<i64>,
}

async fn activity_page(
    State(s): State<AppState>,
    console: Console,
    q: Result<Query<ActivityQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = q.map_err(|e| PageError::BadForm(e.body_text()))?;
    let caller = console.session.caller(Intent::Activity)?;
    let filter = AuditFilter {
        after: q.after.unwrap_or(0),
        limit: 200,
        ..Default::default()
    };
    let entries = svc::audit(&s.store, &caller, &filter).await?;
    ok(
        "Activity",
        &console,
        html! {
            h2 { "Audit log" }
            @if entries.is_empty() {
                p { "Nothing recorded yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" }
                        th scope="col" { "Detail" }
                    } }
                    tbody {
                        @for e in &entries {
                            tr {
                                td { (rfc3339::format(e.at)) }
                                td { (e.actor) }
                                td { (e.operation) " " (e.resource_type) }
                                td { (e.detail.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        },
    )
}
