//! SCIM throughput and scaling figures, printed, never asserted. Runs the real router in-process on
//! a real database (a temp SQLite file, or PostgreSQL when IDBRIDGE_BENCH_POSTGRES_URL is set), so
//! it measures everything but the socket.
//!
//!     cargo bench --bench scim                 # defaults: 20,000 users, 100,000-member group
//!     IDBRIDGE_BENCH_USERS=5000 IDBRIDGE_BENCH_GROUP=20000 cargo bench --bench scim

// Test and benchmark code: a failed step should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use idbridge::service::setup;
use std::sync::Arc;
use std::time::Instant;

use common::{Bench, env_usize, rss_mb, throughput, user_ids};
use idbridge::app::AppState;
use idbridge::store::{Store, StoreOptions};
use serde_json::{Value, json};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let users = env_usize("IDBRIDGE_BENCH_USERS", 20_000);
    let group_size = env_usize("IDBRIDGE_BENCH_GROUP", 100_000);
    let concurrency = env_usize("IDBRIDGE_BENCH_CONCURRENCY", 16);
    let dir = tempfile::tempdir().unwrap();
    let (url, backend) = common::database(&dir);
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let org = setup::create_org(&store, &format!("bench-{}", uuid::Uuid::now_v7()))
        .await
        .unwrap();
    let scope = idbridge::store::admin::OrgScope::for_org(&org.id, "bench");
    let (d, t) = setup::create_directory(&store, &scope, "bench")
        .await
        .unwrap();
    let bench = Arc::new(Bench {
        router: idbridge::http::router(
            AppState::new(store.clone(), "http://bench").without_rate_limits(),
        ),
        auth: format!("Bearer {}", t.token),
        base: format!("/scim/v2/{}", d.id),
        content_type: "application/scim+json",
    });
    println!(
        "idbridge SCIM benchmark on {backend}, {concurrency} concurrent clients, 2 worker threads"
    );

    // Creates, as an IdP's initial push sends them.
    let b = bench.clone();
    let (rate, el) = throughput(users, concurrency, move |i| {
        let b = b.clone();
        async move {
            let (s, body) = b
                .call("POST", "/Users", Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                    "userName": format!("user{i}@example.com"), "externalId": format!("ext-{i}"),
                    "name": {"givenName": "Given", "familyName": format!("Family{i}")},
                    "emails": [{"value": format!("user{i}@example.com"), "type": "work", "primary": true}],
                    "active": true,
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "employeeNumber": i.to_string()}
                })))
                .await;
            assert_eq!(s, 201, "{body}");
        }
    })
    .await;
    println!("create user:           {rate:>9.0} /s  ({users} in {el:.2?})");

    // Lookups, as an IdP's filter-before-create sends them.
    let b = bench.clone();
    let n = users.min(20_000);
    let (rate, el) = throughput(n, concurrency, move |i| {
        let b = b.clone();
        async move {
            let f = format!("userName eq \"user{}@example.com\"", (i * 7919) % users);
            let q: String = url::form_urlencoded::byte_serialize(f.as_bytes()).collect();
            let (s, body) = b.call("GET", &format!("/Users?filter={q}"), None).await;
            assert_eq!(s, 200);
            assert_eq!(body["totalResults"], 1);
        }
    })
    .await;
    println!("filter userName eq:    {rate:>9.0} /s  ({n} in {el:.2?})");

    let b = bench.clone();
    let (rate, el) = throughput(n, concurrency, move |i| {
        let b = b.clone();
        async move {
            let f = format!("externalId eq \"ext-{}\"", (i * 104729) % users);
            let q: String = url::form_urlencoded::byte_serialize(f.as_bytes()).collect();
            let (s, _) = b
                .call(
                    "GET",
                    &format!("/Users?filter={q}&excludedAttributes=groups"),
                    None,
                )
                .await;
            assert_eq!(s, 200);
        }
    })
    .await;
    println!("filter externalId eq:  {rate:>9.0} /s  ({n} in {el:.2?})");

    // A big group: members are added in batches of 1,000 (what IdPs send is smaller), then the cost
    // of a 100-member change is measured at that size.
    let (_, all) = bench
        .call("GET", "/Users?count=1&attributes=id", None)
        .await;
    let total = all["totalResults"].as_u64().unwrap() as usize;
    let mut member_ids = user_ids(&bench, total.min(group_size)).await;
    // Fill up to the group size with more users if the create phase made fewer.
    let extra = group_size.saturating_sub(member_ids.len());
    if extra > 0 {
        let b = bench.clone();
        let base = users;
        let (rate, el) = throughput(extra, concurrency, move |i| {
            let b = b.clone();
            async move {
                let (s, _) = b
                    .call(
                        "POST",
                        "/Users",
                        Some(
                            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("member{}@example.com", base + i)}),
                        ),
                    )
                    .await;
                assert_eq!(s, 201);
            }
        })
        .await;
        println!("create user (minimal): {rate:>9.0} /s  ({extra} in {el:.2?})");
        member_ids = user_ids(&bench, usize::MAX).await;
    }
    let (_, g) = bench
        .call("POST", "/Groups", Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"})))
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let held_back = 100.min(member_ids.len());
    let (first, last) = member_ids.split_at(member_ids.len() - held_back);
    let start = Instant::now();
    for chunk in first.chunks(1000) {
        let value: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        let (s, _) = bench
            .call(
                "PATCH",
                &format!("/Groups/{gid}?excludedAttributes=members"),
                Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": value}]})),
            )
            .await;
        assert_eq!(s, 200);
    }
    println!(
        "fill group:            {:>9.0} members/s ({} members in {:.2?})",
        first.len() as f64 / start.elapsed().as_secs_f64(),
        first.len(),
        start.elapsed()
    );

    let value: Vec<Value> = last.iter().map(|id| json!({"value": id})).collect();
    let start = Instant::now();
    let (s, _) = bench
        .call(
            "PATCH",
            &format!("/Groups/{gid}?excludedAttributes=members"),
            Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": value}]})),
        )
        .await;
    assert_eq!(s, 200);
    println!(
        "add 100 members to a {}-member group:    {:.2?}",
        first.len(),
        start.elapsed()
    );
    let start = Instant::now();
    let ops: Vec<Value> = last
        .iter()
        .map(|id| json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}))
        .collect();
    let (s, _) = bench
        .call(
            "PATCH",
            &format!("/Groups/{gid}?excludedAttributes=members"),
            Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})),
        )
        .await;
    assert_eq!(s, 200);
    println!(
        "remove 100 members from a {}-member group: {:.2?}",
        member_ids.len(),
        start.elapsed()
    );

    let start = Instant::now();
    let (s, _) = bench
        .call(
            "GET",
            &format!("/Groups/{gid}?excludedAttributes=members"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    println!(
        "GET group without members:              {:.2?}",
        start.elapsed()
    );
    let start = Instant::now();
    let (s, body) = bench.call("GET", &format!("/Groups/{gid}"), None).await;
    assert_eq!(s, 200);
    println!(
        "GET group with {} members:          {:.2?}",
        body["members"].as_array().map_or(0, |m| m.len()),
        start.elapsed()
    );
    println!("peak RSS:                              {:.0} MB", rss_mb());
}
