//! What both benchmarks share: an in-process client of the real router, a concurrent driver, and
//! the figures they print.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub struct Bench {
    pub router: Router,
    pub auth: String,
    pub base: String,
    pub content_type: &'static str,
}

impl Bench {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        let req = match body {
            Some(b) => {
                req = req.header("content-type", self.content_type);
                req.body(Body::from(b.to_string())).unwrap()
            }
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// Up to `limit` user ids, walked with RFC 9865 cursors as a large client would.
pub async fn user_ids(bench: &Bench, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    while ids.len() < limit {
        let (_, page) = bench
            .call(
                "GET",
                &format!("/Users?count=1000&attributes=id&cursor={cursor}"),
                None,
            )
            .await;
        for r in page["Resources"].as_array().unwrap() {
            ids.push(r["id"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    ids.truncate(limit);
    ids
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Runs `n` calls of `f` on `concurrency` tasks and returns calls per second.
pub async fn throughput<F, Fut>(n: usize, concurrency: usize, f: F) -> (f64, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let f = f.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let el = start.elapsed();
    (n as f64 / el.as_secs_f64(), el)
}

/// The benchmark's database: PostgreSQL at `IDBRIDGE_BENCH_POSTGRES_URL`, else a SQLite file in
/// `dir`; and the backend's name for the figures.
pub fn database(dir: &tempfile::TempDir) -> (String, &'static str) {
    match std::env::var("IDBRIDGE_BENCH_POSTGRES_URL") {
        Ok(url) => (url, "PostgreSQL"),
        Err(_) => (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            "SQLite",
        ),
    }
}
