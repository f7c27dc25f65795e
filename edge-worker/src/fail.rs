//! A failure the worker answers as API.md's error JSON.

/// The status, stable code and message of an error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Fail {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// One answer for every authentication failure, so a probe learns nothing from it.
    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "authentication required")
    }
}

impl From<shared::InputError> for Fail {
    fn from(e: shared::InputError) -> Self {
        Self::new(400, e.code, e.message)
    }
}

pub type Result<T> = std::result::Result<T, Fail>;
