//! The OpenID Connect wizards (Microsoft Entra ID, and any other provider): our redirect URI in
//! the order the IdP's screens ask for it, then the issuer, client id and client secret, then the
//! test sign-in the SAML wizards have too.
//!
//! Unlike a SAML connection, an OIDC one cannot exist without the IdP's details (the service
//! checks its discovery document when it is made, and needs the secret), and our redirect URI
//! is the same for every connection. So the first page shows our values and takes theirs before
//! any connection is made; a refused form is shown again with what was typed, except the
//! secret, which never goes back into a page.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Console, CsrfForm, PageError, page};
use crate::app::AppState;
use crate::service::admin::{self as svc, AdminError};
use crate::service::console::Intent;
use crate::service::sso as sso_svc;
use crate::sso::connection::OidcSettings;
use crate::store::sso::Connection;

/// An OIDC IdP's set-up screens, as the wizard tells them.
pub(super) struct OidcIdp {
    pub key: &'static str,
    pub label: &'static str,
}

pub(super) const OIDC_IDPS: &[OidcIdp] = &[
    OidcIdp {
        key: "entra-oidc",
        label: "Microsoft Entra ID (OIDC)",
    },
    OidcIdp {
        key: "oidc",
        label: "Another OpenID Connect provider",
    },
];

pub(super) fn oidc_idp(key: Option<&str>) -> Option<&'static OidcIdp> {
    OIDC_IDPS.iter().find(|i| Some(i.key) == key)
}

fn entra(idp: &OidcIdp) -> bool {
    idp.key == "entra-oidc"
}

/// What the admin typed (or what is stored), shown back in the form. Never the secret.
#[derive(Debug, Default, Deserialize)]
pub(super) struct OidcForm {
    #[serde(default)]
    csrf: String,
    idp: Option<String>,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    /// Space-separated; blank for the defaults.
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    groups_claim: String,
}

impl CsrfForm for OidcForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl OidcForm {
    fn stored(conn: &Connection) -> OidcForm {
        let settings: Option<OidcSettings> = serde_json::from_value(conn.config.clone()).ok();
        settings.map_or_else(OidcForm::default, |s| OidcForm {
            issuer: s.issuer,
            client_id: s.client_id,
            scopes: s.scopes.join(" "),
            groups_claim: s.groups_claim,
            ..OidcForm::default()
        })
    }

    /// The settings the service checks: blank scopes and groups claim take its defaults.
    fn input(&self) -> Result<sso_svc::OidcInput, String> {
        let given = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        let mut settings = serde_json::json!({
            "issuer": self.issuer.trim(),
            "client_id": self.client_id.trim(),
        });
        if let Some(scopes) = given(&self.scopes) {
            settings["scopes"] = scopes.split_whitespace().collect::<Vec<_>>().into();
        }
        if let Some(claim) = given(&self.groups_claim) {
            settings["groups_claim"] = claim.into();
        }
        Ok(sso_svc::OidcInput {
            settings: serde_json::from_value(settings).map_err(|e| e.to_string())?,
            client_secret: given(&self.client_secret),
        })
    }

    /// What is missing, in words; `with_secret` when a secret must be given (a new connection).
    fn missing(&self, with_secret: bool) -> Option<String> {
        let mut missing = Vec::new();
        if self.issuer.trim().is_empty() {
            missing.push("the issuer URL");
        }
        if self.client_id.trim().is_empty() {
            missing.push("the client ID");
        }
        if with_secret && self.client_secret.trim().is_empty() {
            missing.push("the client secret");
        }
        match missing.as_slice() {
            [] => None,
            [one] => Some(format!("Give {one}.")),
            [init @ .., last] => Some(format!("Give {} and {last}.", init.join(", "))),
        }
    }
}

