//! Cursor pages (API.md "Cursor pages"): a cursor names the last row of a page by its
//! sort value and id, so the next page is an index range scan that costs what page 1
//! costs at any depth. It is bound to the list it was made for (workspace, board,
//! filter, search, column, sort): used with anything else it is a 400, as is any change
//! to it. The check is a digest, not a signature: a cursor only names a position in
//! rows its holder may already read, so forging one gains nothing, and both runtimes
//! verify it without sharing a secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::InputError;

/// Longer than any cursor this module makes; anything longer is refused unread.
pub const MAX_CURSOR_CHARS: usize = 512;
const VERSION: u8 = 1;

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
    pub fn encode(&self, binding: &str) -> String {
        let body = serde_json::json!([VERSION, self.page, self.value, self.id]).to_string();
        let check = check(binding, &body);
        URL_SAFE_NO_PAD.encode(format!("{check}{body}"))
    }

    pub fn decode(raw: &str, binding: &str) -> Result<Self, InputError> {
        let invalid = || {
            InputError::new(
                "invalid_cursor",
                "cursor is malformed, altered, or made for another list; start again without it",
            )
        };
        if raw.is_empty() || raw.len() > MAX_CURSOR_CHARS {
            return Err(invalid());
        }
        let text = URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(invalid)?;
        let (digest, body) = text.split_at_checked(CHECK_CHARS).ok_or_else(invalid)?;
        if digest != check(binding, body) {
            return Err(invalid());
        }
        let (version, page, value, id): (u8, u32, String, i64) =
            serde_json::from_str(body).map_err(|_| invalid())?;
        if version != VERSION || page < 2 {
            return Err(invalid());
        }
        Ok(Self { page, value, id })
    }
}

const CHECK_CHARS: usize = 16;

/// 64 bits of SHA-256 over the list and the position, as hex.
fn check(binding: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(binding.as_bytes());
    h.update([0]);
    h.update(body.as_bytes());
    h.finalize()[..CHECK_CHARS / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        let raw = cursor().encode("list-a");
        assert_eq!(Cursor::decode(&raw, "list-a"), Ok(cursor()));
    }

    #[test]
    fn a_cursor_of_another_list_is_refused() {
        let raw = cursor().encode("list-a");
        assert_eq!(
            Cursor::decode(&raw, "list-b").map_err(|e| e.code),
            Err("invalid_cursor")
        );
    }

    #[test]
    fn any_altered_character_is_refused() {
        let raw = cursor().encode("list-a");
        for i in 0..raw.len() {
            let mut bytes = raw.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).expect("ascii");
            if altered != raw {
                assert!(Cursor::decode(&altered, "list-a").is_err(), "position {i}");
            }
        }
    }

    #[test]
    fn garbage_and_oversized_cursors_are_refused() {
        for raw in ["", "!!", "abc", &"A".repeat(MAX_CURSOR_CHARS + 1)] {
            assert!(Cursor::decode(raw, "list-a").is_err(), "{raw}");
        }
    }
}
