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
use crate::domain::access::OrgRole;
use crate::service::admin::{self as svc, AdminError};
use crate::service::console::{self as console_svc, ConsoleSession, Intent, SESSION_LIFETIME};
use crate::service::sign_in;
use crate::service::sso as sso_svc;
use crate::store::rfc3339;

mod activity;
mod mapping;
mod oidc;
mod people;
pub(super) mod sign_in_page;
mod who_signs_in;

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
        .route("/console/sign-in", get(sign_in_page::sign_in_page))
        .route("/console/sign-in/start", get(sign_in_page::start))
        .route("/console/sign-out", post(sign_out))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route("/console/sso", get(sso_page).post(new_connection))
        .route("/console/sso/oidc", get(oidc::new_page).post(oidc::create))
        .route("/console/sso/{id}", get(wizard))
        .route("/console/sso/{id}/oidc", post(oidc::update))
        .route("/console/sso/{id}/metadata", post(give_metadata))
        .route("/console/sso/{id}/who-signs-in", post(who_signs_in::save))
        .route("/console/sso/{id}/test", get(start_test))
        .route("/console/sso/{id}/tests/{test}", get(test_page))
        .route(
            "/console/directories",
            get(directories_page).post(create_directory),
        )
        .route("/console/directories/{id}/rotate", post(rotate_token))
        .route(
            "/console/directories/{id}/tokens/{token}/revoke",
            post(revoke_token),
        )
        .route("/console/domains", get(domains_page).post(claim_domain))
        .route("/console/domains/{domain}/verify", post(verify_domain))
        .route("/console/mapping", get(mapping::mapping_page))
        .route("/console/mapping/preview", post(mapping::preview))
        .route("/console/mapping/rules", post(mapping::save))
        .route("/console/mapping/rules/{id}/delete", post(mapping::delete))
        .route(
            "/console/mapping/default-role/preview",
            post(mapping::preview_default_role),
        )
        .route(
            "/console/mapping/default-role",
            post(mapping::save_default_role),
        )
        .route("/console/people", get(people::people_page))
        .route("/console/people/{id}", get(people::person_page))
        .route(
            "/console/people/{id}/sign-out",
            post(people::sign_out_everywhere),
        )
        .route(
            "/console/people/{id}/sessions/{session}/sign-out",
            post(people::sign_out_session),
        )
        .route("/console/people/{id}/grants", post(people::add_grant))
        .route(
            "/console/people/{id}/grants/{grant}/delete",
            post(people::remove_grant),
        )
        .route("/console/activity", get(activity::activity_page))
}

/// A console role as the footer says it.
fn role_name(role: OrgRole) -> &'static str {
    match role {
        OrgRole::OrgOwner => "the owner",
        OrgRole::OrgAdmin => "an admin",
        _ => "a viewer",
    }
}

/// The page each intent opens on, and its name in the navigation.
fn intent_page(intent: Intent) -> (&'static str, &'static str) {
    match intent {
        Intent::Sso => ("/console/sso", "Single sign-on"),
        Intent::Scim => ("/console/directories", "Directory sync (SCIM)"),
        Intent::Domains => ("/console/domains", "Domains"),
        Intent::Mapping => ("/console/mapping", "Group to role mapping"),
        Intent::Activity => ("/console/activity", "Activity"),
        Intent::People => ("/console/people", "People"),
    }
}

// ---- the session -------------------------------------------------------------------------------

/// The console session of the request's cookie, with the CSRF token its forms carry.
pub struct Console {
    pub session: ConsoleSession,
    csrf: String,
    /// The request's path, so the navigation marks the page the admin is on.
    path: String,
}

impl Console {
    /// Whether this session may change what the page of `intent` shows. A viewer gets the
    /// same page without its forms, rather than forms that answer 403.
    pub(super) fn writes(&self, intent: Intent) -> bool {
        self.session
            .caller(intent)
            .is_ok_and(|c| c.require(svc::Action::Manage).is_ok())
    }

    /// `aria-current` for a navigation link: the page at `href` or one below it is shown.
    fn current(&self, href: &str) -> Option<&'static str> {
        self.path.starts_with(href).then_some("page")
    }
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

