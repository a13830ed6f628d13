//! The SSO wizards' step that decides who signs in through a connection: people created at their
//! first sign-in or not, and the email domains it admits (the README's "Who a connection signs
//! in"), saved through the same update as the admin API's PATCH.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Console, CsrfForm, PageError};
use crate::app::AppState;
use crate::service::console::Intent;
use crate::service::sso as sso_svc;
use crate::store::sso::Connection;

/// The step, for a connection that exists.
pub(super) fn step(console: &Console, conn: &Connection, idp_key: &str) -> Markup {
    let domains_page = console.session.intents().contains(&Intent::Domains);
    html! {
        li {
            h2 { "Choose who signs in" }
            form.stack method="post" action={ "/console/sso/" (conn.id) "/who-signs-in" } {
                input type="hidden" name="csrf" value=(console.csrf);
                input type="hidden" name="idp" value=(idp_key);
                div {
                    input type="checkbox" id="jit" name="jit" value="on" checked[conn.jit]
                        aria-describedby="jit-hint";
                    " "
                    label.inline for="jit" { "Create people at their first sign-in" }
                    p.hint id="jit-hint" {
                        "Off: only people already in the organization sign in. While a directory \
                         (SCIM) manages the organization, only the people it pushed sign in."
                    }
                }
                div {
                    input type="checkbox" id="allow_other_domains" name="allow_other_domains"
                        value="on" checked[conn.allow_other_domains]
                        aria-describedby="allow_other_domains-hint";
                    " "
                    label.inline for="allow_other_domains" {
                        "Also sign in people of email domains the organization has not verified"
                    }
                    p.hint id="allow_other_domains-hint" {
                        "Off: only people whose email domain the organization verified sign in \
                         here (verify a domain on the "
                        @if domains_page { a href="/console/domains" { "Domains" } } @else { "Domains" }
                        " page). A domain routed to another connection never signs in here."
                    }
                }
                div { button type="submit" { "Save who signs in" } }
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WhoForm {
    csrf: String,
    #[serde(default)]
    idp: String,
    /// Checkboxes: present when ticked.
    jit: Option<String>,
    allow_other_domains: Option<String>,
}

impl CsrfForm for WhoForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), connection_id = id))]
pub(super) async fn save(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    f: Result<Form<WhoForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Sso)?;
    let patch = sso_svc::ConnectionPatch {
        name: None,
        jit: Some(f.jit.is_some()),
        enabled: None,
        signs_in_owner: None,
        allow_other_domains: Some(f.allow_other_domains.is_some()),
        oidc: None,
        saml: None,
    };
    sso_svc::update_connection(&s.store, &caller, &s.outbound, &id, patch).await?;
    // Back to the wizard's next step, the test sign-in.
    let idp: String = url::form_urlencoded::byte_serialize(f.idp.as_bytes()).collect();
    Ok(Redirect::to(&format!("/console/sso/{id}?idp={idp}#test")).into_response())
}
