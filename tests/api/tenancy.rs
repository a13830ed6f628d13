use axum::http::{Method, StatusCode};
use idbridge::service::admin;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn missing_or_wrong_tokens_are_401_scim_errors() {
    let app = TestApp::new().await;
    let r = app
        .send(Method::GET, "/Users", None, &[("authorization", "")])
        .await;
    r.assert_error(401, None);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    app.send(
        Method::GET,
        "/Users",
        None,
        &[("authorization", "Bearer idb_wrong")],
    )
    .await
    .assert_error(401, None);
    app.send(
        Method::GET,
        "/Users",
        None,
        &[("authorization", &format!("Basic {}", app.token))],
    )
    .await
    .assert_error(401, None);
    // Discovery endpoints are behind the token too.
    app.send(
        Method::GET,
        "/ServiceProviderConfig",
        None,
        &[("authorization", "Bearer nope")],
    )
    .await
    .assert_error(401, None);
}

#[tokio::test]
async fn a_token_works_only_on_its_own_directory() {
    let app = TestApp::new().await;
    let mine = app.user("mine@example.com").await;
    let (other_dir, other_token) = app.other_directory().await;
    let other_auth = format!("Bearer {other_token}");
    // My token on the other directory's URL: 401.
    app.send(
        Method::GET,
        &format!("/scim/v2/{other_dir}/Users"),
        None,
        &[],
    )
    .await
    .assert_error(401, None);
    // The other token on my URL: 401.
    app.send(
        Method::GET,
        "/Users",
        None,
        &[("authorization", other_auth.as_str())],
    )
    .await
    .assert_error(401, None);
    // The other directory cannot see or touch my user, even knowing its id.
    let theirs = |p: String| format!("/scim/v2/{other_dir}{p}");
    app.send(
        Method::GET,
        &theirs(format!("/Users/{mine}")),
        None,
        &[("authorization", other_auth.as_str())],
    )
    .await
    .assert_error(404, None);
    app.send(
        Method::DELETE,
        &theirs(format!("/Users/{mine}")),
        None,
        &[("authorization", other_auth.as_str())],
    )
    .await
    .assert_error(404, None);
    let r = app
        .send(
            Method::GET,
            &theirs("/Users".into()),
            None,
            &[("authorization", other_auth.as_str())],
        )
        .await;
    assert_eq!(r.body["totalResults"], 0);
    // Nor put it in one of its groups.
    let r = app.send(Method::POST, &theirs("/Groups".into()),
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "x", "members": [{"value": mine}]})),
        &[("authorization", other_auth.as_str())]).await;
    r.assert_error(400, Some("invalidValue"));
    assert_eq!(
        app.get(&format!("/Users/{mine}")).await.status,
        StatusCode::OK
    );
}

/// The operator acting on the test organization.
fn operator(app: &TestApp) -> admin::Caller {
    admin::Caller::operator(app.org_scope())
}

#[tokio::test]
async fn rotation_keeps_two_tokens_and_revoke_ends_it() {
    let app = TestApp::new().await;
    let new = admin::rotate_directory_token(&app.store, &operator(&app), &app.directory_id)
        .await
        .unwrap();
    let new_auth = format!("Bearer {}", new.token);
    assert_eq!(
        app.get("/Users").await.status,
        StatusCode::OK,
        "the old token still works"
    );
    assert_eq!(
        app.send(
            Method::GET,
            "/Users",
            None,
            &[("authorization", new_auth.as_str())]
        )
        .await
        .status,
        StatusCode::OK
    );
    let revoked =
        admin::revoke_directory_tokens(&app.store, &operator(&app), &app.directory_id, None)
            .await
            .unwrap();
    assert_eq!(revoked.len(), 1);
    app.get("/Users").await.assert_error(401, None);
    assert_eq!(
        app.send(
            Method::GET,
            "/Users",
            None,
            &[("authorization", new_auth.as_str())]
        )
        .await
        .status,
        StatusCode::OK
    );
    // A third rotation keeps at most two valid.
    let t2 = admin::rotate_directory_token(&app.store, &operator(&app), &app.directory_id)
        .await
        .unwrap();
    let t3 = admin::rotate_directory_token(&app.store, &operator(&app), &app.directory_id)
        .await
        .unwrap();
    app.send(
        Method::GET,
        "/Users",
        None,
        &[("authorization", new_auth.as_str())],
    )
    .await
    .assert_error(401, None);
    for t in [t2, t3] {
        let a = format!("Bearer {}", t.token);
        assert_eq!(
            app.send(
                Method::GET,
                "/Users",
                None,
                &[("authorization", a.as_str())]
            )
            .await
            .status,
            StatusCode::OK
        );
    }
}
