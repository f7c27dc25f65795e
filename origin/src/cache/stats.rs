//! Per-instance counters behind `/health` and `/status`, mirrored to Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use metrics::{Counter, Histogram};

use serde::Serialize;
use shared::model::Source;

#[derive(Default)]
pub struct Stats {
    memory_hits: AtomicU64,
    redis_hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    errors: AtomicU64,
    db_queries: AtomicU64,
    pages_read_on: AtomicU64,
}

/// API.md's `stats` object, plus the per-layer split.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub hits: u64,
    pub misses: u64,
    pub sets: u64,
    pub deletes: u64,
    pub errors: u64,
    pub hit_rate: String,
    pub total: u64,
    pub memory_hits: u64,
    pub redis_hits: u64,
    pub stale_served: u64,
    pub database_queries: u64,
    /// Offset pages the database read on from the cursor of the page before them
    /// (`Cache::continuation`) instead of skipping the rows before them.
    pub pages_read_on: u64,
}

/// A layer's metrics, looked up once: the macros hash the name and labels into the
/// registry on every call, which was a large part of an L1 hit.
pub struct LayerMetrics {
    pub hits: Counter,
    pub read_duration: Histogram,
}

pub fn layer_metrics(source: Source) -> &'static LayerMetrics {
    static LAYERS: OnceLock<[LayerMetrics; Source::ALL.len()]> = OnceLock::new();
    let layers = LAYERS.get_or_init(|| {
        // Installed first, or these handles would record nowhere.
        crate::telemetry::metrics_handle();
        Source::ALL.map(|s| LayerMetrics {
            hits: metrics::counter!("edgecache_cache_hits_total", "layer" => s.as_str()),
            read_duration: metrics::histogram!("edgecache_read_duration_seconds", "layer" => s.as_str()),
        })
    });
    &layers[source.index()]
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub fn hit(&self, source: Source) {
        match source {
            Source::Memory => bump(&self.memory_hits),
            _ => bump(&self.redis_hits),
        }
        layer_metrics(source).hits.increment(1);
    }

    pub fn miss(&self) {
        bump(&self.misses);
        metrics::counter!("edgecache_cache_misses_total").increment(1);
    }

    pub fn stale(&self) {
        bump(&self.stale);
        metrics::counter!("edgecache_stale_served_total").increment(1);
    }

    pub fn set(&self) {
        bump(&self.sets);
    }

    pub fn delete(&self) {
        bump(&self.deletes);
    }

    pub fn error(&self) {
        bump(&self.errors);
    }

    pub fn db_query(&self) {
        bump(&self.db_queries);
        metrics::counter!("edgecache_db_queries_total").increment(1);
    }

    pub fn page_read_on(&self) {
        bump(&self.pages_read_on);
        metrics::counter!("edgecache_pages_read_on_total").increment(1);
    }

    pub fn db_queries(&self) -> u64 {
        self.db_queries.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (memory_hits, redis_hits, misses) = (
            get(&self.memory_hits),
            get(&self.redis_hits),
            get(&self.misses),
        );
        let hits = memory_hits + redis_hits;
        let total = hits + misses;
        let rate = if total == 0 {
            0.0
        } else {
            hits as f64 * 100.0 / total as f64
        };
        StatsSnapshot {
            hits,
            misses,
            sets: get(&self.sets),
            deletes: get(&self.deletes),
            errors: get(&self.errors),
            hit_rate: format!("{rate:.2}%"),
            total,
            memory_hits,
            redis_hits,
            stale_served: get(&self.stale),
            database_queries: get(&self.db_queries),
            pages_read_on: get(&self.pages_read_on),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_rate_is_a_percentage_of_lookups() {
        let s = Stats::default();
        for _ in 0..2 {
            s.hit(Source::Memory);
        }
        s.hit(Source::RedisCache);
        s.miss();
        let snap = s.snapshot();
        assert_eq!(
            (snap.hits, snap.total, snap.hit_rate.as_str()),
            (3, 4, "75.00%")
        );
    }
}
