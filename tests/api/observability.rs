//! What an operator sees: request ids, the one log line a request writes (read from the real
//! binary's stderr, a pipe as under a supervisor), and the series `/metrics` offers.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, enc, oidc_sign_in};

// ---- request ids ------------------------------------------------------------------------------

async fn request_id(app: &TestApp, path: &str, given: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().uri(path);
    if let Some(id) = given {
        req = req.header("x-request-id", id);
    }
    let r = app.send_raw(req.body(Body::empty()).unwrap()).await;
    let id = r.header("x-request-id").expect("x-request-id").to_string();
    (r.status, id)
}

fn is_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

#[tokio::test]
async fn every_response_carries_the_callers_request_id_or_a_new_one() {
    let app = TestApp::new().await;
    let (status, id) = request_id(&app, "/healthz", Some("lb-7f3a.42")).await;
    assert_eq!((status, id.as_str()), (StatusCode::OK, "lb-7f3a.42"));
    // Refused, unmatched and method-not-allowed answers carry it too.
    for (path, expected) in [
        ("/scim/v2/nope/Users", StatusCode::UNAUTHORIZED),
        ("/no/such/route", StatusCode::NOT_FOUND),
        ("/oauth/token", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let (status, id) = request_id(&app, path, Some("abc")).await;
        assert_eq!((status, id.as_str()), (expected, "abc"), "{path}");
        let (_, minted) = request_id(&app, path, None).await;
        assert!(is_uuid(&minted), "{path}: {minted}");
    }
    let too_long = "x".repeat(129);
    for invalid in ["has space", too_long.as_str(), "caf\u{e9}"] {
        let given = axum::http::HeaderValue::from_bytes(invalid.as_bytes()).unwrap();
        let req = Request::builder()
            .uri("/healthz")
            .header("x-request-id", given)
            .body(Body::empty())
            .unwrap();
        let minted = app.send_raw(req).await;
        let minted = minted.header("x-request-id").unwrap();
        assert!(
            is_uuid(minted) && minted != invalid,
            "{invalid:?} -> {minted}"
        );
    }
    let (_, a) = request_id(&app, "/healthz", None).await;
    let (_, b) = request_id(&app, "/healthz", None).await;
    assert_ne!(a, b);
    assert!(request_id(&app, "/healthz", Some(&"y".repeat(128))).await.1 == "y".repeat(128));
}

// ---- the request line, from the binary --------------------------------------------------------

fn idbridge(db: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .args(args)
        .env("IDBRIDGE_DATABASE_URL", db)
        .env_remove("IDBRIDGE_LOG_FORMAT")
        .output()
        .expect("run idbridge");
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// `idbridge serve` on a free port with stdout and stderr as pipes; stderr is read as it comes,
/// so a chatty server never blocks on a full pipe.
struct Server {
    child: Child,
    addr: String,
    stderr: std::thread::JoinHandle<String>,
}

fn serve(db: &str, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .arg("serve")
        .env("IDBRIDGE_DATABASE_URL", db)
        .env("IDBRIDGE_LISTEN", "127.0.0.1:0")
        .env_remove("IDBRIDGE_PUBLIC_URL")
        .env_remove("IDBRIDGE_LOG")
        .env_remove("RUST_LOG")
        .env_remove("IDBRIDGE_LOG_FORMAT")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let first = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .expect("serve printed a line")
        .unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address in the first line")
        .to_string();
    Server {
        child,
        addr,
        stderr,
    }
}

impl Server {
    /// Stops the server as a supervisor would and returns everything it logged.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        self.child.wait().unwrap();
        self.stderr.join().unwrap()
    }
}

/// A raw HTTP/1.1 GET with these headers; returns the status line.
fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let response = http_send(addr, "GET", path, headers, None);
    response.lines().next().unwrap_or_default().to_string()
}

/// A raw HTTP/1.1 request with these headers and a JSON body; returns the whole response.
fn http_send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        req.push_str("content-type: application/scim+json\r\n");
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf
}

