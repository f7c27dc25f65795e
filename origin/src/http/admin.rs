//! The admin panel's actions: invalidate a workspace, warm it, and measure the layers.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::invalidation::Changed;
use shared::query::ContactListQuery;
use shared::{BoardId, UserId, WorkspaceId};

use super::reply::{self, elapsed_ms};
use super::JsonBody;
use crate::auth::Caller;
use crate::cache::Layers;
use crate::error::{Error, Failures, Result};
use crate::state::AppState;
use crate::store;
use crate::{invalidation, reads};
use shared::model::CacheStatus;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/cache-settings/invalidate", post(invalidate))
        .route("/api/cache-settings/warm-cache", post(warm))
        .route(
            "/api/cache-settings/test-performance",
            post(test_performance),
        )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkspaceBody {
    workspace_id: String,
    user_id: Option<String>,
}

impl WorkspaceBody {
    /// The workspace (its admin calling, within the caller's budget) and the user to act for.
    async fn admin_and_user(
        &self,
        state: &AppState,
        caller: &Caller,
    ) -> Result<(WorkspaceId, UserId)> {
        let ws = WorkspaceId::parse(&self.workspace_id)?;
        caller.admin_of(&ws)?;
        charge(state, caller, &ws).await?;
        let user = match self.user_id.as_deref().map(UserId::parse).transpose()? {
            Some(u) => u,
            None => caller.user()?.clone(),
        };
        Ok((ws, user))
    }
}

/// Invalidating, warming and measuring make the origin work (and invalidations reach
/// every instance), so each is charged like a write: to the caller's write budget, or
/// the workspace's request budget for the edge's key without a user.
async fn charge(state: &AppState, caller: &Caller, ws: &WorkspaceId) -> Result<()> {
    let own = state.settings_for(ws).await.rate_limits;
    match caller.user() {
        Ok(user) => state.limits.write(ws, user, &own),
        Err(_) => state.limits.request(ws, None, &own),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct InvalidateBody {
    workspace_id: String,
    board_id: Option<i64>,
}

/// Bumps a generation: O(1) whatever the number of entries. Nothing is deleted; every
/// entry built on the old generation becomes unreachable and ages out. Workspace-wide
/// needs an admin (the edge's key gets no exemption: the edge forwards the member's
/// token); one board of the workspace (with the counts) any member.
#[utoipa::path(post, path = "/api/cache-settings/invalidate", tag = "admin",
    request_body = InvalidateBody,
    responses((status = 200, description = "The generations bumped and the patterns they cover"), Failures),
    security(("bearer" = []), ("internalKey" = [])))]
pub(super) async fn invalidate(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<InvalidateBody>,
) -> Result<Response> {
    let ws = WorkspaceId::parse(&body.workspace_id)?;
    let change = match body.board_id {
        Some(b) => Changed::Boards(vec![BoardId::parse(&b.to_string())?]),
        None => Changed::Workspace,
    };
    if change.needs_admin() {
        caller.admin_of(&ws)?;
    } else {
        caller.workspace(&ws)?;
    }
    if let Changed::Boards(boards) = &change {
        let known = state.store.boards(state.reader(&ws), &ws).await?;
        if !boards.iter().all(|b| known.contains(b)) {
            return Err(Error::NotFound("board"));
        }
    }
    charge(&state, &caller, &ws).await?;
    let bump = invalidation::changed(&state, &ws, &change).await;
    let patterns = change.patterns(&ws);
    Ok(reply::ok(json!({
        "deletedEntries": 0,
        "method": "generation_bump",
        "generation": bump.generation,
        "sharedWithAllInstances": bump.shared,
        "instancesNotified": bump.notified,
        "patterns": patterns,
    })))
}

/// Fills the counts of one user and page 1 of every board.
#[utoipa::path(post, path = "/api/cache-settings/warm-cache", tag = "admin",
    request_body = WorkspaceBody,
    responses((status = 200, description = "What was warmed and how long it took"), Failures),
    security(("bearer" = [])))]