/// A form that carries a CSRF token.
trait CsrfForm {
    fn csrf(&self) -> &str;
}

impl CsrfForm for CsrfOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The forms of this file, each carrying its CSRF token in `csrf`.
macro_rules! csrf_form {
    ($($form:ty),*) => {$(
        impl CsrfForm for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    )*};
}
csrf_form!(NewConnectionForm, MetadataForm, NameForm, DomainForm);

impl Console {
    /// A form whose CSRF token is this session's, with the caller of the page's intent.
    fn accept<T: CsrfForm>(
        &self,
        f: Result<Form<T>, FormRejection>,
        intent: Intent,
    ) -> Result<(T, svc::Caller), PageError> {
        let f = form(f)?;
        self.check(f.csrf())?;
        Ok((f, self.session.caller(intent)?))
    }

    /// The caller of a button's form (a CSRF token and nothing else), for the page's intent.
    fn act(
        &self,
        f: Result<Form<CsrfOnly>, FormRejection>,
        intent: Intent,
    ) -> Result<svc::Caller, PageError> {
        Ok(self.accept(f, intent)?.1)
    }
}

/// A search box's query: `?q=`, trimmed.
#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// The trimmed text of a search box (`?q=`), blank when none; a query that cannot be read is a
/// page saying so.
struct Search(String);

impl FromRequestParts<AppState> for Search {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let Query(q) = Query::<SearchQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| PageError::BadForm(e.body_text()))?;
        Ok(Search(q.q.trim().to_string()))
    }
}