/// A SQLite database in `dir` that `idbridge migrate` made (these tests read a served binary's
/// stderr, whatever backend the suite runs on).
fn migrated_sqlite(dir: &tempfile::TempDir) -> String {
    let db = format!("sqlite://{}", dir.path().join("logs.db").display());
    let migrated = Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .args(["migrate"])
        .env("IDBRIDGE_DATABASE_URL", &db)
        .output()
        .expect("run idbridge");
    assert!(migrated.status.success(), "{migrated:?}");
    db
}

#[test]
fn the_json_request_line_is_flat_and_names_the_route_never_the_query_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_sqlite(&dir);
    idbridge(&db, &["org", "create", "--name", "Acme", "--json"]);
    let d = idbridge(&db, &["directory", "create", "--org", "Acme", "--json"]);
    let (directory, token) = (d["id"].as_str().unwrap(), d["token"].as_str().unwrap());

    let server = serve(&db, &[("IDBRIDGE_LOG_FORMAT", "json")]);
    let filter = enc("userName eq \"filtered-person@example.com\"");
    let path = format!("/scim/v2/{directory}/Users?filter={filter}&code=an-authorization-code");
    let bearer = format!("Bearer {token}");
    let status = http_get(
        &server.addr,
        &path,
        &[("authorization", &bearer), ("x-request-id", "req-logs-1")],
    );
    assert!(status.contains(" 200 "), "{status}");
    let status = http_get(&server.addr, "/no/such/route?code=elsewhere", &[]);
    assert!(status.contains(" 404 "), "{status}");
    let stderr = server.stop();

    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes in a pipe: {stderr}"
    );
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    for line in &lines {
        for nested in ["fields", "span", "spans"] {
            assert!(line.get(nested).is_none(), "flat: {line}");
        }
        assert!(
            line["level"].is_string() && line["timestamp"].is_string(),
            "{line}"
        );
    }
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    let scim = requests
        .iter()
        .find(|l| l["request_id"] == "req-logs-1")
        .unwrap_or_else(|| panic!("a request line with the caller's id: {stderr}"));
    assert_eq!(scim["level"], "INFO", "{scim}");
    assert_eq!(scim["method"], "GET", "{scim}");
    assert_eq!(scim["route"], "/scim/v2/{directory}/Users", "{scim}");
    assert_eq!(scim["status"], 200, "{scim}");
    assert!(
        scim["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{scim}"
    );
    let unmatched = requests
        .iter()
        .find(|l| l["status"] == 404)
        .unwrap_or_else(|| panic!("a line for the 404: {stderr}"));
    assert_eq!(unmatched["route"], "unmatched", "{unmatched}");
    assert!(
        unmatched["request_id"].as_str().is_some_and(is_uuid),
        "{unmatched}"
    );
    assert_eq!(requests.len(), 2, "one line a request: {stderr}");

    for secret in [
        token,
        "an-authorization-code",
        "elsewhere",
        "filtered-person",
        "filter=",
        directory,
    ] {
        assert!(!stderr.contains(secret), "{secret:?} logged: {stderr}");
    }
}

