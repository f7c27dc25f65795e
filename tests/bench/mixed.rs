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
    /// The same reads by the layer that answered them: whose latency the p99 is.
    reads_by_source: BTreeMap<String, Vec<Duration>>,
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
    fn read(&mut self, elapsed: Duration, r: &Answered) {
        self.reads.push(elapsed);
        let source = r.as_ref().map_or("none", |reply| reply.source.as_str());
        self.reads_by_source
            .entry(source.to_owned())
            .or_default()
            .push(elapsed);
    }

    fn count(&mut self, r: &Answered) {
        let status = match r {
            Ok(reply) if reply.status.is_success() => return,
            Ok(reply) => reply.status.as_u16(),
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
type Answered = Result<Reply, ()>;

struct Reply {
    status: StatusCode,
    /// The layer that answered (`X-Cache-Source`), empty for a write.
    source: String,
    body: Bytes,
}

async fn answered(request: reqwest::RequestBuilder) -> Answered {
    let r = request.send().await.map_err(drop)?;
    let status = r.status();
    let source = r
        .headers()
        .get("x-cache-source")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = r.bytes().await.map_err(drop)?;
    Ok(Reply {
        status,
        source,
        body,
    })
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

/// The workload at 5% and at 20% writes as fast as `plan.mixed_clients` clients go, then at
/// 5% writes paced at each of `plan.mixed_paced_reads` reads a second, on two instances sharing
/// Redis (`layers`); and the counters' drift after them.
/// What the mixed runs found wrong with freshness: a read older than a write
/// acknowledged before it was sent, a counter bucket drifted from a recount. Figures are
/// never asserted, but these are correctness, and a run that finds them fails.
pub fn freshness_failures(runs: &[Value], drift: usize) -> Vec<String> {
    let mut failures: Vec<String> = runs
        .iter()
        .filter(|r| r["staleReads"].as_u64().unwrap_or(0) > 0)
        .map(|r| {
            format!(
                "{} stale reads in the mixed run {}",
                r["staleReads"], r["load"]
            )
        })
        .collect();
    if drift > 0 {
        failures.push(format!("{drift} counter bucket(s) drifted"));
    }
    failures
}

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
    let bases = [a.base(), b.base()];
    let closed = Load::Closed {
        clients: plan.mixed_clients,
    };
    let paced = plan
        .mixed_paced_reads
        .iter()
        .map(|&reads_per_sec| (Load::Paced { reads_per_sec }, 0.05));
    let mut runs = Vec::new();
    for (load, write_share) in [(closed, 0.05), (closed, 0.20)].into_iter().chain(paced) {
        runs.push(run(db, &bases, &workspaces, load, plan.mixed_for, write_share).await);
    }
    drop((a, b));
    (runs, writes::drift(db, &plan.main).await)
}

/// How a run offers its load.
#[derive(Clone, Copy)]
pub enum Load {
    /// `clients` each send their next request when the last one is answered: the most the
    /// stack serves, every request queued behind the others (p99 at saturation).
    Closed { clients: usize },
    /// Requests at a fixed rate whatever the answers' pace (`reads_per_sec` reads, plus
    /// the writes and invalidations of the same mix), each timed from when it was due, so
    /// a stall counts against every request it holds back. At most `MAX_IN_FLIGHT` are
    /// outstanding; the rest wait their turn, still timed from their due time.
    Paced { reads_per_sec: f64 },
}

const MAX_IN_FLIGHT: usize = 512;

/// The share of operations that are an admin's invalidation of a whole workspace.
const INVALIDATION_SHARE: f64 = 0.002;

/// What every request of a run shares.
struct Run {
    http: reqwest::Client,
    tally: Mutex<Tally>,
    workspaces: Vec<Workspace>,
    origins: Vec<String>,
    histories: HashMap<String, tokio::sync::Mutex<History>>,
    write_share: f64,
    pick_ws: Zipf,
    pick_page: Zipf,
}

impl Run {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One request of the mix, timed from `due` (when it was sent, for a closed load).
    async fn one(&self, rng: &mut Rng, due: Option<Instant>) {
        let ws = &self.workspaces[self.pick_ws.sample(rng)];
        let base = &self.origins[rng.below(self.origins.len())];
        let history = &self.histories[&ws.id];
        let roll = rng.unit();
        if roll < self.write_share {
            let Some(id) = history.lock().await.candidates.pop() else {
                return;
            };
            let started = due.unwrap_or_else(Instant::now);
            let r = answered(
                self.http
                    .patch(format!("{base}/api/workspaces/{}/contacts/{id}", ws.id))
                    .bearer_auth(&ws.token)
                    .json(&json!({"favorite": true})),
            )
            .await;
            let elapsed = started.elapsed();
            if r.as_ref().is_ok_and(|reply| reply.status.is_success()) {
                history.lock().await.acks.push(Instant::now());
            }
            let mut t = self.tally();
            t.writes.push(elapsed);
            t.count(&r);
        } else if roll < self.write_share + INVALIDATION_SHARE {
            let r = answered(
                self.http
                    .post(format!("{base}/api/cache-settings/invalidate"))
                    .bearer_auth(&ws.admin)
                    .json(&json!({"workspaceId": ws.id})),
            )
            .await;
            let mut t = self.tally();
            t.invalidations += 1;
            t.count(&r);
        } else if roll < self.write_share + 0.3 {
            let sent = Instant::now();
            let r = answered(
                self.http
                    .get(format!(
                        "{base}/api/cache-settings/workspace/{}/counts",
                        ws.id
                    ))
                    .bearer_auth(&ws.token)
                    .header("X-Workspace-ID", &ws.id),
            )
            .await;
            let elapsed = due.unwrap_or(sent).elapsed();
            let body = match &r {
                Ok(reply) if reply.status.is_success() => &reply.body,
                _ => {
                    let mut t = self.tally();
                    t.read(elapsed, &r);
                    t.count(&r);
                    return;
                }
            };
            let favorites = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["data"]["favorites"].as_i64());
            // Stale is judged from when the read was sent, not when it was due: a write
            // acknowledged while a paced read waited its turn must show in it.
            let (expected, acked_at) = history.lock().await.expected_at(sent);
            let mut t = self.tally();
            t.read(elapsed, &r);
            match favorites {
                None => t.errors += 1,
                Some(f) => {
                    t.checked += 1;
                    if f < expected {
                        t.stale += 1;
                        if let Some(at) = acked_at {
                            t.stale_ages.push(sent.saturating_duration_since(at));
                        }
                    }
                }
            }
        } else {
            let board = ws.boards[rng.below(ws.boards.len())];
            let page = self.pick_page.sample(rng) + 1;
            let started = due.unwrap_or_else(Instant::now);
            let r = answered(
                self.http
                    .get(format!("{base}/api/boards/{board}/contacts?page={page}"))
                    .bearer_auth(&ws.token)
                    .header("X-Workspace-ID", &ws.id),
            )
            .await;
            let mut t = self.tally();
            t.read(started.elapsed(), &r);
            t.count(&r);
        }
    }
}

/// Drives `run` with `load` until `deadline`.
async fn drive(run: Arc<Run>, load: Load, deadline: Instant) {
    match load {
        Load::Closed { clients } => {
            let mut tasks = Vec::new();
            for client in 0..clients {
                let run = run.clone();
                tasks.push(tokio::spawn(async move {
                    let mut rng = Rng::seeded(client as u64 + 1);
                    while Instant::now() < deadline {
                        run.one(&mut rng, None).await;
                    }
                }));
            }
            for t in tasks {
                t.await.expect("client");
            }
        }
        Load::Paced { reads_per_sec } => {
            let ops_per_sec = reads_per_sec / (1.0 - run.write_share - INVALIDATION_SHARE);
            let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
            let mut tasks = tokio::task::JoinSet::new();
            let start = Instant::now();
            for n in 0u64.. {
                let due = start + Duration::from_secs_f64(n as f64 / ops_per_sec);
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let (run, slots) = (run.clone(), slots.clone());
                tasks.spawn(async move {
                    let _slot = slots.acquire_owned().await.expect("slots");
                    run.one(&mut Rng::seeded(n + 1), Some(due)).await;
                });
            }
            while let Some(t) = tasks.join_next().await {
                t.expect("request");
            }
        }
    }
}

pub async fn run(
    db: &PgPool,
    origins: &[String],
    workspaces: &[Workspace],
    load: Load,
    duration: Duration,
    write_share: f64,
) -> Value {
    // What autovacuum does between runs (it is off on this machine, see BENCHMARKS.md):
    // each run starts with the visibility map the earlier runs' writes cleared set again.
    sqlx::query("VACUUM contacts, contact_counters, contact_clock_counters")
        .execute(db)
        .await
        .expect("vacuum");
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
        histories.insert(ws.id.clone(), tokio::sync::Mutex::new(history));
    }
    let http = reqwest::Client::new();
    let mut before = Vec::new();
    for base in origins {
        before.push(stats(&http, base).await);
    }
    let run = Arc::new(Run {
        http: http.clone(),
        tally: Mutex::default(),
        workspaces: workspaces.to_vec(),
        origins: origins.to_vec(),
        histories,
        write_share,
        pick_ws: Zipf::new(workspaces.len(), 1.1),
        pick_page: Zipf::new(50, 1.1),
    });
    drive(run.clone(), load, Instant::now() + duration).await;

    let mut layers = json!({});
    for (base, before) in origins.iter().zip(&before) {
        let after = stats(&http, base).await;
        for key in [
            "memoryHits",
            "redisHits",
            "databaseQueries",
            "staleServed",
            "pagesReadOn",
        ] {
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
    let mut t = run.tally();
    let secs = duration.as_secs_f64();
    let reads = t.reads.len();
    json!({
        "writeShare": write_share,
        "load": match load {
            Load::Closed { clients } => json!({"closed": {"clients": clients}}),
            Load::Paced { reads_per_sec } => json!({"paced": {"readsPerSec": reads_per_sec}}),
        },
        "seconds": secs,
        "reads": reads,
        "writes": t.writes.len(),
        "invalidations": t.invalidations,
        "errors": t.errors,
        "errorsByStatus": &t.error_statuses,
        "readsPerSec": reads as f64 / secs,
        "readP50Ms": percentile(&mut t.reads, 0.50),
        "readP99Ms": percentile(&mut t.reads, 0.99),
        "readBySource": t
            .reads_by_source
            .iter_mut()
            .map(|(source, times)| {
                let p = json!({
                    "reads": times.len(),
                    "p50Ms": percentile(times, 0.50),
                    "p99Ms": percentile(times, 0.99),
                });
                (source.clone(), p)
            })
            .collect::<serde_json::Map<_, _>>(),
        "writeP50Ms": percentile(&mut t.writes, 0.50),
        "writeP99Ms": percentile(&mut t.writes, 0.99),
        "pagesReadOn": layers["pagesReadOn"],
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
