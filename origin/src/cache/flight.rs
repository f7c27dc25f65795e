//! Single flight: inside one instance, concurrent misses of one key queue on a per-key
//! lock, and all but the first find the value filled when they get it; across instances,
//! a read that found another instance filling a key waits to be told the fill ended
//! (`FillWaits`), instead of polling Redis for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, OwnedMutexGuard};

/// One shared value per key while anyone holds it. The map keeps weak references, so a
/// value goes with its last holder; the map is pruned of dead ones as it grows.
struct PerKey<T> {
    map: Mutex<HashMap<String, Weak<T>>>,
}

impl<T> Default for PerKey<T> {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
        }
    }
}

const PRUNE_ABOVE: usize = 1024;

impl<T: Default> PerKey<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<T>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hold(&self, key: &str) -> Arc<T> {
        let mut map = self.map();
        if let Some(live) = map.get(key).and_then(Weak::upgrade) {
            return live;
        }
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, weak| weak.strong_count() > 0);
        }
        let fresh = Arc::new(T::default());
        map.insert(key.to_owned(), Arc::downgrade(&fresh));
        fresh
    }

    fn held(&self, key: &str) -> Option<Arc<T>> {
        self.map().get(key).and_then(Weak::upgrade)
    }
}

#[derive(Default)]
pub struct KeyLocks {
    locks: PerKey<tokio::sync::Mutex<()>>,
}

impl KeyLocks {
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        self.locks.hold(key).lock_owned().await
    }
}

/// Reads of this instance waiting on another instance's fill, by key. The filler
/// announces on the namespace's fills channel when it releases a key's fill lock (the
/// value is in Redis by then, unless the fill failed), and that wakes them at once: a
/// poll would add up to its period to every such read, the reads that follow a
/// workspace's invalidation on all instances at the same moment.
#[derive(Default)]
pub struct FillWaits {
    waits: PerKey<Notify>,
}

impl FillWaits {
    /// What to wait on for `key`: `notified()` on it, taken before Redis is asked,
    /// completes once a release of the key is announced after that.
    pub fn watch(&self, key: &str) -> Arc<Notify> {
        self.waits.hold(key)
    }

    /// Another instance released `key`'s fill lock.
    pub fn released(&self, key: &str) {
        if let Some(waiting) = self.waits.held(key) {
            waiting.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn holders_of_one_key_run_one_at_a_time() {
        let locks = Arc::new(KeyLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (locks, inside) = (locks.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let _guard = locks.lock("k").await;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    }

    #[tokio::test]
    async fn different_keys_do_not_wait_for_each_other() {
        let locks = KeyLocks::default();
        let _a = locks.lock("a").await;
        let b = tokio::time::timeout(std::time::Duration::from_secs(1), locks.lock("b")).await;
        assert!(b.is_ok());
    }

    #[tokio::test]
    async fn a_released_key_wakes_its_waiters_and_no_other() {
        let waits = FillWaits::default();
        let (a, b) = (waits.watch("a"), waits.watch("b"));
        let (woken, asleep) = (a.notified(), b.notified());
        waits.released("a");
        let short = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(short, woken).await.is_ok());
        assert!(tokio::time::timeout(short, asleep).await.is_err());
    }

    #[test]
    fn a_key_nobody_waits_on_is_forgotten() {
        let waits = FillWaits::default();
        drop(waits.watch("a"));
        assert!(waits.waits.held("a").is_none());
        waits.released("a");
    }
}