/// A line logged inside a SCIM request carries the organization and directory of the spans it
/// runs in (here the warning that the owner was not deprovisioned), so an operator can tell which
/// tenant it is about; and no span, at any level, ever holds the directory's bearer token.
#[test]
fn a_line_logged_while_provisioning_names_its_organization_and_directory_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_sqlite(&dir);
    let create = "org create --name Acme --owner owner@acme.example --json";
    let org = idbridge(&db, &create.split(' ').collect::<Vec<_>>());
    let org_id = org["id"].as_str().unwrap();
    let d = idbridge(&db, &["directory", "create", "--org", "Acme", "--json"]);
    let (directory, token) = (d["id"].as_str().unwrap(), d["token"].as_str().unwrap());

    // Everything idbridge logs, at every level, with the fields of every span an event is in.
    let server = serve(
        &db,
        &[
            ("IDBRIDGE_LOG_FORMAT", "json"),
            ("IDBRIDGE_LOG", "idbridge=trace,info"),
        ],
    );
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let users = format!("/scim/v2/{directory}/Users");
    let created = http_send(
        &server.addr,
        "POST",
        &users,
        &auth,
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "owner@acme.example",
            "active": true,
        })),
    );
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let body = &created[created.find("\r\n\r\n").unwrap() + 4..];
    let scim_id = serde_json::from_str::<Value>(body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = http_send(
        &server.addr,
        "DELETE",
        &format!("{users}/{scim_id}"),
        &auth,
        None,
    );
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let stderr = server.stop();

    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let warning = lines
        .iter()
        .find(|l| l["message"] == "refused to deprovision the organization's owner")
        .unwrap_or_else(|| panic!("the refusal is logged: {stderr}"));
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["org_id"], org_id, "{warning}");
    assert_eq!(warning["directory_id"], directory, "{warning}");
    assert_eq!(warning["resource_id"], scim_id.as_str(), "{warning}");
    assert!(warning["request_id"].is_string(), "{warning}");
    assert!(!stderr.contains(token), "the token logged: {stderr}");
    assert!(
        !stderr.contains("Bearer"),
        "an authorization header logged: {stderr}"
    );
}

#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("text.db").display());
    let server = serve(&db, &[]);
    let status = http_get(&server.addr, "/healthz", &[("x-request-id", "req-text-1")]);
    assert!(status.contains(" 200 "), "{status}");
    let stderr = server.stop();
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    let line = stderr
        .lines()
        .find(|l| l.contains("req-text-1"))
        .unwrap_or_else(|| panic!("a request line: {stderr}"));
    assert!(
        line.contains("INFO") && line.contains("route=\"/healthz\""),
        "{line}"
    );
    assert!(line.contains("status=200"), "{line}");
}

// ---- /metrics -----------------------------------------------------------------------------------

async fn scrape(app: &TestApp) -> String {
    let r = app.send(Method::GET, "/metrics", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body.as_str().expect("text").to_string()
}

/// The value of the sample of `name` with exactly these labels, in any order.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, mut have) = match series.split_once('{') {
            Some((n, rest)) => (
                n,
                rest.trim_end_matches('}')
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            ),
            None => (series, Vec::new()),
        };
        have.sort();
        (n == name && have == want)
            .then(|| value.parse().ok())
            .flatten()
    })
}

#[tokio::test]
async fn every_series_has_help_and_type() {
    let app = TestApp::new().await;
    app.user("described@example.com").await;
    app.get("/Users?count=1").await;
    let text = scrape(&app).await;
    let described = |kind: &str, name: &str| {
        text.lines()
            .any(|l| l.starts_with(&format!("# {kind} {name} ")))
    };
    let mut names = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        // A histogram's samples are named after it with these suffixes.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| described("TYPE", f)))
            .unwrap_or(name);
        assert!(described("HELP", family), "no HELP for {family}:\n{text}");
        assert!(described("TYPE", family), "no TYPE for {family}:\n{text}");
        names.push(family.to_string());
    }
    for expected in [
        "idbridge_http_requests_total",
        "idbridge_http_request_duration_seconds",
        "idbridge_scim_operations_total",
        "process_resident_memory_bytes",
        "idbridge_db_pool_connections",
        "idbridge_webhook_pending_deliveries",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}:\n{text}");
    }
}

