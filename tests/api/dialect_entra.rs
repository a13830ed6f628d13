//! Requests exactly as the Microsoft Entra ID provisioning service sends them (see Microsoft's
//! "Tutorial: Develop and plan provisioning for a SCIM endpoint" and "Known issues ... SCIM 2.0
//! protocol compliance"): capitalised PATCH ops, booleans as strings, path-less Replace with dotted
//! and URN keys, valuePath Add on a missing value, bare-id manager, batched member Add/Remove with
//! `"$ref": null`, unquoted filter values, and filter-then-POST creation.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn guid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The body Entra POSTs to /Users (Microsoft's documented "Create User" request).
fn entra_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "displayName": "Test User",
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []
    })
}

async fn create_entra_user(app: &TestApp, body: Value) -> String {
    let r = app.post("/Users", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.id()
}

async fn list(app: &TestApp, endpoint: &str, filter: &str) -> Value {
    let body = get_ok(app, &format!("/{endpoint}?filter={}", enc(filter))).await;
    assert!(
        body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == LIST)),
        "{body}"
    );
    body
}

fn work_email(user: &Value) -> Option<String> {
    user["emails"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == "work")
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

#[tokio::test]
async fn entra_test_connection_filter_on_random_username_is_empty_list() {
    let app = TestApp::new().await;
    // A populated directory, so an implementation that ignores the filter would be caught.
    app.user("existing.user@contoso.com").await;
    app.group("Existing Group", &[]).await;

    let random = guid();
    let users = list(&app, "Users", &format!("userName eq \"{random}\"")).await;
    assert_eq!(users["totalResults"], json!(0), "{users}");
    assert!(resources(&users).is_empty(), "{users}");

    let groups = get_ok(
        &app,
        &format!(
            "/Groups?excludedAttributes=members&filter={}",
            enc(&format!("displayName eq \"{}\"", guid()))
        ),
    )
    .await;
    assert_eq!(groups["totalResults"], json!(0), "{groups}");
    assert!(resources(&groups).is_empty(), "{groups}");
}

#[tokio::test]
async fn entra_create_is_filter_then_post_with_enterprise_extension() {
    let app = TestApp::new().await;
    let manager_id = app.user("boss@contoso.com").await;
    let user_name = format!("Test_User_{}@contoso.com", guid());
    let external_id = guid();

    let before = list(&app, "Users", &format!("userName eq \"{user_name}\"")).await;
    assert_eq!(before["totalResults"], json!(0), "{before}");

    let mut body = entra_user(&user_name, &external_id);
    body[ENTERPRISE] = json!({
        "employeeNumber": "100009",
        "department": "Human Resources US",
        "manager": {"value": manager_id}
    });
    let created = app.post("/Users", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.id();

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(got["userName"], user_name, "{got}");
    assert_eq!(got["externalId"], external_id, "{got}");
    assert_eq!(got[ENTERPRISE]["employeeNumber"], "100009", "{got}");
    assert_eq!(got[ENTERPRISE]["department"], "Human Resources US", "{got}");
    assert_eq!(
        got[ENTERPRISE]["manager"]["value"],
        manager_id.as_str(),
        "{got}"
    );
    assert!(
        got["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == ENTERPRISE)),
        "{got}"
    );

    let after = list(&app, "Users", &format!("userName eq \"{user_name}\"")).await;
    assert_eq!(after["totalResults"], json!(1), "{after}");
    assert_eq!(ids(&after), vec![id], "{after}");
}

#[tokio::test]
async fn entra_patch_with_capitalised_ops_replace_add_remove() {
    let app = TestApp::new().await;
    let mut body = entra_user("cap.ops@contoso.com", &guid());
    body[ENTERPRISE] = json!({"employeeNumber": "7", "department": "Sales"});
    let id = create_entra_user(&app, body).await;

    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
                {"op": "Add", "path": "title", "value": "Engineer"},
                {"op": "Remove", "path": format!("{ENTERPRISE}:department")}
            ])),
        )
        .await;
    assert_patched(&r);

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(got["name"]["familyName"], "updatedFamilyName", "{got}");
    assert_eq!(got["name"]["givenName"], "givenName", "{got}");
    assert_eq!(got["title"], "Engineer", "{got}");
    assert!(
        got[ENTERPRISE].get("department").is_none(),
        "department was not removed: {got}"
    );
    assert_eq!(got[ENTERPRISE]["employeeNumber"], "7", "{got}");
}

