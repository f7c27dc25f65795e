//! Extractors whose rejections are the API's 400 JSON instead of axum's plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::Error;

/// A JSON body; malformed, mistyped, unknown-field or oversized bodies are 4xx JSON.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(_)) => Err(Error::bad_request(
                "body_too_large",
                "the request body is over 64 KiB",
            )
            .into_response()),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Error::bad_request(
                "invalid_content_type",
                "send Content-Type: application/json",
            )
            .into_response()),
            Err(e) => Err(Error::bad_request("invalid_json", e.body_text()).into_response()),
        }
    }
}

/// The decoded query string as pairs, in order, duplicates kept (so they can be refused).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|_| Error::bad_request("invalid_query", "the query string is not valid"))
    }
}

impl QueryPairs {
    /// The value of `name`, refusing a repeated one.
    pub fn single(&self, name: &str) -> Result<Option<&str>, Error> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(Error::bad_request(
                "duplicate_parameter",
                format!("query parameter {name:?} is given more than once"),
            ));
        }
        Ok(first)
    }

    /// A boolean flag, `true` when absent.
    pub fn flag(&self, name: &str) -> Result<bool, Error> {
        match self.single(name)? {
            None | Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(_) => Err(Error::bad_request(
                "invalid_parameter",
                format!("{name} must be true or false"),
            )),
        }
    }
}
