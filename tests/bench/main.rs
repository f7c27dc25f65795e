//! The benchmark harness: `scripts/bench` (full, about 8 minutes on 2 cores once seeded) or
//! `scripts/bench --quick` (under a minute, run by CI; numbers printed, never asserted).
//!
//! It seeds its own database, starts release-built origins (one per layer under test),
//! the edge worker in `wrangler dev`, nginx `proxy_cache` and a bare hyper ceiling, drives
//! them with wrk from a second process, then runs a mixed Zipf workload with writes, the
//! scaling runs and the L1 memory runs. It prints markdown tables and writes JSON.

mod ceiling;
mod database;
mod edge_cost;
mod freshness;
mod history;
mod instructions;
mod layers;
mod mixed;
mod plan;
mod report;
mod rng;
mod scaling;
mod search;
mod search_cost;
mod stack;
mod writes;
mod wrk;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::database::database;
use crate::layers::{body_of, Reads, Targets};
use crate::plan::Plan;
use crate::report::Results;
use crate::wrk::Req;
use e2e::origins::{self, token, Layers};

#[derive(Parser)]
#[command(about = "Benchmark every layer of edgecache against its peers")]
struct Cli {
    /// A short run for CI: smaller data, fewer and shorter runs.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON results (default: BENCHMARKS.json, or
    /// target/bench/quick.json with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only the mixed workload, printed and not written: to compare settings such as
    /// `DB_READ_CONCURRENCY`, which the origins it starts take from the environment.
    #[arg(long)]
    mixed_only: bool,
    /// Only the search runs, printed and not written (the first run seeds as a full one).
    #[arg(long)]
    search_only: bool,
    /// Only the edge's cold start, printed: the worker built in this folder (its index.js
    /// and wasm, as `scripts/build-worker` leaves them in edge-worker/build), to compare
    /// builds.
    #[arg(long)]
    cold_start_of: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Subcommand)]
enum Sub {
    /// Serve one file's bytes on every path (the ceiling; started by the harness itself).
    #[command(hide = true)]
    Ceiling {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        body: PathBuf,
    },
}

