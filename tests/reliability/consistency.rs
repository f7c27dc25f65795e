//! The consistency checker: one writer makes a stream of writes whose effect on a cached
//! read is known (each marks one more contact a favorite, so the workspace's `favorites`
//! count after the n-th acknowledged write is at least the count before plus n), while
//! readers read the counts through two origins sharing a Redis and a read replica, and
//! through the edge worker (in workerd) in front of them, and one fault after another is
//! applied. Every read is judged against the writes acknowledged before it started: a
//! read older than one of them by more than its layer's bound is counted, per fault. An
//! edge answer marked `STALE` says what it is and is counted apart. A write whose answer
//! never came (its client left, its origin was killed) counts from the moment the
//! harness saw it committed in Postgres.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use e2e::origins::{self, token, Layers, Origin, INTERNAL_KEY, PUSH_KEY, SECRET};
use e2e::{free_port, start_wrangler, wait_edge_ready, Group};
use serde_json::{json, Value};
use shared::keys::KeySpace;
use shared::WorkspaceId;
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;

use crate::faults::{Proxy, Redis};
use crate::scenario::{check, layers, Check, Plan, WS};

/// How much older than an acknowledged write a read through an origin may be.
const BOUND: Duration = Duration::from_secs(1);
/// How much older a read through the edge may be.
const EDGE_BOUND: Duration = Duration::from_secs(2);
/// One write every this long.
const WRITE_EVERY: Duration = Duration::from_millis(20);
const READERS: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    RedisRestartedEmpty,
    HashEvicted,
    RedisFrozen,
    OriginKilled,
    ClientsDisconnect,
    ListenCut,
    AllOriginsDown,
    EdgeAway,
    ReplicaPaused,
}

impl Fault {
    const ALL: [Fault; 10] = [
        Fault::None,
        Fault::RedisRestartedEmpty,
        Fault::HashEvicted,
        Fault::RedisFrozen,
        Fault::OriginKilled,
        Fault::ClientsDisconnect,
        Fault::ListenCut,
        Fault::AllOriginsDown,
        Fault::EdgeAway,
        Fault::ReplicaPaused,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::None => "no fault",
            Fault::RedisRestartedEmpty => "Redis restarted empty",
            Fault::HashEvicted => "generation hash evicted",
            Fault::RedisFrozen => "Redis frozen",
            Fault::OriginKilled => "one origin killed (SIGKILL) mid-write and restarted",
            Fault::ClientsDisconnect => "clients disconnecting right after sending writes",
            Fault::ListenCut => "LISTEN connection cut, writes straight to Postgres",
            Fault::AllOriginsDown => "writes straight to Postgres while every origin is down",
            Fault::EdgeAway => "the edge unreachable from the origins",
            Fault::ReplicaPaused => "the read replica's replay paused",
        }
    }

    /// How the writer writes during this fault.
    fn write_kind(self) -> WriteKind {
        match self {
            Fault::ClientsDisconnect => WriteKind::Dropped,
            Fault::ListenCut | Fault::AllOriginsDown => WriteKind::Direct,
            _ => WriteKind::Api,
        }
    }
}

#[derive(Clone, Copy)]
enum WriteKind {
    /// Through an origin's API, waiting for its answer.
    Api,
    /// Through an origin's API, the connection closed as soon as the request is sent.
    Dropped,
    /// Straight to Postgres, as another application would.
    Direct,
}

/// One read: when it started, in which fault, through which layer, and what it answered.
struct Read {
    fault: usize,
    at: Instant,
    edge: bool,
    /// The favorites count, or why there was none.
    answer: Result<i64, String>,
    /// An edge answer marked `STALE` (the origins could not answer it).
    marked_stale: bool,
    /// Answered from a cache (at the edge: KV under confirmed counters).
    hit: bool,
    /// Its origin (for the edge: any origin) was being killed or restarted: no answer is
    /// expected.
    origin_down: bool,
}

/// The edge worker in workerd, with a proxy on each path between it and the origins.
struct Edge {
    base: String,
    /// The origins' pushes to the edge go through this one (cut: the edge is away).
    pushes: Proxy,
    /// The edge's reads of the origins go through this one, to an origin that is up.
    reads: Proxy,
    _worker: Group,
}

/// The two origins' base URLs; `None` while one is down.
type Bases = Arc<RwLock<[Option<String>; 2]>>;

