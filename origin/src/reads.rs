//! Reads by what is read: a user's counts, a page of a board, a page of messages, each through the cache
//! (which builds its keys) with the store query that fills it. Handlers, the admin's
//! warm-up and its measurement all call these.

use shared::message_search::MessageSearch;
use shared::messages::{ConversationQuery, MessageQuery};
use shared::query::ContactListQuery;
use shared::{BoardId, UserId, WorkspaceId};

use crate::cache::Answer;
use crate::error::Result;
use crate::state::AppState;
use crate::store;

/// Counts through the cache (`ttl`) or straight from Postgres (`None`).
pub async fn counts(
    state: &AppState,
    ws: &WorkspaceId,
    user: &UserId,
    ttl: Option<u32>,
) -> Result<Answer> {
    let compute = || {
        let (ws, user) = (ws.clone(), user.clone());
        state.gated(store::counts_json(
            state.store.clone(),
            state.reader(&ws),
            ws,
            user,
        ))
    };
    state.cache.counts(ws, user, ttl, compute).await
}

/// A page through the cache (`ttl`) or straight from Postgres (`None`).
pub async fn page(
    state: &AppState,
    ws: &WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
    ttl: Option<u32>,
) -> Result<Answer> {
    let compute = || {
        let read = state.reader(ws);
        let (ws, mut q, user) = (ws.clone(), q.clone(), user.clone());
        if let Some(after) = state.cache.continuation(&ws, board, &q, &state.cursors) {
            q.after = Some(after);
        }
        let search = q.search.is_some();
        let page = store::page_json(state.store.clone(), read, ws.clone(), board, q, user);
        if search {
            futures_util::future::Either::Left(state.searched(&ws, page))
        } else {
            futures_util::future::Either::Right(state.gated(page))
        }
    };
    state.cache.page(ws, board, q, ttl, compute).await
}

/// A page of messages through the cache (`ttl`) or straight from Postgres (`None`).
pub async fn messages(
    state: &AppState,
    ws: &WorkspaceId,
    q: &MessageQuery,
    ttl: Option<u32>,
) -> Result<Answer> {
    let compute = || {
        let (ws, q) = (ws.clone(), q.clone());
        state.gated(store::messages_json(
            state.store.clone(),
            state.reader(&ws),
            ws,
            q,
        ))
    };
    state.cache.messages(ws, q, ttl, compute).await
}

/// A page of a message search through the cache (`ttl`) or straight from the store.
pub async fn message_search(
    state: &AppState,
    ws: &WorkspaceId,
    q: &MessageSearch,
    ttl: Option<u32>,
) -> Result<Answer> {
    let compute = || {
        let (ws, q) = (ws.clone(), q.clone());
        let search =
            store::message_search_json(state.store.clone(), state.reader(&ws), ws.clone(), q);
        state.searched(&ws, search)
    };
    state.cache.message_search(ws, q, ttl, compute).await
}

/// A page of the conversation list through the cache (`ttl`) or straight from Postgres.
pub async fn conversations(
    state: &AppState,
    ws: &WorkspaceId,
    q: &ConversationQuery,
    ttl: Option<u32>,
) -> Result<Answer> {
    let compute = || {
        let (ws, q) = (ws.clone(), q.clone());
        state.gated(store::conversations_json(
            state.store.clone(),
            state.reader(&ws),
            ws,
            q,
        ))
    };
    state.cache.conversations(ws, q, ttl, compute).await
}
