//! The append-only audit log: one row per write, in the same transaction as the write.

use super::sql::Bind;
use super::{DirectoryScope, StoreResult, Tx};
use crate::domain::audit::{AuditOp, AuditResource};

pub async fn record(
    tx: &mut Tx,
    scope: &DirectoryScope,
    operation: AuditOp,
    resource_type: AuditResource,
    resource_id: Option<&str>,
    detail: Option<&str>,
) -> StoreResult<()> {
    let actor = Actor {
        org_id: scope.org_id(),
        directory_id: Some(scope.directory_id()),
        actor: scope.token_id(),
    };
    record_as(tx, &actor, operation, resource_type, resource_id, detail).await
}

/// Who acts: a directory's token, an admin token, or the service itself.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub org_id: &'a str,
    pub directory_id: Option<&'a str>,
    pub actor: &'a str,
}

pub async fn record_as(
    tx: &mut Tx,
    who: &Actor<'_>,
    operation: AuditOp,
    resource_type: AuditResource,
    resource_id: Option<&str>,
    detail: Option<&str>,
) -> StoreResult<()> {
    let at = tx.now();
    // Nothing in a transaction reads its own audit rows.
    tx.defer(|b| {
        b.push(
            "INSERT INTO audit_log (org_id, directory_id, actor, operation, resource_type, resource_id, detail, at) VALUES (",
        )
        .bind_text(who.org_id)
        .push(", ")
        .bind_opt_text(who.directory_id)
        .push(", ")
        .bind_text(who.actor)
        .push(", ")
        .bind_text(operation.as_str())
        .push(", ")
        .bind_text(resource_type.as_str())
        .push(", ")
        .bind_opt_text(resource_id)
        .push(", ")
        .bind_opt_text(detail)
        .push(", ")
        .bind(Bind::Int(at))
        .push(")");
    })
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    pub seq: i64,
    pub directory_id: Option<String>,
    pub actor: String,
    pub operation: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub detail: Option<String>,
    pub at: i64,
}

impl super::Store {
    /// An organization's audit entries after `after_seq`, oldest first.
    pub async fn audit_entries(
        &self,
        org_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        Ok(super::on_read!(self, c => sqlx::query_as::<_, AuditEntry>(
            "SELECT seq, directory_id, actor, operation, resource_type, resource_id, detail, at \
             FROM audit_log WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(org_id).bind(after_seq).bind(limit)
            .fetch_all(c).await?))
    }
}
