//! The Mapping page: the rules with whom each reaches, and a rule editor that shows the preview
//! (who gains and who loses what) before the rule is saved. The preview and the save call the
//! same rule-change operation as the admin API, so what was previewed is what saving does.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Console, CsrfForm, CsrfOnly, PageError, Search, ok, page, thead};
use crate::app::AppState;
use crate::domain::access::{Feature, Level, OrgRole, ProjectRole, SubAccountRole};
use crate::mapping::AccessChange;
use crate::mapping::rule::{Grant, GroupMatcher, SubAccountScope};
use crate::service::admin::{self as svc, GroupChoice, OrgPatch, RuleChange, RuleInput};
use crate::service::console::Intent;
use crate::service::provision::UserOutcome;

/// How many groups of each source the picker lists; the search box narrows further.
const CHOICES: i64 = 100;

/// The names of the organization's groups, sub-accounts and projects, to show rules and grants
/// in words.
pub(super) struct Names {
    groups: BTreeMap<String, String>,
    pub(super) sub_accounts: BTreeMap<String, String>,
    /// By (sub-account, project) id.
    projects: BTreeMap<(String, String), String>,
}

impl Names {
    fn matcher(&self, m: &GroupMatcher) -> String {
        match m {
            GroupMatcher::GroupId { group_id } => {
                format!("group {}", self.groups.get(group_id).unwrap_or(group_id))
            }
            GroupMatcher::ExternalId { external_id } => format!("group externalId {external_id}"),
            GroupMatcher::DisplayName { display_name } => format!("group named {display_name}"),
            GroupMatcher::Claim { value } => format!("group claim {value}"),
            GroupMatcher::DirectoryDefault { directory_id } => {
                format!("everyone of directory {directory_id}")
            }
        }
    }

    fn scope(&self, s: &SubAccountScope) -> String {
        match s {
            SubAccountScope::All => "every sub-account".to_string(),
            SubAccountScope::One(id) => {
                format!("sub-account {}", self.sub_accounts.get(id).unwrap_or(id))
            }
        }
    }

