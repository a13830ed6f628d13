//! The admin API as an administrator uses it day to day: tokens listed and revoked, people found,
//! times and errors in one format.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use idbridge::store::admin::OrgScope;

use crate::harness::TestApp;

/// Admin tokens are listed without their secrets, a revoked token is refused on its next request,
/// an admin neither sees nor revokes the owner's tokens, and an expired token is refused like an
/// unknown one.
#[tokio::test]
async fn admin_tokens_are_listed_revoked_and_expire() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let admin = app.admin_token("org_admin", None).await;
    let viewer = app.admin_token("org_viewer", None).await;

    let list = app.api_ok(&app.org_path("/admin-tokens"), &owner).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{list}");
    assert!(list["next"].is_null(), "{list}");
    let text = list.to_string();
    for secret in [&owner, &admin, &viewer] {
        assert!(!text.contains(secret.as_str()), "no secret in the list: {text}");
    }
    assert!(!text.contains("hash"), "{text}");
    let t = &items[0];
    assert_eq!(t["name"], "test");
    assert!(t["created_at"].as_str().unwrap().ends_with('Z'), "{t}");
    assert!(t["expires_at"].is_null(), "{t}");
    assert!(t["revoked_at"].is_null(), "{t}");

    // An admin does not see the owner's token, and cannot revoke it.
    let list = app.api_ok(&app.org_path("/admin-tokens"), &admin).await;
    let roles: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.len(), 2, "{list}");
    assert!(!roles.contains(&"org_owner"), "{list}");
    let owner_id = items
        .iter()
        .find(|t| t["role"] == "org_owner")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/admin-tokens/{owner_id}")),
            &admin,
            None,
        )
        .await;
    r.assert_problem(404);
    // A viewer manages no tokens.
    app.api(Method::GET, &app.org_path("/admin-tokens"), &viewer, None)
        .await
        .assert_problem(403);

    // Revoking the viewer's token refuses its very next request.
    let viewer_id = items
        .iter()
        .find(|t| t["role"] == "org_viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.api_ok(&app.org_path("/seats"), &viewer).await;
    let path = app.org_path(&format!("/admin-tokens/{viewer_id}"));
    let r = app.api(Method::DELETE, &path, &admin, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    app.api(Method::GET, &app.org_path("/seats"), &viewer, None)
        .await
        .assert_problem(401);
    app.api(Method::DELETE, &path, &admin, None)
        .await
        .assert_problem(409);
    let list = app.api_ok(&app.org_path("/admin-tokens"), &owner).await;
    let revoked = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == viewer_id.as_str())
        .unwrap();
    assert!(revoked["revoked_at"].as_str().unwrap().ends_with('Z'), "{revoked}");

    // A token past its expiry is refused with 401, like an unknown one.
    let scope = OrgScope::for_org(&app.org_id, "test");
    let soon = idbridge::store::now_micros() + 400_000;
    let expiring = app
        .store
        .create_admin_token_expiring(&scope, "org_admin", None, "short", Some(soon))
        .await
        .unwrap()
        .token;
    app.api_ok(&app.org_path("/seats"), &expiring).await;
    let list = app.api_ok(&app.org_path("/admin-tokens"), &owner).await;
    let short = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "short")
        .unwrap();
    assert!(short["expires_at"].as_str().unwrap().ends_with('Z'), "{short}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = app
        .api(Method::GET, &app.org_path("/seats"), &expiring, None)
        .await;
    r.assert_problem(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
}
