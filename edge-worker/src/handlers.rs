//! What each route does, composed of the runtime's adapters (KV, the generations'
//! object, the origin) and the plain decisions of the other modules (access, freshness,
//! the origin's replies, invalidation scopes).

use std::rc::Rc;

use serde::Deserialize;
use serde_json::json;
use shared::invalidation::{parse_edge_request, Changed, Push};
use shared::keys::{GenerationScope, Generations};
use shared::message_search::MessageSearch;
use shared::messages::MessageQuery;
use shared::model::{CacheMeta, CacheStatus, Source};
use shared::query::ContactListQuery;
use shared::token::any_secret;
use shared::{BoardId, ConversationId, UserId, WorkspaceId};
use worker::{Context, Date, Env, Method, Request, Response};

use crate::access::{self, Presented};
use crate::config::Config;
use crate::copies::{Counters, Known};
use crate::fail::{Fail, Result};
use crate::freshness::{kv_expiration_secs, refill_due, EntryMeta, Freshness};
use crate::generations::{self, Wanted};
use crate::hot;
use crate::metrics;
use crate::origin_reply::{self, Fetched};
use crate::reply::{cached_body, success_body};
use crate::route::Route;
use crate::rows::{RowsNow, Stamp};
use crate::runtime::{call_origin, colo, json_response, kv_get, kv_put, now_ms, As};

const VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) async fn handle(
    mut req: Request,
    env: &Env,
    ctx: &Context,
    started: u64,
) -> Result<Response> {
    let method = req.method().to_string();
    match Route::parse(&method, &req.path()) {
        Route::Health => health(env, &req, started).await,
        Route::Metrics => Ok(metrics(&req)?),
        Route::Preflight => Ok(json_response(204, String::new())?),
        Route::NotFound => Err(Fail::new(404, "not_found", "route not found")),
        Route::MethodNotAllowed => Err(Fail::new(
            405,
            "method_not_allowed",
            "this method is not allowed here",
        )),
        Route::Counts { workspace } => {
            let cfg = Config::load(env, &req)?;
            let ws = WorkspaceId::parse(&workspace)?;
            let (user, ws) = authorize(&cfg, &req, Some(ws.as_str()))?;
            let scopes = [GenerationScope::Counts];
            let key = counters(&cfg, &ws, None, &scopes)
                .await
                .map(|(k, trust)| (cfg.keys.counts(&ws, k.gens(&scopes), &user), trust));
            let path = format!("/api/cache-settings/workspace/{ws}/counts");
            let asked = Asked::new(path, ws, user);
            read(cfg, &req, ctx, started, key, asked).await
        }
        Route::Contacts { board } => {
            let cfg = Config::load(env, &req)?;
            let board = BoardId::parse(&board)?;
            let (user, ws) = authorize(&cfg, &req, None)?;
            let (pairs, query) = query_of(&req)?;
            let q =
                ContactListQuery::from_pairs(pairs_of(&pairs), &ws, board, &user, &cfg.cursors)?;
            let scopes = GenerationScope::of_page(board, &q);
            let known = counters(&cfg, &ws, Some(board), &scopes).await;
            let key = known
                .as_ref()
                .map(|(k, trust)| (cfg.keys.contacts(&ws, board, k.gens(&scopes), &q), *trust));
            let path = format!("/api/boards/{board}/contacts{query}");
            let mut asked = Asked::new(path, ws, user);
            asked.rows = known.map(|(k, _)| RowsNow {
                rows: k
                    .known
                    .counters
                    .get(&GenerationScope::Rows(board).field())
                    .copied()
                    .unwrap_or(0),
                edits: k.known.edits.clone(),
            });
            read(cfg, &req, ctx, started, key, asked).await
        }
        Route::Messages { conversation } => {
            let cfg = Config::load(env, &req)?;
            let conversation = ConversationId::parse(&conversation)?;
            let (user, ws) = authorize(&cfg, &req, None)?;
            let (pairs, query) = query_of(&req)?;
            let q = MessageQuery::from_pairs(pairs_of(&pairs), &ws, conversation, &cfg.cursors)?;
            let scopes = GenerationScope::of_messages(&q);
            let key = counters(&cfg, &ws, None, &scopes)
                .await
                .map(|(k, trust)| (cfg.keys.messages(&ws, k.gens(&scopes), &q), trust));
            let path = format!("/api/conversations/{conversation}/messages{query}");
            let asked = Asked::new(path, ws, user);
            read(cfg, &req, ctx, started, key, asked).await
        }
        Route::MessageSearch { workspace } => {
            let cfg = Config::load(env, &req)?;
            let ws = WorkspaceId::parse(&workspace)?;
            let (user, ws) = authorize(&cfg, &req, Some(ws.as_str()))?;
            let (pairs, query) = query_of(&req)?;
            let q = MessageSearch::from_pairs(pairs_of(&pairs), &ws, &cfg.cursors)?;
            let scopes = GenerationScope::of_message_search(&q);
            let key = counters(&cfg, &ws, None, &scopes)
                .await
                .map(|(k, trust)| (cfg.keys.message_search(&ws, k.gens(&scopes), &q), trust));
            let path = format!("/api/workspaces/{ws}/messages/search{query}");
            let asked = Asked::new(path, ws, user);
            read(cfg, &req, ctx, started, key, asked).await
        }
        Route::Invalidate => {
            let cfg = Config::load(env, &req)?;
            let (_, ws) = authorize(&cfg, &req, None)?;
            let authorization = req.headers().get("Authorization")?.unwrap_or_default();
            let body = req.text().await?;
            invalidate(&cfg, &ws, &authorization, &body).await
        }
        Route::Drained => {
            let cfg = Config::load(env, &req)?;
            pushed(&cfg, &req)?;
            let mark = Drained::parse(&req.text().await?)?;
            let taken = drained(&cfg, mark).await?;
            Ok(json_response(200, success_body(&json!({"taken": taken})))?)
        }
        Route::Changes => {
            let cfg = Config::load(env, &req)?;
            pushed(&cfg, &req)?;
            let (ws, change) = Push::parse(&req.text().await?)?;
            let (bumped, held) = bump(&cfg, &ws, &change).await?;
            Ok(json_response(
                200,
                success_body(&json!({
                    "invalidated": bumped.len(),
                    "generations": bumped,
                    "countersHeld": held,
                })),
            )?)
        }
    }
}

