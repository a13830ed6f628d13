use std::process::{Command, Output};

use serde_json::Value;

/// A fixed key, so that commands of one test on PostgreSQL (which keeps no key file) agree.
const PG_SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The binary with `db` as its database, a public URL and no inherited configuration that could
/// change what a test sees.
fn bin(db: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idbridge"));
    cmd.env("IDBRIDGE_DATABASE_URL", db)
        .env("IDBRIDGE_PUBLIC_URL", "https://sso.example.test")
        .env_remove("IDBRIDGE_LISTEN")
        .env_remove("IDBRIDGE_SECRETS_KEY")
        .env_remove("IDBRIDGE_ALLOW_PRIVATE_URLS")
        .env_remove("RUST_BACKTRACE");
    if db.starts_with("postgres") {
        cmd.env("IDBRIDGE_SECRETS_KEY", PG_SECRETS_KEY);
    }
    cmd
}

pub fn idbridge(db: &str, args: &[&str]) -> (bool, String, String) {
    let out = bin(db).args(args).output().expect("run idbridge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A database `idbridge migrate` made: a SQLite file in `dir`, or an empty PostgreSQL schema when
/// the suite runs on PostgreSQL. Commands other than `serve` and `migrate` need one.
pub fn migrated(dir: &tempfile::TempDir) -> String {
    let db = empty_database(dir);
    let (ok, out, err) = idbridge(&db, &["migrate"]);
    assert!(ok && out.contains("migrations applied"), "{out}{err}");
    db
}

/// A database without idbridge's tables: a SQLite path in `dir` that does not exist yet, or an
/// empty PostgreSQL schema.
fn empty_database(dir: &tempfile::TempDir) -> String {
    match std::env::var("IDBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(crate::harness::pg_schema(&url)),
        _ => format!("sqlite://{}", dir.path().join("cli.db").display()),
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into()
}

pub fn json_of(stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one JSON object on stdout: {stdout}"
    );
    serde_json::from_str(lines[0]).expect("stdout is JSON")
}

#[test]
fn org_and_directory_commands_print_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let (ok, out, err) = idbridge(&db, &["org", "create", "--name", "Acme", "--json"]);
    assert!(ok, "{err}");
    let org = json_of(&out);
    assert_eq!(org["name"], "Acme");

    // The org is found by name, case-insensitively, or by id.
    let (ok, out, err) = idbridge(
        &db,
        &[
            "directory",
            "create",
            "--org",
            "acme",
            "--name",
            "Okta",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let d = json_of(&out);
    let id = d["id"].as_str().unwrap();
    assert_eq!(
        d["scim_url"],
        format!("https://sso.example.test/scim/v2/{id}")
    );
    let token = d["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 40);
    assert!(!err.contains(&token), "the token is never logged");
    let (ok, _, _) = idbridge(
        &db,
        &[
            "directory",
            "create",
            "--org",
            org["id"].as_str().unwrap(),
            "--json",
        ],
    );
    assert!(ok);

    // Duplicate org names and unknown orgs fail with a message.
    let (ok, _, err) = idbridge(&db, &["org", "create", "--name", "ACME"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = idbridge(&db, &["directory", "create", "--org", "nope"]);
    assert!(!ok && err.contains("no organization"), "{err}");

    // Rotation: a new token, both listed active; revoke leaves only the newest.
    let (ok, out, _) = idbridge(
        &db,
        &["directory", "token", "rotate", "--directory", id, "--json"],
    );
    assert!(ok);
    let rotated = json_of(&out);
    assert_ne!(rotated["token"], token.as_str());
    let (_, out, _) = idbridge(
        &db,
        &["directory", "token", "list", "--directory", id, "--json"],
    );
    let list = json_of(&out);
    let active = |l: &Value| {
        l["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["revoked_at"].is_null())
            .count()
    };
    assert_eq!(active(&list), 2);
    assert!(!out.contains(&token), "listing never shows tokens");
    let (ok, out, _) = idbridge(
        &db,
        &["directory", "token", "revoke", "--directory", id, "--json"],
    );
    assert!(ok);
    assert_eq!(json_of(&out)["revoked"].as_array().unwrap().len(), 1);
    let (_, out, _) = idbridge(
        &db,
        &["directory", "token", "list", "--directory", id, "--json"],
    );
    assert_eq!(active(&json_of(&out)), 1);

    // The database (and its write-ahead log) stores only hashes.
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&token) && !text.contains(rotated["token"].as_str().unwrap()));
    }
}

/// A raw HTTP/1.1 GET; returns the status code.
fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn serve_says_where_it_listens_is_ready_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("serve.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .arg("serve")
        .env("IDBRIDGE_DATABASE_URL", &db)
        .env("IDBRIDGE_LISTEN", "127.0.0.1:0")
        .env_remove("IDBRIDGE_PUBLIC_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The first line says where it listens; readiness is waited for, never slept on.
    let first = lines.next().expect("serve printed a line").unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address in the first line")
        .to_string();
    let rest: Vec<String> = lines.by_ref().take(2).map(|l| l.unwrap()).collect();
    assert!(rest.iter().any(|l| l.contains("/scim/v2/")), "{rest:?}");
    assert_eq!(http_get_status(&addr, "/readyz"), Some(200));
    assert_eq!(http_get_status(&addr, "/healthz"), Some(200));
    assert_eq!(http_get_status(&addr, "/scim/v2/x/Users"), Some(401));
    // With port 0 and no public URL, the printed URL names the port actually bound.
    assert!(
        first.contains(&format!("(public URL http://{addr})")),
        "{first}"
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    assert!(
        dir.path().join("serve.db").exists(),
        "the SQLite file is created on first start"
    );
}

/// The admin actions a person scripts: a token, a sub-account, a rule and its preview, a user's
/// access; each prints one JSON object, and the token works on the admin API.
#[test]
fn admin_commands_print_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let run = |args: &[&str]| {
        let (ok, out, err) = idbridge(&db, args);
        assert!(ok, "{args:?}: {err}");
        json_of(&out)
    };
    let org = run(&["org", "create", "--name", "Acme", "--json"]);
    let org_id = org["id"].as_str().unwrap().to_string();
    let token = run(&[
        "admin-token",
        "create",
        "--org",
        "Acme",
        "--role",
        "org_viewer",
        "--json",
    ]);
    assert!(token["token"].as_str().unwrap().starts_with("idba_"));
    assert_eq!(token["role"], "org_viewer");
    let (ok, _, err) = idbridge(
        &db,
        &["admin-token", "create", "--org", "Acme", "--role", "root"],
    );
    assert!(!ok);
    assert!(err.contains("org_admin"), "{err}");

    let sa = run(&[
        "sub-account",
        "create",
        "--org",
        "Acme",
        "--name",
        "EU",
        "--json",
    ]);
    let sa_id = sa["id"].as_str().unwrap().to_string();
    let rule = serde_json::json!({
        "matcher": { "type": "display_name", "display_name": "EU team" },
        "grant": { "type": "sub_account_role", "sub_account": { "one": sa_id }, "role": "admin" }
    })
    .to_string();
    let mut change: Value = serde_json::from_str(&rule).unwrap();
    change["op"] = "create".into();
    let preview = run(&[
        "mapping",
        "preview",
        "--org",
        &org_id,
        "--change",
        &change.to_string(),
        "--json",
    ]);
    assert_eq!(preview["changes"], serde_json::json!([]));
    assert_eq!(
        run(&["mapping", "list", "--org", "Acme", "--json"])["items"],
        serde_json::json!([])
    );
    let created = run(&[
        "mapping", "create", "--org", "Acme", "--rule", &rule, "--json",
    ]);
    assert_eq!(created["rule"]["grant"]["role"], "admin");
    let listed = run(&["mapping", "list", "--org", "Acme", "--json"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let (ok, _, err) = idbridge(
        &db,
        &["access", "--org", "Acme", "--user", "nobody@example.com"],
    );
    assert!(!ok);
    assert!(err.contains("no user"), "{err}");
}

#[test]
fn domain_commands_claim_verify_through_dns_or_take_the_operators_word() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let dns = crate::dns::server().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["--dns-server", dns.as_str()];
        all.extend_from_slice(args);
        idbridge(&db, &all)
    };
    let (ok, _, err) = run(&["org", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let domain = format!("cli{}.example", uuid::Uuid::now_v7().simple());

    let (ok, out, err) = run(&["domain", "add", "--org", "Acme", "--domain", &domain]);
    assert!(ok, "{err}");
    // The operator is told what to publish.
    let name = format!("_idbridge-verification.{domain}");
    assert!(out.contains("not verified") && out.contains(&name), "{out}");

    let (ok, _, err) = run(&["domain", "verify", "--org", "Acme", "--domain", &domain]);
    assert!(!ok, "verified without a record");
    assert!(err.contains(&name), "{err}");

    let (_, out, _) = run(&["domain", "list", "--org", "Acme", "--json"]);
    let value = json_of(&out)["items"][0]["verification"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    crate::dns::publish(&name, &value);
    let (ok, out, err) = run(&[
        "domain", "verify", "--org", "Acme", "--domain", &domain, "--json",
    ]);
    assert!(ok, "{err}");
    assert_eq!(json_of(&out)["verified"], true);

    // An operator who already knows the domain is the organization's vouches for it.
    let vouched = format!("cli{}.example", uuid::Uuid::now_v7().simple());
    let (ok, out, err) = run(&[
        "domain",
        "add",
        "--org",
        "Acme",
        "--domain",
        &vouched,
        "--verified",
        "--json",
    ]);
    assert!(ok, "{err}");
    assert_eq!(json_of(&out)["verified"], true);
}

/// `admin-token create --expires-in/--expires-at`, `list` (no secrets) and `revoke`.
#[test]
fn admin_tokens_are_listed_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let run = |args: &[&str]| {
        let (ok, out, err) = idbridge(&db, args);
        assert!(ok, "{args:?}: {err}");
        json_of(&out)
    };
    run(&["org", "create", "--name", "Acme", "--json"]);
    let month = run(&[
        "admin-token",
        "create",
        "--org",
        "Acme",
        "--role",
        "org_admin",
        "--name",
        "ci",
        "--expires-in",
        "30d",
        "--json",
    ]);
    let expires = month["expires_at"].as_str().unwrap();
    assert!(expires.ends_with('Z'), "{month}");
    let fixed = run(&[
        "admin-token",
        "create",
        "--org",
        "Acme",
        "--role",
        "org_viewer",
        "--expires-at",
        "2099-01-31T10:00:00+01:00",
        "--json",
    ]);
    assert_eq!(fixed["expires_at"], "2099-01-31T09:00:00Z");
    let (ok, _, err) = idbridge(
        &db,
        &[
            "admin-token",
            "create",
            "--org",
            "Acme",
            "--role",
            "org_admin",
            "--expires-in",
            "soon",
        ],
    );
    assert!(!ok);
    assert!(err.contains("30d"), "{err}");
    let (ok, _, err) = idbridge(
        &db,
        &[
            "admin-token",
            "create",
            "--org",
            "Acme",
            "--role",
            "org_admin",
            "--expires-at",
            "tomorrow",
        ],
    );
    assert!(!ok);
    assert!(err.contains("RFC 3339"), "{err}");

    let list = run(&["admin-token", "list", "--org", "Acme", "--json"]);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert!(list["next"].is_null());
    let text = list.to_string();
    for t in [&month, &fixed] {
        assert!(!text.contains(t["token"].as_str().unwrap()), "{text}");
    }
    let ci = items.iter().find(|t| t["name"] == "ci").unwrap();
    assert_eq!(ci["expires_at"], expires);
    assert_eq!(ci["role"], "org_admin");

    let id = month["id"].as_str().unwrap();
    let r = run(&[
        "admin-token",
        "revoke",
        "--org",
        "Acme",
        "--id",
        id,
        "--json",
    ]);
    assert_eq!(r["revoked"], id);
    let (ok, out, _) = idbridge(&db, &["admin-token", "list", "--org", "Acme"]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with(id) && l.contains("revoked")),
        "{out}"
    );
    let (ok, _, err) = idbridge(&db, &["admin-token", "revoke", "--org", "Acme", "--id", id]);
    assert!(!ok);
    assert!(err.contains(id), "{err}");
}

#[test]
fn org_create_names_its_owner_or_warns_that_it_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let (ok, out, err) = idbridge(
        &db,
        &[
            "org",
            "create",
            "--name",
            "Acme",
            "--owner",
            "Boss@Acme.example",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let org = json_of(&out);
    let owner = org["owner_user_id"].as_str().expect("an owner").to_string();
    assert_eq!(org["owner"], "Boss@Acme.example");

    // The owner is a person of the organization already: found by userName, in any case.
    let (ok, out, err) = idbridge(
        &db,
        &[
            "access",
            "--org",
            "Acme",
            "--user",
            "boss@acme.example",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let access = json_of(&out);
    assert_eq!(access["user_id"], owner.as_str(), "{access}");
    assert_eq!(access["org_roles"][0]["role"], "org_owner", "{access}");

    let (ok, out, err) = idbridge(&db, &["org", "create", "--name", "Unowned"]);
    assert!(ok, "{err}");
    assert!(out.contains("created organization Unowned"), "{out}");
    assert!(err.contains("warning") && err.contains("no owner"), "{err}");

    let (ok, _, err) = idbridge(&db, &["org", "create", "--name", "Typo", "--owner", "boss"]);
    assert!(!ok && err.contains("email"), "{err}");
    let (ok, _, err) = idbridge(&db, &["directory", "create", "--org", "Typo"]);
    assert!(!ok && err.contains("no organization"), "{err}");
}

/// The SAML set-up in the IdP's order from the CLI: create prints our endpoints (JSON too), update
/// gives the IdP's details later, and a verified domain moves to the finished connection.
#[test]
fn sso_create_prints_our_endpoints_update_finishes_it_and_domain_move_points_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let (ok, _, err) = idbridge(&db, &["org", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let (ok, out, err) = idbridge(
        &db,
        &[
            "sso",
            "create",
            "--org",
            "Acme",
            "--settings",
            r#"{"name": "Okta", "saml": {}}"#,
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let created = json_of(&out);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "incomplete", "{created}");
    let entity = format!("https://sso.example.test/sso/saml/{id}");
    assert_eq!(created["endpoints"]["sp_entity_id"], entity);
    assert_eq!(created["endpoints"]["acs_url"], format!("{entity}/acs"));
    assert_eq!(
        created["endpoints"]["sp_metadata_url"],
        format!("{entity}/metadata")
    );

    let (ok, out, err) = idbridge(&db, &["sso", "list", "--org", "Acme"]);
    assert!(ok, "{err}");
    assert!(out.contains("incomplete: missing idp_entity_id"), "{out}");

    let pem = std::fs::read_to_string("fixtures/saml/keys/idp-rsa.crt").unwrap();
    let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let settings = serde_json::json!({"saml": {
        "idp_entity_id": "https://idp.example.test/entity",
        "idp_sso_url": "https://idp.example.test/sso",
        "idp_certificates": [bare],
    }})
    .to_string();
    let (ok, out, err) = idbridge(
        &db,
        &[
            "sso",
            "update",
            "--org",
            "Acme",
            "--connection",
            &id,
            "--settings",
            &settings,
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("updated SAML connection") && out.contains(&format!("{entity}/acs")),
        "{out}"
    );
    assert!(!out.contains("incomplete"), "{out}");

    let domain = format!("cli{}.example", uuid::Uuid::now_v7().simple());
    let (ok, _, err) = idbridge(
        &db,
        &[
            "domain",
            "add",
            "--org",
            "Acme",
            "--domain",
            &domain,
            "--verified",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = idbridge(
        &db,
        &[
            "domain",
            "move",
            "--org",
            "Acme",
            "--domain",
            &domain,
            "--connection",
            &id,
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let moved = json_of(&out);
    assert_eq!(moved["connection_id"], id.as_str());
    assert_eq!(moved["verified"], true);
    let (ok, _, err) = idbridge(
        &db,
        &[
            "domain",
            "move",
            "--org",
            "Acme",
            "--domain",
            &domain,
            "--connection",
            "nope",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("not a connection of this organization"),
        "{err}"
    );
}

/// Run from the wrong folder, a command used to make an empty `idbridge.db` and a second secrets
/// key, then say the organization did not exist.
#[test]
fn a_command_against_a_missing_database_refuses_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("idbridge.db").display());
    let out = bin(&db)
        .args(["directory", "create", "--org", "Acme"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("no idbridge database at {db}")) && err.contains("idbridge migrate"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "no database and no key file: {left:?}");

    // A file without the tables (what earlier versions left behind) is refused the same way, and
    // still gets no key file beside it.
    std::fs::write(dir.path().join("idbridge.db"), b"").unwrap();
    let (ok, _, err) = idbridge(&db, &["org", "create", "--name", "Acme"]);
    assert!(!ok && err.contains("no idbridge database"), "{err}");
    assert!(!dir.path().join("idbridge.db.secrets-key").exists());

    // On PostgreSQL (when the suite runs there): a database or schema without the tables.
    let empty = empty_database(&dir);
    if empty.starts_with("postgres") {
        let (ok, _, err) = idbridge(&empty, &["org", "create", "--name", "Acme"]);
        assert!(!ok && err.contains("no idbridge database"), "{err}");
        assert!(!err.contains(PG_SECRETS_KEY), "{err}");
    }

    // migrate makes it, after which the command works.
    let (ok, _, err) = idbridge(&db, &["migrate"]);
    assert!(ok, "{err}");
    let (ok, _, err) = idbridge(&db, &["org", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
}

#[test]
fn a_failed_command_prints_one_line_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let out = bin(&db)
        .args(["directory", "create", "--org", "nope"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines, [r#"error: no organization "nope""#], "{err}");
}

#[test]
fn with_json_a_failed_command_prints_its_error_as_json_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let out = bin(&db)
        .args(["directory", "create", "--org", "nope", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let error = json_of(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        error,
        serde_json::json!({"error": "no organization \"nope\""})
    );

    // Refused before any database is opened, in JSON too.
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());
    let out = bin(&missing)
        .args(["org", "create", "--name", "Acme", "--json"])
        .output()
        .unwrap();
    let error = json_of(&String::from_utf8_lossy(&out.stdout));
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("no idbridge database"),
        "{error}"
    );
}

#[test]
fn boolean_variables_take_the_usual_words_and_refuse_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    for value in ["1", "0", "true", "FALSE", "Yes", "no", "on", "Off"] {
        let out = bin(&db)
            .arg("migrate")
            .env("IDBRIDGE_ALLOW_PRIVATE_URLS", value)
            .output()
            .unwrap();
        assert!(out.status.success(), "{value}: {}", stderr_of(&out));
    }
    for value in ["ture", "2", "enabled"] {
        let out = bin(&db)
            .arg("migrate")
            .env("IDBRIDGE_ALLOW_PRIVATE_URLS", value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{value} is refused");
        let err = stderr_of(&out);
        assert!(
            err.contains(value) && err.contains("yes/no"),
            "the error names the value and what is accepted: {err}"
        );
    }
}

#[test]
fn every_command_and_option_has_help() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if !matches!(id, "help" | "version") && arg.get_help().is_none() {
                missing.push(format!("{path} --{id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_name() != "help" && sub.get_about().is_none() {
                missing.push(sub_path.clone());
            }
            walk(sub, &sub_path, missing);
        }
    }
    let mut missing = Vec::new();
    walk(&idbridge::config::Cli::command(), "idbridge", &mut missing);
    assert!(missing.is_empty(), "without help text: {missing:#?}");
}

#[test]
fn role_lists_its_values_in_help_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let (ok, help, _) = idbridge(&db, &["admin-token", "create", "--help"]);
    assert!(ok);
    assert!(
        help.contains(
            "[possible values: org_owner, org_viewer, org_admin, billing_viewer, billing_admin, \
             sub_account_admin]"
        ),
        "{help}"
    );
    let (ok, _, err) = idbridge(&db, &["org", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let out = bin(&db)
        .args(["admin-token", "create", "--org", "Acme", "--role", "root"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr_of(&out).contains("'root'"), "{}", stderr_of(&out));
    let (_, out, _) = idbridge(&db, &["admin-token", "list", "--org", "Acme", "--json"]);
    assert_eq!(json_of(&out)["items"], serde_json::json!([]));
}

/// A free TCP port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_on_an_address_in_use_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bin(&db)
        .arg("serve")
        .env("IDBRIDGE_LISTEN", &addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("cannot listen on {addr}: address already in use")),
        "{err}"
    );
}

#[test]
fn serve_names_the_postgres_server_and_the_cause_never_the_password() {
    let port = closed_port();
    let db = format!("postgres://idbridge:hunter2@127.0.0.1:{port}/idbridge");
    let started = std::time::Instant::now();
    let out = bin(&db).arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused"
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "said at once, not after the pool's timeout"
    );
}

#[test]
fn serve_names_the_sqlite_path_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let db = format!("sqlite://{}/idbridge.db", missing.display());
    let out = bin(&db)
        .arg("serve")
        .env("IDBRIDGE_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "cannot open SQLite database {}/idbridge.db: directory {} does not exist",
            missing.display(),
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn a_public_url_that_cannot_be_a_base_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    for (url, why) in [
        ("sso.example.test", "not an absolute URL"),
        ("ftp://sso.example.test", "http or https"),
        ("https://sso.example.test/?tenant=1", "query"),
        ("https://sso.example.test/#top", "fragment"),
    ] {
        let out = bin(&db)
            .args(["--public-url", url, "migrate"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = stderr_of(&out);
        assert!(err.contains("--public-url") && err.contains(why), "{err}");
    }
    let (ok, out, err) = idbridge(
        &db,
        &[
            "--public-url",
            "https://sso.example.test/idbridge/",
            "org",
            "create",
            "--name",
            "Acme",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = idbridge(
        &db,
        &[
            "--public-url",
            "https://sso.example.test/idbridge/",
            "directory",
            "create",
            "--org",
            "Acme",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let url = json_of(&out)["scim_url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with("https://sso.example.test/idbridge/scim/v2/"),
        "{url}"
    );
}

#[test]
fn serve_on_postgres_without_a_secrets_key_refuses_to_start() {
    let db = format!("postgres://idbridge@127.0.0.1:{}/idbridge", closed_port());
    let out = bin(&db)
        .arg("serve")
        .env_remove("IDBRIDGE_SECRETS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("IDBRIDGE_SECRETS_KEY is required with PostgreSQL"),
        "{err}"
    );
}

/// The database holds session hashes, sealed secrets and everyone's access: like its key file, it
/// is created readable by its owner only, and so are the WAL files SQLite makes beside it.
#[cfg(unix)]
#[test]
fn the_sqlite_database_is_created_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let db = format!("sqlite://{}", path.display());
    let (ok, out, err) = idbridge(&db, &["migrate"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = idbridge(&db, &["org", "create", "--name", "Acme"]);
    assert!(ok, "{out}{err}");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("private.db") {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

/// `sso create` checks an OIDC issuer against its discovery document like the admin API, and a
/// refusal is one line naming both issuers.
#[test]
fn sso_create_refuses_an_oidc_issuer_its_discovery_document_does_not_name_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let (ok, _, err) = idbridge(&db, &["org", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let fake = crate::harness::fake_issuer();
    let create = |issuer: &str| {
        let settings = serde_json::json!({"name": "IdP", "oidc": {
            "issuer": issuer, "client_id": "idbridge", "client_secret": "s"}})
        .to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_idbridge"))
            .args(["sso", "create", "--org", "Acme", "--settings", &settings])
            .env("IDBRIDGE_DATABASE_URL", &db)
            .envs(
                db.starts_with("postgres")
                    .then_some(("IDBRIDGE_SECRETS_KEY", PG_SECRETS_KEY)),
            )
            // The fake provider listens on 127.0.0.1.
            .env("IDBRIDGE_ALLOW_PRIVATE_URLS", "true")
            .output()
            .expect("run idbridge");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = create(&format!("{fake}/"));
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "issuer mismatch: configured \"{fake}/\" but discovery says \"{fake}\" (trailing slash)"
        )),
        "{err}"
    );
    let (ok, err) = create(&fake);
    assert!(ok, "{err}");
}
