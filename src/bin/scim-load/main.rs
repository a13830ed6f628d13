//! `scim-load`: drives a running SCIM 2.0 server over HTTP with the requests Okta and Entra send,
//! phase by phase (create, read, look up, change, list, group membership, deactivate, delete),
//! checks that the server stored what it acknowledged, and prints per phase the rate, p50/p99
//! latency, errors and the server's resident memory. It knows nothing of idbridge beyond SCIM
//! (RFC 7644), so the same run can be pointed at any SCIM server to compare.
//!
//!     cargo run --release --bin scim-load -- --base http://127.0.0.1:8080/scim/v2/DIR --token T \
//!         --users 20000 --group-size 10000 --concurrency 16 --server-pid PID

mod dialect;
mod drive;

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use dialect::Dialect;
use drive::Outcome;
use reqwest::Method;
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(
    name = "scim-load",
    about = "Load a SCIM 2.0 server with the requests Okta and Entra send, verify what it stored, print figures"
)]
struct Args {
    /// The SCIM base URL (the one an IdP is given), e.g. http://127.0.0.1:8080/scim/v2/{directory}
    #[arg(long, env = "SCIM_LOAD_BASE")]
    base: String,
    /// The bearer token the IdP would use.
    #[arg(long, env = "SCIM_LOAD_TOKEN", hide_env_values = true)]
    token: String,
    /// Users created (and, at the end, deleted).
    #[arg(long, default_value_t = 20_000)]
    users: usize,
    /// Members of the one large group, added 100 per PATCH (at most --users).
    #[arg(long, default_value_t = 10_000)]
    group_size: usize,
    /// Small groups, each filled in one PATCH.
    #[arg(long, default_value_t = 9)]
    small_groups: usize,
    #[arg(long, default_value_t = 25)]
    small_group_size: usize,
    /// Single-member removals from the large group (at most --group-size).
    #[arg(long, default_value_t = 2_000)]
    removals: usize,
    /// Concurrent clients (an IdP's sync workers).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Whose requests: Okta's or Entra's.
    #[arg(long, value_enum, default_value = "okta")]
    dialect: Dialect,
    /// Orders the reads and names the run's users, so two runs with one seed send the same load.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The server's process id: its resident memory (now and peak) is printed after each phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A trivial endpoint of the server, measured first as this client's own ceiling
    /// (default: {base}/ServiceProviderConfig).
    #[arg(long)]
    ceiling_url: Option<String>,
    /// Leave the users and groups in place instead of deactivating and deleting them.
    #[arg(long)]
    keep: bool,
}

/// Requests the server answered 429 and that were sent again after its Retry-After.
static THROTTLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A SCIM client with the IdP's token.
struct Scim {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Scim {
    /// Sends one request and returns the body when the status is one of `ok`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Vec<u8>, String> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let resp = loop {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("authorization", &self.auth)
                .header("accept", "application/scim+json");
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/scim+json")
                    .body(b.to_string());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("{method} {path}: {e}"))?;
            if resp.status().as_u16() != 429 {
                break resp;
            }
            // As Okta and Entra do: a rate-limited request is sent again after Retry-After.
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 60);
            THROTTLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        };
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        if ok.contains(&status) {
            Ok(bytes.to_vec())
        } else {
            let text = String::from_utf8_lossy(&bytes);
            let text: String = text.chars().take(300).collect();
            Err(format!("{method} {path}: {status} {text}"))
        }
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Value, String> {
        let body = self.call(method.clone(), path, body, ok).await?;
        serde_json::from_slice(&body).map_err(|e| format!("{method} {path}: not JSON: {e}"))
    }
}

/// The shared state of a run: the users and groups it made.
struct Run {
    scim: Scim,
    dialect: Dialect,
    prefix: String,
    user_ids: Vec<OnceLock<String>>,
}

impl Run {
    fn user_name(&self, i: usize) -> String {
        format!("{}.{i}@load.test", self.prefix)
    }

    fn user_id(&self, i: usize) -> Result<&str, String> {
        self.user_ids[i]
            .get()
            .map(String::as_str)
            .ok_or_else(|| format!("user {i} was not created"))
    }
}