/// The request's decoded query pairs, and its query string as sent (for the origin).
fn query_of(req: &Request) -> Result<(Vec<(String, String)>, String)> {
    let url = req.url()?;
    let pairs = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok((pairs, query))
}

fn pairs_of(pairs: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

fn authorize(cfg: &Config, req: &Request, path_ws: Option<&str>) -> Result<(UserId, WorkspaceId)> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (authorization, user, workspace) = (
        header("Authorization"),
        header("X-User-ID"),
        header("X-Workspace-ID"),
    );
    let presented = Presented {
        authorization: authorization.as_deref(),
        user: user.as_deref(),
        workspace: workspace.as_deref(),
    };
    access::authorize(&cfg.tokens, presented, path_ws, now_ms() / 1000)
}

/// Fails unless `req` carries one of the origins' push keys: the read key the worker
/// holds pushes nothing.
fn pushed(cfg: &Config, req: &Request) -> Result<()> {
    let key = req.headers().get("X-Internal-Key")?.unwrap_or_default();
    let keys = cfg.push_keys.iter().map(String::as_str);
    any_secret(keys, &key)
        .then_some(())
        .ok_or_else(Fail::unauthorized)
}

/// A Durable Object that did not take a change: logged, and a retryable 503 saying what
/// the edge could not do.
fn objects_unavailable(what: &'static str) -> impl FnOnce(worker::Error) -> Fail {
    move |e| {
        worker::console_error!("{what}: {e}");
        Fail::new(
            503,
            "generations_unavailable",
            format!("the edge cannot {what} now; retry"),
        )
    }
}

/// The fields of the edge's drained mark: when (ms) the origin last found its outbox
/// drained, and the outbox's incarnation (ms), which moves when Redis lost the outbox.
const DRAINED: &str = "at";
const EPOCH: &str = "epoch";

/// A mark that took longer than this to arrive is dropped: it would vouch for changes
/// acknowledged after it was made.
const MARK_MAX_DELAY_MS: u64 = 500;

