//! The audit log and the access change events, read.

use serde::Serialize;

use super::views::AuditEntry;
use super::views::EventRecord;
use super::{Action, AdminResult, Caller};
use crate::domain::audit::AuditOp;
use crate::service::explain::explain_failure;
use crate::store::Store;
use crate::store::access::EventFilter;
use crate::store::admin::AuditFilter;
use crate::store::audit as audit_db;

/// An audit entry as the admin API shows it: a failed sign-in also says why in plain words.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// Only on `sso.sign_in_failed`: what went wrong and what usually fixes it, for someone who
    /// is not an identity expert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

fn explained(entry: audit_db::AuditEntry) -> AuditView {
    let explanation = (entry.operation == AuditOp::SsoSignInFailed.as_str())
        .then(|| {
            let detail: serde_json::Value =
                serde_json::from_str(entry.detail.as_deref().unwrap_or("")).ok()?;
            let code = detail.get("reason")?.as_str()?;
            let said = detail.get("detail").and_then(|d| d.as_str()).unwrap_or("");
            Some(explain_failure(code, said))
        })
        .flatten();
    AuditView {
        entry: entry.into(),
        explanation,
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn audit(
    store: &Store,
    caller: &Caller,
    filter: &AuditFilter,
) -> AdminResult<Vec<AuditView>> {
    caller.require(Action::Read)?;
    let entries = store.audit_filtered(caller.scope(), filter).await?;
    Ok(entries.into_iter().map(explained).collect())
}

/// Up to `filter.limit` events after sequence number `filter.after` that pass it, in commit order.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn events(
    store: &Store,
    caller: &Caller,
    filter: &EventFilter,
) -> AdminResult<Vec<EventRecord>> {
    caller.require(Action::Read)?;
    let events = store.events_filtered(caller.scope(), filter).await?;
    Ok(events.into_iter().map(Into::into).collect())
}
