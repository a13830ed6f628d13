//! SIGKILL in the middle of writes: every write the server acknowledged survives, nothing is half
//! written (a user without its audit row, or the reverse), and the database is intact. On SQLite,
//! and on PostgreSQL when the suite runs there.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A fixed key: PostgreSQL keeps no key file, and `serve` refuses to start there without one.
pub(crate) const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub(crate) fn cli(db: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .args(args)
        .env("IDBRIDGE_DATABASE_URL", db)
        .env("IDBRIDGE_SECRETS_KEY", SECRETS_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A migrated database for a server process: a fresh PostgreSQL schema when the suite runs
/// there, else a SQLite file in `dir`.
pub(crate) async fn migrated_database(dir: &tempfile::TempDir, file: &str) -> String {
    let pg = std::env::var("IDBRIDGE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let db = match &pg {
        Some(url) => crate::harness::pg_schema(url).await,
        None => format!("sqlite://{}", dir.path().join(file).display()),
    };
    let migrated = Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .arg("migrate")
        .env("IDBRIDGE_DATABASE_URL", &db)
        .env("IDBRIDGE_SECRETS_KEY", SECRETS_KEY)
        .status()
        .unwrap();
    assert!(migrated.success());
    db
}

/// Starts `idbridge serve` on a free port; returns the process and the address it printed.
pub(crate) fn serve(db: &str) -> (std::process::Child, String) {
    serve_with(db, &[])
}

/// [`serve`] with more environment variables.
pub(crate) fn serve_with(db: &str, env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .arg("serve")
        .envs(env.iter().copied())
        .env("IDBRIDGE_DATABASE_URL", db)
        .env("IDBRIDGE_SECRETS_KEY", SECRETS_KEY)
        .env("IDBRIDGE_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (child, addr)
}

/// POSTs a user; returns the status code, or None when the server is gone.
fn post_user(addr: &str, path: &str, token: &str, user_name: &str) -> Option<u16> {
    let body = format!(
        r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{user_name}","emails":[{{"value":"{user_name}","type":"work"}}]}}"#
    );
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split_whitespace().nth(1)?.parse().ok()
}

const AUDITED: &str =
    "SELECT detail FROM audit_log WHERE resource_type = 'User' AND operation = 'create'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_nothing_acknowledged_and_leaves_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_database(&dir, "crash.db").await;
    cli(&db, &["org", "create", "--name", "Crash", "--json"]);
    let d = cli(&db, &["directory", "create", "--org", "Crash", "--json"]);
    let token = d["token"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/{}/Users", d["id"].as_str().unwrap());

    let (mut child, addr) = serve(&db);

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (addr, path, token) = (addr.clone(), path.clone(), token.clone());
        let (acked, done, stop) = (acked.clone(), done.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            for i in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("w{w}-{i}@example.com");
                match post_user(&addr, &path, &token, &name) {
                    Some(201) => {
                        acked.lock().unwrap().push(name);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(other) => panic!("unexpected status {other} for {name}"),
                    None => break,
                }
            }
        }));
    }
    // Kill while the writers are still going, never at a quiet moment.
    // Polled with a short sleep: a spinning yield starves the writers on a 2-core machine.
    while done.load(Ordering::Relaxed) < 200 {
        assert!(
            !writers.iter().all(|w| w.is_finished()),
            "every writer stopped early"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);

    // Reopen as a restarted server would: the stored userNames and the created users' audit rows.
    macro_rules! read_back {
        ($pool:expr) => {
            (
                sqlx::query_scalar::<_, String>("SELECT user_name FROM scim_users")
                    .fetch_all($pool)
                    .await
                    .unwrap(),
                sqlx::query_scalar::<_, String>(AUDITED)
                    .fetch_all($pool)
                    .await
                    .unwrap(),
            )
        };
    }
    let (names, audited) = if db.starts_with("postgres") {
        read_back!(&sqlx::PgPool::connect(&db).await.unwrap())
    } else {
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(integrity, "ok");
        read_back!(&pool)
    };
    for a in &acked {
        assert!(names.contains(a), "acknowledged {a} was lost");
    }
    let mut a = audited.clone();
    let mut n = names.clone();
    a.sort();
    n.sort();
    assert_eq!(
        a, n,
        "every stored user has its audit row and every audit row its user"
    );
}
