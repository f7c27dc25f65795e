//! Success responses in API.md's envelope. Authenticated data is never for shared
//! caches: every answer here says `Cache-Control: private, no-store`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper::body::{Frame, SizeHint};
use serde::Serialize;
use serde_json::json;
use shared::model::{CacheStatus, Source};

use crate::cache::entry::now_ms;
use crate::cache::Answer;
use crate::rfc3339;

use super::REQUEST_ID;

const NO_STORE: HeaderValue = HeaderValue::from_static("private, no-store");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");
const CACHE_SOURCE: HeaderName = HeaderName::from_static("x-cache-source");

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

pub fn elapsed_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// `micros` as milliseconds with at most three decimals, as `elapsed_ms` prints.
fn push_millis(out: &mut String, micros: u64) {
    let mut digits = itoa::Buffer::new();
    out.push_str(digits.format(micros / 1000));
    let mut frac = micros % 1000;
    if frac == 0 {
        return;
    }
    out.push('.');
    let mut width = 3;
    while frac.is_multiple_of(10) {
        frac /= 10;
        width -= 1;
    }
    for _ in digits.format(frac).len()..width {
        out.push('0');
    }
    out.push_str(digits.format(frac));
}

/// What every answer of one status and source writes alike, built once: its headers
/// (cloning a built map copies it without hashing a name) and the runs of its fields
/// that do not change from one answer to the next.
struct Alike {
    /// Without and with a request id: a clone has no room for another header.
    headers: [HeaderMap; 2],
    /// `"_cache":{"status":...,"ttl":`.
    opening: String,
    /// From `},"_cached":` to `"_responseTimeMs":`, when the cache is disabled and enabled.
    middle: [String; 2],
}

impl Alike {
    fn of(status: CacheStatus, source: Source) -> &'static Self {
        const SOURCES: usize = Source::ALL.len();
        static BUILT: [[OnceLock<Alike>; SOURCES]; 4] =
            [const { [const { OnceLock::new() }; SOURCES] }; 4];
        let row = match status {
            CacheStatus::Hit => 0,
            CacheStatus::Miss => 1,
            CacheStatus::Stale => 2,
            CacheStatus::Bypass => 3,
        };
        BUILT[row][source.index()].get_or_init(|| Self::build(status, source))
    }

    fn build(status: CacheStatus, source: Source) -> Self {
        let headers = [false, true].map(|with_id| {
            let mut headers = HeaderMap::with_capacity(8);
            headers.insert(header::CONTENT_TYPE, JSON);
            headers.insert(header::CACHE_CONTROL, NO_STORE);
            headers.insert(CACHE_STATUS, HeaderValue::from_static(status.as_str()));
            headers.insert(CACHE_SOURCE, HeaderValue::from_static(source.as_str()));
            if with_id {
                headers.insert(REQUEST_ID, HeaderValue::from_static(""));
            }
            headers
        });
        let (source, cached, stale) = (
            source.as_str(),
            matches!(status, CacheStatus::Hit | CacheStatus::Stale),
            status == CacheStatus::Stale,
        );
        let status = status.as_str();
        Self {
            headers,
            opening: format!(r#""_cache":{{"status":"{status}","source":"{source}","ttl":"#),
            middle: [false, true].map(|enabled| {
                format!(
                    r#"}},"_cached":{cached},"_stale":{stale},"_source":"{source}","_cacheEnabled":{enabled},"_responseTimeMs":"#
                )
            }),
        }
    }

    /// The headers, with `request_id` if any.
    fn headers(&self, request_id: Option<HeaderValue>) -> HeaderMap {
        let mut headers = self.headers[usize::from(request_id.is_some())].clone();
        if let (Some(id), Some(slot)) = (request_id, headers.get_mut(REQUEST_ID)) {
            *slot = id;
        }
        headers
    }
}

