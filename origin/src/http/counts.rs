//! Workspace counts for the admin panel and the edge's fallback.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use shared::keys::GenerationScope;
use shared::{UserId, WorkspaceId};

use super::openapi::Failures;
use super::{reply, QueryPairs};
use crate::auth::{path_matches_header, Caller};
use crate::cache::Answer;
use crate::error::Result;
use crate::state::AppState;
use crate::store;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/api/cache-settings/workspace/{ws}/counts", get(counts))
}

#[utoipa::path(get, path = "/api/cache-settings/workspace/{ws}/counts", tag = "reads",
    params(("ws" = String, Path, description = "Workspace id"), ("X-Workspace-ID" = String, Header, description = "The workspace; must match the path's and be granted by the token"),
        ("useCache" = Option<bool>, Query, description = "false reads the database")),
    responses((status = 200, description = "The 15 counts, with cache metadata"), Failures),
    security(("bearer" = []), ("internalKey" = [])))]
pub(super) async fn counts(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response> {
    let started = Instant::now();
    let ws = WorkspaceId::parse(&ws)?;
    caller.workspace(&ws)?;
    path_matches_header(&headers, &ws)?;
    let settings = state.settings_for(&ws).await;
    state.limits.request(&ws, &settings.rate_limits)?;
    let user = caller.user()?.clone();
    let use_cache = query.flag("useCache")?;
    let ttl = settings.counts_ttl().filter(|_| use_cache);
    let answer = read_counts(&state, &ws, &user, ttl).await?;
    Ok(reply::answer(&answer, started, settings.cache_enabled))
}

/// Counts through the cache (`ttl`) or straight from Postgres (`None`).
pub async fn read_counts(
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
            GenerationScope::Counts,
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
