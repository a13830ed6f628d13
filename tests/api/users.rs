use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[tokio::test]
async fn create_returns_201_with_location_etag_and_complete_meta() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "bjensen@example.com", "externalId": "bj-1",
                               "name": {"givenName": "Barbara", "familyName": "Jensen"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.id();
    let location = format!("{PUBLIC_URL}{}/Users/{id}", app.base);
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let meta = &r.body["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert_eq!(meta["location"], location);
    assert!(
        meta["created"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{meta}"
    );
    assert_eq!(meta["created"], meta["lastModified"]);
    assert_eq!(r.header("etag"), meta["version"].as_str());
    assert_eq!(r.body["userName"], "bjensen@example.com");
    // Not sent, not returned; but such a user counts as active.
    assert!(r.body.get("active").is_none(), "{}", r.body);
    let l = app
        .get(&format!("/Users?filter={}", enc("active eq true")))
        .await;
    assert_eq!(l.body["totalResults"], 1, "{}", l.body);
    // UUIDv7: time-ordered ids.
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);

    let g = app.get(&format!("/Users/{id}")).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.body["name"]["familyName"], "Jensen");
    assert_eq!(g.body["externalId"], "bj-1");
}

#[tokio::test]
async fn user_name_is_unique_per_directory_case_insensitively() {
    let app = TestApp::new().await;
    app.user("Alice@Example.com").await;
    let r = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "alice@example.COM"}),
        )
        .await;
    r.assert_error(409, Some("uniqueness"));
    // Another directory may hold the same userName.
    let (dir, token) = app.other_directory().await;
    let auth = format!("Bearer {token}");
    let r = app
        .send(
            Method::POST,
            &format!("/scim/v2/{dir}/Users"),
            Some(json!({"schemas": [USER], "userName": "alice@example.com"})),
            &[("authorization", auth.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn missing_user_name_is_invalid_value() {
    let app = TestApp::new().await;
    let r = app
        .post("/Users", json!({"schemas": [USER], "displayName": "x"}))
        .await;
    r.assert_error(400, Some("invalidValue"));
}

#[tokio::test]
async fn put_replaces_the_whole_resource() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "u1", "title": "Engineer",
                               "name": {"givenName": "A", "familyName": "B"}}),
        )
        .await;
    let id = r.id();
    let v1 = r.body["meta"]["version"].clone();
    let p = app
        .put(
            &format!("/Users/{id}"),
            json!({"schemas": [USER], "userName": "u1-renamed", "displayName": "U One"}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["id"], id);
    assert_ne!(p.body["meta"]["version"], v1);
    let g = app.get(&format!("/Users/{id}")).await;
    assert_eq!(g.body["userName"], "u1-renamed");
    assert_eq!(g.body["displayName"], "U One");
    assert!(
        g.body.get("title").is_none(),
        "attributes not sent are cleared: {}",
        g.body
    );
    assert!(g.body.get("name").is_none(), "{}", g.body);
}

