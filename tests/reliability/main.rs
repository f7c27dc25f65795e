//! The reliability suite under load: `scripts/reliability` (full: outages of minutes,
//! results in RELIABILITY.md) or `scripts/reliability --quick` (CI). Each scenario
//! runs release-built origins against real Redis and Postgres, drives them at a fixed
//! rate from this process, breaks something, and checks what users would see. A
//! scenario's verdict is printed with its figures; any failed check fails the run.

mod consistency;
mod faults;
mod hostile;
mod invalidation;
mod load;
mod postgres_down;
mod postgres_slow;
mod redis_hung;
mod redis_killed;
mod scenario;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use clap::Parser;
use e2e::origins;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::scenario::{Check, Plan, HOSTILE_WS, WS};

/// A scenario's figures and checks, once run (nothing runs until awaited).
type Scenario<'a> = Pin<Box<dyn Future<Output = (Value, Vec<Check>)> + 'a>>;

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

/// A fresh database of this run's own, with one 20k-contact workspace.
async fn database() -> (PgPool, String, u16) {
    let name = format!("edgecache_rel_{}", e2e::random_suffix());
    origins::on_server(&format!("CREATE DATABASE {name}")).await;
    let url = origins::database_url(&name);
    origins::seed(&url, WS, 20_000, 4, (0, 0));
    let db = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("database");
    let port = db.connect_options().get_port();
    (db, url, port)
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
            consistency_window: Duration::from_secs(3),
            consistency_reads: 5_000,
            edge_outage: Duration::from_secs(4),
            replica_pause: Duration::from_secs(3),
            examples: 15,
        }
    } else {
        Plan {
            redis_outage: Duration::from_secs(10),
            redis_hang: Duration::from_secs(30),
            postgres_outage: Duration::from_secs(120),
            slow: Duration::from_secs(20),
            readers: 500,
            consistency_window: Duration::from_secs(12),
            consistency_reads: 100_000,
            edge_outage: Duration::from_secs(60),
            replica_pause: Duration::from_secs(10),
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
    let hostile = async {
        origins::seed(&url, HOSTILE_WS, 2_000, 2, (10, 500));
        let board = origins::boards(&db, HOSTILE_WS).await[0];
        hostile::schemathesis(&url, HOSTILE_WS, board, plan.examples).await
    };
    let scenarios: Vec<(&str, Scenario)> = vec![
        (
            "redis killed under load",
            Box::pin(redis_killed::run(&url, &board_ids, &plan)),
        ),
        (
            "redis hung",
            Box::pin(redis_hung::run(&url, &board_ids, &plan)),
        ),
        (
            "postgres down",
            Box::pin(postgres_down::run(pg_port, &url, &board_ids, &plan)),
        ),
        (
            "postgres slow",
            Box::pin(postgres_slow::run(pg_port, &url, &board_ids, &plan)),
        ),
        (
            "invalidation under readers",
            Box::pin(invalidation::run(&db, &url, &plan)),
        ),
        (
            "consistency under faults",
            Box::pin(consistency::run(&db, &url, &plan)),
        ),
        ("hostile input (schemathesis)", Box::pin(hostile)),
    ];
    for (name, scenario) in scenarios {
        if cli.wants(name) {
            record(name, scenario.await);
        }
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
