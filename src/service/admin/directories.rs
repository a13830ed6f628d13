//! SCIM directories of the organization and their bearer tokens.

use serde::Serialize;

use super::{Action, AdminError, AdminResult, Caller};
use crate::store::directory::{DirectoryRecord, NewToken, TokenInfo};
use crate::store::{Store, StoreError};

pub async fn list_directories(store: &Store, caller: &Caller) -> AdminResult<Vec<DirectoryRecord>> {
    caller.require(Action::Read)?;
    Ok(store.list_org_directories(caller.scope()).await?)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewDirectory {
    pub directory: DirectoryRecord,
    /// The SCIM base URL to give the IdP.
    pub scim_base_url: String,
    /// Shown once; only its hash is kept.
    pub token: NewToken,
}

/// A new directory with its first token; `public_url` is the service's, for the SCIM base URL.
pub async fn create_directory(
    store: &Store,
    caller: &Caller,
    public_url: &str,
    name: &str,
) -> AdminResult<NewDirectory> {
    caller.require(Action::Manage)?;
    let (directory, token) = store.create_directory(caller.scope(), name).await?;
    let scim_base_url = format!("{public_url}/scim/v2/{}", directory.id);
    Ok(NewDirectory {
        directory,
        scim_base_url,
        token,
    })
}

/// The organization's directory `id`, or a 404 that names it (another organization's too: ids
/// cannot be probed).
async fn directory(store: &Store, caller: &Caller, id: &str) -> AdminResult<DirectoryRecord> {
    store
        .directory(caller.scope(), id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AdminError::NotFound(format!("no directory {id:?}")),
            e => e.into(),
        })
}

pub async fn list_directory_tokens(
    store: &Store,
    caller: &Caller,
    directory_id: &str,
) -> AdminResult<Vec<TokenInfo>> {
    caller.require(Action::Read)?;
    directory(store, caller, directory_id).await?;
    Ok(store
        .list_directory_tokens(caller.scope(), directory_id)
        .await?)
}

/// A new token; the previous one stays valid until revoked.
pub async fn rotate_directory_token(
    store: &Store,
    caller: &Caller,
    directory_id: &str,
) -> AdminResult<NewToken> {
    caller.require(Action::Manage)?;
    directory(store, caller, directory_id).await?;
    Ok(store
        .rotate_directory_token(caller.scope(), directory_id)
        .await?)
}

pub async fn revoke_directory_token(
    store: &Store,
    caller: &Caller,
    directory_id: &str,
    token_id: &str,
) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    directory(store, caller, directory_id).await?;
    store
        .revoke_directory_tokens(caller.scope(), directory_id, Some(token_id))
        .await?;
    Ok(())
}
