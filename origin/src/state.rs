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
use crate::settings::SettingsCache;

pub struct AppState {
    pub config: Config,
    pub db: PgPool,
    pub cache: Cache,
    pub settings: SettingsCache,
    pub auth: Verifier,
    pub metrics: PrometheusHandle,
    pub started: Instant,
}

impl AppState {
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
