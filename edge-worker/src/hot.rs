//! The isolate's own copy of the KV entries it last read or wrote, kept while they are
//! fresh, so that a hot key is answered without a KV read: the slowest step of a hit and
//! a billed operation. It changes nothing about freshness: a key names the generations
//! its entry was made under, so a copy is what KV holds under it or an earlier fill of
//! equal standing; past its TTL the entry is read from KV again (another isolate may have
//! refilled it), and a page an edit reached is read from KV again too.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use crate::freshness::EntryMeta;

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
}

impl Hot {
    /// The copy of `key`, while it is fresh at `now_ms`.
    pub fn get(&mut self, key: &str, now_ms: u64) -> Option<(String, EntryMeta)> {
        let entry = self.entries.get(key)?;
        if now_ms < entry.meta.fresh_until_ms {
            return Some((entry.value.clone(), entry.meta));
        }
        self.forget(key);
        None
    }

    /// Keeps `value` under `key` within `budget` bytes, dropping the oldest copies: an
    /// entry already past its TTL, or bigger than an eighth of the budget, is not kept.
    pub fn keep(&mut self, key: &str, value: &str, meta: EntryMeta, now_ms: u64, budget: usize) {
        self.forget(key);
        let size = key.len() + value.len();
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
            self.bytes -= key.len() + entry.value.len();
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
        let value = "x".repeat(99);
        for i in 0..30 {
            hot.keep(&format!("k{i}"), &value, fresh_for(100), 0, BUDGET);
            assert!(hot.bytes() <= BUDGET, "{}", hot.bytes());
        }
        // Nine copies of 102 bytes fit: the last nine kept.
        assert_eq!(hot.get("k20", 1), None);
        assert!((21..30).all(|i| hot.get(&format!("k{i}"), 1).is_some()));
    }

    #[test]
    fn keeping_a_key_again_replaces_its_copy_and_its_place() {
        let mut hot = Hot::default();
        let value = "x".repeat(99);
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
    fn an_entry_too_big_for_its_share_or_a_zero_budget_keeps_nothing() {
        let mut hot = Hot::default();
        hot.keep("big", &"x".repeat(200), fresh_for(100), 0, BUDGET);
        assert_eq!(hot.get("big", 1), None);
        hot.keep("k", "v", fresh_for(100), 0, 0);
        assert_eq!(hot.get("k", 1), None);
        assert_eq!(hot.bytes(), 0);
    }
}
