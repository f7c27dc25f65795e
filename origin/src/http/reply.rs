//! Success responses in API.md's envelope. Authenticated data is never for shared
//! caches: every answer here says `Cache-Control: private, no-store`.

use std::cell::RefCell;
use std::fmt::Write;
use std::time::Instant;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use shared::model::CacheStatus;
use shared::splice::with_fields;

use crate::cache::entry::now_ms;
use crate::cache::Answer;

const NO_STORE: HeaderValue = HeaderValue::from_static("private, no-store");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

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

thread_local! {
    /// The last two instants formatted on this thread: a hot key's `_timestamp` and the
    /// current millisecond, each shared by the many answers of that millisecond.
    static FORMATTED: RefCell<[(i64, String); 2]> =
        const { RefCell::new([(i64::MIN, String::new()), (i64::MIN, String::new())]) };
}

fn push_rfc3339(out: &mut String, ms: i64) {
    FORMATTED.with(|f| {
        let mut f = f.borrow_mut();
        if let Some((_, text)) = f.iter().find(|(at, _)| *at == ms) {
            out.push_str(text);
            return;
        }
        let text = rfc3339(ms);
        out.push_str(&text);
        f.swap(0, 1);
        f[0] = (ms, text);
    });
}

pub fn elapsed_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// The fields that describe how one read was served (API.md's `_cache`, `_source`, ...),
/// written as JSON members. Written by hand: every value is a number, a boolean or a
/// known ASCII word, so nothing needs escaping, and a serializer's generality is most of
/// what building an L1 hit's answer costs.
fn served_fields(answer: &Answer, now: i64, response_time_ms: f64, cache_enabled: bool) -> String {
    let fresh = matches!(answer.status, CacheStatus::Hit | CacheStatus::Miss);
    let cached = matches!(answer.status, CacheStatus::Hit | CacheStatus::Stale);
    let ttl = if fresh {
        answer.entry.remaining_secs(now)
    } else {
        0
    };
    let (source, status) = (answer.source.as_str(), answer.status.as_str());
    let stale = answer.status == CacheStatus::Stale;
    let mut f = String::with_capacity(320);
    let _ = write!(
        f,
        r#""_cache":{{"status":"{status}","source":"{source}","ttl":{ttl},"edge_location":null,"response_time_ms":{response_time_ms}}},"_cached":{cached},"_stale":{stale},"_source":"{source}","_cacheEnabled":{cache_enabled},"_responseTimeMs":{response_time_ms},"_timestamp":""#
    );
    push_rfc3339(&mut f, answer.entry.computed_at_ms);
    f.push_str(r#"","_retrievedAt":""#);
    push_rfc3339(&mut f, now);
    f.push('"');
    f
}

/// Serves a read-through answer with where it came from, both in the body
/// (`_source`, `_cached`, `_cache`, ...) and in `X-Cache-*` headers.
pub fn answer(answer: &Answer, started: Instant, cache_enabled: bool) -> Response {
    let fields = served_fields(answer, now_ms(), elapsed_ms(started), cache_enabled);
    let mut response = with_fields(&answer.entry.body, &fields).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, JSON);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;
    use shared::model::Source;

    use super::*;
    use crate::cache::entry::Entry;

    #[tokio::test]
    async fn an_answer_carries_the_data_and_how_it_was_served_as_json() {
        for (status, source) in [
            (CacheStatus::Hit, Source::Memory),
            (CacheStatus::Stale, Source::RedisCache),
            (CacheStatus::Bypass, Source::Database),
        ] {
            let entry = Arc::new(Entry::new(r#"{"open":3}"#.to_owned(), 60, None));
            let served = Answer {
                entry: entry.clone(),
                source,
                status,
            };
            let response = answer(&served, Instant::now(), true);
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body");
            let v: Value = serde_json::from_slice(&body).expect("an answer is JSON");
            let data = &v["data"];
            assert_eq!(data["open"], 3);
            assert_eq!(data["_source"], source.as_str());
            assert_eq!(data["_cache"]["status"], status.as_str());
            assert_eq!(data["_cache"]["source"], source.as_str());
            assert_eq!(data["_cached"], status != CacheStatus::Bypass);
            assert_eq!(data["_stale"], status == CacheStatus::Stale);
            assert_eq!(data["_cacheEnabled"], true);
            assert!(data["_responseTimeMs"].is_number());
            let ttl = data["_cache"]["ttl"].as_u64().expect("ttl");
            assert_eq!(ttl > 0, status == CacheStatus::Hit, "{ttl}");
            assert_eq!(data["_timestamp"], rfc3339(entry.computed_at_ms).as_str());
            assert!(data["_retrievedAt"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')));
        }
    }
}
