//! The isolate's own copy of the KV entries it last read or wrote, kept while they are
//! fresh, so that a hot key is answered without a KV read: the slowest step of a hit and
//! a billed operation. It changes nothing about freshness: a key names the generations
//! its entry was made under, so a copy is what KV holds under it or an earlier fill of
//! equal standing; past its TTL the entry is read from KV again (another isolate may have
//! refilled it), and a page an edit reached is read from KV again too. A copy is kept a
//! minute at most, so an entry removed from KV by hand is gone from every isolate within
//! about the time KV itself takes to spread the removal.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use crate::freshness::EntryMeta;

/// The longest a copy is kept, whatever its TTL.
const MAX_COPY_MS: u64 = 60_000;
/// What the map and the queue hold per copy beyond its key and value (an estimate: the
/// key's second copy is counted with the key).
const PER_COPY_BYTES: usize = 64;

thread_local! {
    static ISOLATE: RefCell<Hot> = RefCell::new(Hot::default());
}

/// This isolate's copies (a worker isolate runs on one thread).
pub fn isolate<R>(f: impl FnOnce(&mut Hot) -> R) -> R {
    ISOLATE.with(|h| f(&mut h.borrow_mut()))
}

#[derive(Debug, Default)]
pub struct Hot {
    entries: HashMap<String, Entry>,
    /// Keys oldest first, each with the number it was kept under: a key kept again is
    /// queued again, and its earlier place is skipped when reached.
    order: VecDeque<(u64, String)>,
    kept: u64,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    kept: u64,
    value: String,
    meta: EntryMeta,
    /// When (ms) the copy goes: its freshness's end, or a minute after it was kept.
    until_ms: u64,
}

fn size(key: &str, value: &str) -> usize {
    2 * key.len() + value.len() + PER_COPY_BYTES
}

impl Hot {
    /// The copy of `key`, while it is fresh at `now_ms`.
    pub fn get(&mut self, key: &str, now_ms: u64) -> Option<(String, EntryMeta)> {
        let entry = self.entries.get(key)?;
        if now_ms < entry.until_ms {
            return Some((entry.value.clone(), entry.meta));
        }
        self.forget(key);
        None
    }

    /// Keeps `value` under `key` within `budget` bytes, dropping the oldest copies: an
    /// entry already past its TTL, or bigger than an eighth of the budget, is not kept,
    /// and one computed before the copy held (a KV read that a fill overtook) changes
    /// nothing.
    pub fn keep(&mut self, key: &str, value: &str, meta: EntryMeta, now_ms: u64, budget: usize) {
        let held = self.entries.get(key).map(|e| e.meta.computed_at_ms);
        if held.is_some_and(|at| at > meta.computed_at_ms) {
            return;
        }
        self.forget(key);
        let size = size(key, value);
        if now_ms >= meta.fresh_until_ms || size > budget / 8 {
            return;
        }
        self.kept += 1;
        self.bytes += size;
        self.order.push_back((self.kept, key.to_owned()));
        let entry = Entry {
            kept: self.kept,
            value: value.to_owned(),
            meta,
            until_ms: meta.fresh_until_ms.min(now_ms + MAX_COPY_MS),
        };
        self.entries.insert(key.to_owned(), entry);
        while self.bytes > budget {
            let Some((kept, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&oldest).is_some_and(|e| e.kept == kept) {
                self.forget(&oldest);
            }
        }
        // Places left by keys kept again or forgotten are dropped before they outnumber
        // the copies.
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order
                .retain(|(kept, key)| entries.get(key).is_some_and(|e| e.kept == *kept));
        }
    }