/// A permutation of `0..n` from the seed (splitmix64 and Fisher-Yates): reads in an order that is
/// not the insertion order, the same in every run with the seed.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// The server's resident memory now and at its peak, in MB, from /proc.
fn server_rss(pid: Option<u32>) -> String {
    let Some(pid) = pid else {
        return String::new();
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return "gone".into();
    };
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(now), Some(peak)) => format!("{} / {}", now / 1024, peak / 1024),
        _ => "?".into(),
    }
}

struct Report {
    pid: Option<u32>,
    failures: Vec<String>,
}

impl Report {
    fn header(&self) {
        println!(
            "{:<44} {:>7} {:>9} {:>9} {:>9} {:>7} {:>14}",
            "phase", "ops", "ops/s", "p50 ms", "p99 ms", "errors", "server RSS MB"
        );
    }

    fn row(&mut self, phase: &str, out: &Outcome) {
        println!(
            "{:<44} {:>7} {:>9.0} {:>9.1} {:>9.1} {:>7} {:>14}",
            phase,
            out.ops,
            out.rate(),
            out.percentile(0.50, None),
            out.percentile(0.99, None),
            out.errors.len(),
            server_rss(self.pid),
        );
        for e in out.errors.iter().take(3) {
            println!("    error: {e}");
        }
        if !out.errors.is_empty() {
            self.failures
                .push(format!("{phase}: {} requests failed", out.errors.len()));
        }
    }

    fn check(&mut self, what: &str, result: Result<(), String>) {
        match result {
            Ok(()) => println!("    verified: {what}"),
            Err(e) => {
                println!("    FAILED: {what}: {e}");
                self.failures.push(format!("{what}: {e}"));
            }
        }
    }
}

fn total_results(list: &Value) -> Result<usize, String> {
    list["totalResults"]
        .as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| format!("no integer totalResults in {list}"))
}

