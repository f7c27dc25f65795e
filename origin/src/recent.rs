//! A value recomputed at most once per period and shared meanwhile: what lets a route
//! anyone may call (health) answer from a recent probe instead of one probe per request.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

pub struct Recent<T> {
    max_age: Duration,
    last: Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> Recent<T> {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            last: Mutex::new(None),
        }
    }

    /// The value, from `compute` if the last one is older than the period. Callers that
    /// arrive while it computes wait for it and share its result.
    pub async fn get<F: Future<Output = T>>(&self, compute: impl FnOnce() -> F) -> T {
        let mut last = self.last.lock().await;
        if let Some((at, value)) = last.as_ref() {
            if at.elapsed() < self.max_age {
                return value.clone();
            }
        }
        let value = compute().await;
        *last = Some((Instant::now(), value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_value_is_computed_once_per_period() {
        let recent = Recent::new(Duration::from_secs(60));
        let runs = AtomicU32::new(0);
        for _ in 0..3 {
            let n = recent
                .get(|| async { runs.fetch_add(1, Ordering::SeqCst) + 1 })
                .await;
            assert_eq!(n, 1);
        }
        let expired = Recent::new(Duration::ZERO);
        expired.get(|| async { 1 }).await;
        assert_eq!(expired.get(|| async { 2 }).await, 2);
    }
}