#[tokio::test]
async fn process_pool_and_webhook_backlog_series_read_sane_values() {
    let app = TestApp::new().await.reaching_fakes();
    let text = scrape(&app).await;

    let rss = sample(&text, "process_resident_memory_bytes", &[]).unwrap();
    assert!(rss > 1024.0 * 1024.0, "{rss}");
    assert!(sample(&text, "process_open_fds", &[]).unwrap() >= 3.0);
    assert!(sample(&text, "process_cpu_seconds_total", &[]).unwrap() > 0.0);
    let started = sample(&text, "process_start_time_seconds", &[]).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started} vs {now}"
    );

    let pools: &[&str] = match app.store.backend() {
        idbridge::store::Backend::Sqlite => &["writer", "reader"],
        idbridge::store::Backend::Postgres => &["main"],
    };
    for pool in pools {
        let state = |s| {
            sample(
                &text,
                "idbridge_db_pool_connections",
                &[("pool", pool), ("state", s)],
            )
        };
        let (idle, in_use) = (state("idle").unwrap(), state("in_use").unwrap());
        let max = sample(&text, "idbridge_db_pool_max_connections", &[("pool", pool)]).unwrap();
        assert!(
            idle >= 0.0 && in_use >= 0.0 && idle + in_use <= max,
            "{pool}: {text}"
        );
    }
    // The scrape itself read the database: the write pool has had a connection.
    let open = sample(
        &text,
        "idbridge_db_pool_connections",
        &[("pool", pools[0]), ("state", "idle")],
    )
    .unwrap()
        + sample(
            &text,
            "idbridge_db_pool_connections",
            &[("pool", pools[0]), ("state", "in_use")],
        )
        .unwrap();
    assert!(open >= 1.0, "{text}");

    // Nothing pending, then a webhook (no worker runs here) and two events it has not had.
    assert_eq!(
        sample(&text, "idbridge_webhook_pending_deliveries", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "idbridge_webhook_oldest_pending_age_seconds", &[]),
        Some(0.0)
    );
    let owner = app.admin_token("org_owner", None).await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/webhooks"),
            &owner,
            Some(json!({ "url": "http://127.0.0.1:9/hook" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    app.user("pending-1@example.com").await;
    app.user("pending-2@example.com").await;
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, "idbridge_webhook_pending_deliveries", &[]),
        Some(2.0),
        "{text}"
    );
    let age = sample(&text, "idbridge_webhook_oldest_pending_age_seconds", &[]).unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");

    // SQLite's writer: the writes above were committed, never by more commits than writes.
    let writes = sample(&text, "idbridge_sqlite_write_transactions_total", &[]);
    let commits = sample(&text, "idbridge_sqlite_commits_total", &[]);
    match app.store.backend() {
        idbridge::store::Backend::Sqlite => {
            let (writes, commits) = (writes.unwrap(), commits.unwrap());
            assert!(
                writes >= 3.0 && commits >= 1.0 && commits <= writes,
                "{text}"
            );
            assert_eq!(
                sample(&text, "idbridge_sqlite_write_transactions_waiting", &[]),
                Some(0.0)
            );
        }
        idbridge::store::Backend::Postgres => assert_eq!((writes, commits), (None, None)),
    }
}

/// Creates a sign-in connection over the admin API; returns its id.
pub(crate) async fn create_connection(app: &TestApp, admin: &str, input: Value) -> String {
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sso/connections"),
            admin,
            Some(input),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.id()
}

fn sign_ins(text: &str, protocol: &str, outcome: &str) -> f64 {
    sample(
        text,
        "idbridge_sign_ins_total",
        &[("protocol", protocol), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

/// Failures before any user is known: a SAML response that is not one, an OIDC callback for a
/// sign-in nobody started.
#[tokio::test]
async fn failed_sign_ins_are_counted_by_protocol() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let cert = std::fs::read_to_string("fixtures/saml/keys/idp-rsa.crt").unwrap();
    let id = create_connection(
        &app,
        &admin,
        json!({
            "name": "SAML IdP",
            "saml": {
                "idp_entity_id": "urn:test:idp",
                "idp_sso_url": "http://127.0.0.1:9/sso",
                "idp_certificates": [cert],
                "idp_initiated": true
            }
        }),
    )
    .await;
    let acs = format!("/sso/saml/{id}/acs");

    let before = scrape(&app).await;
    let req = Request::builder()
        .method(Method::POST)
        .uri(&acs)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("SAMLResponse={}", enc("bm90IFNBTUw="))))
        .unwrap();
    assert_eq!(app.send_raw(req).await.status, StatusCode::FORBIDDEN);
    let req = Request::builder()
        .uri("/sso/oidc/callback?state=never-started&code=c")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send_raw(req).await.status, StatusCode::FORBIDDEN);
    let after = scrape(&app).await;
    for protocol in ["saml", "oidc"] {
        // Other tests in this process count too: at least one more.
        assert!(
            sign_ins(&after, protocol, "failed") >= sign_ins(&before, protocol, "failed") + 1.0,
            "{protocol}: {after}"
        );
    }
}

