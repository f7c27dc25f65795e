//! Per-workspace cache settings: read by admins and the edge, written by admins.
//! A save bumps the workspace's generation (TTLs and toggles apply to what is cached
//! from now on) and tells the other instances.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::json;
use shared::settings::{RateLimits, SettingsUpdate, MAX_RATE_PER_MIN, MAX_TTL_SECS, MIN_TTL_SECS};
use shared::WorkspaceId;

use super::{reply, JsonBody};
use crate::auth::Caller;
use crate::config::Config;
use crate::error::{Error, ErrorBody, Failures, Result};
use crate::invalidation;
use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(
        "/api/cache-settings/workspace/{ws}/settings",
        get(read).post(write),
    )
}

#[utoipa::path(get, path = "/api/cache-settings/workspace/{ws}/settings", tag = "settings",
    params(("ws" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "The workspace's settings and their bounds"), Failures),
    security(("bearer" = [])))]
pub(super) async fn read(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
) -> Result<Response> {
    let ws = WorkspaceId::parse(&ws)?;
    caller.admin_of(&ws)?;
    let settings = state.store.load_settings(&ws).await?;
    state.settings.remember(&ws, settings);
    let mut data =
        serde_json::to_value(settings).map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    data["bounds"] = json!({
        "minTTL": MIN_TTL_SECS, "maxTTL": MAX_TTL_SECS, "maxRatePerMinute": MAX_RATE_PER_MIN,
    });
    Ok(reply::ok(data))
}

#[utoipa::path(post, path = "/api/cache-settings/workspace/{ws}/settings", tag = "settings",
    params(("ws" = String, Path, description = "Workspace id")),
    request_body = SettingsUpdate,
    responses((status = 200, description = "The settings saved"),
        (status = 404, description = "No such workspace", body = ErrorBody), Failures),
    security(("bearer" = [])))]
pub(super) async fn write(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    JsonBody(update): JsonBody<SettingsUpdate>,
) -> Result<Response> {
    let ws = WorkspaceId::parse(&ws)?;
    caller.admin_of(&ws)?;
    let current = state.store.load_settings(&ws).await?;
    let next = current.apply(&update)?;
    if update.rate_limits.is_some() && !caller.is_operator() {
        forbid_raising(&state.config, &next.rate_limits)?;
    }
    let updated_at = invalidation::to_the_end(&state, &ws, |state, ws| async move {
        let updated_at = state.store.save_settings(&ws, &next).await?;
        state.settings.remember(&ws, next);
        invalidation::settings_changed(&state, &ws).await;
        Ok(updated_at)
    })
    .await?;
    Ok(reply::ok(json!({
        "workspace_id": ws,
        "settings": {"cache": {
            "enabled": next.cache_enabled,
            "features": next.features,
            "config": next.cache_config,
        }, "rateLimits": next.rate_limits},
        "updated_at": updated_at,
    })))
}

/// A workspace admin may lower the deployment's rate limits for the workspace; only an
/// operator may raise them, since the limits protect every tenant of the deployment.
fn forbid_raising(config: &Config, own: &RateLimits) -> Result<()> {
    let raises = |own: Option<u32>, default: u32| own.is_some_and(|v| v > default);
    if raises(
        own.requests_per_minute,
        config.requests_per_workspace_per_min,
    ) || raises(
        own.requests_per_user_per_minute,
        config.requests_per_user_per_min,
    ) || raises(
        own.searches_per_user_per_minute,
        config.searches_per_user_per_min,
    ) || raises(
        own.writes_per_user_per_minute,
        config.writes_per_user_per_min,
    ) {
        return Err(Error::Forbidden(
            "only an operator may raise a rate limit above the deployment's default",
        ));
    }
    Ok(())
}
