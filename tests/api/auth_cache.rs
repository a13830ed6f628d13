//! Each replica keeps the tokens it accepted for a moment (`--auth-cache-millis`), so that a
//! SCIM or admin request does not start with a database read. What an administrator must be able
//! to count on: on the replica that made the change, a revoked, rotated-out or deleted token is
//! refused at its very next request; on any other replica, within the cache's lifetime; with a
//! lifetime of zero, at once everywhere; and a new token works at once on every replica.

use idbridge::service::setup;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use idbridge::store::StoreOptions;
use serde_json::json;
use tower::ServiceExt;

use crate::harness::{PUBLIC_URL, TestApp, connect, fresh_database};

/// The first replica (the default cache lifetime) and a second replica's router on the same
/// database whose cache keeps an accepted token for `ttl`.
async fn two_replicas(ttl: Duration) -> (TestApp, Router) {
    let (url, dir) = fresh_database().await;
    let first = connect(&url, &StoreOptions::default()).await;
    first.migrate().await.expect("migrate");
    let app = TestApp::with_store(first, dir).await;
    let opts = StoreOptions {
        auth_cache: ttl,
        ..StoreOptions::default()
    };
    // Replicas share the wall clock: moving the first's moves the second's.
    let second = connect(&url, &opts)
        .await
        .with_clock(app.store.clock().clone());
    (
        app,
        idbridge::http::router(TestApp::state(&second, PUBLIC_URL)),
    )
}

async fn status(router: &Router, path: &str, token: &str) -> StatusCode {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    router.clone().oneshot(req).await.unwrap().status()
}

/// The id of a token in a token list other than `not`.
fn token_id(list: &serde_json::Value, not: &str) -> String {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .find(|id| id != not)
        .expect("a token")
}

async fn delete(app: &TestApp, path: &str, token: &str) {
    let r = app.api(Method::DELETE, path, token, None).await;
    assert!(r.status.is_success(), "{path}: {} {}", r.status, r.body);
}

