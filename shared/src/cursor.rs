//! Cursor pages (API.md "Cursor pages"): a cursor names the last row of a page by its
//! sort value and id, so the next page is an index range scan that costs what page 1
//! costs at any depth. It is bound to the list it was made for (workspace, board,
//! filter, search, column, sort): used with anything else it is a 400, as is any change
//! to it. The check is an HMAC under a server key (`CursorKey`): a cursor carries a
//! value and an id that reach SQL and the cache keys, so only the servers may mint one;
//! anything else is refused before it costs a query or a key.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::InputError;

/// Longer than any cursor the stores make (a name-sorted one carries a name of up to 200
/// characters, up to 6 bytes each once JSON-escaped); anything longer is refused unread.
pub const MAX_CURSOR_CHARS: usize = 2048;
const VERSION: u8 = 2;

/// The key cursors are signed with. It is derived from the token secret, which every
/// origin and the edge already hold, so a cursor made by one is checked by any other and
/// there is no further secret to hand out; a leak of the token secret is worse than any
/// forged cursor. Rotating the token secret makes outstanding cursors a 400, which the
/// contract already tells clients to answer by starting again.
/// Derived on first use: the edge builds its configuration for every request, and most
/// requests neither carry a cursor nor make one.
#[derive(Clone)]
pub struct CursorKey {
    token_secret: Vec<u8>,
    mac: OnceLock<Hmac<Sha256>>,
}

impl CursorKey {
    pub fn from_token_secret(secret: &[u8]) -> Self {
        Self {
            token_secret: secret.to_vec(),
            mac: OnceLock::new(),
        }
    }

    fn mac(&self) -> &Hmac<Sha256> {
        self.mac.get_or_init(|| {
            let mut derive = keyed(&self.token_secret);
            derive.update(b"edgecache cursors");
            keyed(&derive.finalize().into_bytes())
        })
    }