#[tokio::test]
async fn entra_boolean_as_string_false_deactivates_and_filters() {
    let app = TestApp::new().await;
    let id = create_entra_user(&app, entra_user("bool.string@contoso.com", &guid())).await;
    let other = app.user("still.active@contoso.com").await;

    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await;
    assert_patched(&r);

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(
        got["active"],
        json!(false),
        "active must be the JSON boolean false: {got}"
    );

    let inactive = list(&app, "Users", "active eq false").await;
    assert_eq!(ids(&inactive), vec![id.clone()], "{inactive}");
    let active = list(&app, "Users", "active eq true").await;
    assert_eq!(ids(&active), vec![other], "{active}");
}

#[tokio::test]
async fn entra_pathless_replace_with_dotted_and_urn_keys_stores_both() {
    let app = TestApp::new().await;
    let id = create_entra_user(&app, entra_user("dotted.keys@contoso.com", &guid())).await;

    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{
                "op": "Replace",
                "value": {
                    "name.givenName": "X",
                    format!("{ENTERPRISE}:employeeNumber"): "42"
                }
            }])),
        )
        .await;
    assert_patched(&r);

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(got["name"]["givenName"], "X", "{got}");
    // Setting one sub-attribute must not wipe its siblings.
    assert_eq!(got["name"]["familyName"], "familyName", "{got}");
    assert_eq!(got[ENTERPRISE]["employeeNumber"], "42", "{got}");
    // The keys are paths, not attribute names to store verbatim.
    assert!(got.get("name.givenName").is_none(), "{got}");
    assert!(
        got.get(format!("{ENTERPRISE}:employeeNumber")).is_none(),
        "{got}"
    );
}

#[tokio::test]
async fn entra_add_with_value_filter_creates_missing_work_email() {
    let app = TestApp::new().await;
    let mut body = entra_user("no.work.mail@contoso.com", &guid());
    body["emails"] = json!([{"type": "home", "value": "me@home.example", "primary": false}]);
    let id = create_entra_user(&app, body).await;

    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "new@contoso.com"}])),
        )
        .await;
    assert_patched(&r);

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(
        work_email(&got).as_deref(),
        Some("new@contoso.com"),
        "{got}"
    );
    let emails = got["emails"].as_array().expect("emails");
    assert!(
        emails
            .iter()
            .any(|e| e["type"] == "home" && e["value"] == "me@home.example"),
        "{got}"
    );
    assert_eq!(emails.len(), 2, "{got}");
}

#[tokio::test]
async fn entra_manager_as_bare_id_string_is_stored_as_value() {
    let app = TestApp::new().await;
    let manager = app.user("manager@contoso.com").await;
    let id = create_entra_user(&app, entra_user("report@contoso.com", &guid())).await;

    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(
                json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": manager}]),
            ),
        )
        .await;
    assert_patched(&r);

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(
        got[ENTERPRISE]["manager"]["value"],
        manager.as_str(),
        "{got}"
    );
}

