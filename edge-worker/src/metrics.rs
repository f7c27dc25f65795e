//! Request metrics of this worker isolate: real counts and latency percentiles over the
//! last requests it served (isolates are per location and short-lived; these are not global).

use std::cell::RefCell;
use std::collections::VecDeque;

use serde_json::{json, Value};
use shared::model::{CacheStatus, Source};

const WINDOW: usize = 1000;

thread_local! {
    static ISOLATE: RefCell<Metrics> = RefCell::new(Metrics::default());
}

/// This isolate's metrics (one per isolate: a worker isolate runs on one thread).
pub fn isolate<R>(f: impl FnOnce(&mut Metrics) -> R) -> R {
    ISOLATE.with(|m| f(&mut m.borrow_mut()))
}

#[derive(Debug, Default)]
pub struct Metrics {
    total: u64,
    hits: u64,
    misses: u64,
    errors: u64,
    kv_hits: u64,
    /// Reads of KV entries answered from the isolate's copy, with no KV read.
    hot_reads: u64,
    redis_hits: u64,
    database_hits: u64,
    /// Requests to the generations' Durable Objects made to read them (what the object
    /// costs per isolate; bumps are one each on top).
    object_reads: u64,
    /// The most counters one answer of an object carried: what a key needs, not the
    /// object's table.
    largest_answer: usize,
    /// Background refills of entries past their TTL this isolate started.
    refills: u64,
    /// What the platform bills: invocations, KV reads and writes, requests to Durable
    /// Objects (reads, bumps and raises).
    invocations: u64,
    kv_reads: u64,
    kv_writes: u64,
    object_requests: u64,
    latencies_ms: VecDeque<f64>,
}

impl Metrics {
    /// Records one answered read: `source` is where the data came from.
    pub fn read(&mut self, status: CacheStatus, source: Source, ms: f64) {
        self.total += 1;
        match status {
            CacheStatus::Hit | CacheStatus::Stale => self.hits += 1,
            CacheStatus::Miss | CacheStatus::Bypass => self.misses += 1,
        }
        match source {
            Source::CloudflareKv => self.kv_hits += 1,
            Source::RedisCache | Source::Memory => self.redis_hits += 1,
            Source::Database => self.database_hits += 1,
        }
        self.latency(ms);
    }

    pub fn hot_read(&mut self) {
        self.hot_reads += 1;
    }

    pub fn object_read(&mut self) {
        self.object_reads += 1;
    }

    pub fn object_answered(&mut self, counters: usize) {
        self.largest_answer = self.largest_answer.max(counters);
    }

    pub fn refill(&mut self) {
        self.refills += 1;
    }

    pub fn invoked(&mut self) {
        self.invocations += 1;
    }

    pub fn kv_read(&mut self) {
        self.kv_reads += 1;
    }

    pub fn kv_written(&mut self) {
        self.kv_writes += 1;
    }

    pub fn object_requested(&mut self) {
        self.object_requests += 1;
    }

    pub fn error(&mut self, ms: f64) {
        self.total += 1;
        self.errors += 1;
        self.latency(ms);
    }

    fn latency(&mut self, ms: f64) {
        if self.latencies_ms.len() == WINDOW {
            self.latencies_ms.pop_front();
        }
        self.latencies_ms.push_back(ms);
    }

    fn percentile(sorted: &[f64], q: f64) -> f64 {
        shared::stats::quantile(sorted, q).unwrap_or(0.0)
    }

    /// API.md's `metrics` object.
    pub fn snapshot(&self) -> Value {
        let mut sorted: Vec<f64> = self.latencies_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let avg = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        };
        let lookups = self.hits + self.misses;
        let hit_rate = if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        };
        json!({
            "requests": {"total": self.total, "cache_hits": self.hits, "cache_misses": self.misses, "errors": self.errors},
            "performance": {
                "avg_response_time_ms": avg,
                "p95_response_time_ms": Self::percentile(&sorted, 0.95),
                "p99_response_time_ms": Self::percentile(&sorted, 0.99),
            },
            "cache": {
                "hit_rate": hit_rate,
                "kv_hits": self.kv_hits,
                "isolate_copy_hits": self.hot_reads,
                "redis_hits": self.redis_hits,
                "database_hits": self.database_hits,
            },
            "generations": {"object_reads": self.object_reads, "largest_answer": self.largest_answer},
            "refills": {"started": self.refills},
            "memory": {"wasm_bytes": wasm_bytes()},
            "operations": {
                "invocations": self.invocations,
                "kv_reads": self.kv_reads,
                "kv_writes": self.kv_writes,
                "object_requests": self.object_requests,
            },
        })
    }
}

/// The isolate's wasm memory: it only grows, so it is the most the worker ever held.
fn wasm_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 65_536;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles_follow_what_was_recorded() {
        let mut m = Metrics::default();
        for i in 1..=100 {
            m.read(CacheStatus::Hit, Source::CloudflareKv, f64::from(i));
        }
        m.read(CacheStatus::Miss, Source::Database, 1.0);
        m.error(1.0);
        m.object_read();
        m.object_answered(7);
        m.object_answered(3);
        let s = m.snapshot();
        assert_eq!(s["generations"]["object_reads"], 1);
        assert_eq!(s["generations"]["largest_answer"], 7);
        assert_eq!(s["requests"]["total"], 102);
        assert_eq!(s["cache"]["kv_hits"], 100);
        assert_eq!(s["cache"]["database_hits"], 1);
        assert_eq!(s["performance"]["p99_response_time_ms"], 99.0);
    }
}
