//! The origin's one error type, mapped to a status and API.md's error JSON in one place.
//! Internal causes are logged once here and never sent to clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared::InputError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] InputError),
    /// One body for every authentication failure, so a probe learns nothing from it.
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    /// A dependency is down and nothing cached can stand in.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    /// Over a rate limit; the value is the seconds until a retry can succeed.
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    #[error("the request took too long")]
    Timeout,
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Input(e) => (StatusCode::BAD_REQUEST, e.code),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Database(e) if is_outage(e) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Database(_) | Self::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    /// Whether a dependency is down (as opposed to the request or the code being wrong):
    /// the cases where a stale value is better than an error.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Timeout => true,
            Self::Database(e) => is_outage(e),
            _ => false,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::Input(InputError::new(code, message))
    }

    /// A write's database error, where a foreign-key violation means a board or column
    /// outside the workspace.
    pub fn reference(e: sqlx::Error) -> Self {
        match e.as_database_error() {
            Some(db) if db.is_foreign_key_violation() => Self::bad_request(
                "invalid_reference",
                "board_id and column_id must name a board of this workspace and a column of that board",
            ),
            _ => e.into(),
        }
    }

    /// A settings save's database error: the workspace may not exist.
    pub fn settings(e: sqlx::Error) -> Self {
        match e.as_database_error() {
            Some(d) if d.is_foreign_key_violation() => Self::NotFound("workspace"),
            _ => e.into(),
        }
    }
}

/// Text Postgres cannot store (a NUL, or bytes outside the encoding) is the request's
/// fault whatever field carried it, so it answers 400 even where validation missed it.
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        let unstorable = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| matches!(code.as_ref(), "22P05" | "22021"));
        if unstorable {
            Self::bad_request("invalid_text", "text must be UTF-8 without NUL characters")
        } else {
            Self::Database(e)
        }
    }
}

/// Whether a database error means "Postgres is unreachable" rather than "the query is wrong".
pub fn is_outage(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// The error envelope of API.md, the one shape every failure answers with.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `invalid_page`, `unauthorized`, `rate_limited`.
    pub code: &'static str,
    /// For people; never an internal cause.
    pub message: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Database(_) if status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(error = %self, "database unavailable");
                "the database is unavailable".to_owned()
            }
            Self::Database(_) | Self::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                "an internal error occurred".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            success: false,
            error: ErrorDetail { code, message },
        };
        let retry_after = match &self {
            Self::RateLimited(secs) => Some(secs.max(&1).to_string()),
            _ => (status == StatusCode::SERVICE_UNAVAILABLE).then(|| "5".to_owned()),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// The failures any authenticated endpoint can answer with, each in the error envelope.
#[derive(utoipa::IntoResponses)]
pub enum Failures {
    /// Bad input: the code names the field.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No valid token or internal key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Not this caller's workspace, or not an admin.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Over a rate limit; `Retry-After` says when to come back.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// A dependency is down and nothing cached stands in; `Retry-After` says when to retry.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}
