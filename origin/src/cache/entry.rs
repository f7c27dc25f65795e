//! How a cached answer is stored in both layers: when it was computed, until when it is
//! fresh, for a page the rows it shows, and the JSON body. Anything that does not decode
//! (garbage, an older format) is a miss.

use std::time::Instant;

use bytes::Bytes;
use shared::splice::{open_object, OPEN};

use crate::rfc3339;

const TAG: &str = "ec2";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub computed_at_ms: i64,
    /// `computed_at_ms` as every answer of this entry writes it (`_timestamp`).
    pub computed_at: rfc3339::Text,
    pub fresh_until_ms: i64,
    pub rows: Option<Rows>,
    /// API.md's success envelope and the cached JSON object up to its closing brace,
    /// where each answer's own fields go: held as it is sent, so that a hit shares these
    /// bytes instead of copying them (a page is tens of kilobytes).
    head: Bytes,
    /// What goes between `head` and an answer's fields: a comma after members, nothing
    /// in an empty object; `None` for a value that is not an object (sent as it is).
    joint: Option<&'static str>,
}

/// Room for the fields an answer adds (about 330 bytes), so writing them never grows it.
const TAIL_CAPACITY: usize = 384;

/// The contacts a cached page shows and the board's `Rows` generation when it was read:
/// an edit logged after it leaves the page valid unless it edited one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    pub seq: u64,
    /// Sorted, for binary search.
    pub ids: Box<[i64]>,
}

impl Rows {
    pub fn new(seq: u64, mut ids: Vec<i64>) -> Self {
        ids.sort_unstable();
        Self {
            seq,
            ids: ids.into(),
        }
    }

    pub fn shows(&self, id: i64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    fn encode(&self) -> String {
        let ids: Vec<String> = self.ids.iter().map(i64::to_string).collect();
        format!("{}:{}", self.seq, ids.join(","))
    }

    fn decode(raw: &str) -> Option<Self> {
        let (seq, ids) = raw.split_once(':')?;
        let ids = if ids.is_empty() {
            Vec::new()
        } else {
            ids.split(',')
                .map(|id| id.parse().ok())
                .collect::<Option<_>>()?
        };
        Some(Self::new(seq.parse().ok()?, ids))
    }
}

/// Milliseconds since the epoch, from the system clock without a calendar: every hit
/// reads it, and chrono's `Utc::now` builds a date first.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When a read began, on both clocks. An L1 hit needs the time for the settings' age,
/// the token's `exp`, the entry's freshness, its latency and `_retrievedAt`; it reads
/// each clock once and hands this on (asking each time was eight clock reads a hit; now
/// it is four: these two and the ends of the two latencies it reports).
#[derive(Clone, Copy)]
pub struct Began {
    pub instant: Instant,
    /// `now_ms()`.
    pub ms: i64,
}

impl Began {
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            ms: now_ms(),
        }
    }
}

impl Entry {
    pub fn new(body: String, ttl_secs: u32, rows: Option<Rows>) -> Self {
        let now = now_ms();
        Self::at(body.trim_end(), now, now + i64::from(ttl_secs) * 1000, rows)
    }

    fn at(body: &str, computed_at_ms: i64, fresh_until_ms: i64, rows: Option<Rows>) -> Self {
        let (kept, joint) = match open_object(body) {
            Some((open, joint)) => (open, Some(joint)),
            None => (body, None),
        };
        let mut head = Vec::with_capacity(OPEN.len() + kept.len());
        head.extend_from_slice(OPEN.as_bytes());
        head.extend_from_slice(kept.as_bytes());
        Self {
            computed_at_ms,
            computed_at: rfc3339::text(computed_at_ms),
            fresh_until_ms,
            rows,
            head: head.into(),
            joint,
        }
    }

    /// The cached JSON value.
    pub fn body(&self) -> String {
        let value = String::from_utf8_lossy(&self.head[OPEN.len()..]);
        match self.joint {
            Some(_) => format!("{value}}}"),
            None => value.into_owned(),
        }
    }

    /// The bytes held for the answer.
    pub fn held_len(&self) -> usize {
        self.head.len()
    }

    /// The answer: the envelope around the cached object with the members `fields`
    /// writes (at least one, `"a":1,"b":true`) added, as the shared head and this
    /// answer's own tail.
    pub fn served(&self, fields: impl FnOnce(&mut String)) -> (Bytes, Bytes) {
        let tail = match self.joint {
            Some(joint) => {
                let mut tail = String::with_capacity(TAIL_CAPACITY);
                tail.push_str(joint);
                fields(&mut tail);
                tail.push_str("}}");
                tail
            }
            None => "}".to_owned(),
        };
        (self.head.clone(), Bytes::from(tail))
    }

    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms < self.fresh_until_ms
    }

    /// Whole seconds this entry stays fresh.
    pub fn remaining_secs(&self, now_ms: i64) -> u64 {
        u64::try_from((self.fresh_until_ms - now_ms).max(0) / 1000).unwrap_or(0)
    }

    pub fn encode(&self) -> String {
        format!(
            "{TAG}|{}|{}|{}|{}",
            self.computed_at_ms,
            self.fresh_until_ms,
            self.rows.as_ref().map(Rows::encode).unwrap_or_default(),
            self.body()
        )
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(5, '|');
        if parts.next()? != TAG {
            return None;
        }
        let computed_at_ms = parts.next()?.parse().ok()?;
        let fresh_until_ms = parts.next()?.parse().ok()?;
        let rows = match parts.next()? {
            "" => None,
            raw => Some(Rows::decode(raw)?),
        };
        let body = parts.next()?;
        if !(body.starts_with('{') && body.ends_with('}')) {
            return None;
        }
        Some(Self::at(body, computed_at_ms, fresh_until_ms, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_survives_encoding() {
        for rows in [
            None,
            Some(Rows::new(0, Vec::new())),
            Some(Rows::new(12, vec![9, 3, 40])),
        ] {
            let e = Entry::new(r#"{"a":"x|y"}"#.to_owned(), 60, rows);
            assert_eq!(Entry::decode(&e.encode()), Some(e));
        }
    }

    #[test]
    fn an_answer_adds_its_fields_to_the_cached_object_in_the_envelope() {
        let add = |f: &mut String| f.push_str(r#""_x":1"#);
        for (body, served) in [
            (
                r#"{"a":[1,2]}"#,
                r#"{"success":true,"data":{"a":[1,2],"_x":1}}"#,
            ),
            ("{ }  ", r#"{"success":true,"data":{"_x":1}}"#),
            ("[1]", r#"{"success":true,"data":[1]}"#),
        ] {
            let e = Entry::new(body.to_owned(), 60, None);
            let (head, tail) = e.served(add);
            assert_eq!([head, tail].concat(), served.as_bytes(), "{body}");
            let value = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
            assert_eq!(value(&e.body()), value(body), "{body}");
        }
    }

    #[test]
    fn garbage_and_old_formats_decode_as_nothing() {
        for raw in [
            "",
            "garbage",
            "ec1|1|2|{}",
            "ec2|x|2||{}",
            "ec2|1|2|x:1|{}",
            "ec2|1|2|1:a|{}",
            "ec2|1|2||not json",
            r#"{"total":5}"#,
        ] {
            assert_eq!(Entry::decode(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn rows_know_what_they_show() {
        let rows = Rows::new(1, vec![30, 10, 20]);
        assert!(rows.shows(20));
        assert!(!rows.shows(25));
    }
}
