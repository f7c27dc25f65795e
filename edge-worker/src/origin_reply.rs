//! The origin's answer to a miss, read into what the worker stores and serves.

use serde::Deserialize;
use serde_json::Value;
use shared::model::{CacheStatus, Source};

use crate::fail::{Fail, Result};

/// A successful answer: the `data` object as the origin sent it but for its `_cache`
/// block (which describes the origin's layers; the edge serves its own), where the origin
/// found it, and how long it stays fresh (0: do not store it, e.g. caching is off).
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub data: String,
    pub source: Source,
    pub ttl_secs: u64,
    /// The origin answered with a value it marked stale (its database slow or down, or its
    /// counters lost): the edge says so too, and never stores it (its ttl is 0).
    pub stale: bool,
}

impl Fetched {
    /// What the edge calls an answer it passes on without storing.
    pub fn passed_status(&self) -> CacheStatus {
        if self.stale {
            CacheStatus::Stale
        } else {
            CacheStatus::Bypass
        }
    }
}

fn unreadable() -> Fail {
    Fail::new(
        502,
        "bad_gateway",
        "the origin answered something unreadable",
    )
}

/// Reads the origin's `status` and `body`. A refusal keeps the origin's status (a 5xx
/// becomes 502: the fault is upstream) and a code the worker knows.
pub fn read(status: u16, body: &str) -> Result<Fetched> {
    let mut parsed: Value = serde_json::from_str(body).map_err(|_| unreadable())?;
    if !(200..300).contains(&status) {
        let error = &parsed["error"];
        return Err(Fail::new(
            if status >= 500 { 502 } else { status },
            known_code(error["code"].as_str().unwrap_or("")),
            error["message"]
                .as_str()
                .unwrap_or("the origin refused the request"),
        ));
    }
    let Value::Object(mut data) = parsed["data"].take() else {
        return Err(unreadable());
    };
    let cache = data.remove("_cache").unwrap_or_default();
    Ok(Fetched {
        data: Value::Object(data).to_string(),
        source: Source::deserialize(&cache["source"]).unwrap_or(Source::Database),
        ttl_secs: cache["ttl"].as_u64().unwrap_or(0),
        stale: cache["status"] == CacheStatus::Stale.as_str(),
    })
}

/// Error codes are `&'static str`; the origin's are mapped onto the few the worker knows.
fn known_code(code: &str) -> &'static str {
    match code {
        "not_found" => "not_found",
        "forbidden" => "forbidden",
        "unauthorized" => "unauthorized",
        "unavailable" => "unavailable",
        "timeout" => "timeout",
        c if c.starts_with("invalid") => "invalid_request",
        _ => "origin_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_carries_its_data_source_and_ttl() {
        let body = r#"{"success":true,"data":{"open":3,"_cache":{"status":"MISS","source":"redis_cache","ttl":300}}}"#;
        let f = read(200, body).expect("read");
        assert_eq!((f.source, f.ttl_secs), (Source::RedisCache, 300));
        let data: Value = serde_json::from_str(&f.data).expect("data is JSON");
        assert_eq!(data["open"], 3);
        assert!(
            data.get("_cache").is_none(),
            "the origin's own block is not kept"
        );
        let uncached = read(200, r#"{"success":true,"data":{"open":3}}"#).expect("read");
        assert_eq!((uncached.source, uncached.ttl_secs), (Source::Database, 0));
        assert_eq!(uncached.passed_status(), CacheStatus::Bypass);
    }

    #[test]
    fn an_answer_the_origin_marked_stale_is_passed_on_as_stale() {
        let body = r#"{"success":true,"data":{"open":3,"_cache":{"status":"STALE","source":"memory","ttl":0}}}"#;
        let f = read(200, body).expect("read");
        assert_eq!((f.ttl_secs, f.passed_status()), (0, CacheStatus::Stale));
    }

    #[test]
    fn refusals_keep_4xx_and_turn_5xx_into_502() {
        let refused =
            r#"{"success":false,"error":{"code":"not_found","message":"board not found"}}"#;
        assert_eq!(
            read(404, refused),
            Err(Fail::new(404, "not_found", "board not found"))
        );
        let failed = r#"{"success":false,"error":{"code":"database_down"}}"#;
        let f = read(503, failed).expect_err("refused");
        assert_eq!((f.status, f.code), (502, "origin_error"));
        let invalid = r#"{"success":false,"error":{"code":"invalid_cursor","message":"m"}}"#;
        assert_eq!(
            read(400, invalid).expect_err("refused").code,
            "invalid_request"
        );
    }

    #[test]
    fn garbage_is_a_502() {
        for body in ["", "<html>", r#"{"success":true}"#, r#"{"data":[1]}"#] {
            assert_eq!(read(200, body).map_err(|f| f.status), Err(502), "{body:?}");
        }
    }
}
