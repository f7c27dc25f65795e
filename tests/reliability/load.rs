//! Open-loop load at a fixed rate from this process (a second process to the origin):
//! requests are sent on schedule whether or not earlier ones have answered, as real
//! traffic does, with a cap on requests in flight so an outage cannot exhaust the
//! harness itself. Every answer is kept with when it was sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
    pub workspace: String,
}

#[derive(Debug, Clone)]
pub struct Sample {
    /// When the request was sent, from the start of the run.
    pub at: Duration,
    pub latency: Duration,
    /// 0 when no answer came (connection refused, harness timeout) or it was never sent.
    pub status: u16,
    /// Not sent: the harness already had its cap of requests in flight (the target was
    /// that slow).
    pub unsent: bool,
    pub stale: bool,
    /// The answer said when to retry (`Retry-After`).
    pub retry_after: bool,
}

/// Sends `rate` requests a second for `duration`, cycling through `targets`.
pub async fn run(targets: Arc<Vec<Target>>, rate: u32, duration: Duration) -> Vec<Sample> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let in_flight = Arc::new(Semaphore::new(1024));
    let started = Instant::now();
    let tick = Duration::from_millis(10);
    let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0);
    let mut owed = 0.0;
    let mut n = 0usize;
    let mut ticker = tokio::time::interval(tick);
    while started.elapsed() < duration {
        ticker.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let target = targets[n % targets.len()].clone();
            n += 1;
            let (http, tx) = (http.clone(), tx.clone());
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                let _ = tx.send(Sample {
                    at: started.elapsed(),
                    latency: Duration::ZERO,
                    status: 0,
                    unsent: true,
                    stale: false,
                    retry_after: false,
                });
                continue;
            };
            tokio::spawn(async move {
                let at = started.elapsed();
                let sent = Instant::now();
                let answer = http
                    .get(&target.url)
                    .bearer_auth(&target.token)
                    .header("X-Workspace-ID", &target.workspace)
                    .send()
                    .await;
                let (status, stale, retry_after) = match answer {
                    Ok(r) => {
                        let stale = r
                            .headers()
                            .get("x-cache-status")
                            .is_some_and(|v| v == "STALE");
                        let retry_after = r.headers().contains_key("retry-after");
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        (status, stale, retry_after)
                    }
                    Err(_) => (0, false, false),
                };
                let _ = tx.send(Sample {
                    at,
                    latency: sent.elapsed(),
                    status,
                    unsent: false,
                    stale,
                    retry_after,
                });
                drop(permit);
            });
        }
    }
    drop(tx);
    let mut samples = Vec::new();
    while let Some(s) = rx.recv().await {
        samples.push(s);
    }
    samples.sort_by_key(|s| s.at);
    samples
}

/// Over the requests sent: one the harness could not send has no latency (`notSent`
/// counts those), and taking it as 0 would pull the p99 down where the target stalled.
pub fn p99_ms(samples: &[&Sample]) -> f64 {
    let mut times: Vec<Duration> = samples
        .iter()
        .filter(|s| !s.unsent)
        .map(|s| s.latency)
        .collect();
    times.sort();
    shared::stats::quantile(&times, 0.99).map_or(0.0, |t| t.as_secs_f64() * 1000.0)
}

/// Counts and p99 of the samples sent within `[from, to)`.
pub fn window(samples: &[Sample], from: Duration, to: Duration) -> Value {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .collect();
    let count = |f: &dyn Fn(&Sample) -> bool| inside.iter().filter(|s| f(s)).count();
    json!({
        "requests": inside.len(),
        "ok": count(&|s| (200..300).contains(&s.status)),
        "stale": count(&|s| s.stale),
        "status5xx": count(&|s| s.status >= 500),
        "status500": count(&|s| s.status == 500),
        "status503": count(&|s| s.status == 503),
        "status503WithoutRetryAfter": count(&|s| s.status == 503 && !s.retry_after),
        "status504": count(&|s| s.status == 504),
        "noAnswer": count(&|s| s.status == 0 && !s.unsent),
        "notSent": count(&|s| s.unsent),
        "p99Ms": p99_ms(&inside),
    })
}
