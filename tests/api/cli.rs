use std::process::Command;

use serde_json::Value;

fn idbridge(db: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .args(args)
        .env("IDBRIDGE_DATABASE_URL", db)
        .env("IDBRIDGE_PUBLIC_URL", "https://sso.example.test")
        .env_remove("IDBRIDGE_LISTEN")
        .output()
        .expect("run idbridge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json_of(stdout: &str) -> Value {
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
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
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
