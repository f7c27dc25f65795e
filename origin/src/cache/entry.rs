//! How a cached answer is stored in both layers: when it was computed, until when it is
//! fresh, and the JSON body. Anything that does not decode (garbage, an older format) is a miss.

use std::sync::Arc;

const TAG: &str = "ec1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub computed_at_ms: i64,
    pub fresh_until_ms: i64,
    pub body: Arc<str>,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Entry {
    pub fn new(body: String, ttl_secs: u32) -> Self {
        let now = now_ms();
        Self {
            computed_at_ms: now,
            fresh_until_ms: now + i64::from(ttl_secs) * 1000,
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
            "{TAG}|{}|{}|{}",
            self.computed_at_ms, self.fresh_until_ms, self.body
        )
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(4, '|');
        if parts.next()? != TAG {
            return None;
        }
        let computed_at_ms = parts.next()?.parse().ok()?;
        let fresh_until_ms = parts.next()?.parse().ok()?;
        let body = parts.next()?;
        if !(body.starts_with('{') && body.ends_with('}')) {
            return None;
        }
        Some(Self {
            computed_at_ms,
            fresh_until_ms,
            body: body.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_survives_encoding() {
        let e = Entry::new(r#"{"a":"x|y"}"#.to_owned(), 60);
        assert_eq!(Entry::decode(&e.encode()), Some(e));
    }

    #[test]
    fn garbage_and_old_formats_decode_as_nothing() {
        for raw in [
            "",
            "garbage",
            "ec0|1|2|{}",
            "ec1|x|2|{}",
            "ec1|1|2|not json",
            r#"{"total":5}"#,
        ] {
            assert_eq!(Entry::decode(raw), None, "{raw:?}");
        }
    }
}
