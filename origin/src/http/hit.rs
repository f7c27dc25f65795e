//! The L1 hit, answered ahead of the router. Most reads are hits, and the router's
//! layers and extractors (request id, trace span, timeout, panic guard, path matching,
//! boxed middleware) cost several times what serving the bytes does (BENCHMARKS.md,
//! "Where an L1 hit spends its time"). A hit does only what it must: match the route,
//! check the caller and the workspace as the router would, charge the request budget,
//! look up L1, write the answer. Anything else (another route, a query parameter it does
//! not take, a check that fails, a miss) goes on to the router, which answers it,
//! errors included, exactly as before.

use std::borrow::Cow;
use std::cell::{Ref, RefCell};

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, Method, Request};
use axum::response::Response;
use shared::cursor::CursorKey;
use shared::query::ContactListQuery;
use shared::{BoardId, UserId, WorkspaceId};

use super::auth::{checked_workspace, Charged};
use super::{new_request_id, reply, REQUEST_ID};
use crate::auth::{Credentials, LastToken, INTERNAL_KEY_HEADER, USER_HEADER, WORKSPACE_HEADER};
use crate::cache::entry::Began;
use crate::cache::PageKeyParts;
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

/// The request headers a hit reads, found in one pass over them (five lookups by name
/// cost more than walking the few headers a request has); `None` when one of them is
/// given twice or is not visible ASCII, which the router answers.
struct Asked<'a> {
    credentials: Credentials<'a>,
    workspace: Option<&'a str>,
    request_id: Option<&'a HeaderValue>,
}

fn asked(headers: &HeaderMap) -> Option<Asked<'_>> {
    let mut asked = Asked {
        credentials: Credentials::default(),
        workspace: None,
        request_id: None,
    };
    for (name, value) in headers {
        if *name == REQUEST_ID {
            if asked.request_id.replace(value).is_some() {
                return None;
            }
            continue;
        }
        let slot = if *name == AUTHORIZATION {
            &mut asked.credentials.authorization
        } else if *name == WORKSPACE_HEADER {
            &mut asked.workspace
        } else if *name == USER_HEADER {
            &mut asked.credentials.user
        } else if *name == INTERNAL_KEY_HEADER {
            &mut asked.credentials.internal_key
        } else {
            continue;
        };
        if slot.replace(value.to_str().ok()?).is_some() {
            return None;
        }
    }
    Some(asked)
}

/// The page query a connection asked for last, parsed, with its key's parts. A client
/// polling a list sends the same query on its connection again and again, and parsing
/// it, hashing its canonical form and writing its counters' names were more than a
/// fifth of a page hit's instructions.
#[derive(Default)]
pub struct LastPage(RefCell<Option<ParsedPage>>);

struct ParsedPage {
    /// What the parse depends on: the raw query, the workspace, the board and the user.
    raw: Box<str>,
    ws: WorkspaceId,
    board: BoardId,
    user: UserId,
    query: ContactListQuery,
    /// `PageKeyParts::of(board, &query)`.
    parts: PageKeyParts,
}

impl LastPage {
    /// `raw` parsed for `ws`, `board` and `user`, kept from the last request when that
    /// was the same; `None` when the hit path leaves it to the router (a bad query,
    /// `useCache`).
    fn parse(
        &self,
        raw: &str,
        ws: &WorkspaceId,
        board: BoardId,
        user: &UserId,
        key: &CursorKey,
    ) -> Option<Ref<'_, ParsedPage>> {
        let same =
            self.0.borrow().as_ref().is_some_and(|p| {
                p.board == board && *p.raw == *raw && p.ws == *ws && p.user == *user
            });
        if !same {
            let query = page_query(raw, ws, board, user, key)?;
            *self.0.borrow_mut() = Some(ParsedPage {
                raw: raw.into(),
                ws: ws.clone(),
                board,
                user: user.clone(),
                parts: PageKeyParts::of(board, &query),
                query,
            });
        }
        Ref::filter_map(self.0.borrow(), Option::as_ref).ok()
    }
}

/// `raw` as the page query the hit path answers, or `None` for one it leaves to the
/// router (a bad query, `useCache`).
fn page_query(
    raw: &str,
    ws: &WorkspaceId,
    board: BoardId,
    user: &UserId,
    key: &CursorKey,
) -> Option<ContactListQuery> {
    let pairs: Vec<(Cow<str>, Cow<str>)> = form_urlencoded::parse(raw.as_bytes()).collect();
    if pairs.iter().any(|(k, _)| k == "useCache") {
        return None;
    }
    let pairs = pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
    ContactListQuery::from_pairs(pairs, ws, board, user, key).ok()
}