fn members_of(group: &Value) -> HashSet<String> {
    group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match load(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("scim-load: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs every phase; `Ok(false)` when a request failed or a check found the stored state wrong.
async fn load(args: Args) -> Result<bool, String> {
    let users = args.users.max(1);
    let group_size = args.group_size.min(users);
    let removals = args.removals.min(group_size);
    let small = args.small_group_size.min(users);
    let concurrency = args.concurrency.max(1);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let run = Arc::new(Run {
        scim: Scim {
            http,
            base: args.base.trim_end_matches('/').to_string(),
            auth: format!("Bearer {}", args.token),
        },
        dialect: args.dialect,
        prefix: format!("load{}-{stamp}", args.seed),
        user_ids: (0..users).map(|_| OnceLock::new()).collect(),
    });
    let order = Arc::new(shuffled(users, args.seed));
    let mut report = Report {
        pid: args.server_pid,
        failures: Vec::new(),
    };

    println!(
        "scim-load: {:?} requests, {users} users, a group of {group_size} and {} of {small}, \
         {removals} removals, {concurrency} clients, seed {}, against {}",
        args.dialect, args.small_groups, args.seed, run.scim.base
    );
    let before = run
        .scim
        .json(Method::GET, "/Users?startIndex=1&count=1", None, &[200])
        .await
        .and_then(|l| total_results(&l))
        .map_err(|e| format!("the server does not answer a SCIM list: {e}"))?;
    println!("server RSS MB is now / peak; {before} users were there before the run");
    report.header();

    // The client's own ceiling: if a phase comes close to it, the client is what was measured.
    let ceiling = args
        .ceiling_url
        .clone()
        .unwrap_or_else(|| format!("{}/ServiceProviderConfig", run.scim.base));
    let r = run.clone();
    let url = Arc::new(ceiling.clone());
    let out = drive::run(users.min(10_000), concurrency, move |_| {
        let (r, url) = (r.clone(), url.clone());
        async move { r.scim.call(Method::GET, &url, None, &[200]).await.map(drop) }
    })
    .await;
    report.row("ceiling: GET a trivial endpoint", &out);

    let r = run.clone();
    let out = drive::run(users, concurrency, move |i| {
        let r = r.clone();
        async move {
            let body = r
                .dialect
                .create_user(&r.user_name(i), &format!("ext-{}-{i}", r.prefix), i);
            let created = r
                .scim
                .json(Method::POST, "/Users", Some(&body), &[201])
                .await?;
            let id = created["id"]
                .as_str()
                .ok_or_else(|| format!("POST /Users answered no id: {created}"))?;
            let _ = r.user_ids[i].set(id.to_string());
            Ok(())
        }
    })
    .await;
    report.row("create user (enterprise extension)", &out);

    let out = each_user(&run, &order, concurrency, |r, i, id| async move {
        let got = r
            .scim
            .json(Method::GET, &format!("/Users/{id}"), None, &[200])
            .await?;
        if got["userName"].as_str() != Some(r.user_name(i).as_str()) {
            return Err(format!("GET /Users/{id} answered another user: {got}"));
        }
        Ok(())
    })
    .await;
    report.row("GET user by id", &out);

    let out = each_user(&run, &order, concurrency, |r, i, id| async move {
        let path = r.dialect.lookup_query(&r.user_name(i));
        let list = r.scim.json(Method::GET, &path, None, &[200]).await?;
        if total_results(&list)? != 1 || list["Resources"][0]["id"].as_str() != Some(id.as_str()) {
            return Err(format!("{path} did not find exactly the user: {list}"));
        }
        Ok(())
    })
    .await;
    report.row("filter=userName eq", &out);

    let out = each_user(&run, &order, concurrency, |r, i, id| async move {
        let body = r.dialect.patch_user(i, 1);
        patch(&r, &format!("/Users/{id}"), &body).await
    })
    .await;
    report.row("PATCH user (replace name)", &out);

    let out = each_user(&run, &order, concurrency, |r, i, id| async move {
        let mut body = r
            .dialect
            .create_user(&r.user_name(i), &format!("ext-{}-{i}", r.prefix), i);
        body["id"] = Value::String(id.to_string());
        body["name"]["familyName"] = Value::String(format!("User{i}put"));
        r.scim
            .call(Method::PUT, &format!("/Users/{id}"), Some(&body), &[200])
            .await
            .map(drop)
    })
    .await;
    report.row("PUT user", &out);
    let sample: Vec<usize> = order.iter().copied().take(100).collect();
    let put_ok = read_back(&run, &sample, |i, got| {
        (got["name"]["familyName"].as_str() != Some(format!("User{i}put").as_str()))
            .then(|| got["name"].to_string())
    })
    .await?;
    report.check(
        &format!(
            "{} users read back with the name the PUT wrote",
            sample.len()
        ),
        put_ok,
    );

    list_phase(&run, &mut report, before + users, concurrency).await?;

    // Groups: the small ones are created and filled as an IdP does on its first push.
    let r = run.clone();
    let n_groups = args.small_groups + 1;
    let group_ids: Arc<Vec<OnceLock<String>>> =
        Arc::new((0..n_groups).map(|_| OnceLock::new()).collect());
    let g = group_ids.clone();
    let out = drive::run(n_groups, concurrency, move |k| {
        let (r, g) = (r.clone(), g.clone());
        async move {
            let name = format!("{} group {k}", r.prefix);
            let created = r
                .scim
                .json(
                    Method::POST,
                    "/Groups",
                    Some(&r.dialect.create_group(&name)),
                    &[201],
                )
                .await?;
            let id = created["id"]
                .as_str()
                .ok_or_else(|| format!("POST /Groups answered no id: {created}"))?
                .to_string();
            if k > 0 {
                let members: Vec<(String, String)> = (0..small)
                    .map(|j| (k * 7919 + j) % users)
                    .map(|u| Ok((r.user_id(u)?.to_string(), r.user_name(u))))
                    .collect::<Result<_, String>>()?;
                let body = r.dialect.add_members(&members);
                r.scim
                    .call(
                        Method::PATCH,
                        &format!("/Groups/{id}"),
                        Some(&body),
                        &[200, 204],
                    )
                    .await?;
            }
            let _ = g[k].set(id);
            Ok(())
        }
    })
    .await;
    report.row("create group (small ones filled)", &out);
    let big = group_ids[0]
        .get()
        .cloned()
        .ok_or("the large group was not created")?;
    let big = Arc::new(big);

    let batches = group_size.div_ceil(100);
    let (r, b) = (run.clone(), big.clone());
    let out = drive::run(batches, concurrency, move |k| {
        let (r, b) = (r.clone(), b.clone());
        async move {
            let members: Vec<(String, String)> = (k * 100..((k + 1) * 100).min(group_size))
                .map(|u| Ok((r.user_id(u)?.to_string(), r.user_name(u))))
                .collect::<Result<_, String>>()?;
            let body = r.dialect.add_members(&members);
            patch(&r, &format!("/Groups/{b}"), &body).await
        }
    })
    .await;
    report.row(&format!("add 100 members per PATCH, to {group_size}"), &out);

    let expected: HashSet<String> = (0..group_size)
        .map(|u| run.user_id(u).map(str::to_string))
        .collect::<Result<_, String>>()?;
    let t = Instant::now();
    let got = run
        .scim
        .call(Method::GET, &format!("/Groups/{big}"), None, &[200])
        .await?;
    let took = t.elapsed();
    let size = got.len();
    let group: Value =
        serde_json::from_slice(&got).map_err(|e| format!("GET /Groups/{big}: {e}"))?;
    println!(
        "{:<44} {:>7} {:>9} {:>9.1} {:>9} {:>7} {:>14}",
        format!("GET the group with its members ({} KB)", size / 1024),
        1,
        "",
        took.as_secs_f64() * 1000.0,
        "",
        0,
        server_rss(report.pid)
    );
    let members = members_of(&group);
    report.check(
        &format!("the group has the {group_size} members added"),
        if members == expected {
            Ok(())
        } else {
            Err(format!(
                "{} members, {} of them expected",
                members.len(),
                members.intersection(&expected).count()
            ))
        },
    );

    let (r, b) = (run.clone(), big.clone());
    let out = drive::run(removals, concurrency, move |k| {
        let (r, b) = (r.clone(), b.clone());
        async move {
            let body = r.dialect.remove_member(r.user_id(k)?);
            patch(&r, &format!("/Groups/{b}"), &body).await
        }
    })
    .await;
    report.row(&format!("remove one member (group of {group_size})"), &out);
    let group = run
        .scim
        .json(Method::GET, &format!("/Groups/{big}"), None, &[200])
        .await?;
    let left = members_of(&group);
    let removed: HashSet<String> = (0..removals)
        .map(|u| run.user_id(u).map(str::to_string))
        .collect::<Result<_, String>>()?;
    report.check(
        &format!("the {removals} removed members are gone and the others stayed"),
        if left == expected.difference(&removed).cloned().collect() {
            Ok(())
        } else {
            Err(format!(
                "{} members left, {} expected",
                left.len(),
                group_size - removals
            ))
        },
    );

    if args.keep {
        println!("--keep: users and groups left in place");
        return Ok(summary(&report));
    }

    let out = each_user(&run, &order, concurrency, |r, _, id| async move {
        let body = r.dialect.deactivate();
        patch(&r, &format!("/Users/{id}"), &body).await
    })
    .await;
    report.row("deactivate (active false)", &out);
    let inactive = read_back(&run, &sample, |_, got| {
        (got["active"] != Value::Bool(false)).then(|| "still active".to_string())
    })
    .await?;
    report.check(
        &format!("{} users read back inactive", sample.len()),
        inactive,
    );

    let out = each_user(&run, &order, concurrency, |r, _, id| async move {
        r.scim
            .call(Method::DELETE, &format!("/Users/{id}"), None, &[204])
            .await
            .map(drop)
    })
    .await;
    report.row("DELETE user", &out);
    for id in group_ids.iter().filter_map(OnceLock::get) {
        run.scim
            .call(Method::DELETE, &format!("/Groups/{id}"), None, &[204])
            .await?;
    }
    let after = run
        .scim
        .json(Method::GET, "/Users?startIndex=1&count=1", None, &[200])
        .await
        .and_then(|l| total_results(&l))?;
    let mut found = Vec::new();
    for &i in sample.iter().take(20) {
        let id = run.user_id(i)?;
        if run
            .scim
            .call(Method::GET, &format!("/Users/{id}"), None, &[404])
            .await
            .is_err()
        {
            found.push(id.to_string());
        }
    }
    report.check(
        "every user deleted (404, and the count is back where it was)",
        if after == before && found.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{after} users listed (was {before}); still readable: {found:?}"
            ))
        },
    );
    Ok(summary(&report))
}

