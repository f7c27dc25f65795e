//! What the edge costs per million reads of a day's mix rather than one hot key: reads
//! picked by Zipf's law over many users' counts (30%) and many pages of the workspace's
//! boards, through the edge, first reads only, then with writes at 5% of operations
//! (favorites added through the origin that pushes its changes to the edge). Each is run
//! once to settle, then measured: the platform operations the edge counted per million
//! reads and what a billion reads cost at the list prices (`layers::PRICES_PER_MILLION`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;

use e2e::origins::token;

use crate::layers::{cost, edge_lookups};
use crate::plan::Plan;
use crate::rng::{Rng, Zipf};
use crate::wrk::{self, Load, Req};

const COUNTS_SHARE: f64 = 0.3;
const WRITE_SHARE: f64 = 0.05;
const CONNECTIONS: u32 = 16;
/// Requests wrk cycles through: long enough that the mix, not its order, shows.
const SEQUENCE: usize = 20_000;

pub async fn measure(
    db: &PgPool,
    (edge, writer): (&str, &str),
    ws: &str,
    boards: &[i64],
    plan: &Plan,
) -> Value {
    let reads = zipf_reads(ws, boards, if plan.quick { 100 } else { 1_000 });
    let load = Load {
        base: edge,
        workspace: ws,
        requests: &reads,
        connections: CONNECTIONS,
        duration: plan.edge_mix_for,
    };
    let _settle = wrk::run(&load);
    let reads_only = measured(&load, None).await;
    let per_sec = reads_only["rps"].as_f64().unwrap_or(0.0) * WRITE_SHARE / (1.0 - WRITE_SHARE);
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND NOT archived AND NOT favorite \
         ORDER BY id DESC LIMIT $2",
    )
    .bind(ws)
    .bind((per_sec * plan.edge_mix_for.as_secs_f64() * 2.0) as i64 + 10)
    .fetch_all(db)
    .await
    .expect("contacts to write");
    let writes = Writes {
        base: writer.to_owned(),
        ws: ws.to_owned(),
        ids,
        per_sec,
    };
    let with_writes = measured(&load, Some(writes)).await;
    json!({
        "connections": CONNECTIONS,
        "countsShare": COUNTS_SHARE,
        "readsOnly": reads_only,
        "withWrites": with_writes,
    })
}

/// Reads of the mix in the order wrk sends them: users' counts and pages over boards,
/// filters, sorts and pages, each ranked by Zipf's law.
fn zipf_reads(ws: &str, boards: &[i64], users: usize) -> Vec<Req> {
    let counts: Vec<Req> = (0..users)
        .map(|i| Req {
            path: format!("/api/workspaces/{ws}/counts"),
            token: token(&format!("user_{i}"), ws, false),
        })
        .collect();
    let reader = token("user_3", ws, false);
    let mut pages = Vec::new();
    for page in 1..=20 {
        for filter in [
            "all",
            "open",
            "unassigned",
            "high_priority",
            "needs_response",
        ] {
            for sort in ["last_activity_at", "created_at", "name"] {
                for board in boards {
                    pages.push(Req {
                        path: format!(
                            "/api/boards/{board}/contacts?page={page}&filter={filter}&sort_by={sort}"
                        ),
                        token: reader.clone(),
                    });
                }
            }
        }
    }
    let (pick_counts, pick_pages) = (Zipf::new(counts.len(), 1.0), Zipf::new(pages.len(), 1.0));
    let mut rng = Rng::seeded(7);
    (0..SEQUENCE)
        .map(|_| {
            if rng.unit() < COUNTS_SHARE {
                counts[pick_counts.sample(&mut rng)].clone()
            } else {
                pages[pick_pages.sample(&mut rng)].clone()
            }
        })
        .collect()
}

struct Writes {
    base: String,
    ws: String,
    ids: Vec<i64>,
    per_sec: f64,
}

/// One wrk run of `load`, with `writes` paced alongside it; what the edge counted.
async fn measured(load: &Load<'_>, writes: Option<Writes>) -> Value {
    let before = edge_lookups(load.base).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = writes.map(|w| tokio::spawn(write_until(w, stop.clone())));
    let outcome = tokio::task::block_in_place(|| wrk::run(load));
    stop.store(true, Ordering::Relaxed);
    let written = match writer {
        Some(task) => task.await.expect("writer"),
        None => 0,
    };
    let after = edge_lookups(load.base).await;
    let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
    json!({
        "rps": outcome.rps,
        "p50Ms": outcome.p50_us / 1000.0,
        "p99Ms": outcome.p99_us / 1000.0,
        "errors": outcome.errors,
        "writes": written,
        "edgeHitShare": hits as f64 / (hits + misses).max(1) as f64,
        "cost": cost(&before, &after),
    })
}

/// Adds favorites at `per_sec` until `stop`; how many were acknowledged.
async fn write_until(w: Writes, stop: Arc<AtomicBool>) -> usize {
    let http = reqwest::Client::new();
    let author = token("user_3", &w.ws, false);
    let every = Duration::from_secs_f64(1.0 / w.per_sec.max(0.1));
    let started = Instant::now();
    let mut done = 0;
    for (n, id) in w.ids.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep_until((started + every * n as u32).into()).await;
        let answer = http
            .patch(format!("{}/api/workspaces/{}/contacts/{id}", w.base, w.ws))
            .bearer_auth(&author)
            .json(&json!({"favorite": true}))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            done += 1;
        }
    }
    done
}
