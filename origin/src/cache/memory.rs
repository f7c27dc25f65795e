//! L1: an in-process moka cache bounded by bytes. Entries are kept for their TTL plus
//! the stale grace, so a warm instance can still answer when Postgres is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::entry::{now_ms, Entry};
use crate::FastHash;

struct KeepUntilStale {
    grace: Duration,
}

impl Expiry<String, Arc<Entry>> for KeepUntilStale {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _now: Instant,
    ) -> Option<Duration> {
        let fresh_ms = u64::try_from(value.fresh_until_ms - now_ms()).unwrap_or(0);
        Some(Duration::from_millis(fresh_ms) + self.grace)
    }

    fn expire_after_update(
        &self,
        key: &String,
        value: &Arc<Entry>,
        now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, now)
    }
}

/// What one entry costs beyond its key's and answer's bytes: moka's own nodes for it (its
/// hash-table slot, access and write order, expiry timer, entry info), the `Arc` and
/// `String` headers, `Entry`'s fields and the allocator's (mimalloc's) rounding.
/// Measured by `origin bench --l1-entries` (resident memory of a full L1 against its
/// bound), so that `L1_MAX_BYTES` is what L1 really holds, not half or twice of it.
pub const ENTRY_OVERHEAD: usize = 480;

/// The bytes L1 counts `entry` under `key` for.
pub fn weigh(key: &str, entry: &Entry) -> u32 {
    let ids = entry.rows.as_ref().map_or(0, |r| r.ids.len() * 8);
    let bytes = key.len() + entry.held_len() + ids + ENTRY_OVERHEAD;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// `None` when L1 is off (`L1_MAX_BYTES=0`): every read goes on to Redis or the store.
#[derive(Clone)]
pub struct Memory {
    cache: Option<Cache<String, Arc<Entry>, FastHash>>,
}

impl Memory {
    pub fn new(max_bytes: u64, grace: Duration) -> Self {
        if max_bytes == 0 {
            return Self { cache: None };
        }
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Arc<Entry>| weigh(key, value))
            .expire_after(KeepUntilStale { grace })
            .build_with_hasher(FastHash::default());
        Self { cache: Some(cache) }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.cache.as_ref()?.get(key)
    }

    pub fn insert(&self, key: String, entry: Arc<Entry>) {
        if let Some(c) = &self.cache {
            c.insert(key, entry);
        }
    }

    pub fn remove(&self, key: &str) {
        if let Some(c) = &self.cache {
            c.invalidate(key);
        }
    }

    pub fn entry_count(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.entry_count())
    }

    pub fn weighted_bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weighted_size())
    }

    /// Applies pending insertions and evictions, so that the counts above are exact.
    pub fn settle(&self) {
        if let Some(c) = &self.cache {
            c.run_pending_tasks();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Rows;

    #[test]
    fn an_entry_weighs_its_key_body_rows_and_the_caches_own_bookkeeping() {
        let body = format!(r#"{{"a":"{}"}}"#, "x".repeat(292));
        // Held as sent: the envelope's 23 bytes, the body without its closing brace.
        let held = 23 + body.len() - 1;
        let counts = Entry::new(body.clone(), 60, None);
        assert_eq!(
            weigh("k".repeat(40).as_str(), &counts) as usize,
            40 + held + ENTRY_OVERHEAD
        );
        let page = Entry::new(body, 60, Some(Rows::new(1, (0..50).collect())));
        assert_eq!(
            weigh("k".repeat(40).as_str(), &page) as usize,
            40 + held + 50 * 8 + ENTRY_OVERHEAD
        );
    }
}
