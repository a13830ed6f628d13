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

/// PostgreSQL numbers an organization's events after their transactions commit, in the order their
/// changes happened, and never past one it cannot see yet: a reader polling from the last number it
/// saw would otherwise miss an event committed late. A transaction still running holds back the
/// events behind it; one rolled back does not hold them for long. (SQLite writes one transaction at
/// a time and numbers events as it writes them: nothing to test there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_behind_a_running_transaction_wait_for_it_and_a_rolled_back_one_holds_nothing() {
    use idbridge::domain::access::EventType;
    use idbridge::store::Backend;
    use idbridge::store::access::{NewEvent, append_events};
    use idbridge::store::admin::OrgScope;

    let app = TestApp::new().await;
    if app.store.backend() != Backend::Postgres {
        return;
    }
    let scope = OrgScope::for_org(&app.org_id, "test");
    let after = |seq: i64| {
        let (store, scope) = (&app.store, &scope);
        async move {
            let events = store.events_after(scope, seq, 1000).await.expect("events");
            let seen: Vec<(i64, String)> = events.iter().map(|e| (e.seq, e.ty.clone())).collect();
            (seen, events)
        }
    };
    // An ownership-transfer event, appended in a transaction left open.
    let app = &app;
    let appended = |n: i64| async move {
        let mut tx = app.store.begin().await.expect("begin");
        let now = tx.now();
        let event = NewEvent {
            ty: EventType::OwnerTransferred,
            org_user_id: None,
            data: json!({ "n": n }),
        };
        append_events(&mut tx, &app.org_id, &[event], now)
            .await
            .expect("append");
        tx
    };
    let start = after(0).await.0.last().map_or(0, |e| e.0);

    // A change takes its event's place, and is still running when a user is created.
    let held = appended(1).await;
    app.user("after-the-held-one@example.com").await;
    assert_eq!(
        after(start).await.0,
        vec![],
        "the user's event waits behind the running change"
    );

    held.commit().await.expect("commit");
    let (seen, events) = after(start).await;
    assert_eq!(
        seen,
        vec![
            (start + 1, "owner.transferred".to_string()),
            (start + 2, "user.provisioned".to_string())
        ],
        "both, numbered in the order they happened"
    );
    assert_eq!(events[0].data["n"], 1);

    // A change that rolls back leaves a position no one will fill.
    let dropped = appended(2).await;
    drop(dropped);
    app.user("after-the-rolled-back-one@example.com").await;
    // Other tests' transactions on this server may still run when the gap is first seen; it is
    // settled once those that could hold it have ended.
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = after(start + 2).await.0;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        vec![(start + 3, "user.provisioned".to_string())],
        "the rolled-back event is never numbered, and holds nothing back"
    );
}
