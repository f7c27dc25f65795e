//! Adds fields to a cached JSON object without parsing it: a cached page is served many
//! times, and re-parsing 50 contacts to add `_cache` would cost more than the hit itself.

use serde::Serialize;
use serde_json::{Map, Value};

/// Appends `extra`'s fields to the JSON object `body`. `body` must be a serialized object
/// (as every cached value is); anything else is returned unchanged rather than corrupted.
pub fn append_fields(body: &str, extra: &Map<String, Value>) -> String {
    let trimmed = body.trim_end();
    let Some(open) = trimmed.strip_suffix('}') else {
        return body.to_owned();
    };
    if !trimmed.starts_with('{') || extra.is_empty() {
        return body.to_owned();
    }
    let extra = serde_json::to_string(extra).unwrap_or_else(|_| "{}".to_owned());
    let inner = &extra[1..extra.len() - 1];
    let is_empty_object = open.trim_start_matches('{').trim().is_empty();
    let sep = if is_empty_object { "" } else { "," };
    format!("{open}{sep}{inner}}}")
}

/// Serializes `value` into an object map, for `append_fields`.
pub fn to_fields(value: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn fields_are_appended_to_an_object() {
        let out = append_fields(r#"{"a":1}"#, &fields(json!({"_cached": true})));
        assert_eq!(
            serde_json::from_str::<Value>(&out).expect("json"),
            json!({"a":1,"_cached":true})
        );
        let out = append_fields("{ }", &fields(json!({"b": "x"})));
        assert_eq!(
            serde_json::from_str::<Value>(&out).expect("json"),
            json!({"b":"x"})
        );
    }

    #[test]
    fn a_non_object_body_is_left_alone() {
        for body in ["[1]", "\"x\"", "", "{"] {
            assert_eq!(append_fields(body, &fields(json!({"b": 1}))), body);
        }
    }
}
