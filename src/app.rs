//! Application state, the router, and serving with graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Global;
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

pub fn build_router(state: AppState) -> Router {
    crate::http::router(state)
}

pub async fn serve(store: Store, global: &Global) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&global.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {}", global.listen, io_cause(&e)))?;
    let addr = listener.local_addr()?;
    // Without an explicit public URL, the address actually bound (port 0 picks one).
    let public_url = match &global.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("http://{addr}"),
    };
    let mut state = AppState::new(store.clone(), &public_url);
    state.outbound = crate::net::Outbound::new(global.allow_private_urls, global.dns_server);
    state.session_idle = global.session_idle();
    state.session_lifetime = global.session_lifetime();
    state.dns.server = global.dns_server;
    state.metrics_token = global.metrics_token.as_deref().map(Arc::from);
    state.rate = Arc::new(crate::rate::RateLimits::new(&global.rates()));
    state.sizes = global.sizes();
    let forget = tokio::spawn(forget_idle_keys(state.rate.clone()));
    if state.metrics_token.is_none() {
        tracing::info!("/metrics is off: set IDBRIDGE_METRICS_TOKEN to serve it");
    }
    let worker = tokio::spawn(crate::webhook::worker(
        store,
        state.outbound.clone(),
        std::time::Duration::from_secs(1),
    ));
    tracing::info!(%addr, public_url, "listening");
    // One write, errors ignored: a closed stdout (a supervisor, a pipe to `head`) must not stop
    // the service.
    let banner = format!(
        "idbridge is listening on http://{addr} (public URL {public_url})\n\
         SCIM base URL of a directory: {public_url}/scim/v2/<directory id>\n\
         admin API: {public_url}/api/v1 (OpenAPI at {public_url}/api/v1/openapi.json)\n\
         OpenID provider for the SaaS: {public_url}/.well-known/openid-configuration\n\
         create one with: idbridge org create --name Acme && idbridge directory create --org Acme\n"
    );
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|_| out.flush());
    }
    let limits = crate::server::Limits {
        max_connections: global.max_connections as usize,
        header_timeout: std::time::Duration::from_secs(global.header_timeout_secs),
    };
    crate::server::run(listener, build_router(state), limits, shutdown_signal()).await;
    worker.abort();
    forget.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Keys made up by a client (unknown client ids, addresses) must not pin memory: once a minute,
/// the limiters drop every key whose allowance is full again.
async fn forget_idle_keys(rate: Arc<crate::rate::RateLimits>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        rate.forget_idle();
    }
}

/// The cause in the operator's words, without the OS error number.
fn io_cause(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => "address already in use".into(),
        ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
