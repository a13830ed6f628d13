//! The audit log and the access change events, read.

use super::{Action, AdminResult, Caller};
use crate::store::Store;
use crate::store::access::EventRecord;
use crate::store::admin::AuditFilter;
use crate::store::audit::AuditEntry;

pub async fn audit(
    store: &Store,
    caller: &Caller,
    filter: &AuditFilter,
) -> AdminResult<Vec<AuditEntry>> {
    caller.require(Action::Read)?;
    Ok(store.audit_filtered(caller.scope(), filter).await?)
}

/// Up to `limit` events after sequence number `after`, in commit order.
pub async fn events(
    store: &Store,
    caller: &Caller,
    after: i64,
    limit: i64,
) -> AdminResult<Vec<EventRecord>> {
    caller.require(Action::Read)?;
    Ok(store.events_after(caller.scope(), after, limit).await?)
}
