//! Webhook delivery against a real HTTP receiver on 127.0.0.1: signed, in order, retried with
//! backoff after a failure, and delivered once when two workers (replicas) race.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestApp;

#[derive(Default)]
struct Received {
    /// (event id header, signature header, body)
    calls: Mutex<Vec<(String, String, Bytes)>>,
    /// Answer 500 to this many calls before answering 200 again.
    fail: AtomicUsize,
}

async fn receiver() -> (String, Arc<Received>) {
    let state = Arc::new(Received::default());
    let s = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                s.calls.lock().unwrap().push((
                    h("idbridge-event-id"),
                    h("idbridge-signature"),
                    body,
                ));
                let failing = s
                    .fail
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), state)
}

/// The worker's client, allowed to reach the receiver on 127.0.0.1.
fn reaching_fakes() -> idbridge::net::Outbound {
    idbridge::net::Outbound::new(true, None)
}

/// Checks the signature header the way a receiver would.
fn verify(secret: &str, header: &str, body: &[u8]) {
    let t: i64 = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .expect("timestamp in the signature header");
    assert_eq!(idbridge::webhook::signature(secret, t, body), header);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - t).abs() < 60, "fresh timestamp");
}

async fn setup() -> (TestApp, String, String, Arc<Received>, String) {
    let app = TestApp::new().await.reaching_fakes();
    let owner = app.admin_token("org_owner", None).await;
    let (url, received) = receiver().await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/webhooks"),
            &owner,
            Some(json!({ "url": url })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let id = r.body["webhook"]["id"].as_str().unwrap().to_string();
    // Stored sealed: a copy of the database does not sign deliveries (the worker opens it).
    let stored = app.store.raw_secret_columns().await.unwrap();
    assert!(!stored.is_empty() && stored.iter().all(|s| !s.contains(&secret)));
    (app, owner, secret, received, id)
}

fn bodies(received: &Received) -> Vec<Value> {
    received
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, b)| serde_json::from_slice(b).unwrap())
        .collect()
}

#[tokio::test]
async fn events_are_delivered_signed_and_in_order() {
    let (app, owner, secret, received, _) = setup().await;
    for i in 0..3 {
        app.user(&format!("hook{i}@example.com")).await;
    }
    let http = reaching_fakes();
    idbridge::webhook::run_once(&app.store, &http).await;

    let calls = received.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3);
    for (id, sig, body) in &calls {
        verify(&secret, sig, body);
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["id"], id.as_str());
        assert_eq!(event["type"], "user.provisioned");
        // The payload's time is RFC 3339 in UTC, as everywhere in the API.
        let at = event["at"].as_str().unwrap();
        assert!(
            idbridge::store::rfc3339::parse(at).is_ok() && at.ends_with('Z'),
            "{event}"
        );
    }
    let seqs: Vec<i64> = bodies(&received)
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    let hooks = app.api_ok(&app.org_path("/webhooks"), &owner).await;
    assert_eq!(hooks["items"][0]["delivered_seq"], 3);
    // Nothing new: nothing sent.
    idbridge::webhook::run_once(&app.store, &http).await;
    assert_eq!(received.calls.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_after_a_backoff() {
    let (app, owner, secret, received, _) = setup().await;
    received.fail.store(1, Ordering::SeqCst);
    app.user("retry@example.com").await;
    let http = reaching_fakes();
    idbridge::webhook::run_once(&app.store, &http).await;
    let hooks = app.api_ok(&app.org_path("/webhooks"), &owner).await;
    let hook = &hooks["items"][0];
    assert_eq!(hook["attempts"], 1, "{hook}");
    assert_eq!(hook["last_error"], "HTTP 500");
    assert_eq!(hook["delivered_seq"], 0);
    let now = idbridge::store::micros(time::OffsetDateTime::now_utc());
    let next = idbridge::store::rfc3339::parse(hook["next_attempt_at"].as_str().unwrap()).unwrap();
    assert!(next > now, "{hook}");

    // Not due yet: nothing is sent.
    idbridge::webhook::run_once(&app.store, &http).await;
    assert_eq!(received.calls.lock().unwrap().len(), 1);

    app.advance(idbridge::webhook::backoff(1) - Duration::from_millis(500));
    idbridge::webhook::run_once(&app.store, &http).await;
    assert_eq!(
        received.calls.lock().unwrap().len(),
        1,
        "not due until the backoff ends"
    );
    app.advance(Duration::from_millis(500));
    idbridge::webhook::run_once(&app.store, &http).await;
    let calls = received.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, calls[1].0, "the same event, again");
    verify(&secret, &calls[1].1, &calls[1].2);
    let hooks = app.api_ok(&app.org_path("/webhooks"), &owner).await;
    assert_eq!(hooks["items"][0]["delivered_seq"], 1);
    assert_eq!(hooks["items"][0]["attempts"], 0);
}

/// Two workers, as two replicas would run, deliver every event exactly once when nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_deliver_each_event_once() {
    let (app, _, _, received, _) = setup().await;
    for i in 0..20 {
        app.user(&format!("race{i}@example.com")).await;
    }
    let http = reaching_fakes();
    let (a, b) = tokio::join!(
        idbridge::webhook::run_once(&app.store, &http),
        idbridge::webhook::run_once(&app.store, &http)
    );
    assert_eq!(a + b, 1, "one claim between them");
    let mut seqs: Vec<i64> = bodies(&received)
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 20);
    seqs.dedup();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

/// A receiver that accepts connections and never answers; how many it holds.
async fn hanging_receiver() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(AtomicUsize::new(0));
    let h = held.clone();
    tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            sockets.push(socket);
        }
    });
    (format!("http://{addr}/hook"), held)
}

/// A receiver that hangs holds its own delivery until the outbound deadline, and nothing else:
/// provisioning goes on, and another webhook's events arrive meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_hangs_slows_neither_provisioning_nor_other_webhooks() {
    let (app, owner, _, received, _) = setup().await;
    let (hanging, held) = hanging_receiver().await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/webhooks"),
            &owner,
            Some(json!({ "url": hanging })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let hung_id = r.body["webhook"]["id"].as_str().unwrap().to_string();
    // Healthy receivers on both sides of it, whichever order webhooks are claimed in.
    let (after, received_after) = receiver().await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/webhooks"),
            &owner,
            Some(json!({ "url": after })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    app.user("first@example.com").await;

    let store = app.store.clone();
    let round =
        tokio::spawn(async move { idbridge::webhook::run_once(&store, &reaching_fakes()).await });
    // The healthy receivers get the event while the other delivery is still held.
    let deadline = std::time::Instant::now() + idbridge::net::TOTAL_TIMEOUT;
    while received.calls.lock().unwrap().is_empty()
        || received_after.calls.lock().unwrap().is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "nothing delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        held.load(Ordering::SeqCst),
        1,
        "the hanging receiver holds a request"
    );
    assert!(!round.is_finished(), "the hung delivery is still waiting");
    // Provisioning goes on meanwhile.
    for i in 0..20 {
        app.user(&format!("during{i}@example.com")).await;
    }
    assert!(!round.is_finished(), "the hung delivery is still waiting");

    // The hung delivery ends at the outbound deadline, as a failure retried later.
    round.await.unwrap();
    let hooks = app.api_ok(&app.org_path("/webhooks"), &owner).await;
    let hung = hooks["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == hung_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(hung["delivered_seq"], 0, "{hung}");
    assert_eq!(hung["attempts"], 1, "{hung}");
    assert!(
        hung["last_error"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{hung}"
    );
}
