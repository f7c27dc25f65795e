//! Reads by what is read: a user's counts, a page of a board. Handlers, the admin's
//! warm-up and its measurement all call these, so the keys and generations of a read are
//! built here and nowhere else.

use shared::keys::GenerationScope;
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
    let keys = &state.cache.keys;
    state
        .cache
        .read(
            ws,
            &[GenerationScope::Counts],
            None,
            ttl,
            |gens| keys.counts(ws, gens, user),
            || {
                store::counts_json(
                    state.store.clone(),
                    state.reader(ws),
                    ws.clone(),
                    user.clone(),
                )
            },
        )
        .await
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
    let keys = &state.cache.keys;
    state
        .cache
        .read(
            ws,
            &GenerationScope::of_page(board, q),
            Some(board),
            ttl,
            |gens| keys.contacts(ws, board, gens, q),
            || {
                let read = state.reader(ws);
                let (ws, q, user) = (ws.clone(), q.clone(), user.clone());
                store::page_json(state.store.clone(), read, ws, board, q, user)
            },
        )
        .await
}

/// The key the counts of `user` are cached under now.
pub async fn counts_key(state: &AppState, ws: &WorkspaceId, user: &UserId) -> String {
    let cache = &state.cache;
    let gens = cache
        .generations
        .current(cache.redis.as_deref(), ws, &[GenerationScope::Counts])
        .await;
    cache.keys.counts(ws, gens, user)
}
