//! How fresh a KV entry is. KV's shortest expiration is 60 s and writes propagate between
//! locations eventually, so freshness is not left to KV: each entry carries its own
//! `fresh_until` in KV metadata, and KV only removes it after the stale grace.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// KV refuses expirations under 60 s.
pub const KV_MIN_TTL_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub computed_at_ms: u64,
    pub fresh_until_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it now, refresh it in the background.
    Stale,
    /// Past the grace: treat as a miss.
    Expired,
}

impl EntryMeta {
    pub fn new(now_ms: u64, ttl_secs: u64) -> Self {
        Self {
            computed_at_ms: now_ms,
            fresh_until_ms: now_ms + ttl_secs * 1000,
        }
    }

    pub fn freshness(&self, now_ms: u64, grace_secs: u64) -> Freshness {
        if now_ms < self.fresh_until_ms {
            Freshness::Fresh
        } else if now_ms < self.fresh_until_ms + grace_secs * 1000 {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }

    /// Whole seconds left fresh.
    pub fn remaining_secs(&self, now_ms: u64) -> u64 {
        self.fresh_until_ms.saturating_sub(now_ms) / 1000
    }
}

/// Keys this isolate remembers having started a background refill of.
const REFILLS_KEPT: usize = 10_000;

thread_local! {
    /// When (ms) this isolate last started a background refill of each key.
    static REFILLS: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

/// Whether to start a background refill of `key` at `now_ms`: not if this isolate started
/// one less than a second ago. Every reader of an entry past its TTL would otherwise
/// start one, and KV takes one write of a key a second.
pub fn refill_due(key: &str, now_ms: u64) -> bool {
    REFILLS.with(|r| {
        let mut refills = r.borrow_mut();
        if refills
            .get(key)
            .is_some_and(|at| now_ms.saturating_sub(*at) < 1_000)
        {
            return false;
        }
        if refills.len() >= REFILLS_KEPT {
            refills.retain(|_, at| now_ms.saturating_sub(*at) < 1_000);
        }
        refills.insert(key.to_owned(), now_ms);
        true
    })
}

/// How long KV keeps an entry: its TTL plus the grace, never under KV's minimum.
pub fn kv_expiration_secs(ttl_secs: u64, grace_secs: u64) -> u64 {
    (ttl_secs + grace_secs).max(KV_MIN_TTL_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_fresh_then_stale_then_expired() {
        let meta = EntryMeta::new(1_000, 10);
        assert_eq!(meta.freshness(10_999, 30), Freshness::Fresh);
        assert_eq!(meta.freshness(11_000, 30), Freshness::Stale);
        assert_eq!(meta.freshness(41_000, 30), Freshness::Expired);
        assert_eq!(meta.remaining_secs(5_000), 6);
    }

    #[test]
    fn a_key_is_refilled_once_a_second_at_most() {
        assert!(refill_due("k", 10_000));
        assert!((0..100).all(|i| !refill_due("k", 10_000 + i * 9)));
        assert!(refill_due("other", 10_500), "each key on its own");
        assert!(refill_due("k", 11_000));
    }

    #[test]
    fn kv_expiration_respects_the_kv_minimum() {
        assert_eq!(kv_expiration_secs(5, 0), 60);
        assert_eq!(kv_expiration_secs(180, 3600), 3780);
    }
}