/// Why the service refused the settings, for the person who typed them.
fn refusal(e: AdminError) -> Result<String, PageError> {
    match e {
        AdminError::Invalid(why) => Ok(format!(
            "Your identity provider's details were not accepted: {why}"
        )),
        e => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct NewQuery {
    idp: Option<String>,
}

/// The wizard before the connection exists: our values, and the form for theirs.
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
pub(super) async fn new_page(
    State(s): State<AppState>,
    console: Console,
    q: Result<Query<NewQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = q.map_err(|e| PageError::BadForm(e.body_text()))?;
    console.session.caller(Intent::Sso)?;
    let idp = oidc_idp(q.idp.as_deref()).unwrap_or(&OIDC_IDPS[OIDC_IDPS.len() - 1]);
    Ok(render(&s, &console, idp, None, &OidcForm::default(), None))
}

/// Makes the connection through the same operation as the admin API's POST.
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
pub(super) async fn create(
    State(s): State<AppState>,
    console: Console,
    f: Result<Form<OidcForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Sso)?;
    let idp = oidc_idp(f.idp.as_deref()).unwrap_or(&OIDC_IDPS[OIDC_IDPS.len() - 1]);
    if let Some(why) = f.missing(true) {
        return Ok(render(&s, &console, idp, None, &f, Some(&why)));
    }
    let oidc = match f.input() {
        Ok(oidc) => oidc,
        Err(why) => return Ok(render(&s, &console, idp, None, &f, Some(&why))),
    };
    let input = sso_svc::ConnectionInput {
        name: idp.label.to_string(),
        jit: false,
        enabled: true,
        signs_in_owner: false,
        allow_other_domains: false,
        oidc: Some(oidc),
        saml: None,
    };
    match sso_svc::create_connection(&s.store, &caller, &s.outbound, input).await {
        Ok(conn) => {
            Ok(Redirect::to(&format!("/console/sso/{}?idp={}", conn.id, idp.key)).into_response())
        }
        Err(e) => {
            let why = refusal(e)?;
            Ok(render(&s, &console, idp, None, &f, Some(&why)))
        }
    }
}

/// The wizard of an OIDC connection that exists: its settings in the form, and the test.
pub(super) fn wizard(
    s: &AppState,
    console: &Console,
    conn: &Connection,
    idp_key: Option<&str>,
) -> Response {
    // Without a choice in the address, the wizard the connection was made with.
    let idp = oidc_idp(idp_key)
        .or_else(|| OIDC_IDPS.iter().find(|i| i.label == conn.name))
        .unwrap_or(&OIDC_IDPS[OIDC_IDPS.len() - 1]);
    render(s, console, idp, Some(conn), &OidcForm::stored(conn), None)
}

/// Replaces the connection's settings through the same operation as the admin API's PATCH; a
/// blank secret keeps the one stored.
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), connection_id = id))]
pub(super) async fn update(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    f: Result<Form<OidcForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Sso)?;
    let conn = svc::get_connection(&s.store, &caller, &id).await?;
    let idp = oidc_idp(f.idp.as_deref()).unwrap_or(&OIDC_IDPS[OIDC_IDPS.len() - 1]);
    if let Some(why) = f.missing(false) {
        return Ok(render(&s, &console, idp, Some(&conn), &f, Some(&why)));
    }
    let oidc = match f.input() {
        Ok(oidc) => oidc,
        Err(why) => return Ok(render(&s, &console, idp, Some(&conn), &f, Some(&why))),
    };
    let patch = sso_svc::ConnectionPatch {
        name: None,
        jit: None,
        enabled: None,
        signs_in_owner: None,
        allow_other_domains: None,
        oidc: Some(oidc),
        saml: None,
    };
    match sso_svc::update_connection(&s.store, &caller, &s.outbound, &id, patch).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/sso/{id}?idp={}", idp.key)).into_response()),
        Err(e) => {
            let why = refusal(e)?;
            Ok(render(&s, &console, idp, Some(&conn), &f, Some(&why)))
        }
    }
}

/// A labelled input holding `value`, with a hint read out with it.
fn input(name: &str, label: &str, kind: &str, value: &str, hint: Option<Markup>) -> Markup {
    let hint_id = format!("{name}-hint");
    html! {
        div {
            label for=(name) { (label) }
            input type=(kind) id=(name) name=(name) value=(value)
                autocomplete=[(kind == "password").then_some("off")]
                aria-describedby=[hint.is_some().then_some(&hint_id)];
            @if let Some(h) = hint { p.hint id=(hint_id) { (h) } }
        }
    }
}

