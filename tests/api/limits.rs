//! Rate limits: past its allowance each caller hears 429 with `Retry-After` in its protocol's own
//! format, callers do not spend each other's allowance, and an IdP that retries as Okta and Entra
//! do loses nothing.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use idbridge::rate::{Rate, RateConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::harness::{Resp, TestApp, enc};

/// Two requests at once, then one every hundred seconds: the third request of a burst is refused.
const TWO: Rate = Rate::new(0.01, 2);

#[track_caller]
fn retry_after(r: &Resp) -> u64 {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    let secs: u64 = r
        .header("retry-after")
        .expect("a 429 says when to retry")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=100).contains(&secs), "{secs}");
    secs
}

fn user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "active": true
    })
}

#[tokio::test]
async fn scim_answers_429_as_a_scim_error_and_each_directory_has_its_own_allowance() {
    let app = TestApp::new().await.with_rates(RateConfig {
        scim: TWO,
        ..RateConfig::OFF
    });
    let (other, other_token) = app.other_directory().await;
    assert_eq!(app.get("/Users").await.status, StatusCode::OK);
    assert_eq!(app.get("/Users").await.status, StatusCode::OK);
    let r = app.post("/Users", user("kate@example.com")).await;
    r.assert_error(429, None);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert!(
        r.body["detail"].as_str().unwrap().contains("rate limit"),
        "{r:?}"
    );
    retry_after(&r);

    let users_of_other = |token: &str| {
        let auth = format!("Bearer {token}");
        let path = format!("/scim/v2/{other}/Users");
        let app = &app;
        async move {
            app.send(Method::GET, &path, None, &[("authorization", &auth)])
                .await
        }
    };
    assert_eq!(users_of_other(&other_token).await.status, StatusCode::OK);
    // Bad tokens are refused as before, and spend nothing of the directory's allowance.
    for _ in 0..3 {
        users_of_other("idb_not-a-token")
            .await
            .assert_error(401, None);
    }
    assert_eq!(users_of_other(&other_token).await.status, StatusCode::OK);
}

/// One SCIM request, retried after `Retry-After` for as long as it is refused with 429, the
/// way Okta and Entra retry. Returns the final answer and how many 429s it met.
async fn retried(
    app_router: axum::Router,
    token: String,
    path: String,
    body: Value,
) -> (u16, usize) {
    let mut refused = 0;
    loop {
        let req = Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/scim+json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = app_router.clone().oneshot(req).await.unwrap();
        if resp.status() != StatusCode::TOO_MANY_REQUESTS {
            return (resp.status().as_u16(), refused);
        }
        refused += 1;
        let secs: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    }
}

#[tokio::test]
async fn a_burst_of_creates_over_the_limit_retried_after_retry_after_stores_each_user_once() {
    let app = TestApp::new().await.with_rates(RateConfig {
        scim: Rate::new(20.0, 5),
        ..RateConfig::OFF
    });
    let n = 40;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tasks.spawn(retried(
            app.router.clone(),
            app.token.clone(),
            format!("{}/Users", app.base),
            user(&format!("burst{i}@example.com")),
        ));
    }
    let mut refused = 0;
    while let Some(done) = tasks.join_next().await {
        let (status, r) = done.unwrap();
        assert_eq!(status, 201);
        refused += r;
    }
    assert!(refused > 0, "the burst never met the limit");

    // Read back through a replica of its own, whose allowance is untouched.
    let replica = app.replica(crate::harness::PUBLIC_URL);
    let req = Request::builder()
        .uri(format!("{}/Users?count=100", app.base))
        .header("authorization", format!("Bearer {}", app.token))
        .body(Body::empty())
        .unwrap();
    let resp = replica.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let list: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(list["totalResults"], n, "{list}");
    let names: BTreeSet<_> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), n);
}