#[tokio::test]
async fn etags_give_304_and_412() {
    let app = TestApp::new().await;
    let id = app.user("etag@example.com").await;
    let g = app.get(&format!("/Users/{id}")).await;
    let etag = g.header("etag").unwrap().to_string();
    let nm = app
        .send(
            Method::GET,
            &format!("/Users/{id}"),
            None,
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!(nm.status, StatusCode::NOT_MODIFIED);

    let stale = "W/\"999\"";
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "displayName", "value": "New"}]});
    let r = app
        .send(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(body.clone()),
            &[("if-match", stale)],
        )
        .await;
    r.assert_error(412, None);
    let r = app
        .send(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(body),
            &[("if-match", etag.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    // The old tag no longer matches.
    let nm = app
        .send(
            Method::GET,
            &format!("/Users/{id}"),
            None,
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!(nm.status, StatusCode::OK);
    let r = app
        .send(
            Method::DELETE,
            &format!("/Users/{id}"),
            None,
            &[("if-match", etag.as_str())],
        )
        .await;
    r.assert_error(412, None);
    assert_eq!(
        app.get(&format!("/Users/{id}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn patch_operations_from_rfc_7644() {
    let app = TestApp::new().await;
    let id = app.user("patch@example.com").await;
    let path = format!("/Users/{id}");
    let r = app
        .patch(&path, json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "add", "path": "emails", "value": [{"value": "home@example.com", "type": "home"}]},
            {"op": "replace", "path": "name.givenName", "value": "Babs"},
            {"op": "add", "value": {"nickName": "Babs", "title": "Tour Guide"}},
            {"op": "remove", "path": "emails[type eq \"work\"]"}
        ]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let g = app.get(&path).await.body;
    assert_eq!(g["name"]["givenName"], "Babs");
    assert_eq!(g["nickName"], "Babs");
    assert_eq!(g["title"], "Tour Guide");
    let emails = g["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 1, "{g}");
    assert_eq!(emails[0]["value"], "home@example.com");
}

#[tokio::test]
async fn patch_is_all_or_nothing() {
    let app = TestApp::new().await;
    let id = app.user("atomic@example.com").await;
    let path = format!("/Users/{id}");
    let r = app
        .patch(
            &path,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "noSuchAttribute", "value": "x"}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let g = app.get(&path).await.body;
    assert!(
        g.get("displayName").is_none(),
        "first op must not be applied: {g}"
    );
    assert_eq!(g["meta"]["version"], "W/\"1\"", "{g}");
}

#[tokio::test]
async fn deactivation_keeps_the_user_and_delete_removes_it() {
    let app = TestApp::new().await;
    let id = app.user("leaver@example.com").await;
    let path = format!("/Users/{id}");
    let r = app
        .patch(
            &path,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                             "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], false);
    let l = app
        .get(&format!("/Users?filter={}", enc("active eq false")))
        .await;
    assert_eq!(l.body["totalResults"], 1, "{}", l.body);
    assert_eq!(l.body["Resources"][0]["id"], id);

    assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
    app.get(&path).await.assert_error(404, None);
    app.delete(&path).await.assert_error(404, None);
}

#[tokio::test]
async fn enterprise_and_unknown_extensions_are_kept() {
    let app = TestApp::new().await;
    let custom = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
    let r = app
        .post(
            "/Users",
            json!({
                "schemas": [USER, ENTERPRISE, custom],
                "userName": "ext@example.com",
                ENTERPRISE: {"employeeNumber": "701984", "department": "Tour Operations",
                             "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}},
                custom: {"badge": "B-7", "floor": 3}
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let g = app.get(&format!("/Users/{}", r.id())).await.body;
    assert_eq!(g[ENTERPRISE]["employeeNumber"], "701984");
    assert_eq!(
        g[ENTERPRISE]["manager"]["value"],
        "26118915-6090-4610-87e4-49d8ca9f808d"
    );
    assert_eq!(g[custom]["badge"], "B-7");
    assert_eq!(g[custom]["floor"], 3);
    let schemas: Vec<&str> = g["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(
        schemas.contains(&ENTERPRISE) && schemas.contains(&custom),
        "{schemas:?}"
    );
}

#[tokio::test]
async fn attributes_and_excluded_attributes_project_every_read() {
    let app = TestApp::new().await;
    let id = app.user("proj@example.com").await;
    let r = app
        .get(&format!("/Users/{id}?attributes=userName"))
        .await
        .body;
    assert_eq!(r["userName"], "proj@example.com");
    assert_eq!(r["id"], id, "id is always returned");
    assert!(r.get("emails").is_none() && r.get("name").is_none(), "{r}");

    let r = app
        .get(&format!("/Users/{id}?attributes=name.givenName"))
        .await
        .body;
    assert_eq!(r["name"]["givenName"], "Given");
    assert!(r["name"].get("familyName").is_none(), "{r}");

    let r = app
        .get(&format!("/Users/{id}?excludedAttributes=emails,name"))
        .await
        .body;
    assert!(r.get("emails").is_none() && r.get("name").is_none(), "{r}");
    assert_eq!(r["userName"], "proj@example.com");

    let l = app.get("/Users?attributes=userName").await.body;
    assert!(l["Resources"][0].get("emails").is_none(), "{l}");
    assert_eq!(l["Resources"][0]["userName"], "proj@example.com");
}

#[tokio::test]
async fn writes_are_audited() {
    let app = TestApp::new().await;
    let id = app.user("audit@example.com").await;
    app.patch(
        &format!("/Users/{id}"),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]}),
    )
    .await;
    app.delete(&format!("/Users/{id}")).await;
    let entries = app.store.audit_entries(&app.org_id, 0, 100).await.unwrap();
    let ops: Vec<(&str, Option<&str>)> = entries
        .iter()
        .filter(|e| e.resource_type == "User")
        .map(|e| (e.operation.as_str(), e.detail.as_deref()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("create", Some("audit@example.com")),
            ("patch", Some("deactivated")),
            ("delete", None)
        ]
    );
    let user_entries: Vec<_> = entries
        .iter()
        .filter(|e| e.resource_type == "User")
        .collect();
    assert!(
        user_entries
            .iter()
            .all(|e| e.resource_id.as_deref() == Some(id.as_str()))
    );
    assert!(
        user_entries
            .iter()
            .all(|e| e.directory_id.as_deref() == Some(app.directory_id.as_str()))
    );
    // The actor is the token that made the change, never the token itself.
    assert!(
        user_entries
            .iter()
            .all(|e| !e.actor.is_empty() && e.actor != app.token)
    );
}

#[tokio::test]
async fn password_is_accepted_but_never_stored_or_returned() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "pw@example.com", "password": "t1meMa$heen"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body.get("password").is_none());
    let g = app.get(&format!("/Users/{}", r.id())).await;
    assert!(g.body.get("password").is_none());
    assert!(!g.body.to_string().contains("t1meMa$heen"));
}