/// The fields that describe how one read was served (API.md's `_cache`, `_source`, ...),
/// written as JSON members. Written by hand: every value is a number, a boolean or a
/// known ASCII word, so nothing needs escaping, and a formatter's generality is most of
/// what building an L1 hit's answer costs.
fn push_served_fields(
    f: &mut String,
    alike: &Alike,
    answer: &Answer,
    now: i64,
    micros: u64,
    cache_enabled: bool,
) {
    let fresh = matches!(answer.status, CacheStatus::Hit | CacheStatus::Miss);
    let ttl = if fresh {
        answer.entry.remaining_secs(now)
    } else {
        0
    };
    let mut millis = String::with_capacity(24);
    push_millis(&mut millis, micros);
    for part in [
        &alike.opening,
        itoa::Buffer::new().format(ttl),
        r#","edge_location":null,"response_time_ms":"#,
        &millis,
        &alike.middle[usize::from(cache_enabled)],
        &millis,
        r#","_timestamp":""#,
    ] {
        f.push_str(part);
    }
    rfc3339::push(f, &answer.entry.computed_at);
    f.push_str(r#"","_retrievedAt":""#);
    rfc3339::push_now(f, now);
    f.push('"');
}

/// Serves a read-through answer with where it came from, both in the body
/// (`_source`, `_cached`, `_cache`, ...) and in `X-Cache-*` headers.
pub fn answer(answer: &Answer, started: Instant, cache_enabled: bool) -> Response {
    answer_at(answer, started, now_ms(), cache_enabled, None)
}

/// `answer`, retrieved at `now_ms` (since the epoch) by a read that began at `started`,
/// with `request_id` when the caller sets it (the router's layer sets it otherwise).
pub fn answer_at(
    answer: &Answer,
    started: Instant,
    now_ms: i64,
    cache_enabled: bool,
    request_id: Option<HeaderValue>,
) -> Response {
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let alike = Alike::of(answer.status, answer.source);
    let (head, tail) = answer
        .entry
        .served(|f| push_served_fields(f, alike, answer, now_ms, micros, cache_enabled));
    let mut response = Response::new(Body::new(Chunks([Some(head), Some(tail)])));
    *response.headers_mut() = alike.headers(request_id);
    response
}

/// A body sent in the chunks it is held in (an entry's shared head, an answer's tail),
/// its length known up front.
struct Chunks([Option<Bytes>; 2]);

impl HttpBody for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.0.iter_mut().find_map(Option::take);
        Poll::Ready(next.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    fn size_hint(&self) -> SizeHint {
        let len = self.0.iter().flatten().map(Bytes::len).sum::<usize>();
        SizeHint::with_exact(len as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::*;
    use crate::cache::entry::Entry;

    #[test]
    fn milliseconds_are_written_as_a_float_of_them_prints() {
        for micros in (0..3000).chain([9_999, 10_000, 123_456, 1_000_001, u64::from(u32::MAX)]) {
            let mut written = String::new();
            push_millis(&mut written, micros);
            assert_eq!(written, (micros as f64 / 1000.0).to_string(), "{micros}");
        }
    }

    #[tokio::test]
    async fn an_answer_carries_the_data_and_how_it_was_served_as_json() {
        for (status, source, enabled) in [
            (CacheStatus::Hit, Source::Memory, true),
            (CacheStatus::Stale, Source::RedisCache, true),
            (CacheStatus::Bypass, Source::Database, false),
            (CacheStatus::Miss, Source::Database, true),
        ] {
            let entry = Arc::new(Entry::new(r#"{"open":3}"#.to_owned(), 60, None));
            let served = Answer {
                entry: entry.clone(),
                source,
                status,
            };
            let response = answer(&served, Instant::now(), enabled);
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body");
            let v: Value = serde_json::from_slice(&body).expect("an answer is JSON");
            let data = &v["data"];
            assert_eq!(data["open"], 3);
            assert_eq!(data["_source"], source.as_str());
            assert_eq!(data["_cache"]["status"], status.as_str());
            assert_eq!(data["_cache"]["source"], source.as_str());
            let cached = matches!(status, CacheStatus::Hit | CacheStatus::Stale);
            assert_eq!(data["_cached"], cached);
            assert_eq!(data["_stale"], status == CacheStatus::Stale);
            assert_eq!(data["_cacheEnabled"], enabled);
            assert!(data["_responseTimeMs"].is_number());
            assert_eq!(data["_responseTimeMs"], data["_cache"]["response_time_ms"]);
            assert_eq!(data["_cache"]["edge_location"], Value::Null);
            let ttl = data["_cache"]["ttl"].as_u64().expect("ttl");
            let fresh = matches!(status, CacheStatus::Hit | CacheStatus::Miss);
            assert_eq!(ttl > 0, fresh, "{ttl}");
            let computed = rfc3339::chrono_text(entry.computed_at_ms);
            assert_eq!(data["_timestamp"], computed.as_str());
            assert!(data["_retrievedAt"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')));
        }
    }

    #[test]
    fn an_answer_has_its_own_headers_and_the_request_id_it_is_given() {
        let entry = Arc::new(Entry::new("{}".to_owned(), 60, None));
        for status in [CacheStatus::Hit, CacheStatus::Bypass] {
            for source in [Source::Memory, Source::Database] {
                for id in [None, Some("r1"), Some("r2")] {
                    let served = Answer {
                        entry: entry.clone(),
                        source,
                        status,
                    };
                    let id = id.map(HeaderValue::from_static);
                    let response = answer_at(&served, Instant::now(), 0, true, id.clone());
                    let headers = response.headers();
                    let value = |name: &HeaderName| headers.get(name).map(HeaderValue::as_bytes);
                    assert_eq!(value(&CACHE_STATUS), Some(status.as_str().as_bytes()));
                    assert_eq!(value(&CACHE_SOURCE), Some(source.as_str().as_bytes()));
                    assert_eq!(headers.get(header::CACHE_CONTROL), Some(&NO_STORE));
                    assert_eq!(headers.get(header::CONTENT_TYPE), Some(&JSON));
                    assert_eq!(headers.get(REQUEST_ID), id.as_ref());
                    assert_eq!(headers.len(), 4 + usize::from(id.is_some()));
                }
            }
        }
    }
}
