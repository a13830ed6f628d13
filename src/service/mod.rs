//! Provisioning: each SCIM request as one transaction over the store, between the pure protocol
//! code in [`crate::scim`] and the thin HTTP layer. This is where later work hooks the recomputation
//! of access into the same transaction as the change that causes it.

pub mod admin;
pub mod bulk;
pub mod console;
pub mod explain;
pub mod list;
pub mod oauth;
pub mod platform;
pub mod provision;
pub mod resources;
#[doc(hidden)]
pub mod setup;
pub mod sign_in;
pub mod sso;

use std::time::Duration;

use serde_json::Value;

use crate::domain::audit::{AuditOp, AuditResource};
use crate::scim::error::ScimError;
use crate::scim::schema::{GROUP, ResourceType, USER};
use crate::store::{DirectoryScope, Store, StoreError};
use provision::ProvisionError;

/// The two SCIM resource types this service provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    /// From an endpoint path segment (RFC 7643 §6 `endpoint`, without the slash).
    pub fn from_endpoint(segment: &str) -> Option<Kind> {
        match segment {
            "Users" => Some(Kind::User),
            "Groups" => Some(Kind::Group),
            _ => None,
        }
    }

    pub fn rt(self) -> &'static ResourceType {
        match self {
            Kind::User => &USER,
            Kind::Group => &GROUP,
        }
    }
}

pub(crate) fn micros(d: Duration) -> i64 {
    d.as_micros() as i64
}

/// What sign-in ([`sign_in`]) and the OpenID provider ([`oauth`]) act with, borrowed from the
/// application's state.
#[derive(Clone, Copy)]
pub struct SsoCtx<'a> {
    pub store: &'a Store,
    /// Externally visible base URL, without a trailing slash: our endpoints and the issuer.
    pub public_url: &'a str,
    pub outbound: &'a crate::net::Outbound,
    pub providers: &'a sign_in::Providers,
    pub signer: &'a oauth::Signer,
    pub session_idle: Duration,
    pub session_lifetime: Duration,
}

/// What a SCIM request acts with: the store, the authenticated directory, and the directory's SCIM
/// base URL for `Location` and `meta.location`.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub scope: &'a DirectoryScope,
    pub base_url: &'a str,
    pub sizes: &'a crate::domain::limits::Sizes,
}

/// A resource as sent to the client, before `attributes`/`excludedAttributes` projection.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Value,
    pub version: i64,
    pub location: String,
}

impl Rendered {
    /// RFC 7644 §3.14: a weak entity tag per resource version.
    pub fn etag(&self) -> String {
        crate::scim::version::etag(self.version)
    }
}

/// What a client is told while the database cannot be reached; the response carries Retry-After.
pub const DATABASE_UNAVAILABLE: &str = "the database is unavailable; try again in a few seconds";

/// Internal failures are logged with their cause and answered with a generic 500; client errors
/// keep their SCIM meaning.
pub fn store_error(e: StoreError) -> ScimError {
    match e {
        StoreError::Conflict(what) => ScimError::uniqueness(format!("{what} already exists")),
        StoreError::NotFound => ScimError::not_found("resource not found"),
        StoreError::Invalid(msg) => ScimError::invalid_value(msg),
        e if e.is_unavailable() => {
            tracing::warn!(error = %e, "database unavailable");
            ScimError::new(503, None, DATABASE_UNAVAILABLE)
        }
        e => {
            tracing::error!(error = %e, "storage failure");
            ScimError::new(500, None, "internal error")
        }
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        store_error(e)
    }
}

impl From<ProvisionError> for ScimError {
    fn from(e: ProvisionError) -> Self {
        match e {
            // No SCIM error type fits a licence limit; 403 with the reason is what IdPs show admins.
            e @ ProvisionError::SeatLimit(_) => ScimError::new(403, None, e.to_string()),
            e @ ProvisionError::OwnerProtected(_) => ScimError::mutability(e.to_string()),
            ProvisionError::Store(e) => store_error(e),
        }
    }
}

pub fn precondition_failed() -> ScimError {
    ScimError::new(
        412,
        None,
        "the resource has changed: If-Match does not match its current ETag",
    )
}

pub use crate::scim::list::invalid_cursor;

/// Counts SCIM operations per directory for /metrics.
pub fn count_op(scope: &DirectoryScope, resource: AuditResource, op: AuditOp) {
    metrics::counter!(
        "idbridge_scim_operations_total",
        "directory" => scope.directory_id().to_string(),
        "resource" => resource.as_str(),
        "operation" => op.as_str()
    )
    .increment(1);
}
