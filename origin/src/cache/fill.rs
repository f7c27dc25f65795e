//! A miss's fill, owned so that it finishes even when the read that started it is gone,
//! and the cross-instance fill lock it may hold.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use shared::model::ContactPage;
use tokio::sync::OwnedMutexGuard;

use super::entry::{Entry, Rows};
use super::memory::Memory;
use super::redis::RedisCache;
use super::stats::Stats;
use crate::error::Result;

/// What a fill needs once the read that started it may be gone: owned handles to the
/// layers, and the locks the read held on the key (released when the fill ends).
pub(super) struct Fill {
    pub(super) memory: Option<Memory>,
    pub(super) redis: Option<Arc<RedisCache>>,
    pub(super) stats: Arc<Stats>,
    /// How long Redis keeps the value: its TTL and the stale grace.
    pub(super) keep: Duration,
    /// For a page, the board's `Rows` generation its read started at.
    pub(super) rows: Option<u64>,
    /// The cross-instance fill lock, when this read took it.
    pub(super) _lock: Option<FillLock>,
    pub(super) _local_flight: Option<OwnedMutexGuard<()>>,
}

impl Fill {
    pub(super) async fn run(
        self,
        key: String,
        ttl_secs: u32,
        compute: impl Future<Output = Result<String>>,
    ) -> Result<Arc<Entry>> {
        let entry = compute.await.map(|body| {
            let rows = self
                .rows
                .and_then(|seq| Some(Rows::new(seq, ContactPage::ids_in(&body)?)));
            Arc::new(Entry::new(body, ttl_secs, rows))
        });
        if let Ok(entry) = &entry {
            if let Some(m) = &self.memory {
                m.insert(key.clone(), entry.clone());
            }
            if let Some(r) = &self.redis {
                if r.set(&key, &entry.encode(), self.keep).await.is_err() {
                    self.stats.error();
                }
            }
            self.stats.set();
        }
        entry
    }
}

/// A cross-instance fill lock this read took, and its token in it. Released when dropped,
/// however the fill ends (a failed or panicking query included), by compare-and-delete,
/// so a lock that expired and went to another instance is left alone; the release is
/// announced, waking the other instances' reads that wait on it.
pub(super) struct FillLock {
    pub(super) redis: Arc<RedisCache>,
    pub(super) lock: String,
    pub(super) owner: String,
    pub(super) channel: String,
    pub(super) announcement: String,
}

impl Drop for FillLock {
    fn drop(&mut self) {
        let redis = self.redis.clone();
        let [lock, owner, channel, announcement] = [
            &mut self.lock,
            &mut self.owner,
            &mut self.channel,
            &mut self.announcement,
        ]
        .map(std::mem::take);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = redis.release(&lock, &owner, &channel, &announcement).await;
            });
        }
    }
}
