//! The Activity page: the organization's access change events (who gained or lost what, who was
//! provisioned or deprovisioned) and its audit log (who changed what), each filtered, with failed
//! sign-ins explained. The same reads as the admin API's `/events` and `/audit`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::mapping::{Names, names};
use super::{Console, PageError, ok, thead};
use crate::app::AppState;
use crate::domain::access::EventType;
use crate::mapping::AccessChange;
use crate::service::admin as svc;
use crate::service::console::Intent;
use crate::store::access::EventFilter;
use crate::store::admin::AuditFilter;
use crate::store::rfc3339;

/// How many of each the page lists: filters narrow, the page does not scroll forever.
const SHOWN: i64 = 200;

#[derive(Deserialize)]
pub(super) struct ActivityQuery {
    /// The older page of each list: entries before these sequence numbers.
    events_before: Option<i64>,
    audit_before: Option<i64>,
    #[serde(default)]
    event: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    resource: String,
}

/// The page with the same filters and one list's entries before `seq`.
fn older(q: &ActivityQuery, which: &str, seq: i64) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("event", &q.event)
        .append_pair("operation", &q.operation)
        .append_pair("resource", &q.resource)
        .append_pair(which, &seq.to_string())
        .finish();
    format!("/console/activity?{query}")
}

/// A filter field left blank filters nothing.
fn given(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// What an event says beyond its type and person, in one line: an access change in words, with
/// the organization's names for sub-accounts and projects.
fn event_detail(names: &Names, data: &Value) -> String {
    if let Some(change) = data
        .get("change")
        .and_then(|c| serde_json::from_value::<AccessChange>(c.clone()).ok())
    {
        return names.change(&change);
    }
    let mut rest = data.clone();
    if let Some(o) = rest.as_object_mut() {
        o.remove("user_id");
        o.remove("user_name");
        if o.is_empty() {
            return String::new();
        }
    }
    rest.to_string()
}

#[tracing::instrument(skip_all, fields(org_id = %console.session.org_id()))]
pub(super) async fn activity_page(
    State(s): State<AppState>,
    console: Console,
    q: Result<Query<ActivityQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = q.map_err(|e| PageError::BadForm(e.body_text()))?;
    let caller = console.session.caller(Intent::Activity)?;
    let event = given(&q.event)
        .map(|e| {
            e.parse::<EventType>().map_err(|_| {
                PageError::BadForm(format!(
                    "{e:?} is not an event type: choose one in the list."
                ))
            })
        })
        .transpose()?;
    let events = svc::events(
        &s.store,
        &caller,
        &EventFilter {
            limit: SHOWN,
            ty: event,
            before: q.events_before,
            newest_first: true,
            ..Default::default()
        },
    )
    .await?;
    let filter = AuditFilter {
        before: q.audit_before,
        newest_first: true,
        limit: SHOWN,
        operation: given(&q.operation),
        resource_type: given(&q.resource),
        ..Default::default()
    };
    let entries = svc::audit(&s.store, &caller, &filter).await?;
    let names = names(&s, &caller).await?;
    ok(
        "Activity",
        &console,
        html! {
            form.stack role="search" method="get" action="/console/activity" {
                div {
                    label for="event" { "Access change" }
                    select id="event" name="event" {
                        option value="" { "any" }
                        @for t in EventType::ALL {
                            option value=(t.as_str()) selected[event == Some(*t)] { (t.as_str()) }
                        }
                    }
                }
                div {
                    label for="operation" { "Audit operation" }
                    input type="text" id="operation" name="operation" value=(q.operation)
                        autocomplete="off";
                    p.hint { "For example create, delete, revoke or sso.sign_in_failed." }
                }
                div {
                    label for="resource" { "Audit resource" }
                    input type="text" id="resource" name="resource" value=(q.resource)
                        autocomplete="off";
                    p.hint { "For example MappingRule, Grant, Session or Directory." }
                }
                div { button type="submit" { "Filter" } }
            }
            h2 { "Access changes" }
            @if events.is_empty() {
                p { "None recorded that match." }
            } @else {
                table {
                    caption.visually-hidden { "Access change events, newest first" }
                    (thead(&["When", "Event", "Person", "Detail"]))
                    tbody {
                        @for e in &events {
                            tr {
                                td { (rfc3339::format(e.at)) }
                                td { (e.ty) }
                                td { (e.data.get("user_name").and_then(Value::as_str).unwrap_or("")) }
                                td { (event_detail(&names, &e.data)) }
                            }
                        }
                    }
                }
            }
            @if events.len() as i64 == SHOWN {
                @if let Some(last) = events.last() {
                    p { a href=(older(&q, "events_before", last.seq)) { "Older access changes" } }
                }
            }
            h2 { "Audit log" }
            @if entries.is_empty() {
                p { "Nothing recorded that matches." }
            } @else {
                table {
                    caption.visually-hidden { "Audit log entries, newest first" }
                    (thead(&["When", "Who", "What", "Detail"]))
                    tbody {
                        @for e in &entries {
                            tr {
                                td { (rfc3339::format(e.entry.at)) }
                                td { (e.entry.actor) }
                                td { (e.entry.operation) " " (e.entry.resource_type) }
                                td { (e.explanation.as_deref().or(e.entry.detail.as_deref()).unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            @if entries.len() as i64 == SHOWN {
                @if let Some(last) = entries.last() {
                    p { a href=(older(&q, "audit_before", last.entry.seq)) { "Older audit entries" } }
                }
            }
        },
    )
}