struct Run {
    db: PgPool,
    url: String,
    layers: Layers,
    bases: Bases,
    origins: Mutex<[Option<Origin>; 2]>,
    fault: AtomicUsize,
    stop: AtomicBool,
    /// When each write counted as acknowledged, in order (the count after the n-th is at
    /// least `base + n`).
    acks: Mutex<Vec<(Instant, usize)>>,
    acked_ids: Mutex<Vec<i64>>,
    http: reqwest::Client,
    /// What every origin is started with beyond its layers: the edge and the replica.
    env: Vec<(String, String)>,
    edge: Edge,
    replica: PgPool,
}

pub async fn run(db: &PgPool, url: &str, plan: &Plan) -> (Value, Vec<Check>) {
    let mut redis = Redis::start(free_port()).await;
    let layers = layers(Some(redis.url()), true);
    let replica = replica_of(db, url).await;
    let edge_port = free_port();
    let pushes = Proxy::start(edge_port, Duration::ZERO).await;
    let replica_url = format!("{}/{}", replica_server(), database_name(url));
    let env = vec![
        (
            "EDGE_URL".into(),
            format!("http://127.0.0.1:{}", pushes.port),
        ),
        ("DATABASE_READ_URL".into(), replica_url),
    ];
    let origins = [
        start_origin(url, &layers, &env).await,
        start_origin(url, &layers, &env).await,
    ];
    let bases: Bases = Arc::new(RwLock::new([
        Some(origins[0].base()),
        Some(origins[1].base()),
    ]));
    let reads = Proxy::start(origins[0].port, Duration::ZERO).await;
    let vars = [
        ("JWT_SECRET", SECRET),
        ("INTERNAL_API_KEY", INTERNAL_KEY),
        ("EDGE_PUSH_KEY", PUSH_KEY),
        ("CACHE_NAMESPACE", layers.namespace.as_str()),
        ("ORIGIN_TIMEOUT_MS", "3000"),
    ];
    let worker = start_wrangler(edge_port, reads.port, &vars);
    let edge = Edge {
        base: format!("http://127.0.0.1:{edge_port}"),
        pushes,
        reads,
        _worker: worker,
    };
    wait_edge_ready(&edge.base, Duration::from_secs(600)).await;
    let candidates: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND NOT archived AND NOT favorite ORDER BY id DESC",
    )
    .bind(WS)
    .fetch_all(db)
    .await
    .expect("contacts");
    let base = favorites(db).await;
    let run = Arc::new(Run {
        db: db.clone(),
        url: url.to_owned(),
        layers,
        bases,
        origins: Mutex::new(origins.map(Some)),
        fault: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        acks: Mutex::default(),
        acked_ids: Mutex::default(),
        env,
        edge,
        replica,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
    });
    let readers: Vec<_> = (0..READERS)
        .map(|i| tokio::spawn(read(run.clone(), i)))
        .collect();
    let writer = tokio::spawn(write(run.clone(), candidates));

    let window = plan.consistency_window;
    let namespace = run.layers.namespace.clone();
    for (i, fault) in Fault::ALL.iter().enumerate() {
        run.fault.store(i, Ordering::Release);
        let began = Instant::now();
        tokio::time::sleep(window / 4).await;
        inject(&run, *fault, &mut redis, &namespace, plan).await;
        // A fault longer than the window is still followed by reads judged after it.
        let end = (began + window).max(Instant::now() + window / 2);
        tokio::time::sleep_until(end.into()).await;
    }
    run.stop.store(true, Ordering::Release);
    let mut reads = Vec::new();
    for r in readers {
        reads.extend(r.await.expect("reader"));
    }
    let writes_failed = writer.await.expect("writer");
    drop(redis);

    judge(&run, base, reads, writes_failed, plan).await
}

/// The replica server's URL without a database (`scripts/replica` by default).
fn replica_server() -> String {
    std::env::var("DATABASE_REPLICA_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433".into())
}

fn database_name(url: &str) -> &str {
    url.rsplit_once('/').map_or(url, |(_, name)| name)
}

