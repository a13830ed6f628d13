//! Runs a phase's requests on N concurrent clients and sums up what they saw.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one phase measured.
pub struct Outcome {
    pub ops: usize,
    pub elapsed: Duration,
    /// Latency of each successful or failed request, in the order they were issued.
    pub latencies: Vec<(usize, Duration)>,
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency percentile `p` (0..=1) in milliseconds, over the requests whose index is in
    /// `range` (all of them when `None`).
    pub fn percentile(&self, p: f64, range: Option<std::ops::Range<usize>>) -> f64 {
        let mut lat: Vec<Duration> = self
            .latencies
            .iter()
            .filter(|(i, _)| range.as_ref().is_none_or(|r| r.contains(i)))
            .map(|(_, d)| *d)
            .collect();
        if lat.is_empty() {
            return 0.0;
        }
        lat.sort_unstable();
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    }
}

/// Calls `f(i)` for every `i` in `0..n` on `concurrency` tasks, each taking the next index when its
/// previous request is answered (a closed loop, as an IdP's sync workers behave).
pub async fn run<F, Fut>(n: usize, concurrency: usize, f: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    drive(n, concurrency, f, move |_| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        (i < n).then_some(i)
    })
    .await
}

/// Calls `f(i)` for every `i` in `0..n` on `concurrency` tasks, each walking its own stretch of
/// the indices in order, one request after the answer to the one before: as concurrent imports
/// page through a list, each asking for the page after the one it has just read.
pub async fn run_in_stretches<F, Fut>(n: usize, concurrency: usize, f: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let tasks = concurrency.max(1);
    let stretch = move |k: usize| k * n / tasks..(k + 1) * n / tasks;
    let cursors: Arc<Vec<AtomicUsize>> = Arc::new(
        (0..tasks)
            .map(|k| AtomicUsize::new(stretch(k).start))
            .collect(),
    );
    drive(n, tasks, f, move |k| {
        let i = cursors[k].fetch_add(1, Ordering::Relaxed);
        stretch(k).contains(&i).then_some(i)
    })
    .await
}

/// `concurrency` tasks; task `k` calls `f` on each index `next(k)` gives until it gives none.
async fn drive<F, Fut, N>(n: usize, concurrency: usize, f: F, next: N) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
    N: Fn(usize) -> Option<usize> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(next);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for k in 0..concurrency.max(1) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            while let Some(i) = next(k) {
                let t = Instant::now();
                if let Err(e) = f(i).await {
                    errors.push(e);
                }
                lat.push((i, t.elapsed()));
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok((lat, errs)) => {
                latencies.extend(lat);
                errors.extend(errs);
            }
            Err(e) => errors.push(format!("client task failed: {e}")),
        }
    }
    Outcome {
        ops: n,
        elapsed: start.elapsed(),
        latencies,
        errors,
    }
}
