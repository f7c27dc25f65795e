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
    /// When (ms) a bump through this isolate was last answered, by object name: a read
    /// that started before may not hold it, so it is not kept.
    bumped: HashMap<String, u64>,
}

impl Copies {
    /// Keeps `known`, read for `cached` (of object `name`) by a request that started at
    /// `started`, unless a bump was answered since or the copy held is of a later era.
    /// Of one era, each field keeps the higher of its two values, and the copy is dated
    /// by the later read.
    pub fn keep(&mut self, (cached, name): (&str, &str), started: u64, mut known: Rc<Known>) {
        if self.bumped.get(name).is_some_and(|at| started <= *at) {
            return;
        }
        if self.known.len() >= MAX_KNOWN || self.bumped.len() >= MAX_KNOWN {
            *self = Self::default();
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

    /// Takes a bump's answer (`answered` at that time): the copy of `name` takes its new
    /// values, so this isolate's reads see the bump at once, and no read that started
    /// before is kept after it; copies with a board's edits are read again.
    pub fn bumped(&mut self, name: &str, answered: u64, known: &Known) {
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
                    .insert(name.to_owned(), (answered, Rc::new(known.clone())));
            }
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
    fn a_read_that_started_before_a_bump_is_not_kept_after_it() {
        let mut copies = Copies::default();
        let bumped = answer(1, &[("b4", 3), ("th", 0)]);
        copies.bumped("ws", 20, &bumped);
        copies
            .known
            .insert("ws#4".into(), (5, Rc::new(bumped.clone())));
        copies.bumped("ws", 21, &bumped);
        assert!(held(&copies, "ws#4").is_none(), "edits are read again");
        let before = answer(1, &[("b4", 2), ("ws", 1), ("th", 0)]);
        copies.keep(("ws", "ws"), 10, Rc::new(before.clone()));
        copies.keep(("ws#4", "ws"), 21, Rc::new(before));
        assert_eq!(held(&copies, "ws").unwrap().1["b4"], 3);
        assert!(held(&copies, "ws#4").is_none());
        let after = answer(1, &[("b4", 3), ("ws", 1), ("th", 0)]);
        copies.keep(("ws", "ws"), 30, Rc::new(after));
        assert_eq!(
            held(&copies, "ws"),
            Some((30, answer(1, &[("b4", 3), ("ws", 1), ("th", 0)]).counters))
        );
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
        // An answer of before the fold, arriving last, is not kept.
        copies.keep(
            ("ws", "ws"),
            14,
            Rc::new(answer(1, &[("c1h", 6), ("ws", 1), ("th", 0)])),
        );
        assert_eq!(held(&copies, "ws").unwrap().1, folded.counters);
        // A bump's answer of a later era replaces the copy; of the same era it merges.
        copies.bumped("ws", 15, &answer(1, &[("c1h", 2), ("th", 7)]));
        assert_eq!(held(&copies, "ws").unwrap().1["c1h"], 2);
        copies.bumped("ws", 16, &answer(2, &[("c1h", 1), ("th", 0)]));
        assert_eq!(
            held(&copies, "ws"),
            Some((16, answer(2, &[("c1h", 1), ("th", 0)]).counters))
        );
    }
}