/// A table's header row, each cell a column header.
fn thead(columns: &[&str]) -> Markup {
    html! {
        thead { tr { @for c in columns { th scope="col" { (c) } } } }
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
                path: parts.uri.path().to_string(),
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

/// What a console page says of an admin operation's error, in the console's words where the
/// API's would name a token.
fn admin_message(e: AdminError) -> String {
    match e {
        AdminError::Forbidden => "Your link does not open this page, or your role does not \
                                  allow this. Ask the application you came from for a link to \
                                  it, or an organization admin."
            .to_string(),
        AdminError::Unauthorized => "Your console session has ended.".to_string(),
        AdminError::NotFound(d)
        | AdminError::Invalid(d)
        | AdminError::Conflict(d)
        | AdminError::Unavailable(d) => d,
        AdminError::Internal => "Something went wrong on our side. Try again in a moment.".into(),
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            PageError::NoSession => (
                StatusCode::UNAUTHORIZED,
                "You are not signed in to the console, or your session has ended. Open a new \
                 link from the application you came from, or sign in again at /console/sign-in."
                    .to_string(),
            ),
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form could not be accepted: it did not come from this console session. \
                 Reload the page and try again."
                    .to_string(),
            ),
            PageError::BadForm(why) => (StatusCode::BAD_REQUEST, why),
            PageError::Admin(e) => (super::error::admin_status(&e), admin_message(e)),
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
                        nav aria-label="Console" {
                            ul {
                                @for intent in c.session.intents() {
                                    @let (href, label) = intent_page(*intent);
                                    li { a href=(href) aria-current=[c.current(href)] { (label) } }
                                    // The People page shows what the mapping gives each person.
                                    @if *intent == Intent::Mapping {
                                        li { a href="/console/people" aria-current=[c.current("/console/people")] { "People" } }
                                    }
                                }
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
                        @if let Some(role) = c.session.role() {
                            p { "You signed in as " (role_name(role)) " of this organization."
                                @if role == OrgRole::OrgViewer { " You can read these pages; changes need an owner or an admin." } }
                        }
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

#[tracing::instrument(skip_all)]
async fn css() -> Response {
    static_file("text/css; charset=utf-8", CSS)
}

#[tracing::instrument(skip_all)]
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
#[tracing::instrument(skip_all)]
async fn open(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    match console_svc::open_portal_link(&s.store, &token).await {
        Ok(Some(opened)) => {
            let (href, _) = intent_page(opened.session.intents()[0]);
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

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
async fn home(console: Console) -> Response {
    Redirect::to(intent_page(console.session.intents()[0]).0).into_response()
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

fn form<T>(f: Result<Form<T>, FormRejection>) -> Result<T, PageError> {
    f.map(|Form(t)| t)
        .map_err(|e| PageError::BadForm(format!("This form could not be read: {}", e.body_text())))
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
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

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
async fn sso_page(State(s): State<AppState>, console: Console) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Sso)?;
    let connections = svc::list_connections(&s.store, &caller).await?;
    ok(
        "Single sign-on",
        &console,
        html! {
            h2 { "Connections" }
            @if connections.is_empty() {
                p { "No connection yet: set one up below." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Protocol" }
                        th scope="col" { "State" } th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for c in &connections {
                            @let view = sso_svc::connection_view(&s.public_url, c.clone());
                            tr {
                                td { (c.name) }
                                td { (c.kind.as_str().to_uppercase()) }
                                td {
                                    @if !view.missing.is_empty() { "waiting for the IdP's details" }
                                    @else if c.enabled { "ready" } @else { "disabled" }
                                }
                                td { a href={ "/console/sso/" (c.id) } { "Set up " (c.name) } }
                            }
                        }
                    }
                }
            }
            @if console.writes(Intent::Sso) {
                h2 { "Set up a new connection" }
                form.stack method="post" action="/console/sso" {
                    input type="hidden" name="csrf" value=(console.csrf);
                    fieldset {
                        legend { "Your identity provider" }
                        @for (i, idp) in IDPS.iter().enumerate() {
                            div {
                                input type="radio" name="idp" id={ "idp-" (idp.key) } value=(idp.key) checked[i == 0];
                                " "
                                label.inline for={ "idp-" (idp.key) } { (idp.label) }
                            }
                        }
                        @for idp in oidc::OIDC_IDPS {
                            div {
                                input type="radio" name="idp" id={ "idp-" (idp.key) } value=(idp.key);
                                " "
                                label.inline for={ "idp-" (idp.key) } { (idp.label) }
                            }
                        }
                    }
                    div { button type="submit" { "Start" } }
                }
            }
        },
    )
}

/// An IdP's SAML set-up screens: what they call our values, in the order they ask for them, and
/// where their metadata is found.
struct Idp {
    key: &'static str,
    label: &'static str,
    /// (their label, which of our values: "acs", "entity", "metadata")
    fields: &'static [(&'static str, &'static str)],
    metadata_hint: &'static str,
}

const IDPS: &[Idp] = &[
    Idp {
        key: "okta",
        label: "Okta (SAML)",
        fields: &[
            ("Single sign-on URL", "acs"),
            ("Audience URI (SP Entity ID)", "entity"),
        ],
        metadata_hint: "In Okta, open the application's Sign On tab and copy the Metadata URL.",
    },
    Idp {
        key: "entra",
        label: "Microsoft Entra ID (SAML)",
        fields: &[
            ("Identifier (Entity ID)", "entity"),
            ("Reply URL (Assertion Consumer Service URL)", "acs"),
        ],
        metadata_hint: "In Entra, under Single sign-on, section SAML Certificates, copy the App \
                        Federation Metadata Url.",
    },
    Idp {
        key: "google",
        label: "Google Workspace (SAML)",
        fields: &[("ACS URL", "acs"), ("Entity ID", "entity")],
        metadata_hint: "In the Google Admin console, on the custom SAML app's Google Identity \
                        Provider details, choose Download metadata and paste the file's content.",
    },
    Idp {
        key: "saml",
        label: "Another SAML 2.0 identity provider",
        fields: &[
            ("Service provider metadata URL", "metadata"),
            ("Assertion consumer service (ACS) URL", "acs"),
            ("Service provider entity ID (audience)", "entity"),
        ],
        metadata_hint: "Give the identity provider's metadata URL or XML, or its entity ID, \
                        single sign-on URL and signing certificate.",
    },
];

fn idp(key: Option<&str>) -> &'static Idp {
    IDPS.iter()
        .find(|i| Some(i.key) == key)
        .unwrap_or(&IDPS[IDPS.len() - 1])
}

#[derive(Deserialize)]
struct NewConnectionForm {
    csrf: String,
    idp: String,
}

/// Starts a SAML connection for the chosen IdP, without its details yet: our values come first,
/// since Okta and Entra show their metadata only once they have them.
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
async fn new_connection(
    State(s): State<AppState>,
    console: Console,
    f: Result<Form<NewConnectionForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Sso)?;
    // An OIDC connection is made with the IdP's details, on the wizard's first page.
    if let Some(idp) = oidc::oidc_idp(Some(&f.idp)) {
        return Ok(Redirect::to(&format!("/console/sso/oidc?idp={}", idp.key)).into_response());
    }
    let idp = idp(Some(&f.idp));
    let input = sso_svc::ConnectionInput {
        name: idp.label.to_string(),
        jit: false,
        enabled: true,
        signs_in_owner: false,
        allow_other_domains: false,
        oidc: None,
        saml: Some(Default::default()),
    };
    let conn = sso_svc::create_connection(&s.store, &caller, &s.outbound, input).await?;
    Ok(Redirect::to(&format!("/console/sso/{}?idp={}", conn.id, idp.key)).into_response())
}

#[derive(Deserialize)]
struct WizardQuery {
    idp: Option<String>,
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), connection_id = id))]
async fn wizard(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    q: Result<Query<WizardQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = q.map_err(|e| PageError::BadForm(e.body_text()))?;
    wizard_page(&s, &console, &id, q.idp.as_deref(), None).await
}

/// The wizard: our values in the IdP's order, then their metadata, then a test sign-in. `error`
/// is what was wrong with the metadata just given.
async fn wizard_page(
    s: &AppState,
    console: &Console,
    id: &str,
    idp_key: Option<&str>,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Sso)?;
    let conn = svc::get_connection(&s.store, &caller, id).await?;
    if conn.kind == crate::domain::access::ConnectionKind::Oidc {
        return Ok(oidc::wizard(s, console, &conn, idp_key));
    }
    let view = sso_svc::connection_view(&s.public_url, conn.clone());
    let idp = idp(idp_key);
    let value = |which: &str| -> String {
        let key = match which {
            "acs" => "acs_url",
            "entity" => "sp_entity_id",
            _ => "sp_metadata_url",
        };
        view.endpoints
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let complete = view.missing.is_empty();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        p { "Set up single sign-on with " (idp.label) ", in four steps." }
        ol.steps {
            li {
                h2 { "Give your identity provider our values" }
                p { "Create a SAML application in " (idp.label) " and fill in these fields:" }
                dl.values {
                    @for (i, (label, which)) in idp.fields.iter().enumerate() {
                        dt { (label) }
                        dd {
                            span.value id={ "value-" (i) } { (value(which)) }
                            button.secondary type="button" data-copy={ "value-" (i) } hidden
                                aria-label={ "Copy " (label) } { "Copy" }
                        }
                    }
                }
                p.hint { "Send the user's email address as the NameID or an attribute named email, \
                          and their groups in an attribute named groups." }
            }
            li {
                h2 { "Give us your identity provider's details" }
                @if let Some(e) = error {
                    p.error role="alert" id="metadata-error" { (e) }
                }
                @if complete {
                    p.notice { "We have your identity provider's details. Give them again to replace them." }
                }
                p { (idp.metadata_hint) }
                @if console.writes(Intent::Sso) {
                    form.stack method="post" action={ "/console/sso/" (view.connection.id) "/metadata" } {
                        input type="hidden" name="csrf" value=(console.csrf);
                        input type="hidden" name="idp" value=(idp.key);
                        (field("metadata_url", "Metadata URL", "url"))
                        // Shown by the script, which reads the file into the box below: without it,
                        // the XML is pasted.
                        div data-needs-script hidden {
                            label for="metadata_file" { "Or upload the metadata file" }
                            input type="file" id="metadata_file" accept=".xml,application/xml,text/xml"
                                data-into="metadata_xml";
                        }
                        (field("metadata_xml", "Or the metadata XML", "textarea"))
                        details {
                            summary { "Or the certificate and single sign-on URL" }
                            (field("idp_entity_id", "Identity provider entity ID (issuer)", "text"))
                            (field("idp_sso_url", "Single sign-on URL", "url"))
                            (field("idp_certificate", "Signing certificate (PEM)", "textarea"))
                        }
                        div { button type="submit" { "Save" } }
                    }
                }
            }
            (who_signs_in::step(console, &conn, idp.key))
            li #test {
                h2 { "Test the sign-in" }
                @if complete {
                    p { "Sign in through " (idp.label) " as one of your users: we show what it sends \
                         and what access that person would get. Nobody is signed in to the application." }
                    p { a.button href={ "/console/sso/" (view.connection.id) "/test" } { "Test sign-in" } }
                } @else {
                    p { "Once we have your identity provider's details, you can test the sign-in here." }
                }
            }
        }
    };
    Ok(page(
        status,
        &format!("Set up {}", view.connection.name),
        Some(console),
        body,
    ))
}

