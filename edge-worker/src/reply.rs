//! Bodies the worker answers with, in API.md's envelope.

use serde_json::{json, Value};
use shared::model::CacheMeta;
use shared::splice::{append_fields, to_fields};

pub fn error_body(code: &str, message: &str) -> String {
    json!({"success": false, "error": {"code": code, "message": message}}).to_string()
}

pub fn success_body(data: &Value) -> String {
    json!({"success": true, "data": data}).to_string()
}

/// Wraps the origin's `data` object with this edge's `_cache` block (replacing the
/// origin's own, which described the origin's layers).
pub fn cached_body(data: &str, meta: &CacheMeta) -> String {
    let mut fields = to_fields(&json!({ "_cache": meta }));
    fields.insert("_edge".into(), Value::Bool(true));
    let data = strip_field(data, "_cache");
    format!(
        r#"{{"success":true,"data":{}}}"#,
        append_fields(&data, &fields)
    )
}

/// Removes one top-level field of a JSON object (re-serializing it; only on a miss).
pub fn strip_field(object: &str, field: &str) -> String {
    match serde_json::from_str::<Value>(object) {
        Ok(Value::Object(mut map)) => {
            map.remove(field);
            Value::Object(map).to_string()
        }
        _ => object.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use shared::model::{CacheStatus, Source};

    use super::*;

    #[test]
    fn the_edge_cache_block_replaces_the_origins() {
        let meta = CacheMeta {
            status: CacheStatus::Hit,
            source: Source::CloudflareKv,
            ttl: 12,
            edge_location: Some("LHR".into()),
            response_time_ms: 1.5,
        };
        let body = cached_body(r#"{"total":5,"_cache":{"status":"MISS"}}"#, &meta);
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["data"]["total"], 5);
        assert_eq!(v["data"]["_cache"]["status"], "HIT");
        assert_eq!(v["data"]["_cache"]["edge_location"], "LHR");
    }
}
