//! Each workspace's settings, read on every request, so kept in memory. A save here is
//! announced to the other instances; a reload is forced after `MAX_AGE` in case an
//! announcement is lost. When the store is down the last known settings stay in force.

use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::{RwLock, RwLockWriteGuard};

use shared::settings::CacheSettings;
use shared::WorkspaceId;

use crate::store::Store;
use crate::FastHash;

const MAX_AGE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
struct Known {
    settings: CacheSettings,
    loaded: Option<Instant>,
}

impl Known {
    fn is_fresh_at(&self, now: Instant) -> bool {
        self.loaded
            .is_some_and(|t| now.saturating_duration_since(t) < MAX_AGE)
    }
}

/// One small entry per workspace ever seen: bounded by the number of workspaces.
#[derive(Default)]
pub struct SettingsCache {
    known: RwLock<HashMap<WorkspaceId, Known, FastHash>>,
}

impl SettingsCache {
    pub async fn get(&self, store: &dyn Store, ws: &WorkspaceId) -> CacheSettings {
        let known = self.held(ws);
        if let Some(k) = known.filter(|k| k.is_fresh_at(Instant::now())) {
            return k.settings;
        }
        match store.load_settings(ws).await {
            Ok(settings) => {
                self.remember(ws, settings);
                settings
            }
            Err(e) => {
                tracing::warn!(error = %e, %ws, "using last known cache settings");
                known.map(|k| k.settings).unwrap_or_default()
            }
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<WorkspaceId, Known, FastHash>> {
        self.known.write().unwrap_or_else(|p| p.into_inner())
    }

    /// `ws`'s settings if at `now` they were loaded recently enough to use without asking
    /// the store.
    pub fn fresh_at(&self, ws: &WorkspaceId, now: Instant) -> Option<CacheSettings> {
        self.held(ws)
            .filter(|k| k.is_fresh_at(now))
            .map(|k| k.settings)
    }

    fn held(&self, ws: &WorkspaceId) -> Option<Known> {
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(ws)
            .copied()
    }

    pub fn remember(&self, ws: &WorkspaceId, settings: CacheSettings) {
        let known = Known {
            settings,
            loaded: Some(Instant::now()),
        };
        self.write().insert(ws.clone(), known);
    }

    /// Another instance saved `ws`'s settings: reload on next use.
    pub fn forget(&self, ws: &WorkspaceId) {
        if let Some(k) = self.write().get_mut(ws) {
            k.loaded = None;
        }
    }

    /// Announcements may have been missed: reload every workspace on next use.
    pub fn forget_all(&self) {
        for k in self.write().values_mut() {
            k.loaded = None;
        }
    }
}
