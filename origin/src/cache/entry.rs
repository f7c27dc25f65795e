//! How a cached answer is stored in both layers: when it was computed, until when it is
//! fresh, for a page the rows it shows, and the JSON body. Anything that does not decode
//! (garbage, an older format) is a miss.

use std::sync::Arc;

const TAG: &str = "ec2";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub computed_at_ms: i64,
    pub fresh_until_ms: i64,
    pub rows: Option<Rows>,
    pub body: Arc<str>,
}

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

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Entry {
    pub fn new(body: String, ttl_secs: u32, rows: Option<Rows>) -> Self {
        let now = now_ms();
        Self {
            computed_at_ms: now,
            fresh_until_ms: now + i64::from(ttl_secs) * 1000,
            rows,
            body: body.into(),
        }
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
            self.body
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
        Some(Self {
            computed_at_ms,
            fresh_until_ms,
            rows,
            body: body.into(),
        })
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