/// PATCH as the IdPs send it: either answer (RFC 7644 §3.5.2) is a success.
async fn patch(run: &Run, path: &str, body: &Value) -> Result<(), String> {
    run.scim
        .call(Method::PATCH, path, Some(body), &[200, 204])
        .await
        .map(drop)
}

/// Runs `f(run, i, id)` for every user of the run, in the seed's order.
async fn each_user<F, Fut>(
    run: &Arc<Run>,
    order: &Arc<Vec<usize>>,
    concurrency: usize,
    f: F,
) -> Outcome
where
    F: Fn(Arc<Run>, usize, String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let (r, o) = (run.clone(), order.clone());
    drive::run(o.len(), concurrency, move |k| {
        let i = o[k];
        let started = r.user_id(i).map(|id| f(r.clone(), i, id.to_string()));
        async move { started?.await }
    })
    .await
}

/// Reads back `sample` users; `Err` lists those `wrong` finds fault with.
async fn read_back(
    run: &Run,
    sample: &[usize],
    wrong: impl Fn(usize, &Value) -> Option<String>,
) -> Result<Result<(), String>, String> {
    let mut bad = Vec::new();
    for &i in sample {
        let id = run.user_id(i)?;
        let got = run
            .scim
            .json(Method::GET, &format!("/Users/{id}"), None, &[200])
            .await?;
        if let Some(why) = wrong(i, &got) {
            bad.push(format!("{id}: {why}"));
        }
    }
    Ok(if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("; "))
    })
}

