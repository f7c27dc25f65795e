//! Workspace counts for the admin panel and the edge's fallback.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::auth::Workspace;
use super::{reply, QueryPairs};
use crate::error::{Failures, Result};
use crate::reads;
use crate::state::AppState;

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
    Workspace {
        ws, user, settings, ..
    }: Workspace,
    query: QueryPairs,
) -> Result<Response> {
    let started = Instant::now();
    let use_cache = query.flag("useCache")?;
    let ttl = settings.counts_ttl().filter(|_| use_cache);
    let answer = reads::counts(&state, &ws, &user, ttl).await?;
    Ok(reply::answer(&answer, started, settings.cache_enabled))
}
