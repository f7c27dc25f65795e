//! Message history (API.md "Message history"): conversations and their messages as JSON,
//! the two list queries parsed and validated once, and what a posted or edited message
//! may hold. A message page is newest first and keyed by message id: a cursor names the
//! oldest message a page showed, so the next page is an index range scan at any depth.

use serde::{Deserialize, Serialize};

use crate::cursor::{Cursor, CursorKey};
use crate::query::parse_bounded;
use crate::{ConversationId, InputError, WorkspaceId};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;
pub const MAX_BODY_CHARS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: i64,
    pub workspace_id: String,
    pub contact_id: i64,
    pub status: String,
    pub created_at: String,
    pub last_message_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    pub conversation_id: i64,
    pub sender_type: String,
    pub sender_id: Option<String>,
    /// `None` once deleted: the message stays in its place as a tombstone.
    pub body: Option<String>,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub edited_by: Option<String>,
    pub deleted_at: Option<String>,
    pub deleted_by: Option<String>,
}

/// `pagination` of a message page or a conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorPagination {
    pub limit: u32,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

impl CursorPagination {
    /// More follow exactly when there is a next cursor.
    pub fn new(limit: u32, next_cursor: Option<String>) -> Self {
        Self {
            limit,
            has_more: next_cursor.is_some(),
            next_cursor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub pagination: CursorPagination,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPage {
    pub conversations: Vec<Conversation>,
    pub pagination: CursorPagination,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderType {
    Contact,
    Agent,
    Bot,
}

impl SenderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::Agent => "agent",
            Self::Bot => "bot",
        }
    }
}

/// A message body as stored: 1 to `MAX_BODY_CHARS` characters, not only blanks, and no
/// NUL, which Postgres text cannot hold.
pub fn check_body(body: &str) -> Result<(), InputError> {
    if body.trim().is_empty() {
        return Err(InputError::new("invalid_body", "body must not be empty"));
    }
    if body.contains('\0') {
        return Err(InputError::new(
            "invalid_body",
            "body must not contain NUL characters",
        ));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(InputError::new(
            "invalid_body",
            format!("body must be at most {MAX_BODY_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The decoded pairs this module reads, each at most once; unknown ones are ignored.
pub(crate) fn known_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    known: &[&'static str],
) -> Result<Vec<(&'static str, &'a str)>, InputError> {
    let mut found: Vec<(&'static str, &'a str)> = Vec::new();
    for (name, value) in pairs {
        let Some(name) = known.iter().find(|k| **k == name) else {
            continue;
        };
        if found.iter().any(|(n, _)| n == name) {
            return Err(InputError::new(
                "duplicate_parameter",
                format!("query parameter {name:?} is given more than once"),
            ));
        }
        found.push((name, value));
    }
    Ok(found)
}

/// A page size of any message list (pages, conversations, searches): 1 to `MAX_LIMIT`.
pub(crate) fn limit(raw: &str) -> Result<u32, InputError> {
    parse_bounded(raw, "limit", "invalid_limit", MAX_LIMIT)
}

/// A page of one conversation's messages: the newest `limit`, or the newest `limit`
/// older than the cursor's message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageQuery {
    pub conversation: ConversationId,
    pub limit: u32,
    pub before: Option<Cursor>,
}

impl MessageQuery {
    /// Parses `limit` and `before`; a `before` must have been made for this conversation.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        ws: &WorkspaceId,
        conversation: ConversationId,
        key: &CursorKey,
    ) -> Result<Self, InputError> {
        let mut q = Self {
            conversation,
            limit: DEFAULT_LIMIT,
            before: None,
        };
        for (name, value) in known_pairs(pairs, &["limit", "before"])? {
            match name {
                "limit" => q.limit = limit(value)?,
                _ => q.before = Some(Cursor::decode(value, key, &q.binding(ws))?),
            }
        }
        Ok(q)
    }

    /// A cursor is bound to the conversation, not to a page size.
    fn binding(&self, ws: &WorkspaceId) -> String {
        format!("messages\0{ws}\0{}", self.conversation)
    }

    /// Whether this is the head page, the only one a new message changes.
    pub fn is_head(&self) -> bool {
        self.before.is_none()
    }

    /// The id the page's messages are older than, if any.
    pub fn before_id(&self) -> Option<i64> {
        self.before.as_ref().map(|c| c.id)
    }

    /// The cursor of the page after this one, which ends on message `last`.
    pub fn next_cursor(&self, key: &CursorKey, ws: &WorkspaceId, last: i64) -> String {
        let depth = self.before.as_ref().map_or(1, |c| c.page);
        Cursor {
            page: depth.saturating_add(1),
            value: String::new(),
            id: last,
        }
        .encode(key, &self.binding(ws))
    }
}

/// Conversation status, as stored.
pub const STATUSES: [&str; 2] = ["open", "resolved"];

/// A page of a workspace's conversations, the most recent message first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationQuery {
    pub contact: Option<i64>,
    pub status: Option<&'static str>,
    pub limit: u32,
    /// After this conversation (its `last_message_at` as the store compares it, and id).
    pub after: Option<Cursor>,
}

impl ConversationQuery {
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        ws: &WorkspaceId,
        key: &CursorKey,
    ) -> Result<Self, InputError> {
        let mut q = Self {
            contact: None,
            status: None,
            limit: DEFAULT_LIMIT,
            after: None,
        };
        let mut cursor = None;
        for (name, value) in known_pairs(pairs, &["contact_id", "status", "limit", "cursor"])? {
            match name {
                "contact_id" => q.contact = Some(crate::ContactId::parse(value)?.0),
                "status" => {
                    q.status =
                        Some(STATUSES.into_iter().find(|s| *s == value).ok_or_else(|| {
                            InputError::new("invalid_status", "status must be open or resolved")
                        })?)
                }
                "limit" => q.limit = limit(value)?,
                _ => cursor = Some(value),
            }
        }
        if let Some(raw) = cursor {
            q.after = Some(Cursor::decode_timed(raw, key, &q.binding(ws))?);
        }
        Ok(q)
    }

    fn binding(&self, ws: &WorkspaceId) -> String {
        serde_json::to_string(&("conversations", ws.as_str(), self.contact, self.status))
            .unwrap_or_default()
    }

    /// Everything that selects the page, as an unambiguous string: the input of its key.
    pub fn canonical(&self) -> String {
        let after = self.after.as_ref().map(|c| (c.page, &c.value, c.id));
        serde_json::to_string(&(self.contact, self.status, self.limit, after)).unwrap_or_default()
    }

    /// The cursor of the page after this one, which ends on a conversation whose last
    /// message is at `at` (as the store compares it).
    pub fn next_cursor(&self, key: &CursorKey, ws: &WorkspaceId, at: String, id: i64) -> String {
        let depth = self.after.as_ref().map_or(1, |c| c.page);
        Cursor {
            page: depth.saturating_add(1),
            value: at,
            id,
        }
        .encode(key, &self.binding(ws))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::for_tests()
    }

    fn ws(id: &str) -> WorkspaceId {
        WorkspaceId::parse(id).expect("ws")
    }

    #[test]
    fn a_message_cursor_works_only_for_its_conversation_and_workspace() {
        let (a, c) = (ws("a"), ConversationId(7));
        let head = MessageQuery::from_pairs([("limit", "20")], &a, c, &key()).expect("head");
        assert!(head.is_head());
        let next = head.next_cursor(&key(), &a, 1234);
        let second = MessageQuery::from_pairs([("before", next.as_str())], &a, c, &key())
            .expect("second page");
        assert_eq!(
            (second.before_id(), second.limit),
            (Some(1234), DEFAULT_LIMIT)
        );
        let refused = |ws: &WorkspaceId, c| {
            MessageQuery::from_pairs([("before", next.as_str())], ws, c, &key()).map_err(|e| e.code)
        };
        assert_eq!(refused(&ws("b"), c), Err("invalid_cursor"));
        assert_eq!(refused(&a, ConversationId(8)), Err("invalid_cursor"));
    }

    #[test]
    fn bad_message_queries_are_refused() {
        let (a, c) = (ws("a"), ConversationId(7));
        let code = |pairs: &[(&str, &str)]| {
            MessageQuery::from_pairs(pairs.iter().copied(), &a, c, &key()).map_err(|e| e.code)
        };
        assert_eq!(code(&[("limit", "0")]), Err("invalid_limit"));
        assert_eq!(code(&[("limit", "101")]), Err("invalid_limit"));
        assert_eq!(code(&[("before", "x")]), Err("invalid_cursor"));
        assert_eq!(
            code(&[("limit", "5"), ("limit", "6")]),
            Err("duplicate_parameter")
        );
        assert!(code(&[("unknown", "1")]).is_ok());
    }

    #[test]
    fn a_conversation_cursor_is_bound_to_its_filters() {
        let a = ws("a");
        let q = ConversationQuery::from_pairs([("status", "open")], &a, &key()).expect("query");
        let next = q.next_cursor(&key(), &a, "2026-01-01T00:00:00.000001Z".into(), 9);
        let ok = ConversationQuery::from_pairs([("status", "open"), ("cursor", &next)], &a, &key())
            .expect("next page");
        assert_eq!(ok.after.map(|c| c.id), Some(9));
        let other =
            ConversationQuery::from_pairs([("status", "resolved"), ("cursor", &next)], &a, &key());
        assert_eq!(other.map_err(|e| e.code), Err("invalid_cursor"));
        let bad = ConversationQuery::from_pairs([("status", "x")], &a, &key());
        assert_eq!(bad.map_err(|e| e.code), Err("invalid_status"));
    }

    #[test]
    fn bodies_must_hold_something_and_not_too_much() {
        assert!(check_body("hi").is_ok());
        assert!(check_body(&"é".repeat(MAX_BODY_CHARS)).is_ok());
        for bad in ["", "  \n", "a\0b", &"x".repeat(MAX_BODY_CHARS + 1)] {
            assert_eq!(check_body(bad).map_err(|e| e.code), Err("invalid_body"));
        }
    }
}
