//! What tests and benches make before they exercise the API: an organization without an owner,
//! admin tokens of any role, directories and sessions, through the same store statements and
//! audit rows as the services, without a [`Caller`](super::admin::Caller) to authorize them.
//! Requests and the CLI never come here.

use std::time::Duration;

use crate::service::admin::{self, AdminError, AdminResult};
use crate::store::admin::{self as admin_db, OrgScope};
use crate::store::directory::{self as dir_db, DirectoryRecord, mint_token};
use crate::store::{NewToken, OrgRecord, Store, new_id};

/// An organization without an owner (and so without the audit row of one made by the operator).
pub async fn create_org(store: &Store, name: &str) -> AdminResult<OrgRecord> {
    let mut tx = store.begin().await?;
    let org = dir_db::insert_org(&mut tx, name).await?;
    tx.commit().await?;
    Ok(org)
}

/// An admin token of `role`, unchecked, so a test can also make one of a role no one knows.
pub async fn create_admin_token(
    store: &Store,
    scope: &OrgScope,
    role: &str,
    sub_account_id: Option<&str>,
    name: &str,
) -> AdminResult<NewToken> {
    admin::create_admin_token(store, scope, role, sub_account_id, name, None).await
}

/// An admin token that stops working at `expires_at` (microseconds).
pub async fn create_admin_token_expiring(
    store: &Store,
    scope: &OrgScope,
    role: &str,
    sub_account_id: Option<&str>,
    name: &str,
    expires_at: Option<i64>,
) -> AdminResult<NewToken> {
    admin::create_admin_token(store, scope, role, sub_account_id, name, expires_at).await
}

pub async fn create_directory(
    store: &Store,
    scope: &OrgScope,
    name: &str,
) -> AdminResult<(DirectoryRecord, NewToken)> {
    admin::add_directory(store, scope, name).await
}

/// A session of a user, as a sign-in would open; returns its id and the cookie's secret.
pub async fn create_session(
    store: &Store,
    scope: &OrgScope,
    user_id: &str,
    lifetime: Duration,
) -> AdminResult<NewToken> {
    let token = NewToken {
        id: new_id(),
        token: mint_token("idbs_"),
    };
    let mut tx = store.begin().await?;
    if !admin_db::org_user_exists(&mut tx, scope, user_id).await? {
        return Err(AdminError::NotFound("not found".into()));
    }
    let expires_at = tx.now() + lifetime.as_micros() as i64;
    admin_db::insert_session(&mut tx, scope, &token, user_id, expires_at).await?;
    tx.commit().await?;
    Ok(token)
}
