//! Recomputation of access, printed, never asserted: what provisioning costs inside SCIM writes,
//! a 100-member PATCH into a mapped group of 100,000, and a rule change that reaches 10,000 users.
//! Real router, real database (a temp SQLite file, or PostgreSQL with IDBRIDGE_BENCH_POSTGRES_URL).
//!
//!     cargo bench --bench access               # defaults: 100,000-member group, 10,000-user rule
//!     IDBRIDGE_BENCH_GROUP=20000 IDBRIDGE_BENCH_RULE_USERS=5000 cargo bench --bench access

// Test and benchmark code: a failed step should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use idbridge::service::setup;
use std::sync::Arc;
use std::time::Instant;

use common::{Bench, env_usize, rss_mb, throughput, user_ids};
use idbridge::app::AppState;
use idbridge::store::admin::OrgScope;
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

fn add(ids: &[String]) -> Value {
    let value: Vec<Value> = ids.iter().map(|id| json!({ "value": id })).collect();
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "add", "path": "members", "value": value }] })
}

/// Adds `ids` to a mapped group of `size` members in one PATCH, then removes them one op each.
async fn member_changes(scim: &Bench, group: &str, ids: &[String], size: usize, note: &str) {
    let start = Instant::now();
    let (s, _) = scim
        .call(
            "PATCH",
            &format!("/Groups/{group}?excludedAttributes=members"),
            Some(add(ids)),
        )
        .await;
    assert_eq!(s, 200);
    println!(
        "add {} members to a mapped {size}-member group{note}: {:.2?}",
        ids.len(),
        start.elapsed()
    );
    let ops: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "op": "remove", "path": format!("members[value eq \"{id}\"]") }))
        .collect();
    let start = Instant::now();
    let (s, _) = scim
        .call(
            "PATCH",
            &format!("/Groups/{group}?excludedAttributes=members"),
            Some(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops })),
        )
        .await;
    assert_eq!(s, 200);
    println!(
        "remove them again (Okta style, one op each){note}: {:.2?}",
        start.elapsed()
    );
}

async fn run() {
    let group_size = env_usize("IDBRIDGE_BENCH_GROUP", 100_000);
    let rule_users = env_usize("IDBRIDGE_BENCH_RULE_USERS", 10_000).min(group_size);
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
    let scope = OrgScope::for_org(&org.id, "bench");
    let (d, t) = setup::create_directory(&store, &scope, "bench")
        .await
        .unwrap();
    let admin = setup::create_admin_token(&store, &scope, "org_owner", None, "bench")
        .await
        .unwrap()
        .token;
    let router =
        idbridge::http::router(AppState::new(store.clone(), "http://bench").without_rate_limits());
    let scim = Arc::new(Bench {
        router: router.clone(),
        auth: format!("Bearer {}", t.token),
        base: format!("/scim/v2/{}", d.id),
        content_type: "application/scim+json",
    });
    let api = Bench {
        router,
        auth: format!("Bearer {admin}"),
        base: format!("/api/v1/orgs/{}", org.id),
        content_type: "application/json",
    };
    println!(
        "idbridge access benchmark on {backend}, {concurrency} concurrent clients, 2 worker threads"
    );

    let (s, sa) = api
        .call("POST", "/sub-accounts", Some(json!({ "name": "Main" })))
        .await;
    assert_eq!(s, 201, "{sa}");
    let sa = sa["id"].as_str().unwrap().to_string();
    let (s, body) = api
        .call(
            "POST",
            "/mappings",
            Some(json!({ "matcher": { "type": "display_name", "display_name": "Everyone" },
                         "grant": { "type": "sub_account_role", "sub_account": { "one": sa }, "role": "member" } })),
        )
        .await;
    assert_eq!(s, 201, "{body}");

    // Every create links an organization user, counts a seat and writes an event.
    let s2 = scim.clone();
    let (rate, el) = throughput(group_size, concurrency, move |i| {
        let b = s2.clone();
        async move {
            let (s, body) = b
                .call(
                    "POST",
                    "/Users",
                    Some(
                        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                 "userName": format!("user{i}@example.com"), "active": true }),
                    ),
                )
                .await;
            assert_eq!(s, 201, "{body}");
        }
    })
    .await;
    println!("create user (provisioned):          {rate:>8.0} /s  ({group_size} in {el:.2?})");

    let ids = user_ids(&scim, usize::MAX).await;
    let (_, g) = scim
        .call(
            "POST",
            "/Groups",
            Some(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone" })),
        )
        .await;
    let everyone = g["id"].as_str().unwrap().to_string();
    let (first, held) = ids.split_at(ids.len() - 200);
    let start = Instant::now();
    for chunk in first.chunks(1000) {
        let (s, body) = scim
            .call(
                "PATCH",
                &format!("/Groups/{everyone}?excludedAttributes=members"),
                Some(add(chunk)),
            )
            .await;
        assert_eq!(s, 200, "{body}");
    }
    println!(
        "fill a mapped group:                {:>8.0} members/s, each granted a role ({} in {:.2?})",
        first.len() as f64 / start.elapsed().as_secs_f64(),
        first.len(),
        start.elapsed()
    );
    member_changes(&scim, &everyone, &held[..100], first.len(), "").await;
    // PostgreSQL plans with statistics that autovacuum refreshes some time after a bulk load; the
    // same change again once they are fresh shows what a running system sees.
    if backend == "PostgreSQL" {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
        member_changes(
            &scim,
            &everyone,
            &held[100..],
            first.len(),
            " (after ANALYZE)",
        )
        .await;
    }

    // A rule change that reaches `rule_users` users.
    let (_, g) = scim
        .call(
            "POST",
            "/Groups",
            Some(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ten" })),
        )
        .await;
    let ten = g["id"].as_str().unwrap().to_string();
    for chunk in ids[..rule_users].chunks(1000) {
        let (s, _) = scim
            .call(
                "PATCH",
                &format!("/Groups/{ten}?excludedAttributes=members"),
                Some(add(chunk)),
            )
            .await;
        assert_eq!(s, 200);
    }
    let rule = json!({ "matcher": { "type": "display_name", "display_name": "Ten" },
                       "grant": { "type": "sub_account_role", "sub_account": "all", "role": "admin" } });
    let mut preview = rule.clone();
    preview["op"] = json!("create");
    let start = Instant::now();
    let (s, body) = api.call("POST", "/mappings/preview", Some(preview)).await;
    assert_eq!(s, 200, "{body}");
    let n = body["changes"].as_array().unwrap().len();
    println!(
        "preview a rule reaching {n} users:    {:.2?}",
        start.elapsed()
    );
    let start = Instant::now();
    let (s, body) = api.call("POST", "/mappings", Some(rule)).await;
    assert_eq!(s, 201, "{body}");
    let n = body["changes"].as_array().unwrap().len();
    println!(
        "create a rule reaching {n} users:     {:.2?}",
        start.elapsed()
    );
    let id = body["rule"]["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let (s, body) = api.call("DELETE", &format!("/mappings/{id}"), None).await;
    assert_eq!(s, 200, "{body}");
    println!(
        "delete it again ({} users lose it):  {:.2?}",
        body["changes"].as_array().unwrap().len(),
        start.elapsed()
    );
    println!("peak RSS:                           {:.0} MB", rss_mb());
}
