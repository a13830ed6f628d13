use axum::http::StatusCode;
use serde_json::json;

use crate::harness::*;

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

#[tokio::test]
async fn bulk_creates_with_bulk_id_references() {
    let app = TestApp::new().await;
    // The group refers to a user created later in the same request.
    let r = app
        .post("/Bulk", json!({"schemas": [BULK], "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "g1",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Tour Guides",
                      "members": [{"type": "User", "value": "bulkId:u1"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u1",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice@example.com"}},
            {"method": "PATCH", "path": "/Users/bulkId:u1",
             "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "title", "value": "Guide"}]}}
        ]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 3);
    assert!(
        ops.iter()
            .all(|o| o["status"] == "201" || o["status"] == "200"),
        "{ops:?}"
    );
    let g = ops.iter().find(|o| o["bulkId"] == "g1").unwrap();
    let gid = g["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let members = app.member_ids(&gid).await;
    assert_eq!(members.len(), 1);
    let user = app.get(&format!("/Users/{}", members[0])).await.body;
    assert_eq!(user["userName"], "alice@example.com");
    assert_eq!(user["title"], "Guide");
}

#[tokio::test]
async fn fail_on_errors_stops_processing() {
    let app = TestApp::new().await;
    app.user("dup@example.com").await;
    let user = |n: &str, b: &str| {
        json!({"method": "POST", "path": "/Users", "bulkId": b,
        "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": n}})
    };
    let r = app
        .post(
            "/Bulk",
            json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
            user("dup@example.com", "a"), user("new1@example.com", "b")]}),
        )
        .await;
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{}", r.body);
    assert_eq!(ops[0]["status"], "409");
    assert_eq!(ops[0]["response"]["scimType"], "uniqueness");
    assert_eq!(
        app.get("/Users").await.body["totalResults"],
        1,
        "the second operation did not run"
    );

    // Without failOnErrors every operation runs.
    let r = app.post("/Bulk", json!({"schemas": [BULK], "Operations": [user("dup@example.com", "a"), user("new1@example.com", "b")]})).await;
    assert_eq!(r.body["Operations"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/Users").await.body["totalResults"], 2);
}

#[tokio::test]
async fn bulk_limits_and_dangling_references() {
    let app = TestApp::new().await;
    let op = json!({"method": "DELETE", "path": "/Users/0190f0f0-0000-7000-8000-000000000000"});
    let r = app
        .post(
            "/Bulk",
            json!({"schemas": [BULK], "Operations": vec![op; 1001]}),
        )
        .await;
    r.assert_error(413, None);
    let r = app.post("/Bulk", json!({"schemas": [BULK], "Operations": [
        {"method": "POST", "path": "/Groups", "bulkId": "g",
         "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "x", "members": [{"value": "bulkId:missing"}]}}]})).await;
    assert_eq!(r.body["Operations"][0]["status"], "409", "{}", r.body);
    app.post("/Bulk", json!({"Operations": []}))
        .await
        .assert_error(400, Some("invalidSyntax"));
}

#[tokio::test]
async fn bulk_put_and_delete() {
    let app = TestApp::new().await;
    let id = app.user("put@example.com").await;
    let doomed = app.user("doomed@example.com").await;
    let r = app
        .post("/Bulk", json!({"schemas": [BULK], "Operations": [
            {"method": "PUT", "path": format!("/Users/{id}"),
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "put2@example.com"}},
            {"method": "DELETE", "path": format!("/Users/{doomed}")},
            {"method": "DELETE", "path": format!("/Users/{doomed}")}
        ]}))
        .await;
    let ops = r.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["200", "204", "404"], "{}", r.body);
    assert_eq!(
        app.get(&format!("/Users/{id}")).await.body["userName"],
        "put2@example.com"
    );
    app.get(&format!("/Users/{doomed}"))
        .await
        .assert_error(404, None);
}
