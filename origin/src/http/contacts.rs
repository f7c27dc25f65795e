//! Board list pages, as the edge asks for them on a KV miss (and browsers may directly).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use shared::query::ContactListQuery;
use shared::BoardId;

use super::auth::Workspace;
use super::{reply, QueryPairs};
use crate::error::{ErrorBody, Failures, Result};
use crate::reads;
use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/api/boards/{board_id}/contacts", get(list))
}

#[utoipa::path(get, path = "/api/boards/{board_id}/contacts", tag = "reads",
    params(("board_id" = i64, Path, description = "Board id"), ("X-Workspace-ID" = String, Header, description = "The workspace; must match the path's and be granted by the token"),
        ("page" = Option<u32>, Query, description = "1 to 10000"),
        ("cursor" = Option<String>, Query, description = "pagination.next_cursor of the previous page (same filter, search, column and sort); wins over page"),
        ("per_page" = Option<u32>, Query, description = "1 to 100"),
        ("filter" = Option<String>, Query, description = "all, open, closed, unassigned, assigned_to_me, high_priority, medium_priority, low_priority, needs_response, follow_up, favorites, archived, unhappy_customers, new_customers, recent_activity"),
        ("search" = Option<String>, Query, description = "Up to 100 characters: every word must start a word of the name, e-mail, company or phone (case and accents aside), or be one typo from one (two from 9 letters; none below 5); digits are found anywhere in the phone's digits, however punctuated"),
        ("column_id" = Option<i64>, Query),
        ("sort_by" = Option<String>, Query, description = "created_at, updated_at, name, last_activity_at, relevance (with a search: whole words, then word starts, then typos, each most recent first; sort_order does not apply)"),
        ("sort_order" = Option<String>, Query, description = "asc or desc"),
        ("useCache" = Option<bool>, Query)),
    responses((status = 200, description = "A page of contacts with pagination (next_cursor, has_more, total_exact) and cache metadata"),
        (status = 404, description = "Not a board of this workspace", body = ErrorBody), Failures),
    security(("bearer" = []), ("internalKey" = [])))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Workspace {
        ws, user, settings, ..
    }: Workspace,
    Path(board): Path<String>,
    query: QueryPairs,
) -> Result<Response> {
    let started = Instant::now();
    let board = BoardId::parse(&board)?;
    let pairs = query.0.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let q = ContactListQuery::from_pairs(pairs, &ws, board, &user, &state.cursors)?;
    if q.search.is_some() {
        state.limits.search(&ws, &user, &settings.rate_limits)?;
    }
    let use_cache = query.flag("useCache")?;
    let ttl = settings.list_ttl(q.search.is_some()).filter(|_| use_cache);
    let answer = reads::page(&state, &ws, board, &q, &user, ttl).await?;
    Ok(reply::answer(&answer, started, settings.cache_enabled))
}
