//! The platform API: the SaaS's backend creates, finds, changes and deletes organizations, mints
//! their admin tokens and removes their directories and connections with a platform token, which
//! is never an admin or SCIM token, nor the reverse.

use idbridge::service::setup;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;
use idbridge::service::platform as platform_svc;

const REDIRECT_URI: &str = "https://app.example.test/callback";

/// A platform token minted the way `idbridge platform-token create` mints it.
async fn platform_token(app: &TestApp) -> String {
    platform_token_and_id(app).await.0
}

/// A platform token and its id, which audit logs name it by.
async fn platform_token_and_id(app: &TestApp) -> (String, String) {
    let t = platform_svc::create_platform_token(&app.store, "the SaaS", None)
        .await
        .unwrap();
    (t.token, t.id)
}

/// A SCIM request to `directory` with `token`.
async fn scim(
    app: &TestApp,
    directory: &str,
    token: &str,
    method: Method,
    body: Option<Value>,
) -> Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/scim/v2/{directory}/Users"))
        .header("authorization", format!("Bearer {token}"));
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/scim+json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    app.send_raw(req.body(body).unwrap()).await
}

fn scim_user(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": true
    })
}

/// A POST that must answer 201.
async fn created(app: &TestApp, path: &str, token: &str, body: Value) -> Resp {
    let r = app.api(Method::POST, path, token, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "POST {path}: {}", r.body);
    r
}

/// Creates an organization through the platform API and returns its body.
async fn create(app: &TestApp, platform: &str, body: Value) -> Value {
    created(app, "/api/v1/orgs", platform, body).await.body
}

/// The organization's audit entries, read with the operator's authority.
async fn audit_actors(app: &TestApp, org_id: &str) -> Vec<(String, String, String)> {
    app.store
        .audit_entries(org_id, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.operation, e.resource_type))
        .collect()
}

fn platform_actor(app_token_id: &str) -> String {
    format!("platform-token:{app_token_id}")
}