/// The answer to `request` if it is an L1 hit, else `None` with `request` as it came
/// (but for `Charged` when its budget was charged here). Waits on nothing: settings or
/// generations this instance would have to fetch first make it `None` too, and the
/// router fetches them. `last` and `last_page` are the connection's last verified token
/// and page query.
pub fn answer<B>(
    state: &AppState,
    request: &mut Request<B>,
    last: &LastToken,
    last_page: &LastPage,
) -> Option<Response> {
    let began = Began::now();
    let read = route(request)?;
    let asked = asked(request.headers())?;
    let caller = state
        .auth
        .authenticate_with(&asked.credentials, Some(last), began.ms)
        .ok()?;
    let path_ws = match read {
        Read::Counts { ws } => Some(ws),
        Read::Page { .. } => None,
    };
    let ws = checked_workspace(&caller, path_ws, asked.workspace).ok()?;
    let user = caller.user().ok()?;
    let settings = state.settings.fresh_at(&ws, began.instant)?;
    let page = match read {
        Read::Counts { .. } => {
            settings.counts_ttl()?;
            None
        }
        Read::Page { board, query } => {
            let board = BoardId::parse(board).ok()?;
            let page = last_page.parse(query, &ws, board, user, &state.cursors)?;
            settings.list_ttl(page.query.search.is_some())?;
            Some(page)
        }
    };
    let charged = state
        .limits
        .request(&ws, Some(user), &settings.rate_limits)
        .is_ok();
    let hit = if charged {
        match &page {
            None => state.cache.counts_in_memory(&ws, user, began),
            Some(p) => state.cache.page_in_memory(&ws, p.board, &p.parts, began),
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
    // The caller's request id, as the router's request-id layer keeps it, or a new one.
    let id = asked.request_id.cloned().unwrap_or_else(new_request_id);
    Some(reply::answer_at(
        &hit,
        began.instant,
        began.ms,
        settings.cache_enabled,
        Some(id),
    ))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderName;

    use super::*;

    fn key() -> CursorKey {
        CursorKey::from_token_secret(b"a token secret of at least 32 bytes")
    }

    fn id<T>(parse: fn(&str) -> Result<T, shared::InputError>, raw: &str) -> T {
        parse(raw).expect("valid id")
    }

    /// The key parts a fresh parse of `raw` gives.
    fn parsed_afresh(raw: &str, ws: &WorkspaceId, board: BoardId, user: &UserId) -> PageKeyParts {
        PageKeyParts::of(
            board,
            &page_query(raw, ws, board, user, &key()).expect("valid query"),
        )
    }

    #[test]
    fn a_kept_page_query_serves_only_the_same_query_workspace_board_and_user() {
        let last = LastPage::default();
        let (a, b) = (id(WorkspaceId::parse, "a"), id(WorkspaceId::parse, "b"));
        let (me, you) = (id(UserId::parse, "me"), id(UserId::parse, "you"));
        let mine = "filter=assigned_to_me&page=2";
        let cases = [
            (mine, &a, BoardId(1), &me),
            (mine, &a, BoardId(1), &me),
            (mine, &a, BoardId(1), &you),
            (mine, &b, BoardId(1), &you),
            (mine, &b, BoardId(2), &you),
            ("filter=assigned_to_me&page=3", &b, BoardId(2), &you),
            ("page=3", &b, BoardId(2), &you),
        ];
        let mut tails = Vec::new();
        for (raw, ws, board, user) in cases {
            let kept = last
                .parse(raw, ws, board, user, &key())
                .expect("a hit-path query");
            assert_eq!(kept.parts, parsed_afresh(raw, ws, board, user), "{raw}");
            tails.push(kept.parts.tail.clone());
        }
        assert_eq!(tails[0], tails[1]);
        assert_ne!(tails[1], tails[2], "assigned_to_me is the user's own");
        assert_ne!(tails[5], tails[6]);
    }

    #[test]
    fn a_hit_reads_its_headers_in_one_pass_and_leaves_repeated_or_unreadable_ones_to_the_router() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (AUTHORIZATION, "Bearer t"),
            (WORKSPACE_HEADER, "w1"),
            (HeaderName::from_static("x-other"), "o"),
            (REQUEST_ID, "r1"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let found = asked(&headers).expect("each header once");
        assert_eq!(found.credentials.authorization, Some("Bearer t"));
        assert_eq!(found.workspace, Some("w1"));
        assert_eq!(found.credentials.user, None);
        assert_eq!(found.credentials.internal_key, None);
        assert_eq!(
            found.request_id.map(HeaderValue::as_bytes),
            Some(&b"r1"[..])
        );
        for name in [
            AUTHORIZATION,
            WORKSPACE_HEADER,
            USER_HEADER,
            INTERNAL_KEY_HEADER,
            REQUEST_ID,
        ] {
            let mut twice = headers.clone();
            twice.append(name.clone(), HeaderValue::from_static("a"));
            twice.append(name.clone(), HeaderValue::from_static("b"));
            assert!(asked(&twice).is_none(), "{name} twice");
        }
        let mut unreadable = HeaderMap::new();
        let value = HeaderValue::from_bytes(b"caf\xe9").expect("a header value");
        unreadable.insert(WORKSPACE_HEADER, value);
        assert!(asked(&unreadable).is_none());
    }

    #[test]
    fn queries_the_router_answers_are_not_kept() {
        let last = LastPage::default();
        let (ws, user) = (id(WorkspaceId::parse, "a"), id(UserId::parse, "me"));
        assert!(last
            .parse("page=1", &ws, BoardId(1), &user, &key())
            .is_some());
        for raw in ["page=0", "page=1&page=2", "useCache=false", "filter=nope"] {
            assert!(
                last.parse(raw, &ws, BoardId(1), &user, &key()).is_none(),
                "{raw}"
            );
        }
        let kept = last
            .parse("page=1", &ws, BoardId(1), &user, &key())
            .expect("kept");
        assert_eq!(kept.parts, parsed_afresh("page=1", &ws, BoardId(1), &user));
    }
}