pub(super) async fn warm(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<WorkspaceBody>,
) -> Result<Response> {
    let started = Instant::now();
    let (ws, user) = body.admin_and_user(&state, &caller).await?;
    let settings = state.settings_for(&ws).await;
    let mut warmed = 0;
    let mut filled = 0;
    let counts = match settings.counts_ttl() {
        Some(ttl) => {
            let a = reads::counts(&state, &ws, &user, Some(ttl)).await?;
            warmed += 1;
            filled += usize::from(a.status == CacheStatus::Miss);
            true
        }
        None => false,
    };
    let boards = state.store.boards(state.reader(&ws), &ws).await?;
    if let Some(ttl) = settings.list_ttl(false) {
        let q = ContactListQuery::default();
        for board in &boards {
            let a = reads::page(&state, &ws, *board, &q, &user, Some(ttl)).await?;
            warmed += 1;
            filled += usize::from(a.status == CacheStatus::Miss);
        }
    }
    Ok(reply::ok(json!({
        "warmupTimeMs": elapsed_ms(started),
        "entriesWarmed": warmed,
        "entriesFilledFromDatabase": filled,
        "boards": boards,
        "counts": counts,
    })))
}

fn improvement(standard: f64, other: f64) -> f64 {
    if standard <= 0.0 {
        return 0.0;
    }
    ((standard - other) / standard * 10_000.0).round() / 100.0
}

/// Times the same counts read four ways, in this order: straight from the store, through
/// Redis with the key removed (a miss that fills Redis), from Redis, and from memory.
#[utoipa::path(post, path = "/api/cache-settings/test-performance", tag = "admin",
    request_body = WorkspaceBody,
    responses((status = 200, description = "One counts read timed from each layer"), Failures),
    security(("bearer" = [])))]
pub(super) async fn test_performance(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<WorkspaceBody>,
) -> Result<Response> {
    let (ws, user) = body.admin_and_user(&state, &caller).await?;
    let ttl = state
        .settings_for(&ws)
        .await
        .cache_config
        .contact_counts_ttl;
    let started = Instant::now();
    state.store.counts(state.reader(&ws), &ws, &user).await?;
    let standard = elapsed_ms(started);

    let cache = &state.cache;
    let key = state.cache.counts_key(&ws, &user).await;
    let compute = || {
        store::counts_json(
            state.store.clone(),
            state.reader(&ws),
            ws.clone(),
            user.clone(),
        )
    };
    let timed = |layers: Layers| {
        let key = key.clone();
        async move {
            let started = Instant::now();
            let answer = cache
                .read_through(key, ttl, layers, None, |_| None, compute)
                .await?;
            Ok::<_, Error>((elapsed_ms(started), answer.source))
        }
    };
    cache.remove(&key).await;
    let redis_only = Layers {
        memory: false,
        redis: true,
    };
    let layer = |(ms, source): (f64, shared::model::Source), kind: &str| -> Value {
        json!({"timeMs": ms, "type": kind, "source": source, "improvementPercent": improvement(standard, ms)})
    };
    let (red_cold, red_warm) = if cache.redis().is_some() {
        let cold = timed(redis_only).await?;
        let warm = timed(redis_only).await?;
        (layer(cold, "redis_miss"), layer(warm, "redis_hit"))
    } else {
        let off = json!({"timeMs": null, "type": "redis_disabled"});
        (off.clone(), off)
    };
    timed(Layers::ALL).await?;
    let memory = timed(Layers::ALL).await?;
    let stats = cache.stats().snapshot();
    Ok(reply::ok(json!({
        "performance": {
            "standard": {"timeMs": standard, "type": "database"},
            "redisCold": red_cold,
            "redisWarm": red_warm,
            "memory": layer(memory, "memory_hit"),
        },
        "cacheStats": {"hits": stats.hits, "misses": stats.misses, "hitRate": stats.hit_rate},
    })))
}
