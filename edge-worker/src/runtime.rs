//! The Workers runtime adapters: the fetch event, KV reads and writes, requests to the
//! origin, JSON responses. What each route does is in `handlers`. Nothing here may panic
//! (a panic in wasm fails every request in flight on the isolate): every failure becomes
//! a JSON error response.

use std::cell::{Cell, RefCell};

use futures_util::future::{select, Either};
use shared::{UserId, WorkspaceId};
use worker::{
    event, AbortController, Context, Date, Delay, Env, Fetch, Headers, KvStore, Method, Request,
    RequestInit, Response,
};

use crate::config::{var, Config};
use crate::fail::{Fail, Result};
use crate::freshness::EntryMeta;
use crate::handlers::handle;
use crate::metrics;
use crate::reply::{cors_allows, error_body};

thread_local! {
    static REQUESTS: Cell<u64> = const { Cell::new(0) };
    static COLO: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The id that ties this request's log lines to the origin's (sent as `X-Request-ID`):
/// the one the request came with (Cloudflare's ray id, or a caller's), else one made here.
pub(crate) fn request_id(req: &Request) -> String {
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

pub(crate) fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// Authenticated answers are for this browser only: never stored by shared caches.
pub(crate) fn json_response(status: u16, body: String) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "private, no-store")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

/// The location serving this isolate, read from the first request that carries it: an
/// isolate never moves between locations, and each read of `cf` crosses into JavaScript.
pub(crate) fn colo(req: &Request) -> String {
    if let Some(colo) = COLO.with(|c| c.borrow().clone()) {
        return colo;
    }
    match req.cf().map(|cf| cf.colo()).filter(|c| !c.is_empty()) {
        Some(colo) => {
            COLO.with(|c| *c.borrow_mut() = Some(colo.clone()));
            colo
        }
        None => "unknown".into(),
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let started = now_ms();
    metrics::isolate(|m| m.invoked());
    let origin = req.headers().get("Origin").ok().flatten();
    let mut response = match handle(req, &env, &ctx, started).await {
        Ok(r) => r,
        Err(f) => {
            metrics::isolate(|m| m.error((now_ms() - started) as f64));
            let mut r = json_response(f.status, error_body(f.code, &f.message))?;
            match f.retry_after {
                Some(secs) => r.headers_mut().set("Retry-After", &secs.to_string())?,
                None if f.status == 503 => r.headers_mut().set("Retry-After", "5")?,
                None => {}
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
    if cors_allows(&allowed, origin) {
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

/// What KV holds under `key`, with its freshness; nothing when KV cannot be read.
pub(crate) async fn kv_get(kv: &KvStore, key: &str) -> Option<(String, EntryMeta)> {
    metrics::isolate(|m| m.kv_read());
    match kv.get(key).text_with_metadata::<EntryMeta>().await {
        Ok((Some(data), Some(meta))) => Some((data, meta)),
        _ => None,
    }
}

/// Stores `data` under `key` until `expiration_secs`; a failed write is only logged (the
/// answer in hand is still right).
pub(crate) async fn kv_put(
    kv: &KvStore,
    key: &str,
    data: &str,
    meta: EntryMeta,
    expiration_secs: u64,
) {
    metrics::isolate(|m| m.kv_written());
    let put = kv
        .put(key, data)
        .and_then(|p| p.expiration_ttl(expiration_secs).metadata(meta));
    if let Err(e) = async { put?.execute().await }.await {
        worker::console_warn!("KV write failed: {e}");
    }
}

/// Whom a request to the origin speaks for.
pub(crate) enum As<'a> {
    /// The edge (its internal key) reading for a user it verified.
    Edge(&'a UserId),
    /// The caller itself, by its own `Authorization`: what the origin authorizes by the
    /// caller's role (an invalidation) gets no exemption from the edge's key.
    Caller(&'a str),
}

/// One request to the origin, bounded by `ORIGIN_TIMEOUT_MS`.
pub(crate) async fn call_origin(
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
            if status == 429 {
                let wait = response.headers().get("Retry-After").ok().flatten();
                return Err(Fail::shed(wait.and_then(|w| w.parse().ok()).unwrap_or(1)));
            }
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
