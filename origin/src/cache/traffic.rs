//! What the admin panel charts: recent latencies per layer and reads per workspace,
//! kept in bounded memory (a window of samples, a capped map of workspaces).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{json, Value};
use shared::model::Source;
use shared::stats::quantile;
use shared::WorkspaceId;

const SAMPLES_PER_LAYER: usize = 2048;
/// Past this many workspaces, new ones are not tracked (their reads still count globally).
const MAX_WORKSPACES: usize = 10_000;

#[derive(Default)]
struct Window {
    samples: VecDeque<f64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceReads {
    hits: u64,
    misses: u64,
}

#[derive(Default)]
pub struct Traffic {
    layers: Mutex<HashMap<&'static str, Window>>,
    workspaces: Mutex<HashMap<WorkspaceId, WorkspaceReads>>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    quantile(sorted, q).unwrap_or(0.0)
}

impl Traffic {
    pub fn latency(&self, source: Source, millis: f64) {
        let mut layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        let w = layers.entry(source.as_str()).or_default();
        if w.samples.len() == SAMPLES_PER_LAYER {
            w.samples.pop_front();
        }
        w.samples.push_back(millis);
    }

    pub fn read(&self, ws: &WorkspaceId, hit: bool) {
        let mut map = self.workspaces.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_WORKSPACES && !map.contains_key(ws) {
            return;
        }
        let r = map.entry(ws.clone()).or_default();
        if hit {
            r.hits += 1;
        } else {
            r.misses += 1;
        }
    }

    /// p50/p95/p99 in milliseconds over each layer's recent reads.
    pub fn latencies(&self) -> Value {
        let layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = serde_json::Map::new();
        for source in [Source::Memory, Source::RedisCache, Source::Database] {
            let mut sorted: Vec<f64> = layers
                .get(source.as_str())
                .map(|w| w.samples.iter().copied().collect())
                .unwrap_or_default();
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
        let map = self.workspaces.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> = map.iter().map(|(ws, r)| (ws.clone(), *r)).collect();
        rows.sort_by_key(|(_, r)| std::cmp::Reverse(r.hits + r.misses));
        let rows: Vec<Value> = rows
            .into_iter()
            .take(n)
            .map(|(ws, r)| {
                let total = r.hits + r.misses;
                let rate = if total == 0 { 0.0 } else { r.hits as f64 * 100.0 / total as f64 };
                json!({"workspaceId": ws, "reads": total, "hits": r.hits, "misses": r.misses, "hitRate": rate})
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