#[tokio::test]
async fn the_admin_api_answers_429_as_problem_details_per_token_and_per_platform_token() {
    let app = TestApp::new().await.with_rates(RateConfig {
        admin: TWO,
        ..RateConfig::OFF
    });
    let a = app.admin_token("org_admin", None).await;
    let b = app.admin_token("org_viewer", None).await;
    let org = app.org_path("");
    for _ in 0..2 {
        assert_eq!(
            app.api(Method::GET, &org, &a, None).await.status,
            StatusCode::OK
        );
    }
    let r = app.api(Method::GET, &org, &a, None).await;
    r.assert_problem(429);
    retry_after(&r);
    assert_eq!(
        app.api(Method::GET, &org, &b, None).await.status,
        StatusCode::OK
    );

    // A platform token's requests share one allowance, on its own routes and an organization's.
    let p = idbridge::service::platform::create_platform_token(&app.store, "the SaaS", None)
        .await
        .unwrap()
        .token;
    assert_eq!(
        app.api(Method::GET, "/api/v1/orgs", &p, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.api(Method::GET, &org, &p, None).await.status,
        StatusCode::OK
    );
    for path in ["/api/v1/orgs", org.as_str()] {
        let r = app.api(Method::GET, path, &p, None).await;
        r.assert_problem(429);
        retry_after(&r);
    }
    assert_eq!(
        app.api(Method::GET, &org, &b, None).await.status,
        StatusCode::OK
    );
}

async fn token_request(app: &TestApp, client_id: &str) -> Resp {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "grant_type=authorization_code&code=nope&client_id={}&client_secret=wrong",
            enc(client_id)
        )))
        .unwrap();
    app.send_raw(req).await
}

#[tokio::test]
async fn the_token_endpoint_answers_429_as_an_oauth_error_per_client() {
    let app = TestApp::without_directory().await.with_rates(RateConfig {
        token: TWO,
        ..RateConfig::OFF
    });
    for _ in 0..2 {
        let r = token_request(&app, "client-a").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    }
    let r = token_request(&app, "client-a").await;
    retry_after(&r);
    assert_eq!(r.body["error"], "temporarily_unavailable", "{r:?}");
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("rate limit")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = token_request(&app, "client-b").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
}

/// A GET from this client address, as the server that accepted the connection records it.
async fn get_from(app: &TestApp, uri: &str, from: [u8; 4]) -> Resp {
    let mut req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((from, 40000))));
    app.send_raw(req).await
}

#[track_caller]
fn assert_wait_page(r: &Resp) {
    retry_after(r);
    assert!(
        r.header("content-type").unwrap().starts_with("text/html"),
        "{r:?}"
    );
    let page = r.body.as_str().unwrap();
    assert!(page.contains("Sign-in failed"), "{page}");
    assert!(page.contains("Too many sign-in attempts"), "{page}");
}

async fn saml_connection(app: &TestApp, admin: &str) -> String {
    let input = json!({
        "name": "Entra",
        "saml": {
            "idp_entity_id": "https://idp.example.test/entity",
            "idp_sso_url": "https://idp.example.test/saml/sso",
            "idp_certificates": [std::fs::read_to_string("fixtures/saml/keys/idp-rsa.crt").unwrap()],
            "idp_initiated": true
        }
    });
    crate::observability::create_connection(app, admin, input).await
}

