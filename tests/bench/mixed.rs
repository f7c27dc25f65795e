//! A day in the life: two origin instances sharing Redis, clients picking workspaces and
//! pages by Zipf's law, a share of operations contact writes through the API (5% and 20%
//! in a run), 30% counts reads, and a few admin
//! invalidations. Measures hit rate per layer, read and write p99, and staleness: a counts
//! read that started after a write was acknowledged and still shows the count before it.
//! Writes only ever add a favorite, so the favorites count rises by one per write and
//! any lower value is old.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use e2e::origins::{self, token, Layers};

use crate::plan::Plan;
use crate::rng::{Rng, Zipf};
use crate::writes;

#[derive(Clone)]
pub struct Workspace {
    pub id: String,
    pub boards: Vec<i64>,
    pub token: String,
    pub admin: String,
}

/// Acknowledged writes of one workspace, in the order they were acknowledged. Writes run
/// concurrently; each adds one favorite, so a read that started after n writes were
/// acknowledged must see at least the initial count plus n.
struct History {
    initial: i64,
    acks: Vec<Instant>,
    candidates: Vec<i64>,
}

impl History {
    /// The count a read started at `t` must reach, and when the last write it must see
    /// was acknowledged.
    fn expected_at(&self, t: Instant) -> (i64, Option<Instant>) {
        let seen = self.acks.partition_point(|at| *at <= t);
        let last = seen.checked_sub(1).map(|i| self.acks[i]);
        (self.initial + seen as i64, last)
    }
}

#[derive(Default)]
struct Tally {
    reads: Vec<Duration>,
    writes: Vec<Duration>,
    checked: u64,
    stale: u64,
    stale_ages: Vec<Duration>,
    errors: u64,
    /// Failed requests by status (0: no answer), to tell shed load from bugs.
    error_statuses: BTreeMap<u16, u64>,
    invalidations: u64,
}

impl Tally {
    fn count(&mut self, r: &Answered) {
        let status = match r {
            Ok((status, _)) if status.is_success() => return,
            Ok((status, _)) => status.as_u16(),
            Err(()) => 0,
        };
        self.errors += 1;
        *self.error_statuses.entry(status).or_default() += 1;
    }
}

/// A response read to its end, or `Err` when none came. A body left unread makes the
/// client drop its connection and open another for the next request, which no browser
/// does: before every response was read whole, half the workload's requests paid a new
/// connection at both ends (1,150 per second, most closed by a reset).
type Answered = Result<(StatusCode, Bytes), ()>;

async fn answered(request: reqwest::RequestBuilder) -> Answered {
    let r = request.send().await.map_err(drop)?;
    let status = r.status();
    Ok((status, r.bytes().await.map_err(drop)?))
}

/// The `q` quantile of `times`, in milliseconds.
pub fn percentile(times: &mut [Duration], q: f64) -> f64 {
    times.sort();
    shared::stats::quantile(times, q).map_or(0.0, |t| t.as_secs_f64() * 1000.0)
}

