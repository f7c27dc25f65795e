//! What an isolate knows of the generations objects: its copies of their counters, and
//! when it last bumped each. Kept apart from the object's calls so the rules deciding
//! which answer a copy keeps are tested natively.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use shared::keys::GenerationScope;

/// A workspace's counters, by field (`shared::keys::GenerationScope::field`).
pub type Counters = HashMap<String, u64>;

/// What the object answers: the counters asked for (bumped, raised), when its storage
/// began, the logged edits of the board asked about, `(Rows value, contact)` oldest first
/// (`rows::LOG_LEN` at most), and how many counters it holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Known {
    /// Only the fields asked about: the table is as large as what is active, and
    /// answering it whole to every read made each read's cost grow with it.
    pub counters: Counters,
    /// When (ms) the object's storage was made: counters restart from zero in new storage,
    /// so this is part of every key (`handlers::counters`), and no key made before is met.
    #[serde(default)]
    pub incarnation: u64,
    #[serde(default)]
    pub edits: Vec<(u64, i64)>,
    #[serde(default)]
    pub held: u64,
}

/// Workspaces whose counters one isolate keeps before it starts over.
pub const MAX_KNOWN: usize = 10_000;

/// What this isolate knows of the objects.
#[derive(Default)]
pub struct Copies {
    /// Counters read, by object name (and board, for its edits), with when the read
    /// started.
    pub known: HashMap<String, (u64, Rc<Known>)>,
    /// When (ms) a bump through this isolate was last answered, by object name: a copy
    /// with a board's edits read before may lack the edit, so it is not kept.
    bumped: HashMap<String, u64>,
    /// The last bump answered before the copies were dropped (`MAX_KNOWN`): no read
    /// started before is kept, as nothing is left to say which bumps it may lack.
    floor: u64,
}

impl Copies {
    /// Keeps `known`, read for `cached` (of object `name`) by a request that started at
    /// `started`, unless the copy held is of a later era or, for a board's edits, a bump
    /// was answered since. Of one era, each field keeps the higher of its two values
    /// (which keeps a bump answered meanwhile), and the copy is dated by the later read.
    pub fn keep(&mut self, (cached, name): (&str, &str), started: u64, mut known: Rc<Known>) {
        self.start_over_when_full();
        let edits = cached != name;
        let bumped = self.bumped.get(name).copied().unwrap_or(0);
        if started <= self.floor || (edits && started <= bumped) {
            return;
        }
        let Some((at, held)) = self.known.get_mut(cached) else {
            self.known.insert(cached.to_owned(), (started, known));
            return;
        };
        match era(held).cmp(&era(&known)) {
            Ordering::Greater => {}
            Ordering::Less => (*at, *held) = (started, known),
            Ordering::Equal if *at > started => raise_shared(held, &known),
            Ordering::Equal => {
                raise_shared(&mut known, held);
                (*at, *held) = (started, known);
            }
        }
    }

    /// Takes the answer of a bump sent at `sent` and answered at `answered`: the copy of
    /// `name` takes its new values, so this isolate's reads see the bump at once (a copy
    /// it starts is dated by `sent`: the object may have taken other bumps between the
    /// two); copies with a board's edits are read again.
    pub fn bumped(&mut self, name: &str, (sent, answered): (u64, u64), known: &Known) {
        self.start_over_when_full();
        let with_edits = format!("{name}#");
        self.known.retain(|key, _| !key.starts_with(&with_edits));
        self.bumped.insert(name.to_owned(), answered);
        match self.known.get_mut(name) {
            Some((_, held)) if era(held) == era(known) => {
                for (field, value) in &known.counters {
                    let held = Rc::make_mut(held)
                        .counters
                        .entry(field.clone())
                        .or_insert(0);
                    *held = (*held).max(*value);
                }
            }
            Some((_, held)) if era(held) > era(known) => {}
            _ => {
                self.known
                    .insert(name.to_owned(), (sent, Rc::new(known.clone())));
            }
        }
    }

    fn start_over_when_full(&mut self) {
        if self.known.len() >= MAX_KNOWN || self.bumped.len() >= MAX_KNOWN {
            let floor = self.bumped.values().copied().fold(self.floor, u64::max);
            *self = Self {
                floor,
                ..Self::default()
            };
        }
    }
}

/// Raises each field `to` shares with `from` to `from`'s value, when higher.
fn raise_shared(to: &mut Rc<Known>, from: &Known) {
    let shared: Vec<(String, u64)> = to
        .counters
        .iter()
        .filter_map(|(f, v)| {
            from.counters
                .get(f)
                .filter(|o| *o > v)
                .map(|o| (f.clone(), *o))
        })
        .collect();
    if !shared.is_empty() {
        Rc::make_mut(to).counters.extend(shared);
    }
}

