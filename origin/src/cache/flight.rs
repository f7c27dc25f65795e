//! Single flight inside one instance: concurrent misses of one key queue on a per-key
//! lock, and all but the first find the value filled when they get it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

/// Locks are dropped with their last holder; the map is pruned of dead ones as it grows.
#[derive(Default)]
pub struct KeyLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

const PRUNE_ABOVE: usize = 1024;

impl KeyLocks {
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(live) = map.get(key).and_then(Weak::upgrade) {
                live
            } else {
                if map.len() > PRUNE_ABOVE {
                    map.retain(|_, weak| weak.strong_count() > 0);
                }
                let fresh = Arc::new(tokio::sync::Mutex::new(()));
                map.insert(key.to_owned(), Arc::downgrade(&fresh));
                fresh
            }
        };
        lock.lock_owned().await
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
}
