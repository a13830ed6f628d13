//! Webhooks that receive the organization's access change events.

use serde::Serialize;

use super::views::WebhookInfo;
use super::{Action, AdminError, AdminResult, Caller};
use crate::domain::audit::{AuditOp, AuditResource};
use crate::net::Outbound;
use crate::store::admin as db;
use crate::store::directory::mint_token;
use crate::store::{Store, audit, new_id};

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_webhooks(store: &Store, caller: &Caller) -> AdminResult<Vec<WebhookInfo>> {
    caller.require(Action::Read)?;
    let hooks = store.list_webhooks(caller.scope()).await?;
    Ok(hooks.into_iter().map(Into::into).collect())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookCreated {
    pub webhook: WebhookInfo,
    /// The HMAC-SHA256 signing secret, shown once.
    pub secret: String,
}

/// Registers a webhook. Its URL is resolved now under the outbound policy, so a destination that
/// delivery would refuse is refused at once.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn create_webhook(
    store: &Store,
    caller: &Caller,
    outbound: &Outbound,
    url: &str,
) -> AdminResult<WebhookCreated> {
    caller.require(Action::Manage)?;
    outbound
        .check_destination(url)
        .await
        .map_err(|e| AdminError::Invalid(format!("url: {e}")))?;
    let scope = caller.scope();
    let id = new_id();
    let secret = mint_token("whsec_");
    let sealed = store.seal_webhook_secret(&id, &secret)?;
    // "From the next event on": the events already committed are numbered first.
    store.publish_events().await?;
    let mut tx = store.begin().await?;
    let webhook = db::insert_webhook(&mut tx, scope, &id, url, &sealed).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Create,
        AuditResource::Webhook,
        Some(&id),
        Some(url),
    )
    .await?;
    tx.commit().await?;
    Ok(WebhookCreated {
        webhook: webhook.into(),
        secret,
    })
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), webhook_id = id))]
pub async fn delete_webhook(store: &Store, caller: &Caller, id: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    if !db::delete_webhook(&mut tx, scope, id).await? {
        return Err(AdminError::NotFound("not found".into()));
    }
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Delete,
        AuditResource::Webhook,
        Some(id),
        None,
    )
    .await?;
    Ok(tx.commit().await?)
}
