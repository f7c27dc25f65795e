//! The shared handles every request uses; cheap to share behind one `Arc`.

use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use shared::settings::CacheSettings;
use shared::WorkspaceId;

use crate::auth::Verifier;
use crate::cache::Cache;
use crate::config::Config;
use crate::edge_push::EdgePush;
use crate::limits::Limits;
use crate::recent::Recent;
use crate::settings::SettingsCache;
use crate::store::{Read, Store};

pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub cache: Cache,
    pub settings: SettingsCache,
    pub limits: Limits,
    pub auth: Verifier,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    /// Sends changes to the edge, when `EDGE_URL` is set.
    pub edge: Option<Arc<EdgePush>>,
    /// The dependencies' last health probe, reused for `PROBE_MAX_AGE`.
    pub probe: Recent<serde_json::Value>,
}

impl AppState {
    /// Which copy a cache fill of `ws` reads: right after a change the primary, so that a
    /// lagging replica cannot put data older than an acknowledged write into the caches.
    pub fn reader(&self, ws: &WorkspaceId) -> Read {
        let window = self.config.replica_lag_window;
        if self.cache.generations().changed_within(ws, window) {
            Read::Primary
        } else {
            Read::Replica
        }
    }

    pub async fn settings_for(&self, ws: &WorkspaceId) -> CacheSettings {
        self.settings.get(self.store.as_ref(), ws).await
    }
}
