//! Scenarios of issue 3 over HTTP: IdP groups mapped to roles, provisioned and deprovisioned by
//! SCIM writes in the same transaction, seen through the admin API.

use axum::http::{Method, StatusCode};
use idbridge::service::setup;
use serde_json::{Value, json};

use crate::harness::{TestApp, assert_patched, patch};

pub(crate) struct Org {
    pub(crate) app: TestApp,
    pub(crate) owner: String,
    pub(crate) sa: String,
}

/// A test organization with an owner token and one sub-account, "Marketing".
pub(crate) async fn org() -> Org {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let sa = sub_account(&app, &owner, "Marketing").await;
    Org { app, owner, sa }
}

async fn sub_account(app: &TestApp, token: &str, name: &str) -> String {
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sub-accounts"),
            token,
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

pub(crate) async fn rule(app: &TestApp, token: &str, matcher: Value, grant: Value) -> Value {
    let r = app
        .api(
            Method::POST,
            &app.org_path("/mappings"),
            token,
            Some(json!({ "matcher": matcher, "grant": grant })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

pub(crate) fn by_name(name: &str) -> Value {
    json!({ "type": "display_name", "display_name": name })
}

pub(crate) fn role_in(sa: &str, role: &str) -> Value {
    json!({ "type": "sub_account_role", "sub_account": { "one": sa }, "role": role })
}

/// The organization user behind a SCIM userName.
pub(crate) async fn org_user(app: &TestApp, token: &str, user_name: &str) -> String {
    app.org_user_id(token, user_name).await
}

pub(crate) async fn access(app: &TestApp, token: &str, user: &str) -> Value {
    app.api_ok(&app.org_path(&format!("/users/{user}/access")), token)
        .await
}

/// The access in one sub-account of an access view.
pub(crate) fn in_sa<'a>(view: &'a Value, sa: &str) -> &'a Value {
    view["sub_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == sa)
        .unwrap_or_else(|| panic!("no sub-account {sa} in {view}"))
}

pub(crate) async fn events(app: &TestApp, token: &str, after: i64) -> Vec<Value> {
    let page = app
        .api_ok(
            &app.org_path(&format!("/events?after={after}&limit=1000")),
            token,
        )
        .await;
    page["items"].as_array().unwrap().clone()
}

pub(crate) async fn last_seq(app: &TestApp, token: &str) -> i64 {
    events(app, token, 0)
        .await
        .last()
        .map(|e| e["seq"].as_i64().unwrap())
        .unwrap_or(0)
}

pub(crate) fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn add_member(user: &str) -> Value {
    // Entra: capitalized op, a list value.
    patch(json!([{ "op": "Add", "path": "members", "value": [{ "value": user }] }]))
}

fn remove_member(user: &str) -> Value {
    // Okta: a value filter in the path.
    patch(json!([{ "op": "remove", "path": format!("members[value eq \"{user}\"]") }]))
}

fn deactivate() -> Value {
    // Entra sends the boolean as a string.
    patch(json!([{ "op": "Replace", "path": "active", "value": "False" }]))
}

#[tokio::test]
async fn entra_adds_to_mapped_group_then_okta_removes() {
    let Org { app, owner, sa } = org().await;
    let created = rule(&app, &owner, by_name("Engineering"), role_in(&sa, "admin")).await;
    let rule_id = created["rule"]["id"].as_str().unwrap().to_string();
    let scim_user = app.user("ada@example.com").await;
    let group = app.group("Engineering", &[]).await;
    let user = org_user(&app, &owner, "ada@example.com").await;
    assert_eq!(
        in_sa(&access(&app, &owner, &user).await, &sa)["role"],
        Value::Null
    );
    let seq = last_seq(&app, &owner).await;

    assert_patched(
        &app.patch(&format!("/Groups/{group}"), add_member(&scim_user))
            .await,
    );
    let view = access(&app, &owner, &user).await;
    let marketing = in_sa(&view, &sa);
    assert_eq!(marketing["role"], "admin", "{view}");
    assert_eq!(
        marketing["reasons"]["role"],
        json!([{ "source": "rule", "rule_id": rule_id,
                 "matched": { "by": "group", "group_id": group, "display_name": "Engineering" } }]),
        "{view}"
    );
    let new = events(&app, &owner, seq).await;
    assert_eq!(types(&new), ["access.granted"], "{new:?}");
    assert_eq!(new[0]["user_id"], user.as_str());
    assert_eq!(new[0]["data"]["change"]["to"], "admin");

    let seq = last_seq(&app, &owner).await;
    assert_patched(
        &app.patch(&format!("/Groups/{group}"), remove_member(&scim_user))
            .await,
    );
    let view = access(&app, &owner, &user).await;
    assert_eq!(in_sa(&view, &sa)["role"], Value::Null, "{view}");
    let new = events(&app, &owner, seq).await;
    assert_eq!(types(&new), ["access.revoked"], "{new:?}");
    assert_eq!(new[0]["data"]["change"]["from"], "admin");
}

#[tokio::test]
async fn deactivation_removes_derived_access_revokes_sessions_and_keeps_grants_made_by_hand() {
    let Org { app, owner, sa } = org().await;
    rule(&app, &owner, by_name("Sales"), role_in(&sa, "member")).await;
    rule(
        &app,
        &owner,
        by_name("Sales"),
        json!({ "type": "org_role", "role": "org_viewer" }),
    )
    .await;
    let scim_user = app.user("grace@example.com").await;
    app.group("Sales", &[&scim_user]).await;
    let user = org_user(&app, &owner, "grace@example.com").await;
    let grant = app
        .api(
            Method::POST,
            &app.org_path(&format!("/users/{user}/grants")),
            &owner,
            Some(
                json!({ "grant": { "type": "features", "sub_account": { "one": sa },
                                    "levels": { "analytics": "read" } } }),
            ),
        )
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{}", grant.body);
    let view = access(&app, &owner, &user).await;
    assert_eq!(in_sa(&view, &sa)["role"], "member");
    assert_eq!(in_sa(&view, &sa)["features"]["analytics"], "read");
    assert_eq!(view["org_roles"][0]["role"], "org_viewer");

    let scope = idbridge::store::admin::OrgScope::for_org(&app.org_id, "test");
    let session = setup::create_session(
        &app.store,
        &scope,
        &user,
        std::time::Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let seq = last_seq(&app, &owner).await;

    assert_patched(
        &app.patch(&format!("/Users/{scim_user}"), deactivate())
            .await,
    );

    let view = access(&app, &owner, &user).await;
    assert_eq!(view["active"], false);
    assert_eq!(view["org_roles"], json!([]), "{view}");
    assert_eq!(in_sa(&view, &sa)["role"], Value::Null, "{view}");
    assert_eq!(in_sa(&view, &sa)["features"], json!({}), "{view}");
    let sessions = app
        .api_ok(&app.org_path(&format!("/users/{user}/sessions")), &owner)
        .await;
    assert_eq!(sessions["items"][0]["id"], session.id.as_str());
    assert!(sessions["items"][0]["revoked_at"].is_string(), "{sessions}");
    assert_eq!(sessions["items"][0]["revoked_reason"], "deactivated");
    let grants = app
        .api_ok(&app.org_path(&format!("/users/{user}/grants")), &owner)
        .await;
    assert_eq!(grants["items"].as_array().unwrap().len(), 1, "{grants}");

    // Every loss, in order, then the deprovisioning that caused them.
    let new = events(&app, &owner, seq).await;
    assert_eq!(
        types(&new),
        [
            "access.revoked",
            "access.revoked",
            "access.revoked",
            "user.deprovisioned"
        ],
        "{new:?}"
    );
    let seqs: Vec<i64> = new.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, ((seq + 1)..=(seq + 4)).collect::<Vec<_>>());
    assert_eq!(new[3]["data"]["reason"], "deactivated");
    assert_eq!(new[3]["data"]["sessions_revoked"], 1);
    let audit = app
        .api_ok(
            &app.org_path(&format!("/audit?resource_id={user}&resource_type=OrgUser")),
            &owner,
        )
        .await;
    assert_eq!(audit["items"][0]["operation"], "deprovision", "{audit}");

    // Reactivation brings back the group's role and the grant made by hand.
    let reactivate = patch(json!([{ "op": "replace", "value": { "active": true } }]));
    assert_patched(&app.patch(&format!("/Users/{scim_user}"), reactivate).await);
    let view = access(&app, &owner, &user).await;
    assert_eq!(in_sa(&view, &sa)["role"], "member");
    assert_eq!(in_sa(&view, &sa)["features"]["analytics"], "read");
    let last = events(&app, &owner, seq + 4).await;
    assert_eq!(last[0]["type"], "user.reactivated", "{last:?}");
}

#[tokio::test]
async fn deleting_the_user_deprovisions_them() {
    let Org { app, owner, sa } = org().await;
    rule(&app, &owner, by_name("Ops"), role_in(&sa, "viewer")).await;
    let scim_user = app.user("linus@example.com").await;
    app.group("Ops", &[&scim_user]).await;
    let user = org_user(&app, &owner, "linus@example.com").await;
    assert_eq!(
        in_sa(&access(&app, &owner, &user).await, &sa)["role"],
        "viewer"
    );
    let seats = app.api_ok(&app.org_path("/seats"), &owner).await;
    assert_eq!(seats["used"], 1);

    let r = app.delete(&format!("/Users/{scim_user}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let view = access(&app, &owner, &user).await;
    assert_eq!(view["active"], false);
    assert_eq!(in_sa(&view, &sa)["role"], Value::Null);
    let seats = app.api_ok(&app.org_path("/seats"), &owner).await;
    assert_eq!(seats["used"], 0);
    let all = events(&app, &owner, 0).await;
    let last = all.last().unwrap();
    assert_eq!(last["type"], "user.deprovisioned");
    assert_eq!(last["data"]["reason"], "deleted");
}

#[tokio::test]
async fn an_organization_wide_grant_covers_sub_accounts_created_later() {
    let Org { app, owner, sa } = org().await;
    rule(
        &app,
        &owner,
        by_name("Everyone"),
        json!({ "type": "sub_account_role", "sub_account": "all", "role": "member" }),
    )
    .await;
    let scim_user = app.user("joan@example.com").await;
    app.group("Everyone", &[&scim_user]).await;
    let user = org_user(&app, &owner, "joan@example.com").await;
    assert_eq!(
        in_sa(&access(&app, &owner, &user).await, &sa)["role"],
        "member"
    );

    let later = sub_account(&app, &owner, "Created later").await;
    let view = access(&app, &owner, &user).await;
    assert_eq!(in_sa(&view, &later)["role"], "member", "{view}");
    assert_eq!(
        in_sa(&view, &later)["reasons"]["role"][0]["source"],
        "rule",
        "{view}"
    );
}

#[tokio::test]
async fn the_owner_is_never_deprovisioned_by_the_idp() {
    let Org { app, owner, sa } = org().await;
    rule(&app, &owner, by_name("Admins"), role_in(&sa, "admin")).await;
    let scim_user = app.user("owner@example.com").await;
    let group = app.group("Admins", &[&scim_user]).await;
    let user = org_user(&app, &owner, "owner@example.com").await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/owner"),
            &owner,
            Some(json!({ "user_id": user })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["organization"]["owner_user_id"], user.as_str());

    // Deactivation and deletion are refused with a SCIM error, and nothing changes.
    let r = app
        .patch(&format!("/Users/{scim_user}"), deactivate())
        .await;
    r.assert_error(400, Some("mutability"));
    assert!(r.body["detail"].as_str().unwrap().contains("owner"));
    app.delete(&format!("/Users/{scim_user}"))
        .await
        .assert_error(400, Some("mutability"));
    let scim = app.get(&format!("/Users/{scim_user}")).await;
    assert_eq!(scim.body["active"], true, "{}", scim.body);
    let view = access(&app, &owner, &user).await;
    assert_eq!(view["active"], true);
    assert_eq!(view["org_roles"][0]["role"], "org_owner");

    // Refusals are visible to admins.
    let all = events(&app, &owner, 0).await;
    let refused: Vec<&Value> = all
        .iter()
        .filter(|e| e["type"] == "owner.deprovision_refused")
        .collect();
    assert_eq!(refused.len(), 2, "{all:?}");
    let audit = app
        .api_ok(&app.org_path(&format!("/audit?resource_id={user}")), &owner)
        .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["operation"] == "deprovision_refused"),
        "{audit}"
    );

    // Leaving a group removes what the group gave, never ownership.
    assert_patched(
        &app.patch(&format!("/Groups/{group}"), remove_member(&scim_user))
            .await,
    );
    let view = access(&app, &owner, &user).await;
    assert_eq!(in_sa(&view, &sa)["role"], Value::Null);
    assert_eq!(view["org_roles"][0]["role"], "org_owner");

    // No rule can grant ownership.
    let r = app
        .api(
            Method::POST,
            &app.org_path("/mappings"),
            &owner,
            Some(json!({ "matcher": by_name("Admins"),
                         "grant": { "type": "org_role", "role": "org_owner" } })),
        )
        .await;
    r.assert_problem(400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("org_owner"),
        "{}",
        r.body
    );

    // Only the owner's token transfers ownership.
    let admin = app.admin_token("org_admin", None).await;
    app.api(
        Method::POST,
        &app.org_path("/owner"),
        &admin,
        Some(json!({ "user_id": user })),
    )
    .await
    .assert_problem(403);
}

/// Preview, then apply: the same users with the same changes, and the preview changed nothing.
#[tokio::test]
async fn preview_equals_the_outcome() {
    let Org { app, owner, sa } = org().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let c = app.user("c@example.com").await;
    app.group("Design", &[&a, &b]).await;
    app.group("design", &[&c]).await;
    let existing = rule(&app, &owner, by_name("Design"), role_in(&sa, "viewer")).await;
    let existing_id = existing["rule"]["id"].as_str().unwrap().to_string();
    let ua = org_user(&app, &owner, "a@example.com").await;

    let changes = [
        json!({ "op": "create", "matcher": by_name("DESIGN"), "grant": role_in(&sa, "admin") }),
        json!({ "op": "update", "id": existing_id, "matcher": by_name("Design"),
                "grant": { "type": "features", "sub_account": "all", "levels": { "campaigns": "full" } } }),
        json!({ "op": "delete", "id": existing_id }),
    ];
    // Apply them in turn; each preview must equal the application that follows it.
    for change in changes {
        let before_seq = last_seq(&app, &owner).await;
        let before_access = access(&app, &owner, &ua).await;
        let preview = app
            .api(
                Method::POST,
                &app.org_path("/mappings/preview"),
                &owner,
                Some(change.clone()),
            )
            .await;
        assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
        assert!(
            !preview.body["changes"].as_array().unwrap().is_empty(),
            "{change}: {}",
            preview.body
        );
        assert_eq!(
            last_seq(&app, &owner).await,
            before_seq,
            "preview wrote events"
        );
        assert_eq!(access(&app, &owner, &ua).await, before_access);
        let rules_before = app.api_ok(&app.org_path("/mappings"), &owner).await;

        let applied = match change["op"].as_str().unwrap() {
            "create" => {
                let mut body = change.clone();
                body.as_object_mut().unwrap().remove("op");
                app.api(Method::POST, &app.org_path("/mappings"), &owner, Some(body))
                    .await
            }
            "update" => {
                let mut body = change.clone();
                let id = body["id"].as_str().unwrap().to_string();
                body.as_object_mut().unwrap().remove("op");
                body.as_object_mut().unwrap().remove("id");
                app.api(
                    Method::PUT,
                    &app.org_path(&format!("/mappings/{id}")),
                    &owner,
                    Some(body),
                )
                .await
            }
            _ => {
                let id = change["id"].as_str().unwrap();
                app.api(
                    Method::DELETE,
                    &app.org_path(&format!("/mappings/{id}")),
                    &owner,
                    None,
                )
                .await
            }
        };
        assert!(applied.status.is_success(), "{}", applied.body);
        assert_eq!(applied.body["changes"], preview.body["changes"], "{change}");
        // And the events of the application say the same, change for change.
        let new = events(&app, &owner, before_seq).await;
        let from_events: Vec<(String, Value)> = new
            .iter()
            .map(|e| {
                (
                    e["user_id"].as_str().unwrap().to_string(),
                    e["data"]["change"].clone(),
                )
            })
            .collect();
        let from_preview: Vec<(String, Value)> = preview.body["changes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|u| {
                u["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| (u["user_id"].as_str().unwrap().to_string(), c.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(from_events, from_preview, "{change}");
        assert_ne!(
            app.api_ok(&app.org_path("/mappings"), &owner).await,
            rules_before
        );
    }
}

/// A preview is a read: it answers while another transaction holds the organization exclusively
/// (as a rule change does; on SQLite, any write holds the one writer), so viewers running previews
/// never queue behind provisioning nor hold it up.
#[tokio::test]
async fn a_preview_does_not_wait_for_the_organizations_lock() {
    use idbridge::store::access::{OrgLock, load_org};
    let Org { app, owner, sa } = org().await;
    let a = app.user("a@example.com").await;
    app.group("Design", &[&a]).await;
    let viewer = app.admin_token("org_viewer", None).await;
    let ua = org_user(&app, &owner, "a@example.com").await;

    let mut held = app.store.begin().await.unwrap();
    load_org(&mut held, &app.org_id, OrgLock::Exclusive)
        .await
        .unwrap();
    let change =
        json!({ "op": "create", "matcher": by_name("Design"), "grant": role_in(&sa, "viewer") });
    // Only a failure detector: a preview that waits for the lock never finishes while it is held.
    let preview = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        app.api(
            Method::POST,
            &app.org_path("/mappings/preview"),
            &viewer,
            Some(change),
        ),
    )
    .await
    .expect("the preview waited for the organization's lock");
    held.rollback().await.unwrap();

    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    let changes = preview.body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{}", preview.body);
    assert_eq!(changes[0]["user_id"], ua.as_str(), "{}", preview.body);
    assert_eq!(
        app.api_ok(&app.org_path("/mappings"), &owner).await["items"],
        json!([]),
        "the preview made the rule"
    );
}

#[tokio::test]
async fn renaming_or_deleting_a_mapped_group_recomputes_its_members() {
    let Org { app, owner, sa } = org().await;
    rule(&app, &owner, by_name("Finance"), role_in(&sa, "member")).await;
    let u = app.user("fin@example.com").await;
    let group = app.group("Finance", &[&u]).await;
    let user = org_user(&app, &owner, "fin@example.com").await;
    assert_eq!(
        in_sa(&access(&app, &owner, &user).await, &sa)["role"],
        "member"
    );

    let rename =
        patch(json!([{ "op": "replace", "path": "displayName", "value": "Finance (old)" }]));
    assert_patched(&app.patch(&format!("/Groups/{group}"), rename).await);
    assert_eq!(
        in_sa(&access(&app, &owner, &user).await, &sa)["role"],
        Value::Null
    );

    let back = patch(json!([{ "op": "replace", "path": "displayName", "value": "FINANCE" }]));
    assert_patched(&app.patch(&format!("/Groups/{group}"), back).await);
    assert_eq!(
        in_sa(&access(&app, &owner, &user).await, &sa)["role"],
        "member"
    );

    assert_eq!(
        app.delete(&format!("/Groups/{group}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        in_sa(&access(&app, &owner, &user).await, &sa)["role"],
        Value::Null
    );
}

#[tokio::test]
async fn the_default_role_reaches_only_users_no_rule_matches() {
    let Org { app, owner, sa } = org().await;
    rule(&app, &owner, by_name("Support"), role_in(&sa, "admin")).await;
    let matched = app.user("matched@example.com").await;
    app.user("unmatched@example.com").await;
    app.group("Support", &[&matched]).await;
    let r = app
        .api(
            Method::PATCH,
            &app.org_path(""),
            &owner,
            Some(json!({ "default_role": "viewer" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let um = org_user(&app, &owner, "unmatched@example.com").await;
    let m = org_user(&app, &owner, "matched@example.com").await;
    let view = access(&app, &owner, &um).await;
    assert_eq!(in_sa(&view, &sa)["role"], "viewer");
    assert_eq!(
        in_sa(&view, &sa)["reasons"]["role"][0]["source"],
        "default_role"
    );
    assert_eq!(in_sa(&access(&app, &owner, &m).await, &sa)["role"], "admin");
    // New users get it at creation.
    app.user("new@example.com").await;
    let new = org_user(&app, &owner, "new@example.com").await;
    assert_eq!(
        in_sa(&access(&app, &owner, &new).await, &sa)["role"],
        "viewer"
    );
}

#[tokio::test]
async fn the_seat_limit_holds_and_a_person_is_counted_once() {
    let Org { app, owner, .. } = org().await;
    let billing = app.admin_token("billing_admin", None).await;
    let r = app
        .api(
            Method::PATCH,
            &app.org_path(""),
            &billing,
            Some(json!({ "seat_limit": 2 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.user("one@example.com").await;
    let two = app.user("two@example.com").await;

    let over = app
        .post(
            "/Users",
            json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "three@example.com" }),
        )
        .await;
    over.assert_error(403, None);
    assert!(
        over.body["detail"].as_str().unwrap().contains("seat limit"),
        "{}",
        over.body
    );
    let found = app
        .get("/Users?filter=userName%20eq%20%22three@example.com%22")
        .await;
    assert_eq!(
        found.body["totalResults"], 0,
        "nothing partial: {}",
        found.body
    );

    // The same person in a second directory of the organization takes no second seat.
    let r = app
        .api(
            Method::POST,
            &app.org_path("/directories"),
            &owner,
            Some(json!({ "name": "second IdP" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let dir = r.body["directory"]["id"].as_str().unwrap().to_string();
    let token = r.body["token"]["token"].as_str().unwrap().to_string();
    let again = app
        .send(
            Method::POST,
            &format!("/scim/v2/{dir}/Users"),
            Some(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ONE@example.com" })),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let seats = app.api_ok(&app.org_path("/seats"), &billing).await;
    assert_eq!(seats, json!({ "used": 2, "limit": 2 }));

    // A deactivation frees a seat; reactivating beyond the limit is refused.
    assert_patched(&app.patch(&format!("/Users/{two}"), deactivate()).await);
    app.user("three@example.com").await;
    let reactivate = patch(json!([{ "op": "replace", "path": "active", "value": true }]));
    app.patch(&format!("/Users/{two}"), reactivate)
        .await
        .assert_error(403, None);
    assert_eq!(
        app.get(&format!("/Users/{two}")).await.body["active"],
        false
    );
}

#[tokio::test]
async fn roles_decide_what_a_token_may_do() {
    let Org { app, owner, sa } = org().await;
    let other_sa = sub_account(&app, &owner, "Other").await;
    app.user("someone@example.com").await;
    let user = org_user(&app, &owner, "someone@example.com").await;
    let viewer = app.admin_token("org_viewer", None).await;
    let billing = app.admin_token("billing_viewer", None).await;
    let sa_admin = app.admin_token("sub_account_admin", Some(&sa)).await;
    let rule_body = json!({ "matcher": by_name("X"), "grant": role_in(&sa, "viewer") });

    // The viewer reads everything and changes nothing.
    app.api_ok(&app.org_path("/mappings"), &viewer).await;
    app.api_ok(&app.org_path(&format!("/users/{user}/access")), &viewer)
        .await;
    app.api(
        Method::POST,
        &app.org_path("/mappings"),
        &viewer,
        Some(rule_body.clone()),
    )
    .await
    .assert_problem(403);
    // Billing sees seats, nothing of mappings or users.
    app.api_ok(&app.org_path("/seats"), &billing).await;
    for path in ["/mappings", "/users", "/events", "/audit"] {
        app.api(Method::GET, &app.org_path(path), &billing, None)
            .await
            .assert_problem(403);
    }
    app.api(
        Method::PATCH,
        &app.org_path(""),
        &billing,
        Some(json!({ "seat_limit": 5 })),
    )
    .await
    .assert_problem(403);
    // A sub-account admin grants in their sub-account only.
    let grant = |sa: &str| json!({ "grant": role_in(sa, "member") });
    let r = app
        .api(
            Method::POST,
            &app.org_path(&format!("/users/{user}/grants")),
            &sa_admin,
            Some(grant(&sa)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    app.api(
        Method::POST,
        &app.org_path(&format!("/users/{user}/grants")),
        &sa_admin,
        Some(grant(&other_sa)),
    )
    .await
    .assert_problem(403);
    app.api(
        Method::POST,
        &app.org_path(&format!("/users/{user}/grants")),
        &sa_admin,
        Some(json!({ "grant": { "type": "org_role", "role": "org_admin" } })),
    )
    .await
    .assert_problem(403);
    app.api(
        Method::POST,
        &app.org_path("/mappings"),
        &sa_admin,
        Some(rule_body),
    )
    .await
    .assert_problem(403);
    // What they read of a user is their sub-account only.
    let view = access(&app, &sa_admin, &user).await;
    let ids: Vec<&Value> = view["sub_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&json!(sa)]);
    assert_eq!(in_sa(&view, &sa)["role"], "member");
    // No token, or a bad one: 401.
    app.api(Method::GET, &app.org_path("/mappings"), "idba_nope", None)
        .await
        .assert_problem(401);
}

/// Another organization's ids answer 404 on every endpoint, with a valid token of one's own.
#[tokio::test]
async fn organizations_cannot_reach_each_other() {
    let Org { app, owner, sa } = org().await;
    let scim_user = app.user("mine@example.com").await;
    let group = app.group("Mine", &[&scim_user]).await;
    let user = org_user(&app, &owner, "mine@example.com").await;
    let made = rule(&app, &owner, by_name("Mine"), role_in(&sa, "member")).await;
    let rule_id = made["rule"]["id"].as_str().unwrap().to_string();
    let grant = app
        .api(
            Method::POST,
            &app.org_path(&format!("/users/{user}/grants")),
            &owner,
            Some(json!({ "grant": role_in(&sa, "viewer") })),
        )
        .await;
    let grant_id = grant.body["grant"]["id"].as_str().unwrap().to_string();

    // An intruder: the owner of another organization on the same service.
    let other = setup::create_org(&app.store, "Intruders").await.unwrap();
    let scope = idbridge::store::admin::OrgScope::for_org(&other.id, "test");
    let intruder = setup::create_admin_token(&app.store, &scope, "org_owner", None, "intruder")
        .await
        .unwrap()
        .token;

    // Their token on our organization's paths.
    let ours = [
        (Method::GET, String::new()),
        (Method::GET, "/seats".into()),
        (Method::GET, "/users".into()),
        (Method::GET, format!("/users/{user}/access")),
        (Method::GET, "/mappings".into()),
        (Method::DELETE, format!("/mappings/{rule_id}")),
        (Method::GET, "/events".into()),
        (Method::GET, "/audit".into()),
        (Method::DELETE, format!("/grants/{grant_id}")),
        (Method::DELETE, format!("/sub-accounts/{sa}")),
    ];
    for (method, suffix) in ours {
        app.api(method.clone(), &app.org_path(&suffix), &intruder, None)
            .await
            .assert_problem(404);
    }
    // Our ids under their own organization's path.
    let theirs = |suffix: &str| format!("/api/v1/orgs/{}{suffix}", other.id);
    let probes = [
        (Method::GET, theirs(&format!("/users/{user}"))),
        (Method::GET, theirs(&format!("/users/{user}/access"))),
        (Method::GET, theirs(&format!("/users/{user}/sessions"))),
        (Method::GET, theirs(&format!("/groups/{group}"))),
        (Method::GET, theirs(&format!("/mappings/{rule_id}"))),
        (Method::DELETE, theirs(&format!("/mappings/{rule_id}"))),
        (Method::DELETE, theirs(&format!("/grants/{grant_id}"))),
        (Method::GET, theirs(&format!("/sub-accounts/{sa}"))),
        (Method::GET, theirs(&format!("/sub-accounts/{sa}/projects"))),
        (Method::DELETE, theirs(&format!("/sub-accounts/{sa}"))),
        (
            Method::GET,
            theirs(&format!("/directories/{}/tokens", app.directory_id)),
        ),
        (
            Method::POST,
            theirs(&format!("/directories/{}/tokens", app.directory_id)),
        ),
    ];
    for (method, path) in probes {
        app.api(method.clone(), &path, &intruder, None)
            .await
            .assert_problem(404);
    }
    let r = app
        .api(
            Method::POST,
            &theirs(&format!("/users/{user}/grants")),
            &intruder,
            Some(json!({ "grant": { "type": "org_role", "role": "org_admin" } })),
        )
        .await;
    r.assert_problem(404);
    // Rules cannot name our sub-account or our group.
    for (matcher, grant) in [
        (by_name("X"), role_in(&sa, "admin")),
        (
            json!({ "type": "group_id", "group_id": group }),
            json!({ "type": "org_role", "role": "org_admin" }),
        ),
    ] {
        app.api(
            Method::POST,
            &theirs("/mappings"),
            &intruder,
            Some(json!({ "matcher": matcher, "grant": grant })),
        )
        .await
        .assert_problem(400);
    }
    // And nothing of ours changed.
    assert_eq!(
        app.api_ok(&app.org_path("/mappings"), &owner).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        in_sa(&access(&app, &owner, &user).await, &sa)["role"],
        "member"
    );
}

#[tokio::test]
async fn bad_requests_get_problem_details() {
    let Org { app, owner, sa } = org().await;
    let bad = [
        json!({ "matcher": by_name("X") }),
        json!({ "matcher": by_name(""), "grant": role_in(&sa, "admin") }),
        json!({ "matcher": by_name("X"), "grant": role_in(&sa, "superuser") }),
        json!({ "matcher": by_name("X"), "grant": role_in("no-such-sub-account", "admin") }),
        json!({ "matcher": by_name("X"), "grant": { "type": "features", "sub_account": "all", "levels": {} } }),
        json!({ "matcher": by_name("X"), "grant": { "type": "features", "sub_account": "all", "levels": { "sandbox": "none" } } }),
        json!({ "matcher": { "type": "directory_default", "directory_id": "elsewhere" }, "grant": role_in(&sa, "admin") }),
        json!({ "matcher": by_name("X"), "grant": { "type": "project_role", "sub_account_id": sa, "project_id": "nope", "role": "admin" } }),
        json!({ "matcher": by_name("X"), "grant": role_in(&sa, "admin"), "extra": 1 }),
    ];
    for body in bad {
        app.api(
            Method::POST,
            &app.org_path("/mappings"),
            &owner,
            Some(body.clone()),
        )
        .await
        .assert_problem(400);
    }
    let r = app
        .send_raw(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri(app.org_path("/mappings"))
                .header("authorization", format!("Bearer {owner}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{not json"))
                .unwrap(),
        )
        .await;
    r.assert_problem(400);
    app.api(Method::GET, &app.org_path("/events?after=-1"), &owner, None)
        .await
        .assert_problem(400);
    app.api(Method::GET, &app.org_path("/users?limit=0"), &owner, None)
        .await
        .assert_problem(400);
    app.api(Method::GET, "/api/v1/nothing", &owner, None)
        .await
        .assert_problem(404);
    // A sub-account a rule names cannot be deleted from under it.
    rule(&app, &owner, by_name("X"), role_in(&sa, "admin")).await;
    app.api(
        Method::DELETE,
        &app.org_path(&format!("/sub-accounts/{sa}")),
        &owner,
        None,
    )
    .await
    .assert_problem(409);
}

#[tokio::test]
async fn projects_and_features_resolve_per_sub_account() {
    let Org { app, owner, sa } = org().await;
    let r = app
        .api(
            Method::POST,
            &app.org_path(&format!("/sub-accounts/{sa}/projects")),
            &owner,
            Some(json!({ "name": "Newsletter" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let project = r.body["id"].as_str().unwrap().to_string();
    rule(
        &app,
        &owner,
        by_name("Writers"),
        json!({ "type": "project_role", "sub_account_id": sa, "project_id": project, "role": "admin" }),
    )
    .await;
    rule(
        &app,
        &owner,
        by_name("Writers"),
        json!({ "type": "features", "sub_account": "all", "levels": { "campaigns": "read", "analytics": "read" } }),
    )
    .await;
    rule(
        &app,
        &owner,
        by_name("Leads"),
        json!({ "type": "features", "sub_account": { "one": sa }, "levels": { "campaigns": "full" } }),
    )
    .await;
    let u = app.user("writer@example.com").await;
    app.group("Writers", &[&u]).await;
    app.group("Leads", &[&u]).await;
    let user = org_user(&app, &owner, "writer@example.com").await;
    let view = access(&app, &owner, &user).await;
    let m = in_sa(&view, &sa);
    assert_eq!(m["projects"][&project], "admin", "{view}");
    assert_eq!(
        m["features"],
        json!({ "campaigns": "full", "analytics": "read" }),
        "{view}"
    );
    // The highest level wins per feature; the reason names the rule that gave it.
    assert_eq!(
        m["reasons"]["features"]["campaigns"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = TestApp::new().await;
    let r = app.api(Method::GET, "/api/v1/openapi.json", "", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/orgs/{org}/mappings",
        "/api/v1/orgs/{org}/mappings/preview",
        "/api/v1/orgs/{org}/users/{id}/access",
        "/api/v1/orgs/{org}/users/{id}/grants",
        "/api/v1/orgs/{org}/owner",
        "/api/v1/orgs/{org}/seats",
        "/api/v1/orgs/{org}/audit",
        "/api/v1/orgs/{org}/events",
        "/api/v1/orgs/{org}/webhooks",
        "/api/v1/orgs/{org}/sub-accounts/{id}/projects",
        "/api/v1/orgs/{org}/directories/{id}/tokens",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    let grant = &doc["components"]["schemas"]["Grant"];
    assert!(grant.get("oneOf").is_some(), "{grant}");
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_object());
}

/// Matching by group id and externalId (stable across renames), and a default rule for every user
/// of one directory; a PUT that deactivates removes it like a PATCH does.
#[tokio::test]
async fn rules_match_by_id_external_id_and_directory() {
    let Org { app, owner, sa } = org().await;
    let u = app.user("ids@example.com").await;
    let r = app
        .post(
            "/Groups",
            json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Renamed often", "externalId": "00g-okta-1",
                    "members": [{ "value": u }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let group = r.id();
    rule(
        &app,
        &owner,
        json!({ "type": "group_id", "group_id": group }),
        json!({ "type": "org_role", "role": "billing_viewer" }),
    )
    .await;
    rule(
        &app,
        &owner,
        json!({ "type": "external_id", "external_id": "00g-okta-1" }),
        json!({ "type": "features", "sub_account": { "one": sa }, "levels": { "sandbox": "full" } }),
    )
    .await;
    rule(
        &app,
        &owner,
        json!({ "type": "directory_default", "directory_id": app.directory_id }),
        role_in(&sa, "viewer"),
    )
    .await;
    let user = org_user(&app, &owner, "ids@example.com").await;
    let view = access(&app, &owner, &user).await;
    assert_eq!(view["org_roles"][0]["role"], "billing_viewer", "{view}");
    assert_eq!(in_sa(&view, &sa)["features"]["sandbox"], "full", "{view}");
    assert_eq!(in_sa(&view, &sa)["role"], "viewer", "{view}");
    assert_eq!(
        in_sa(&view, &sa)["reasons"]["role"][0]["matched"],
        json!({ "by": "directory", "directory_id": app.directory_id }),
        "{view}"
    );

    // A rename changes nothing for id and externalId matchers.
    let rename =
        patch(json!([{ "op": "replace", "path": "displayName", "value": "Renamed again" }]));
    assert_patched(&app.patch(&format!("/Groups/{group}"), rename).await);
    let after = access(&app, &owner, &user).await;
    assert_eq!(after["sub_accounts"], view["sub_accounts"]);
    assert_eq!(after["org_roles"], view["org_roles"]);

    // A user of another directory of the organization gets nothing from this directory's default.
    let r = app
        .api(
            Method::POST,
            &app.org_path("/directories"),
            &owner,
            Some(json!({ "name": "Entra" })),
        )
        .await;
    let dir = r.body["directory"]["id"].as_str().unwrap().to_string();
    let token = r.body["token"]["token"].as_str().unwrap().to_string();
    let other = app
        .send(
            Method::POST,
            &format!("/scim/v2/{dir}/Users"),
            Some(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "elsewhere@example.com" })),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    let elsewhere = org_user(&app, &owner, "elsewhere@example.com").await;
    assert_eq!(
        in_sa(&access(&app, &owner, &elsewhere).await, &sa)["role"],
        Value::Null
    );

    // PUT without `active: true` replaces it with false here: deprovisioned.
    let put = app
        .put(
            &format!("/Users/{u}"),
            json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "ids@example.com", "active": false }),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let view = access(&app, &owner, &user).await;
    assert_eq!(view["active"], false);
    assert_eq!(view["org_roles"], json!([]));
    assert_eq!(in_sa(&view, &sa)["role"], Value::Null);
}

/// Bulk operations provision and deprovision exactly like single requests.
#[tokio::test]
async fn bulk_requests_provision_too() {
    let Org { app, owner, sa } = org().await;
    rule(&app, &owner, by_name("Bulk team"), role_in(&sa, "member")).await;
    let r = app
        .post(
            "/Bulk",
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                    "Operations": [
                        { "method": "POST", "path": "/Users", "bulkId": "u",
                          "data": { "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bulk@example.com" } },
                        { "method": "POST", "path": "/Groups", "bulkId": "g",
                          "data": { "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Bulk team",
                                    "members": [{ "value": "bulkId:u" }] } }
                    ] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let user = org_user(&app, &owner, "bulk@example.com").await;
    assert_eq!(
        in_sa(&access(&app, &owner, &user).await, &sa)["role"],
        "member"
    );
}

/// A text field holds what a person would type: a 1.5 MB description is refused with the field
/// it came in, and nothing is stored; a certificate or metadata document keeps its larger room.
#[tokio::test]
async fn every_text_field_of_the_admin_api_is_bounded() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let huge = "x".repeat(1_500_000);
    let r = app
        .api(
            Method::POST,
            &app.org_path("/mappings"),
            &owner,
            Some(json!({
                "matcher": by_name("Engineering"),
                "grant": { "type": "org_role", "role": "org_viewer" },
                "description": huge,
            })),
        )
        .await;
    r.assert_problem(400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("/description"),
        "{}",
        r.body
    );
    let rules = app.api_ok(&app.org_path("/mappings"), &owner).await;
    assert_eq!(rules["items"].as_array().unwrap().len(), 0, "{rules}");

    let r = app
        .api(
            Method::POST,
            &app.org_path("/sub-accounts"),
            &owner,
            Some(json!({ "name": "n".repeat(3000) })),
        )
        .await;
    r.assert_problem(400);

    // A short description still goes in.
    rule(
        &app,
        &owner,
        by_name("Engineering"),
        json!({ "type": "org_role", "role": "org_viewer" }),
    )
    .await;
}
