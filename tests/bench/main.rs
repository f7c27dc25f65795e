//! The benchmark harness: `scripts/bench` (full, under 10 minutes on 2 cores) or
//! `scripts/bench --quick` (under a minute, run by CI; numbers printed, never asserted).
//!
//! It seeds its own database, starts release-built origins (one per layer under test),
//! the edge worker in `wrangler dev`, nginx `proxy_cache` and a bare hyper ceiling, drives
//! them with wrk from a second process, then runs a mixed Zipf workload with writes, the
//! scaling runs and the L1 memory runs. It prints markdown tables and writes JSON.

mod ceiling;
mod freshness;
mod instructions;
mod mixed;
mod rng;
mod scaling;
mod stack;
mod writes;
mod wrk;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::wrk::{Load, Outcome, Req};
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

struct Plan {
    quick: bool,
    run_for: Duration,
    concurrency: Vec<u32>,
    /// Workspaces of the main runs and the mixed workload, and contacts in each.
    main: Vec<String>,
    main_contacts: u32,
    scaling: Vec<(String, u32)>,
    mixed_for: Duration,
    mixed_clients: usize,
    l1_entries: Vec<usize>,
    /// Keys of the edge KV-miss run at each concurrency level: more than the run can ask
    /// for, so that none repeats (the edge's own counters report the miss share).
    miss_counts: Vec<usize>,
    miss_pages: Vec<usize>,
    scaling_runs: usize,
    writes_for: Duration,
    /// Writes timed from their acknowledgement to a fresh edge answer.
    freshness_writes: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            return Self {
                quick,
                run_for: Duration::from_secs(1),
                concurrency: vec![1, 16],
                main: vec!["qbench1".into()],
                main_contacts: 20_000,
                scaling: vec![("qscale10k".into(), 10_000)],
                mixed_for: Duration::from_secs(5),
                mixed_clients: 16,
                l1_entries: vec![1_000, 100_000],
                miss_counts: vec![150, 300],
                miss_pages: vec![150, 400],
                scaling_runs: 3,
                writes_for: Duration::from_secs(2),
                freshness_writes: 10,
            };
        }
        Self {
            quick,
            run_for: Duration::from_secs(3),
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
            l1_entries: vec![1_000, 100_000, 1_000_000],
            miss_counts: vec![300, 700, 900],
            miss_pages: vec![300, 1_000, 1_500],
            scaling_runs: 5,
            writes_for: Duration::from_secs(10),
            freshness_writes: 100,
        }
    }

    fn database(&self) -> &'static str {
        if self.quick {
            "edgecache_bench_quick"
        } else {
            "edgecache_bench"
        }
    }
}

