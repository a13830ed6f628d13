//! Hostile input: mangled versions of real requests must give an answer (a value or a 4xx SCIM
//! error), never a panic. Deterministic (seeded), so a failure reproduces; `cargo fuzz` can take
//! the same entry points further.

use serde_json::{Value, json};

use super::filter::{parse_filter, parse_path};
use super::patch::{apply, parse_patch};
use super::resource::{normalize, project};
use super::schema::{GROUP, USER};
use crate::mutation::Rng;

const PIECES: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "\"",
    " and ",
    " or ",
    "not ",
    " eq ",
    " pr",
    " co ",
    ".",
    ":",
    "\\",
    "userName",
    "emails",
    "value",
    "members",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "\u{0}",
    "é",
    "😀",
    "true",
    "null",
    "1e999",
    "-0",
    " ",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    crate::mutation::mutate(rng, seed, PIECES)
}

fn assert_client_error(e: &super::error::ScimError, input: &str) {
    assert!((400..500).contains(&e.status), "{input:?} gave {e}");
}

#[test]
fn mangled_filters_and_paths_never_panic() {
    let seeds = [
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z" and not (title pr)"#,
        r#"members[value eq "2819c223-7f76-453a-919d-413861904646"].display"#,
        r#"externalId eq abc-123"#,
    ];
    let mut rng = Rng(0x5eed_1db2);
    for i in 0..20_000 {
        let input = mutate(&mut rng, seeds[i % seeds.len()]);
        let rt = if i % 2 == 0 { &USER } else { &GROUP };
        if let Err(e) = parse_filter(&input, rt) {
            assert_client_error(&e, &input);
        }
        if let Err(e) = parse_path(&input, rt) {
            assert_client_error(&e, &input);
        }
    }
}

/// Replaces a random node of `v` with a hostile value.
fn mangle_json(rng: &mut Rng, v: &mut Value, depth: usize) {
    let hostile = [
        json!(null),
        json!(42),
        json!("False"),
        json!([]),
        json!({}),
        json!([[{"value": null}]]),
        json!({"value": {"value": "x"}}),
        json!("x".repeat(300)),
    ];
    match v {
        Value::Object(m) if !m.is_empty() && depth < 4 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            if rng.below(3) == 0 {
                m[k] = hostile[rng.below(hostile.len())].clone();
            } else if let Some(child) = m.get_mut(k) {
                mangle_json(rng, child, depth + 1);
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 4 => {
            let i = rng.below(a.len());
            mangle_json(rng, &mut a[i], depth + 1);
        }
        _ => *v = hostile[rng.below(hostile.len())].clone(),
    }
}

#[test]
fn mangled_resources_and_patches_never_panic() {
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent],
        "userName": "bjensen", "active": "True", "name": {"givenName": "B", "familyName": "J"},
        "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
        ent: {"employeeNumber": "1", "manager": "m1"}
    });
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "value": {"name.givenName": "X", "active": "False"}},
            {"op": "add", "path": "emails[type eq \"work\"].value", "value": "x@y.z"},
            {"op": "remove", "path": "members[value eq \"a\"]"},
            {"op": "replace", "path": ent, "value": {"department": "D"}}
        ]
    });
    let stored = normalize(&user, &USER).expect("the seed user is valid");
    let mut rng = Rng(0xfeed_beef);
    for _ in 0..5_000 {
        let mut u = user.clone();
        mangle_json(&mut rng, &mut u, 0);
        match normalize(&u, &USER) {
            Ok(n) => {
                let _ = project(&n, &USER, Some("name.givenName,emails"), Some("groups"));
            }
            Err(e) => assert_client_error(&e, &u.to_string()),
        }
        let mut p = patch.clone();
        mangle_json(&mut rng, &mut p, 0);
        for rt in [&USER, &GROUP] {
            match parse_patch(&p, rt) {
                Ok(ops) => {
                    if let Err(e) = apply(&stored, &ops, rt) {
                        assert_client_error(&e, &p.to_string());
                    }
                }
                Err(e) => assert_client_error(&e, &p.to_string()),
            }
        }
    }
}
