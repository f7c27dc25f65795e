//! What every scenario shares: the plan's durations, the workspace, the checks and the
//! origins' layers.

use std::time::Duration;

use e2e::origins::Layers;
use serde_json::Value;

pub struct Plan {
    pub redis_outage: Duration,
    pub redis_hang: Duration,
    pub postgres_outage: Duration,
    pub slow: Duration,
    pub readers: usize,
    /// How long the consistency checker spends on each fault.
    pub consistency_window: Duration,
    /// Reads the consistency checker must judge in all.
    pub consistency_reads: usize,
    /// How long the checker keeps the edge from the origins' pushes.
    pub edge_outage: Duration,
    /// How long the checker pauses the read replica's replay.
    pub replica_pause: Duration,
    /// schemathesis examples per operation and pass.
    pub examples: u32,
}

pub const WS: &str = "rel1";
/// schemathesis writes contacts and settings here, apart from the fault scenarios' data.
pub const HOSTILE_WS: &str = "rel2";

pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

pub fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
    }
}

pub fn layers(redis: Option<String>, l1: bool) -> Layers {
    Layers {
        l1_bytes: if l1 { 64 * 1024 * 1024 } else { 0 },
        redis,
        namespace: format!("r{}", e2e::random_suffix()),
    }
}

/// Every request of every phase sent and answered, none with a 5xx.
pub fn no_5xx(name: &'static str, phases: &Value) -> Check {
    let clean = ["before", "during", "after"].iter().all(|p| {
        ["status5xx", "noAnswer", "notSent"]
            .iter()
            .all(|k| phases[p][k].as_u64() == Some(0))
    });
    check(name, clean, format!("{phases}"))
}

pub fn f(v: &Value, phase: &str, key: &str) -> f64 {
    v[phase][key].as_f64().unwrap_or(0.0)
}
