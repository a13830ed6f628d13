//! Application state: what every request handler acts with, built once at startup.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Externally visible base URL, without a trailing slash.
    pub public_url: Arc<str>,
    pub metrics: PrometheusHandle,
    /// The policy and client of every outbound request (webhooks, SAML metadata, OIDC).
    pub outbound: crate::net::Outbound,
    /// A session ends after this long without use...
    pub session_idle: Duration,
    /// ...and this long after sign-in in any case.
    pub session_lifetime: Duration,
    /// IdP discovery documents and keys, cached briefly per replica.
    pub oidc: Arc<crate::service::sign_in::Providers>,
    /// Our current id_token signing key, parsed, and when it was read.
    pub signer: Arc<crate::service::oauth::Signer>,
    /// Where domain verification looks up TXT records.
    pub dns: crate::sso::dns::Dns,
    /// The bearer token `/metrics` asks for; without one, `/metrics` is not served.
    pub metrics_token: Option<Arc<str>>,
    /// Request rate limits, in this replica's memory.
    pub rate: Arc<crate::rate::RateLimits>,
    /// Request sizes: bodies, bulk, pages.
    pub sizes: crate::domain::limits::Sizes,
}

impl AppState {
    pub fn new(store: Store, public_url: &str) -> Self {
        Self {
            store,
            public_url: public_url.trim_end_matches('/').into(),
            metrics: crate::telemetry::metrics_handle(),
            outbound: crate::net::Outbound::default(),
            session_idle: Duration::from_secs(2 * 3600),
            session_lifetime: Duration::from_secs(12 * 3600),
            oidc: Arc::default(),
            signer: Arc::default(),
            dns: crate::sso::dns::Dns::default(),
            metrics_token: None,
            rate: Arc::new(crate::rate::RateLimits::new(
                &crate::rate::RateConfig::default(),
            )),
            sizes: crate::domain::limits::Sizes::default(),
        }
    }
}

impl AppState {
    /// No rate limit: benchmarks measure the service, not its limits.
    pub fn without_rate_limits(mut self) -> Self {
        self.rate = Arc::new(crate::rate::RateLimits::new(&crate::rate::RateConfig::OFF));
        self
    }

    /// What sign-in and the OpenID provider act with.
    pub fn sign_in(&self) -> crate::service::SsoCtx<'_> {
        crate::service::SsoCtx {
            store: &self.store,
            public_url: &self.public_url,
            outbound: &self.outbound,
            providers: &self.oidc,
            signer: &self.signer,
            session_idle: self.session_idle,
            session_lifetime: self.session_lifetime,
        }
    }
}
