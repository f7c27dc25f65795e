//! `/metrics` in Prometheus text format, for scrapers (no auth, like health).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(render))
}

/// Gauges are sampled at scrape time; counters and histograms accumulate as requests run.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(super) async fn render(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let (open, idle) = state.store.connections();
    metrics::gauge!("edgecache_db_pool_connections").set(f64::from(open));
    metrics::gauge!("edgecache_db_pool_idle").set(idle as f64);
    metrics::gauge!("edgecache_l1_entries").set(state.cache.memory().entry_count() as f64);
    metrics::gauge!("edgecache_l1_bytes").set(state.cache.memory().weighted_bytes() as f64);
    let redis_up = state.cache.redis().is_some_and(|r| r.is_up());
    metrics::gauge!("edgecache_redis_up").set(if redis_up { 1.0 } else { 0.0 });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