/// What an origin posts to `/internal/changes/drained`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Drained {
    /// When (origin clock, ms) it found its outbox empty.
    checked_at_ms: u64,
    /// When (Redis clock, ms) its outbox was made: a new one means changes were lost.
    incarnation: u64,
}

impl Drained {
    fn parse(body: &str) -> Result<Self> {
        serde_json::from_str(body)
            .map_err(|_| Fail::new(400, "invalid_body", "expected checkedAtMs and incarnation"))
    }
}

/// Keeps `mark` unless it arrived late; whether it was kept. Its incarnation raises the
/// epoch every key is built on, so entries stored before an outbox was lost (with changes
/// in it the edge never heard of) are met no more.
async fn drained(cfg: &Config, mark: Drained) -> Result<bool> {
    let now = now_ms();
    if now.saturating_sub(mark.checked_at_ms) > MARK_MAX_DELAY_MS {
        return Ok(false);
    }
    let raised = Counters::from([
        (DRAINED.to_owned(), mark.checked_at_ms.min(now)),
        (EPOCH.to_owned(), mark.incarnation),
    ]);
    generations::raise(&cfg.generations, &cfg.keys.edge_drained(), &raised)
        .await
        .map_err(objects_unavailable("note the drained mark"))?;
    Ok(true)
}

/// The workspace's generation counters (the outbox's epoch added to its workspace
/// counter), and whether they are confirmed: read after the origins last found their
/// outbox drained, within `EDGE_CONFIRMED_MAX_AGE_MS`, so they hold every change
/// acknowledged before then. Unconfirmed counters may lack changes the origins could not
/// push (the edge was away from them), so no KV entry built on them is served as a hit.
/// Only the fields a key on `scopes` needs are read (and with a board, its `Rows` and
/// edits). `None` when the counters cannot be read now.
async fn counters(
    cfg: &Config,
    ws: &WorkspaceId,
    board: Option<BoardId>,
    scopes: &[GenerationScope],
) -> Option<(Counted, Trust)> {
    let now = now_ms();
    let fields: Vec<String> = std::iter::once(GenerationScope::Workspace)
        .chain(scopes.iter().copied())
        .chain(board.map(GenerationScope::Rows))
        .map(GenerationScope::field)
        .collect();
    let asked = || metrics::isolate(|m| m.object_read());
    let name = cfg.keys.generations(ws);
    let wanted = || Wanted {
        name: &name,
        board: board.map(|b| b.0),
        fields: &fields,
    };
    let max_age = cfg.confirmed_max_age_ms;
    let trust = |current: bool, confirmed: bool| match (current, confirmed) {
        (false, _) => Trust::Held,
        (true, true) => Trust::Confirmed,
        (true, false) => Trust::Unconfirmed,
    };
    if max_age == 0 {
        let read = (cfg.generation_max_age_ms, 0);
        let known = generations::read(&cfg.generations, wanted(), now, read, asked).await;
        return known.map(|(known, current)| (Counted { known, epoch: 0 }, trust(current, true)));
    }
    // Reread at half the allowed age, so a mark renewed in time is never taken for old.
    let marks = cfg.keys.edge_drained();
    let mark_fields = [DRAINED.to_owned(), EPOCH.to_owned()];
    let mark = generations::read(
        &cfg.generations,
        Wanted {
            name: &marks,
            board: None,
            fields: &mark_fields,
        },
        now,
        (max_age / 2, 0),
        asked,
    );
    let mark = mark.await;
    let drained_at = mark
        .as_ref()
        .filter(|(_, current)| *current)
        .and_then(|(m, _)| m.counters.get(DRAINED).copied())
        .filter(|at| now.saturating_sub(*at) < max_age);
    let epoch = mark
        .as_ref()
        .and_then(|(m, _)| m.counters.get(EPOCH).copied())
        .unwrap_or(0);
    // The marks' object away, nobody can say whether the edge has every change: what KV
    // holds is served as stale, as when the workspace's own object is away.
    let marks_away = !mark.as_ref().is_some_and(|(_, current)| *current);
    let read = (cfg.generation_max_age_ms, drained_at.unwrap_or(0));
    let (known, current) = generations::read(&cfg.generations, wanted(), now, read, asked).await?;
    let trust = trust(current && !marks_away, drained_at.is_some());
    Some((Counted { known, epoch }, trust))
}