    pub(super) fn grant(&self, g: &Grant) -> String {
        match g {
            Grant::OrgRole { role } => format!("organization role {}", role.get()),
            Grant::SubAccountRole { sub_account, role } => {
                format!("{role} in {}", self.scope(sub_account))
            }
            Grant::Features {
                sub_account,
                levels,
            } => format!(
                "{} in {}",
                levels
                    .iter()
                    .map(|(f, l)| format!("{f}: {l}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.scope(sub_account)
            ),
            Grant::ProjectRole {
                sub_account_id,
                project_id,
                role,
            } => format!(
                "{role} of project {} in {}",
                self.project(sub_account_id, project_id),
                self.scope(&SubAccountScope::One(sub_account_id.clone()))
            ),
        }
    }

    fn project<'a>(&'a self, sub_account_id: &str, project_id: &'a str) -> &'a str {
        self.projects
            .get(&(sub_account_id.to_string(), project_id.to_string()))
            .map_or(project_id, String::as_str)
    }

    pub(super) fn change(&self, c: &AccessChange) -> String {
        fn or_nothing<T: std::fmt::Display>(v: &Option<T>) -> String {
            v.as_ref().map_or("nothing".to_string(), T::to_string)
        }
        match c {
            AccessChange::OrgRoleChanged { from, to } => format!(
                "organization role: {} → {}",
                or_nothing(from),
                or_nothing(to)
            ),
            AccessChange::SubAccountRoleChanged { scope, from, to } => format!(
                "role in {}: {} → {}",
                self.scope(scope),
                or_nothing(from),
                or_nothing(to)
            ),
            AccessChange::FeatureChanged {
                scope,
                feature,
                from,
                to,
            } => format!("{feature} in {}: {from} → {to}", self.scope(scope)),
            AccessChange::ProjectRoleChanged {
                sub_account_id,
                project_id,
                from,
                to,
            } => format!(
                "project {} in {}: {} → {}",
                self.project(sub_account_id, project_id),
                self.scope(&SubAccountScope::One(sub_account_id.clone())),
                or_nothing(from),
                or_nothing(to)
            ),
        }
    }
}

pub(super) async fn names(s: &AppState, caller: &svc::Caller) -> Result<Names, PageError> {
    let groups = svc::search_rule_groups(&s.store, caller, None, 1000)
        .await?
        .into_iter()
        .filter_map(|c| match c {
            GroupChoice::ScimGroup {
                id, display_name, ..
            } => Some((id, display_name)),
            GroupChoice::Claim { .. } => None,
        })
        .collect();
    let sub_accounts: BTreeMap<String, String> = svc::list_sub_accounts(&s.store, caller)
        .await?
        .into_iter()
        .map(|sa| (sa.id, sa.name))
        .collect();
    let mut projects = BTreeMap::new();
    for sa in sub_accounts.keys() {
        for p in svc::list_projects(&s.store, caller, sa).await? {
            projects.insert((p.sub_account_id, p.id), p.name);
        }
    }
    Ok(Names {
        groups,
        sub_accounts,
        projects,
    })
}

/// The matcher and source a group choice stands for, as the picker's radio value carries them.
fn choice_value(c: &GroupChoice) -> (String, String) {
    let (matcher, source, label) = match c {
        GroupChoice::ScimGroup {
            matcher,
            display_name,
            directory_id,
            directory_name,
            ..
        } => (
            matcher,
            json!({ "directory": directory_id }),
            format!("{display_name} (SCIM group from {directory_name})"),
        ),
        GroupChoice::Claim {
            matcher,
            value,
            connection_id,
            connection_name,
            ..
        } => (
            matcher,
            json!({ "connection": connection_id }),
            format!("{value} (group claim seen at sign-in through {connection_name})"),
        ),
    };
    (
        json!({ "matcher": matcher, "source": source }).to_string(),
        label,
    )
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
pub(super) async fn mapping_page(
    State(s): State<AppState>,
    console: Console,
    Search(q): Search,
) -> Result<Response, PageError> {
    let caller = console.session.caller(Intent::Mapping)?;
    let rules = svc::list_rules_with_reach(&s.store, &caller).await?;
    let choices = svc::search_rule_groups(&s.store, &caller, Some(&q), CHOICES).await?;
    let names = names(&s, &caller).await?;
    let default_role = default_role(&s, &caller).await?;
    let body = html! {
        h2 { "Rules" }
        @if rules.is_empty() {
            p { "No rule yet: people get the organization's default role." }
        } @else {
            table {
                thead { tr {
                    @for c in ["Rule", "Matches", "Grants", "People reached"] { th scope="col" { (c) } }
                    th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for r in &rules {
                        @let label = r.rule.description.clone().unwrap_or_else(|| names.matcher(&r.rule.matcher));
                        tr {
                            td { (label) }
                            td { (names.matcher(&r.rule.matcher)) }
                            td { (names.grant(&r.rule.grant)) }
                            td.reach { (r.reach.unwrap_or(0)) }
                            td {
                                form method="post" action={ "/console/mapping/rules/" (r.rule.id) "/delete" } {
                                    input type="hidden" name="csrf" value=(console.csrf);
                                    button.danger type="submit" aria-label={ "Delete the rule " (label) } { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Default role" }
        p {
            "Everyone whose groups match no rule gets "
            @match default_role {
                Some(r) => { strong { (r) } " in every sub-account." }
                None => { strong { "nothing" } ": no default role is set." }
            }
        }
        form.stack method="post" action="/console/mapping/default-role/preview" {
            input type="hidden" name="csrf" value=(console.csrf);
            div {
                label for="default_role" { "New default role" }
                select id="default_role" name="default_role" {
                    option value="none" selected[default_role.is_none()] { "none (no access by default)" }
                    @for r in SubAccountRole::ALL {
                        option value=(r.as_str()) selected[default_role == Some(*r)] { (r.as_str()) }
                    }
                }
            }
            div { button.secondary type="submit" { "Preview the default role" } }
        }
        h2 { "Add a rule" }
        form.stack role="search" method="get" action="/console/mapping" {
            div {
                label for="q" { "Find an IdP group" }
                input type="search" id="q" name="q" value=(q) autocomplete="off";
                p.hint { "Your directories' groups and the group claims seen at sign-in." }
            }
            div { button.secondary type="submit" { "Find groups" } }
        }
        (editor(&console, &choices, &names))
    };
    ok("Group to role mapping", &console, body)
}

fn editor(console: &Console, choices: &[GroupChoice], names: &Names) -> Markup {
    html! {
        form.stack method="post" action="/console/mapping/preview" {
            input type="hidden" name="csrf" value=(console.csrf);
            fieldset {
                legend { "IdP group" }
                @if choices.is_empty() {
                    p { "No group found. Groups appear once your directory pushes them or \
                         someone signs in with a group claim." }
                }
                @for (i, c) in choices.iter().enumerate() {
                    @let (value, label) = choice_value(c);
                    div {
                        input type="radio" name="group" id={ "group-" (i) } value=(value);
                        label.inline for={ "group-" (i) } { (label) }
                    }
                }
            }
            (grant_fields(names, "What it grants"))
            div {
                label for="description" { "Description (optional)" }
                input type="text" id="description" name="description" maxlength="200";
            }
            div { button type="submit" { "Preview" } }
        }
    }
}

/// The choice of a grant, as the rule editor and a person's "grant by hand" form offer it: one
/// radio button per kind, and the fields each kind reads.
pub(super) fn grant_fields(names: &Names, legend: &str) -> Markup {
    html! {
        fieldset {
            legend { (legend) }
            div {
                input type="radio" name="grant" id="grant-org" value="org_role" checked;
                label.inline for="grant-org" { "An organization role" }
            }
            div {
                label for="org_role" { "Organization role" }
                select id="org_role" name="org_role" {
                    @for r in OrgRole::ALL.iter().filter(|r| **r != OrgRole::OrgOwner) {
                        option value=(r.as_str()) { (r.as_str()) }
                    }
                }
            }
            div {
                input type="radio" name="grant" id="grant-sa" value="sub_account_role";
                label.inline for="grant-sa" { "A sub-account role" }
            }
            div {
                input type="radio" name="grant" id="grant-features" value="features";
                label.inline for="grant-features" { "Feature levels" }
            }
            div {
                label for="sub_account" { "In (sub-account role or feature levels)" }
                select id="sub_account" name="sub_account" {
                    option value="all" { "Every sub-account" }
                    @for (id, name) in &names.sub_accounts {
                        option value=(id) { (name) }
                    }
                }
            }
            div {
                label for="sub_account_role" { "Sub-account role" }
                select id="sub_account_role" name="sub_account_role" {
                    @for r in SubAccountRole::ALL {
                        option value=(r.as_str()) { (r.as_str()) }
                    }
                }
            }
            @for f in Feature::ALL {
                div {
                    label for={ "feature-" (f.as_str()) } { "Feature " (f.as_str()) }
                    select id={ "feature-" (f.as_str()) } name=(f.as_str()) {
                        @for l in Level::ALL {
                            option value=(l.as_str()) { (l.as_str()) }
                        }
                    }
                }
            }
            div {
                input type="radio" name="grant" id="grant-project" value="project_role";
                label.inline for="grant-project" { "A project role" }
            }
            @if names.projects.is_empty() {
                p.hint { "No project yet: the application creates them in its sub-accounts." }
            } @else {
                div {
                    label for="project" { "Project" }
                    select id="project" name="project" {
                        @for ((sa, id), name) in &names.projects {
                            option value={ (sa) "/" (id) } {
                                (name) " in " (names.sub_accounts.get(sa).map_or(sa.as_str(), String::as_str))
                            }
                        }
                    }
                }
                div {
                    label for="project_role" { "Project role" }
                    select id="project_role" name="project_role" {
                        @for r in ProjectRole::ALL {
                            option value=(r.as_str()) { (r.as_str()) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RuleForm {
    csrf: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    grant: String,
    #[serde(default)]
    org_role: String,
    #[serde(default)]
    sub_account: String,
    #[serde(default)]
    sub_account_role: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    project_role: String,
    #[serde(default)]
    description: String,
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

/// The grant of a filled-in [`grant_fields`], as the admin API's JSON; a form error in words.
pub(super) fn grant_of(f: &RuleForm) -> Result<Value, PageError> {
    let bad = |why: &str| PageError::BadForm(why.to_string());
    let sub_account = match f.sub_account.as_str() {
        "" | "all" => json!("all"),
        id => json!({ "one": id }),
    };
    Ok(match f.grant.as_str() {
        "org_role" => json!({ "type": "org_role", "role": f.org_role }),
        "sub_account_role" => json!({
            "type": "sub_account_role", "sub_account": sub_account, "role": f.sub_account_role
        }),
        "features" => {
            let levels: BTreeMap<&str, &str> = Feature::ALL
                .iter()
                .filter_map(|feat| {
                    f.rest
                        .get(feat.as_str())
                        .filter(|l| l.as_str() != Level::None.as_str())
                        .map(|l| (feat.as_str(), l.as_str()))
                })
                .collect();
            if levels.is_empty() {
                return Err(bad(
                    "Choose a level other than none for at least one feature.",
                ));
            }
            json!({ "type": "features", "sub_account": sub_account, "levels": levels })
        }
        "project_role" => {
            let Some((sa, project)) = f.project.split_once('/') else {
                return Err(bad("Choose the project."));
            };
            json!({
                "type": "project_role", "sub_account_id": sa, "project_id": project,
                "role": f.project_role
            })
        }
        _ => return Err(bad("Choose what it grants.")),
    })
}

/// The rule a filled-in editor describes, as the admin API's JSON; a form error in words.
fn rule_of(f: &RuleForm) -> Result<Value, PageError> {
    let bad = |why: &str| PageError::BadForm(why.to_string());
    if f.group.is_empty() {
        return Err(bad("Choose the IdP group the rule matches."));
    }
    let group: Value = serde_json::from_str(&f.group)
        .map_err(|_| bad("The chosen group could not be read: search for it again."))?;
    let grant = grant_of(f)?;
    let description = f.description.trim();
    Ok(json!({
        "description": (!description.is_empty()).then_some(description),
        "matcher": group["matcher"],
        "source": group["source"],
        "grant": grant,
    }))
}

fn rule_input(rule: &Value) -> Result<RuleInput, PageError> {
    serde_json::from_value(rule.clone())
        .map_err(|e| PageError::BadForm(format!("This rule cannot be made: {e}")))
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
pub(super) async fn preview(
    State(s): State<AppState>,
    console: Console,
    f: Result<Form<RuleForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Mapping)?;
    let rule = rule_of(&f)?;
    let input = rule_input(&rule)?;
    let names = names(&s, &caller).await?;
    let result = svc::preview_rule(
        &s.store,
        &caller,
        &RuleChange::Create {
            rule: input.clone(),
        },
    )
    .await?;
    let body = html! {
        p {
            "A rule that gives " strong { (names.grant(&input.grant)) } " to everyone with "
            strong { (names.matcher(&input.matcher)) } "."
        }
        (changes_table(&names, &result.changes))
        form method="post" action="/console/mapping/rules" {
            input type="hidden" name="csrf" value=(console.csrf);
            input type="hidden" name="rule" value=(rule.to_string());
            button type="submit" { "Save" }
            " "
            a href="/console/mapping" { "Cancel" }
        }
    };
    Ok(page(
        StatusCode::OK,
        "Preview of the rule",
        Some(&console),
        body,
    ))
}

/// Who gains and who loses what, one row per change.
fn changes_table(names: &Names, changes: &[UserOutcome]) -> Markup {
    html! {
        h2 { "Who gains and who loses what" }
        @if changes.is_empty() {
            p role="status" { "Nobody's access would change now." }
        } @else {
            table {
                (thead(&["Person", "Change"]))
                tbody {
                    @for u in changes {
                        @for c in &u.changes {
                            tr {
                                td { (u.user_name) }
                                td {
                                    @if c.is_loss() { "loses: " } @else { "gains: " }
                                    (names.change(c))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct SaveForm {
    csrf: String,
    #[serde(default)]
    rule: String,
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
pub(super) async fn save(
    State(s): State<AppState>,
    console: Console,
    f: Result<Form<SaveForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Mapping)?;
    let rule: Value = serde_json::from_str(&f.rule)
        .map_err(|_| PageError::BadForm("This rule could not be read: preview it again.".into()))?;
    let input = rule_input(&rule)?;
    svc::change_rule(&s.store, &caller, &RuleChange::Create { rule: input }).await?;
    Ok(Redirect::to("/console/mapping").into_response())
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id(), rule_id = id))]
pub(super) async fn delete(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    let caller = console.act(f, Intent::Mapping)?;
    svc::change_rule(&s.store, &caller, &RuleChange::Delete { id }).await?;
    Ok(Redirect::to("/console/mapping").into_response())
}

// ---- the default role --------------------------------------------------------------------------

/// The organization's default role, as its settings hold it.
async fn default_role(
    s: &AppState,
    caller: &svc::Caller,
) -> Result<Option<SubAccountRole>, PageError> {
    let org = svc::org_details(&s.store, caller).await?;
    // A role the database holds that this version does not know shows as none, as it applies.
    Ok(org.default_role.and_then(|r| r.parse().ok()))
}

#[derive(Deserialize)]
pub(super) struct DefaultRoleForm {
    csrf: String,
    #[serde(default)]
    default_role: String,
}

/// The role a form chose: `none` for none, else a sub-account role; anything else is said so.
fn chosen_role(f: &DefaultRoleForm) -> Result<Option<SubAccountRole>, PageError> {
    match f.default_role.as_str() {
        "none" => Ok(None),
        r => r.parse().map(Some).map_err(|_| {
            PageError::BadForm(format!(
                "{r:?} is not a role: choose none, {}.",
                SubAccountRole::ALL
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
    }
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
pub(super) async fn preview_default_role(
    State(s): State<AppState>,
    console: Console,
    f: Result<Form<DefaultRoleForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Mapping)?;
    let role = chosen_role(&f)?;
    let names = names(&s, &caller).await?;
    let changes = svc::preview_default_role(&s.store, &caller, role).await?;
    let role_name = role.map_or("none", |r| r.as_str());
    let body = html! {
        p {
            "Everyone whose groups match no rule would get "
            @match role {
                Some(r) => { strong { (r) } " in every sub-account." }
                None => { strong { "nothing" } "." }
            }
        }
        (changes_table(&names, &changes))
        form method="post" action="/console/mapping/default-role" {
            input type="hidden" name="csrf" value=(console.csrf);
            input type="hidden" name="default_role" value=(role_name);
            button type="submit" { "Save" }
            " "
            a href="/console/mapping" { "Cancel" }
        }
    };
    Ok(page(
        StatusCode::OK,
        "Preview of the default role",
        Some(&console),
        body,
    ))
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
pub(super) async fn save_default_role(
    State(s): State<AppState>,
    console: Console,
    f: Result<Form<DefaultRoleForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (f, caller) = console.accept(f, Intent::Mapping)?;
    let patch = OrgPatch {
        default_role: Some(chosen_role(&f)?),
        ..Default::default()
    };
    svc::update_org(&s.store, &caller, &patch).await?;
    Ok(Redirect::to("/console/mapping").into_response())
}

impl CsrfForm for RuleForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfForm for SaveForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfForm for DefaultRoleForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