/// A labelled form field: an input of `kind`, or a textarea.
fn field(name: &str, label: &str, kind: &str) -> Markup {
    html! {
        div {
            label for=(name) { (label) }
            @if kind == "textarea" {
                textarea id=(name) name=(name) {}
            } @else {
                input type=(kind) id=(name) name=(name);
            }
        }
    }
}

#[derive(Deserialize)]
struct MetadataForm {
    csrf: String,
    idp: Option<String>,
    #[serde(default)]
    metadata_url: String,
    #[serde(default)]
    metadata_xml: String,
    #[serde(default)]
    idp_entity_id: String,
    #[serde(default)]
    idp_sso_url: String,
    #[serde(default)]
    idp_certificate: String,
}

/// Takes the IdP's details in whichever form they were given, through the same update as the
/// admin API's PATCH; a refusal is said on the wizard, above the form.
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), connection_id = id))]
async fn give_metadata(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    f: Result<Form<MetadataForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Sso)?;
    let given = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let mut saml = sso_svc::SamlInput::default();
    if let Some(url) = given(&f.metadata_url) {
        saml.metadata_url = Some(url);
    } else if let Some(xml) = given(&f.metadata_xml) {
        saml.metadata_xml = Some(xml);
    } else {
        saml.idp_entity_id = given(&f.idp_entity_id);
        saml.idp_sso_url = given(&f.idp_sso_url);
        saml.idp_certificates = given(&f.idp_certificate).map(|c| vec![c]);
    }
    if saml.metadata_url.is_none()
        && saml.metadata_xml.is_none()
        && (saml.idp_entity_id.is_none()
            || saml.idp_sso_url.is_none()
            || saml.idp_certificates.is_none())
    {
        let why = "Give the metadata URL, the metadata XML, or all three of the entity ID, the \
                   single sign-on URL and the certificate.";
        return wizard_page(&s, &console, &id, f.idp.as_deref(), Some(why)).await;
    }
    let patch = sso_svc::ConnectionPatch {
        name: None,
        jit: None,
        enabled: None,
        signs_in_owner: None,
        allow_other_domains: None,
        oidc: None,
        saml: Some(saml),
    };
    match sso_svc::update_connection(&s.store, &caller, &s.outbound, &id, patch).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "/console/sso/{id}?idp={}",
            idp(f.idp.as_deref()).key
        ))
        .into_response()),
        Err(AdminError::Invalid(why)) => {
            wizard_page(&s, &console, &id, f.idp.as_deref(), Some(&why)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends the admin's browser to their IdP for a test sign-in bound to this console session.
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), connection_id = id))]
async fn start_test(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Sso)?;
    let conn = svc::get_connection(&s.store, &caller, &id).await?;
    let started = sign_in::start_test(s.sign_in(), &conn, console.session.id()).await;
    Ok(super::sso::redirect_to_idp(&s, started).await)
}