/// `url`'s database on the replica, once the replica has replayed it as it is now.
async fn replica_of(db: &PgPool, url: &str) -> PgPool {
    let written: i64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8")
            .fetch_one(db)
            .await
            .expect("primary position");
    let replica = PgPool::connect_lazy(&format!("{}/{}", replica_server(), database_name(url)))
        .expect("replica url");
    let _ = sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&replica)
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replayed = sqlx::query_scalar::<_, i64>(
            "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::int8",
        )
        .fetch_one(&replica)
        .await;
        if replayed.as_ref().is_ok_and(|r| *r >= written) {
            return replica;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never caught up: {replayed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_origin(url: &str, layers: &Layers, env: &[(String, String)]) -> Origin {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    origins::origin_with(url, layers, &env).await
}

async fn favorites(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1 AND NOT archived AND favorite",
    )
    .bind(WS)
    .fetch_one(db)
    .await
    .expect("favorites")
}

/// Applies `fault` a quarter into its window; Redis stays frozen, the edge away and the
/// replica paused for as long as the plan says, the others end within the window.
async fn inject(run: &Run, fault: Fault, redis: &mut Redis, namespace: &str, plan: &Plan) {
    let window = plan.consistency_window;
    match fault {
        Fault::None | Fault::ClientsDisconnect => {}
        Fault::RedisRestartedEmpty => {
            let port = redis.port;
            redis.kill();
            *redis = Redis::start(port).await;
        }
        Fault::HashEvicted => {
            let ws = WorkspaceId::parse(WS).expect("valid");
            let key = KeySpace::new(namespace).expect("valid").generations(&ws);
            for _ in 0..4 {
                let status = std::process::Command::new("redis-cli")
                    .args(["-p", &redis.port.to_string(), "DEL", &key])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("redis-cli");
                assert!(status.success(), "redis-cli DEL");
                tokio::time::sleep(window / 10).await;
            }
        }
        Fault::RedisFrozen => {
            redis.signal("-STOP");
            tokio::time::sleep(plan.redis_outage).await;
            redis.signal("-CONT");
        }
        Fault::EdgeAway => {
            run.edge.pushes.cut().await;
            tokio::time::sleep(plan.edge_outage).await;
            run.edge.pushes.restore();
        }
        Fault::ReplicaPaused => {
            replay(&run.replica, "pause").await;
            tokio::time::sleep(plan.replica_pause).await;
            replay(&run.replica, "resume").await;
        }
        Fault::OriginKilled => {
            kill(run, 0);
            restart(run, 0).await;
        }
        Fault::AllOriginsDown => {
            kill(run, 0);
            kill(run, 1);
            tokio::time::sleep(window / 4).await;
            restart(run, 0).await;
            restart(run, 1).await;
        }
        Fault::ListenCut => {
            for _ in 0..3 {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
                )
                .execute(&run.db)
                .await
                .expect("terminate the listeners");
                tokio::time::sleep(window / 8).await;
            }
        }
    }
}

async fn replay(replica: &PgPool, what: &str) {
    sqlx::query(&format!("SELECT pg_wal_replay_{what}()"))
        .execute(replica)
        .await
        .unwrap_or_else(|e| panic!("replay {what}: {e}"));
}

/// SIGKILLs origin `i`; readers and the writer leave it alone until it is restarted, and
/// the edge reads the other one.
fn kill(run: &Run, i: usize) {
    run.bases.write().expect("bases")[i] = None;
    let mut origins = run.origins.lock().expect("origins");
    if let Some(other) = &origins[1 - i] {
        run.edge.reads.retarget(other.port);
    }
    let killed = origins[i].take();
    if let Some(o) = killed {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &o.pid().to_string()])
            .status();
    }
}

async fn restart(run: &Run, i: usize) {
    let restarted = start_origin(&run.url, &run.layers, &run.env).await;
    run.bases.write().expect("bases")[i] = Some(restarted.base());
    let mut origins = run.origins.lock().expect("origins");
    if origins[1 - i].is_none() {
        run.edge.reads.retarget(restarted.port);
    }
    origins[i] = Some(restarted);
}

