//! Announcements that wait for their receivers. A write is acknowledged only once every
//! instance subscribed to the channel has dropped its copy of the generations it bumped,
//! so no read that starts after the acknowledgement, on any instance, can use the old
//! generation. Each instance answers an announcement that carries an id with an ack on
//! the same channel; the announcer counts them, for a bounded time: as long as an instance
//! may trust a mirror it fetched before the announcement (`GENERATION_MAX_AGE_MS`), so a
//! write answered without an instance's ack still never meets that instance's old mirror.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
struct Waiter {
    received: AtomicU64,
    arrived: Notify,
}

#[derive(Default)]
pub struct Acks {
    waiting: Mutex<HashMap<u64, Arc<Waiter>>>,
}

/// A registered announcement; dropping it stops counting its acks.
pub struct Pending<'a> {
    acks: &'a Acks,
    pub id: u64,
    waiter: Arc<Waiter>,
}

impl Acks {
    /// Registers an announcement before it is published, so no ack can arrive unseen.
    pub fn register(&self) -> Pending<'_> {
        let id = super::random_id();
        let waiter = Arc::new(Waiter::default());
        self.lock().insert(id, waiter.clone());
        Pending {
            acks: self,
            id,
            waiter,
        }
    }

    /// An instance acknowledged announcement `id` (ignored unless it is one of ours).
    pub fn received(&self, id: u64) {
        if let Some(w) = self.lock().get(&id) {
            w.received.fetch_add(1, Ordering::AcqRel);
            w.arrived.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Waiter>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Pending<'_> {
    /// Waits until `receivers` acks arrived or `bound` passed; the acks received. A hung
    /// subscriber Redis still counts delays a write by `bound`, never more.
    pub async fn wait(&self, receivers: u64, bound: Duration) -> u64 {
        let all = async {
            while self.waiter.received.load(Ordering::Acquire) < receivers {
                self.waiter.arrived.notified().await;
            }
        };
        let _ = tokio::time::timeout(bound, all).await;
        self.waiter.received.load(Ordering::Acquire)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.acks.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_when_every_receiver_acked() {
        let acks = Arc::new(Acks::default());
        let pending = acks.register();
        let id = pending.id;
        let other = acks.clone();
        tokio::spawn(async move {
            other.received(id);
            other.received(id);
        });
        assert_eq!(pending.wait(2, Duration::from_secs(60)).await, 2);
    }

    #[tokio::test]
    async fn a_missing_receiver_costs_the_bounded_wait_and_nothing_more() {
        let acks = Acks::default();
        let pending = acks.register();
        acks.received(pending.id);
        let (started, bound) = (std::time::Instant::now(), Duration::from_millis(50));
        assert_eq!(pending.wait(2, bound).await, 1);
        assert!(started.elapsed() >= bound);
    }

    #[test]
    fn acks_of_unknown_or_finished_announcements_are_ignored() {
        let acks = Acks::default();
        let id = acks.register().id;
        acks.received(id);
        assert!(acks.lock().is_empty());
    }
}
