//! Serves a cached JSON object inside API.md's success envelope, with the fields that
//! describe this answer added, without parsing it: a cached page is served many times,
//! and re-parsing 50 contacts to add `_cache` would cost more than the hit itself.

use serde::Serialize;

/// `{"success":true,"data":<data with extra's fields added>}`, in one allocation that copies
/// the cached `data` once. `data` must be a serialized object (as every cached value is)
/// and `extra` must serialize as one; otherwise `data` is served as it is rather than
/// corrupted.
pub fn envelope(data: &str, extra: &impl Serialize) -> String {
    let extra = serde_json::to_string(extra).unwrap_or_default();
    let fields = extra
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or("");
    with_fields(data, fields)
}

/// Where every answer starts.
pub const OPEN: &str = r#"{"success":true,"data":"#;

/// A serialized object up to (not including) its closing brace, and what goes between
/// that and members added after its own: a comma, or nothing in an empty object. `None`
/// when `data` is not an object.
pub fn open_object(data: &str) -> Option<(&str, &'static str)> {
    let trimmed = data.trim_end();
    let open = trimmed
        .strip_suffix('}')
        .filter(|_| trimmed.starts_with('{'))?;
    if open[1..].trim().is_empty() {
        return Some(("{", ""));
    }
    Some((open, ","))
}

/// `envelope` with the fields already written as JSON members (`"a":1,"b":true`).
fn with_fields(data: &str, fields: &str) -> String {
    let (Some((open, sep)), false) = (open_object(data), fields.is_empty()) else {
        return format!("{OPEN}{data}}}");
    };
    let mut out = String::with_capacity(OPEN.len() + open.len() + sep.len() + fields.len() + 2);
    out.push_str(OPEN);
    out.push_str(open);
    out.push_str(sep);
    out.push_str(fields);
    out.push_str("}}");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn served(data: &str, extra: Value) -> Value {
        serde_json::from_str(&envelope(data, &extra)).expect("json")
    }

    #[test]
    fn fields_are_added_to_the_data_inside_the_envelope() {
        assert_eq!(
            served(r#"{"a":1}"#, json!({"_cached": true})),
            json!({"success": true, "data": {"a": 1, "_cached": true}})
        );
        assert_eq!(
            served("{ }", json!({"b": "x"})),
            json!({"success": true, "data": {"b": "x"}})
        );
    }

    #[test]
    fn data_that_is_not_an_object_is_served_as_it_is() {
        for data in ["[1]", "\"x\"", "1"] {
            assert_eq!(
                served(data, json!({"b": 1}))["data"],
                serde_json::from_str::<Value>(data).expect("json")
            );
        }
        assert_eq!(
            envelope("{", &json!({"b": 1})),
            r#"{"success":true,"data":{}"#
        );
    }
}
