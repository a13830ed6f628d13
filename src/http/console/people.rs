//! The People page: finding a person, their access with every reason, the SCIM users that make
//! them up, and signing them out everywhere. Opened by "mapping" links: it is where the IT admin
//! checks what their rules give someone, and the sign-out is the remedy when it gave too much.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};

use super::{Console, CsrfOnly, PageError, Search, ok, thead};
use crate::app::AppState;
use crate::mapping::Reason;
use crate::mapping::rule::Matched;
use crate::service::admin::{self as svc};
use crate::service::console::Intent;
use crate::store::admin::UserQuery;

/// How many people one search lists: a search box narrows, it does not page.
const RESULTS: i64 = 50;

pub(super) async fn people_page(
    State(s): State<AppState>,
    console: Console,
    Search(q): Search,
) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Mapping)?;
    let found = if q.is_empty() {
        None
    } else {
        let filter = UserQuery {
            search: Some(q.clone()),
            ..Default::default()
        };
        Some(svc::list_users(&s.store, &caller, &filter, "", RESULTS).await?)
    };
    ok(
        "People",
        &console,
        html! {
            form.stack role="search" method="get" action="/console/people" {
                div {
                    label for="q" { "Name or email" }
                    input type="search" id="q" name="q" value=(q) autocomplete="off";
                    p.hint { "Any part of a name, userName or email address." }
                }
                div { button type="submit" { "Search" } }
            }
            @if let Some(found) = &found {
                h2 { "People matching “" (q) "”" }
                @if found.is_empty() {
                    p role="status" { "Nobody matches." }
                } @else {
                    table {
                        (thead(&["Name", "userName", "Status"]))
                        tbody {
                            @for u in found {
                                tr {
                                    td { a href={ "/console/people/" (u.id) } {
                                        (u.display_name.as_deref().unwrap_or(&u.user_name))
                                    } }
                                    td { (u.user_name) }
                                    td { @if u.active { "active" } @else { "deactivated" } }
                                }
                            }
                        }
                    }
                    @if found.len() as i64 == RESULTS {
                        p.hint { "Only the first " (RESULTS) " are listed: type more of the name." }
                    }
                }
            }
        },
    )
}

/// A reason in words, naming the group or claim a rule matched and the rule by its description
/// (`rules`, by id); a rule without one is named by what it matched only.
fn reason_text(reason: &Reason, rules: &BTreeMap<String, String>) -> Markup {
    match reason {
        Reason::Owner => html! { "owner of the organization" },
        Reason::DefaultRole => html! { "the organization's default role (no rule matched)" },
        Reason::Manual { granted_by, .. } => html! { "granted by hand by " (granted_by) },
        Reason::Rule { rule_id, matched } => {
            let what = match matched {
                Matched::Group { display_name, .. } => format!("member of group {display_name}"),
                Matched::Claim { value } => format!("signed in with group claim {value}"),
                Matched::Directory { directory_id } => {
                    format!("provisioned by directory {directory_id}")
                }
            };
            html! {
                (what) ", by "
                @match rules.get(rule_id) {
                    Some(d) => { "rule “" (d) "”" }
                    None => { "a mapping rule" }
                }
            }
        }
    }
}

pub(super) async fn person_page(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Mapping)?;
    let person = svc::get_user(&s.store, &caller, &id).await?;
    let access = svc::user_access(&s.store, &caller, &id).await?;
    let rules: BTreeMap<String, String> = svc::list_rules(&s.store, &caller)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.id, r.description?)))
        .collect();
    let sub_accounts: BTreeMap<&str, &str> = access
        .sub_accounts
        .iter()
        .map(|sa| (sa.id.as_str(), sa.name.as_str()))
        .collect();
    let sa_name = |id: &Option<String>| -> String {
        id.as_deref()
            .map(|id| sub_accounts.get(id).copied().unwrap_or(id).to_string())
            .unwrap_or_default()
    };
    let name = person
        .user
        .display_name
        .clone()
        .unwrap_or_else(|| person.user.user_name.clone());
    ok(
        &name,
        &console,
        html! {
            p { a href="/console/people" { "Back to People" } }
            dl.values {
                dt { "userName" } dd { (person.user.user_name) }
                dt { "Status" } dd { @if person.user.active { "active" } @else { "deactivated" } }
            }
            h2 { "Access" }
            @if access.scopes.is_empty() {
                p { "No access: no rule, grant or default role gives this person anything." }
            } @else {
                table {
                    caption.visually-hidden { "Every source of access, by scope" }
                    (thead(&["Where", "Role or level", "Why", "Held"]))
                    tbody {
                        @for sc in &access.scopes {
                            @let where_ = match sc.scope {
                                "organization" => "Organization".to_string(),
                                "sub_account" => format!("Sub-account {}", sa_name(&sc.sub_account_id)),
                                "feature" => format!(
                                    "Feature {} in {}",
                                    sc.feature.map(|f| f.as_str()).unwrap_or(""),
                                    sa_name(&sc.sub_account_id)
                                ),
                                _ => format!(
                                    "Project {} in {}",
                                    sc.project_id.as_deref().unwrap_or(""),
                                    sa_name(&sc.sub_account_id)
                                ),
                            };
                            @for r in &sc.reasons {
                                tr {
                                    td { (where_) }
                                    td { (r.value) }
                                    td { (reason_text(&r.reason, &rules)) }
                                    td { @if r.wins { "yes" } @else { "no, outranked" } }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "SCIM users" }
            @if person.scim_users.is_empty() {
                p { "No directory provisioned this person: they came by sign-in only." }
            } @else {
                table {
                    (thead(&["Directory", "userName", "Active"]))
                    tbody {
                        @for u in &person.scim_users {
                            tr {
                                td { (u.directory_name) }
                                td { (u.user_name) }
                                td { @if u.active { "yes" } @else { "no" } }
                            }
                        }
                    }
                }
            }
            h2 { "Sessions" }
            form method="post" action={ "/console/people/" (person.user.id) "/sign-out" } {
                input type="hidden" name="csrf" value=(console.csrf);
                button.danger type="submit" { "Sign out everywhere" }
                p.hint { "Ends every session of this person at once, in every application." }
            }
        },
    )
}

pub(super) async fn sign_out_everywhere(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    let caller = console.act(f, Intent::Mapping)?;
    let person = svc::get_user(&s.store, &caller, &id).await?;
    let done = svc::revoke_user_sessions(&s.store, &caller, &id).await?;
    ok(
        "Signed out everywhere",
        &console,
        html! {
            p.notice role="status" {
                @match done.revoked {
                    0 => { (person.user.user_name) " had no session to end." }
                    1 => { "1 session of " (person.user.user_name) " ended." }
                    n => { (n) " sessions of " (person.user.user_name) " ended." }
                }
            }
            p { a href={ "/console/people/" (id) } { "Back to " (person.user.user_name) } }
        },
    )
}
