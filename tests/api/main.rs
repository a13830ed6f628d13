//! The HTTP-level suite. Every test gets its own database: a fresh SQLite file, or, when
//! `IDBRIDGE_TEST_POSTGRES_URL` is set, its own PostgreSQL schema, so the same tests run on both
//! backends.

// Test and benchmark code: a failed step should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dns;
mod harness;

mod access;
mod admin_api;
mod auth_cache;

mod browser;
mod bulk;
mod cli;
mod concurrency;
mod console;
mod crash;
mod dialect_entra;
mod dialect_okta;
mod discovery;
mod errors;
/// What each fuzz target checks, replayed over the committed corpus by `fuzz_corpus`.
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_checks;
mod fuzz_corpus;
mod groups;
mod interop;
mod layers;
mod limits;
mod lists;
mod load_tool;
mod observability;
mod openapi;
mod outage;
mod outbound;
mod people;
mod platform;
mod properties;
mod replicas;
mod self_service;
mod sso;
mod tenancy;
mod trust;
mod users;
mod webhooks;
