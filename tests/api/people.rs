//! One person provisioned by two directories (Entra and Okta) into one organization: access comes
//! only from the person's active SCIM users, a userName change moves the SCIM user to the right
//! person, and an organization has its owner from the start.

use axum::http::{Method, StatusCode};
use idbridge::service::setup;
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
                // One person through two directories, both trusted for these groups.
                Some(json!({ "matcher": matcher, "grant": grant, "source": "any" })),
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

// ---- item: a userName change moves the person ---------------------------------------------------

/// An OIDC connection of the organization, stored as the admin API would store it, for
/// `service::sign_in::sign_in` (what a verified answer of the IdP leads to).
async fn connection(app: &TestApp, jit: bool) -> idbridge::store::sso::Connection {
    let scope = idbridge::store::admin::OrgScope::for_org(&app.org_id, "test");
    let config = json!({ "issuer": "https://idp.example.test", "client_id": "idbridge-at-idp" });
    idbridge::service::sso::add_connection(
        &app.store,
        &scope,
        &idbridge::store::new_id(),
        &idbridge::store::sso::ConnectionWrite {
            kind: idbridge::domain::access::ConnectionKind::Oidc,
            name: "IdP",
            config: &config,
            secret: None,
            jit,
            enabled: true,
            signs_in_owner: true,
            // The people these tests sign in are of example domains no one verified.
            allow_other_domains: true,
        },
    )
    .await
    .unwrap()
}

async fn sign_in_as(
    app: &TestApp,
    conn: &idbridge::store::sso::Connection,
    email: &str,
) -> Result<idbridge::service::sign_in::SignedIn, idbridge::service::sign_in::SignInError> {
    let identity = idbridge::sso::identity::SsoIdentity {
        subject: format!("idp|{email}"),
        email: Some(email.to_string()),
        email_verified: Some(true),
        name: Some("Ada Lovelace".into()),
        groups: idbridge::sso::identity::GroupClaim::Absent,
    };
    idbridge::service::sign_in::sign_in(
        &app.store,
        conn,
        &identity,
        std::time::Duration::from_secs(3600),
    )
    .await
}

fn entra_rename(user_name: &str) -> Value {
    // Entra's documented "Update User [Single-valued properties]" request.
    patch(json!([{ "op": "Replace", "path": "userName", "value": user_name }]))
}