fn render(
    s: &AppState,
    console: &Console,
    idp: &OidcIdp,
    conn: Option<&Connection>,
    typed: &OidcForm,
    error: Option<&str>,
) -> Response {
    let redirect_uri = format!("{}/sso/oidc/callback", s.public_url);
    let action = match conn {
        Some(c) => format!("/console/sso/{}/oidc", c.id),
        None => "/console/sso/oidc".to_string(),
    };
    let redirect_label = if entra(idp) {
        "Redirect URI (Web)"
    } else {
        "Redirect URI"
    };
    let body = html! {
        p {
            "Set up single sign-on with " (idp.label) ", in "
            @if conn.is_some() { "four" } @else { "three" }
            " steps."
        }
        ol.steps {
            li {
                h2 { "Give your identity provider our redirect URI" }
                @if entra(idp) {
                    p { "In the Microsoft Entra admin center, open " strong { "App registrations" }
                        " and choose " strong { "New registration" } ". Under " strong { "Redirect URI" }
                        ", choose the " strong { "Web" } " platform and enter:" }
                } @else {
                    p { "Register an application (a web application, or confidential client, using \
                         the authorization code flow) and give it this redirect URI:" }
                }
                dl.values {
                    dt { (redirect_label) }
                    dd {
                        span.value id="redirect-uri" { (redirect_uri) }
                        button.secondary type="button" data-copy="redirect-uri" hidden
                            aria-label={ "Copy the " (redirect_label) } { "Copy" }
                    }
                }
                @if entra(idp) {
                    p { "Then open " strong { "Certificates & secrets" } ", choose "
                        strong { "New client secret" } ", and copy its " strong { "Value" }
                        " (not its Secret ID): you give it to us below." }
                    p.hint { "Under " strong { "Token configuration" } ", choose "
                        strong { "Add groups claim" } " (security groups), so that the ID token \
                        carries the user's groups: without it, no group rule matches. A user in \
                        more than 200 groups gets a reference instead of the groups (group \
                        overage); the groups your SCIM directory sends then count instead." }
                } @else {
                    p.hint { "We ask for the scopes openid, email and profile, and read the \
                              user's groups from a claim named groups; change either below if \
                              your provider differs." }
                }
            }
            li {
                h2 { "Give us your identity provider's details" }
                @if let Some(e) = error {
                    p.error role="alert" id="oidc-error" { (e) }
                }
                @if conn.is_some() && error.is_none() {
                    p.notice { "We have your identity provider's details. Change them here if you need to." }
                }
                form.stack method="post" action=(action) {
                    input type="hidden" name="csrf" value=(console.csrf);
                    input type="hidden" name="idp" value=(idp.key);
                    @if entra(idp) {
                        (input("issuer", "Issuer URL", "url", &typed.issuer, Some(html! {
                            code { "https://login.microsoftonline.com/{tenant}/v2.0" } ", where "
                            code { "{tenant}" } " is the Directory (tenant) ID on the app's Overview page."
                        })))
                        (input("client_id", "Application (client) ID", "text", &typed.client_id,
                            Some(html! { "On the app's Overview page." })))
                    } @else {
                        (input("issuer", "Issuer URL", "url", &typed.issuer, Some(html! {
                            "We read " code { "/.well-known/openid-configuration" } " under it."
                        })))
                        (input("client_id", "Client ID", "text", &typed.client_id, None))
                    }
                    (input("client_secret", if entra(idp) { "Client secret value" } else { "Client secret" },
                        "password", "", Some(html! {
                            @if conn.is_some() { "Leave it blank to keep the one we have. " }
                            "We keep it encrypted and never show it again."
                        })))
                    details open[!typed.scopes.is_empty() && conn.is_none()] {
                        summary { "More options" }
                        (input("scopes", "Scopes (separated by spaces)", "text", &typed.scopes,
                            Some(html! { "Blank: openid email profile." })))
                        (input("groups_claim", "Claim with the user's groups", "text", &typed.groups_claim,
                            Some(html! { "Blank: groups." })))
                    }
                    div { button type="submit" { "Save" } }
                }
            }
            @if let Some(c) = conn {
                (super::who_signs_in::step(console, c, idp.key))
            }
            li #test {
                h2 { "Test the sign-in" }
                @if let Some(c) = conn {
                    p { "Sign in through " (idp.label) " as one of your users: we show what it sends \
                         and what access that person would get. Nobody is signed in to the application." }
                    p { a.button href={ "/console/sso/" (c.id) "/test" } { "Test sign-in" } }
                } @else {
                    p { "Once we have your identity provider's details, you can test the sign-in here." }
                }
            }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let title = match conn {
        Some(c) => format!("Set up {}", c.name),
        None => format!("Set up {}", idp.label),
    };
    page(status, &title, Some(console), body)
}
