//! The database goes away: while PostgreSQL cannot be reached every request answers 503 in its
//! protocol's format with Retry-After, and once it is back the service recovers without a restart,
//! having lost no acknowledged write. The shared server is never stopped: a proxy in the test
//! stands between idbridge and it, and "stopping the database" closes every proxied connection and
//! refuses new ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use idbridge::store::secrets::SecretBox;
use idbridge::store::{Store, StoreOptions};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::harness::{TestApp, pg_schema};

struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    // Refused: the connection closes at once.
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { addr, up, conns }
    }

    /// Closes every proxied connection and refuses new ones.
    fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restart(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn new_user(user_name: &str) -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": true
    })
}

#[tokio::test]
async fn while_the_database_is_away_requests_answer_503_and_the_service_recovers() {
    let url = match std::env::var("IDBRIDGE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            eprintln!("skipped: set IDBRIDGE_TEST_POSTGRES_URL to run the outage test");
            return;
        }
    };
    let scoped = pg_schema(&url).await;
    let parsed = url::Url::parse(&scoped).unwrap();
    let upstream = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream.clone()).await;
    let via_proxy = scoped.replacen(&upstream, &proxy.addr.to_string(), 1);
    assert_ne!(via_proxy, scoped, "the URL must name host:port");
    let opts = StoreOptions {
        max_connections: 4,
        acquire_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let store = Store::connect(&via_proxy, &opts)
        .await
        .unwrap()
        .with_secrets(SecretBox::generate());
    store.migrate().await.unwrap();
    let app = TestApp::with_store(store, None).await;
    let owner = app.admin_token("org_owner", None).await;
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        acknowledged.push(app.user(&format!("before{i}@example.com")).await);
    }

    proxy.stop();
    let r = app.post("/Users", new_user("during@example.com")).await;
    r.assert_error(503, None);
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    let r = app
        .api(Method::GET, &app.org_path("/users"), &owner, None)
        .await;
    r.assert_problem(503);
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A sign-in: its page says to try again, with Retry-After, instead of "failed".
    let r = app
        .send_raw(
            axum::http::Request::builder()
                .uri("/sso/start?email=someone%40example.com")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    let page = r.body.as_str().expect("an HTML page");
    assert!(page.contains("Try again in a moment"), "{page}");

    proxy.restart();
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    let r = app.post("/Users", new_user("during@example.com")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for id in acknowledged {
        let r = app.get(&format!("/Users/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.body);
    }
}
