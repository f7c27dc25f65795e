//! The Workers runtime glue: read the request, ask KV, ask the origin on a miss, answer.
//! Nothing here may panic (a panic in wasm fails every request in flight on the
//! isolate): every failure becomes a JSON error response.

use std::cell::RefCell;
use std::time::Duration;

use futures_util::future::{select, Either};
use serde_json::json;
use shared::invalidation::{parse_edge_request, Changed, Push};
use shared::keys::{GenerationScope, Generations, KeySpace};
use shared::model::{CacheMeta, CacheStatus, Source};
use shared::query::ContactListQuery;
use shared::token::{same_secret, TokenVerifier};
use shared::{BoardId, UserId, WorkspaceId};
use worker::{
    event, AbortController, Context, Date, Delay, Env, Fetch, Headers, KvStore, Method,
    ObjectNamespace, Request, RequestInit, Response,
};

use crate::access::{self, Presented};
use crate::fail::{Fail, Result};
use crate::freshness::{kv_expiration_secs, EntryMeta, Freshness};
use crate::generations::{self, Counters};
use crate::metrics::Metrics;
use crate::origin_reply::{self, Fetched};
use crate::reply::{cached_body, error_body, success_body};
use crate::route::Route;

const VERSION: &str = env!("CARGO_PKG_VERSION");

thread_local! {
    static METRICS: RefCell<Metrics> = RefCell::new(Metrics::default());
    static REQUESTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The id that ties this request's log lines to the origin's (sent as `X-Request-ID`):
/// the one the request came with (Cloudflare's ray id, or a caller's), else one made here.
fn request_id(req: &Request) -> String {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    header("cf-ray")
        .or_else(|| header("x-request-id"))
        .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| {
            let n = REQUESTS.with(|c| {
                c.set(c.get() + 1);
                c.get()
            });
            format!("edge-{:x}-{n:x}", now_ms())
        })
}

impl From<worker::Error> for Fail {
    fn from(e: worker::Error) -> Self {
        worker::console_error!("worker error: {e}");
        Self::new(500, "internal", "an internal error occurred")
    }
}

impl From<worker::kv::KvError> for Fail {
    fn from(e: worker::kv::KvError) -> Self {
        worker::console_error!("KV error: {e}");
        Self::new(503, "kv_unavailable", "the edge store is unavailable")
    }
}

