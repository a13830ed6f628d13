//! The request bodies Okta and Entra send, as their published SCIM integration guides show them and
//! as `tests/api/dialect_okta.rs` and `tests/api/dialect_entra.rs` pin them: a load made of other
//! requests measures a server nobody runs.

use serde_json::{Value, json};

pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    Okta,
    Entra,
}

impl Dialect {
    /// `POST /Users`, with the enterprise extension both IdPs send once an admin maps a department
    /// or an employee number.
    pub fn create_user(self, user_name: &str, external_id: &str, n: usize) -> Value {
        let enterprise = json!({
            "employeeNumber": format!("{n:06}"),
            "department": format!("Department {}", n % 40),
            "costCenter": format!("CC-{}", n % 7),
        });
        match self {
            Dialect::Okta => json!({
                "schemas": [CORE_USER, ENTERPRISE],
                "userName": user_name,
                "name": {"givenName": "Load", "familyName": format!("User{n}")},
                "emails": [{"primary": true, "value": user_name, "type": "work"}],
                "displayName": format!("Load User{n}"),
                "locale": "en-US",
                "externalId": external_id,
                "groups": [],
                "password": "1mz050nq",
                "active": true,
                ENTERPRISE: enterprise,
            }),
            Dialect::Entra => json!({
                "schemas": [CORE_USER, ENTERPRISE],
                "externalId": external_id,
                "userName": user_name,
                "active": true,
                "displayName": format!("Load User{n}"),
                "emails": [{"primary": true, "type": "work", "value": user_name}],
                "meta": {"resourceType": "User"},
                "name": {
                    "formatted": format!("Load User{n}"),
                    "familyName": format!("User{n}"),
                    "givenName": "Load",
                },
                "roles": [],
                ENTERPRISE: enterprise,
            }),
        }
    }

    /// The user lookup each IdP makes before it creates or links a user.
    pub fn lookup_query(self, user_name: &str) -> String {
        let filter = encode(&format!("userName eq \"{user_name}\""));
        match self {
            Dialect::Okta => format!("/Users?filter={filter}&startIndex=1&count=100"),
            Dialect::Entra => format!("/Users?filter={filter}"),
        }
    }

    /// An attribute change: Entra sends PATCH with a path per attribute; Okta sends a path-less
    /// replace for the profile (its PUT is the separate `put` phase).
    pub fn patch_user(self, n: usize, round: usize) -> Value {
        let family = format!("User{n}r{round}");
        let ops = match self {
            Dialect::Okta => json!([{"op": "replace", "value": {
                "name": {"givenName": "Load", "familyName": family},
                "displayName": format!("Load {family}"),
            }}]),
            Dialect::Entra => json!([
                {"op": "Replace", "path": "name.familyName", "value": family},
                {"op": "Replace", "path": "displayName", "value": format!("Load {family}")},
                {"op": "Add", "path": "title", "value": "Engineer"},
            ]),
        };
        patch(ops)
    }

    /// Deactivation: Okta's path-less replace, Entra's `Replace active "False"` (a string).
    pub fn deactivate(self) -> Value {
        match self {
            Dialect::Okta => patch(json!([{"op": "replace", "value": {"active": false}}])),
            Dialect::Entra => patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        }
    }

    pub fn create_group(self, name: &str) -> Value {
        json!({"schemas": [CORE_GROUP], "displayName": name, "members": []})
    }

    /// Members added in one PATCH: Okta sends `{value, display}`, Entra `{value}` only.
    pub fn add_members(self, members: &[(String, String)]) -> Value {
        let value: Vec<Value> = members
            .iter()
            .map(|(id, user_name)| match self {
                Dialect::Okta => json!({"value": id, "display": user_name}),
                Dialect::Entra => json!({"value": id}),
            })
            .collect();
        let op = match self {
            Dialect::Okta => "add",
            Dialect::Entra => "Add",
        };
        patch(json!([{"op": op, "path": "members", "value": value}]))
    }

    /// One member removed: Okta names it in a value filter, Entra lists it in the value.
    pub fn remove_member(self, id: &str) -> Value {
        match self {
            Dialect::Okta => patch(json!([{
                "op": "remove",
                "path": format!("members[value eq \"{id}\"]"),
            }])),
            Dialect::Entra => patch(json!([{
                "op": "Remove",
                "path": "members",
                "value": [{"value": id}],
            }])),
        }
    }
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// Percent-encoding for a query value (RFC 3986 unreserved characters pass).
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
