//! Identifiers parsed once at the boundary. A `WorkspaceId` can never hold the
//! characters the cache-key grammar uses as separators, which is what keeps keys injective.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::InputError;

const MAX_TEXT_ID: usize = 64;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn parse_text_id(raw: &str, what: &'static str, code: &'static str) -> Result<String, InputError> {
    if raw.is_empty() || raw.len() > MAX_TEXT_ID || !raw.chars().all(is_id_char) {
        return Err(InputError::new(
            code,
            format!("{what} must be 1 to {MAX_TEXT_ID} characters of A-Z, a-z, 0-9, '_' or '-'"),
        ));
    }
    Ok(raw.to_owned())
}

macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident, $what:literal, $code:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, InputError> {
                parse_text_id(raw, $what, $code).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InputError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A tenant. Compared exactly: `15213`, ` 15213` and `15213,15214` are different or invalid.
    WorkspaceId, "workspace id", "invalid_workspace_id"
);
text_id!(
    /// The user a request acts for; `assignedToMe` counts and filters depend on it.
    UserId, "user id", "invalid_user_id"
);

fn parse_positive(raw: &str, what: &'static str, code: &'static str) -> Result<i64, InputError> {
    let digits_only = !raw.is_empty() && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit());
    match raw.parse::<i64>() {
        Ok(n) if n > 0 && digits_only => Ok(n),
        _ => Err(InputError::new(
            code,
            format!("{what} must be a positive integer"),
        )),
    }
}

macro_rules! numeric_id {
    ($name:ident, $what:literal, $code:literal) => {
        #[doc = concat!("A ", $what, ": a positive integer, parsed from digits only (no sign, no spaces).")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, InputError> {
                parse_positive(raw, $what, $code).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

numeric_id!(BoardId, "board id", "invalid_board_id");
numeric_id!(ContactId, "contact id", "invalid_contact_id");
numeric_id!(ConversationId, "conversation id", "invalid_conversation_id");
numeric_id!(MessageId, "message id", "invalid_message_id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_ids_with_separators_or_padding_are_rejected() {
        for bad in [
            "",
            " 15213",
            "15213 ",
            "15213,15214",
            "a:b",
            "{x}",
            "a*",
            "é",
            &"x".repeat(65),
        ] {
            assert!(WorkspaceId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            WorkspaceId::parse("ws_15213-a").map(|w| w.0),
            Ok("ws_15213-a".into())
        );
    }

    #[test]
    fn board_ids_must_be_plain_positive_digits() {
        for bad in [
            "",
            "0",
            "-1",
            "+5",
            "1.5",
            "abc",
            " 7",
            "99999999999999999999",
        ] {
            assert!(BoardId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(BoardId::parse("123"), Ok(BoardId(123)));
    }
}
