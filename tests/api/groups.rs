use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::*;

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[tokio::test]
async fn group_members_are_returned_with_display_ref_and_type() {
    let app = TestApp::new().await;
    let u = app.user("m1@example.com").await;
    let inner = app.group("Inner", &[]).await;
    let r = app
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "Tour Guides",
                                "members": [{"value": u}, {"value": inner}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let g = app.get(&format!("/Groups/{}", r.id())).await.body;
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let user_m = members.iter().find(|m| m["value"] == u.as_str()).unwrap();
    assert_eq!(user_m["type"], "User");
    assert_eq!(user_m["display"], "m1@example.com");
    assert_eq!(
        user_m["$ref"],
        format!("{PUBLIC_URL}{}/Users/{u}", app.base)
    );
    let group_m = members
        .iter()
        .find(|m| m["value"] == inner.as_str())
        .unwrap();
    assert_eq!(group_m["type"], "Group");
    assert_eq!(group_m["display"], "Inner");
}

#[tokio::test]
async fn excluded_members_are_not_returned_and_users_show_their_groups() {
    let app = TestApp::new().await;
    let u = app.user("g@example.com").await;
    let gid = app.group("Admins", &[&u]).await;
    let g = app
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .await
        .body;
    assert!(g.get("members").is_none(), "{g}");
    assert_eq!(g["displayName"], "Admins");
    let l = app.get("/Groups?excludedAttributes=members").await.body;
    assert!(l["Resources"][0].get("members").is_none(), "{l}");

    let user = app.get(&format!("/Users/{u}")).await.body;
    assert_eq!(user["groups"][0]["value"], gid);
    assert_eq!(user["groups"][0]["display"], "Admins");
}

#[tokio::test]
async fn patch_adds_and_removes_members() {
    let app = TestApp::new().await;
    let (a, b, c) = (
        app.user("a@x.com").await,
        app.user("b@x.com").await,
        app.user("c@x.com").await,
    );
    let gid = app.group("G", &[&a]).await;
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            json!({"schemas": [PATCH], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": b}, {"value": c}]},
                {"op": "remove", "path": format!("members[value eq \"{a}\"]")}
            ]}),
        )
        .await;
    // RFC 7644 §3.5.2: 204 without a body, with the new version's ETag.
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    let etag = r.header("etag").expect("ETag on 204").to_string();
    let got = app.get(&format!("/Groups/{gid}")).await;
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    let mut expect = vec![b.clone(), c.clone()];
    expect.sort();
    assert_eq!(app.member_ids(&gid).await, expect);
    // Adding a present member again changes nothing.
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            json!({"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": b}]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.member_ids(&gid).await, expect);
}

#[tokio::test]
async fn group_patch_with_a_projection_answers_200_with_the_group() {
    let app = TestApp::new().await;
    let (a, b) = (app.user("a@proj.com").await, app.user("b@proj.com").await);
    let gid = app.group("G", &[&a]).await;
    let add_b = json!({"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": b}]}]});
    // RFC 7644 §3.5.2: "MUST return a 200 OK if the attributes parameter is specified".
    let r = app
        .patch(&format!("/Groups/{gid}?attributes=members"), add_b)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.header("etag").is_some());
    let mut got: Vec<String> = r.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["value"].as_str().expect("value").to_string())
        .collect();
    got.sort();
    let mut expect = vec![a.clone(), b.clone()];
    expect.sort();
    assert_eq!(got, expect, "{}", r.body);
    assert!(r.body.get("displayName").is_none(), "{}", r.body);
    let rename = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "displayName", "value": "G2"}]});
    let r = app
        .patch(&format!("/Groups/{gid}?excludedAttributes=members"), rename)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["displayName"], "G2", "{}", r.body);
    // A user PATCH still answers with the user.
    let r = app
        .patch(
            &format!("/Users/{a}"),
            json!({"schemas": [PATCH], "Operations": [
                {"op": "replace", "path": "title", "value": "Lead"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["title"], "Lead", "{}", r.body);
}

#[tokio::test]
async fn unknown_member_is_refused_and_nothing_changes() {
    let app = TestApp::new().await;
    let a = app.user("a@y.com").await;
    let gid = app.group("Old name", &[&a]).await;
    let r = app
        .patch(&format!("/Groups/{gid}"), json!({"schemas": [PATCH], "Operations": [
            {"op": "replace", "path": "displayName", "value": "New name"},
            {"op": "add", "path": "members", "value": [{"value": "0190f0f0-0000-7000-8000-000000000000"}]}
        ]}))
        .await;
    r.assert_error(400, Some("invalidValue"));
    let g = app.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(g["displayName"], "Old name");
    assert_eq!(app.member_ids(&gid).await, vec![a]);
}

#[tokio::test]
async fn deleting_a_user_or_group_removes_its_memberships() {
    let app = TestApp::new().await;
    let (a, b) = (app.user("a@z.com").await, app.user("b@z.com").await);
    let child = app.group("Child", &[]).await;
    let gid = app.group("Parent", &[&a, &b, &child]).await;
    assert_eq!(
        app.delete(&format!("/Users/{a}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/Groups/{child}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.member_ids(&gid).await, vec![b]);
}

#[tokio::test]
async fn put_replaces_members() {
    let app = TestApp::new().await;
    let (a, b) = (app.user("a@p.com").await, app.user("b@p.com").await);
    let gid = app.group("G", &[&a]).await;
    let r = app
        .put(
            &format!("/Groups/{gid}"),
            json!({"schemas": [GROUP], "displayName": "G2", "members": [{"value": b}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.member_ids(&gid).await, vec![b]);
    assert_eq!(
        app.get(&format!("/Groups/{gid}")).await.body["displayName"],
        "G2"
    );
}

#[tokio::test]
async fn a_large_group_is_read_and_patched() {
    let app = TestApp::new().await;
    let n = 3000;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(app.user(&format!("big{i}@example.com")).await);
    }
    let gid = app.group("Everyone", &[]).await;
    for chunk in ids.chunks(1000) {
        let value: Vec<_> = chunk.iter().map(|id| json!({"value": id})).collect();
        let r = app
            .patch(
                &format!("/Groups/{gid}"),
                json!({"schemas": [PATCH], "Operations": [
            {"op": "add", "path": "members", "value": value}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    assert_eq!(app.member_ids(&gid).await.len(), n);
    let r = app
        .patch(
            &format!("/Groups/{gid}?excludedAttributes=members"),
            json!({"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[17])}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.get("members").is_none(),
        "excludedAttributes applies to the PATCH response"
    );
    let members = app.member_ids(&gid).await;
    assert_eq!(members.len(), n - 1);
    assert!(!members.contains(&ids[17]));
    let l = app
        .get(&format!(
            "/Groups?filter={}&excludedAttributes=members",
            enc(&format!("members.value eq \"{}\"", ids[18]))
        ))
        .await;
    assert_eq!(l.body["totalResults"], 1, "{}", l.body);
}

#[tokio::test]
async fn a_member_display_sent_by_the_idp_is_returned_as_sent() {
    let app = TestApp::new().await;
    let u = app.user("shown@example.com").await;
    let r = app
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "G",
                   "members": [{"value": u, "display": "Shown Person", "type": "User"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let g = app.get(&format!("/Groups/{}", r.id())).await.body;
    assert_eq!(g["members"][0]["display"], "Shown Person");
}
