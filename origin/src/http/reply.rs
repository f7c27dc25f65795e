//! Success responses in API.md's envelope. Authenticated data is never for shared
//! caches: every answer here says `Cache-Control: private, no-store`.

use std::time::Instant;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use shared::model::{CacheMeta, CacheStatus};
use shared::splice::{append_fields, to_fields};

use crate::cache::entry::now_ms;
use crate::cache::Answer;

const NO_STORE: HeaderValue = HeaderValue::from_static("private, no-store");

pub fn ok(data: impl Serialize) -> Response {
    with_status(StatusCode::OK, data)
}

pub fn with_status(status: StatusCode, data: impl Serialize) -> Response {
    let mut response = (status, Json(json!({"success": true, "data": data}))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, NO_STORE);
    response
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn elapsed_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// Serves a read-through answer with where it came from, both in the body
/// (`_source`, `_cached`, `_cache`, ...) and in `X-Cache-*` headers.
pub fn answer(answer: &Answer, started: Instant, cache_enabled: bool) -> Response {
    let now = now_ms();
    let fresh = matches!(answer.status, CacheStatus::Hit | CacheStatus::Miss);
    let response_time_ms = elapsed_ms(started);
    let meta = CacheMeta {
        status: answer.status,
        source: answer.source,
        ttl: if fresh {
            answer.entry.remaining_secs(now)
        } else {
            0
        },
        edge_location: None,
        response_time_ms,
    };
    let fields = to_fields(&json!({
        "_cached": matches!(answer.status, CacheStatus::Hit | CacheStatus::Stale),
        "_stale": answer.status == CacheStatus::Stale,
        "_source": answer.source,
        "_timestamp": rfc3339(answer.entry.computed_at_ms),
        "_retrievedAt": rfc3339(now),
        "_responseTimeMs": response_time_ms,
        "_cacheEnabled": cache_enabled,
        "_cache": meta,
    }));
    let data = append_fields(&answer.entry.body, &fields);
    let body = format!(r#"{{"success":true,"data":{data}}}"#);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    headers.insert(
        HeaderName::from_static("x-cache-status"),
        HeaderValue::from_static(answer.status.as_str()),
    );
    headers.insert(
        HeaderName::from_static("x-cache-source"),
        HeaderValue::from_static(answer.source.as_str()),
    );
    response
}
