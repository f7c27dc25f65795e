//! What the admin panel charts: recent latencies per layer and reads per workspace,
//! kept in bounded memory (a window of samples, a capped map of workspaces). Every read
//! records here, so recording takes no lock that another reader could hold: samples go
//! into a ring of atomics, reads into per-workspace atomic counters that a shared read
//! lock finds (the write lock is taken only to add a workspace).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

use serde_json::{json, Value};
use shared::model::Source;
use shared::stats::quantile;
use shared::WorkspaceId;

use crate::FastHash;

const SAMPLES_PER_LAYER: usize = 2048;
/// Past this many workspaces, new ones are not tracked (their reads still count globally).
const MAX_WORKSPACES: usize = 10_000;
/// A slot of the ring not written yet (no latency has these bits: they are a NaN).
const EMPTY: u64 = u64::MAX;

/// The last `SAMPLES_PER_LAYER` latencies of a layer (milliseconds, as `f64` bits).
struct Window {
    next: AtomicUsize,
    samples: Box<[AtomicU64]>,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            next: AtomicUsize::new(0),
            samples: (0..SAMPLES_PER_LAYER)
                .map(|_| AtomicU64::new(EMPTY))
                .collect(),
        }
    }
}

#[derive(Default)]
struct WorkspaceReads {
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
pub struct Traffic {
    /// Memory, Redis, the database.
    layers: [Window; 3],
    workspaces: RwLock<HashMap<WorkspaceId, WorkspaceReads, FastHash>>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    quantile(sorted, q).unwrap_or(0.0)
}

const LAYERS: [Source; 3] = [Source::Memory, Source::RedisCache, Source::Database];

impl Traffic {
    fn window(&self, source: Source) -> Option<&Window> {
        let i = LAYERS.iter().position(|s| *s == source)?;
        self.layers.get(i)
    }

    pub fn latency(&self, source: Source, millis: f64) {
        if let Some(w) = self.window(source) {
            let slot = w.next.fetch_add(1, Ordering::Relaxed) % SAMPLES_PER_LAYER;
            w.samples[slot].store(millis.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn read(&self, ws: &WorkspaceId, hit: bool) {
        let bump = |reads: &WorkspaceReads| {
            let counter = if hit { &reads.hits } else { &reads.misses };
            counter.fetch_add(1, Ordering::Relaxed);
        };
        if let Some(reads) = self
            .workspaces
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(ws)
        {
            bump(reads);
            return;
        }
        let mut map = self.workspaces.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_WORKSPACES && !map.contains_key(ws) {
            return;
        }
        bump(map.entry(ws.clone()).or_default());
    }

    /// p50/p95/p99 in milliseconds over each layer's recent reads.
    pub fn latencies(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (source, w) in LAYERS.iter().zip(&self.layers) {
            let mut sorted: Vec<f64> = w
                .samples
                .iter()
                .map(|s| s.load(Ordering::Relaxed))
                .filter(|bits| *bits != EMPTY)
                .map(f64::from_bits)
                .collect();
            sorted.sort_by(f64::total_cmp);
            out.insert(
                source.as_str().to_owned(),
                json!({
                    "samples": sorted.len(),
                    "p50": percentile(&sorted, 0.50),
                    "p95": percentile(&sorted, 0.95),
                    "p99": percentile(&sorted, 0.99),
                }),
            );
        }
        Value::Object(out)
    }

    /// The `n` busiest workspaces, with their hit rates.
    pub fn top_workspaces(&self, n: usize) -> Value {
        let map = self.workspaces.read().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> = map
            .iter()
            .map(|(ws, r)| {
                let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
                (ws.clone(), load(&r.hits), load(&r.misses))
            })
            .collect();
        drop(map);
        rows.sort_by_key(|(_, hits, misses)| std::cmp::Reverse(hits + misses));
        let rows: Vec<Value> = rows
            .into_iter()
            .take(n)
            .map(|(ws, hits, misses)| {
                let total = hits + misses;
                let rate = if total == 0 { 0.0 } else { hits as f64 * 100.0 / total as f64 };
                json!({"workspaceId": ws, "reads": total, "hits": hits, "misses": misses, "hitRate": rate})
            })
            .collect();
        Value::Array(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_samples() {
        let t = Traffic::default();
        for i in 1..=100 {
            t.latency(Source::Memory, f64::from(i));
        }
        let l = t.latencies();
        assert_eq!(
            (l["memory"]["p50"].as_f64(), l["memory"]["p99"].as_f64()),
            (Some(51.0), Some(99.0))
        );
        assert_eq!(l["database"]["samples"], 0);
    }

    #[test]
    fn the_busiest_workspaces_come_first() {
        let t = Traffic::default();
        let (a, b) = (
            WorkspaceId::parse("a").expect("ws"),
            WorkspaceId::parse("b").expect("ws"),
        );
        t.read(&a, true);
        for _ in 0..3 {
            t.read(&b, false);
        }
        let top = t.top_workspaces(5);
        assert_eq!(top[0]["workspaceId"], "b");
        assert_eq!(top[1]["hitRate"], 100.0);
    }
}
