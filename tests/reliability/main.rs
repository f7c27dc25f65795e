//! The reliability suite under load: `scripts/reliability` (full: the durations of issue
//! #6, results in RELIABILITY.md) or `scripts/reliability --quick` (CI). Each scenario
//! runs release-built origins against real Redis and Postgres, drives them at a fixed
//! rate from this process, breaks something, and checks what users would see. A
//! scenario's verdict is printed with its figures; any failed check fails the run.

mod faults;
mod hostile;
mod load;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use e2e::free_port;
use e2e::origins::{self, token, Layers};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::faults::{PgProxy, Redis};
use crate::load::Target;

#[derive(Parser)]
#[command(about = "Faults under load: Redis and Postgres outages, slow queries, invalidation")]
struct Cli {
    /// Short outages for CI; the full mode uses the durations of the issue.
    #[arg(long)]
    quick: bool,
    /// Runs only the scenarios whose name contains this (e.g. `redis`, `schemathesis`).
    #[arg(long)]
    only: Option<String>,
}

impl Cli {
    fn wants(&self, scenario: &str) -> bool {
        self.only.as_deref().is_none_or(|o| scenario.contains(o))
    }
}

struct Plan {
    redis_outage: Duration,
    redis_hang: Duration,
    postgres_outage: Duration,
    slow: Duration,
    readers: usize,
    /// schemathesis examples per operation and pass.
    examples: u32,
}

const WS: &str = "rel1";
/// schemathesis writes contacts and settings here, apart from the fault scenarios' data.
const HOSTILE_WS: &str = "rel2";

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
    }
}

/// A fresh database of this run's own, with one 20k-contact workspace.
async fn database() -> (PgPool, String, u16) {
    let name = format!("edgecache_rel_{}", e2e::random_suffix());
    origins::on_server(&format!("CREATE DATABASE {name}")).await;
    let url = origins::database_url(&name);
    origins::seed(&url, WS, 20_000, 4);
    let db = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("database");
    let port = db.connect_options().get_port();
    (db, url, port)
}

fn layers(redis: Option<String>, l1: bool) -> Layers {
    Layers {
        l1_bytes: if l1 { 64 * 1024 * 1024 } else { 0 },
        redis,
        namespace: format!("r{}", e2e::random_suffix()),
    }
}

/// Every request of every phase answered, none with a 5xx.
fn no_5xx(name: &'static str, phases: &Value) -> Check {
    let clean = ["before", "during", "after"].iter().all(|p| {
        phases[p]["status5xx"].as_u64() == Some(0) && phases[p]["noAnswer"].as_u64() == Some(0)
    });
    check(name, clean, format!("{phases}"))
}

fn f(v: &Value, phase: &str, key: &str) -> f64 {
    v[phase][key].as_f64().unwrap_or(0.0)
}

/// Scenario 1, Redis killed under 2,000 req/s of mostly L1 hits, then restarted.
async fn redis_killed(url: &str, board_ids: &[i64], plan: &Plan) -> (Value, Vec<Check>) {
    let mut redis = Redis::start(free_port()).await;
    let origin = origins::origin(url, &layers(Some(redis.url()), true)).await;
    let targets = faults::page_targets(&origin.base(), WS, board_ids, 50);
    faults::warm(&targets).await;
    let errors_before = faults::counter(&origin.base(), "edgecache_redis_errors_total").await;
    let third = plan.redis_outage;
    let run = tokio::spawn(load::run(Arc::new(targets), 2000, third * 3));
    tokio::time::sleep(third).await;
    redis.kill();
    tokio::time::sleep(third).await;
    let port = redis.port;
    drop(redis);
    let restarted = Redis::start(port).await;
    let back = faults::redis_back(&origin.base(), Duration::from_secs(20)).await;
    let samples = run.await.expect("load");
    let errors =
        faults::counter(&origin.base(), "edgecache_redis_errors_total").await - errors_before;
    let phases = faults::phases(&samples, third, third * 2, third * 3);

    // A fresh origin starts and answers while its Redis is down.
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let cold = origins::origin(url, &layers(Some(dead), true)).await;
    let cold_start = started.elapsed();
    let answer = reqwest::Client::new()
        .get(format!(
            "{}/api/cache-settings/workspace/{WS}/counts",
            cold.base()
        ))
        .bearer_auth(token("user_3", WS, false))
        .header("X-Workspace-ID", WS)
        .send()
        .await
        .expect("counts");
    drop(restarted);

    let steady = f(&phases, "before", "p99Ms");
    let during = f(&phases, "during", "p99Ms");
    let checks = vec![
        no_5xx("no 5xx", &phases),
        check(
            "p99 during the outage within 5× steady state (or 5 ms)",
            during <= (steady * 5.0).max(5.0),
            format!("steady {steady:.2} ms, during {during:.2} ms"),
        ),
        check(
            "errors visible in /metrics",
            errors > 0.0,
            format!("{errors} Redis errors counted"),
        ),
        check(
            "Redis back within 10 s of the restart, without restarting the origin",
            back.is_some_and(|d| d <= Duration::from_secs(10)),
            format!("{back:?}"),
        ),
        check(
            "an origin starts and answers while Redis is down",
            answer.status().is_success(),
            format!("ready in {cold_start:?}, counts {}", answer.status()),
        ),
    ];
    let figures = json!({
        "rate": 2000, "phases": phases, "redisErrors": errors,
        "redisBackAfterMs": back.map(|d| d.as_millis()), "coldStartMs": cold_start.as_millis(),
    });
    (figures, checks)
}

