//! The layering the README describes, checked on the source so that a shortcut (a handler's type
//! used by the store, SQL in the SCIM parser) fails the build's tests instead of review.
//!
//! Dependencies run one way: `http` -> `service` -> {`scim`, `sso`, `oauth`, `mapping`, `store`}
//! -> `domain`. The protocol and mapping modules are pure: they import neither axum nor sqlx, so
//! they can be fuzzed, benchmarked and reused by the CLI and the console without a server or a
//! database. The store may read the pure modules' types (it translates a SCIM filter or a mapping
//! rule into SQL) but never a service or a handler.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What each module may import from the crate, besides itself. `net` (the outbound policy) and
/// `mutation` (the byte mutator the robustness tests share) and `rate` (the request rate limits)
/// are leaves that import nothing.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("mutation", &[]),
    ("net", &[]),
    ("rate", &[]),
    ("scim", &["domain", "mutation"]),
    ("mapping", &["domain"]),
    ("oauth", &["domain"]),
    ("sso", &["domain", "net", "mutation"]),
    (
        "store",
        &["domain", "scim", "mapping", "sso", "oauth", "mutation"],
    ),
    (
        "service",
        &[
            "domain", "scim", "mapping", "sso", "oauth", "store", "net", "webhook", "mutation",
            "rate",
        ],
    ), // The state every handler acts with; the router and serving (`http`, `server`) build on it.
    (
        "app",
        &[
            "domain",
            "sso",
            "service",
            "store",
            "net",
            "rate",
            "telemetry",
        ],
    ),
];

/// Modules that must not name the web framework or the database driver.
const NO_AXUM: &[&str] = &[
    "domain", "mutation", "net", "rate", "scim", "mapping", "oauth", "sso", "store", "service",
];
const NO_SQLX: &[&str] = &[
    "domain", "mutation", "net", "rate", "scim", "mapping", "oauth", "sso", "service",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/` and every Rust file under it, in path order.
fn source_files() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    (src, files)
}

/// The code a release build compiles: everything above the file's first `#[cfg(test)]` item, and
/// nothing of a file that is itself a test module.
fn shipped_code(path: &Path) -> String {
    if path.file_stem().is_some_and(|s| s == "tests") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let end = text.find("\n#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::X` for every X the code names, including each X of `crate::{X, Y::Z}`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (i, m) in code.match_indices("crate::") {
        // `crate::` and not the tail of another path such as `my_crate::`
        if code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[i + m.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0;
                let mut start = 0;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            found.insert(ident(&group[start..j]));
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.insert(ident(&group[start..j]));
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
            }
            None => {
                found.insert(ident(rest));
            }
        }
    }
    found.remove("");
    found
}

fn names_crate(code: &str, krate: &str) -> bool {
    let needle = format!("{krate}::");
    code.match_indices(&needle).any(|(i, _)| {
        !code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

#[test]
fn dependencies_run_one_way_and_the_pure_modules_stay_pure() {
    let (src, files) = source_files();
    let mut broken = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let code = shipped_code(path);
        if let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == module) {
            for used in crate_modules(&code) {
                if used != module && !allowed.contains(&used.as_str()) {
                    broken.push(format!("{}: {module} imports crate::{used}", rel.display()));
                }
            }
        }
        if NO_AXUM.contains(&module.as_str()) && names_crate(&code, "axum") {
            broken.push(format!("{}: {module} names axum", rel.display()));
        }
        if NO_SQLX.contains(&module.as_str()) && names_crate(&code, "sqlx") {
            broken.push(format!("{}: {module} names sqlx", rel.display()));
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_layering_check_sees_a_violation() {
    let code = "use crate::store::Store;\nfn f() { let _ = axum::Json(1); }\n";
    assert_eq!(crate_modules(code), BTreeSet::from(["store".to_string()]));
    assert!(names_crate(code, "axum"));
    assert!(!names_crate("use my_axum::x;", "axum"));
    assert!(crate_modules("use idbridge_crate::x;").is_empty());
    assert_eq!(
        crate_modules("use crate::{http::router, store::{Store, StoreError},\n  scim};"),
        BTreeSet::from(["http".into(), "store".into(), "scim".into()])
    );
}

/// Inside `scim/`, each piece builds on the ones before it: the schema knows attributes, the filter
/// grammar names them, the normaliser uses the schema, PATCH uses all three.
#[test]
fn scim_modules_build_on_each_other_in_one_order() {
    const ORDER: &[&str] = &[
        "version",
        "error",
        "schema",
        "discovery",
        "filter",
        "resource",
        "patch",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scim");
    let mut broken = Vec::new();
    for (rank, module) in ORDER.iter().enumerate() {
        let code = shipped_code(&dir.join(format!("{module}.rs")));
        for (i, m) in code.match_indices("crate::scim::") {
            let used: String = code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if ORDER[rank..].contains(&used.as_str()) && used != *module {
                broken.push(format!("scim/{module}.rs imports scim::{used}"));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Expiries, timestamps and retry schedules read the store's clock (`domain/clock.rs`), which a
/// test moves forward; code that read the system's time instead would not move with it, and a
/// transaction would see two times. Only the clock itself and the logs' own timestamps read it.
#[test]
fn only_the_clock_reads_the_wall_clock() {
    const READS: &[&str] = &["OffsetDateTime::now_utc", "SystemTime::now", "Utc::now"];
    const MAY: &[&str] = &["domain/clock.rs", "telemetry.rs"];
    let (src, files) = source_files();
    let mut broken = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .to_string();
        // The load tool is a client of its own and measures with the machine's clock.
        if rel.starts_with("bin/") || MAY.contains(&rel.as_str()) {
            continue;
        }
        let code = shipped_code(path);
        for read in READS {
            if code.contains(read) {
                broken.push(format!("{rel}: {read}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "reads the system's time instead of the store's clock:\n{}",
        broken.join("\n")
    );
}
