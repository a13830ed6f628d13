//! RFC 7643 §5 ServiceProviderConfig, advertising exactly what this service supports, with the
//! RFC 9865 §5 pagination block.

use serde_json::{Value, json};

pub const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

pub struct Limits {
    pub max_results: u64,
    pub default_page_size: u64,
    pub bulk_max_operations: usize,
    pub bulk_max_payload: usize,
}

pub fn service_provider_config(base_url: &str, l: &Limits) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": l.bulk_max_operations, "maxPayloadSize": l.bulk_max_payload},
        "filter": {"supported": true, "maxResults": l.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": l.default_page_size,
            "maxPageSize": l.max_results,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A per-directory bearer token in the Authorization header",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig"),
        },
    })
}