async fn transfer_owner(t: &TwoIdps, user: &str) {
    let r = t
        .app
        .api(
            Method::POST,
            &t.app.org_path("/owner"),
            &t.owner,
            Some(json!({ "user_id": user })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn owner_of(t: &TwoIdps) -> Value {
    t.app.api_ok(&t.app.org_path(""), &t.owner).await["owner_user_id"].clone()
}

async fn audit_operations(t: &TwoIdps, user: &str) -> Vec<Value> {
    let audit = t
        .app
        .api_ok(
            &t.app
                .org_path(&format!("/audit?resource_id={user}&resource_type=OrgUser")),
            &t.owner,
        )
        .await;
    audit["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_rename_by_entra_renames_the_person_in_place_and_keeps_grants_sessions_and_ownership() {
    let t = two_idps().await;
    let conn = connection(&t.app, false).await;
    let entra = t.entra_user("ada@old.example").await;
    let ada = t.user_id("ada@old.example").await;
    transfer_owner(&t, &ada).await;
    let sa = t.sa.clone();
    let grant = t
        .app
        .api(
            Method::POST,
            &t.app.org_path(&format!("/users/{ada}/grants")),
            &t.owner,
            Some(
                json!({ "grant": { "type": "sub_account_role", "sub_account": { "one": sa },
                                    "role": "admin" } }),
            ),
        )
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{}", grant.body);
    let session = sign_in_as(&t.app, &conn, "ada@old.example").await.unwrap();
    let seq = t.last_seq().await;

    assert_patched(
        &t.app
            .patch(&format!("/Users/{entra}"), entra_rename("ada@new.example"))
            .await,
    );

    let users = t.users().await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["id"], ada.as_str());
    assert_eq!(users[0]["user_name"], "ada@new.example");
    assert_eq!(owner_of(&t).await, ada.as_str());
    assert_eq!(t.roles(&ada).await.0, "admin");
    assert!(
        t.app
            .store
            .live_session(&session.session_token, std::time::Duration::from_secs(3600))
            .await
            .unwrap()
            .is_some(),
        "the session survives a rename"
    );
    let new = t.events(seq).await;
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["type"], "user.renamed", "{new:?}");
    assert_eq!(new[0]["data"]["from_user_name"], "ada@old.example");
    assert_eq!(new[0]["data"]["user_name"], "ada@new.example");
    let audit = audit_operations(&t, &ada).await;
    assert!(
        audit.iter().any(|e| e["operation"] == "renamed"),
        "{audit:?}"
    );

    // Sign-in by the new email finds the person; by the old one, nobody.
    let signed = sign_in_as(&t.app, &conn, "Ada@New.example").await.unwrap();
    assert_eq!(signed.org_user_id, ada);
    let err = sign_in_as(&t.app, &conn, "ada@old.example")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_provisioned");

    // Okta then provisions the new name: the same person, one seat.
    t.okta_user("ada@new.example").await;
    assert_eq!(t.users().await.len(), 1);
    assert_eq!(t.seats_used().await, 1);
}

#[tokio::test]
async fn a_rename_to_an_existing_persons_name_merges_into_them_with_one_seat() {
    let t = two_idps().await;
    // Okta knows the person by the new name already; Entra still by the old one.
    let okta = t.okta_user("grace@new.example").await;
    let entra = t.entra_user("grace@old.example").await;
    let kept = t.user_id("grace@new.example").await;
    let merged = t.user_id("grace@old.example").await;
    assert_eq!(t.seats_used().await, 2);
    let seq = t.last_seq().await;

    // Okta's way is a GET then PUT; Entra's a PATCH. Entra renames here.
    assert_patched(
        &t.app
            .patch(
                &format!("/Users/{entra}"),
                entra_rename("grace@new.example"),
            )
            .await,
    );
    assert_eq!(t.seats_used().await, 1);
    let users = t.users().await;
    let active: Vec<&Value> = users.iter().filter(|u| u["active"] == true).collect();
    assert_eq!(active.len(), 1, "{users:?}");
    assert_eq!(active[0]["id"], kept.as_str());
    let types: Vec<Value> = t
        .events(seq)
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert!(types.contains(&json!("user.merged")), "{types:?}");
    assert!(types.contains(&json!("user.deprovisioned")), "{types:?}");
    let gone = t
        .events(seq)
        .await
        .into_iter()
        .find(|e| e["type"] == "user.deprovisioned")
        .unwrap();
    assert_eq!(gone["user_id"], merged.as_str());
    assert_eq!(gone["data"]["reason"], "merged");
    let audit = audit_operations(&t, &kept).await;
    assert!(
        audit.iter().any(|e| e["operation"] == "merged"),
        "{audit:?}"
    );

    // Both directories' users are now this one person: deactivating one keeps them active.
    assert_patched(
        &t.app
            .patch(&format!("/Users/{entra}"), entra_active("False"))
            .await,
    );
    assert_eq!(t.access(&kept).await["active"], true);
    let r = t.okta_put(&okta, |u| u["active"] = json!(false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(t.access(&kept).await["active"], false);
}

#[tokio::test]
async fn a_rename_by_okta_of_a_person_entra_also_provisions_moves_only_oktas_user() {
    let t = two_idps().await;
    let entra = t.entra_user("lin@old.example").await;
    let okta = t.okta_user("lin@old.example").await;
    let shared = t.user_id("lin@old.example").await;
    transfer_owner(&t, &shared).await;
    let seq = t.last_seq().await;

    // Okta: GET, change userName, PUT it all back.
    let r = t
        .okta_put(&okta, |u| u["userName"] = json!("lin@new.example"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["userName"], "lin@new.example");

    // Entra still calls the person by the old name: that person stays, and keeps ownership; the
    // renamed Okta user is a person of its own.
    assert_eq!(t.user_id("lin@old.example").await, shared);
    let moved = t.user_id("lin@new.example").await;
    assert_ne!(moved, shared);
    assert_eq!(owner_of(&t).await, shared.as_str());
    assert_eq!(t.access(&shared).await["active"], true);
    assert_eq!(t.access(&moved).await["active"], true);
    let new = t.events(seq).await;
    let moved_event = new
        .iter()
        .find(|e| e["type"] == "user.moved")
        .unwrap_or_else(|| panic!("{new:?}"));
    assert_eq!(moved_event["user_id"], moved.as_str());
    assert_eq!(moved_event["data"]["from_user_id"], shared.as_str());

    // Entra renames too: its user joins the moved person; the old person, the owner, is refused
    // a merge that would leave the organization without its owner.
    let r = t
        .app
        .patch(&format!("/Users/{entra}"), entra_rename("lin@new.example"))
        .await;
    r.assert_error(400, Some("mutability"));
    assert!(
        r.body["detail"].as_str().unwrap().contains("owner"),
        "{}",
        r.body
    );
    assert_eq!(
        t.app.get(&format!("/Users/{entra}")).await.body["userName"],
        "lin@old.example"
    );
    assert_eq!(owner_of(&t).await, shared.as_str());
    assert_eq!(t.access(&shared).await["active"], true);
}

// ---- item: an organization has its owner from the start -----------------------------------------

/// An organization created as the operator's `org create --owner` creates it, on the database and
/// router of `app`, with an owner-role admin token.
struct Owned {
    org_id: String,
    owner_user_id: String,
    token: String,
}

async fn owned_org(app: &TestApp, owner: &str) -> Owned {
    let new = idbridge::service::admin::NewOrg {
        name: format!("owned-{}", uuid::Uuid::now_v7()),
        owner_email: Some(owner.to_string()),
        ..Default::default()
    };
    let created = idbridge::service::admin::create_org(&app.store, &new, "test")
        .await
        .unwrap();
    let org_id = created.org.id;
    let scope = idbridge::store::admin::OrgScope::for_org(&org_id, "test");
    let token = setup::create_admin_token(&app.store, &scope, "org_owner", None, "test")
        .await
        .unwrap()
        .token;
    Owned {
        org_id,
        owner_user_id: created.owner_user_id.expect("an owner"),
        token,
    }
}

impl Owned {
    async fn get(&self, app: &TestApp, suffix: &str) -> Value {
        app.api_ok(
            &format!("/api/v1/orgs/{}{suffix}", self.org_id),
            &self.token,
        )
        .await
    }
}

#[tokio::test]
async fn an_organization_created_with_an_owner_protects_them_from_the_first_scim_request() {
    let app = TestApp::new().await;
    let o = owned_org(&app, "Boss@Example.com").await;

    // The owner exists at once, inactive, in no seat, with the owner's role.
    let org = o.get(&app, "").await;
    assert_eq!(org["owner_user_id"], o.owner_user_id.as_str(), "{org}");
    assert_eq!(o.get(&app, "/seats").await["used"], 0);
    let view = o
        .get(&app, &format!("/users/{}/access", o.owner_user_id))
        .await;
    assert_eq!(view["active"], false, "{view}");
    assert_eq!(view["org_roles"][0]["role"], "org_owner", "{view}");

    // The directory provisions the owner's userName (in another case): it is that person.
    let (dir, token) = setup::create_directory(
        &app.store,
        &idbridge::store::admin::OrgScope::for_org(&o.org_id, "test"),
        "Entra",
    )
    .await
    .unwrap();
    let auth = format!("Bearer {}", token.token);
    let r = app
        .send(
            Method::POST,
            &format!("/scim/v2/{}/Users", dir.id),
            Some(json!({ "schemas": [CORE_USER], "userName": "boss@example.com", "active": true })),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let scim_id = r.id();
    let users = o.get(&app, "/users").await;
    assert_eq!(users["items"].as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users["items"][0]["id"], o.owner_user_id.as_str());
    assert_eq!(users["items"][0]["active"], true);
    assert_eq!(o.get(&app, "/seats").await["used"], 1);
    let events = o.get(&app, "/events?limit=1000").await;
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"owner.transferred"), "{types:?}");
    assert!(types.contains(&"user.provisioned"), "{types:?}");

    // Owner protection holds on day one.
    let r = app
        .send(
            Method::PATCH,
            &format!("/scim/v2/{}/Users/{scim_id}", dir.id),
            Some(entra_active("False")),
            &[("authorization", &auth)],
        )
        .await;
    r.assert_error(400, Some("mutability"));
    assert_eq!(o.get(&app, "/seats").await["used"], 1);
}

#[tokio::test]
async fn the_named_owner_of_an_organization_without_a_directory_is_linked_by_their_first_sign_in() {
    let app = TestApp::new().await;
    let o = owned_org(&app, "founder@example.com").await;
    let scope = idbridge::store::admin::OrgScope::for_org(&o.org_id, "test");
    let config = json!({ "issuer": "https://idp.example.test", "client_id": "idbridge-at-idp" });
    let conn = idbridge::service::sso::add_connection(
        &app.store,
        &scope,
        &idbridge::store::new_id(),
        &idbridge::store::sso::ConnectionWrite {
            kind: idbridge::domain::access::ConnectionKind::Oidc,
            name: "IdP",
            config: &config,
            secret: None,
            jit: false,
            enabled: true,
            signs_in_owner: true,
            // The people these tests sign in are of example domains no one verified.
            allow_other_domains: true,
        },
    )
    .await
    .unwrap();

    // Without just-in-time provisioning nobody else gets in; the named owner does.
    let err = sign_in_as(&app, &conn, "someone@example.com")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_provisioned");
    let signed = sign_in_as(&app, &conn, "FOUNDER@example.com")
        .await
        .unwrap();
    assert_eq!(signed.org_user_id, o.owner_user_id);
    let view = o
        .get(&app, &format!("/users/{}/access", o.owner_user_id))
        .await;
    assert_eq!(view["active"], true, "{view}");
    assert_eq!(view["org_roles"][0]["role"], "org_owner", "{view}");
    assert_eq!(o.get(&app, "/seats").await["used"], 1);
}

#[tokio::test]
async fn an_owner_must_be_named_by_email() {
    let app = TestApp::new().await;
    let new = idbridge::service::admin::NewOrg {
        name: "Nameless".into(),
        owner_email: Some("boss".into()),
        ..Default::default()
    };
    let err = idbridge::service::admin::create_org(&app.store, &new, "test")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, idbridge::service::admin::AdminError::Invalid(d) if d.contains("email")),
        "{err:?}"
    );
    // Nothing was created.
    assert!(app.store.find_org("Nameless").await.is_err());
}

/// A create makes the person the first time their userName is seen (provisioned), links a second
/// directory's user to the same person (one seat, no second provisioning), and after both are
/// deleted, links a new user to the person that is still there: reactivated, not provisioned.
#[tokio::test]
async fn a_create_makes_a_person_once_and_links_every_later_user_of_that_name_to_them() {
    let t = two_idps().await;
    let types = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["type"].as_str().unwrap().starts_with("user."))
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };
    let seq = t.last_seq().await;
    let okta = t.okta_user("grace@example.com").await;
    let person = t.user_id("grace@example.com").await;
    assert_eq!(types(t.events(seq).await), ["user.provisioned"]);

    let seq = t.last_seq().await;
    let entra = t.entra_user("Grace@Example.com").await;
    assert_eq!(t.user_id("grace@example.com").await, person);
    assert_eq!(t.seats_used().await, 1);
    assert!(
        types(t.events(seq).await).is_empty(),
        "linked, not provisioned again"
    );

    let r = t
        .okta(Method::DELETE, &format!("/Users/{okta}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = t.app.delete(&format!("/Users/{entra}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(t.seats_used().await, 0);

    let seq = t.last_seq().await;
    t.okta_user("grace@example.com").await;
    assert_eq!(
        t.user_id("grace@example.com").await,
        person,
        "the same person"
    );
    assert_eq!(types(t.events(seq).await), ["user.reactivated"]);
    assert_eq!(t.seats_used().await, 1);
}
