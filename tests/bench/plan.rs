//! What a run measures, full or quick, and the machine it ran on.

use std::time::Duration;

use serde_json::{json, Value};

pub struct Plan {
    pub quick: bool,
    pub run_for: Duration,
    /// Rounds of the L1 hit, nginx and the ceiling, measured back to back (see
    /// `layers::measure`).
    pub peer_rounds: usize,
    /// Each run of the edge's Zipf mix (`edge_cost`).
    pub edge_mix_for: Duration,
    /// New `wrangler dev`s timed to their first answer, per worker.
    pub cold_starts: usize,
    /// Edge hits sampled by V8's profiler, per edge and read.
    pub profiled_reads: u32,
    pub concurrency: Vec<u32>,
    /// Workspaces of the main runs and the mixed workload, and contacts in each.
    pub main: Vec<String>,
    pub main_contacts: u32,
    pub scaling: Vec<(String, u32)>,
    pub mixed_for: Duration,
    pub mixed_clients: usize,
    /// Reads a second of the paced mixed runs: where the read p99 stands below, just above
    /// (1,400) and well above the mixed workload goal's rate (20× the 69 of the workload
    /// before it, 1,380; a run at exactly that rate reads a few reads fewer, by chance).
    pub mixed_paced_reads: Vec<f64>,
    pub l1_entries: Vec<usize>,
    /// Keys of the edge KV-miss run at each concurrency level: more than the run can ask
    /// for, so that none repeats (the edge's own counters report the miss share).
    pub miss_counts: Vec<usize>,
    pub miss_pages: Vec<usize>,
    pub scaling_runs: usize,
    pub writes_for: Duration,
    /// Writes timed from their acknowledgement to a fresh edge answer.
    pub freshness_writes: usize,
    /// Workspaces of message history: id, conversations, messages (half of them in the
    /// first conversation; see `Store::seed_messages`).
    pub history: Vec<(String, u32, u64)>,
    pub ingest_for: Duration,
    /// Clients of the ingest run, half posting and half reading the head page.
    pub ingest_clients: usize,
    /// Event streams held open on one instance, and the writes they are told of.
    pub streams: usize,
    pub stream_writes: usize,
}

impl Plan {
    pub fn new(quick: bool) -> Self {
        if quick {
            return Self {
                quick,
                run_for: Duration::from_secs(1),
                peer_rounds: 1,
                profiled_reads: 300,
                cold_starts: 1,
                edge_mix_for: Duration::from_secs(2),
                concurrency: vec![1, 16],
                main: vec!["qbench1".into()],
                main_contacts: 20_000,
                scaling: vec![("qscale10k".into(), 10_000)],
                mixed_for: Duration::from_secs(5),
                mixed_clients: 16,
                mixed_paced_reads: vec![200.0],
                l1_entries: vec![1_000, 100_000],
                miss_counts: vec![150, 300],
                miss_pages: vec![150, 400],
                scaling_runs: 3,
                writes_for: Duration::from_secs(2),
                freshness_writes: 10,
                history: vec![("qchat".into(), 2, 40_000)],
                ingest_for: Duration::from_secs(2),
                ingest_clients: 8,
                streams: 100,
                stream_writes: 10,
            };
        }
        Self {
            quick,
            run_for: Duration::from_secs(3),
            peer_rounds: 3,
            profiled_reads: 250,
            cold_starts: 5,
            edge_mix_for: Duration::from_secs(10),
            concurrency: vec![1, 16, 64],
            main: (1..=5).map(|i| format!("bench{i}")).collect(),
            main_contacts: 200_000,
            scaling: vec![
                ("scale10k".into(), 10_000),
                ("scale100k".into(), 100_000),
                ("scale1m".into(), 1_000_000),
            ],
            mixed_for: Duration::from_secs(30),
            mixed_clients: 32,
            mixed_paced_reads: vec![700.0, 1000.0, 1400.0, 2000.0],
            l1_entries: vec![1_000, 100_000, 1_000_000],
            miss_counts: vec![1_000, 2_500, 2_500],
            miss_pages: vec![1_000, 1_000, 1_500],
            scaling_runs: 5,
            writes_for: Duration::from_secs(10),
            freshness_writes: 100,
            history: vec![
                ("chat1m".into(), 1, 1_000_000),
                ("chat10m".into(), 1_000, 10_000_000),
            ],
            ingest_for: Duration::from_secs(10),
            ingest_clients: 16,
            streams: 1_000,
            stream_writes: 50,
        }
    }

    pub fn database(&self) -> &'static str {
        if self.quick {
            "edgecache_bench_quick"
        } else {
            "edgecache_bench"
        }
    }
}

/// The commit a run measures, read as it starts: `-dirty` when tracked files had changes.
pub fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(e2e::root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if changes.is_empty() => head,
        _ => format!("{head}-dirty"),
    }
}

pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memoryGiB": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
    })
}