    pub fn forget(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= size(key, &entry.value);
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: usize = 1000;

    fn fresh_for(ms: u64) -> EntryMeta {
        EntryMeta {
            computed_at_ms: 0,
            fresh_until_ms: ms,
        }
    }

    /// A value whose copy weighs `bytes` under a two-letter key.
    fn weighing(bytes: usize) -> String {
        "x".repeat(bytes - size("k0", ""))
    }

    #[test]
    fn a_copy_is_served_only_while_fresh() {
        let mut hot = Hot::default();
        hot.keep("k", "v", fresh_for(100), 0, BUDGET);
        assert_eq!(hot.get("k", 99), Some(("v".into(), fresh_for(100))));
        assert_eq!(hot.get("k", 100), None);
        assert_eq!(hot.bytes(), 0);
        hot.keep("late", "v", fresh_for(100), 100, BUDGET);
        assert_eq!(hot.get("late", 0), None);
    }

    #[test]
    fn the_oldest_copies_go_first_and_the_budget_holds() {
        let mut hot = Hot::default();
        let value = weighing(100);
        for i in 0..10 {
            hot.keep(&format!("k{i}"), &value, fresh_for(100), 0, BUDGET);
            assert!(hot.bytes() <= BUDGET, "{}", hot.bytes());
        }
        hot.keep("kx", &value, fresh_for(100), 0, BUDGET);
        // Ten copies of 100 bytes fit, and the eleventh sends the first away.
        assert_eq!(hot.get("k0", 1), None);
        assert!((1..10).all(|i| hot.get(&format!("k{i}"), 1).is_some()));
        assert!(hot.get("kx", 1).is_some());
        assert_eq!(hot.bytes(), BUDGET);
    }

    #[test]
    fn keeping_a_key_again_replaces_its_copy_and_its_place() {
        let mut hot = Hot::default();
        let value = weighing(100);
        hot.keep("a", "old", fresh_for(100), 0, BUDGET);
        for i in 0..8 {
            hot.keep(&format!("k{i}"), &value, fresh_for(100), 0, BUDGET);
        }
        hot.keep("a", "new", fresh_for(100), 0, BUDGET);
        for i in 8..10 {
            hot.keep(&format!("k{i}"), &value, fresh_for(100), 0, BUDGET);
        }
        assert_eq!(hot.get("a", 1).map(|(v, _)| v), Some("new".into()));
        assert_eq!(hot.get("k0", 1), None);
        for _ in 0..1000 {
            hot.keep("a", "again", fresh_for(100), 0, BUDGET);
        }
        assert!(hot.order.len() <= 2 * hot.entries.len() + 65);
    }

    #[test]
    fn a_read_overtaken_by_a_newer_fill_does_not_replace_it() {
        let mut hot = Hot::default();
        let at = |computed_at_ms| EntryMeta {
            computed_at_ms,
            fresh_until_ms: 100,
        };
        hot.keep("k", "filled", at(20), 30, BUDGET);
        hot.keep("k", "read before", at(10), 30, BUDGET);
        assert_eq!(hot.get("k", 31).map(|(v, _)| v), Some("filled".into()));
        hot.keep("k", "filled again", at(40), 50, BUDGET);
        assert_eq!(
            hot.get("k", 51).map(|(v, _)| v),
            Some("filled again".into())
        );
    }

    #[test]
    fn a_copy_is_kept_a_minute_at_most_whatever_its_ttl() {
        let mut hot = Hot::default();
        hot.keep("k", "v", fresh_for(10 * MAX_COPY_MS), 0, BUDGET);
        assert!(hot.get("k", MAX_COPY_MS - 1).is_some());
        assert_eq!(hot.get("k", MAX_COPY_MS), None);
    }

    #[test]
    fn an_entry_too_big_for_its_share_or_a_zero_budget_keeps_nothing() {
        let mut hot = Hot::default();
        hot.keep("big", &weighing(BUDGET / 8 + 1), fresh_for(100), 0, BUDGET);
        assert_eq!(hot.get("big", 1), None);
        hot.keep("k", "v", fresh_for(100), 0, 0);
        assert_eq!(hot.get("k", 1), None);
        assert_eq!(hot.bytes(), 0);
    }
}
