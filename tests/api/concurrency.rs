use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::*;

/// Many connections PATCH members into one group at once; none is lost. On PostgreSQL these run on
/// separate connections truly in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_member_patches_lose_nothing() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let gid = app.group("Busy", &[]).await;
    let mut users = Vec::new();
    for i in 0..64 {
        users.push(app.user(&format!("c{i}@example.com")).await);
    }
    let mut tasks = Vec::new();
    for chunk in users.chunks(2) {
        let app = app.clone();
        let gid = gid.clone();
        let value: Vec<_> = chunk.iter().map(|id| json!({"value": id})).collect();
        tasks.push(tokio::spawn(async move {
            let r = app
                .patch(
                    &format!("/Groups/{gid}?excludedAttributes=members"),
                    json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": value},
                                   {"op": "replace", "path": "externalId", "value": "x"}]}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut expect = users.clone();
    expect.sort();
    assert_eq!(app.member_ids(&gid).await, expect);
    // Every PATCH bumped the version exactly once.
    let g = app.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(g["meta"]["version"], "W/\"33\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_user_name_make_one_user() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post("/Users", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "race@example.com"}))
                .await
                .status
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(app.get("/Users").await.body["totalResults"], 1);
}

/// Adding a user to a group while another request deletes that user leaves no membership behind
/// for a user that no longer exists, whichever order the two commit in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_deleted_while_being_added_leaves_no_dangling_membership() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let gid = app.group("Racing", &[]).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let uid = app.user(&format!("racer{i}@example.com")).await;
        let (a, b) = (app.clone(), app.clone());
        let (g, u1, u2) = (gid.clone(), uid.clone(), uid);
        tasks.push(tokio::spawn(async move {
            a.patch(
                &format!("/Groups/{g}?excludedAttributes=members"),
                json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": u1}]}]}),
            )
            .await
            .status
        }));
        tasks.push(tokio::spawn(async move {
            b.delete(&format!("/Users/{u2}")).await.status
        }));
    }
    for t in tasks {
        let s = t.await.unwrap();
        // The add either lands before the delete (200) or finds the user gone (400).
        assert!(
            [
                StatusCode::OK,
                StatusCode::NO_CONTENT,
                StatusCode::BAD_REQUEST
            ]
            .contains(&s),
            "{s}"
        );
    }
    assert_eq!(
        app.member_ids(&gid).await,
        Vec::<String>::new(),
        "every racer was deleted"
    );
}

/// One user joins two mapped groups at once (two IdP requests, possibly on two replicas): both
/// grants must stick, whatever the interleaving; leaving both at once must remove both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_membership_changes_keep_both_grants() {
    use axum::http::Method;
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let sa = app
        .api(
            Method::POST,
            &app.org_path("/sub-accounts"),
            &owner,
            Some(json!({ "name": "Main" })),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (name, grant) in [
        (
            "Alpha",
            json!({ "type": "sub_account_role", "sub_account": { "one": sa }, "role": "admin" }),
        ),
        ("Beta", json!({ "type": "org_role", "role": "org_viewer" })),
    ] {
        let r = app
            .api(
                Method::POST,
                &app.org_path("/mappings"),
                &owner,
                Some(json!({ "matcher": { "type": "display_name", "display_name": name }, "grant": grant })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let alpha = app.group("Alpha", &[]).await;
    let beta = app.group("Beta", &[]).await;
    let member = |id: &str, op: &str| {
        json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": op, "path": "members", "value": [{ "value": id }] }] })
    };
    let (alpha_path, beta_path) = (format!("/Groups/{alpha}"), format!("/Groups/{beta}"));
    for round in 0..6 {
        let user_name = format!("racer{round}@example.com");
        let u = app.user(&user_name).await;
        let (a, b) = tokio::join!(
            app.patch(&alpha_path, member(&u, "add")),
            app.patch(&beta_path, member(&u, "add"))
        );
        assert!(
            a.status.is_success() && b.status.is_success(),
            "{} {}",
            a.body,
            b.body
        );
        let id = app.org_user_id(&owner, &user_name).await;
        let view = app
            .api_ok(&app.org_path(&format!("/users/{id}/access")), &owner)
            .await;
        assert_eq!(
            view["org_roles"][0]["role"], "org_viewer",
            "round {round}: {view}"
        );
        assert_eq!(
            view["sub_accounts"][0]["role"], "admin",
            "round {round}: {view}"
        );

        let (a, b) = tokio::join!(
            app.patch(&alpha_path, member(&u, "remove")),
            app.patch(&beta_path, member(&u, "remove"))
        );
        assert!(
            a.status.is_success() && b.status.is_success(),
            "{} {}",
            a.body,
            b.body
        );
        let view = app
            .api_ok(&app.org_path(&format!("/users/{id}/access")), &owner)
            .await;
        assert_eq!(view["org_roles"], json!([]), "round {round}: {view}");
        assert_eq!(
            view["sub_accounts"][0]["role"],
            Value::Null,
            "round {round}: {view}"
        );
    }
}

/// A rule created while a user joins its group: the user ends with the rule's grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_change_racing_a_membership_change_misses_nobody() {
    use axum::http::Method;
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    for round in 0..6 {
        let name = format!("Team{round}");
        let group = app.group(&name, &[]).await;
        let user_name = format!("joiner{round}@example.com");
        let u = app.user(&user_name).await;
        let patch = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{ "op": "add", "path": "members", "value": [{ "value": u }] }] });
        let rule = json!({ "matcher": { "type": "display_name", "display_name": name },
                           "grant": { "type": "org_role", "role": "billing_viewer" } });
        let (group_path, mappings) = (format!("/Groups/{group}"), app.org_path("/mappings"));
        let (p, r) = tokio::join!(
            app.patch(&group_path, patch),
            app.api(Method::POST, &mappings, &owner, Some(rule))
        );
        assert!(p.status.is_success(), "{}", p.body);
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = app.org_user_id(&owner, &user_name).await;
        let view = app
            .api_ok(&app.org_path(&format!("/users/{id}/access")), &owner)
            .await;
        assert_eq!(
            view["org_roles"][0]["role"], "billing_viewer",
            "round {round}: {view}"
        );
    }
}

/// Creates racing for the last seats: exactly as many succeed as there are seats (on PostgreSQL they
/// run on separate connections; the seat check takes turns per organization).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_racing_for_the_last_seats_never_exceed_the_limit() {
    use axum::http::Method;
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let r = app
        .api(
            Method::PATCH,
            &app.org_path(""),
            &owner,
            Some(json!({ "seat_limit": 2 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for round in 0..3 {
        let create = |i: usize| {
            app.post(
                "/Users",
                json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("seat{round}-{i}@example.com") }),
            )
        };
        let all = tokio::join!(
            create(0),
            create(1),
            create(2),
            create(3),
            create(4),
            create(5)
        );
        let all = [all.0, all.1, all.2, all.3, all.4, all.5];
        let created = all
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count();
        let refused = all
            .iter()
            .filter(|r| r.status == StatusCode::FORBIDDEN)
            .count();
        let expected = if round == 0 { 2 } else { 0 };
        assert_eq!(
            (created, refused),
            (expected, 6 - expected),
            "round {round}"
        );
        let seats = app.api_ok(&app.org_path("/seats"), &owner).await;
        assert_eq!(seats["used"], 2, "round {round}");
    }
}
