//! The L1 hit, answered ahead of the router. Most reads are hits, and the router's
//! layers and extractors (request id, trace span, timeout, panic guard, path matching,
//! boxed middleware) cost several times what serving the bytes does (BENCHMARKS.md,
//! "Where an L1 hit spends its time"). A hit does only what it must: match the route,
//! check the caller and the workspace as the router would, charge the request budget,
//! look up L1, write the answer. Anything else (another route, a query parameter it does
//! not take, a check that fails, a miss) goes on to the router, which answers it,
//! errors included, exactly as before.

use std::borrow::Cow;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, Method, Request};
use axum::response::Response;
use shared::query::ContactListQuery;
use shared::BoardId;

use super::auth::{checked_workspace, Charged};
use super::{new_request_id, reply, REQUEST_ID};
use crate::auth::LastToken;
use crate::state::AppState;

/// The reads a hit may answer, by path.
enum Read<'a> {
    /// `/api/cache-settings/workspace/{ws}/counts`, no query.
    Counts { ws: &'a str },
    /// `/api/boards/{board}/contacts?...`, the workspace in `X-Workspace-ID`.
    Page { board: &'a str, query: &'a str },
}

fn route<B>(request: &Request<B>) -> Option<Read<'_>> {
    if request.method() != Method::GET {
        return None;
    }
    let path = request.uri().path();
    let query = request.uri().query();
    // A percent-encoded segment is the router's to decode.
    let plain = |s: &str| !s.is_empty() && !s.contains(['/', '%']);
    if let Some(rest) = path.strip_prefix("/api/cache-settings/workspace/") {
        let ws = rest.strip_suffix("/counts").filter(|ws| plain(ws))?;
        return query.is_none().then_some(Read::Counts { ws });
    }
    let board = path
        .strip_prefix("/api/boards/")?
        .strip_suffix("/contacts")
        .filter(|b| plain(b))?;
    Some(Read::Page {
        board,
        query: query.unwrap_or(""),
    })
}

/// The answer to `request` if it is an L1 hit, else `None` with `request` as it came
/// (but for `Charged` when its budget was charged here). Waits on nothing: settings or
/// generations this instance would have to fetch first make it `None` too, and the
/// router fetches them. `last` is the connection's last verified token.
pub fn answer<B>(state: &AppState, request: &mut Request<B>, last: &LastToken) -> Option<Response> {
    let started = Instant::now();
    let read = route(request)?;
    let headers = request.headers();
    let caller = state.auth.authenticate_on(headers, Some(last)).ok()?;
    let path_ws = match read {
        Read::Counts { ws } => Some(ws),
        Read::Page { .. } => None,
    };
    let ws = checked_workspace(&caller, path_ws, headers).ok()?;
    let user = caller.user().ok()?;
    let settings = state.settings.fresh(&ws)?;
    let page = match read {
        Read::Counts { .. } => {
            settings.counts_ttl()?;
            None
        }
        Read::Page { board, query } => {
            let board = BoardId::parse(board).ok()?;
            let pairs: Vec<(Cow<str>, Cow<str>)> =
                form_urlencoded::parse(query.as_bytes()).collect();
            if pairs.iter().any(|(k, _)| k == "useCache") {
                return None;
            }
            let pairs = pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
            let q = ContactListQuery::from_pairs(pairs, &ws, board, user).ok()?;
            settings.list_ttl(q.search.is_some())?;
            Some((board, q))
        }
    };
    let charged = state.limits.request(&ws, &settings.rate_limits).is_ok();
    let hit = if charged {
        match &page {
            None => state.cache.counts_in_memory(&ws, user),
            Some((board, q)) => state.cache.page_in_memory(&ws, *board, q),
        }
    } else {
        None
    };
    let Some(hit) = hit else {
        if charged {
            request.extensions_mut().insert(Charged);
        }
        return None;
    };
    let mut response = reply::answer(&hit, started, settings.cache_enabled);
    response
        .headers_mut()
        .insert(REQUEST_ID, request_id(request.headers()));
    Some(response)
}

/// The caller's request id, as the router's request-id layer keeps it, or a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .cloned()
        .unwrap_or_else(new_request_id)
}
