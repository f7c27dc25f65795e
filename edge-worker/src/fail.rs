//! A failure the worker answers as API.md's error JSON.

/// The status, stable code and message of an error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After` (a 503 without one says 5).
    pub retry_after: Option<u64>,
}

impl Fail {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The origin shed the request (its 429), with how long it asked callers to wait.
    pub fn shed(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                429,
                "rate_limited",
                "too many requests; retry after the time given",
            )
        }
    }

    /// Whether what KV holds should stand in: the origin failed or shed the request.
    pub fn origin_unable(&self) -> bool {
        self.status >= 500 || self.status == 429
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