struct Config {
    request_id: String,
    kv: KvStore,
    generations: ObjectNamespace,
    generation_max_age_ms: u64,
    keys: KeySpace,
    tokens: TokenVerifier,
    origin_url: String,
    internal_key: String,
    timeout: Duration,
    grace_secs: u64,
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

impl Config {
    fn load(env: &Env, req: &Request) -> Result<Self> {
        let missing =
            |what: &str| Fail::new(503, "misconfigured", format!("the worker has no {what}"));
        let jwt = secret(env, "JWT_SECRET").ok_or_else(|| missing("JWT_SECRET"))?;
        Ok(Self {
            request_id: request_id(req),
            kv: env
                .kv("CACHE_KV")
                .map_err(|_| missing("CACHE_KV binding"))?,
            generations: env
                .durable_object("GENERATIONS")
                .map_err(|_| missing("GENERATIONS binding"))?,
            generation_max_age_ms: var(env, "EDGE_GENERATION_MAX_AGE_MS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
            keys: KeySpace::new(&var(env, "CACHE_NAMESPACE").unwrap_or_else(|| "ec".into()))?,
            tokens: TokenVerifier::new(jwt.as_bytes()),
            origin_url: var(env, "ORIGIN_URL").ok_or_else(|| missing("ORIGIN_URL"))?,
            internal_key: secret(env, "INTERNAL_API_KEY")
                .ok_or_else(|| missing("INTERNAL_API_KEY"))?,
            timeout: Duration::from_millis(
                var(env, "ORIGIN_TIMEOUT_MS")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5000),
            ),
            grace_secs: var(env, "STALE_GRACE_SECS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3600),
        })
    }
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// Authenticated answers are for this browser only: never stored by shared caches.
fn json_response(status: u16, body: String) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "private, no-store")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

fn colo(req: &Request) -> String {
    req.cf()
        .map(|cf| cf.colo())
        .unwrap_or_else(|| "unknown".into())
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let started = now_ms();
    let origin = req.headers().get("Origin").ok().flatten();
    let mut response = match handle(req, &env, &ctx, started).await {
        Ok(r) => r,
        Err(f) => {
            METRICS.with(|m| m.borrow_mut().error((now_ms() - started) as f64));
            let mut r = json_response(f.status, error_body(f.code, &f.message))?;
            if f.status == 503 {
                r.headers_mut().set("Retry-After", "5")?;
            }
            r
        }
    };
    allow_cors(&mut response, &env, origin.as_deref());
    Ok(response)
}

/// Answers browsers from the origins listed in `CORS_ALLOW_ORIGINS` (comma-separated).
fn allow_cors(response: &mut Response, env: &Env, origin: Option<&str>) {
    let Some(origin) = origin else { return };
    let allowed = var(env, "CORS_ALLOW_ORIGINS").unwrap_or_default();
    if allowed.split(',').any(|a| a.trim() == origin) {
        let h = response.headers_mut();
        let _ = h.set("access-control-allow-origin", origin);
        let _ = h.set("vary", "Origin");
        let _ = h.set(
            "access-control-allow-headers",
            "authorization, content-type, x-workspace-id, x-user-id",
        );
        let _ = h.set("access-control-allow-methods", "GET, POST, OPTIONS");
        let _ = h.set("access-control-max-age", "600");
    }
}

async fn handle(mut req: Request, env: &Env, ctx: &Context, started: u64) -> Result<Response> {
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
            let key = counters(&cfg, &ws).await.map(|c| {
                let g = Generations::from_fields(&c, &[GenerationScope::Counts]);
                cfg.keys.counts(&ws, g, &user)
            });
            let path = format!("/api/cache-settings/workspace/{ws}/counts");
            let asked = Asked { path, ws, user };
            read(cfg, &req, ctx, started, key, asked).await
        }
        Route::Contacts { board } => {
            let cfg = Config::load(env, &req)?;
            let board = BoardId::parse(&board)?;
            let (user, ws) = authorize(&cfg, &req, None)?;
            let url = req.url()?;
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let q = ContactListQuery::from_pairs(
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &ws,
                board,
                &user,
            )?;
            let key = counters(&cfg, &ws).await.map(|c| {
                let g = Generations::from_fields(&c, &[GenerationScope::Board(board)]);
                cfg.keys.contacts(&ws, board, g, &q)
            });
            let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
            let path = format!("/api/boards/{board}/contacts{query}");
            let asked = Asked { path, ws, user };
            read(cfg, &req, ctx, started, key, asked).await
        }
        Route::Invalidate => {
            let cfg = Config::load(env, &req)?;
            let (_, ws) = authorize(&cfg, &req, None)?;
            let authorization = req.headers().get("Authorization")?.unwrap_or_default();
            let body = req.text().await?;
            invalidate(&cfg, &ws, &authorization, &body).await
        }
        Route::Changes => {
            let cfg = Config::load(env, &req)?;
            let key = req.headers().get("X-Internal-Key")?.unwrap_or_default();
            if !same_secret(&cfg.internal_key, &key) {
                return Err(Fail::unauthorized());
            }
            let (ws, change) = Push::parse(&req.text().await?)?;
            let bumped = bump(&cfg, &ws, &change).await?;
            Ok(json_response(
                200,
                success_body(&json!({"invalidated": bumped.len(), "generations": bumped})),
            )?)
        }
    }
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
    access::authorize(&cfg.tokens, presented, path_ws)
}

/// The workspace's generation counters; `None` when they cannot be read now.
async fn counters(cfg: &Config, ws: &WorkspaceId) -> Option<Counters> {
    let name = cfg.keys.generations(ws);
    let asked = || METRICS.with(|m| m.borrow_mut().object_read());
    generations::read(
        &cfg.generations,
        &name,
        now_ms(),
        cfg.generation_max_age_ms,
        asked,
    )
    .await
}

/// A read the origin answers on a miss: its path there, and whom it is for.
struct Asked {
    path: String,
    ws: WorkspaceId,
    user: UserId,
}