fn machine() -> Value {
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

/// A workspace to seed: its id, contacts and boards.
type Seed = (String, u32, u32);

/// The bench database, seeded with exactly the plan's workspaces (recreated otherwise).
async fn database(plan: &Plan) -> (PgPool, String) {
    let url = origins::database_url(plan.database());
    let mut wanted: Vec<Seed> = plan
        .main
        .iter()
        .map(|w| (w.clone(), plan.main_contacts, 4))
        .collect();
    wanted.extend(plan.scaling.iter().map(|(w, n)| (w.clone(), *n, 1)));
    let mut ready = false;
    if let Ok(db) = PgPool::connect(&url).await {
        // Marks a seeding that ran to its end, indexes rebuilt (see below).
        ready = sqlx::query_scalar::<_, bool>("SELECT to_regclass('bench_seeded') IS NOT NULL")
            .fetch_one(&db)
            .await
            .unwrap_or(false);
        for (ws, n, _) in &wanted {
            let have: Result<i64, _> =
                sqlx::query_scalar("SELECT count(*) FROM contacts WHERE workspace_id = $1")
                    .bind(ws)
                    .fetch_one(&db)
                    .await;
            ready &= have.is_ok_and(|h| h == i64::from(*n));
        }
        db.close().await;
    }
    if !ready {
        let name = plan.database();
        origins::on_server(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        origins::on_server(&format!("CREATE DATABASE {name}")).await;
        // The smallest workspace first, alone: it migrates the schema.
        wanted.sort_by_key(|w| std::cmp::Reverse(w.1));
        if let Some((ws, n, boards)) = wanted.pop() {
            origins::seed(&url, &ws, n, boards);
        }
        let db = PgPool::connect(&url).await.expect("bench database");
        let indexes = drop_contact_indexes(&db).await;
        // Two seeds at a time: each is one INSERT … SELECT on one Postgres core.
        let mut lanes: [(u64, Vec<Seed>); 2] = Default::default();
        for w in wanted {
            let lane = if lanes[0].0 <= lanes[1].0 { 0 } else { 1 };
            lanes[lane].0 += u64::from(w.1);
            lanes[lane].1.push(w);
        }
        std::thread::scope(|scope| {
            for (_, lane) in &lanes {
                let url = &url;
                scope.spawn(move || {
                    for (ws, n, boards) in lane {
                        let started = Instant::now();
                        origins::seed(url, ws, *n, *boards);
                        eprintln!("seeded {ws} ({n} contacts) in {:.0?}", started.elapsed());
                    }
                });
            }
        });
        let started = Instant::now();
        for definition in &indexes {
            sqlx::query(definition)
                .execute(&db)
                .await
                .expect("recreate index");
        }
        sqlx::query("VACUUM (ANALYZE) contacts")
            .execute(&db)
            .await
            .expect("vacuum");
        sqlx::query("CREATE TABLE bench_seeded ()")
            .execute(&db)
            .await
            .expect("mark seeded");
        eprintln!(
            "rebuilt {} indexes of contacts in {:.0?}",
            indexes.len(),
            started.elapsed()
        );
        db.close().await;
    }
    let db = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("bench database");
    (db, url)
}

/// Drops the secondary indexes of `contacts` (not those behind constraints) and returns
/// their definitions: building each once after the bulk load is several times faster
/// than keeping all of them up to date through millions of inserts in random key order.
async fn drop_contact_indexes(db: &PgPool) -> Vec<String> {
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE x.indrelid = 'contacts'::regclass \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(db)
    .await
    .expect("contact indexes");
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(db)
            .await
            .expect("drop index");
    }
    indexes.into_iter().map(|(_, def)| def).collect()
}

/// Asks `base` for every request once, 16 at a time (fills the caches behind it).
async fn warm(base: &str, ws: &str, reqs: &[Req]) {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for chunk in reqs.chunks(reqs.len().div_ceil(16).max(1)) {
        let (http, base, ws, chunk) =
            (http.clone(), base.to_owned(), ws.to_owned(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for r in chunk {
                let answer = http
                    .get(format!("{base}{}", r.path))
                    .bearer_auth(&r.token)
                    .header("X-Workspace-ID", &ws)
                    .send()
                    .await
                    .expect("warm request");
                assert!(
                    answer.status().is_success(),
                    "{}: {}",
                    r.path,
                    answer.status()
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("warm");
    }
}

async fn body_of(base: &str, ws: &str, req: &Req) -> Vec<u8> {
    reqwest::Client::new()
        .get(format!("{base}{}", req.path))
        .bearer_auth(&req.token)
        .header("X-Workspace-ID", ws)
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("body")
        .to_vec()
}

struct Row {
    read: &'static str,
    target: &'static str,
    connections: u32,
    outcome: Outcome,
    /// For edge runs: the share of requests the edge answered without KV.
    kv_miss_share: Option<f64>,
    /// For edge runs: requests to the generations' Durable Object per second (one
    /// isolate in `wrangler dev`).
    object_reads_per_sec: Option<f64>,
}

/// The edge's lookups so far (hits, misses) and its reads of the generations' object,
/// from its `/metrics`.
async fn edge_lookups(base: &str) -> (u64, u64, u64) {
    let v: Value = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("edge metrics")
        .json()
        .await
        .expect("edge metrics json");
    let requests = find(&v, "cache_misses").unwrap_or(&Value::Null);
    let objects = find(&v, "object_reads").unwrap_or(&Value::Null);
    (
        requests["cache_hits"].as_u64().unwrap_or(0),
        requests["cache_misses"].as_u64().unwrap_or(0),
        objects["object_reads"].as_u64().unwrap_or(0),
    )
}

/// The object holding `key`, however deep in `v`.
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) if map.contains_key(key) => Some(v),
        Value::Object(map) => map.values().find_map(|c| find(c, key)),
        _ => None,
    }
}

fn print_table(rows: &[Row], concurrency: &[u32]) {
    for read in ["counts", "page"] {
        println!("\n### {read}: requests/s and p50 / p95 / p99 latency (ms)\n");
        let mut header = "| target |".to_owned();
        let mut rule = "|---|".to_owned();
        for c in concurrency {
            header.push_str(&format!(" c={c} req/s | c={c} p50/p95/p99 |"));
            rule.push_str("---:|---:|");
        }
        println!("{header}\n{rule}");
        let targets: Vec<&str> = rows
            .iter()
            .filter(|r| r.read == read)
            .map(|r| r.target)
            .fold(Vec::new(), |mut v, t| {
                if !v.contains(&t) {
                    v.push(t);
                }
                v
            });
        for target in targets {
            let mut line = format!("| {target} |");
            for c in concurrency {
                match rows
                    .iter()
                    .find(|r| r.read == read && r.target == target && r.connections == *c)
                {
                    Some(r) => {
                        let o = &r.outcome;
                        let mut notes = Vec::new();
                        if o.errors > 0 {
                            notes.push(format!("{} errors", o.errors));
                        }
                        if let Some(share) = r.kv_miss_share {
                            notes.push(format!("{:.0}% KV misses", share * 100.0));
                        }
                        line.push_str(&format!(
                            " {:.0}{} | {:.2} / {:.2} / {:.2} |",
                            o.rps,
                            if notes.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", notes.join(", "))
                            },
                            o.p50_us / 1000.0,
                            o.p95_us / 1000.0,
                            o.p99_us / 1000.0
                        ));
                    }
                    None => line.push_str(" – | – |"),
                }
            }
            println!("{line}");
        }
    }
}

/// Our memory hit (through the origin and through the edge) as ratios to the ceiling and
/// to nginx, from the same run.
fn ratios(rows: &[Row]) -> Vec<Value> {
    let find = |read: &str, target: &str, c: u32| {
        rows.iter()
            .find(|r| r.read == read && r.target == target && r.connections == c)
            .map(|r| &r.outcome)
    };
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.target == "origin L1 (moka)") {
        let (Some(ceiling), Some(nginx)) = (
            find(r.read, "bare hyper ceiling", r.connections),
            find(r.read, "nginx proxy_cache hit", r.connections),
        ) else {
            continue;
        };
        let o = &r.outcome;
        out.push(json!({
            "read": r.read,
            "connections": r.connections,
            "throughputVsCeiling": o.rps / ceiling.rps.max(1e-9),
            "throughputVsNginx": o.rps / nginx.rps.max(1e-9),
            "p99VsCeiling": o.p99_us / ceiling.p99_us.max(1e-9),
            "p99VsNginx": o.p99_us / nginx.p99_us.max(1e-9),
        }));
    }
    out
}