/// The end of a test sign-in whose answer was verified: admitted without keeping anything, then
/// shown to the admin.
pub(super) async fn test_answered(state: &AppState, verified: &sign_in::Verified) -> Response {
    match console_svc::answer_test(&state.store, verified).await {
        Ok(Some((conn, test))) => {
            Redirect::to(&format!("/console/sso/{conn}/tests/{test}")).into_response()
        }
        Ok(None) => PageError::NoSession.into_response(),
        Err(e) => PageError::Admin(e).into_response(),
    }
}

/// A test sign-in whose answer did not verify: logged and audited like any failed sign-in, and
/// its reason shown to the admin.
pub(super) async fn test_failed(state: &AppState, failure: sign_in::Failure) -> Response {
    sign_in::report(&state.store, &state.rate, &failure).await;
    match console_svc::test_failed(&state.store, &failure).await {
        Ok(Some((conn, test))) => {
            Redirect::to(&format!("/console/sso/{conn}/tests/{test}")).into_response()
        }
        Ok(None) => super::sso::fail(state, failure).await,
        Err(e) => PageError::Admin(e).into_response(),
    }
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), connection_id = id, test_id = test))]
async fn test_page(
    State(s): State<AppState>,
    console: Console,
    Path((id, test)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (conn_id, r) = console_svc::test_result(&s.store, &console.session, &test).await?;
    if conn_id != id {
        return Err(AdminError::NotFound("no such test sign-in".into()).into());
    }
    let title = if r.ok {
        "The test sign-in worked"
    } else {
        "The test sign-in did not work"
    };
    let access = serde_json::to_string_pretty(&r.access).unwrap_or_default();
    ok(
        title,
        &console,
        html! {
            @if let Some(reason) = &r.reason {
                p.error role="alert" { "Why: " (reason) }
            }
            @if r.subject.is_some() {
                h2 { "What your identity provider sent" }
                dl.values {
                    dt { "Subject" } dd { span.value { (r.subject.as_deref().unwrap_or("")) } }
                    dt { "Email" } dd { span.value { (r.email.as_deref().unwrap_or("none")) } }
                    dt { "Name" } dd { span.value { (r.name.as_deref().unwrap_or("none")) } }
                    dt { "Groups" }
                    dd {
                        @match &r.groups {
                            Some(g) if !g.is_empty() => {
                                ul.groups { @for group in g { li { span.value { (group) } } } }
                            }
                            _ => { "none" }
                        }
                    }
                }
                @if let Some(note) = &r.groups_note { p.hint { (note) } }
            }
            @if r.ok {
                h2 { "What the sign-in would do" }
                p {
                    @if r.created { "It would create the user " } @else { "It matched the user " }
                    code { (r.user_id.as_deref().unwrap_or("")) }
                    ". Nobody was signed in and nothing was kept."
                }
                h3 { "The access the mapping would give" }
                // Focusable, so that a keyboard can scroll it.
                pre tabindex="0" aria-label="The access, with its reasons" { code { (access) } }
            }
            p { a href={ "/console/sso/" (id) } { "Back to the set-up" } }
        },
    )
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
async fn directories_page(
    State(s): State<AppState>,
    console: Console,
) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Scim)?;
    let directories = console_svc::directory_summaries(&s.store, &caller, &s.public_url).await?;
    let when = |t: Option<i64>| t.map_or("never".to_string(), rfc3339::format);
    ok(
        "Directory sync (SCIM)",
        &console,
        html! {
            p { "Your identity provider creates, updates and removes your people and groups here \
                 with SCIM 2.0. Give it a directory's base URL and token." }
            @if directories.is_empty() {
                p { "No directory yet." }
            }
            @for (i, d) in directories.iter().enumerate() {
                section aria-labelledby={ "dir-" (i) } {
                    h2 id={ "dir-" (i) } { (d.directory.name) }
                    dl.values {
                        dt { "SCIM base URL" }
                        dd {
                            span.value id={ "url-" (i) } { (d.scim_base_url) }
                            button.secondary type="button" data-copy={ "url-" (i) } hidden
                                aria-label="Copy the SCIM base URL" { "Copy" }
                        }
                        dt { "Last request" } dd { (when(d.last_request_at)) }
                        dt { "Users" } dd { (d.users) }
                        dt { "Groups" } dd { (d.groups) }
                    }
                    h3 { "Tokens" }
                    table {
                        thead { tr {
                            th scope="col" { "Token" } th scope="col" { "Created" }
                            th scope="col" { "Last used" } th scope="col" { "State" }
                            th scope="col" { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for t in &d.tokens {
                                tr {
                                    td { code { (t.id) } }
                                    td { (rfc3339::format(t.created_at)) }
                                    td { (when(t.last_used_at)) }
                                    td { @if t.revoked_at.is_some() { "revoked" } @else { "valid" } }
                                    td {
                                        @if t.revoked_at.is_none() {
                                            @if console.writes(Intent::Scim) {
                                                form method="post" action={ "/console/directories/" (d.directory.id) "/tokens/" (t.id) "/revoke" } {
                                                    input type="hidden" name="csrf" value=(console.csrf);
                                                    button.danger type="submit" aria-label={ "Revoke token " (t.id) } { "Revoke" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    h3 { "Recent errors" }
                    @if d.failures.is_empty() {
                        p { "No failed request among the last ones." }
                    } @else {
                        table {
                            caption.visually-hidden { "The last failed SCIM requests of " (d.directory.name) ", newest first" }
                            (thead(&["When", "Request", "Status", "scimType", "Detail"]))
                            tbody {
                                @for f in &d.failures {
                                    tr {
                                        td { (rfc3339::format(f.at)) }
                                        td { code { (f.method) " " (f.path) } }
                                        td { (f.status) }
                                        td { (f.scim_type.as_deref().unwrap_or("")) }
                                        td { (f.detail.as_deref().unwrap_or("")) }
                                    }
                                }
                            }
                        }
                    }
                    @if console.writes(Intent::Scim) {
                        form method="post" action={ "/console/directories/" (d.directory.id) "/rotate" } {
                            input type="hidden" name="csrf" value=(console.csrf);
                            button.secondary type="submit" { "New token for " (d.directory.name) }
                        }
                        p.hint { "A new token does not end the old one: give the new one to your \
                                  identity provider, then revoke the old one." }
                    }
                }
            }
            @if console.writes(Intent::Scim) {
                (add_form(&console, "Create a directory", "/console/directories",
                    ("name", "Name (for example, the identity provider's name)"), "Create"))
            }
        },
    )
}

/// A heading and a form of one text field that adds something to the page's list.
fn add_form(
    console: &Console,
    heading: &str,
    action: &str,
    (name, label): (&str, &str),
    button: &str,
) -> Markup {
    html! {
        h2 { (heading) }
        form.stack method="post" action=(action) {
            input type="hidden" name="csrf" value=(console.csrf);
            (field(name, label, "text"))
            div { button type="submit" { (button) } }
        }
    }
}

/// The page that shows a token, once: it is stored only as a hash.
fn token_page(console: &Console, title: &str, base_url: &str, token: &str) -> Response {
    page(
        StatusCode::OK,
        title,
        Some(console),
        html! {
            div.secret role="status" {
                p { strong { "Copy the token now: it is shown only this once." } }
            }
            dl.values {
                dt { "SCIM base URL" }
                dd {
                    span.value id="scim-url" { (base_url) }
                    button.secondary type="button" data-copy="scim-url" hidden
                        aria-label="Copy the SCIM base URL" { "Copy" }
                }
                dt { "Token" }
                dd {
                    span.value id="scim-token" { (token) }
                    button.secondary type="button" data-copy="scim-token" hidden
                        aria-label="Copy the token" { "Copy" }
                }
            }
            p { a href="/console/directories" { "Back to the directories" } }
        },
    )
}

#[derive(Deserialize)]
struct NameForm {
    csrf: String,
    #[serde(default)]
    name: String,
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
async fn create_directory(
    State(s): State<AppState>,
    console: Console,
    f: Result<Form<NameForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Scim)?;
    let made = svc::create_directory(&s.store, &caller, &s.public_url, &f.name).await?;
    Ok(token_page(
        &console,
        &format!("Directory {} created", made.directory.name),
        &made.scim_base_url,
        &made.token.token,
    ))
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), directory_id = id))]
async fn rotate_token(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    console.check(&form(f)?.csrf)?;
    let caller = console.session.caller(Intent::Scim)?;
    let token = svc::rotate_directory_token(&s.store, &caller, &id).await?;
    Ok(token_page(
        &console,
        "New token",
        &format!("{}/scim/v2/{id}", s.public_url),
        &token.token,
    ))
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), directory_id = id, token_id = token))]
async fn revoke_token(
    State(s): State<AppState>,
    console: Console,
    Path((id, token)): Path<(String, String)>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    console.check(&form(f)?.csrf)?;
    let caller = console.session.caller(Intent::Scim)?;
    svc::revoke_directory_token(&s.store, &caller, &id, &token).await?;
    Ok(Redirect::to("/console/directories").into_response())
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
async fn domains_page(State(s): State<AppState>, console: Console) -> Result<Response, PageError> {
    render_domains(&s, &console, None).await
}

/// The domains, with `said` (what the last claim or verification found, and the status that
/// goes with it) above them.
async fn render_domains(
    s: &AppState,
    console: &Console,
    said: Option<(StatusCode, String)>,
) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Domains)?;
    let domains = svc::list_domains(&s.store, &caller).await?;
    let body = html! {
        p { "People whose email address is at a verified domain sign in through your identity \
             provider. Claim a domain, publish the DNS record we give, then verify it." }
        @if let Some((status, message)) = &said {
            @if status.is_success() { p.notice role="status" { (message) } }
            @else { p.error role="alert" { (message) } }
        }
        @if domains.is_empty() {
            p { "No domain claimed yet." }
        }
        @for (i, d) in domains.iter().enumerate() {
            section aria-labelledby={ "domain-" (i) } {
                h2 id={ "domain-" (i) } { (d.domain) }
                @if d.verified {
                    p { "Verified"
                        @if let Some(at) = d.verified_at { " on " (rfc3339::format(at)) } "." }
                } @else {
                    p { "Not verified yet. Publish this DNS record:" }
                    dl.values {
                        dt { "Type" } dd { span.value { (d.verification.record_type) } }
                        dt { "Name" }
                        dd {
                            span.value id={ "txt-name-" (i) } { (d.verification.name) }
                            button.secondary type="button" data-copy={ "txt-name-" (i) } hidden
                                aria-label={ "Copy the record name for " (d.domain) } { "Copy" }
                        }
                        dt { "Value" }
                        dd {
                            span.value id={ "txt-value-" (i) } { (d.verification.value) }
                            button.secondary type="button" data-copy={ "txt-value-" (i) } hidden
                                aria-label={ "Copy the record value for " (d.domain) } { "Copy" }
                        }
                    }
                    @if console.writes(Intent::Domains) {
                        form method="post" action={ "/console/domains/" (d.domain) "/verify" } {
                            input type="hidden" name="csrf" value=(console.csrf);
                            button type="submit" { "Verify " (d.domain) }
                        }
                    }
                }
            }
        }
        @if console.writes(Intent::Domains) {
            (add_form(console, "Claim a domain", "/console/domains",
                ("domain", "Domain (for example, example.com)"), "Claim"))
        }
    };
    let status = said.as_ref().map_or(StatusCode::OK, |(status, _)| *status);
    Ok(page(status, "Domains", Some(console), body))
}

#[derive(Deserialize)]
struct DomainForm {
    csrf: String,
    #[serde(default)]
    domain: String,
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
async fn claim_domain(
    State(s): State<AppState>,
    console: Console,
    f: Result<Form<DomainForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Domains)?;
    match svc::add_domain(&s.store, &caller, f.domain.trim(), None).await {
        Ok(_) => Ok(Redirect::to("/console/domains").into_response()),
        Err(e @ (AdminError::Invalid(_) | AdminError::Conflict(_))) => {
            let said = (super::error::admin_status(&e), admin_message(e));
            render_domains(&s, &console, Some(said)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Looks the TXT record up and says what DNS answered.
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), domain = domain))]
async fn verify_domain(
    State(s): State<AppState>,
    console: Console,
    Path(domain): Path<String>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    console.check(&form(f)?.csrf)?;
    let caller = console.session.caller(Intent::Domains)?;
    let said = match sso_svc::verify_domain(&s.store, &s.dns, &caller, &domain).await {
        Ok(d) => (StatusCode::OK, format!("{} is verified.", d.domain)),
        Err(e @ (AdminError::Conflict(_) | AdminError::Unavailable(_))) => {
            (super::error::admin_status(&e), admin_message(e))
        }
        Err(e) => return Err(e.into()),
    };
    render_domains(&s, &console, Some(said)).await
}
