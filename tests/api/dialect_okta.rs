//! Requests exactly as Okta's SCIM 2.0 client sends them (see Okta's "SCIM 2.0 Protocol
//! Reference"): the `startIndex=1&count=2` probe, filter-then-POST with a password and `groups: []`,
//! GET-then-PUT updates, path-less `replace` for deactivation and for Push Groups' rename (with the
//! read-only `id` in the value), mixed member remove/add, and `startIndex`+100 paging.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The body Okta POSTs to /Users (Okta's documented "Create the user" request, with the password
/// Okta adds when "Sync Password" is on).
fn okta_user(user_name: &str, given: &str, family: &str, external_id: &str) -> Value {
    json!({
        "schemas": [CORE_USER],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

async fn create(app: &TestApp, body: Value) -> String {
    let r = app.post("/Users", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.id()
}

/// Okta: "The itemsPerPage, startIndex, and totalResults values need to be exchanged as integers,
/// not as strings."
#[track_caller]
fn int(list: &Value, key: &str) -> u64 {
    list[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a JSON integer: {list}"))
}

/// Okta's pre-create lookup: `filter=userName eq "..."&startIndex=1&count=100`.
async fn okta_lookup(app: &TestApp, user_name: &str) -> Value {
    let filter = enc(&format!("userName eq \"{user_name}\""));
    get_ok(
        app,
        &format!("/Users?filter={filter}&startIndex=1&count=100"),
    )
    .await
}

#[track_caller]
fn assert_no_password(v: &Value) {
    let s = v.to_string();
    assert!(
        v.get("password").is_none() && !s.contains("1mz050nq"),
        "password leaked: {v}"
    );
}

#[tokio::test]
async fn okta_test_connection_pages_with_integer_counts() {
    let app = TestApp::new().await;

    // A brand-new app: Okta's probe must still get a well-formed, empty ListResponse.
    let empty = get_ok(&app, "/Users?startIndex=1&count=2").await;
    assert!(
        empty["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == LIST)),
        "{empty}"
    );
    assert_eq!(int(&empty, "totalResults"), 0);
    assert!(resources(&empty).is_empty(), "{empty}");

    for i in 0..3 {
        app.user(&format!("probe{i}@okta.local")).await;
    }
    let page = get_ok(&app, "/Users?startIndex=1&count=2").await;
    assert!(
        page["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == LIST)),
        "{page}"
    );
    assert_eq!(int(&page, "startIndex"), 1, "{page}");
    assert_eq!(int(&page, "totalResults"), 3, "{page}");
    let per_page = int(&page, "itemsPerPage");
    assert!(per_page <= 2, "{page}");
    assert_eq!(resources(&page).len() as u64, per_page, "{page}");
    assert_eq!(per_page, 2, "three users exist, two were asked for: {page}");

    // Okta's second test-connection request.
    let groups = get_ok(&app, "/Groups?startIndex=1&count=100").await;
    assert_eq!(int(&groups, "startIndex"), 1, "{groups}");
    assert_eq!(int(&groups, "totalResults"), 0, "{groups}");
}

#[tokio::test]
async fn okta_create_with_password_never_returns_it() {
    let app = TestApp::new().await;
    let before = okta_lookup(&app, "test.user@okta.local").await;
    assert_eq!(int(&before, "totalResults"), 0, "{before}");

    let r = app
        .post(
            "/Users",
            okta_user(
                "test.user@okta.local",
                "Test",
                "User",
                "00ujl29u0le5T6Aj10h7",
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_no_password(&r.body);
    let id = r.id();

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_no_password(&got);
    assert_eq!(got["userName"], "test.user@okta.local", "{got}");
    assert_eq!(got["externalId"], "00ujl29u0le5T6Aj10h7", "{got}");
    assert_eq!(got["active"], json!(true), "{got}");

    // Asking for it explicitly does not return it either (RFC 7643 §7: returned "never").
    let asked = get_ok(&app, &format!("/Users/{id}?attributes=password,userName")).await;
    assert_no_password(&asked);

    let after = okta_lookup(&app, "test.user@okta.local").await;
    assert_eq!(int(&after, "totalResults"), 1, "{after}");
    assert_eq!(ids(&after), vec![id], "{after}");
    assert_no_password(&after);
}

#[tokio::test]
async fn okta_duplicate_post_is_409_uniqueness_and_first_user_unchanged() {
    let app = TestApp::new().await;
    let id = create(
        &app,
        okta_user(
            "dup.user@okta.local",
            "First",
            "Person",
            "00u1111111111111111",
        ),
    )
    .await;
    let original = get_ok(&app, &format!("/Users/{id}")).await;

    for user_name in ["dup.user@okta.local", "Dup.User@OKTA.local"] {
        let r = app
            .post(
                "/Users",
                okta_user(user_name, "Second", "Impostor", "00u2222222222222222"),
            )
            .await;
        r.assert_error(409, Some("uniqueness"));
    }

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(got["name"], original["name"], "{got}");
    assert_eq!(got["displayName"], "First Person", "{got}");
    assert_eq!(got["externalId"], "00u1111111111111111", "{got}");
    assert_eq!(got["meta"]["version"], original["meta"]["version"], "{got}");

    let all = get_ok(&app, "/Users?startIndex=1&count=100").await;
    assert_eq!(int(&all, "totalResults"), 1, "{all}");
}

#[tokio::test]
async fn okta_update_is_get_then_put_of_whole_user() {
    let app = TestApp::new().await;
    let id = create(
        &app,
        okta_user(
            "another.user@okta.local",
            "Another",
            "User",
            "00u3333333333333333",
        ),
    )
    .await;

    let before = get_ok(&app, &format!("/Users/{id}")).await;
    let old_version = before["meta"]["version"].clone();
    assert!(old_version.is_string(), "{before}");

    // Okta modifies what it read and PUTs the whole body back, id, meta and groups included.
    let mut body = before.clone();
    body["name"]["givenName"] = json!("Renamed");
    body["name"]["middleName"] = json!("");
    body["emails"] = json!([{
        "primary": true,
        "value": "renamed.user@okta.local",
        "type": "work",
        "display": "renamed.user@okta.local"
    }]);
    body["groups"] = json!([]);
    let r = app.put(&format!("/Users/{id}"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], id.as_str(), "{}", r.body);

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(got["id"], id.as_str(), "{got}");
    assert_eq!(got["name"]["givenName"], "Renamed", "{got}");
    assert_eq!(got["name"]["familyName"], "User", "{got}");
    let emails = got["emails"].as_array().expect("emails");
    assert_eq!(emails.len(), 1, "{got}");
    assert_eq!(emails[0]["value"], "renamed.user@okta.local", "{got}");
    assert_eq!(got["userName"], "another.user@okta.local", "{got}");
    assert_eq!(got["externalId"], "00u3333333333333333", "{got}");
    assert_ne!(
        got["meta"]["version"], old_version,
        "meta.version must change on PUT: {got}"
    );
}

#[tokio::test]
async fn okta_deactivation_is_pathless_replace_and_user_still_listed() {
    let app = TestApp::new().await;
    let id = create(
        &app,
        okta_user(
            "leaver@okta.local",
            "Leaving",
            "Soon",
            "00u4444444444444444",
        ),
    )
    .await;
    let stays = app.user("stayer@okta.local").await;

    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await;
    assert_patched(&r);

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(got["active"], json!(false), "{got}");
    assert_eq!(
        got["name"]["givenName"], "Leaving",
        "a path-less replace must not clear other attributes: {got}"
    );

    let all = get_ok(&app, "/Users?startIndex=1&count=100").await;
    assert_eq!(int(&all, "totalResults"), 2, "{all}");
    let listed = resources(&all);
    let me = listed
        .iter()
        .find(|u| u["id"] == id.as_str())
        .unwrap_or_else(|| panic!("deactivated user not listed: {all}"));
    assert_eq!(me["active"], json!(false), "{all}");
    assert!(
        listed
            .iter()
            .any(|u| u["id"] == stays.as_str() && u["active"] == json!(true)),
        "{all}"
    );

    let found = okta_lookup(&app, "leaver@okta.local").await;
    assert_eq!(ids(&found), vec![id], "{found}");
}

#[tokio::test]
async fn okta_group_rename_pathless_replace_with_id_in_value() {
    let app = TestApp::new().await;
    let member = app.user("member@okta.local").await;
    let r = app
        .post(
            "/Groups",
            json!({"schemas": [CORE_GROUP], "displayName": "Test SCIM", "members": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let gid = r.id();
    let add = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([{"op": "add", "path": "members", "value": [{"value": member, "display": "member@okta.local"}]}])),
        )
        .await;
    assert_patched(&add);

    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([{"op": "replace", "value": {"id": gid, "displayName": "Test SCIM2"}}])),
        )
        .await;
    assert_patched(&r);

    let got = get_ok(&app, &format!("/Groups/{gid}")).await;
    assert_eq!(got["id"], gid.as_str(), "{got}");
    assert_eq!(got["displayName"], "Test SCIM2", "{got}");
    // Okta sends the rename with every membership update: it must not touch members.
    assert_eq!(app.member_ids(&gid).await, vec![member]);
}

#[tokio::test]
async fn okta_membership_remove_and_add_in_one_request() {
    let app = TestApp::new().await;
    let a = app.user("a@okta.local").await;
    let b = app.user("b@okta.local").await;
    let c = app.user("c@okta.local").await;
    let gid = app.group("Okta Push", &[&a, &b]).await;

    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([
                {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
                {"op": "add", "path": "members", "value": [{"value": c, "display": "c@okta.local"}]}
            ])),
        )
        .await;
    assert_patched(&r);

    let mut expected = vec![b, c];
    expected.sort();
    assert_eq!(app.member_ids(&gid).await, expected);
}

#[tokio::test]
async fn okta_replace_members_with_empty_list_empties_group() {
    let app = TestApp::new().await;
    let a = app.user("a@okta.local").await;
    let b = app.user("b@okta.local").await;
    let gid = app.group("To Empty", &[&a, &b]).await;

    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([{"op": "replace", "path": "members", "value": []}])),
        )
        .await;
    assert_patched(&r);

    assert!(app.member_ids(&gid).await.is_empty());
    let got = get_ok(&app, &format!("/Groups/{gid}")).await;
    assert_eq!(got["displayName"], "To Empty", "{got}");
    // Only the memberships go, not the users.
    get_ok(&app, &format!("/Users/{a}")).await;
    get_ok(&app, &format!("/Users/{b}")).await;
}

#[tokio::test]
async fn okta_pagination_walks_start_index_by_100_with_stable_order() {
    let app = TestApp::new().await;
    let mut created = HashSet::new();
    for i in 0..250 {
        created.insert(app.user(&format!("user{i:03}@okta.local")).await);
    }
    assert_eq!(created.len(), 250);

    let mut seen = Vec::new();
    for (start, expected_items) in [(1u64, 100u64), (101, 100), (201, 50)] {
        let page = get_ok(&app, &format!("/Users?startIndex={start}&count=100")).await;
        assert_eq!(int(&page, "totalResults"), 250, "startIndex={start}");
        assert_eq!(int(&page, "startIndex"), start, "startIndex={start}");
        assert_eq!(
            int(&page, "itemsPerPage"),
            expected_items,
            "startIndex={start}"
        );
        let page_ids = ids(&page);
        assert_eq!(page_ids.len() as u64, expected_items, "startIndex={start}");
        seen.extend(page_ids);
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a user appeared on two pages");
    assert_eq!(unique, created, "every user must be seen exactly once");

    // Okta computes pages = ceil(totalResults / 100): the page after the last is empty.
    let past = get_ok(&app, "/Users?startIndex=301&count=100").await;
    assert_eq!(int(&past, "totalResults"), 250, "{past}");
    assert!(resources(&past).is_empty(), "{past}");
}
