//! Success responses in API.md's envelope. Authenticated data is never for shared
//! caches: every answer here says `Cache-Control: private, no-store`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper::body::{Frame, SizeHint};
use serde::Serialize;
use serde_json::json;
use shared::model::CacheStatus;

use crate::cache::entry::now_ms;
use crate::cache::Answer;

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

/// `ms` since the epoch as RFC 3339 in UTC with milliseconds (`2026-12-01T19:20:54.860Z`),
/// as chrono writes it. Written by hand from the civil date (H. Hinnant's days-to-date):
/// every answer carries two instants, and a formatter cost more than the rest of a hit.
fn push_rfc3339(out: &mut String, ms: i64) {
    // Years 1970 to 9999 keep four digits.
    let ms = ms.clamp(0, 253_402_300_799_999);
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: i64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, ms_of_day / 3_600_000);
    put(14, 2, ms_of_day / 60_000 % 60);
    put(17, 2, ms_of_day / 1000 % 60);
    put(20, 3, ms_of_day % 1000);
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
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

/// The fields that describe how one read was served (API.md's `_cache`, `_source`, ...),
/// written as JSON members. Written by hand: every value is a number, a boolean or a
/// known ASCII word, so nothing needs escaping, and a formatter's generality is most of
/// what building an L1 hit's answer costs.
fn push_served_fields(f: &mut String, answer: &Answer, now: i64, micros: u64, cache_enabled: bool) {
    let fresh = matches!(answer.status, CacheStatus::Hit | CacheStatus::Miss);
    let cached = matches!(answer.status, CacheStatus::Hit | CacheStatus::Stale);
    let ttl = if fresh {
        answer.entry.remaining_secs(now)
    } else {
        0
    };
    let (source, status) = (answer.source.as_str(), answer.status.as_str());
    let stale = answer.status == CacheStatus::Stale;
    let flag = |b: bool| if b { "true" } else { "false" };
    for part in [
        r#""_cache":{"status":""#,
        status,
        r#"","source":""#,
        source,
        r#"","ttl":"#,
    ] {
        f.push_str(part);
    }
    f.push_str(itoa::Buffer::new().format(ttl));
    f.push_str(r#","edge_location":null,"response_time_ms":"#);
    push_millis(f, micros);
    for part in [
        r#"},"_cached":"#,
        flag(cached),
        r#","_stale":"#,
        flag(stale),
        r#","_source":""#,
        source,
        r#"","_cacheEnabled":"#,
        flag(cache_enabled),
        r#","_responseTimeMs":"#,
    ] {
        f.push_str(part);
    }
    push_millis(f, micros);
    f.push_str(r#","_timestamp":""#);
    push_rfc3339(f, answer.entry.computed_at_ms);
    f.push_str(r#"","_retrievedAt":""#);
    push_rfc3339(f, now);
    f.push('"');
}

/// Serves a read-through answer with where it came from, both in the body
/// (`_source`, `_cached`, `_cache`, ...) and in `X-Cache-*` headers.
pub fn answer(answer: &Answer, started: Instant, cache_enabled: bool) -> Response {
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let now = now_ms();
    let (head, tail) = answer
        .entry
        .served(|f| push_served_fields(f, answer, now, micros, cache_enabled));
    let mut response = Response::new(Body::new(Chunks([Some(head), Some(tail)])));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, JSON);
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    headers.insert(
        CACHE_STATUS,
        HeaderValue::from_static(answer.status.as_str()),
    );
    headers.insert(
        CACHE_SOURCE,
        HeaderValue::from_static(answer.source.as_str()),
    );
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
    use shared::model::Source;

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

    fn rfc3339(ms: i64) -> String {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .expect("in range")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    #[test]
    fn instants_are_written_as_chrono_writes_them() {
        // Day, month and leap-year edges, then a spread up to year 9999.
        let edges = [
            0,
            1,
            86_399_999,
            86_400_000,
            951_782_400_000,
            951_868_799_999,
            4_107_542_399_999,
        ];
        let spread = (0..20_000i64).map(|i| i * 12_676_542_017_321 % 253_402_300_799_999);
        for ms in edges.into_iter().chain(spread) {
            let mut written = String::new();
            push_rfc3339(&mut written, ms);
            assert_eq!(written, rfc3339(ms), "{ms}");
        }
    }

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