/// How far the counters behind a key may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Current, read after the origins last said the edge has every change: KV answers.
    Confirmed,
    /// Current, but the origins have not said so lately: the origin answers, and what KV
    /// holds stands in should it fail.
    Unconfirmed,
    /// The object did not answer: this isolate's last copy. What KV holds under it is
    /// served `STALE` within its grace (never as fresh), and only what it does not hold
    /// goes to the origin.
    Held,
}

/// A workspace's counters as this isolate knows them, and the outbox's epoch.
struct Counted {
    known: Rc<Known>,
    epoch: u64,
}

impl Counted {
    /// The generations of a key depending on `scopes`. The outbox's epoch and the object's
    /// incarnation are added to the workspace's, which is part of every key: entries
    /// stored before either restarted are met no more.
    fn gens(&self, scopes: &[GenerationScope]) -> Generations {
        let mut g = Generations::from_fields(&self.known.counters, scopes);
        g.workspace = g
            .workspace
            .wrapping_add(self.epoch)
            .wrapping_add(self.known.incarnation);
        g
    }
}

/// A read the origin answers on a miss: its path there, whom it is for, and for a page
/// of contacts its board's edits (its entries are stamped and checked with them).
struct Asked {
    path: String,
    ws: WorkspaceId,
    user: UserId,
    rows: Option<RowsNow>,
}

impl Asked {
    fn new(path: String, ws: WorkspaceId, user: UserId) -> Self {
        Self {
            path,
            ws,
            user,
            rows: None,
        }
    }

    /// What KV holds for this read: the page, once it is checked against the board's
    /// edits (a page an edit reached is not current, like one of an older generation).
    fn held(&self, value: String) -> (String, bool) {
        let Some(now) = &self.rows else {
            return (value, true);
        };
        match Stamp::split(&value) {
            Some((stamp, data)) => (data.to_owned(), stamp.untouched(now)),
            None => (value, false),
        }
    }
}

/// Answers `asked` from KV under `key`, or from the origin (filling KV) on a miss.
async fn read(
    cfg: Config,
    req: &Request,
    ctx: &Context,
    started: u64,
    key: Option<(String, Trust)>,
    asked: Asked,
) -> Result<Response> {
    let location = colo(req);
    let passed = |f: Fetched| {
        let meta = CacheMeta {
            status: f.passed_status(),
            source: f.source,
            ttl: 0,
            edge_location: Some(location.clone()),
            response_time_ms: (now_ms() - started) as f64,
        };
        answer(&f.data, meta)
    };
    // Without the generations no KV entry is known to be current: the origin answers,
    // and nothing is stored.
    let Some((key, trust)) = key else {
        return passed(from_origin(&cfg, &asked).await?);
    };
    let confirmed = trust == Trust::Confirmed;
    let now = now_ms();
    let held = held(&cfg, &key, confirmed, &asked, now).await;
    let freshness = |meta: &EntryMeta, current: bool| {
        (confirmed && current).then(|| meta.freshness(now, cfg.grace_secs))
    };
    let (status, source, data, meta) = match held {
        Some((data, meta, _))
            if trust == Trust::Held
                && meta.freshness(now, cfg.grace_secs) != Freshness::Expired =>
        {
            (CacheStatus::Stale, Source::CloudflareKv, data, Some(meta))
        }
        _ if trust == Trust::Held => {
            return passed(from_origin(&cfg, &asked).await?);
        }
        Some((data, meta, current)) if freshness(&meta, current) == Some(Freshness::Fresh) => {
            (CacheStatus::Hit, Source::CloudflareKv, data, Some(meta))
        }
        Some((data, meta, current)) if freshness(&meta, current) == Some(Freshness::Stale) => {
            if refill_due(&key, now) {
                metrics::isolate(|m| m.refill());
                ctx.wait_until(async move {
                    let _ = fill(&cfg, &key, &asked).await;
                });
            }
            (CacheStatus::Stale, Source::CloudflareKv, data, Some(meta))
        }
        // Past the grace, nothing held, or unconfirmed counters: the origin; should it
        // fail or shed the request (429), what KV still holds stands in.
        // An answer the origin says not to keep (its caching is off, or its value is
        // stale) was not cached here either: BYPASS or STALE, as the origin says of it.
        held => match fill(&cfg, &key, &asked).await {
            Ok((f, None)) => (f.passed_status(), f.source, f.data, None),
            Ok((f, meta)) => (CacheStatus::Miss, f.source, f.data, meta),
            Err(f) if f.origin_unable() => match held {
                Some((data, meta, _)) => {
                    (CacheStatus::Stale, Source::CloudflareKv, data, Some(meta))
                }
                None => return Err(f),
            },
            Err(f) => return Err(f),
        },
    };
    let elapsed = (now_ms() - started) as f64;
    let fresh = matches!(status, CacheStatus::Hit | CacheStatus::Miss);
    let cache_meta = CacheMeta {
        status,
        source,
        ttl: meta
            .filter(|_| fresh)
            .map(|m| m.remaining_secs(now_ms()))
            .unwrap_or(0),
        edge_location: Some(location),
        response_time_ms: elapsed,
    };
    answer(&data, cache_meta)
}

