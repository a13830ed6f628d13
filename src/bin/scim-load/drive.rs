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
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
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
