//! The People page: finding a person, their access with every reason, the SCIM users that make
//! them up, their open sessions and their grants made by hand. A "mapping" link reads it (where
//! the IT admin checks what their rules give someone); only a "people" link changes people: signs
//! a session or the person out, adds or removes a grant made by hand. Each change calls the admin
//! API's operation, audited there.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::mapping::{RuleForm, grant_fields, grant_of, names};
use super::{Console, CsrfOnly, PageError, Search, ok, thead};
use crate::app::AppState;
use crate::mapping::Reason;
use crate::mapping::rule::{Grant, Matched};
use crate::service::admin::{self as svc, AdminError, Caller};
use crate::service::console::Intent;
use crate::store::admin::UserQuery;
use crate::store::rfc3339;

/// The intents whose sessions read the People pages.
const READERS: [Intent; 2] = [Intent::People, Intent::Mapping];

/// The caller of a People page, and whether it may change people: a "people" link only, acting
/// with a role that manages the organization.
fn reader(console: &Console) -> Result<(Caller, bool), PageError> {
    let caller = console.session.caller_of(&READERS)?;
    // A person signed in with their own role reaches every intent; their role decides.
    let writes = console.session.intents().contains(&Intent::People)
        && caller.require(svc::Action::Manage).is_ok();
    Ok((caller, writes))
}

/// How many people one search lists: a search box narrows, it does not page.
const RESULTS: i64 = 50;

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
pub(super) async fn people_page(
    State(s): State<AppState>,
    console: Console,
    Search(q): Search,
) -> Result<Response, PageError> {
    let (caller, _) = reader(&console)?;
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

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), user_id = id))]
pub(super) async fn person_page(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (caller, writes) = reader(&console)?;
    let person = svc::get_user(&s.store, &caller, &id).await?;
    let access = svc::user_access(&s.store, &caller, &id).await?;
    let now = s.store.now();
    let sessions: Vec<_> = svc::list_sessions(&s.store, &caller, &id)
        .await?
        .into_iter()
        .filter(|se| se.revoked_at.is_none() && se.expires_at > now)
        .collect();
    let connections: BTreeMap<String, String> = svc::list_connections(&s.store, &caller)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let grants = svc::list_grants(&s.store, &caller, &id).await?;
    let names = names(&s, &caller).await?;
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
            @if sessions.is_empty() {
                p { "No open session: this person is signed in nowhere." }
            } @else {
                table {
                    caption.visually-hidden { "Open sessions" }
                    (thead(&["Signed in through", "Since", "Last used", "Ends", "Sign out"][..if writes { 5 } else { 4 }]))
                    tbody {
                        @for (i, se) in sessions.iter().enumerate() {
                            @let through = se.connection_id.as_deref()
                                .map(|c| connections.get(c).map_or(c, String::as_str))
                                .unwrap_or("no connection (made by the application)");
                            tr {
                                td { (through) }
                                td { (rfc3339::format(se.created_at)) }
                                td { (rfc3339::format(se.last_seen_at)) }
                                td { (rfc3339::format(se.expires_at)) }
                                @if writes {
                                    td {
                                        form method="post" action={ "/console/people/" (person.user.id) "/sessions/" (se.id) "/sign-out" } {
                                            input type="hidden" name="csrf" value=(console.csrf);
                                            button.secondary type="submit"
                                                aria-label={ "Sign out session " (i + 1) " (" (through) ")" } { "Sign out" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if writes {
                form method="post" action={ "/console/people/" (person.user.id) "/sign-out" } {
                    input type="hidden" name="csrf" value=(console.csrf);
                    button.danger type="submit" { "Sign out everywhere" }
                    p.hint { "Ends every session of this person at once, in every application." }
                }
            }
            h2 { "Grants made by hand" }
            @if grants.is_empty() {
                p { "None: this person's access comes from the mapping rules and the default role." }
            } @else {
                table {
                    caption.visually-hidden { "Grants made by hand" }
                    (thead(&["Grant", "By", "On", "Remove"][..if writes { 4 } else { 3 }]))
                    tbody {
                        @for g in &grants {
                            @let what = names.grant(&g.grant);
                            tr {
                                td { (what) }
                                td { (g.granted_by) }
                                td { (rfc3339::format(g.created_at)) }
                                @if writes {
                                    td {
                                        form method="post" action={ "/console/people/" (person.user.id) "/grants/" (g.id) "/delete" } {
                                            input type="hidden" name="csrf" value=(console.csrf);
                                            button.danger type="submit" aria-label={ "Remove the grant " (what) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if writes {
                h3 { "Grant by hand" }
                form.stack method="post" action={ "/console/people/" (person.user.id) "/grants" } {
                    input type="hidden" name="csrf" value=(console.csrf);
                    (grant_fields(&names, "What to grant"))
                    div { button type="submit" { "Grant" } }
                    p.hint { "A grant made by hand stays until it is removed here, whatever the \
                              identity provider's groups say." }
                }
            } @else {
                p.hint { "Your link lets you see people, not change them." }
            }
        },
    )
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), user_id = id))]
pub(super) async fn sign_out_everywhere(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    let caller = console.act(f, Intent::People)?;
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

/// Signs one session of the person out, as the admin API's session revoke does (audited there).
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), user_id = id, session_id = session))]
pub(super) async fn sign_out_session(
    State(s): State<AppState>,
    console: Console,
    Path((id, session)): Path<(String, String)>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    let caller = console.act(f, Intent::People)?;
    // Only a session of the person whose page the button was on.
    let theirs = svc::list_sessions(&s.store, &caller, &id)
        .await?
        .iter()
        .any(|se| se.id == session && se.revoked_at.is_none());
    if !theirs {
        return Err(AdminError::NotFound(
            "This session has ended already, or is not this person's.".into(),
        )
        .into());
    }
    svc::revoke_session(&s.store, &caller, &session).await?;
    Ok(Redirect::to(&format!("/console/people/{id}")).into_response())
}

/// Adds a grant made by hand, with the admin API's operation (validated, recomputed and audited
/// there).
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), user_id = id))]
pub(super) async fn add_grant(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    f: Result<Form<RuleForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::People)?;
    let grant: Grant = serde_json::from_value(grant_of(&f)?)
        .map_err(|e| PageError::BadForm(format!("This grant cannot be made: {e}")))?;
    svc::create_grant(&s.store, &caller, &id, grant).await?;
    Ok(Redirect::to(&format!("/console/people/{id}")).into_response())
}

/// Removes a grant made by hand from the person whose page the button was on.
#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), user_id = id, grant_id = grant))]
pub(super) async fn remove_grant(
    State(s): State<AppState>,
    console: Console,
    Path((id, grant)): Path<(String, String)>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    let caller = console.act(f, Intent::People)?;
    let theirs = svc::list_grants(&s.store, &caller, &id)
        .await?
        .iter()
        .any(|g| g.id == grant);
    if !theirs {
        return Err(AdminError::NotFound(
            "This grant was removed already, or is not this person's.".into(),
        )
        .into());
    }
    svc::delete_grant(&s.store, &caller, &grant).await?;
    Ok(Redirect::to(&format!("/console/people/{id}")).into_response())
}
