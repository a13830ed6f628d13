//! Binding and serving: [`serve`] makes the state from the configuration, starts the webhook
//! deliverer and serves the router until a shutdown signal.
//!
//! Connections are served with bounds a slow or hostile client cannot stretch: a deadline for each
//! request's headers (which also ends idle kept-alive connections), a cap on open connections,
//! and a small per-connection read buffer. `axum::serve` has none of these, so one client holding
//! thousands of half-sent requests could exhaust file descriptors and memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::app::AppState;
use crate::config::Global;
use crate::store::Store;

/// What a connection may buffer while reading a request head: far above any real request's
/// headers, far below what thousands of connections could pin otherwise (hyper's default ~400 KB).
const READ_BUFFER: usize = 64 * 1024;
/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Connections that have not yet sent a whole request, oldest first: the ones given up when the
/// cap is reached, since a client that has sent nothing useful loses nothing it was promised.
#[derive(Default)]
struct Waiting {
    by_id: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn evict_oldest(&self) -> bool {
        match self.lock().pop_first() {
            Some((_, evict)) => {
                evict.notify_one();
                true
            }
            None => false,
        }
    }
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
    let limits = Limits {
        max_connections: global.max_connections as usize,
        header_timeout: std::time::Duration::from_secs(global.header_timeout_secs),
    };
    run(
        listener,
        crate::http::router(state),
        limits,
        shutdown_signal(),
    )
    .await;
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

/// Serves `router` on `listener` until `shutdown` completes, then drains requests in flight.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let waiting = Arc::new(Waiting::default());
    let open = Arc::new(AtomicUsize::new(0));
    let ids = AtomicU64::new(0);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(READ_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout)
        .max_concurrent_streams(100);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: the listener
                    // itself is fine, so wait a moment rather than spin or stop.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Acquire) >= limits.max_connections && !waiting.evict_oldest() {
            // Every connection is busy with a real request: refuse this one rather than queue it.
            metrics::counter!("idbridge_connections_refused_total").increment(1);
            drop(stream);
            continue;
        }
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        waiting.lock().insert(id, evict.clone());
        open.fetch_add(1, Ordering::AcqRel);
        let guard = Open {
            id,
            open: open.clone(),
            waiting: waiting.clone(),
        };
        let router = router.clone();
        let marker = waiting.clone();
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let first = std::sync::atomic::AtomicBool::new(true);
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    // A whole request head arrived: this connection is no longer a candidate for
                    // eviction. Only its first request takes the shared lock.
                    if first.swap(false, Ordering::Relaxed) {
                        marker.lock().remove(&id);
                    }
                    let mut req = req.map(axum::body::Body::new);
                    // The client's address, for the limits per address at sign-in.
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    router.clone().oneshot(req)
                });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = evict.notified() => {
                    metrics::counter!("idbridge_connections_evicted_total").increment(1);
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + DRAIN;
    while open.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts a connection while its task lives, and forgets it as a waiting one when it ends.
struct Open {
    id: u64,
    open: Arc<AtomicUsize>,
    waiting: Arc<Waiting>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.waiting.lock().remove(&self.id);
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}
