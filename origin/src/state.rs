//! The shared handles every request uses; cheap to share behind one `Arc`.

use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use shared::keys::GenerationScope;
use shared::settings::CacheSettings;
use shared::WorkspaceId;
use sqlx::PgPool;

use crate::auth::Verifier;
use crate::cache::generations::Bump;
use crate::cache::Cache;
use crate::config::Config;
use crate::limits::Limits;
use crate::settings::SettingsCache;

pub struct AppState {
    pub config: Config,
    /// The primary: writes, settings, and fills right after a change.
    pub db: PgPool,
    /// Where cache fills read (the replica when configured, else the primary).
    pub read_db: PgPool,
    pub cache: Cache,
    pub settings: SettingsCache,
    pub limits: Limits,
    pub auth: Verifier,
    pub metrics: PrometheusHandle,
    pub started: Instant,
}

impl AppState {
    /// The pool a cache fill of `ws` reads.
    pub fn reader(&self, ws: &WorkspaceId) -> &PgPool {
        let window = self.config.replica_lag_window;
        if self.cache.generations.changed_within(ws, window) {
            &self.db
        } else {
            &self.read_db
        }
    }

    pub async fn settings_for(&self, ws: &WorkspaceId) -> CacheSettings {
        self.settings.get(&self.db, ws).await
    }

    /// Makes every key of `scope` in `ws` unreachable, on every instance.
    pub async fn invalidate(&self, ws: &WorkspaceId, scope: GenerationScope) -> Bump {
        self.cache.stats.delete();
        self.cache
            .generations
            .bump(self.cache.redis.as_ref(), ws, scope)
            .await
    }
}
