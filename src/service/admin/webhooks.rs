//! Webhooks that receive the organization's access change events.

use serde::Serialize;

use super::views::WebhookInfo;
use super::{Action, AdminError, AdminResult, Caller};
use crate::net::Outbound;
use crate::store::Store;

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
    let (webhook, secret) = store.create_webhook(caller.scope(), url).await?;
    Ok(WebhookCreated {
        webhook: webhook.into(),
        secret,
    })
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), webhook_id = id))]
pub async fn delete_webhook(store: &Store, caller: &Caller, id: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    Ok(store.delete_webhook(caller.scope(), id).await?)
}