/// Reads the counts until the run stops: in turn from each origin (the other while one is
/// down) and through the edge.
async fn read(run: Arc<Run>, i: usize) -> Vec<Read> {
    let reader = token("user_3", WS, false);
    let mut reads = Vec::new();
    let mut n = i;
    while !run.stop.load(Ordering::Acquire) {
        n += 1;
        let fault = run.fault.load(Ordering::Acquire);
        let edge = n % 3 == 2;
        let base = if edge {
            Some(run.edge.base.clone())
        } else {
            let bases = run.bases.read().expect("bases");
            bases[n % 3].clone().or_else(|| bases[1 - n % 3].clone())
        };
        let Some(base) = base else {
            // Every origin is down: look again shortly.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let url = match edge {
            true => format!("{base}/api/workspaces/{WS}/counts"),
            false => format!("{base}/api/cache-settings/workspace/{WS}/counts"),
        };
        let down_at = |run: &Run| {
            let bases = run.bases.read().expect("bases");
            match edge {
                true => bases.iter().any(Option::is_none),
                false => !bases.iter().flatten().any(|b| *b == base),
            }
        };
        let down_before = down_at(&run);
        let at = Instant::now();
        let answer = run
            .http
            .get(&url)
            .bearer_auth(&reader)
            .header("X-Workspace-ID", WS)
            .send()
            .await;
        let (mut marked_stale, mut hit) = (false, false);
        let answer = match answer {
            Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                Ok(v) => {
                    marked_stale = v["data"]["_cache"]["status"] == "STALE";
                    hit = v["data"]["_cache"]["status"] == "HIT";
                    v["data"]["favorites"]
                        .as_i64()
                        .ok_or_else(|| format!("no favorites in {v}"))
                }
                Err(e) => Err(format!("unreadable: {e}")),
            },
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                Err(format!(
                    "status {status}: {}",
                    body.chars().take(200).collect::<String>()
                ))
            }
            Err(e) => Err(format!("no answer: {}", causes(&e))),
        };
        reads.push(Read {
            fault,
            at,
            edge,
            answer,
            marked_stale,
            hit,
            origin_down: down_before || down_at(&run),
        });
    }
    reads
}

/// Writes until the run stops, each as the current fault says; the writes that failed.
async fn write(run: Arc<Run>, candidates: Vec<i64>) -> u64 {
    let writer = token("user_1", WS, false);
    let mut failed = 0;
    let mut ticker = tokio::time::interval(WRITE_EVERY);
    for (n, id) in candidates.into_iter().enumerate() {
        ticker.tick().await;
        if run.stop.load(Ordering::Acquire) {
            break;
        }
        let kind = Fault::ALL[run.fault.load(Ordering::Acquire)].write_kind();
        let base = {
            let bases = run.bases.read().expect("bases");
            bases[n % 2].clone().or_else(|| bases[(n + 1) % 2].clone())
        };
        let base = match (base, kind) {
            (Some(base), _) => base,
            (None, WriteKind::Direct) => String::new(),
            (None, _) => continue,
        };
        let path = format!("/api/workspaces/{WS}/contacts/{id}");
        let body = json!({"favorite": true}).to_string();
        let answered = match kind {
            WriteKind::Api => run
                .http
                .patch(format!("{base}{path}"))
                .bearer_auth(&writer)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            WriteKind::Dropped => commit_and_leave(&run.db, &base, &path, &writer, &body, id).await,
            WriteKind::Direct => {
                sqlx::query(
                    "UPDATE contacts SET favorite = true WHERE workspace_id = $1 AND id = $2",
                )
                .bind(WS)
                .bind(id)
                .execute(&run.db)
                .await
                .expect("a direct write");
                true
            }
        };
        let acked = answered || committed(&run.db, id).await;

        if acked {
            let fault = run.fault.load(Ordering::Acquire);
            run.acks.lock().expect("acks").push((Instant::now(), fault));
            run.acked_ids.lock().expect("ids").push(id);
        } else if matches!(kind, WriteKind::Api) {
            failed += 1;
        }
    }
    failed
}

/// Sends a write and leaves as soon as Postgres has it (the request is then between its
/// COMMIT and its answer): the connection is reset, so the origin drops the request. Whether
/// it committed.
async fn commit_and_leave(
    db: &PgPool,
    base: &str,
    path: &str,
    token: &str,
    body: &str,
    id: i64,
) -> bool {
    let addr = base.trim_start_matches("http://");
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let done = committed(db, id).await;
    // A zero linger resets the connection at once: nothing blocks on the drop.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
    done
}

