//! Membership PATCH figures over a real socket, printed, never asserted: the requests Okta and
//! Entra send, at several group sizes, so a cost that grows with the group shows as a falling rate.
//! The server runs on its own 2-thread runtime behind a `127.0.0.1:0` listener; the clients are
//! reqwest on another runtime in the same process (a SQLite temp file, or PostgreSQL when
//! IDBRIDGE_BENCH_POSTGRES_URL is set). A mapping rule matches the group, so every change also
//! recomputes access, as it does for a customer who maps the group to a role.
//!
//!     cargo bench --bench members                                  # groups of 100, 1,000, 10,000
//!     IDBRIDGE_BENCH_HUGE=1 cargo bench --bench members            # and 100,000
//!     IDBRIDGE_BENCH_POOL=2000 IDBRIDGE_BENCH_CONCURRENCY=16 cargo bench --bench members

// Test and benchmark code: a failed step should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::env_usize;
use idbridge::service::setup;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use idbridge::app::AppState;
use idbridge::store::{Store, StoreOptions};
use serde_json::{Value, json};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Client {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn patch_group(&self, gid: &str, ops: Value) {
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        let (s, b) = self
            .send(
                reqwest::Method::PATCH,
                &format!("/Groups/{gid}"),
                Some(&body),
            )
            .await;
        assert!(s == 204 || s == 200, "PATCH {s}: {b}");
    }
}

/// Runs `n` calls of `f` on `concurrency` tasks; returns calls per second and each call's latency.
async fn drive<F, Fut>(n: usize, concurrency: usize, f: F) -> (f64, Vec<Duration>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                f(i).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    (rate, lat)
}

fn pct(lat: &[Duration], p: f64) -> f64 {
    if lat.is_empty() {
        return 0.0;
    }
    let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
    lat[i].as_secs_f64() * 1000.0
}

fn report(size: usize, what: &str, rate: f64, lat: &[Duration]) {
    println!(
        "{size:>7} | {what:<34} | {rate:>8.0} /s | p50 {:>7.1} ms | p99 {:>7.1} ms | n {}",
        pct(lat, 0.50),
        pct(lat, 0.99),
        lat.len()
    );
}

fn main() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, backend) = common::database(&dir);
    let (store, addr) = server_rt.block_on(async {
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = idbridge::http::router(
            AppState::new(store.clone(), &format!("http://{addr}")).without_rate_limits(),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (store, addr)
    });
    client_rt.block_on(run(store, addr, backend, &url));
    drop(server_rt);
}

