//! Pure SCIM 2.0 (RFC 7643, RFC 7644, RFC 9865): schemas, the filter and path grammar, resource
//! normalisation, PATCH, errors, discovery documents and resource versions (ETags). No HTTP, no
//! SQL.

pub mod discovery;
pub mod error;
pub mod filter;
pub mod list;
pub mod patch;
pub mod resource;
pub mod schema;
pub mod version;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod robustness;

/// The media type of every SCIM response (RFC 7644 §3.1).
pub const MEDIA_TYPE: &str = "application/scim+json";
