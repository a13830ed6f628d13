//! The append-only audit log: one row per write, in the same transaction as the write.

use super::{DirectoryScope, StoreResult, Tx, micros, on_tx};

pub async fn record(
    tx: &mut Tx,
    scope: &DirectoryScope,
    operation: &str,
    resource_type: &str,
    resource_id: Option<&str>,
    detail: Option<&str>,
) -> StoreResult<()> {
    let at = micros(time::OffsetDateTime::now_utc());
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO audit_log (org_id, directory_id, actor, operation, resource_type, resource_id, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(scope.org_id()).bind(scope.directory_id()).bind(scope.token_id())
        .bind(operation).bind(resource_type).bind(resource_id).bind(detail).bind(at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}