/// On the replica that revokes, rotates or deletes, the change holds at the next request even
/// though the token was just accepted (and so is in that replica's cache).
#[tokio::test]
async fn revoking_rotating_and_deleting_hold_at_the_next_request_on_the_same_replica() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let users = format!("{}/Users", app.base);
    let tokens_path = app.org_path(&format!("/directories/{}/tokens", app.directory_id));

    assert_eq!(
        status(&app.router, &users, &app.token).await,
        StatusCode::OK
    );
    let first_id = token_id(&app.api_ok(&tokens_path, &owner).await, "");

    // Rotation: the new token works at once, the old one until it is revoked.
    let r = app.api(Method::POST, &tokens_path, &owner, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let second = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(status(&app.router, &users, &second).await, StatusCode::OK);
    assert_eq!(
        status(&app.router, &users, &app.token).await,
        StatusCode::OK
    );
    delete(&app, &format!("{tokens_path}/{first_id}"), &owner).await;
    assert_eq!(
        status(&app.router, &users, &app.token).await,
        StatusCode::UNAUTHORIZED,
        "the revoked token is refused at its next request"
    );
    assert_eq!(status(&app.router, &users, &second).await, StatusCode::OK);

    // A sub-account's admin token goes with its sub-account.
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sub-accounts"),
            &owner,
            Some(json!({"name": "marketing"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sa = r.body["id"].as_str().unwrap().to_string();
    let sa_admin = app.admin_token("sub_account_admin", Some(&sa)).await;
    let sa_path = app.org_path(&format!("/sub-accounts/{sa}"));
    assert_eq!(
        status(&app.router, &sa_path, &sa_admin).await,
        StatusCode::OK
    );
    delete(&app, &sa_path, &owner).await;
    assert_eq!(
        status(&app.router, &app.org_path("/seats"), &sa_admin).await,
        StatusCode::UNAUTHORIZED,
        "the deleted sub-account's admin token is refused at its next request"
    );

    // Deleting the directory ends its tokens.
    let directory = app.org_path(&format!("/directories/{}", app.directory_id));
    delete(&app, &directory, &owner).await;
    assert_eq!(
        status(&app.router, &users, &second).await,
        StatusCode::UNAUTHORIZED,
        "a deleted directory's token is refused at its next request"
    );
}

/// Another replica that has just accepted a token refuses it once its cache entry ages out,
/// and accepts a token minted elsewhere at once (only acceptances are kept).
#[tokio::test]
async fn another_replica_refuses_a_revoked_token_once_its_cache_lifetime_has_passed() {
    let ttl = Duration::from_millis(300);
    let (app, other) = two_replicas(ttl).await;
    let owner = app.admin_token("org_owner", None).await;
    let seats = app.org_path("/seats");
    let users = format!("{}/Users", app.base);
    let tokens_path = app.org_path(&format!("/directories/{}/tokens", app.directory_id));

    assert_eq!(status(&other, &users, &app.token).await, StatusCode::OK);
    assert_eq!(status(&other, &seats, &owner).await, StatusCode::OK);

    let r = app.api(Method::POST, &tokens_path, &owner, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let fresh = r.body["token"].as_str().unwrap().to_string();
    let fresh_id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        status(&other, &users, &fresh).await,
        StatusCode::OK,
        "a token minted on one replica works on another at once"
    );

    let first_id = token_id(&app.api_ok(&tokens_path, &owner).await, &fresh_id);
    delete(&app, &format!("{tokens_path}/{first_id}"), &owner).await;
    let admin_tokens = app.api_ok(&app.org_path("/admin-tokens"), &owner).await;
    let owner_id = token_id(&admin_tokens, "");
    delete(
        &app,
        &app.org_path(&format!("/admin-tokens/{owner_id}")),
        &owner,
    )
    .await;

    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(
        status(&other, &users, &app.token).await,
        StatusCode::UNAUTHORIZED,
        "the revoked SCIM token is refused on the other replica after the cache lifetime"
    );
    assert_eq!(
        status(&other, &seats, &owner).await,
        StatusCode::UNAUTHORIZED,
        "the revoked admin token is refused on the other replica after the cache lifetime"
    );
    assert_eq!(status(&other, &users, &fresh).await, StatusCode::OK);
}

/// With a lifetime of zero every request asks the database: a revocation anywhere holds at once
/// on every replica.
#[tokio::test]
async fn with_no_cache_another_replica_refuses_a_revoked_token_at_once() {
    let (app, other) = two_replicas(Duration::ZERO).await;
    let owner = app.admin_token("org_owner", None).await;
    let users = format!("{}/Users", app.base);
    assert_eq!(status(&other, &users, &app.token).await, StatusCode::OK);
    let tokens_path = app.org_path(&format!("/directories/{}/tokens", app.directory_id));
    let id = token_id(&app.api_ok(&tokens_path, &owner).await, "");
    delete(&app, &format!("{tokens_path}/{id}"), &owner).await;
    assert_eq!(
        status(&other, &users, &app.token).await,
        StatusCode::UNAUTHORIZED
    );
}

/// An admin token is kept no longer than it is valid, however long the cache lifetime.
#[tokio::test]
async fn an_expiring_admin_token_is_refused_on_time_despite_a_long_cache() {
    let (app, other) = two_replicas(Duration::from_secs(60)).await;
    let soon = app.store.now() + 30_000_000;
    let token = setup::create_admin_token_expiring(
        &app.store,
        &app.org_scope(),
        "org_admin",
        None,
        "brief",
        Some(soon),
    )
    .await
    .expect("token")
    .token;
    let seats = app.org_path("/seats");
    assert_eq!(status(&other, &seats, &token).await, StatusCode::OK);
    app.advance(Duration::from_secs(29));
    assert_eq!(status(&other, &seats, &token).await, StatusCode::OK);
    app.advance(Duration::from_secs(1));
    assert_eq!(
        status(&other, &seats, &token).await,
        StatusCode::UNAUTHORIZED,
        "an expired token is refused even though it was accepted a moment ago"
    );
}