/// What is held under `key`, checked against the board's edits: with confirmed counters,
/// the isolate's copy while it is fresh and current, else KV's (copied into the isolate
/// when current). Anything less than confirmed reads KV, whose entry another isolate may
/// have refilled since: what stands in for the origin is then the newest there is.
async fn held(
    cfg: &Config,
    key: &str,
    confirmed: bool,
    asked: &Asked,
    now: u64,
) -> Option<(String, EntryMeta, bool)> {
    if let Some((value, meta)) = hot::isolate(|h| h.get(key, now)).filter(|_| confirmed) {
        match asked.held(value) {
            (data, true) => {
                metrics::isolate(|m| m.hot_read());
                return Some((data, meta, true));
            }
            _ => hot::isolate(|h| h.forget(key)),
        }
    }
    let (value, meta) = kv_get(&cfg.kv, key).await?;
    let copy = confirmed.then(|| value.clone());
    let (data, current) = asked.held(value);
    if let Some(value) = copy.filter(|_| current) {
        hot::isolate(|h| h.keep(key, &value, meta, now, cfg.hot_bytes));
    }
    Some((data, meta, current))
}

fn answer(data: &str, meta: CacheMeta) -> Result<Response> {
    metrics::isolate(|m| m.read(meta.status, meta.source, meta.response_time_ms));
    let mut response = json_response(200, cached_body(data, &meta))?;
    let _ = response
        .headers_mut()
        .set("x-cache-status", meta.status.as_str());
    Ok(response)
}

async fn from_origin(cfg: &Config, asked: &Asked) -> Result<Fetched> {
    let who = As::Edge(&asked.user);
    let (status, body) = call_origin(cfg, Method::Get, &asked.path, &asked.ws, who, None).await?;
    origin_reply::read(status, &body)
}

/// Asks the origin and stores its answer in KV for as long as the origin says it is fresh.
async fn fill(cfg: &Config, key: &str, asked: &Asked) -> Result<(Fetched, Option<EntryMeta>)> {
    let fetched = from_origin(cfg, asked).await?;
    let (data, ttl) = (&fetched.data, fetched.ttl_secs);
    if ttl == 0 {
        return Ok((fetched, None));
    }
    let meta = EntryMeta::new(now_ms(), ttl);
    let expiration = kv_expiration_secs(ttl, cfg.grace_secs);
    match asked
        .rows
        .as_ref()
        .map(|now| Stamp::of_page(now.rows, data))
    {
        Some(Some(stamp)) => store(cfg, key, &stamp.value(data), meta, expiration).await,
        Some(None) => worker::console_warn!("a page without its contacts' ids: not stored"),
        None => store(cfg, key, data, meta, expiration).await,
    }
    Ok((fetched, Some(meta)))
}

