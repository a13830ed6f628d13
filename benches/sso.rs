//! Sign-in and the OpenID provider, printed, never asserted: verified sign-ins (the user found or
//! created, claims into the mapping, a session), codes issued from a session, code exchanges
//! (an RS256 id_token each) and userinfo. The IdP's own part (network, signature verification of
//! its answer) is not in these figures. Real router, real database (a temp SQLite file, or
//! PostgreSQL with IDBRIDGE_BENCH_POSTGRES_URL).
//!
//!     cargo bench --bench sso                  # IDBRIDGE_BENCH_SIGNINS=5000 to size it

// Test and benchmark code: a failed step should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use idbridge::service::setup;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Bench, env_usize, rss_mb, throughput};
use http_body_util::BodyExt;
use idbridge::app::AppState;
use idbridge::service::sign_in::sign_in;
use idbridge::sso::identity::{GroupClaim, SsoIdentity};
use idbridge::store::admin::OrgScope;
use idbridge::store::secrets::SecretBox;
use idbridge::store::{Store, StoreOptions};
use serde_json::{Value, json};
use sha2::Digest as _;
use tower::ServiceExt;

const REDIRECT: &str = "https://app.example/callback";
const VERIFIER: &str = "bench-code-verifier-bench-code-verifier-bench-code";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn send(router: &axum::Router, req: Request<Body>) -> (u16, Option<String>, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        location,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn run() {
    let n = env_usize("IDBRIDGE_BENCH_SIGNINS", 2_000);
    let concurrency = env_usize("IDBRIDGE_BENCH_CONCURRENCY", 16);
    let dir = tempfile::tempdir().unwrap();
    let (url, backend) = common::database(&dir);
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap()
        .with_secrets(SecretBox::generate());
    store.migrate().await.unwrap();
    let org = setup::create_org(&store, &format!("bench-{}", uuid::Uuid::now_v7()))
        .await
        .unwrap();
    let scope = OrgScope::for_org(&org.id, "bench");
    let admin = setup::create_admin_token(&store, &scope, "org_owner", None, "bench")
        .await
        .unwrap()
        .token;
    let router = idbridge::http::router(
        AppState::new(store.clone(), "https://idbridge.bench").without_rate_limits(),
    );
    let api = Bench {
        router: router.clone(),
        auth: format!("Bearer {admin}"),
        base: format!("/api/v1/orgs/{}", org.id),
        content_type: "application/json",
    };
    println!(
        "idbridge sign-in benchmark on {backend}, {n} users, {concurrency} concurrent clients, 2 worker threads"
    );
    let (_, sa) = api
        .call("POST", "/sub-accounts", Some(json!({"name": "Main"})))
        .await;
    let sa = sa["id"].as_str().unwrap().to_string();
    let (s, _) = api
        .call(
            "POST",
            "/mappings",
            Some(json!({"matcher": {"type": "claim", "value": "Engineering"},
                        "grant": {"type": "sub_account_role", "sub_account": {"one": sa}, "role": "admin"}})),
        )
        .await;
    assert_eq!(s, 201);
    let cert = std::fs::read_to_string("fixtures/saml/keys/idp-rsa.crt").unwrap();
    let (s, conn) = api
        .call(
            "POST",
            "/sso/connections",
            Some(json!({"name": "bench", "jit": true,
                        "saml": {"idp_entity_id": "https://idp.bench/entity",
                                 "idp_sso_url": "https://idp.bench/sso",
                                 "idp_certificates": [cert]}})),
        )
        .await;
    assert_eq!(s, 201, "{conn}");
    let conn = Arc::new(
        store
            .get_connection(&scope, conn["id"].as_str().unwrap())
            .await
            .unwrap(),
    );
    let (s, client) = api
        .call(
            "POST",
            "/clients",
            Some(json!({"name": "SaaS", "redirect_uris": [REDIRECT]})),
        )
        .await;
    assert_eq!(s, 201);
    let client_id = client["client"]["id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"))
    );

    let identity = |i: usize| SsoIdentity {
        subject: format!("user{i}"),
        email: Some(format!("user{i}@bench.example")),
        email_verified: Some(true),
        name: Some(format!("User {i}")),
        groups: GroupClaim::Values(vec!["Engineering".into(), format!("team-{}", i % 50)]),
    };
    let life = std::time::Duration::from_secs(3600);

    let (rate, el) = {
        let (store, conn) = (store.clone(), conn.clone());
        throughput(n, concurrency, move |i| {
            let (store, conn) = (store.clone(), conn.clone());
            async move {
                sign_in(&store, &conn, &identity(i), life).await.unwrap();
            }
        })
        .await
    };
    println!(
        "first sign-in (user created just in time, claims mapped, session): {rate:.0} /s ({el:.2?})"
    );

    let sessions = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let (rate, el) = {
        let (store, conn, sessions) = (store.clone(), conn.clone(), sessions.clone());
        throughput(n, concurrency, move |i| {
            let (store, conn, sessions) = (store.clone(), conn.clone(), sessions.clone());
            async move {
                let s = sign_in(&store, &conn, &identity(i), life).await.unwrap();
                sessions.lock().unwrap()[i] = s.session_token;
            }
        })
        .await
    };
    println!("sign-in of a known user (same claims, new session): {rate:.0} /s ({el:.2?})");

    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER.as_bytes()));
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256&org={}",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        org.id
    );
    let codes = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let (rate, el) = {
        let (router, sessions, codes) = (router.clone(), sessions.clone(), codes.clone());
        throughput(n, concurrency, move |i| {
            let (router, sessions, codes, authorize) = (
                router.clone(),
                sessions.clone(),
                codes.clone(),
                authorize.clone(),
            );
            async move {
                let cookie = format!("idbridge_session={}", sessions.lock().unwrap()[i]);
                let req = Request::get(&authorize)
                    .header("cookie", cookie)
                    .body(Body::empty())
                    .unwrap();
                let (status, location, _) = send(&router, req).await;
                assert_eq!(status, 303);
                let location = url::Url::parse(&location.unwrap()).unwrap();
                let code = location
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .unwrap()
                    .1
                    .to_string();
                codes.lock().unwrap()[i] = code;
            }
        })
        .await
    };
    println!("authorize with a live session (code issued): {rate:.0} /s ({el:.2?})");

    let tokens = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let (rate, el) = {
        let (router, codes, tokens, basic) =
            (router.clone(), codes.clone(), tokens.clone(), basic.clone());
        throughput(n, concurrency, move |i| {
            let (router, codes, tokens, basic) =
                (router.clone(), codes.clone(), tokens.clone(), basic.clone());
            async move {
                let code = codes.lock().unwrap()[i].clone();
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", VERIFIER),
                    ])
                    .finish();
                let req = Request::post("/oauth/token")
                    .header("authorization", basic)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap();
                let (status, _, json) = send(&router, req).await;
                assert_eq!(status, 200, "{json}");
                tokens.lock().unwrap()[i] = json["access_token"].as_str().unwrap().to_string();
            }
        })
        .await
    };
    println!("code exchange (RS256 id_token with the user's access): {rate:.0} /s ({el:.2?})");

    let (rate, el) = {
        let (router, tokens) = (router.clone(), tokens.clone());
        throughput(n, concurrency, move |i| {
            let (router, tokens) = (router.clone(), tokens.clone());
            async move {
                let token = tokens.lock().unwrap()[i].clone();
                let req = Request::get("/oauth/userinfo")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap();
                let (status, _, _) = send(&router, req).await;
                assert_eq!(status, 200);
            }
        })
        .await
    };
    println!("userinfo: {rate:.0} /s ({el:.2?})");
    println!("peak RSS of the benchmark process: {:.0} MB", rss_mb());
}