/// Whether a write whose answer did not come committed: polled for a second.
async fn committed(db: &PgPool, id: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let favorite: bool = sqlx::query_scalar("SELECT favorite FROM contacts WHERE id = $1")
            .bind(id)
            .fetch_one(db)
            .await
            .expect("the contact");
        if favorite {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

/// Per fault: reads checked, reads older than an acknowledged write (and beyond the
/// bound), the oldest, errors, and the consistency in nines.
async fn judge(
    run: &Run,
    base: i64,
    reads: Vec<Read>,
    writes_failed: u64,
    plan: &Plan,
) -> (Value, Vec<Check>) {
    let acks = run.acks.lock().expect("acks").clone();
    let ids = run.acked_ids.lock().expect("ids").clone();
    let mut table = Vec::new();
    let mut checks = Vec::new();
    let mut total = 0usize;
    for (i, fault) in Fault::ALL.iter().enumerate() {
        let (mut checked, mut older, mut beyond, mut errors, mut cut) = (0, 0, 0, 0, 0);
        let (mut at_edge, mut marked_stale, mut hits) = (0, 0, 0);
        // By layer: the origins, the edge.
        let mut oldest = [Duration::ZERO; 2];
        let mut first_error = None;
        for r in reads.iter().filter(|r| r.fault == i) {
            let count = match &r.answer {
                Ok(c) => *c,
                Err(_) if r.origin_down => {
                    cut += 1;
                    continue;
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| e.clone());
                    continue;
                }
            };
            if r.marked_stale {
                marked_stale += 1;
                continue;
            }
            checked += 1;
            at_edge += usize::from(r.edge);
            hits += usize::from(r.edge && r.hit);
            let before = acks.partition_point(|(a, _)| *a < r.at);
            let shown = usize::try_from(count - base).unwrap_or(0);
            if shown < before {
                older += 1;
                let age = r.at.duration_since(acks[shown].0);
                let layer = usize::from(r.edge);
                oldest[layer] = oldest[layer].max(age);
                if age > if r.edge { EDGE_BOUND } else { BOUND } {
                    beyond += 1;
                }
            }
        }
        total += checked;
        let nines = if checked == 0 {
            0.0
        } else if beyond == 0 {
            (checked as f64).log10()
        } else {
            -((beyond as f64) / (checked as f64)).log10()
        };
        let writes = acks.iter().filter(|(_, f)| *f == i).count();
        table.push(json!({
            "fault": fault.name(),
            "writes": writes,
            "readsChecked": checked,
            "throughTheEdge": at_edge,
            "edgeHits": hits,
            "markedStale": marked_stale,
            "olderThanAWrite": older,
            "olderThanTheBound": beyond,
            "oldestMs": ms(oldest[0].max(oldest[1])),
            "oldestAtTheEdgeMs": ms(oldest[1]),
            "errors": errors,
            "cutByTheKill": cut,
            "nines": if beyond == 0 { format!("≥ {nines:.1}") } else { format!("{nines:.1}") },
        }));
        checks.push(check(
            fault.name(),
            beyond == 0 && errors == 0 && checked > 0,
            format!(
                "{writes} writes, {checked} reads ({at_edge} through the edge, {hits} of them KV hits), {beyond} older than an \
                 acknowledged write by more than the bound ({older} older at all, the oldest by {:.0} ms \
                 at the origins, {:.0} ms at the edge), {marked_stale} marked stale, {errors} errors{}",
                ms(oldest[0]),
                ms(oldest[1]),
                first_error.map_or(String::new(), |e| format!(" (first: {e})"))
            ),
        ));
    }
    let in_postgres = favorites(&run.db).await;
    let lost: i64 =
        sqlx::query_scalar("SELECT count(*) FROM contacts WHERE id = ANY($1) AND NOT favorite")
            .bind(&ids)
            .fetch_one(&run.db)
            .await
            .expect("lost writes");
    checks.push(check(
        "every acknowledged write is in Postgres",
        lost == 0 && in_postgres == base + ids.len() as i64,
        format!(
            "{} writes acknowledged, {lost} lost; favorites {base} before, {in_postgres} after; {writes_failed} API writes failed",
            ids.len()
        ),
    ));
    checks.push(check(
        "enough reads checked",
        total >= plan.consistency_reads,
        format!(
            "{total} reads checked (at least {})",
            plan.consistency_reads
        ),
    ));
    (
        json!({
            "boundMs": BOUND.as_millis() as u64,
            "edgeBoundMs": EDGE_BOUND.as_millis() as u64,
            "writes": ids.len(),
            "readsChecked": total,
            "faults": table,
        }),
        checks,
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// An error and what caused it, down the chain.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