/// Scenario 2, Redis frozen (SIGSTOP) under load on an origin whose every read needs Redis.
async fn redis_hung(url: &str, board_ids: &[i64], plan: &Plan) -> (Value, Vec<Check>) {
    let redis = Redis::start(free_port()).await;
    let origin = origins::origin(url, &layers(Some(redis.url()), false)).await;
    let targets = faults::page_targets(&origin.base(), WS, board_ids, 25);
    faults::warm(&targets).await;
    let lead = Duration::from_secs(2);
    let hang = plan.redis_hang;
    let run = tokio::spawn(load::run(Arc::new(targets), 300, lead * 2 + hang));
    tokio::time::sleep(lead).await;
    redis.signal("-STOP");
    tokio::time::sleep(hang).await;
    redis.signal("-CONT");
    let samples = run.await.expect("load");
    let phases = faults::phases(&samples, lead, lead + hang, lead * 2 + hang);
    let during = f(&phases, "during", "p99Ms");
    let checks = vec![
        no_5xx("no 5xx while Redis hangs", &phases),
        check(
            "p99 bounded by the Redis timeout and the breaker (< 1 s)",
            during < 1000.0,
            format!("p99 during the hang {during:.1} ms"),
        ),
    ];
    (
        json!({"rate": 300, "hangSecs": hang.as_secs(), "phases": phases}),
        checks,
    )
}