#[tokio::test]
async fn platform_tokens_and_organization_tokens_are_never_taken_for_each_other() {
    let app = TestApp::new().await;
    let platform = platform_token(&app).await;
    let owner = app.admin_token("org_owner", None).await;
    assert!(platform.starts_with("idbp_"), "{platform}");
    assert!(owner.starts_with("idba_") && app.token.starts_with("idb_"));

    // The platform token is not an admin token: the admin API's own operations refuse it...
    for path in ["/users", "/mappings", "/audit", "/seats"] {
        let r = app
            .api(Method::GET, &app.org_path(path), &platform, None)
            .await;
        r.assert_problem(403);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("platform token")
        );
    }
    // ...nor a SCIM token.
    scim(&app, &app.directory_id, &platform, Method::GET, None)
        .await
        .assert_error(401, None);

    // An admin token, even the owner's, reaches none of the platform's own operations.
    for (method, path, body) in [
        (Method::GET, "/api/v1/orgs".to_string(), None),
        (
            Method::POST,
            "/api/v1/orgs".to_string(),
            Some(json!({"name": "Sneaky"})),
        ),
        (Method::DELETE, app.org_path(""), None),
        (
            Method::POST,
            app.org_path("/admin-tokens"),
            Some(json!({"role": "org_owner"})),
        ),
        (
            Method::PATCH,
            app.org_path(""),
            Some(json!({"external_key": "mine"})),
        ),
    ] {
        let r = app.api(method.clone(), &path, &owner, body).await;
        r.assert_problem(403);
        assert!(r.header("www-authenticate").is_none(), "{method} {path}");
    }
    assert!(app.store.find_org("Sneaky").await.is_err());
    assert!(app.store.org_details(&app.org_scope()).await.is_ok());

    // A SCIM token, no token or a made-up one: 401 with the scheme to use.
    for token in [app.token.as_str(), "", "idbp_not-a-token"] {
        let r = app.api(Method::GET, "/api/v1/orgs", token, None).await;
        r.assert_problem(401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{token}");
        let r = app
            .api(Method::DELETE, &app.org_path(""), token, None)
            .await;
        r.assert_problem(401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{token}");
    }
    // The platform token does what it is for.
    app.api_ok("/api/v1/orgs", &platform).await;
    app.api_ok(&app.org_path(""), &platform).await;
}

#[tokio::test]
async fn a_platform_token_is_listed_without_its_secret_and_refused_once_revoked_or_expired() {
    let app = TestApp::new().await;
    let soon = app.store.now() + 86_400_000_000;
    let expiring = platform_svc::create_platform_token(&app.store, "short", Some(soon))
        .await
        .unwrap();
    let token = platform_svc::create_platform_token(&app.store, "  backend  ", None)
        .await
        .unwrap();
    assert_ne!(token.token, expiring.token);

    app.api_ok("/api/v1/orgs", &token.token).await;
    app.api_ok("/api/v1/orgs", &expiring.token).await;
    let listed = platform_svc::list_platform_tokens(&app.store)
        .await
        .unwrap();
    let text = serde_json::to_string(&listed).unwrap();
    assert!(
        !text.contains(&token.token) && !text.contains("hash"),
        "{text}"
    );
    let mine = listed.iter().find(|t| t.id == token.id).unwrap();
    assert_eq!(mine.name, "backend");
    assert!(mine.last_used_at.is_some() && mine.revoked_at.is_none());
    assert_eq!(
        listed
            .iter()
            .find(|t| t.id == expiring.id)
            .unwrap()
            .expires_at,
        Some(soon)
    );

    platform_svc::revoke_platform_token(&app.store, &token.id)
        .await
        .unwrap();
    app.api(Method::GET, "/api/v1/orgs", &token.token, None)
        .await
        .assert_problem(401);
    app.api(Method::GET, &app.org_path(""), &token.token, None)
        .await
        .assert_problem(401);
    // Revoking twice says there is nothing left to revoke.
    assert!(matches!(
        platform_svc::revoke_platform_token(&app.store, &token.id).await,
        Err(idbridge::service::admin::AdminError::NotFound(_))
    ));

    app.api_ok("/api/v1/orgs", &expiring.token).await;
    app.advance(Duration::from_secs(86_400));
    app.api(Method::GET, "/api/v1/orgs", &expiring.token, None)
        .await
        .assert_problem(401);
    // An expiry in the past or a blank name is refused.
    let past = app.store.now() - 1;
    assert!(
        platform_svc::create_platform_token(&app.store, "late", Some(past))
            .await
            .is_err()
    );
    assert!(
        platform_svc::create_platform_token(&app.store, " ", None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn organizations_are_created_found_by_key_paged_and_updated() {
    let app = TestApp::new().await;
    let (platform, token_id) = platform_token_and_id(&app).await;

    let r = created(
        &app,
        "/api/v1/orgs",
        &platform,
        json!({"name": " Globex ", "external_key": "cust_42",
                        "owner_email": "Hank@Globex.example", "seat_limit": 25}),
    )
    .await;
    let org = r.body.clone();
    let id = org["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("{PUBLIC_URL}/api/v1/orgs/{id}").as_str())
    );
    assert_eq!(org["name"], "Globex");
    assert_eq!(org["external_key"], "cust_42");
    assert_eq!(org["seat_limit"], 25);
    assert_eq!(org["seats_used"], 0, "the named owner takes no seat yet");
    assert!(org["owner_user_id"].is_string(), "{org}");

    // Found by its key, and by its id.
    let found = app
        .api_ok("/api/v1/orgs?external_key=cust_42", &platform)
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], id.as_str());
    assert_eq!(found["next"], Value::Null);
    let none = app
        .api_ok("/api/v1/orgs?external_key=CUST_42", &platform)
        .await;
    assert_eq!(none["items"], json!([]), "keys compare exactly");
    let got = app.api_ok(&format!("/api/v1/orgs/{id}"), &platform).await;
    assert_eq!(got["external_key"], "cust_42");

    // Paged in creation order: the harness's organization, then these.
    create(&app, &platform, json!({"name": "Initech"})).await;
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .api_ok(&format!("/api/v1/orgs?limit=1&after={after}"), &platform)
            .await;
        let items = page["items"].as_array().unwrap();
        seen.extend(
            items
                .iter()
                .map(|o| o["name"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(&seen[1..], ["Globex", "Initech"]);
    app.api(Method::GET, "/api/v1/orgs?limit=0", &platform, None)
        .await
        .assert_problem(400);
    app.api(Method::GET, "/api/v1/orgs?limit=ten", &platform, None)
        .await
        .assert_problem(400);

    // PATCH the name, seat limit and key; then clear the key.
    let path = format!("/api/v1/orgs/{id}");
    let r = app
        .api(
            Method::PATCH,
            &path,
            &platform,
            Some(json!({"name": "Globex Corp", "seat_limit": 50, "external_key": "cust_43"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["organization"]["name"], "Globex Corp");
    assert_eq!(r.body["organization"]["seat_limit"], 50);
    assert_eq!(r.body["organization"]["external_key"], "cust_43");
    assert_eq!(
        app.api_ok("/api/v1/orgs?external_key=cust_42", &platform)
            .await["items"],
        json!([])
    );
    let r = app
        .api(
            Method::PATCH,
            &path,
            &platform,
            Some(json!({"external_key": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["organization"]["external_key"], Value::Null);
    assert_eq!(
        r.body["organization"]["name"], "Globex Corp",
        "left as it was"
    );
    // The owner changes only by a transfer.
    app.api(
        Method::PATCH,
        &path,
        &platform,
        Some(json!({"owner_user_id": "someone"})),
    )
    .await
    .assert_problem(400);

    // Every change is in the organization's audit log, by this platform token.
    let actor = platform_actor(&token_id);
    let log = audit_actors(&app, &id).await;
    let by_platform: Vec<_> = log.iter().filter(|(a, _, _)| *a == actor).collect();
    assert!(
        by_platform
            .iter()
            .any(|(_, op, ty)| op == "create" && ty == "Organization"),
        "{log:?}"
    );
    assert!(
        by_platform
            .iter()
            .filter(|(_, op, ty)| op == "update" && ty == "Organization")
            .count()
            >= 4,
        "{log:?}"
    );
}

#[tokio::test]
async fn bad_organizations_are_refused_with_problem_details_and_nothing_is_stored() {
    let app = TestApp::new().await;
    let platform = platform_token(&app).await;
    let first = create(
        &app,
        &platform,
        json!({"name": "Umbrella", "external_key": "u-1"}),
    )
    .await;
    let count = || async {
        app.api_ok("/api/v1/orgs?limit=1000", &platform).await["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = count().await;
    let long = "x".repeat(201);
    for (body, status, says) in [
        (json!({"name": ""}), 400, "name"),
        (json!({"name": "   "}), 400, "name"),
        (json!({"name": long}), 400, "name"),
        (json!({"name": "A", "owner_email": "boss"}), 400, "email"),
        (json!({"name": "B", "seat_limit": -1}), 400, "seat_limit"),
        (
            json!({"name": "C", "external_key": " u-2"}),
            400,
            "external_key",
        ),
        (
            json!({"name": "D", "external_key": ""}),
            400,
            "external_key",
        ),
        (
            json!({"name": "E", "external_key": "u-1"}),
            409,
            "external_key",
        ),
        (json!({"name": "umbrella"}), 409, "name"),
        (json!({"name": "F", "colour": "red"}), 400, "colour"),
        (json!({"external_key": "u-3"}), 400, "name"),
    ] {
        let r = app
            .api(Method::POST, "/api/v1/orgs", &platform, Some(body.clone()))
            .await;
        r.assert_problem(status);
        assert!(
            r.body["detail"].as_str().unwrap().contains(says),
            "{body}: {}",
            r.body
        );
    }
    assert_eq!(count().await, before, "nothing was created");

    let other = create(
        &app,
        &platform,
        json!({"name": "Tyrell", "external_key": "t-1"}),
    )
    .await;
    let path = format!("/api/v1/orgs/{}", other["id"].as_str().unwrap());
    for (body, status) in [
        (json!({"external_key": "u-1"}), 409),
        (json!({"name": "UMBRELLA"}), 409),
        (json!({"name": ""}), 400),
        (json!({"seat_limit": -5}), 400),
    ] {
        app.api(Method::PATCH, &path, &platform, Some(body))
            .await
            .assert_problem(status);
    }
    let kept = app.api_ok(&path, &platform).await;
    assert_eq!(
        (kept["name"].as_str(), kept["external_key"].as_str()),
        (Some("Tyrell"), Some("t-1"))
    );
    assert_eq!(first["external_key"], "u-1");
    app.api(Method::GET, "/api/v1/orgs/no-such-org", &platform, None)
        .await
        .assert_problem(404);
    app.api(Method::DELETE, "/api/v1/orgs/no-such-org", &platform, None)
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn the_platform_mints_lists_and_revokes_admin_tokens() {
    let app = TestApp::new().await;
    let (platform, token_id) = platform_token_and_id(&app).await;
    let tokens = app.org_path("/admin-tokens");
    let r = created(
        &app,
        &tokens,
        &platform,
        json!({"role": "org_viewer", "name": "support desk",
                        "expires_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    let viewer = r.body["token"].as_str().unwrap().to_string();
    let viewer_id = r.body["id"].as_str().unwrap().to_string();
    assert!(viewer.starts_with("idba_"));
    assert_eq!(r.body["role"], "org_viewer");
    assert_eq!(r.body["name"], "support desk");
    assert_eq!(r.body["expires_at"], "2999-01-01T00:00:00Z");

    // It works as what it is: a viewer of this organization.
    app.api_ok(&app.org_path("/users"), &viewer).await;
    app.api(Method::GET, &tokens, &viewer, None)
        .await
        .assert_problem(403);

    let listed = app.api_ok(&tokens, &platform).await;
    let text = listed.to_string();
    assert!(!text.contains(&viewer), "{text}");
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == viewer_id.as_str() && t["name"] == "support desk")
    );

    for body in [
        json!({"role": "root"}),
        json!({"role": "sub_account_admin"}),
        json!({"role": "org_admin", "sub_account_id": "x"}),
        json!({"role": "org_admin", "expires_at": "2000-01-01T00:00:00Z"}),
        json!({"role": "org_admin", "expires_at": "tomorrow"}),
        json!({"role": "org_admin", "name": ""}),
    ] {
        app.api(Method::POST, &tokens, &platform, Some(body))
            .await
            .assert_problem(400);
    }

    let r = app
        .api(
            Method::DELETE,
            &format!("{tokens}/{viewer_id}"),
            &platform,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    app.api(Method::GET, &app.org_path("/users"), &viewer, None)
        .await
        .assert_problem(401);

    let log = audit_actors(&app, &app.org_id).await;
    for op in ["create", "revoke"] {
        assert!(
            log.contains(&(platform_actor(&token_id), op.into(), "AdminToken".into())),
            "{op}: {log:?}"
        );
    }
}

#[tokio::test]
async fn deleting_a_directory_deprovisions_whom_it_alone_provisioned() {
    let app = TestApp::new().await;
    let platform = platform_token(&app).await;
    let owner = app.admin_token("org_owner", None).await;
    let r = created(
        &app,
        &app.org_path("/directories"),
        &owner,
        json!({"name": "second"}),
    )
    .await;
    let second = r.body["directory"]["id"].as_str().unwrap().to_string();
    let second_token = r.body["token"]["token"].as_str().unwrap().to_string();
    // Everyone the first directory provisions is an org viewer.
    created(
        &app,
        &app.org_path("/mappings"),
        &owner,
        json!({"matcher": {"type": "directory_default", "directory_id": app.directory_id},
               "grant": {"type": "org_role", "role": "org_viewer"}}),
    )
    .await;

    app.user("ada@acme.example").await;
    app.user("bob@acme.example").await;
    let ada = app.org_user_id(&owner, "ada@acme.example").await;
    let bob = app.org_user_id(&owner, "bob@acme.example").await;
    let ada_session = setup::create_session(
        &app.store,
        &app.org_scope(),
        &ada,
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let org_roles = |view: Value| -> Vec<Value> {
        view["org_roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["role"].clone())
            .collect()
    };
    let bob_access = app.org_path(&format!("/users/{bob}/access"));
    assert_eq!(
        org_roles(app.api_ok(&bob_access, &owner).await),
        [json!("org_viewer")]
    );
    let r = scim(
        &app,
        &second,
        &second_token,
        Method::POST,
        Some(scim_user("bob@acme.example")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let dirs = app.api_ok(&app.org_path("/directories"), &platform).await;
    assert_eq!(dirs["items"].as_array().unwrap().len(), 2);

    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/directories/{}", app.directory_id)),
            &platform,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let changes = r.body["changes"].as_array().unwrap();
    let of = |name: &str| {
        changes
            .iter()
            .find(|c| c["user_name"] == name)
            .unwrap_or_else(|| panic!("{name}: {changes:?}"))
            .clone()
    };
    assert_eq!(changes.len(), 2, "{}", r.body);
    assert_eq!(of("ada@acme.example")["status"], "deprovisioned");
    // Bob stays, without what the deleted directory gave him.
    assert!(of("bob@acme.example").get("status").is_none());
    assert_eq!(
        org_roles(app.api_ok(&bob_access, &owner).await),
        Vec::<Value>::new()
    );
    let sessions = app
        .api_ok(&app.org_path(&format!("/users/{ada}/sessions")), &owner)
        .await;
    assert_eq!(sessions["items"][0]["id"], ada_session.id.as_str());
    assert!(sessions["items"][0]["revoked_at"].is_string(), "{sessions}");

    let users = app.api_ok(&app.org_path("/users"), &owner).await;
    let active = |name: &str| {
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user_name"] == name)
            .unwrap()["active"]
            .clone()
    };
    assert_eq!(active("ada@acme.example"), false);
    assert_eq!(
        active("bob@acme.example"),
        true,
        "the second directory still provisions bob"
    );
    // The directory's SCIM token went with it; the other directory's still works.
    scim(&app, &app.directory_id, &app.token, Method::GET, None)
        .await
        .assert_error(401, None);
    let r = scim(&app, &second, &second_token, Method::GET, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let dirs = app.api_ok(&app.org_path("/directories"), &platform).await;
    assert_eq!(dirs["items"][0]["id"], second.as_str());
    app.api(
        Method::DELETE,
        &app.org_path(&format!("/directories/{}", app.directory_id)),
        &platform,
        None,
    )
    .await
    .assert_problem(404);
    // A viewer may not delete a directory.
    let viewer = app.admin_token("org_viewer", None).await;
    app.api(
        Method::DELETE,
        &app.org_path(&format!("/directories/{second}")),
        &viewer,
        None,
    )
    .await
    .assert_problem(403);
}

#[tokio::test]
async fn a_directory_that_alone_provisions_the_owner_is_kept() {
    let app = TestApp::new().await;
    let platform = platform_token(&app).await;
    let owner = app.admin_token("org_owner", None).await;
    app.user("boss@acme.example").await;
    let boss = app.org_user_id(&owner, "boss@acme.example").await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/owner"),
            &owner,
            Some(json!({"user_id": boss})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/directories/{}", app.directory_id)),
            &platform,
            None,
        )
        .await;
    r.assert_problem(409);
    assert!(
        r.body["detail"].as_str().unwrap().contains("owner"),
        "{}",
        r.body
    );
    let r = scim(&app, &app.directory_id, &app.token, Method::GET, None).await;
    assert_eq!(r.status, StatusCode::OK, "nothing was deleted: {}", r.body);
}

#[tokio::test]
async fn the_platform_lists_and_deletes_connections() {
    let app = TestApp::new().await;
    let platform = platform_token(&app).await;
    let owner = app.admin_token("org_owner", None).await;
    let r = created(
        &app,
        &app.org_path("/sso/connections"),
        &owner,
        json!({"name": "Okta", "saml": {}}),
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let listed = app
        .api_ok(&app.org_path("/sso/connections"), &platform)
        .await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/sso/connections/{id}")),
            &platform,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let listed = app.api_ok(&app.org_path("/sso/connections"), &owner).await;
    assert_eq!(listed["items"], json!([]));
}

#[tokio::test]
async fn deleting_an_organization_removes_what_it_owns_and_its_tokens_and_sessions_stop_at_once() {
    let app = TestApp::new().await;
    let (platform, token_id) = platform_token_and_id(&app).await;
    let (client_id, _) = idbridge::service::admin::register_client(
        &app.store,
        None,
        "the SaaS",
        &[REDIRECT_URI.to_string()],
    )
    .await
    .unwrap();
    let client_id = client_id.id;

    // Two organizations with the same kinds of things: users, a rule, a webhook-free outbox,
    // admin tokens, sessions.
    let owner = app.admin_token("org_owner", None).await;
    app.user("ada@acme.example").await;
    let ada = app.org_user_id(&owner, "ada@acme.example").await;
    let session = setup::create_session(
        &app.store,
        &app.org_scope(),
        &ada,
        Duration::from_secs(3600),
    )
    .await
    .unwrap()
    .token;
    created(
        &app,
        &app.org_path("/sso/connections"),
        &owner,
        json!({"name": "Okta", "saml": {}}),
    )
    .await;

    let other = create(
        &app,
        &platform,
        json!({"name": "Other", "external_key": "o-1"}),
    )
    .await;
    let other_id = other["id"].as_str().unwrap().to_string();
    let other_scope = idbridge::store::admin::OrgScope::for_org(&other_id, "test");
    let other_owner =
        setup::create_admin_token(&app.store, &other_scope, "org_owner", None, "test")
            .await
            .unwrap()
            .token;
    let r = app
        .api(
            Method::POST,
            &format!("/api/v1/orgs/{other_id}/directories"),
            &platform,
            Some(json!({"name": "theirs"})),
        )
        .await;
    // Creating directories is the admin API's, not the platform's.
    r.assert_problem(403);
    let (other_dir, other_scim) = setup::create_directory(&app.store, &other_scope, "theirs")
        .await
        .map(|(d, t)| (d.id, t.token))
        .unwrap();
    let r = scim(
        &app,
        &other_dir,
        &other_scim,
        Method::POST,
        Some(scim_user("ada@acme.example")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let other_ada = app
        .store
        .find_org_user(&other_scope, "ada@acme.example")
        .await
        .unwrap()
        .id;
    let other_session = setup::create_session(
        &app.store,
        &other_scope,
        &other_ada,
        Duration::from_secs(3600),
    )
    .await
    .unwrap()
    .token;

    // Before: the session signs in silently, the tokens work, the outbox has events.
    assert!(
        !app.store
            .events_after(&app.org_scope(), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        query(
            &silent_authorize(
                &app,
                &client_id,
                REDIRECT_URI,
                &[("org", &app.org_id)],
                &session
            )
            .await,
            "code"
        )
        .is_some()
    );
    let r = scim(&app, &app.directory_id, &app.token, Method::GET, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let r = app
        .api(Method::DELETE, &app.org_path(""), &platform, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    // Its SCIM token, admin token and session are refused from the next request on.
    scim(&app, &app.directory_id, &app.token, Method::GET, None)
        .await
        .assert_error(401, None);
    app.api(Method::GET, &app.org_path(""), &owner, None)
        .await
        .assert_problem(401);
    assert_eq!(
        query(
            &silent_authorize(
                &app,
                &client_id,
                REDIRECT_URI,
                &[("org", &app.org_id)],
                &session
            )
            .await,
            "error"
        )
        .as_deref(),
        Some("login_required")
    );
    // It is gone for the platform too, and everything it owned with it.
    app.api(Method::GET, &app.org_path(""), &platform, None)
        .await
        .assert_problem(404);
    let all = app.api_ok("/api/v1/orgs", &platform).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    assert_eq!(all["items"][0]["id"], other_id.as_str());
    assert!(app.store.find_directory(&app.directory_id).await.is_err());
    assert!(
        app.store
            .list_connections(&app.org_scope())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        app.store
            .list_admin_tokens(&app.org_scope())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        app.store
            .events_after(&app.org_scope(), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // What was done is still on record, deletion included.
    let log = audit_actors(&app, &app.org_id).await;
    assert!(
        log.contains(&(
            platform_actor(&token_id),
            "delete".into(),
            "Organization".into()
        )),
        "{log:?}"
    );

    // The other organization, with a user of the same name, is untouched.
    let r = scim(&app, &other_dir, &other_scim, Method::GET, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1);
    let users = app
        .api_ok(&format!("/api/v1/orgs/{other_id}/users"), &other_owner)
        .await;
    assert_eq!(users["items"][0]["active"], true);
    assert!(
        query(
            &silent_authorize(
                &app,
                &client_id,
                REDIRECT_URI,
                &[("org", &other_id)],
                &other_session
            )
            .await,
            "code"
        )
        .is_some()
    );
    let kept = app
        .api_ok(&format!("/api/v1/orgs/{other_id}"), &platform)
        .await;
    assert_eq!(kept["external_key"], "o-1");
}

#[test]
fn the_cli_mints_lists_and_revokes_platform_tokens_and_creates_organizations_with_a_key() {
    use crate::cli::{idbridge, json_of, migrated};
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let (ok, out, err) = idbridge(
        &db,
        &[
            "platform-token",
            "create",
            "--name",
            "backend",
            "--expires-in",
            "30d",
            "--json",
        ],
    );
    assert!(ok, "{out}{err}");
    let created = json_of(&out);
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("idbp_"), "{created}");
    assert!(created["expires_at"].is_string());
    let id = created["id"].as_str().unwrap();

    let (ok, out, err) = idbridge(&db, &["platform-token", "list", "--json"]);
    assert!(ok, "{out}{err}");
    assert!(!out.contains(token), "the secret is shown once: {out}");
    let listed = json_of(&out);
    assert_eq!(listed["items"][0]["id"], id);
    assert_eq!(listed["items"][0]["name"], "backend");

    let (ok, out, err) = idbridge(
        &db,
        &[
            "org",
            "create",
            "--name",
            "Acme",
            "--owner",
            "boss@acme.example",
            "--external-key",
            "acme-1",
            "--seat-limit",
            "10",
            "--json",
        ],
    );
    assert!(ok, "{out}{err}");
    let org = json_of(&out);
    assert_eq!(org["external_key"], "acme-1");
    assert_eq!(org["seat_limit"], 10);
    // The same rules as the API's: a taken key is refused, and nothing is made.
    let (ok, out, err) = idbridge(
        &db,
        &[
            "org",
            "create",
            "--name",
            "Acme 2",
            "--external-key",
            "acme-1",
        ],
    );
    assert!(!ok && err.contains("external_key"), "{out}{err}");
    let (ok, out, err) = idbridge(
        &db,
        &["org", "create", "--name", "Acme 3", "--seat-limit=-1"],
    );
    assert!(!ok && err.contains("seat_limit"), "{out}{err}");

    let (ok, out, err) = idbridge(&db, &["platform-token", "revoke", "--id", id]);
    assert!(ok && out.contains(id), "{out}{err}");
    let (ok, out, err) = idbridge(&db, &["platform-token", "revoke", "--id", id, "--json"]);
    assert!(!ok, "{out}{err}");
    assert!(json_of(&out)["error"].as_str().unwrap().contains(id));
    let (_, out, _) = idbridge(&db, &["platform-token", "list"]);
    assert!(out.contains("revoked"), "{out}");
}

#[tokio::test]
async fn the_openapi_document_says_which_token_each_operation_takes_and_what_deleting_does() {
    let app = TestApp::new().await;
    let doc = app.api_ok("/api/v1/openapi.json", "").await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["platform_token"]["scheme"], "bearer", "{schemes}");
    let platform_only = json!([{"platform_token": []}]);
    let either = json!([{"admin_token": []}, {"platform_token": []}]);
    for (path, method, security) in [
        ("/api/v1/orgs", "get", &platform_only),
        ("/api/v1/orgs", "post", &platform_only),
        ("/api/v1/orgs/{org}", "delete", &platform_only),
        ("/api/v1/orgs/{org}/admin-tokens", "post", &platform_only),
        ("/api/v1/orgs/{org}", "get", &either),
        ("/api/v1/orgs/{org}", "patch", &either),
        ("/api/v1/orgs/{org}/admin-tokens", "get", &either),
        ("/api/v1/orgs/{org}/directories/{id}", "delete", &either),
        ("/api/v1/orgs/{org}/sso/connections/{id}", "delete", &either),
    ] {
        assert_eq!(
            &doc["paths"][path][method]["security"], security,
            "{method} {path}"
        );
    }
    // An operation of the admin API alone keeps the document's default: admin tokens.
    assert!(doc["paths"]["/api/v1/orgs/{org}/users"]["get"]["security"].is_null());
    assert_eq!(doc["security"], json!([{"admin_token": []}]));
    let delete = doc["paths"]["/api/v1/orgs/{org}"]["delete"]["description"]
        .as_str()
        .unwrap();
    for what in [
        "directories",
        "sessions",
        "admin tokens",
        "audit log is kept",
    ] {
        assert!(delete.contains(what), "{what}: {delete}");
    }
    let list = &doc["paths"]["/api/v1/orgs"]["get"]["parameters"];
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "external_key" && p["in"] == "query"),
        "{list}"
    );
}
