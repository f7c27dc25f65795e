//! What a run prints (markdown tables and JSON blocks) and the JSON file it writes.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};

use crate::layers::{print_table, ratios, Row};
use crate::plan::{machine, Plan};

/// Everything one run measured.
pub struct Results<'a> {
    pub plan: &'a Plan,
    pub commit: String,
    pub started: Instant,
    pub rows: Vec<Row>,
    pub mixed: Vec<Value>,
    pub counters_after_mixed: usize,
    pub scaling: Vec<Value>,
    pub writes: Value,
    pub edge_freshness: Value,
    pub l1: Vec<Value>,
    pub instructions: Value,
    /// The size of the worker's wasm as `wrangler dev` ran it.
    pub wasm_bytes: u64,
    /// Where an edge hit's CPU goes, with and without the isolate's copies (`profile.mjs`).
    pub edge_profile: Value,
    /// The edge under a Zipf mix, without and with writes: its operations and cost.
    pub edge_mix: Value,
    /// A new `wrangler dev`'s first answer, the edge worker's and a bare worker's.
    pub cold_start: Value,
    pub history: Value,
    pub search: Value,
}

fn section(title: &str, value: &impl serde::Serialize) {
    println!(
        "\n### {title}\n\n```\n{}\n```",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Prints the tables, then writes the JSON to `out` (default: BENCHMARKS.json, or
/// target/bench/quick.json for a quick run).
pub fn print_and_write(r: &Results, out: Option<PathBuf>) {
    let ratios = ratios(&r.rows);
    print_table(&r.rows, &r.plan.concurrency);
    section("ratios (origin L1 hit vs peers, same run)", &ratios);
    section("mixed workload", &r.mixed);
    section("scaling (median ms)", &r.scaling);
    section(
        "writes on one workspace, with and without the counter triggers",
        &r.writes,
    );
    println!(
        "\ncounter drift after the mixed workloads: {} bucket(s)",
        r.counters_after_mixed
    );
    section(
        "edge freshness (origin write acknowledged to a fresh edge answer)",
        &r.edge_freshness,
    );
    section("L1 size", &r.l1);
    println!(
        "\n### instructions per L1 hit (callgrind)\n\n{}",
        r.instructions
    );
    println!("\nedge worker wasm: {} bytes", r.wasm_bytes);
    section(
        "where an edge hit's CPU goes (V8 profiler in workerd, µs per request)",
        &r.edge_profile,
    );
    section(
        "a new isolate's first answer (spawning wrangler dev to its first 200, median)",
        &r.cold_start,
    );
    section(
        "the edge under a Zipf mix: operations per million reads, and a billion reads' bill",
        &r.edge_mix,
    );
    section(
        "message history (pages per layer and by cursor, ingest, event streams)",
        &r.history,
    );
    section(
        "search, one request per keystroke (cold: no cache layer; warm: L1 and Redis)",
        &r.search,
    );

    let layers: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            json!({
                "read": row.read, "target": row.target, "connections": row.connections,
                "requests": row.outcome.requests, "rps": row.outcome.rps,
                "p50Ms": row.outcome.p50_us / 1000.0, "p95Ms": row.outcome.p95_us / 1000.0,
                "p99Ms": row.outcome.p99_us / 1000.0, "errors": row.outcome.errors,
                "kvMissShare": row.kv_miss_share,
                "objectReadsPerSec": row.object_reads_per_sec,
                "cost": row.cost,
            })
        })
        .collect();
    let report = json!({
        "quick": r.plan.quick,
        "commit": r.commit,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
        "seconds": r.started.elapsed().as_secs_f64(),
        "workspaceContacts": r.plan.main_contacts,
        "workspaces": r.plan.main.len(),
        "layers": layers,
        "ratios": ratios,
        "mixed": r.mixed,
        "countersDriftAfterMixed": r.counters_after_mixed,
        "scaling": r.scaling,
        "writes": r.writes,
        "edgeFreshness": r.edge_freshness,
        "l1": r.l1,
        "instructionsPerL1Hit": r.instructions,
        "edgeWasmBytes": r.wasm_bytes,
        "edgeHitProfile": r.edge_profile,
        "edgeMix": r.edge_mix,
        "coldStart": r.cold_start,
        "messageHistory": r.history,
        "search": r.search,
    });
    let out = out.unwrap_or_else(|| {
        if r.plan.quick {
            e2e::root().join("target/bench/quick.json")
        } else {
            e2e::root().join("BENCHMARKS.json")
        }
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("output dir");
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json"))
        .expect("write results");
    println!(
        "\nwrote {} after {:.0?}",
        out.display(),
        r.started.elapsed()
    );
}
