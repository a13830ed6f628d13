//! One person provisioned by two directories (Entra and Okta) into one organization: access comes
//! only from the person's active SCIM users, a userName change moves the SCIM user to the right
//! person, and an organization has its owner from the start.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, assert_patched, patch};

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// The organization of [`TestApp`] (its directory plays Entra) with a second directory that plays
/// Okta, an owner token and one sub-account.
struct TwoIdps {
    app: TestApp,
    owner: String,
    sa: String,
    okta_dir: String,
    okta_token: String,
}

async fn two_idps() -> TwoIdps {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sub-accounts"),
            &owner,
            Some(json!({ "name": "Marketing" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sa = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .api(
            Method::POST,
            &app.org_path("/directories"),
            &owner,
            Some(json!({ "name": "Okta" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let okta_dir = r.body["directory"]["id"].as_str().unwrap().to_string();
    let okta_token = r.body["token"]["token"].as_str().unwrap().to_string();
    TwoIdps {
        app,
        owner,
        sa,
        okta_dir,
        okta_token,
    }
}

impl TwoIdps {
    /// A request of the Okta directory; `path` is relative to its SCIM base.
    async fn okta(&self, method: Method, path: &str, body: Option<Value>) -> crate::harness::Resp {
        self.app
            .send(
                method,
                &format!("/scim/v2/{}{path}", self.okta_dir),
                body,
                &[("authorization", &format!("Bearer {}", self.okta_token))],
            )
            .await
    }

    /// Okta's create: filter-then-POST of its documented body.
    async fn okta_user(&self, user_name: &str) -> String {
        let r = self
            .okta(
                Method::POST,
                "/Users",
                Some(json!({
                    "schemas": [CORE_USER],
                    "userName": user_name,
                    "name": {"givenName": "Ada", "familyName": "Lovelace"},
                    "emails": [{"primary": true, "value": user_name, "type": "work"}],
                    "displayName": "Ada Lovelace",
                    "locale": "en-US",
                    "externalId": format!("00u{}", uuid::Uuid::now_v7().simple()),
                    "groups": [],
                    "password": "1mz050nq",
                    "active": true
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    async fn okta_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
        let r = self
            .okta(
                Method::POST,
                "/Groups",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name,
                    "members": members
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    /// Okta's update: GET the user, change it, PUT the whole body back.
    async fn okta_put(&self, id: &str, change: impl FnOnce(&mut Value)) -> crate::harness::Resp {
        let got = self.okta(Method::GET, &format!("/Users/{id}"), None).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        let mut body = got.body;
        change(&mut body);
        self.okta(Method::PUT, &format!("/Users/{id}"), Some(body))
            .await
    }

    /// Entra's create (its documented body).
    async fn entra_user(&self, user_name: &str) -> String {
        let r = self
            .app
            .post(
                "/Users",
                json!({
                    "schemas": [CORE_USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                    "externalId": uuid::Uuid::now_v7().to_string(),
                    "userName": user_name,
                    "active": true,
                    "displayName": "Test User",
                    "emails": [{"primary": true, "type": "work", "value": user_name}],
                    "meta": {"resourceType": "User"},
                    "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
                    "roles": []
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    async fn rule(&self, matcher: Value, grant: Value) {
        let r = self
            .app
            .api(
                Method::POST,
                &self.app.org_path("/mappings"),
                &self.owner,
                Some(json!({ "matcher": matcher, "grant": grant })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    async fn users(&self) -> Vec<Value> {
        let users = self
            .app
            .api_ok(&self.app.org_path("/users?limit=1000"), &self.owner)
            .await;
        users["items"].as_array().unwrap().clone()
    }

    async fn user_id(&self, user_name: &str) -> String {
        self.app.org_user_id(&self.owner, user_name).await
    }

    async fn access(&self, user: &str) -> Value {
        self.app
            .api_ok(
                &self.app.org_path(&format!("/users/{user}/access")),
                &self.owner,
            )
            .await
    }

    /// The role in the sub-account and the organization roles: what the person may do.
    async fn roles(&self, user: &str) -> (Value, Vec<Value>) {
        let view = self.access(user).await;
        let sa = view["sub_accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == self.sa.as_str())
            .unwrap()["role"]
            .clone();
        let org: Vec<Value> = view["org_roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["role"].clone())
            .collect();
        (sa, org)
    }

    async fn seats_used(&self) -> i64 {
        self.app
            .api_ok(&self.app.org_path("/seats"), &self.owner)
            .await["used"]
            .as_i64()
            .unwrap()
    }

    async fn events(&self, after: i64) -> Vec<Value> {
        let page = self
            .app
            .api_ok(
                &self
                    .app
                    .org_path(&format!("/events?after={after}&limit=1000")),
                &self.owner,
            )
            .await;
        page["items"].as_array().unwrap().clone()
    }

    async fn last_seq(&self) -> i64 {
        self.events(0)
            .await
            .last()
            .map(|e| e["seq"].as_i64().unwrap())
            .unwrap_or(0)
    }
}

fn by_name(name: &str) -> Value {
    json!({ "type": "display_name", "display_name": name })
}

fn entra_active(value: &str) -> Value {
    // Entra sends the boolean as a string, capitalised.
    patch(json!([{ "op": "Replace", "path": "active", "value": value }]))
}

// ---- item: access only from active SCIM users ---------------------------------------------------

#[tokio::test]
async fn a_deactivated_scim_users_groups_stop_counting_at_once_and_come_back_on_reactivation() {
    let t = two_idps().await;
    let sa = t.sa.clone();
    t.rule(
        by_name("Engineering"),
        json!({ "type": "sub_account_role", "sub_account": { "one": sa }, "role": "admin" }),
    )
    .await;
    t.rule(
        by_name("Staff"),
        json!({ "type": "org_role", "role": "org_viewer" }),
    )
    .await;
    let entra = t.entra_user("ada@example.com").await;
    t.app.group("Engineering", &[&entra]).await;
    let okta = t.okta_user("ada@example.com").await;
    t.okta_group("Staff", &[&okta]).await;
    let ada = t.user_id("ada@example.com").await;
    assert_eq!(
        t.roles(&ada).await,
        (json!("admin"), vec![json!("org_viewer")])
    );
    assert_eq!(t.seats_used().await, 1);

    // Entra deactivates: Entra's groups stop counting in that request; Okta keeps the person
    // active with what Okta's groups give.
    let seq = t.last_seq().await;
    assert_patched(
        &t.app
            .patch(&format!("/Users/{entra}"), entra_active("False"))
            .await,
    );
    assert_eq!(
        t.roles(&ada).await,
        (Value::Null, vec![json!("org_viewer")])
    );
    assert_eq!(t.access(&ada).await["active"], true);
    assert_eq!(t.seats_used().await, 1);
    let new = t.events(seq).await;
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["type"], "access.revoked", "{new:?}");
    assert_eq!(new[0]["data"]["change"]["from"], "admin", "{new:?}");

    // Reactivation brings the group's role back.
    assert_patched(
        &t.app
            .patch(&format!("/Users/{entra}"), entra_active("True"))
            .await,
    );
    assert_eq!(
        t.roles(&ada).await,
        (json!("admin"), vec![json!("org_viewer")])
    );

    // Okta deactivates with a PUT of the whole user: the same result as Okta deleting the user.
    let r = t.okta_put(&okta, |u| u["active"] = json!(false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let deactivated = t.roles(&ada).await;
    assert_eq!(deactivated, (json!("admin"), vec![]));
    let r = t
        .okta(Method::DELETE, &format!("/Users/{okta}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(t.roles(&ada).await, deactivated);
    assert_eq!(t.access(&ada).await["active"], true);
    assert_eq!(t.seats_used().await, 1);
}