/// A verified user is signed in by a JIT connection and refused by one that admits only
/// provisioned users (there is no directory): success and denied, each under `oidc`.
#[tokio::test]
async fn verified_oidc_sign_ins_count_as_success_or_denied() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let idp = crate::harness::OidcIdp::start().await;
    let mut connections = Vec::new();
    for jit in [true, false] {
        let input = json!({
            "name": format!("OIDC jit={jit}"),
            "jit": jit,
            "allow_other_domains": true,
            "oidc": {
                "issuer": idp.issuer,
                "client_id": "idbridge-at-idp",
                "client_secret": "idp-secret"
            }
        });
        connections.push(create_connection(&app, &admin, input).await);
    }

    // Refused first: once the JIT connection has made the user, the other admits them too.
    let before = scrape(&app).await;
    assert_eq!(
        oidc_sign_in(&app, &idp, &connections[1]).await.status,
        StatusCode::FORBIDDEN
    );
    let after = scrape(&app).await;
    assert!(sign_ins(&after, "oidc", "denied") >= sign_ins(&before, "oidc", "denied") + 1.0);

    let before = after;
    assert_eq!(
        oidc_sign_in(&app, &idp, &connections[0]).await.status,
        StatusCode::OK
    );
    let after = scrape(&app).await;
    assert!(sign_ins(&after, "oidc", "success") >= sign_ins(&before, "oidc", "success") + 1.0);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// A client holding thousands of half-sent requests (slowloris) does not take the server down:
/// the oldest of them give way to new connections beyond the cap, each is closed when its header
/// deadline passes, memory stays bounded, and health checks and SCIM keep answering.
#[cfg(target_os = "linux")]
#[test]
fn slow_clients_cannot_starve_the_server() {
    use std::io::ErrorKind;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("slow.db").display());
    let server = serve(
        &db,
        &[
            ("IDBRIDGE_MAX_CONNECTIONS", "300"),
            ("IDBRIDGE_HEADER_TIMEOUT_SECS", "2"),
        ],
    );
    assert!(http_get(&server.addr, "/healthz", &[]).contains(" 200 "));
    let before = rss_kib(server.child.id());
    let mut held = Vec::new();
    for _ in 0..3000 {
        let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
            .unwrap();
        held.push(s);
    }
    // New clients are still served while every slow one is held open on our side.
    for _ in 0..5 {
        let status = http_get(&server.addr, "/healthz", &[]);
        assert!(status.contains(" 200 "), "{status}");
    }
    let status = http_get(&server.addr, "/scim/v2/none/Users", &[]);
    assert!(status.contains(" 401 "), "{status}");
    let grown = rss_kib(server.child.id()).saturating_sub(before);
    assert!(
        grown < 48 * 1024,
        "RSS grew by {grown} KiB holding 3000 slow clients"
    );

    // Past the header deadline, the server has closed the slow connections it still held.
    for s in held.iter_mut().rev().take(20) {
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("a slow connection was left open: {e}"),
        }
    }
    drop(held);
    assert!(http_get(&server.addr, "/healthz", &[]).contains(" 200 "));
    server.stop();
}
