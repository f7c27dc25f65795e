//! Bodies the worker answers with, in API.md's envelope.

use serde::Serialize;
use serde_json::{json, Value};
use shared::model::CacheMeta;
use shared::splice::envelope;

/// Whether `origin` is one of the comma-separated `allowed` browser origins.
pub fn cors_allows(allowed: &str, origin: &str) -> bool {
    allowed.split(',').any(|a| a.trim() == origin)
}

pub fn error_body(code: &str, message: &str) -> String {
    json!({"success": false, "error": {"code": code, "message": message}}).to_string()
}

pub fn success_body(data: &Value) -> String {
    json!({"success": true, "data": data}).to_string()
}

#[derive(Serialize)]
struct AtTheEdge<'a> {
    #[serde(rename = "_cache")]
    cache: &'a CacheMeta,
    #[serde(rename = "_edge")]
    edge: bool,
}

/// Wraps the origin's `data` object, as stored (without the origin's `_cache` block, see
/// `origin_reply`), with this edge's.
pub fn cached_body(data: &str, meta: &CacheMeta) -> String {
    envelope(
        data,
        &AtTheEdge {
            cache: meta,
            edge: true,
        },
    )
}

#[cfg(test)]
mod tests {
    use shared::model::{CacheStatus, Source};

    use super::*;

    #[test]
    fn cors_allows_only_the_listed_origins_exactly() {
        let allowed = "http://localhost:3000, https://panel.example.com";
        assert!(cors_allows(allowed, "https://panel.example.com"));
        assert!(cors_allows(allowed, "http://localhost:3000"));
        assert!(!cors_allows(allowed, "https://panel.example.com.evil.test"));
        assert!(!cors_allows(allowed, "http://localhost"));
        assert!(!cors_allows("", "http://localhost:3000"));
    }

    #[test]
    fn the_edge_cache_block_replaces_the_origins() {
        let meta = CacheMeta {
            status: CacheStatus::Hit,
            source: Source::CloudflareKv,
            ttl: 12,
            edge_location: Some("LHR".into()),
            response_time_ms: 1.5,
        };
        let body = cached_body(r#"{"total":5}"#, &meta);
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["data"]["total"], 5);
        assert_eq!(v["data"]["_cache"]["status"], "HIT");
        assert_eq!(v["data"]["_cache"]["edge_location"], "LHR");
    }
}
