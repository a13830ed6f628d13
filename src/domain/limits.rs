//! How long a text value may be. A name, URL or description has a human size; without a bound, one
//! request can store megabytes that every later list, audit row and webhook carries again.

use serde_json::Value;

/// Names, emails, URLs, descriptions, claim values: anything a person types or an IdP names.
pub const TEXT: usize = 2 * 1024;
/// A PEM or base64 certificate, with room for a long chain.
pub const CERTIFICATE: usize = 16 * 1024;
/// A SAML metadata document pasted whole (federation metadata of one IdP, many keys).
pub const METADATA: usize = 1024 * 1024;
/// One string attribute of a SCIM resource (RFC 7643 sets no bound; IdPs send short values).
pub const SCIM_VALUE: usize = 16 * 1024;

/// The sizes an operator sets (Configuration), each advertised in ServiceProviderConfig where
/// SCIM has a place for it (RFC 7643 §5: `bulk.maxOperations`, `bulk.maxPayloadSize`,
/// `filter.maxResults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// A SCIM request body outside /Bulk: a PUT of a large group fits, a runaway does not.
    pub body_bytes: usize,
    /// Operations in one /Bulk request.
    pub bulk_operations: usize,
    /// A /Bulk request body.
    pub bulk_payload_bytes: usize,
    /// Resources in one page of a list or search, whatever `count` asks.
    pub page_size: u64,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            body_bytes: 4 * 1024 * 1024,
            bulk_operations: 1000,
            bulk_payload_bytes: 1024 * 1024,
            page_size: 1000,
        }
    }
}

/// The limit for a field of the admin API, by the name of the member that holds it.
pub fn for_field(name: &str) -> usize {
    match name {
        "metadata_xml" => METADATA,
        "idp_certificates" | "certificates" | "certificate" | "sp_encryption_certificate" => {
            CERTIFICATE
        }
        _ => TEXT,
    }
}

/// A string longer than its field allows: where it is (a JSON pointer), its length and the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    pub pointer: String,
    pub len: usize,
    pub limit: usize,
}

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {} bytes long; at most {} are accepted",
            self.pointer, self.len, self.limit
        )
    }
}

/// The first string of `v` longer than `limit` gives for the member it sits under (array items
/// inherit their array's name).
pub fn check(v: &Value, limit: &dyn Fn(&str) -> usize) -> Result<(), TooLong> {
    walk(v, "", "", limit)
}

fn walk(
    v: &Value,
    pointer: &str,
    field: &str,
    limit: &dyn Fn(&str) -> usize,
) -> Result<(), TooLong> {
    match v {
        Value::String(s) => {
            let max = limit(field);
            if s.len() > max {
                return Err(TooLong {
                    pointer: if pointer.is_empty() {
                        "/".into()
                    } else {
                        pointer.into()
                    },
                    len: s.len(),
                    limit: max,
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{pointer}/{i}"), field, limit)?;
            }
        }
        Value::Object(members) => {
            for (k, item) in members {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                walk(item, &format!("{pointer}/{escaped}"), k, limit)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_field_has_its_own_bound_and_array_items_take_their_arrays() {
        let long = "x".repeat(TEXT + 1);
        let err = check(&json!({"rule": {"description": long}}), &for_field).unwrap_err();
        assert_eq!(err.pointer, "/rule/description");
        assert_eq!((err.len, err.limit), (TEXT + 1, TEXT));

        let cert = "A".repeat(TEXT * 2);
        assert!(check(&json!({"saml": {"idp_certificates": [cert]}}), &for_field).is_ok());
        let err = check(&json!({"redirect_uris": ["ok", long]}), &for_field).unwrap_err();
        assert_eq!(err.pointer, "/redirect_uris/1");

        let xml = "<x/>".repeat(METADATA / 8);
        assert!(check(&json!({"metadata_xml": xml}), &for_field).is_ok());
        let err = check(&json!({"a/b": long}), &for_field).unwrap_err();
        assert_eq!(err.pointer, "/a~1b");
    }
}
