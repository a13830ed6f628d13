//! `scim-load`, the load tool users run against any SCIM server, run here on a small N against a
//! real `idbridge serve` with both IdPs' requests: every phase's requests succeed and every check
//! of what was stored passes. Speed is not asserted; the figures are the tool's output.

use std::process::Command;

use crate::crash::{cli, migrated_database, serve};

fn scim_load(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scim-load"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_load_runs_every_phase_with_okta_and_entra_requests_and_verifies_the_stored_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_database(&dir, "load.db").await;
    cli(&db, &["org", "create", "--name", "Load", "--json"]);
    let d = cli(&db, &["directory", "create", "--org", "Load", "--json"]);
    let (mut server, addr) = serve(&db);
    let base = format!("http://{addr}/scim/v2/{}", d["id"].as_str().unwrap());
    let token = d["token"].as_str().unwrap();
    let pid = server.id().to_string();

    for dialect in ["okta", "entra"] {
        let (ok, out) = scim_load(&[
            "--base",
            &base,
            "--token",
            token,
            "--dialect",
            dialect,
            "--users",
            "150",
            "--group-size",
            "120",
            "--removals",
            "30",
            "--small-groups",
            "3",
            "--small-group-size",
            "10",
            "--concurrency",
            "4",
            "--server-pid",
            &pid,
        ]);
        assert!(ok, "{dialect}:\n{out}");
        for phase in [
            "create user (enterprise extension)",
            "filter=userName eq",
            "PUT user",
            "list, 100 per page",
            "add 100 members per PATCH, to 120",
            "remove one member (group of 120)",
            "deactivate (active false)",
            "DELETE user",
        ] {
            assert!(out.contains(phase), "{dialect}: no {phase} row:\n{out}");
        }
        assert!(
            out.contains("verified: the 30 removed members are gone and the others stayed")
                && out.contains("verified: every user deleted"),
            "{dialect}:\n{out}"
        );
        assert!(!out.contains("error:"), "{dialect}:\n{out}");
    }

    // A token the server refuses stops the run before it starts, with the server's answer.
    let (ok, out) = scim_load(&["--base", &base, "--token", "idb_wrong", "--users", "5"]);
    assert!(!ok, "{out}");
    assert!(out.contains("401"), "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
}