/// Walks the whole list 100 at a time by `startIndex`, as an import does, each client paging
/// through its own stretch of the list in order, and compares the first pages' latency with the
/// last ones' (an offset scan shows as a last page slower than the first).
async fn list_phase(
    run: &Arc<Run>,
    report: &mut Report,
    total: usize,
    concurrency: usize,
) -> Result<(), String> {
    let pages = total.div_ceil(100);
    let seen: Arc<Vec<OnceLock<Vec<String>>>> =
        Arc::new((0..pages).map(|_| OnceLock::new()).collect());
    let (r, s) = (run.clone(), seen.clone());
    let out = drive::run_in_stretches(pages, concurrency, move |p| {
        let (r, s) = (r.clone(), s.clone());
        async move {
            let path = format!("/Users?startIndex={}&count=100", p * 100 + 1);
            let list = r.scim.json(Method::GET, &path, None, &[200]).await?;
            let ids = list["Resources"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u["id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let _ = s[p].set(ids);
            Ok(())
        }
    })
    .await;
    report.row("list, 100 per page", &out);
    let tenth = (pages / 10).max(1);
    println!(
        "    first {tenth} pages p50 {:.1} ms, last {tenth} pages p50 {:.1} ms",
        out.percentile(0.5, Some(0..tenth)),
        out.percentile(0.5, Some(pages.saturating_sub(tenth)..pages)),
    );
    let listed: HashSet<&String> = seen.iter().filter_map(OnceLock::get).flatten().collect();
    let missing = run
        .user_ids
        .iter()
        .filter_map(OnceLock::get)
        .filter(|id| !listed.contains(id))
        .count();
    report.check(
        "every user appears once in the pages",
        if missing == 0 && listed.len() == total {
            Ok(())
        } else {
            Err(format!(
                "{missing} of the run's users missing, {} distinct ids for {total} users",
                listed.len()
            ))
        },
    );
    Ok(())
}

fn summary(report: &Report) -> bool {
    let throttled = THROTTLED.load(std::sync::atomic::Ordering::Relaxed);
    if throttled > 0 {
        // The figures above include those waits: the server's rate limit, not its speed.
        println!(
            "scim-load: {throttled} request(s) answered 429 and sent again after Retry-After; \
             to measure the server rather than its rate limit, run it with IDBRIDGE_RATE_SCIM=0"
        );
    }
    if report.failures.is_empty() {
        println!("scim-load: every request answered as expected and every check passed");
        true
    } else {
        println!("scim-load: {} problem(s):", report.failures.len());
        for f in &report.failures {
            println!("  {f}");
        }
        false
    }
}