fn l1_runs(entries: &[usize]) -> Vec<Value> {
    entries
        .iter()
        .filter_map(|n| {
            let output = Command::new(origins::origin_binary())
                .args(["bench", "--l1-entries", &n.to_string()])
                .env("RUST_LOG", "warn")
                .output()
                .expect("origin bench --l1-entries");
            assert!(output.status.success(), "origin bench --l1-entries failed");
            let stdout = String::from_utf8_lossy(&output.stdout);
            stdout.lines().find_map(|l| serde_json::from_str(l).ok())
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Some(Sub::Ceiling { port, body }) = cli.command {
        let body = std::fs::read(&body).expect("ceiling body");
        ceiling::serve(port, body.into()).await.expect("ceiling");
        return;
    }
    let plan = Plan::new(cli.quick);
    let commit = plan::commit();
    if let Some(build) = cli.cold_start_of {
        let figures = stack::cold_start(&build, plan.cold_starts).await;
        println!("{}", serde_json::to_string_pretty(&figures).expect("json"));
        return;
    }
    let started = Instant::now();
    let (db, url) = database(&plan).await;
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let run_ns = format!("b{}", e2e::random_suffix());
    let layers = |l1_bytes: u64, redis: Option<&String>, namespace: &str| Layers {
        l1_bytes,
        redis: redis.cloned(),
        namespace: namespace.to_owned(),
    };
    let l1 = 256 * 1024 * 1024;
    if cli.mixed_only {
        let layers = layers(l1, Some(&redis), &format!("{run_ns}m"));
        let (runs, drift) = mixed::both_shares(&db, &url, &layers, &plan).await;
        let out = serde_json::json!({"mixed": runs, "countersDriftAfterMixed": drift});
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        fail_on(mixed::freshness_failures(&runs, drift));
        return;
    }
    if cli.search_only {
        let search = search_run(&db, &url, &redis, &format!("{run_ns}s"), &plan).await;
        println!("{}", serde_json::to_string_pretty(&search).expect("json"));
        return;
    }
    let memory = origins::origin(&url, &layers(l1, Some(&redis), &run_ns)).await;
    let l2 = origins::origin(&url, &layers(0, Some(&redis), &run_ns)).await;
    let uncached = origins::origin(&url, &layers(0, None, &run_ns)).await;
    let edge = stack::edge(memory.port, &run_ns, &[]).await;
    let edge_base = format!("http://127.0.0.1:{}", edge.port);
    let edge_no_copy = stack::edge(memory.port, &run_ns, &[("EDGE_HOT_BYTES", "0")]).await;
    let edge_no_copy_base = format!("http://127.0.0.1:{}", edge_no_copy.port);
    // An origin that pushes its changes to the worker (and says when it has pushed them
    // all, without which the worker serves no hits); it takes the freshness writes below.
    let writer = origins::origin_with(
        &url,
        &layers(l1, Some(&redis), &run_ns),
        &[("EDGE_URL", &edge_base)],
    )
    .await;
    // The second edge's own (its outbox is apart from the first's); it takes no writes.
    let marker = origins::origin_with(
        &url,
        &layers(l1, Some(&redis), &format!("{run_ns}c")),
        &[("EDGE_URL", &edge_no_copy_base)],
    )
    .await;
    e2e::wait_edge_ready(&edge_base, Duration::from_secs(60)).await;
    e2e::wait_edge_ready(&edge_no_copy_base, Duration::from_secs(60)).await;
    let wasm_bytes = std::fs::metadata(e2e::root().join("edge-worker/build/index_bg.wasm"))
        .map_or(0, |m| m.len());
    let cold_start =
        stack::cold_start(&e2e::root().join("edge-worker/build"), plan.cold_starts).await;
    let nginx = stack::nginx(memory.port).await;

    let ws = plan.main[0].as_str();
    let board = origins::boards(&db, ws).await;
    let user = token("user_3", ws, false);
    let hot = |path: String| {
        vec![Req {
            path,
            token: user.clone(),
        }]
    };
    let counts_path = format!("/api/cache-settings/workspace/{ws}/counts");
    let edge_counts_path = format!("/api/workspaces/{ws}/counts");
    let page_path = format!("/api/boards/{}/contacts?page=1", board[0]);
    let body_dir = std::env::temp_dir().join(format!("edgecache-bench-{run_ns}"));
    std::fs::create_dir_all(&body_dir).expect("body dir");
    let counts_body = body_dir.join("counts.json");
    let page_body = body_dir.join("page.json");
    std::fs::write(
        &counts_body,
        body_of(&memory.base(), ws, &hot(counts_path.clone())[0]).await,
    )
    .expect("counts body");
    std::fs::write(
        &page_body,
        body_of(&memory.base(), ws, &hot(page_path.clone())[0]).await,
    )
    .expect("page body");
    let ceiling_counts = stack::ceiling(&counts_body).await;
    let ceiling_page = stack::ceiling(&page_body).await;
    let bare_counts = stack::bare_worker(&counts_body).await;
    let bare_page = stack::bare_worker(&page_body).await;

    let targets = Targets {
        memory: memory.base(),
        l2: l2.base(),
        uncached: uncached.base(),
        edge: edge_base.clone(),
        edge_no_copy: edge_no_copy_base,
        nginx: format!("http://127.0.0.1:{}", nginx.port),
        ceiling_counts: format!("http://127.0.0.1:{}", ceiling_counts.port),
        ceiling_page: format!("http://127.0.0.1:{}", ceiling_page.port),
        bare_counts: format!("http://127.0.0.1:{}", bare_counts.port),
        bare_page: format!("http://127.0.0.1:{}", bare_page.port),
    };
    let reads = Reads {
        counts: counts_path.clone(),
        edge_counts: edge_counts_path,
        page: page_path.clone(),
    };
    // First of the edge's runs, in workerd as it starts: workerd's own memory grows over a
    // run (the worker's wasm stays at 1 MB), and past a few GB its inspector stops answering.
    let mut edge_profile = serde_json::Map::new();
    for (name, counts_at, page_at) in [
        (
            "bareWorker",
            (bare_counts.port, bare_counts.inspector),
            (bare_page.port, bare_page.inspector),
        ),
        (
            "isolateCopy",
            (edge.port, edge.inspector),
            (edge.port, edge.inspector),
        ),
        (
            "noIsolateCopy",
            (edge_no_copy.port, edge_no_copy.inspector),
            (edge_no_copy.port, edge_no_copy.inspector),
        ),
    ] {
        let mut by_read = serde_json::Map::new();
        for (read, at, path) in [
            ("counts", counts_at, &reads.edge_counts),
            ("page", page_at, &reads.page),
        ] {
            let figures = stack::profile(at, path, &user, ws, plan.profiled_reads);
            by_read.insert(read.to_owned(), figures);
        }
        edge_profile.insert(name.to_owned(), by_read.into());
    }
    let rows = layers::measure(&plan, ws, &board, &user, &targets, &reads).await;
    let edge_mix = edge_cost::measure(&db, (&edge_base, &writer.base()), ws, &board, &plan).await;
    let edge_freshness =
        freshness::measure(&db, &writer.base(), &edge_base, ws, plan.freshness_writes).await;
    drop((writer, edge, nginx, ceiling_counts, ceiling_page));
    drop((marker, edge_no_copy));
    drop((bare_counts, bare_page));
    let _ = std::fs::remove_dir_all(&body_dir);

    drop((memory, l2));
    let (mixed, counters_after_mixed) = mixed::both_shares(
        &db,
        &url,
        &layers(l1, Some(&redis), &format!("{run_ns}m")),
        &plan,
    )
    .await;

    let mut scaling = Vec::new();
    for (w, n) in &plan.scaling {
        scaling.push(
            scaling::measure(
                &db,
                &uncached.base(),
                w,
                *n,
                &token("user_3", w, false),
                plan.scaling_runs,
            )
            .await,
        );
    }
    drop(uncached);
    let writes = writes::measure(&db, &url, &plan.main[0], plan.writes_for).await;
    let history = history::measure(&db, &url, &redis, &format!("{run_ns}h"), &plan).await;
    let search = search_run(&db, &url, &redis, &format!("{run_ns}s"), &plan).await;
    let l1_runs = l1_runs(&plan.l1_entries);
    // Counted, not timed: a full run only (valgrind takes a minute).
    let instructions = if plan.quick {
        Value::Null
    } else {
        let counted = layers(l1, Some(&redis), &format!("{run_ns}i"));
        let reads = [("counts", counts_path.clone()), ("page", page_path.clone())];
        instructions::per_hit(&url, &counted, ws, &user, &reads).await
    };

    let failures = mixed::freshness_failures(&mixed, counters_after_mixed);
    let results = Results {
        plan: &plan,
        commit,
        started,
        rows,
        mixed,
        counters_after_mixed,
        scaling,
        writes,
        edge_freshness,
        l1: l1_runs,
        instructions,
        wasm_bytes,
        edge_profile: edge_profile.into(),
        edge_mix,
        cold_start,
        history,
        search,
    };
    report::print_and_write(&results, cli.out);
    fail_on(failures);
}

/// Search in the plan's largest scaling workspace and its longest message history.
async fn search_run(db: &sqlx::PgPool, url: &str, redis: &str, ns: &str, plan: &Plan) -> Value {
    let (largest, longest) = (
        &plan.scaling[plan.scaling.len() - 1].0,
        &plan.history[plan.history.len() - 1].0,
    );
    search::measure(db, url, redis, ns, (largest, longest), plan).await
}

fn fail_on(failures: Vec<String>) {
    if !failures.is_empty() {
        eprintln!("freshness failed:\n  {}", failures.join("\n  "));
        std::process::exit(1);
    }
}
