//! Field tables and message properties as JSON, the way RabbitMQ's API renders and reads
//! them.
//!
//! ```text
//! JSON -> field value      string: long string, integer: long (i64), other number: double,
//!                          bool, array, object: table, null: void
//! field value -> JSON      integers and timestamps: numbers, strings: UTF-8 text (bytes that
//!                          are not UTF-8: base64), decimals: numbers, void: null
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use ferrymq_core::message::{FieldTable, FieldValue, Properties};
use serde_json::{Map, Number, Value};

use crate::error::{ApiError, ApiResult};

fn bytes_to_json(bytes: &Bytes) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => Value::String(STANDARD.encode(bytes)),
    }
}

pub fn value_to_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::I8(v) => Value::from(*v),
        FieldValue::U8(v) => Value::from(*v),
        FieldValue::I16(v) => Value::from(*v),
        FieldValue::U16(v) => Value::from(*v),
        FieldValue::I32(v) => Value::from(*v),
        FieldValue::U32(v) => Value::from(*v),
        FieldValue::I64(v) => Value::from(*v),
        FieldValue::F32(v) => Number::from_f64(f64::from(*v)).map_or(Value::Null, Value::Number),
        FieldValue::F64(v) => Number::from_f64(*v).map_or(Value::Null, Value::Number),
        FieldValue::Decimal { scale, value } => {
            Number::from_f64(f64::from(*value) / 10f64.powi(i32::from(*scale)))
                .map_or(Value::Null, Value::Number)
        }
        FieldValue::LongString(b) | FieldValue::ByteArray(b) => bytes_to_json(b),
        FieldValue::Array(items) => Value::Array(items.iter().map(value_to_json).collect()),
        FieldValue::Timestamp(t) => Value::from(*t),
        FieldValue::Table(t) => table_to_json(t),
        FieldValue::Void => Value::Null,
    }
}

pub fn table_to_json(table: &FieldTable) -> Value {
    let mut map = Map::new();
    for (key, value) in table.iter() {
        // The first entry of a key wins, as lookups see it.
        map.entry(key.to_owned())
            .or_insert_with(|| value_to_json(value));
    }
    Value::Object(map)
}

pub fn json_to_value(value: &Value) -> FieldValue {
    match value {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::string(s.clone()),
        Value::Array(items) => FieldValue::Array(items.iter().map(json_to_value).collect()),
        Value::Object(map) => FieldValue::Table(object_to_table(map)),
    }
}

fn object_to_table(map: &Map<String, Value>) -> FieldTable {
    map.iter()
        .map(|(k, v)| (k.clone(), json_to_value(v)))
        .collect()
}

/// An `arguments` member: absent or null is empty, an object is a table, anything else 400.
pub fn json_to_table(value: Option<&Value>) -> ApiResult<FieldTable> {
    match value {
        None | Some(Value::Null) => Ok(FieldTable::new()),
        Some(Value::Object(map)) => Ok(object_to_table(map)),
        Some(other) => Err(ApiError::bad_request(format!(
            "arguments must be an object, got {other}"
        ))),
    }
}

pub fn properties_to_json(p: &Properties) -> Value {
    let mut map = Map::new();
    let mut text = |key: &str, v: &Option<String>| {
        if let Some(v) = v {
            map.insert(key.to_owned(), Value::String(v.clone()));
        }
    };
    text("content_type", &p.content_type);
    text("content_encoding", &p.content_encoding);
    text("correlation_id", &p.correlation_id);
    text("reply_to", &p.reply_to);
    text("expiration", &p.expiration);
    text("message_id", &p.message_id);
    text("type", &p.kind);
    text("user_id", &p.user_id);
    text("app_id", &p.app_id);
    text("cluster_id", &p.cluster_id);
    if let Some(mode) = p.delivery_mode {
        map.insert("delivery_mode".into(), Value::from(mode));
    }
    if let Some(priority) = p.priority {
        map.insert("priority".into(), Value::from(priority));
    }
    if let Some(ts) = p.timestamp {
        map.insert("timestamp".into(), Value::from(ts));
    }
    if let Some(headers) = &p.headers {
        map.insert("headers".into(), table_to_json(headers));
    }
    Value::Object(map)
}

fn number<T: TryFrom<u64>>(key: &str, v: &Value) -> ApiResult<T> {
    v.as_u64()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| ApiError::bad_request(format!("property {key} must be a small integer")))
}

fn string(key: &str, v: &Value) -> ApiResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(ApiError::bad_request(format!(
            "property {key} must be a string"
        ))),
    }
}

/// Properties of a message published through the API.
pub fn json_to_properties(value: Option<&Value>) -> ApiResult<Properties> {
    let mut p = Properties::default();
    let map = match value {
        None | Some(Value::Null) => return Ok(p),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::bad_request("properties must be an object")),
    };
    for (key, v) in map {
        match key.as_str() {
            "content_type" => p.content_type = Some(string(key, v)?),
            "content_encoding" => p.content_encoding = Some(string(key, v)?),
            "correlation_id" => p.correlation_id = Some(string(key, v)?),
            "reply_to" => p.reply_to = Some(string(key, v)?),
            "expiration" => p.expiration = Some(string(key, v)?),
            "message_id" => p.message_id = Some(string(key, v)?),
            "type" => p.kind = Some(string(key, v)?),
            "user_id" => p.user_id = Some(string(key, v)?),
            "app_id" => p.app_id = Some(string(key, v)?),
            "cluster_id" => p.cluster_id = Some(string(key, v)?),
            "delivery_mode" => p.delivery_mode = Some(number(key, v)?),
            "priority" => p.priority = Some(number(key, v)?),
            "timestamp" => p.timestamp = Some(number(key, v)?),
            "headers" => p.headers = Some(json_to_table(Some(v))?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown message property '{other}'"
                )));
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_round_trip_through_json() {
        let json = json!({"x-max-length": 10, "x-queue-type": "classic", "ratio": 0.5,
                          "on": true, "list": [1, "a"], "nested": {"k": null}});
        let table = json_to_table(Some(&json)).unwrap();
        assert_eq!(table.get("x-max-length"), Some(&FieldValue::I64(10)));
        assert_eq!(table_to_json(&table), json);
        assert!(json_to_table(Some(&json!([1]))).is_err());
    }

    #[test]
    fn properties_round_trip_and_unknown_ones_are_refused() {
        let json = json!({"delivery_mode": 2, "headers": {"a": "b"}, "content_type": "text/plain",
                          "priority": 3, "type": "t"});
        let p = json_to_properties(Some(&json)).unwrap();
        assert!(p.is_persistent());
        assert_eq!(p.kind.as_deref(), Some("t"));
        assert_eq!(properties_to_json(&p), json);
        assert!(json_to_properties(Some(&json!({"colour": "red"}))).is_err());
        assert!(json_to_properties(Some(&json!({"priority": 300}))).is_err());
    }

    #[test]
    fn binary_strings_render_as_base64() {
        let v = FieldValue::LongString(Bytes::from_static(&[0xff, 0x00]));
        assert_eq!(value_to_json(&v), json!("/wA="));
    }
}
