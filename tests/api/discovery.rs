use axum::http::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn service_provider_config_advertises_what_is_supported() {
    let app = TestApp::new().await;
    let r = app.get("/ServiceProviderConfig").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let c = r.body;
    assert_eq!(
        c["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    );
    for f in ["patch", "filter", "sort", "etag", "bulk"] {
        assert_eq!(c[f]["supported"], true, "{f}");
    }
    assert_eq!(c["changePassword"]["supported"], false);
    assert_eq!(c["filter"]["maxResults"], 1000);
    assert_eq!(c["bulk"]["maxOperations"], 1000);
    assert_eq!(c["bulk"]["maxPayloadSize"], 1048576);
    assert_eq!(c["pagination"]["cursor"], true);
    assert_eq!(c["pagination"]["index"], true);
    assert_eq!(c["authenticationSchemes"][0]["type"], "oauthbearertoken");
    // What is advertised holds: a page never exceeds maxResults.
    let l = app.get("/Users?count=5000").await;
    assert_eq!(l.status, StatusCode::OK);
}

#[tokio::test]
async fn schemas_and_resource_types() {
    let app = TestApp::new().await;
    let s = app.get("/Schemas").await.body;
    let ids: Vec<&str> = s["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for urn in [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:ietf:params:scim:schemas:core:2.0:Group",
    ] {
        assert!(ids.contains(&urn), "{ids:?}");
        let one = app.get(&format!("/Schemas/{urn}")).await;
        assert_eq!(one.status, StatusCode::OK);
        assert_eq!(one.body["id"], urn);
        assert!(
            one.body["attributes"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        );
    }
    let user = app
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await
        .body;
    let user_name = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "userName")
        .unwrap()
        .clone();
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["required"], true);
    assert_eq!(user_name["caseExact"], false);

    let rt = app.get("/ResourceTypes").await.body;
    assert_eq!(rt["totalResults"], 2);
    let u = app.get("/ResourceTypes/User").await.body;
    assert_eq!(u["endpoint"], "/Users");
    assert_eq!(
        u["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
    app.get("/ResourceTypes/Widget")
        .await
        .assert_error(404, None);
    app.get("/Schemas/urn:nope").await.assert_error(404, None);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::new().await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    app.user("metrics@example.com").await;
    let m = app.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    let text = m.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("idbridge_http_requests_total"), "{text}");
    assert!(
        text.contains("route=\"/scim/v2/{directory}/Users\""),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "idbridge_scim_operations_total{{directory=\"{}\"",
            app.directory_id
        )) || text.contains(&format!("directory=\"{}\"", app.directory_id)),
        "{text}"
    );
    app.store.close().await;
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// `/metrics` names every directory: it answers only the operator's token, and is not served at
/// all when no token is configured.
#[tokio::test]
async fn metrics_need_the_operators_token_and_are_off_without_one() {
    let app = TestApp::new().await;
    let directory = app.directory_id.clone();
    for auth in [
        None,
        Some("Bearer metrics-token-for-the-test"),
        Some("Bearer "),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let mut req = axum::http::Request::builder().uri("/metrics");
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let r = app
            .send_raw(req.body(axum::body::Body::empty()).unwrap())
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(!r.body.to_string().contains(&directory));
    }
    // A directory's own SCIM token is not the metrics token either.
    let r = app
        .send(
            axum::http::Method::GET,
            "/metrics",
            None,
            &[("authorization", &format!("Bearer {}", app.token))],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let mut state = TestApp::state(&app.store, PUBLIC_URL);
    state.metrics_token = None;
    let req = axum::http::Request::builder()
        .uri("/metrics")
        .header("authorization", format!("Bearer {METRICS_TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let off = tower::ServiceExt::oneshot(idbridge::http::router(state), req)
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::NOT_FOUND);
}