/// Stores an entry, made just now, in KV and in the isolate's copies.
async fn store(cfg: &Config, key: &str, value: &str, meta: EntryMeta, expiration: u64) {
    hot::isolate(|h| h.keep(key, value, meta, meta.computed_at_ms, cfg.hot_bytes));
    kv_put(&cfg.kv, key, value, meta, expiration).await;
}

/// The origin first, with the caller's own token: it checks what the caller may
/// invalidate (an admin for the workspace, a board of the workspace) and bumps its layers.
/// Only a change the origin took is applied here, so no read in between can store the
/// origin's old answer under the new generation; an origin that cannot be told is a
/// retryable 503, and nothing changes.
async fn invalidate(
    cfg: &Config,
    ws: &WorkspaceId,
    authorization: &str,
    body: &str,
) -> Result<Response> {
    let change = parse_edge_request(body)?;
    let board = change.boards().and_then(|b| b.first().map(|b| b.0));
    let origin_body = json!({"workspaceId": ws, "boardId": board}).to_string();
    let (status, reply) = call_origin(
        cfg,
        Method::Post,
        "/api/cache-settings/invalidate",
        ws,
        As::Caller(authorization),
        Some(origin_body),
    )
    .await?;
    origin_reply::read(status, &reply)?;
    let (bumped, _) = bump(cfg, ws, &change).await?;
    Ok(json_response(
        200,
        success_body(&json!({
            "invalidated": bumped.len(),
            "generations": bumped,
            "patterns": change.patterns(ws),
            "method": "generation_bump",
            "origin_notified": true,
        })),
    )?)
}

/// Moves on the generations that `change` covers, in the workspace's object (so at
/// every location); the new value of each, and how many counters the object holds. Not
/// done: a retryable 503.
async fn bump(cfg: &Config, ws: &WorkspaceId, change: &Changed) -> Result<(Counters, u64)> {
    let fields: Vec<String> = change.scopes().iter().map(|s| s.field()).collect();
    let name = cfg.keys.generations(ws);
    let edit = match change {
        Changed::Edited(e) => Some((e.board.0, e.contact)),
        _ => None,
    };
    generations::bump(&cfg.generations, &name, fields, edit)
        .await
        .map_err(objects_unavailable("move its generations"))
}

async fn health(env: &Env, req: &Request, started: u64) -> Result<Response> {
    let kv_available = match env.kv("CACHE_KV") {
        Ok(kv) => {
            metrics::isolate(|m| m.kv_read());
            kv.get("health-probe").text().await.is_ok()
        }
        Err(_) => false,
    };
    // How long ago the origin last found its outbox drained: past
    // EDGE_CONFIRMED_MAX_AGE_MS, reads go through to the origin.
    let confirmed = match Config::load(env, req) {
        Ok(cfg) => {
            let now = now_ms();
            let name = cfg.keys.edge_drained();
            let fields = [DRAINED.to_owned()];
            let wanted = Wanted {
                name: &name,
                board: None,
                fields: &fields,
            };
            let mark = generations::read(&cfg.generations, wanted, now, (0, 0), || ()).await;
            let ago = mark
                .filter(|(_, current)| *current)
                .and_then(|(m, _)| m.counters.get(DRAINED).copied())
                .filter(|at| *at > 0)
                .map(|at| now.saturating_sub(at));
            json!({
                "confirmed": ago.is_some_and(|a| a < cfg.confirmed_max_age_ms) || cfg.confirmed_max_age_ms == 0,
                "drained_ms_ago": ago,
            })
        }
        Err(f) => json!({"confirmed": false, "reason": f.message}),
    };
    let data = json!({
        "status": if kv_available { "healthy" } else { "degraded" },
        "origin_changes": confirmed,
        "worker": "contact-list-cache",
        "version": VERSION,
        "edge_location": colo(req),
        "kv_available": kv_available,
        "timestamp": Date::now().to_string(),
        "response_time": (now_ms() - started) as f64,
    });
    Ok(json_response(200, data.to_string())?)
}

fn metrics(req: &Request) -> worker::Result<Response> {
    let snapshot = metrics::isolate(|m| m.snapshot());
    let data = json!({
        "worker": "contact-list-cache",
        "edge_location": colo(req),
        "metrics": snapshot,
        "timestamp": Date::now().to_string(),
    });
    json_response(200, data.to_string())
}
