//! The committed fuzz corpus (`fuzz/corpus/<target>/`, for `saml_response` together with
//! `fixtures/saml`, which it was minimized against) and the inputs of crashes fuzzing found
//! (`fuzz/regressions/<target>/`), each file through the very function its libFuzzer target
//! calls (`fuzz/src/lib.rs`, included here), on stable Rust and on every `cargo test`: what
//! fuzzing covered and fixed stays covered and fixed without nightly or libFuzzer.

use std::path::Path;

use crate::fuzz_checks;

/// `seeds`: a directory of the repository the corpus was minimized against, replayed too.
fn replay(target: &str, check: fn(&[u8]), seeds: Option<&str>) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = repo.join("fuzz");
    let mut replayed = 0;
    let dirs = [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ];
    for dir in dirs.into_iter().chain(seeds.map(|s| repo.join(s))) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            if !path.is_file() {
                continue;
            }
            let data = std::fs::read(&path).expect("corpus file");
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                panic!(
                    "{} fails; reproduce with `cargo +nightly fuzz run {target} {}`",
                    path.display(),
                    path.display()
                );
            }
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no corpus for {target} under {}",
        root.display()
    );
}

#[test]
fn the_scim_filter_corpus_passes() {
    replay("scim_filter", fuzz_checks::scim_filter, None);
}

#[test]
fn the_scim_patch_corpus_passes() {
    replay("scim_patch", fuzz_checks::scim_patch, None);
}

#[test]
fn the_scim_resource_corpus_passes() {
    replay("scim_resource", fuzz_checks::scim_resource, None);
}

#[test]
fn the_saml_response_corpus_passes() {
    replay(
        "saml_response",
        fuzz_checks::saml_response,
        Some("fixtures/saml"),
    );
}

#[test]
fn the_oauth_params_corpus_passes() {
    replay("oauth_params", fuzz_checks::oauth_params, None);
}
