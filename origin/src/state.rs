//! The shared handles every request uses; cheap to share behind one `Arc`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use shared::cursor::CursorKey;
use shared::settings::CacheSettings;
use shared::WorkspaceId;
use tokio::sync::Semaphore;

use crate::auth::Verifier;
use crate::cache::Cache;
use crate::config::Config;
use crate::edge_push::EdgePush;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::live::{Announcer, Live};
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
    /// Admits `DB_READ_CONCURRENCY` store reads at once: a burst of refills (after a
    /// workspace-wide invalidation) queues here instead of crowding Postgres.
    pub db_reads: Arc<Semaphore>,
    /// Each workspace's searches running against the store on this instance.
    pub searches: Searches,
    /// Live changes streamed to this instance's connections.
    pub live: Arc<Live>,
    /// Announces this instance's changes to the event streams of every instance.
    pub announcer: Announcer,
    /// Checks the cursors clients send back (`Config::cursor_key`).
    pub cursors: CursorKey,
    /// The dependencies' last health probe, reused for `PROBE_MAX_AGE`.
    pub probe: Recent<serde_json::Value>,
}

impl AppState {
    /// Which copy a cache fill of `ws` reads: the replica once it has replayed the last
    /// change of `ws` this instance heard of (the store checks), so that a lagging replica
    /// cannot put data older than an acknowledged write into the caches.
    pub fn reader(&self, ws: &WorkspaceId) -> Read {
        Read::Replica {
            changed: Some(self.cache.generations().changed_at(ws)),
        }
    }

    /// `read` once the store may take another read (see `db_reads`).
    pub fn gated<T>(
        &self,
        read: impl Future<Output = Result<T>> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let gate = self.db_reads.clone();
        async move {
            let _admitted = gate.acquire_owned().await;
            read.await
        }
    }

    /// `gated`, for a search: at most `SEARCH_CONCURRENCY_PER_WORKSPACE` of a workspace's
    /// at once (past it, a 503 with Retry-After at once rather than a queue that holds
    /// everyone's reads), and given up after `SEARCH_TIMEOUT_MS`.
    pub fn searched<T>(
        &self,
        ws: &WorkspaceId,
        read: impl Future<Output = Result<T>> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let (gate, limit) = (self.searches.of(ws), self.config.search_timeout);
        let read = self.gated(read);
        async move {
            let _running = gate
                .try_acquire_owned()
                .map_err(|_| Error::Unavailable("searches (too many of this workspace at once)"))?;
            tokio::time::timeout(limit, read)
                .await
                .map_err(|_| Error::Unavailable("the search (it ran out of time; narrow it)"))?
        }
    }

    pub async fn settings_for(&self, ws: &WorkspaceId) -> CacheSettings {
        self.settings.get(self.store.as_ref(), ws).await
    }
}

/// A semaphore per workspace that searches (`AppState::searched`).
pub struct Searches {
    per_workspace: usize,
    gates: std::sync::Mutex<HashMap<WorkspaceId, Arc<Semaphore>>>,
}

impl Searches {
    pub fn new(per_workspace: u32) -> Self {
        Self {
            per_workspace: per_workspace as usize,
            gates: Default::default(),
        }
    }

    fn of(&self, ws: &WorkspaceId) -> Arc<Semaphore> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates
            .entry(ws.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_workspace)))
            .clone()
    }

    /// Forgets the workspaces with no search running.
    pub fn prune(&self) {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.retain(|_, gate| gate.available_permits() < self.per_workspace);
    }
}