async fn stats(http: &reqwest::Client, base: &str) -> Value {
    let v: Value = http
        .get(format!("{base}/api/cache-settings/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("health json");
    v["data"]["stats"].clone()
}

/// The workload at 5% and at 20% writes, on two instances sharing Redis (`layers`), and
/// the counters' drift after both.
pub async fn both_shares(
    db: &PgPool,
    url: &str,
    layers: &Layers,
    plan: &Plan,
) -> (Vec<Value>, usize) {
    let a = origins::origin(url, layers).await;
    let b = origins::origin(url, layers).await;
    let mut workspaces = Vec::new();
    for w in &plan.main {
        workspaces.push(Workspace {
            id: w.clone(),
            boards: origins::boards(db, w).await,
            token: token("user_3", w, false),
            admin: token("user_1", w, true),
        });
    }
    let mut runs = Vec::new();
    for write_share in [0.05, 0.20] {
        let bases = [a.base(), b.base()];
        runs.push(
            run(
                db,
                &bases,
                &workspaces,
                plan.mixed_clients,
                plan.mixed_for,
                write_share,
            )
            .await,
        );
    }
    drop((a, b));
    (runs, writes::drift(db, &plan.main).await)
}

pub async fn run(
    db: &PgPool,
    origins: &[String],
    workspaces: &[Workspace],
    clients: usize,
    duration: Duration,
    write_share: f64,
) -> Value {
    let mut histories = HashMap::new();
    for ws in workspaces {
        let initial: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM contacts WHERE workspace_id = $1 AND NOT archived AND favorite",
        )
        .bind(&ws.id)
        .fetch_one(db)
        .await
        .expect("favorites");
        let candidates: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM contacts WHERE workspace_id = $1 AND NOT archived AND NOT favorite \
             ORDER BY random() LIMIT 20000",
        )
        .bind(&ws.id)
        .fetch_all(db)
        .await
        .expect("candidates");
        let history = History {
            initial,
            acks: Vec::new(),
            candidates,
        };
        histories.insert(ws.id.clone(), Arc::new(tokio::sync::Mutex::new(history)));
    }
    let http = reqwest::Client::new();
    let mut before = Vec::new();
    for base in origins {
        before.push(stats(&http, base).await);
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let workspaces = Arc::new(workspaces.to_vec());
    let origins = Arc::new(origins.to_vec());
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, tally, workspaces, origins, histories) = (
            http.clone(),
            tally.clone(),
            workspaces.clone(),
            origins.clone(),
            histories.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::seeded(client as u64 + 1);
            let pick_ws = Zipf::new(workspaces.len(), 1.1);
            let pick_page = Zipf::new(50, 1.1);
            while Instant::now() < deadline {
                let ws = &workspaces[pick_ws.sample(&mut rng)];
                let base = &origins[rng.below(origins.len())];
                let history = &histories[&ws.id];
                let roll = rng.unit();
                if roll < write_share {
                    let Some(id) = history.lock().await.candidates.pop() else {
                        continue;
                    };
                    let started = Instant::now();
                    let r = answered(
                        http.patch(format!("{base}/api/workspaces/{}/contacts/{id}", ws.id))
                            .bearer_auth(&ws.token)
                            .json(&json!({"favorite": true})),
                    )
                    .await;
                    let elapsed = started.elapsed();
                    if r.as_ref().is_ok_and(|(status, _)| status.is_success()) {
                        let mut h = history.lock().await;
                        h.acks.push(Instant::now());
                    }
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.writes.push(elapsed);
                    t.count(&r);
                } else if roll < write_share + 0.002 {
                    let r = answered(
                        http.post(format!("{base}/api/cache-settings/invalidate"))
                            .bearer_auth(&ws.admin)
                            .json(&json!({"workspaceId": ws.id})),
                    )
                    .await;
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.invalidations += 1;
                    t.count(&r);
                } else if roll < write_share + 0.3 {
                    let started = Instant::now();
                    let r = answered(
                        http.get(format!(
                            "{base}/api/cache-settings/workspace/{}/counts",
                            ws.id
                        ))
                        .bearer_auth(&ws.token)
                        .header("X-Workspace-ID", &ws.id),
                    )
                    .await;
                    let elapsed = started.elapsed();
                    let body = match &r {
                        Ok((status, body)) if status.is_success() => body,
                        _ => {
                            let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                            t.reads.push(elapsed);
                            t.count(&r);
                            continue;
                        }
                    };
                    let favorites = serde_json::from_slice::<Value>(body)
                        .ok()
                        .and_then(|v| v["data"]["favorites"].as_i64());
                    let (expected, acked_at) = history.lock().await.expected_at(started);
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.reads.push(elapsed);
                    match favorites {
                        None => t.errors += 1,
                        Some(f) => {
                            t.checked += 1;
                            if f < expected {
                                t.stale += 1;
                                if let Some(at) = acked_at {
                                    t.stale_ages.push(started.saturating_duration_since(at));
                                }
                            }
                        }
                    }
                } else {
                    let board = ws.boards[rng.below(ws.boards.len())];
                    let page = pick_page.sample(&mut rng) + 1;
                    let started = Instant::now();
                    let r = answered(
                        http.get(format!("{base}/api/boards/{board}/contacts?page={page}"))
                            .bearer_auth(&ws.token)
                            .header("X-Workspace-ID", &ws.id),
                    )
                    .await;
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.reads.push(started.elapsed());
                    t.count(&r);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }

    let mut layers = json!({});
    for (base, before) in origins.iter().zip(&before) {
        let after = stats(&http, base).await;
        for key in ["memoryHits", "redisHits", "databaseQueries", "staleServed"] {
            let delta = after[key].as_u64().unwrap_or(0) - before[key].as_u64().unwrap_or(0);
            let sum = layers[key].as_u64().unwrap_or(0) + delta;
            layers[key] = json!(sum);
        }
    }
    let served: u64 = ["memoryHits", "redisHits", "databaseQueries"]
        .iter()
        .map(|k| layers[*k].as_u64().unwrap_or(0))
        .sum();
    let share = |k: &str| layers[k].as_u64().unwrap_or(0) as f64 / served.max(1) as f64;
    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
    let secs = duration.as_secs_f64();
    let reads = t.reads.len();
    json!({
        "writeShare": write_share,
        "clients": clients,
        "seconds": secs,
        "reads": reads,
        "writes": t.writes.len(),
        "invalidations": t.invalidations,
        "errors": t.errors,
        "errorsByStatus": &t.error_statuses,
        "readsPerSec": reads as f64 / secs,
        "readP50Ms": percentile(&mut t.reads, 0.50),
        "readP99Ms": percentile(&mut t.reads, 0.99),
        "writeP50Ms": percentile(&mut t.writes, 0.50),
        "writeP99Ms": percentile(&mut t.writes, 0.99),
        "hitRate": {
            "memory": share("memoryHits"),
            "redis": share("redisHits"),
            "database": share("databaseQueries"),
        },
        "countsReadsChecked": t.checked,
        "staleReads": t.stale,
        "staleMaxAgeMs": t.stale_ages.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    })
}