/// Answers `asked` from KV under `key`, or from the origin (filling KV) on a miss.
async fn read(
    cfg: Config,
    req: &Request,
    ctx: &Context,
    started: u64,
    key: Option<String>,
    asked: Asked,
) -> Result<Response> {
    let location = colo(req);
    // Without the generations no KV entry is known to be current: the origin answers,
    // and nothing is stored.
    let Some(key) = key else {
        let Fetched { data, source, .. } = from_origin(&cfg, &asked).await?;
        let meta = CacheMeta {
            status: CacheStatus::Bypass,
            source,
            ttl: 0,
            edge_location: Some(location),
            response_time_ms: (now_ms() - started) as f64,
        };
        return answer(&data, meta);
    };
    let cached = cfg
        .kv
        .get(&key)
        .text_with_metadata::<EntryMeta>()
        .await
        .unwrap_or((None, None));
    let now = now_ms();
    let (status, source, data, meta) = match cached {
        (Some(data), Some(meta)) if meta.freshness(now, cfg.grace_secs) == Freshness::Fresh => {
            (CacheStatus::Hit, Source::CloudflareKv, data, Some(meta))
        }
        (Some(data), Some(meta)) if meta.freshness(now, cfg.grace_secs) == Freshness::Stale => {
            ctx.wait_until(async move {
                let _ = fill(&cfg, &key, &asked).await;
            });
            (CacheStatus::Stale, Source::CloudflareKv, data, Some(meta))
        }
        (stale, meta) => match fill(&cfg, &key, &asked).await {
            Ok((data, source, meta)) => (CacheStatus::Miss, source, data, meta),
            Err(f) if f.status >= 500 => match (stale, meta) {
                (Some(data), Some(meta)) => {
                    (CacheStatus::Stale, Source::CloudflareKv, data, Some(meta))
                }
                _ => return Err(f),
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

fn answer(data: &str, meta: CacheMeta) -> Result<Response> {
    METRICS.with(|m| {
        m.borrow_mut()
            .read(meta.status, meta.source, meta.response_time_ms)
    });
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
async fn fill(
    cfg: &Config,
    key: &str,
    asked: &Asked,
) -> Result<(String, Source, Option<EntryMeta>)> {
    let Fetched {
        data,
        source,
        ttl_secs: ttl,
    } = from_origin(cfg, asked).await?;
    if ttl == 0 {
        return Ok((data, source, None));
    }
    let meta = EntryMeta::new(now_ms(), ttl);
    if let Ok(put) = cfg.kv.put(key, data.clone()) {
        if let Ok(put) = put
            .expiration_ttl(kv_expiration_secs(ttl, cfg.grace_secs))
            .metadata(meta)
        {
            if let Err(e) = put.execute().await {
                worker::console_warn!("KV write failed: {e}");
            }
        }
    }
    Ok((data, source, Some(meta)))
}

/// Whom a request to the origin speaks for.
enum As<'a> {
    /// The edge (its internal key) reading for a user it verified.
    Edge(&'a UserId),
    /// The caller itself, by its own `Authorization`: what the origin authorizes by the
    /// caller's role (an invalidation) gets no exemption from the edge's key.
    Caller(&'a str),
}

/// One request to the origin, bounded by `ORIGIN_TIMEOUT_MS`.
async fn call_origin(
    cfg: &Config,
    method: Method,
    path: &str,
    ws: &WorkspaceId,
    who: As<'_>,
    body: Option<String>,
) -> Result<(u16, String)> {
    let headers = Headers::new();
    match who {
        As::Edge(user) => {
            headers.set("X-Internal-Key", &cfg.internal_key)?;
            headers.set("X-User-ID", user.as_str())?;
        }
        As::Caller(authorization) => headers.set("Authorization", authorization)?,
    }
    headers.set("X-Request-ID", &cfg.request_id)?;
    headers.set("X-Workspace-ID", ws.as_str())?;
    let mut init = RequestInit::new();
    if let Some(body) = body {
        headers.set("content-type", "application/json")?;
        init.with_body(Some(body.into()));
    }
    init.with_method(method).with_headers(headers);
    let request = Request::new_with_init(&format!("{}{path}", cfg.origin_url), &init)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let outcome = {
        let sent = Box::pin(fetch.send_with_signal(&signal));
        let timer = Box::pin(Delay::from(cfg.timeout));
        match select(sent, timer).await {
            Either::Left((sent, _)) => Some(sent),
            Either::Right(_) => None,
        }
    };
    match outcome {
        Some(Ok(mut response)) => {
            let status = response.status_code();
            let body = response
                .text()
                .await
                .map_err(|_| Fail::new(502, "bad_gateway", "the origin's answer broke off"))?;
            Ok((status, body))
        }
        Some(Err(e)) => {
            worker::console_warn!("request {}: origin {path} unreachable: {e}", cfg.request_id);
            Err(Fail::new(
                503,
                "origin_unavailable",
                "the origin is unreachable; retry shortly",
            ))
        }
        None => {
            controller.abort();
            worker::console_warn!("request {}: origin {path} timed out", cfg.request_id);
            Err(Fail::new(
                504,
                "timeout",
                "the origin did not answer in time",
            ))
        }
    }
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
    let bumped = bump(cfg, ws, &change).await?;
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
/// every location); the new value of each. Not done: a retryable 503.
async fn bump(cfg: &Config, ws: &WorkspaceId, change: &Changed) -> Result<Counters> {
    let fields: Vec<String> = change.scopes().iter().map(|s| s.field()).collect();
    let name = cfg.keys.generations(ws);
    let counters = generations::bump(&cfg.generations, &name, &fields, now_ms())
        .await
        .map_err(|e| {
            worker::console_error!("generations not bumped: {e}");
            Fail::new(
                503,
                "generations_unavailable",
                "the edge cannot move its generations now; retry",
            )
        })?;
    Ok(fields
        .into_iter()
        .filter_map(|f| counters.get(&f).map(|v| (f, *v)))
        .collect())
}

async fn health(env: &Env, req: &Request, started: u64) -> Result<Response> {
    let kv_available = match env.kv("CACHE_KV") {
        Ok(kv) => kv.get("health-probe").text().await.is_ok(),
        Err(_) => false,
    };
    let data = json!({
        "status": if kv_available { "healthy" } else { "degraded" },
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
    let snapshot = METRICS.with(|m| m.borrow().snapshot());
    let data = json!({
        "worker": "contact-list-cache",
        "edge_location": colo(req),
        "metrics": snapshot,
        "timestamp": Date::now().to_string(),
    });
    json_response(200, data.to_string())
}
