//! idbridge: connects an organization's identity provider to a multi-tenant SaaS. See README.md.

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod mapping;
#[cfg(test)]
mod mutation;
pub mod net;
pub mod oauth;
pub mod rate;
pub mod scim;
pub mod server;
pub mod service;
pub mod sso;
pub mod store;
pub mod telemetry;
pub mod webhook;
