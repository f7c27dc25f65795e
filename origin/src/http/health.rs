//! Health (no auth: load balancers and the panel's first screen) and status (admins).
//! Both answer from one probe of the dependencies reused for a second, so nobody can make
//! the origin ping Postgres and Redis once per request; why a dependency is down (driver
//! and Redis error text) is told only to callers with a valid token or key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use chrono::Utc;
use serde_json::{json, Value};

use super::reply::{self, elapsed_ms};
use crate::auth::Caller;
use crate::error::{Failures, Result};
use crate::state::AppState;
use crate::store::Read;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/api/cache-settings/health", get(health))
}

pub fn status_router() -> Router<Arc<AppState>> {
    Router::new().route("/api/cache-settings/status", get(status))
}

/// How long one probe of the dependencies answers for (see `AppState::probe`).
pub const PROBE_MAX_AGE: Duration = Duration::from_secs(1);

/// Components without the reasons of failures, for callers without credentials.
fn without_reasons(mut components: Value) -> Value {
    if let Some(all) = components.as_object_mut() {
        for component in all.values_mut() {
            if let Some(fields) = component.as_object_mut() {
                fields.remove("reason");
            }
        }
    }
    components
}

/// Probes each dependency; a failed probe gives its reason.
async fn check(state: &AppState) -> Value {
    let started = Instant::now();
    let store = &state.store;
    let database = match store.ping(Read::Primary).await {
        Ok(()) => json!({"up": true, "store": store.kind(), "latencyMs": elapsed_ms(started)}),
        Err(e) => json!({"up": false, "store": store.kind(), "reason": e.to_string()}),
    };
    let replica = if store.has_replica() {
        match store.ping(Read::Replica { changed: None }).await {
            Ok(()) => json!({"up": true, "configured": true}),
            Err(e) => json!({"up": false, "configured": true, "reason": e.to_string()}),
        }
    } else {
        json!({"up": false, "configured": false})
    };
    let redis = match state.cache.redis() {
        None => json!({"up": false, "configured": false, "reason": "REDIS_URL is not set"}),
        Some(r) => {
            let started = Instant::now();
            match r.ping().await {
                Ok(()) => json!({
                    "up": true, "configured": true, "layout": r.layout().name(),
                    "latencyMs": elapsed_ms(started),
                }),
                Err(e) => json!({
                    "up": false, "configured": true, "layout": r.layout().name(),
                    "reason": e.to_string(),
                }),
            }
        }
    };
    json!({
        "database": database,
        "databaseReplica": replica,
        "redis": redis,
        "memory": {
            "up": true,
            "entries": state.cache.memory().entry_count(),
            "bytes": state.cache.memory().weighted_bytes(),
            "maxBytes": state.config.l1_max_bytes,
        },
    })
}

fn is_healthy(components: &Value) -> bool {
    let up = |name: &str| components[name]["up"].as_bool().unwrap_or(false);
    let redis_configured = components["redis"]["configured"].as_bool().unwrap_or(false);
    up("database") && (up("redis") || !redis_configured)
}

#[utoipa::path(get, path = "/api/cache-settings/health", tag = "operations",
    responses((status = 200, description = "Each dependency's state and the cache statistics")))]
pub(super) async fn health(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut components = state.probe.get(|| check(&state)).await;
    if state.auth.authenticate(&headers).is_err() {
        components = without_reasons(components);
    }
    reply::ok(json!({
        "healthy": is_healthy(&components),
        "components": components,
        "stats": state.cache.stats().snapshot(),
        "uptimeSecs": state.started.elapsed().as_secs(),
        "timestamp": Utc::now(),
    }))
}

#[utoipa::path(get, path = "/api/cache-settings/status", tag = "operations",
    responses((status = 200, description = "Statistics, health and latency for admins"), Failures),
    security(("bearer" = []), ("internalKey" = [])))]
pub(super) async fn status(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    caller.admin()?;
    let components = state.probe.get(|| check(&state)).await;
    let top = caller
        .is_operator()
        .then(|| state.cache.traffic().top_workspaces(10));
    Ok(reply::ok(json!({
        "cacheStats": state.cache.stats().snapshot(),
        "healthCheck": {"healthy": is_healthy(&components), "components": components},
        "redisEnabled": state.cache.redis().is_some(),
        "edgePush": state.edge.as_ref().map(|e| e.report()),
        "latencyMs": state.cache.traffic().latencies(),
        "topWorkspaces": top,
        "timestamp": Utc::now(),
    })))
}
