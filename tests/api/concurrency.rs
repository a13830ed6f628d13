use axum::http::StatusCode;
use serde_json::json;

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
