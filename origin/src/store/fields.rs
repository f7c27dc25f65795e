//! The writable fields of a contact and their validation, the same for every store.

use serde::Deserialize;
use shared::{InputError, UserId};

/// Present-and-null (clear the field) differs from absent (leave it) in a PATCH.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The writable fields of a contact; every one is optional so that one type serves
/// create (with `board_id`, `column_id` and `name` required), PATCH and move.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactFields {
    pub board_id: Option<i64>,
    pub column_id: Option<i64>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub company: Option<Option<String>>,
    pub status: Option<String>,
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub assigned_to: Option<Option<String>>,
    pub needs_response: Option<bool>,
    pub follow_up: Option<bool>,
    pub favorite: Option<bool>,
    pub archived: Option<bool>,
    pub sentiment: Option<String>,
    pub custom_attributes: Option<serde_json::Value>,
}

/// A move between columns (and maybe boards).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub column_id: i64,
    pub board_id: Option<i64>,
}

impl From<Move> for ContactFields {
    fn from(m: Move) -> Self {
        Self {
            board_id: m.board_id,
            column_id: Some(m.column_id),
            ..Self::default()
        }
    }
}

fn one_of(name: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), InputError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(InputError::new(
            "invalid_field",
            format!("{name} must be one of: {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// A text field of at most `max` characters, three bytes each on average (a contact's
/// name, e-mail and company are words of its search document, which the creation-time
/// sort index carries in entries of at most 2,704 bytes), and no NUL, which Postgres text
/// cannot hold.
fn text(name: &str, value: Option<&str>, max: usize) -> Result<(), InputError> {
    match value {
        Some(v) if v.chars().count() > max || v.len() > 3 * max => Err(InputError::new(
            "invalid_field",
            format!(
                "{name} must be at most {max} characters and {} bytes",
                3 * max
            ),
        )),
        Some(v) if v.contains('\0') => Err(InputError::new(
            "invalid_field",
            format!("{name} must not contain NUL characters"),
        )),
        _ => Ok(()),
    }
}

/// Whether a JSON value holds a NUL in a string or a key, which jsonb refuses.
fn holds_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// The value of a nullable field when it is set to something.
fn inner(v: &Option<Option<String>>) -> Option<&str> {
    v.as_ref().and_then(|v| v.as_deref())
}

impl ContactFields {
    pub fn validate(&self) -> Result<(), InputError> {
        if let Some(name) = &self.name {
            if name.trim().is_empty() {
                return Err(InputError::new("invalid_field", "name must not be blank"));
            }
        }
        text("name", self.name.as_deref(), 200)?;
        text("email", inner(&self.email), 320)?;
        text("phone", inner(&self.phone), 64)?;
        text("company", inner(&self.company), 200)?;
        if inner(&self.email).is_some_and(|e| !e.contains('@')) {
            return Err(InputError::new("invalid_field", "email must contain '@'"));
        }
        one_of("status", self.status.as_deref(), &["open", "closed"])?;
        one_of(
            "priority",
            self.priority.as_deref(),
            &["high", "medium", "low"],
        )?;
        one_of(
            "sentiment",
            self.sentiment.as_deref(),
            &["positive", "neutral", "negative"],
        )?;
        if let Some(user) = inner(&self.assigned_to) {
            UserId::parse(user)?;
        }
        if let Some(attrs) = &self.custom_attributes {
            if !attrs.is_object() || attrs.to_string().len() > 16 * 1024 {
                return Err(InputError::new(
                    "invalid_field",
                    "custom_attributes must be a JSON object of at most 16 KiB",
                ));
            }
            if holds_nul(attrs) {
                return Err(InputError::new(
                    "invalid_field",
                    "custom_attributes must not contain NUL characters",
                ));
            }
        }
        Ok(())
    }

    /// The board, column and name a new contact must have.
    pub fn required(&self) -> Result<(i64, i64, &str), InputError> {
        match (self.board_id, self.column_id, &self.name) {
            (Some(board), Some(column), Some(name)) => Ok((board, column, name.trim())),
            _ => Err(InputError::new(
                "invalid_field",
                "board_id, column_id and name are required",
            )),
        }
    }

    /// A move to another board than `from` must say which of its columns.
    pub fn check_move(&self, from: i64) -> Result<(), InputError> {
        if self.board_id.is_some_and(|b| b != from) && self.column_id.is_none() {
            return Err(InputError::new(
                "invalid_field",
                "a move to another board needs its column_id",
            ));
        }
        Ok(())
    }
}