fn l1_runs(entries: &[usize]) -> Vec<Value> {
    let sizes: Vec<String> = entries.iter().map(ToString::to_string).collect();
    let output = Command::new(origins::origin_binary())
        .args(["bench", "--l1-entries", &sizes.join(",")])
        .env("RUST_LOG", "warn")
        .output()
        .expect("origin bench --l1-entries");
    assert!(output.status.success(), "origin bench --l1-entries failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
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
    let memory = origins::origin(&url, &layers(l1, Some(&redis), &run_ns)).await;
    let l2 = origins::origin(&url, &layers(0, Some(&redis), &run_ns)).await;
    let uncached = origins::origin(&url, &layers(0, None, &run_ns)).await;
    let edge = stack::edge(memory.port, &run_ns).await;
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

    // Distinct keys: per-user counts, and pages over boards, filters and orders.
    let many_counts = |from: usize, n: usize, path: &str| -> Vec<Req> {
        (from..from + n)
            .map(|i| Req {
                path: path.to_owned(),
                token: token(&format!("user_{i}"), ws, false),
            })
            .collect()
    };
    let filters = [
        "all",
        "open",
        "closed",
        "unassigned",
        "high_priority",
        "needs_response",
    ];
    let mut many_pages = Vec::new();
    let sorts = ["created_at", "updated_at", "name", "last_activity_at"];
    for page in 1..=50 {
        for (filter, sort) in filters
            .iter()
            .flat_map(|f| sorts.iter().map(move |s| (f, s)))
        {
            for order in ["desc", "asc"] {
                for b in &board {
                    many_pages.push(Req {
                        path: format!(
                            "/api/boards/{b}/contacts?page={page}&filter={filter}\
                             &sort_by={sort}&sort_order={order}"
                        ),
                        token: user.clone(),
                    });
                }
            }
        }
    }
    let mut rows = Vec::new();
    let edge_base = format!("http://127.0.0.1:{}", edge.port);
    let nginx_base = format!("http://127.0.0.1:{}", nginx.port);
    for (read, hot_path, edge_path, ceiling) in [
        ("counts", &counts_path, &edge_counts_path, &ceiling_counts),
        ("page", &page_path, &page_path, &ceiling_page),
    ] {
        let hot_reqs = hot(hot_path.clone());
        let edge_hot = hot(edge_path.clone());
        warm(&memory.base(), ws, &hot_reqs).await;
        warm(&l2.base(), ws, &hot_reqs).await;
        warm(&nginx_base, ws, &hot_reqs).await;
        warm(&edge_base, ws, &edge_hot).await;
        let uncached_reqs = if read == "counts" {
            many_counts(1_000, 1_000, hot_path)
        } else {
            many_pages.clone()
        };
        // KV misses: keys the edge has never seen, each already in the origin's L1.
        let misses: Vec<usize> = if read == "counts" {
            plan.miss_counts.clone()
        } else {
            plan.miss_pages.clone()
        };
        let mut miss_sets = Vec::new();
        let mut next = 0;
        for n in &misses {
            let set: Vec<Req> = if read == "counts" {
                many_counts(10_000 + next, *n, edge_path)
            } else {
                many_pages[next..next + n].to_vec()
            };
            next += n;
            let origin_side: Vec<Req> = set
                .iter()
                .map(|r| Req {
                    path: if read == "counts" {
                        hot_path.clone()
                    } else {
                        r.path.clone()
                    },
                    token: r.token.clone(),
                })
                .collect();
            warm(&memory.base(), ws, &origin_side).await;
            miss_sets.push(set);
        }
        let ceiling_base = format!("http://127.0.0.1:{}", ceiling.port);
        for (i, &c) in plan.concurrency.iter().enumerate() {
            let targets: [(&'static str, String, &[Req]); 7] = [
                (
                    "origin, Postgres (no cache)",
                    uncached.base(),
                    &uncached_reqs,
                ),
                ("origin L2 (Redis)", l2.base(), &hot_reqs),
                ("origin L1 (moka)", memory.base(), &hot_reqs),
                ("edge KV hit (wrangler dev)", edge_base.clone(), &edge_hot),
                ("edge KV miss → origin L1", edge_base.clone(), &miss_sets[i]),
                ("nginx proxy_cache hit", nginx_base.clone(), &hot_reqs),
                ("bare hyper ceiling", ceiling_base.clone(), &hot_reqs),
            ];
            for (target, base, requests) in targets {
                let is_edge = base == edge_base;
                let before = if is_edge {
                    edge_lookups(&edge_base).await
                } else {
                    (0, 0, 0)
                };
                let outcome = wrk::run(&Load {
                    base: &base,
                    workspace: ws,
                    requests,
                    connections: c,
                    duration: plan.run_for,
                });
                let (kv_miss_share, object_reads_per_sec) = if is_edge {
                    let after = edge_lookups(&edge_base).await;
                    let (hits, misses) = (after.0 - before.0, after.1 - before.1);
                    let reads = (after.2 - before.2) as f64 / plan.run_for.as_secs_f64();
                    (
                        Some(misses as f64 / (hits + misses).max(1) as f64),
                        Some(reads),
                    )
                } else {
                    (None, None)
                };
                eprintln!("{read} {target} c={c}: {outcome:?} kv misses {kv_miss_share:?}");
                rows.push(Row {
                    read,
                    target,
                    connections: c,
                    outcome,
                    kv_miss_share,
                    object_reads_per_sec,
                });
            }
        }
    }
    // Freshness at the edge: an origin that pushes its changes to the worker takes writes.
    let writer = origins::origin_with(
        &url,
        &layers(l1, Some(&redis), &run_ns),
        &[("EDGE_URL", &edge_base)],
    )
    .await;
    let edge_freshness =
        freshness::measure(&db, &writer.base(), &edge_base, ws, plan.freshness_writes).await;
    drop((writer, edge, nginx, ceiling_counts, ceiling_page));
    let _ = std::fs::remove_dir_all(&body_dir);

    // The mixed workload on two instances sharing Redis.
    let mixed_ns = format!("{run_ns}m");
    let a = origins::origin(&url, &layers(l1, Some(&redis), &mixed_ns)).await;
    let b = origins::origin(&url, &layers(l1, Some(&redis), &mixed_ns)).await;
    let mut workspaces = Vec::new();
    for w in &plan.main {
        workspaces.push(mixed::Workspace {
            id: w.clone(),
            boards: origins::boards(&db, w).await,
            token: token("user_3", w, false),
            admin: token("user_1", w, true),
        });
    }
    let mut mixed = Vec::new();
    for write_share in [0.05, 0.20] {
        mixed.push(
            mixed::run(
                &db,
                &[a.base(), b.base()],
                &workspaces,
                plan.mixed_clients,
                plan.mixed_for,
                write_share,
            )
            .await,
        );
    }
    drop((a, b, memory, l2));
    let counters_after_mixed = writes::drift(&db, &plan.main).await;

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
    let l1_runs = l1_runs(&plan.l1_entries);
    // Counted, not timed: a full run only (valgrind takes a minute).
    let instructions = if plan.quick {
        Value::Null
    } else {
        let counted = layers(l1, Some(&redis), &format!("{run_ns}i"));
        let reads = [("counts", counts_path.clone()), ("page", page_path.clone())];
        instructions::per_hit(&url, &counted, ws, &user, &reads).await
    };

    let ratios = ratios(&rows);
    print_table(&rows, &plan.concurrency);
    println!(
        "\n### ratios (origin L1 hit vs peers, same run)\n\n```\n{}\n```",
        serde_json::to_string_pretty(&ratios).unwrap_or_default()
    );
    println!(
        "\n### mixed workload\n\n```\n{}\n```",
        serde_json::to_string_pretty(&mixed).unwrap_or_default()
    );
    println!(
        "\n### scaling (median ms)\n\n```\n{}\n```",
        serde_json::to_string_pretty(&scaling).unwrap_or_default()
    );
    println!(
        "\n### writes on one workspace, with and without the counter triggers\n\n```\n{}\n```",
        serde_json::to_string_pretty(&writes).unwrap_or_default()
    );
    println!("\ncounter drift after the mixed workloads: {counters_after_mixed} bucket(s)");
    println!(
        "\n### edge freshness (origin write acknowledged to a fresh edge answer)\n\n```\n{}\n```",
        serde_json::to_string_pretty(&edge_freshness).unwrap_or_default()
    );
    println!(
        "\n### L1 size\n\n```\n{}\n```",
        serde_json::to_string_pretty(&l1_runs).unwrap_or_default()
    );
    println!("\n### instructions per L1 hit (callgrind)\n\n{instructions}");

    let results: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "read": r.read, "target": r.target, "connections": r.connections,
                "requests": r.outcome.requests, "rps": r.outcome.rps,
                "p50Ms": r.outcome.p50_us / 1000.0, "p95Ms": r.outcome.p95_us / 1000.0,
                "p99Ms": r.outcome.p99_us / 1000.0, "errors": r.outcome.errors,
                "kvMissShare": r.kv_miss_share,
                "objectReadsPerSec": r.object_reads_per_sec,
            })
        })
        .collect();
    let report = json!({
        "quick": plan.quick,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
        "seconds": started.elapsed().as_secs_f64(),
        "workspaceContacts": plan.main_contacts,
        "workspaces": plan.main.len(),
        "layers": results,
        "ratios": ratios,
        "mixed": mixed,
        "countersDriftAfterMixed": counters_after_mixed,
        "scaling": scaling,
        "writes": writes,
        "edgeFreshness": edge_freshness,
        "l1": l1_runs,
        "instructionsPerL1Hit": instructions,
    });
    let out = cli.out.unwrap_or_else(|| {
        if plan.quick {
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
    println!("\nwrote {} after {:.0?}", out.display(), started.elapsed());
}
