//! The HTTP-level suite. Every test gets its own database: a fresh SQLite file, or, when
//! `IDBRIDGE_TEST_POSTGRES_URL` is set, its own PostgreSQL schema, so the same tests run on both
//! backends.

mod dns;
mod harness;

mod access;
mod admin_api;

mod bulk;
mod cli;
mod concurrency;
mod crash;
mod dialect_entra;
mod dialect_okta;
mod discovery;
mod errors;
mod groups;
mod interop;
mod layers;
mod lists;
mod observability;
mod openapi;
mod outage;
mod outbound;
mod people;
mod sso;
mod tenancy;
mod users;
mod webhooks;