#[tokio::test]
async fn entra_group_with_microsoft_schema_urn_is_created_and_urn_kept() {
    let app = TestApp::new().await;
    // The URN named in the brief, and the one Microsoft's documented "Create Group" request carries.
    for extra in [
        "urn:ietf:params:scim:schemas:extension:Microsoft:2.0:Group",
        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group",
    ] {
        let external_id = guid();
        let display = format!("Group {external_id}");
        let r = app
            .post(
                "/Groups",
                json!({
                    "schemas": [CORE_GROUP, extra],
                    "externalId": external_id,
                    "displayName": display,
                    "meta": {"resourceType": "Group"}
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{extra}: {}", r.body);
        let gid = r.id();

        let got = get_ok(&app, &format!("/Groups/{gid}?excludedAttributes=members")).await;
        assert_eq!(got["displayName"], display.as_str(), "{got}");
        assert_eq!(got["externalId"], external_id.as_str(), "{got}");
        let schemas = got["schemas"].as_array().expect("schemas");
        assert!(schemas.iter().any(|s| s == CORE_GROUP), "{got}");
        assert!(
            schemas.iter().any(|s| s == extra),
            "{extra} was dropped: {got}"
        );

        let found = list(&app, "Groups", &format!("displayName eq \"{display}\"")).await;
        assert_eq!(ids(&found), vec![gid], "{found}");
    }
}

#[tokio::test]
async fn entra_members_added_in_batches_are_all_present() {
    let app = TestApp::new().await;
    let mut users = Vec::new();
    for i in 0..7 {
        users.push(app.user(&format!("member{i}@contoso.com")).await);
    }
    let gid = app.group("Batched", &[]).await;

    for batch in users.chunks(3) {
        let value: Vec<Value> = batch
            .iter()
            .map(|id| json!({"$ref": null, "value": id}))
            .collect();
        let r = app
            .patch(
                &format!("/Groups/{gid}"),
                patch(json!([{"op": "Add", "path": "members", "value": value}])),
            )
            .await;
        assert_patched(&r);
    }

    let mut expected = users.clone();
    expected.sort();
    assert_eq!(app.member_ids(&gid).await, expected);
}

#[tokio::test]
async fn entra_remove_members_with_value_list_removes_only_that_member() {
    let app = TestApp::new().await;
    let a = app.user("a@contoso.com").await;
    let b = app.user("b@contoso.com").await;
    let c = app.user("c@contoso.com").await;
    let gid = app.group("Remove by value", &[&a, &b, &c]).await;

    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(
                json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": b}]}]),
            ),
        )
        .await;
    assert_patched(&r);

    let mut expected = vec![a, c];
    expected.sort();
    assert_eq!(app.member_ids(&gid).await, expected);
    // The removed member is a user that still exists.
    get_ok(&app, &format!("/Users/{b}")).await;
}

#[tokio::test]
async fn entra_remove_members_value_filter_path_removes_only_that_member() {
    let app = TestApp::new().await;
    let a = app.user("a@contoso.com").await;
    let b = app.user("b@contoso.com").await;
    let c = app.user("c@contoso.com").await;
    let gid = app.group("Remove by filter", &[&a, &b, &c]).await;

    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            patch(json!([{"op": "Remove", "path": format!("members[value eq \"{c}\"]")}])),
        )
        .await;
    assert_patched(&r);

    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(app.member_ids(&gid).await, expected);
}

#[tokio::test]
async fn entra_unquoted_filter_value_matches_external_id() {
    let app = TestApp::new().await;
    let id = create_entra_user(&app, entra_user("unquoted@contoso.com", "abc-123")).await;
    create_entra_user(&app, entra_user("near.miss@contoso.com", "abc-1234")).await;
    create_entra_user(&app, entra_user("other@contoso.com", "xyz-123")).await;

    let found = list(&app, "Users", "externalId eq abc-123").await;
    assert_eq!(found["totalResults"], json!(1), "{found}");
    assert_eq!(ids(&found), vec![id], "{found}");
}

#[tokio::test]
async fn entra_deactivation_keeps_user_until_delete() {
    let app = TestApp::new().await;
    let user_name = format!("leaver_{}@contoso.com", guid());
    let id = create_entra_user(&app, entra_user(&user_name, &guid())).await;

    let r = app
        .patch(
            &format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await;
    assert_patched(&r);

    let got = get_ok(&app, &format!("/Users/{id}")).await;
    assert_eq!(got["active"], json!(false), "{got}");
    assert_eq!(got["userName"], user_name.as_str(), "{got}");

    let inactive = list(&app, "Users", "active eq false").await;
    assert_eq!(ids(&inactive), vec![id.clone()], "{inactive}");

    let d = app.delete(&format!("/Users/{id}")).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
    app.get(&format!("/Users/{id}"))
        .await
        .assert_error(404, None);
    let gone = list(&app, "Users", &format!("userName eq \"{user_name}\"")).await;
    assert_eq!(gone["totalResults"], json!(0), "{gone}");
}

/// Entra's matching on `emails[type eq "work"].value` (the attribute a directory admin picks in
/// "Match objects using this attribute"): the GET it sends before every create.
#[tokio::test]
async fn entra_matches_on_work_email_value_path_with_sub_attribute() {
    let app = TestApp::new().await;
    let target = "Work.Match@contoso.com";
    let id = create_entra_user(&app, entra_user(target, &guid())).await;
    // Same address as a home email only: one element must satisfy both conditions.
    let mut home = entra_user("home.only@contoso.com", &guid());
    home["emails"] = json!([
        {"primary": true, "type": "work", "value": "home.only@contoso.com"},
        {"type": "home", "value": target}
    ]);
    create_entra_user(&app, home).await;
    create_entra_user(&app, entra_user("other@contoso.com", &guid())).await;

    // Exactly as Entra encodes it on the wire.
    let r = app
        .get("/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22work.match%40contoso.com%22")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["totalResults"], json!(1), "{}", r.body);
    assert_eq!(ids(&r.body), vec![id.clone()], "{}", r.body);
    assert_eq!(
        work_email(&resources(&r.body)[0]).as_deref(),
        Some(target),
        "{}",
        r.body
    );

    // An address nobody has as a work email is an empty list, not an error.
    let none = list(
        &app,
        "Users",
        "emails[type eq \"work\"].value eq \"nobody@contoso.com\"",
    )
    .await;
    assert_eq!(none["totalResults"], json!(0), "{none}");

    // Combined with other expressions, and through POST /.search at the root, where groups
    // (which have no emails) simply do not match.
    let both = list(
        &app,
        "Users",
        &format!("emails[type eq work].value eq {target} and active eq true"),
    )
    .await;
    assert_eq!(ids(&both), vec![id.clone()], "{both}");
    let root = app
        .post(
            "/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "filter": format!("emails[type eq \"work\"].value eq \"{target}\" or displayName eq \"Nobody\""),
                   "attributes": ["userName", "name.givenName"]}),
        )
        .await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.body);
    assert_eq!(ids(&root.body), vec![id], "{}", root.body);
    let found = &resources(&root.body)[0];
    assert_eq!(found["name"], json!({"givenName": "givenName"}), "{found}");
    // `parent.sub` paths at the root: in the filter, in sortBy and in attributes.
    let root = app
        .post(
            "/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "filter": "name.familyName eq \"familyName\" and emails.type eq \"home\"",
                   "sortBy": "name.givenName",
                   "attributes": ["name.familyName"]}),
        )
        .await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.body);
    assert_eq!(root.body["totalResults"], json!(1), "{}", root.body);
    assert_eq!(
        resources(&root.body)[0]["name"],
        json!({"familyName": "familyName"}),
        "{}",
        root.body
    );

    // A sub-attribute the value filter's attribute lacks is still invalidFilter.
    app.get(&format!(
        "/Users?filter={}",
        enc("emails[type eq \"work\"].nope eq \"x\"")
    ))
    .await
    .assert_error(400, Some("invalidFilter"));
}

#[tokio::test]
async fn group_member_value_path_with_sub_attribute_filters_groups() {
    let app = TestApp::new().await;
    let a = app.user("a@contoso.com").await;
    let b = app.user("b@contoso.com").await;
    let ga = app.group("Has A", &[&a]).await;
    app.group("Has B", &[&b]).await;
    let found = list(
        &app,
        "Groups",
        &format!("members[type eq \"User\"].value eq \"{a}\""),
    )
    .await;
    assert_eq!(ids(&found), vec![ga], "{found}");
}