/// Scenario 3, Postgres cut off behind a proxy, with a warm cache.
async fn postgres_down(
    pg_port: u16,
    url: &str,
    board_ids: &[i64],
    plan: &Plan,
) -> (Value, Vec<Check>) {
    let proxy = PgProxy::start(pg_port, Duration::ZERO).await;
    let through = url.replacen(&format!(":{pg_port}/"), &format!(":{}/", proxy.port), 1);
    let origin = origins::origin(&through, &layers(None, true)).await;
    let http = reqwest::Client::new();
    faults::short_ttls(&origin.base(), WS).await;
    let cached = faults::page_targets(&origin.base(), WS, board_ids, 10);
    faults::warm(&cached).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.cut().await;
    let run = tokio::spawn(load::run(Arc::new(cached), 200, plan.postgres_outage));
    let uncached_url = format!(
        "{}/api/boards/{}/contacts?page=77",
        origin.base(),
        board_ids[0]
    );
    let started = Instant::now();
    let uncached = http
        .get(&uncached_url)
        .bearer_auth(token("user_3", WS, false))
        .header("X-Workspace-ID", WS)
        .send()
        .await
        .expect("uncached");
    let refusal_ms = started.elapsed().as_secs_f64() * 1000.0;
    let refusal_status = uncached.status().as_u16();
    let retry_after = uncached.headers().contains_key("retry-after");
    let samples = run.await.expect("load");
    let during = load::window(&samples, Duration::ZERO, plan.postgres_outage);
    proxy.restore();
    let restored = Instant::now();
    let mut fresh_after = None;
    while restored.elapsed() < Duration::from_secs(10) {
        let r = http
            .get(format!(
                "{}/api/cache-settings/workspace/{WS}/counts?useCache=false",
                origin.base()
            ))
            .bearer_auth(token("user_3", WS, false))
            .header("X-Workspace-ID", WS)
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            fresh_after = Some(restored.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = during["requests"].as_u64().unwrap_or(0);
    let checks = vec![
        check(
            "every cached key answers 200, marked stale",
            during["ok"].as_u64() == Some(requests) && during["stale"].as_u64() == Some(requests),
            format!("{during}"),
        ),
        check(
            "an uncached key gets 503 with Retry-After within 1 s",
            refusal_status == 503 && retry_after && refusal_ms < 1000.0,
            format!("{refusal_status} in {refusal_ms:.0} ms, Retry-After {retry_after}"),
        ),
        check(
            "no 500",
            during["status500"].as_u64() == Some(0),
            format!("{during}"),
        ),
        check(
            "fresh data within 5 s of Postgres returning",
            fresh_after.is_some_and(|d| d <= Duration::from_secs(5)),
            format!("{fresh_after:?}"),
        ),
    ];
    let figures = json!({
        "outageSecs": plan.postgres_outage.as_secs(), "during": during,
        "uncachedStatus": refusal_status, "uncachedMs": refusal_ms,
        "freshAfterMs": fresh_after.map(|d| d.as_millis()),
    });
    (figures, checks)
}

/// Scenario 4, every answer from Postgres delayed 2 s: keys with a stale value answer stale
/// after the stale-if-slow deadline, the others 504 (or 503 when no connection is free).
async fn postgres_slow(
    pg_port: u16,
    url: &str,
    board_ids: &[i64],
    plan: &Plan,
) -> (Value, Vec<Check>) {
    let proxy = PgProxy::start(pg_port, Duration::from_secs(2)).await;
    let through = url.replacen(&format!(":{pg_port}/"), &format!(":{}/", proxy.port), 1);
    let origin = origins::origin_with(
        &through,
        &layers(None, true),
        &[("REQUEST_TIMEOUT_MS", "1000"), ("STALE_IF_SLOW_MS", "300")],
    )
    .await;
    faults::short_ttls(&origin.base(), WS).await;
    let warm = faults::page_targets(&origin.base(), WS, board_ids, 5);
    faults::warm(&warm).await;
    // Past the one-second TTL: every warm page is now stale.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.slow();
    let rss_before = faults::rss_mib(origin.pid());
    let cold: Vec<Target> = (100..400)
        .flat_map(|page| board_ids.iter().map(move |b| (page, *b)))
        .map(|(page, b)| Target {
            url: format!("{}/api/boards/{b}/contacts?page={page}", origin.base()),
            token: token("user_3", WS, false),
            workspace: WS.into(),
        })
        .collect();
    let stale_run = tokio::spawn(load::run(Arc::new(warm), 100, plan.slow));
    let cold_samples = load::run(Arc::new(cold), 100, plan.slow).await;
    let stale_samples = stale_run.await.expect("load");
    let rss_after = faults::rss_mib(origin.pid());
    proxy.restore();
    let cold_w = load::window(&cold_samples, Duration::ZERO, plan.slow);
    let stale_w = load::window(&stale_samples, Duration::ZERO, plan.slow);
    let slowest = cold_samples
        .iter()
        .chain(&stale_samples)
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    let all_stale = stale_w["requests"].as_u64().is_some_and(|n| {
        n > 0 && stale_w["ok"].as_u64() == Some(n) && stale_w["stale"].as_u64() == Some(n)
    });
    let checks = vec![
        check(
            "pages with a stale value answer 200 marked stale after the stale-if-slow deadline",
            all_stale,
            format!("{stale_w}"),
        ),
        check(
            "pages with nothing cached end in 504 (or 503), never 500",
            cold_w["status500"].as_u64() == Some(0) && cold_w["noAnswer"].as_u64() == Some(0),
            format!("{cold_w}"),
        ),
        check(
            "every request answered within the deadline plus a margin (< 2 s)",
            slowest < Duration::from_secs(2),
            format!("slowest {slowest:?}"),
        ),
        check(
            "memory does not grow without bound (< 100 MiB more)",
            rss_after - rss_before < 100.0,
            format!("{rss_before:.1} → {rss_after:.1} MiB"),
        ),
    ];
    (
        json!({"rate": 200, "stale": stale_w, "cold": cold_w, "rssBeforeMiB": rss_before, "rssAfterMiB": rss_after}),
        checks,
    )
}

/// Scenario 6, an invalidation under hundreds of concurrent readers on two instances:
/// reads that start after the acknowledgement must not return the old payload.
async fn invalidation_under_readers(db: &PgPool, url: &str, plan: &Plan) -> (Value, Vec<Check>) {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let shared = layers(Some(redis.clone()), true);
    let a = origins::origin(url, &shared).await;
    let b = origins::origin(
        url,
        &Layers {
            namespace: shared.namespace.clone(),
            ..layers(Some(redis), true)
        },
    )
    .await;
    let before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1 AND NOT archived AND favorite",
    )
    .bind(WS)
    .fetch_one(db)
    .await
    .expect("favorites");
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND NOT archived AND NOT favorite LIMIT 1",
    )
    .bind(WS)
    .fetch_one(db)
    .await
    .expect("a contact");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(600)
        .build()
        .expect("client");
    let reader = token("user_3", WS, false);
    let ack: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let stop = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for i in 0..plan.readers {
        let base = if i % 2 == 0 { a.base() } else { b.base() };
        let (http, reader, ack) = (http.clone(), reader.clone(), ack.clone());
        tasks.push(tokio::spawn(async move {
            let (mut old_after_ack, mut reads) = (0u64, 0u64);
            while Instant::now() < stop {
                let started = Instant::now();
                let r = http
                    .get(format!("{base}/api/cache-settings/workspace/{WS}/counts"))
                    .bearer_auth(&reader)
                    .header("X-Workspace-ID", WS)
                    .send()
                    .await;
                let Ok(r) = r else { continue };
                let Ok(v) = r.json::<Value>().await else {
                    continue;
                };
                reads += 1;
                let acked = *ack.lock().unwrap_or_else(|p| p.into_inner());
                if acked.is_some_and(|t| started > t)
                    && v["data"]["favorites"].as_i64() == Some(before)
                {
                    old_after_ack += 1;
                }
            }
            (old_after_ack, reads)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = http
        .patch(format!("{}/api/workspaces/{WS}/contacts/{id}", a.base()))
        .bearer_auth(token("user_3", WS, false))
        .json(&json!({"favorite": true}))
        .send()
        .await
        .expect("write");
    assert!(r.status().is_success(), "write: {}", r.status());
    *ack.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    let (mut old, mut reads) = (0, 0);
    for t in tasks {
        let (o, n) = t.await.expect("reader");
        old += o;
        reads += n;
    }
    let checks = vec![check(
        "0 old payloads after the acknowledgement, from either instance",
        old == 0,
        format!("{old} old of {reads} reads"),
    )];
    (
        json!({"readers": plan.readers, "reads": reads, "oldAfterAck": old}),
        checks,
    )
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let plan = if cli.quick {
        Plan {
            redis_outage: Duration::from_secs(3),
            redis_hang: Duration::from_secs(4),
            postgres_outage: Duration::from_secs(5),
            slow: Duration::from_secs(4),
            readers: 200,
            examples: 15,
        }
    } else {
        Plan {
            redis_outage: Duration::from_secs(10),
            redis_hang: Duration::from_secs(30),
            postgres_outage: Duration::from_secs(120),
            slow: Duration::from_secs(20),
            readers: 500,
            examples: 150,
        }
    };
    let started = Instant::now();
    let (db, url, pg_port) = database().await;
    let board_ids = origins::boards(&db, WS).await;
    let mut report = json!({"quick": cli.quick});
    let mut failed = Vec::new();
    let mut record = |name: &str, (figures, checks): (Value, Vec<Check>)| {
        println!("\n## {name}");
        for c in &checks {
            println!(
                "- [{}] {}: {}",
                if c.ok { "x" } else { " " },
                c.name,
                c.detail
            );
            if !c.ok {
                failed.push(format!("{name}: {}", c.name));
            }
        }
        report[name] = json!({
            "figures": figures,
            "checks": checks.iter().map(|c| json!({"check": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
        });
    };
    if cli.wants("redis killed under load") {
        record(
            "redis killed under load",
            redis_killed(&url, &board_ids, &plan).await,
        );
    }
    if cli.wants("redis hung") {
        record("redis hung", redis_hung(&url, &board_ids, &plan).await);
    }
    if cli.wants("postgres down") {
        record(
            "postgres down",
            postgres_down(pg_port, &url, &board_ids, &plan).await,
        );
    }
    if cli.wants("postgres slow") {
        record(
            "postgres slow",
            postgres_slow(pg_port, &url, &board_ids, &plan).await,
        );
    }
    if cli.wants("invalidation under readers") {
        record(
            "invalidation under readers",
            invalidation_under_readers(&db, &url, &plan).await,
        );
    }
    if cli.wants("hostile input (schemathesis)") {
        origins::seed(&url, HOSTILE_WS, 2_000, 2);
        let hostile_board = origins::boards(&db, HOSTILE_WS).await[0];
        record(
            "hostile input (schemathesis)",
            hostile::schemathesis(&url, HOSTILE_WS, hostile_board, plan.examples).await,
        );
    }
    db.close().await;
    let name = url.rsplit_once('/').map_or("", |(_, n)| n);
    origins::on_server(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    // Only a complete full run is the record in RELIABILITY.json.
    let out = e2e::root().join(match (cli.quick, &cli.only) {
        (false, None) => "RELIABILITY.json",
        (true, None) => "target/reliability/quick.json",
        (_, Some(_)) => "target/reliability/partial.json",
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("output dir");
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json"))
        .expect("write report");
    println!("\nwrote {} after {:.0?}", out.display(), started.elapsed());
    if !failed.is_empty() {
        println!("failed checks:\n  {}", failed.join("\n  "));
        std::process::exit(1);
    }
}