    /// 128 bits of HMAC-SHA256 over the list and the position, as hex.
    fn tag(&self, binding: &str, body: &str) -> String {
        let mut mac = self.mac().clone();
        mac.update(binding.as_bytes());
        mac.update(&[0]);
        mac.update(body.as_bytes());
        mac.finalize().into_bytes()[..TAG_CHARS / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
impl CursorKey {
    pub(crate) fn for_tests() -> Self {
        Self::from_token_secret(b"a token secret of at least 32 bytes")
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; this arm cannot be reached.
    <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

const TAG_CHARS: usize = 32;

/// The row a page ends on, and the number of the page that follows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The page this cursor leads to (reported as `pagination.page`).
    pub page: u32,
    /// The last row's sort column as the store compares it (full precision).
    pub value: String,
    pub id: i64,
}

impl Cursor {
    /// The opaque text for `next_cursor`; `binding` names the list (see `ContactListQuery`).
    pub fn encode(&self, key: &CursorKey, binding: &str) -> String {
        let body = serde_json::json!([VERSION, self.page, self.value, self.id]).to_string();
        let tag = key.tag(binding, &body);
        URL_SAFE_NO_PAD.encode(format!("{tag}{body}"))
    }

    /// `decode` for a list sorted by time: a value that is not a real timestamp (which
    /// this module never makes) is refused here too, before any SQL, whoever signed it.
    pub fn decode_timed(raw: &str, key: &CursorKey, binding: &str) -> Result<Self, InputError> {
        Self::decode_valued(raw, key, binding, is_timestamp)
    }

    /// `decode` for a list whose sort values `valid` tells apart from anything else.
    pub fn decode_valued(
        raw: &str,
        key: &CursorKey,
        binding: &str,
        valid: impl FnOnce(&str) -> bool,
    ) -> Result<Self, InputError> {
        Self::decode(raw, key, binding)?
            .filter(|c| valid(&c.value))
            .ok_or_else(invalid)
    }

    pub fn decode(raw: &str, key: &CursorKey, binding: &str) -> Result<Self, InputError> {
        if raw.is_empty() || raw.len() > MAX_CURSOR_CHARS {
            return Err(invalid());
        }
        let text = URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(invalid)?;
        let (tag, body) = text.split_at_checked(TAG_CHARS).ok_or_else(invalid)?;
        if !bool::from(tag.as_bytes().ct_eq(key.tag(binding, body).as_bytes())) {
            return Err(invalid());
        }
        let (version, page, value, id): (u8, u32, String, i64) =
            serde_json::from_str(body).map_err(|_| invalid())?;
        if version != VERSION || page < 2 {
            return Err(invalid());
        }
        Ok(Self { page, value, id })
    }

    fn filter(self, keep: impl FnOnce(&Self) -> bool) -> Option<Self> {
        keep(&self).then_some(self)
    }
}

fn invalid() -> InputError {
    InputError::new(
        "invalid_cursor",
        "cursor is malformed, altered, or made for another list; start again without it",
    )
}

/// Whether `s` is an RFC 3339 timestamp on a real date, as the stores write them
/// (`2026-01-01T00:00:00.000001Z`, `+01:00` offsets too): Postgres answers an impossible
/// one (`2026-02-30`, `24:00`) with an error, which must never be the client's 500.
pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |at: usize, len: usize| -> Option<u32> {
        let digits = b.get(at..at + len)?;
        digits.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let fields = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    );
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = fields else {
        return false;
    };
    let shape = at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':');
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let date = (1..=12).contains(&mo) && (1..=month_days[(mo.max(1) - 1) as usize]).contains(&d);
    if !shape || y == 0 || !date || h > 23 || mi > 59 || sec > 59 {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest {
        b"Z" => true,
        [b'+' | b'-', ..] if rest.len() == 6 && rest[3] == b':' => {
            let (oh, om) = (num(s.len() - 5, 2), num(s.len() - 2, 2));
            oh.is_some_and(|h| h <= 23) && om.is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            page: 7,
            value: "2026-11-23T10:00:00.123456Z".into(),
            id: 42,
        }
    }

    #[test]
    fn a_cursor_decodes_to_what_was_encoded_for_the_same_list() {
        let raw = cursor().encode(&CursorKey::for_tests(), "list-a");
        assert_eq!(
            Cursor::decode(&raw, &CursorKey::for_tests(), "list-a"),
            Ok(cursor())
        );
    }

    #[test]
    fn a_cursor_of_another_list_is_refused() {
        let raw = cursor().encode(&CursorKey::for_tests(), "list-a");
        assert_eq!(
            Cursor::decode(&raw, &CursorKey::for_tests(), "list-b").map_err(|e| e.code),
            Err("invalid_cursor")
        );
    }

    #[test]
    fn a_cursor_signed_with_another_key_is_refused() {
        let other = CursorKey::from_token_secret(b"another token secret, 32 bytes long");
        let raw = cursor().encode(&other, "list-a");
        assert_eq!(
            Cursor::decode(&raw, &CursorKey::for_tests(), "list-a").map_err(|e| e.code),
            Err("invalid_cursor")
        );
    }

    #[test]
    fn any_altered_character_is_refused() {
        let raw = cursor().encode(&CursorKey::for_tests(), "list-a");
        for i in 0..raw.len() {
            let mut bytes = raw.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).expect("ascii");
            if altered != raw {
                assert!(
                    Cursor::decode(&altered, &CursorKey::for_tests(), "list-a").is_err(),
                    "position {i}"
                );
            }
        }
    }

    #[test]
    fn a_cursor_after_the_longest_name_a_contact_may_have_decodes() {
        for ch in ['\u{1F600}', '\u{1}', '"'] {
            let longest = Cursor {
                page: u32::MAX,
                value: ch.to_string().repeat(200),
                id: i64::MIN,
            };
            let raw = longest.encode(&CursorKey::for_tests(), "list-a");
            assert_eq!(
                Cursor::decode(&raw, &CursorKey::for_tests(), "list-a"),
                Ok(longest)
            );
        }
    }

    #[test]
    fn garbage_and_oversized_cursors_are_refused() {
        for raw in ["", "!!", "abc", &"A".repeat(MAX_CURSOR_CHARS + 1)] {
            assert!(
                Cursor::decode(raw, &CursorKey::for_tests(), "list-a").is_err(),
                "{raw}"
            );
        }
    }

    #[test]
    fn only_real_timestamps_pass_as_a_timed_cursors_value() {
        for good in [
            "2026-01-01T00:00:00Z",
            "2026-12-06T14:00:00.123Z",
            "2024-02-29T23:59:59.999999+01:00",
            "2026-06-30T12:00:00.1-05:30",
        ] {
            assert!(is_timestamp(good), "{good}");
        }
        for bad in [
            "",
            "Ada",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00.1234567890Z",
            "2026-01-01T00:00:00+1:00",
            "0000-01-01T00:00:00Z",
            "2026-01-01T00:00:00Zjunk",
            "２026-01-01T00:00:00Z",
        ] {
            assert!(!is_timestamp(bad), "{bad}");
        }
        let forged = Cursor {
            page: 2,
            value: "not a time".into(),
            id: 1,
        };
        let raw = forged.encode(&CursorKey::for_tests(), "list-a");
        assert!(Cursor::decode(&raw, &CursorKey::for_tests(), "list-a").is_ok());
        assert_eq!(
            Cursor::decode_timed(&raw, &CursorKey::for_tests(), "list-a").map_err(|e| e.code),
            Err("invalid_cursor")
        );
    }
}