/// Where an answer stands: its object's storage, then the folds it has seen. Only within
/// one era does each counter only grow (a fold deletes counters and raises `Threads`), so
/// there the higher of two values is the later one; an answer of a later era replaces one
/// of an earlier.
fn era(known: &Known) -> (u64, u64) {
    let threads = GenerationScope::Threads.field();
    (
        known.incarnation,
        known.counters.get(&threads).copied().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(incarnation: u64, pairs: &[(&str, u64)]) -> Known {
        Known {
            counters: pairs.iter().map(|(f, v)| ((*f).to_owned(), *v)).collect(),
            incarnation,
            ..Known::default()
        }
    }

    fn held(copies: &Copies, cached: &str) -> Option<(u64, Counters)> {
        copies
            .known
            .get(cached)
            .map(|(at, k)| (*at, k.counters.clone()))
    }

    #[test]
    fn a_read_that_started_before_a_bump_does_not_put_back_what_it_replaced() {
        let mut copies = Copies::default();
        let bumped = answer(1, &[("b4", 3), ("th", 0)]);
        copies.known.insert(
            "ws#4".into(),
            (5, Rc::new(answer(1, &[("b4", 2), ("th", 0)]))),
        );
        copies.bumped("ws", (19, 20), &bumped);
        assert!(held(&copies, "ws#4").is_none(), "edits are read again");
        assert_eq!(held(&copies, "ws"), Some((19, bumped.counters.clone())));
        // Reads that started before the answer (at its very millisecond too), answered
        // without the bump: a board's copy is not kept, the workspace's keeps the bump.
        let before = answer(1, &[("b4", 2), ("ws", 1), ("th", 0)]);
        copies.keep(("ws#4", "ws"), 20, Rc::new(before.clone()));
        assert!(held(&copies, "ws#4").is_none());
        copies.keep(("ws", "ws"), 10, Rc::new(before.clone()));
        assert_eq!(held(&copies, "ws").unwrap().1["b4"], 3);
        copies.keep(("ws", "ws"), 21, Rc::new(before));
        let (at, counters) = held(&copies, "ws").unwrap();
        assert_eq!((at, counters["b4"], counters["ws"]), (21, 3, 1));
        copies.keep(
            ("ws#4", "ws"),
            21,
            Rc::new(answer(1, &[("b4", 3), ("th", 0)])),
        );
        assert!(held(&copies, "ws#4").is_some());
    }

    #[test]
    fn of_one_era_the_higher_value_stands_and_a_later_era_replaces_an_earlier() {
        let mut copies = Copies::default();
        copies.keep(
            ("ws", "ws"),
            10,
            Rc::new(answer(1, &[("c1h", 5), ("ws", 1), ("th", 0)])),
        );
        // A read that started earlier but saw more raises what both hold, not the date.
        copies.keep(
            ("ws", "ws"),
            8,
            Rc::new(answer(1, &[("c1h", 6), ("c2h", 1), ("th", 0)])),
        );
        let (at, counters) = held(&copies, "ws").unwrap();
        assert_eq!((at, counters["c1h"]), (10, 6));
        assert!(!counters.contains_key("c2h"), "not known as of 10");
        // A fold deleted c1h and raised th: the copy of before it is replaced, not merged.
        let folded = answer(1, &[("c1h", 1), ("ws", 1), ("th", 7)]);
        copies.keep(("ws", "ws"), 12, Rc::new(folded.clone()));
        assert_eq!(held(&copies, "ws").unwrap().1, folded.counters);
        // An answer of before the fold, arriving last, is not kept; nor a bump's.
        copies.keep(
            ("ws", "ws"),
            14,
            Rc::new(answer(1, &[("c1h", 6), ("ws", 1), ("th", 0)])),
        );
        assert_eq!(held(&copies, "ws").unwrap().1, folded.counters);
        copies.bumped("ws", (14, 15), &answer(1, &[("c1h", 7), ("th", 0)]));
        assert_eq!(held(&copies, "ws").unwrap().1, folded.counters);
        // A bump's answer of the same era merges; of a later era (new storage) replaces.
        copies.bumped("ws", (15, 16), &answer(1, &[("c1h", 2), ("th", 7)]));
        assert_eq!(held(&copies, "ws").unwrap().1["c1h"], 2);
        copies.bumped("ws", (16, 17), &answer(2, &[("c1h", 1), ("th", 0)]));
        assert_eq!(
            held(&copies, "ws"),
            Some((16, answer(2, &[("c1h", 1), ("th", 0)]).counters))
        );
    }

    #[test]
    fn copies_dropped_when_full_keep_no_read_older_than_the_last_bump() {
        let mut copies = Copies::default();
        copies.bumped("ws", (19, 20), &answer(1, &[("b4", 3), ("th", 0)]));
        for i in 0..MAX_KNOWN {
            copies.known.insert(format!("other{i}"), (1, Rc::default()));
        }
        copies.keep(
            ("ws", "ws"),
            10,
            Rc::new(answer(1, &[("b4", 2), ("th", 0)])),
        );
        assert!(copies.known.len() < 2, "started over");
        assert!(held(&copies, "ws").is_none(), "a read of before the bump");
        copies.keep(
            ("ws", "ws"),
            21,
            Rc::new(answer(1, &[("b4", 3), ("th", 0)])),
        );
        assert_eq!(held(&copies, "ws").unwrap().1["b4"], 3);
    }
}