async fn run(store: Store, addr: std::net::SocketAddr, backend: &str, url: &str) {
    let concurrency = env_usize("IDBRIDGE_BENCH_CONCURRENCY", 16);
    let pool = env_usize("IDBRIDGE_BENCH_POOL", 4_000) / 100 * 100;
    let mut sizes = vec![100, 1_000, 10_000];
    if std::env::var_os("IDBRIDGE_BENCH_HUGE").is_some() {
        sizes.push(100_000);
    }
    let largest = *sizes.last().unwrap();

    let org = setup::create_org(&store, &format!("bench-{}", uuid::Uuid::now_v7()))
        .await
        .unwrap();
    let scope = idbridge::store::admin::OrgScope::for_org(&org.id, "bench");
    let (d, t) = setup::create_directory(&store, &scope, "bench")
        .await
        .unwrap();
    let owner = setup::create_admin_token(&store, &scope, "org_owner", None, "bench")
        .await
        .unwrap()
        .token;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let c = Arc::new(Client {
        http: http.clone(),
        base: format!("http://{addr}/scim/v2/{}", d.id),
        auth: format!("Bearer {}", t.token),
    });
    let admin = Client {
        http,
        base: format!("http://{addr}/api/v1/orgs/{}", org.id),
        auth: format!("Bearer {owner}"),
    };
    println!(
        "idbridge membership benchmark over HTTP on {backend}: {concurrency} concurrent clients, \
         server on 2 worker threads, {pool} members added and removed per phase"
    );

    // The group, and a rule that maps it to a role: every membership change recomputes access.
    let (s, sa) = admin
        .send(
            reqwest::Method::POST,
            "/sub-accounts",
            Some(&json!({"name": "Bench"})),
        )
        .await;
    assert_eq!(s, 201, "{sa}");
    let (s, r) = admin
        .send(
            reqwest::Method::POST,
            "/mappings",
            Some(&json!({
                "matcher": {"type": "display_name", "display_name": "Everyone"},
                "grant": {"type": "sub_account_role", "sub_account": {"one": sa["id"]}, "role": "member"}
            })),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, g) = c
        .send(
            reqwest::Method::POST,
            "/Groups",
            Some(
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                         "displayName": "Everyone"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let gid: Arc<str> = g["id"].as_str().unwrap().into();

    // Users: the group's steady members, then a pool that each phase adds or removes.
    let total = largest + pool;
    let start = Instant::now();
    let cc = c.clone();
    let ids = Arc::new(std::sync::Mutex::new(vec![
        (String::new(), String::new());
        total
    ]));
    let out = ids.clone();
    drive(total, concurrency, move |i| {
        let (c, out) = (cc.clone(), out.clone());
        async move {
            let name = format!("member{i}@example.com");
            let (s, b) = c
                .send(
                    reqwest::Method::POST,
                    "/Users",
                    Some(
                        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                 "userName": name, "active": true}),
                    ),
                )
                .await;
            assert_eq!(s, 201, "{b}");
            out.lock().unwrap()[i] = (b["id"].as_str().unwrap().to_string(), name);
        }
    })
    .await;
    println!("created {total} users in {:.1?}", start.elapsed());
    let ids: Arc<Vec<(String, String)>> = Arc::new(ids.lock().unwrap().clone());
    let (steady, extra) = ids.split_at(largest);
    let extra: Arc<Vec<(String, String)>> = Arc::new(extra.to_vec());

    println!(
        "{:>7} | {:<34} | {:>10} | {:>14} | {:>14} |",
        "members", "request", "rate", "", ""
    );
    let mut filled = 0;
    for size in sizes {
        // Grow the steady part to `size`, 1,000 per request (not measured).
        for chunk in steady[filled..size].chunks(1_000) {
            let value: Vec<Value> = chunk.iter().map(|(id, _)| json!({"value": id})).collect();
            c.patch_group(
                &gid,
                json!([{"op": "add", "path": "members", "value": value}]),
            )
            .await;
        }
        filled = size;
        // PostgreSQL plans with the statistics autovacuum refreshes some time after a bulk load;
        // fresh ones are what a running system has.
        if backend == "PostgreSQL" {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
        }
        let patches = pool / 100;

        // Okta: add 100 members per PATCH, each with its display.
        let (cc, ex, g) = (c.clone(), extra.clone(), gid.clone());
        let (rate, lat) = drive(patches, concurrency, move |i| {
            let (c, ex, g) = (cc.clone(), ex.clone(), g.clone());
            async move {
                let value: Vec<Value> = ex[i * 100..(i + 1) * 100]
                    .iter()
                    .map(|(id, name)| json!({"value": id, "display": name}))
                    .collect();
                c.patch_group(
                    &g,
                    json!([{"op": "add", "path": "members", "value": value}]),
                )
                .await;
            }
        })
        .await;
        report(size, "Okta add 100 members", rate, &lat);

        // Okta: remove one member per PATCH, by filter.
        let (cc, ex, g) = (c.clone(), extra.clone(), gid.clone());
        let (rate, lat) = drive(pool, concurrency, move |i| {
            let (c, ex, g) = (cc.clone(), ex.clone(), g.clone());
            async move {
                let path = format!("members[value eq \"{}\"]", ex[i].0);
                c.patch_group(&g, json!([{"op": "remove", "path": path}]))
                    .await;
            }
        })
        .await;
        report(size, "Okta remove 1 member (filter)", rate, &lat);

        // Entra: add 100 members per PATCH, ids only.
        let (cc, ex, g) = (c.clone(), extra.clone(), gid.clone());
        let (rate, lat) = drive(patches, concurrency, move |i| {
            let (c, ex, g) = (cc.clone(), ex.clone(), g.clone());
            async move {
                let value: Vec<Value> = ex[i * 100..(i + 1) * 100]
                    .iter()
                    .map(|(id, _)| json!({"value": id}))
                    .collect();
                c.patch_group(
                    &g,
                    json!([{"op": "Add", "path": "members", "value": value}]),
                )
                .await;
            }
        })
        .await;
        report(size, "Entra add 100 members", rate, &lat);

        // Entra: remove one member per PATCH, by value.
        let (cc, ex, g) = (c.clone(), extra.clone(), gid.clone());
        let (rate, lat) = drive(pool, concurrency, move |i| {
            let (c, ex, g) = (cc.clone(), ex.clone(), g.clone());
            async move {
                c.patch_group(
                    &g,
                    json!([{"op": "Remove", "path": "members", "value": [{"value": ex[i].0}]}]),
                )
                .await;
            }
        })
        .await;
        report(size, "Entra remove 1 member (value)", rate, &lat);
    }
    // What was stored: the steady members only, every pool member gone again.
    let (s, g) = c
        .send(
            reqwest::Method::GET,
            &format!("/Groups/{gid}?attributes=members"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let n = g["members"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(n, filled, "members after the run");
}