#[tokio::test]
async fn sign_in_answers_429_on_its_page_per_connection() {
    let app = TestApp::without_directory().await.with_rates(RateConfig {
        sign_in_connection: TWO,
        ..RateConfig::OFF
    });
    let admin = app.admin_token("org_admin", None).await;
    let busy = saml_connection(&app, &admin).await;
    let quiet = saml_connection(&app, &admin).await;
    let start = |id: &str| format!("/sso/{id}/start");
    for _ in 0..2 {
        let r = get_from(&app, &start(&busy), [203, 0, 113, 5]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
    }
    assert_wait_page(&get_from(&app, &start(&busy), [203, 0, 113, 6]).await);
    // The ACS of the same connection spends the same allowance.
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/sso/saml/{busy}/acs"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("SAMLResponse=PHg%2B"))
        .unwrap();
    assert_wait_page(&app.send_raw(req).await);
    let r = get_from(&app, &start(&quiet), [203, 0, 113, 5]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
}

#[tokio::test]
async fn sign_in_answers_429_on_its_page_per_client_address() {
    let app = TestApp::without_directory().await.with_rates(RateConfig {
        sign_in_address: TWO,
        ..RateConfig::OFF
    });
    let start = "/sso/start?email=kate%40unknown.example";
    for _ in 0..2 {
        let r = get_from(&app, start, [198, 51, 100, 7]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    }
    assert_wait_page(&get_from(&app, start, [198, 51, 100, 7]).await);
    assert_wait_page(&get_from(&app, "/sso/oidc/callback?state=x&code=y", [198, 51, 100, 7]).await);
    let r = get_from(&app, start, [198, 51, 100, 8]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
}

#[tokio::test]
async fn failed_sign_ins_past_the_audit_limit_are_answered_but_not_written() {
    let app = TestApp::without_directory().await.with_rates(RateConfig {
        failure_audit: Rate::new(0.01, 3),
        ..RateConfig::OFF
    });
    let admin = app.admin_token("org_admin", None).await;
    let id = saml_connection(&app, &admin).await;
    for _ in 0..8 {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/sso/saml/{id}/acs"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("SAMLResponse=PHg%2B"))
            .unwrap();
        let r = app.send_raw(req).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert!(r.body.as_str().unwrap().contains("Sign-in failed"));
    }
    let audit = app
        .api_ok(
            &app.org_path(&format!(
                "/audit?resource_type=SsoConnection&resource_id={id}&limit=100"
            )),
            &admin,
        )
        .await;
    let failures = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "sso.sign_in_failed")
        .count();
    assert_eq!(failures, 3, "{audit}");
}

#[tokio::test]
async fn the_openapi_document_lists_429_with_retry_after_on_every_operation() {
    let app = TestApp::without_directory().await;
    let doc = app.get("/api/v1/openapi.json").await.body;
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let r = &op["responses"]["429"];
            assert!(
                r["headers"]["Retry-After"].is_object(),
                "{method} {path}: {r}"
            );
            assert!(r["content"]["application/problem+json"].is_object(), "{r}");
            seen += 1;
        }
    }
    assert!(seen > 40, "{seen}");
}

/// The operator's sizes hold on every request and are what ServiceProviderConfig advertises.
#[tokio::test]
async fn the_configured_sizes_bound_pages_bulk_and_bodies_and_are_advertised() {
    let app = TestApp::new()
        .await
        .with_sizes(idbridge::domain::limits::Sizes {
            body_bytes: 64 * 1024,
            bulk_operations: 5,
            bulk_payload_bytes: 64 * 1024,
            page_size: 3,
        });
    let spc = app.get("/ServiceProviderConfig").await.body;
    assert_eq!(spc["bulk"]["maxOperations"], 5, "{spc}");
    assert_eq!(spc["bulk"]["maxPayloadSize"], 64 * 1024, "{spc}");
    assert_eq!(spc["filter"]["maxResults"], 3, "{spc}");
    assert_eq!(spc["pagination"]["maxPageSize"], 3, "{spc}");
    assert_eq!(spc["pagination"]["defaultPageSize"], 3, "{spc}");

    for i in 0..4 {
        let r = app.post("/Users", user(&format!("u{i}@example.com"))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    // A page never holds more than the size, whatever count asks.
    for path in [
        "/Users?count=10",
        "/Users",
        "/Users?startIndex=2&count=1000",
    ] {
        let page = app.get(path).await.body;
        assert_eq!(page["totalResults"], 4, "{path}: {page}");
        assert_eq!(page["Resources"].as_array().unwrap().len(), 3, "{path}");
        assert_eq!(page["itemsPerPage"], 3, "{path}");
    }

    let op = |i: usize| {
        json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"),
               "data": user(&format!("bulk{i}@example.com"))})
    };
    let bulk = |n: usize| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
               "Operations": (0..n).map(op).collect::<Vec<_>>()})
    };
    let r = app.post("/Bulk", bulk(6)).await;
    r.assert_error(413, None);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("at most 5 operations"),
        "{r:?}"
    );
    assert_eq!(
        app.get("/Users").await.body["totalResults"],
        4,
        "nothing kept"
    );
    assert_eq!(app.post("/Bulk", bulk(5)).await.status, StatusCode::OK);

    // A body over the size is refused before it is read whole, in SCIM's format.
    let mut big = user("big@example.com");
    big["displayName"] = json!("x".repeat(10 * 1024));
    big["nickName"] = json!("x".repeat(10 * 1024));
    big["title"] = json!("x".repeat(10 * 1024));
    big["profileUrl"] = json!("x".repeat(10 * 1024));
    big["preferredLanguage"] = json!("x".repeat(10 * 1024));
    big["locale"] = json!("x".repeat(10 * 1024));
    big["timezone"] = json!("x".repeat(10 * 1024));
    let r = app.post("/Users", big).await;
    r.assert_error(413, None);
    assert!(
        r.body["detail"].as_str().unwrap().contains("65536"),
        "{r:?}"
    );
}
