//! AMQP message <-> Kafka record: the one mapping both directions use.
//!
//! ```text
//! AMQP                          Kafka record
//! body                    <->   value (a null value reads as an empty body)
//! routing key             <->   key ("" <-> null key)
//! exchange published to    ->   header amqp.exchange (marks the record as from AMQP)
//! content-type, ... (13)  <->   headers amqp.content-type, amqp.content-encoding,
//!                               amqp.delivery-mode, amqp.priority, amqp.correlation-id,
//!                               amqp.reply-to, amqp.expiration, amqp.message-id,
//!                               amqp.timestamp, amqp.type, amqp.user-id, amqp.app-id,
//!                               amqp.cluster-id (text; numbers in decimal)
//! timestamp property      <->   record timestamp (seconds * 1000; a record from Kafka gives
//!                               its timestamp / 1000 to AMQP consumers)
//! header table entries    <->   headers, same keys and order; a key starting "amqp." is
//!                               written as "amqp.header." + key
//! header value types       ->   header amqp.types: one type letter per table entry, in
//!                               order (absent: all long strings; "" : an empty table)
//! ```
//! Value encodings per type letter are in `header_value`. A record produced by a Kafka client
//! (no `amqp.exchange`) becomes a message with exchange `""`, its headers as long strings
//! (null values as void), and any `amqp.*` headers it carries as properties, so Kafka
//! producers can set, say, `amqp.content-type`. Malformed reserved values are ignored.
//!
//! # Invariants
//! - `message_to_batch` then `record_to_message` gives back the exchange, routing key, every
//!   property and the header table (keys, order, types, values) and the body.
//! - Bodies and values are never copied: the record's value is the message's body `Bytes`.

use bytes::Bytes;

use super::header_value;
use crate::message::wire::short;
use crate::message::{FieldTable, FieldValue, Message, Properties};
use crate::stream::encode::{EncodedBatch, Headers};
use crate::stream::records::Record;

/// Header naming the exchange an AMQP message was published to.
pub const EXCHANGE: &str = "amqp.exchange";
/// Header listing the AMQP types of the user headers.
pub const TYPES: &str = "amqp.types";
/// Prefix of reserved headers.
pub const RESERVED_PREFIX: &str = "amqp.";
/// Prefix that escapes a user header whose own name starts with [`RESERVED_PREFIX`].
pub const ESCAPE_PREFIX: &str = "amqp.header.";

/// The reserved header of each text property.
mod names {
    pub const CONTENT_TYPE: &str = "amqp.content-type";
    pub const CONTENT_ENCODING: &str = "amqp.content-encoding";
    pub const DELIVERY_MODE: &str = "amqp.delivery-mode";
    pub const PRIORITY: &str = "amqp.priority";
    pub const CORRELATION_ID: &str = "amqp.correlation-id";
    pub const REPLY_TO: &str = "amqp.reply-to";
    pub const EXPIRATION: &str = "amqp.expiration";
    pub const MESSAGE_ID: &str = "amqp.message-id";
    pub const TIMESTAMP: &str = "amqp.timestamp";
    pub const TYPE: &str = "amqp.type";
    pub const USER_ID: &str = "amqp.user-id";
    pub const APP_ID: &str = "amqp.app-id";
    pub const CLUSTER_ID: &str = "amqp.cluster-id";
}

/// The record timestamp for an AMQP `timestamp` property (seconds), if it fits.
fn millis(seconds: u64) -> Option<i64> {
    i64::try_from(seconds).ok()?.checked_mul(1000)
}

/// Encodes `message` as a one-record batch. `now_ms` stamps messages without a timestamp
/// property (and every message of a `log_append_time` stream).
pub fn message_to_batch(message: &Message, now_ms: i64, log_append_time: bool) -> EncodedBatch {
    let p = &message.properties;
    let mut h = Headers::new();
    h.push(EXCHANGE.as_bytes(), Some(message.exchange.as_bytes()));
    let texts = [
        (names::CONTENT_TYPE, p.content_type.as_deref()),
        (names::CONTENT_ENCODING, p.content_encoding.as_deref()),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            h.push(name.as_bytes(), Some(value.as_bytes()));
        }
    }
    if let Some(mode) = p.delivery_mode {
        h.push(
            names::DELIVERY_MODE.as_bytes(),
            Some(mode.to_string().as_bytes()),
        );
    }
    if let Some(priority) = p.priority {
        h.push(
            names::PRIORITY.as_bytes(),
            Some(priority.to_string().as_bytes()),
        );
    }
    let texts = [
        (names::CORRELATION_ID, p.correlation_id.as_deref()),
        (names::REPLY_TO, p.reply_to.as_deref()),
        (names::EXPIRATION, p.expiration.as_deref()),
        (names::MESSAGE_ID, p.message_id.as_deref()),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            h.push(name.as_bytes(), Some(value.as_bytes()));
        }
    }
    if let Some(ts) = p.timestamp {
        h.push(names::TIMESTAMP.as_bytes(), Some(ts.to_string().as_bytes()));
    }
    let texts = [
        (names::TYPE, p.kind.as_deref()),
        (names::USER_ID, p.user_id.as_deref()),
        (names::APP_ID, p.app_id.as_deref()),
        (names::CLUSTER_ID, p.cluster_id.as_deref()),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            h.push(name.as_bytes(), Some(value.as_bytes()));
        }
    }
    if let Some(table) = &p.headers {
        let mut letters = Vec::with_capacity(table.len());
        let mut escaped = String::new();
        for (key, value) in table.iter() {
            let key = if key.starts_with(RESERVED_PREFIX) {
                escaped.clear();
                escaped.push_str(ESCAPE_PREFIX);
                escaped.push_str(key);
                escaped.as_str()
            } else {
                key
            };
            h.push(key.as_bytes(), header_value::encode(value).as_deref());
            letters.push(header_value::letter(value));
        }
        if table.is_empty() || letters.iter().any(|l| *l != b'S') {
            h.push(TYPES.as_bytes(), Some(&letters));
        }
    }
    let timestamp = if log_append_time {
        now_ms
    } else {
        p.timestamp.and_then(millis).unwrap_or(now_ms)
    };
    let key = (!message.routing_key.is_empty()).then_some(message.routing_key.as_bytes());
    EncodedBatch::single(key, message.body.clone(), &h, timestamp, log_append_time)
}

/// Text of a header value (lossy for non-UTF-8 bytes), cut to a short string.
fn short_text(bytes: Option<&Bytes>) -> Option<String> {
    let bytes = bytes?;
    Some(short(&String::from_utf8_lossy(bytes)).to_owned())
}

fn number<T: std::str::FromStr>(bytes: Option<&Bytes>) -> Option<T> {
    std::str::from_utf8(bytes?).ok()?.trim().parse().ok()
}

/// Decodes a stored record into the message an AMQP consumer (or the fan-out) sees.
pub fn record_to_message(record: &Record) -> Message {
    let mut p = Properties::default();
    let mut exchange = None;
    let mut types: Option<&Bytes> = None;
    let mut user: Vec<(&[u8], Option<&Bytes>)> = Vec::new();
    for (key, value) in &record.headers {
        let value = value.as_ref();
        if let Some(escaped) = key.strip_prefix(ESCAPE_PREFIX.as_bytes()) {
            // Only the escape prefix is ours; the rest is the original "amqp." name.
            user.push((escaped, value));
            continue;
        }
        if !key.starts_with(RESERVED_PREFIX.as_bytes()) {
            user.push((key, value));
            continue;
        }
        match std::str::from_utf8(key).unwrap_or_default() {
            EXCHANGE => exchange = Some(short_text(value).unwrap_or_default()),
            TYPES => types = Some(value.unwrap_or(&EMPTY)),
            names::CONTENT_TYPE => p.content_type = short_text(value),
            names::CONTENT_ENCODING => p.content_encoding = short_text(value),
            names::DELIVERY_MODE => p.delivery_mode = number(value),
            names::PRIORITY => p.priority = number(value),
            names::CORRELATION_ID => p.correlation_id = short_text(value),
            names::REPLY_TO => p.reply_to = short_text(value),
            names::EXPIRATION => p.expiration = short_text(value),
            names::MESSAGE_ID => p.message_id = short_text(value),
            names::TIMESTAMP => p.timestamp = number(value),
            names::TYPE => p.kind = short_text(value),
            names::USER_ID => p.user_id = short_text(value),
            names::APP_ID => p.app_id = short_text(value),
            names::CLUSTER_ID => p.cluster_id = short_text(value),
            // Not a name ferrymq reserves: an ordinary header.
            _ => user.push((key, value)),
        }
    }
    let letters = types.filter(|t| t.len() == user.len());
    if types.is_some() || !user.is_empty() {
        let mut table = FieldTable::new();
        for (i, (key, value)) in user.into_iter().enumerate() {
            let key = short(&String::from_utf8_lossy(key)).to_owned();
            let typed = letters
                .and_then(|l| l.get(i))
                .and_then(|letter| header_value::decode(*letter, value));
            let value = typed.unwrap_or_else(|| match value {
                Some(bytes) => FieldValue::LongString(bytes.clone()),
                None => FieldValue::Void,
            });
            table.push(key, value);
        }
        p.headers = Some(table);
    }
    if exchange.is_none() && p.timestamp.is_none() {
        // From a Kafka producer: its record timestamp is the message's.
        p.timestamp = u64::try_from(record.timestamp).ok().map(|ms| ms / 1000);
    }
    let routing_key = record
        .key
        .as_ref()
        .map(|k| short(&String::from_utf8_lossy(k)).to_owned())
        .unwrap_or_default();
    Message::new(
        exchange.unwrap_or_default(),
        routing_key,
        p,
        record.value.clone().unwrap_or_default(),
    )
}

static EMPTY: Bytes = Bytes::from_static(b"");

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::wire;
    use crate::stream::batch::RecordBatch;
    use crate::stream::records;

    fn decode(batch: &EncodedBatch) -> Record {
        let batch = RecordBatch::parse_single(batch.to_bytes()).unwrap();
        let mut out = None;
        records::for_each(&batch, usize::MAX, |r| {
            out = Some(r);
            true
        })
        .unwrap();
        out.unwrap()
    }

    fn full_message() -> Message {
        let mut headers = wire::every_type();
        headers.push("amqp.content-type", FieldValue::string("a user header"));
        headers.push("dup", FieldValue::I8(1));
        headers.push("dup", FieldValue::string("again"));
        let properties = Properties {
            headers: Some(headers),
            ..wire::all_properties()
        };
        Message::new(
            "orders",
            "eu.de",
            properties,
            Bytes::from_static(b"{\"id\":1}"),
        )
    }

    #[test]
    fn amqp_to_kafka_to_amqp_is_lossless() {
        let message = full_message();
        let batch = message_to_batch(&message, 5, false);
        let record = decode(&batch);
        assert_eq!(
            record.timestamp, 1_700_000_000_000,
            "timestamp property -> record"
        );
        assert_eq!(record.key.as_deref(), Some(&b"eu.de"[..]));
        assert_eq!(record_to_message(&record), message);
    }

    #[test]
    fn kafka_applications_see_plain_headers() {
        let record = decode(&message_to_batch(&full_message(), 5, false));
        let get = |name: &str| {
            record
                .headers
                .iter()
                .find(|(k, _)| k.as_ref() == name.as_bytes())
                .and_then(|(_, v)| v.clone())
        };
        assert_eq!(
            get("amqp.content-type").as_deref(),
            Some(&b"application/json"[..])
        );
        assert_eq!(get("amqp.delivery-mode").as_deref(), Some(&b"2"[..]));
        assert_eq!(get("I").as_deref(), Some(&b"-70000"[..]));
        assert_eq!(get("S").as_deref(), Some(&b"\xffbinary"[..]));
        assert_eq!(get("V"), None);
        assert_eq!(
            get("amqp.header.amqp.content-type").as_deref(),
            Some(&b"a user header"[..])
        );
        assert_eq!(
            get("amqp.types").as_deref(),
            Some(&b"tbBsuIilfdDSxTVFAbbSbS"[..])
        );
    }

    #[test]
    fn minimal_messages_stay_minimal() {
        let message = Message::new("", "", Properties::default(), Bytes::new());
        let batch = message_to_batch(&message, 1234, false);
        let record = decode(&batch);
        assert_eq!(record.key, None, "empty routing key -> null key");
        assert_eq!(record.timestamp, 1234);
        assert_eq!(record.headers.len(), 1, "only amqp.exchange");
        assert_eq!(record_to_message(&record), message);
        // An empty header table is not the same as none.
        let empty = Message::new(
            "x",
            "k",
            Properties {
                headers: Some(FieldTable::new()),
                ..Properties::default()
            },
            Bytes::from_static(b"b"),
        );
        assert_eq!(
            record_to_message(&decode(&message_to_batch(&empty, 1, false))),
            empty
        );
        // Only long strings: no type list needed.
        let mut headers = FieldTable::new();
        headers.push("a", FieldValue::string("1"));
        let strings = Message::new(
            "x",
            "k",
            Properties {
                headers: Some(headers),
                ..Properties::default()
            },
            Bytes::new(),
        );
        let record = decode(&message_to_batch(&strings, 1, false));
        assert!(
            record
                .headers
                .iter()
                .all(|(k, _)| k.as_ref() != b"amqp.types")
        );
        assert_eq!(record_to_message(&record), strings);
    }

    #[test]
    fn log_append_time_stamps_with_the_broker_clock() {
        let record = decode(&message_to_batch(&full_message(), 99, true));
        assert_eq!(record.timestamp, 99);
        assert_eq!(
            record_to_message(&record).properties.timestamp,
            Some(1_700_000_000)
        );
    }

    #[test]
    fn records_from_kafka_producers() {
        let record = Record {
            offset: 3,
            timestamp: 1_700_000_000_999,
            key: Some(Bytes::from_static(b"user-7")),
            value: None,
            headers: vec![
                (
                    Bytes::from_static(b"trace"),
                    Some(Bytes::from_static(b"abc")),
                ),
                (Bytes::from_static(b"empty"), None),
                (
                    Bytes::from_static(b"amqp.content-type"),
                    Some(Bytes::from_static(b"text/plain")),
                ),
                (
                    Bytes::from_static(b"amqp.priority"),
                    Some(Bytes::from_static(b"not a number")),
                ),
                (
                    Bytes::from_static(b"amqp.types"),
                    Some(Bytes::from_static(b"too many letters")),
                ),
            ],
        };
        let message = record_to_message(&record);
        assert_eq!(message.exchange, "");
        assert_eq!(message.routing_key, "user-7");
        assert!(message.body.is_empty());
        assert_eq!(
            message.properties.content_type.as_deref(),
            Some("text/plain")
        );
        assert_eq!(message.properties.priority, None, "malformed: ignored");
        assert_eq!(message.properties.timestamp, Some(1_700_000_000));
        let headers = message.properties.headers.unwrap();
        assert_eq!(headers.get("trace"), Some(&FieldValue::string("abc")));
        assert_eq!(headers.get("empty"), Some(&FieldValue::Void));
        assert_eq!(headers.len(), 2, "a type list that does not fit is ignored");
    }

    #[test]
    fn long_or_binary_keys_become_short_text() {
        let record = Record {
            offset: 0,
            timestamp: -1,
            key: Some(Bytes::from(vec![b'k'; 300])),
            value: Some(Bytes::from_static(b"v")),
            headers: Vec::new(),
        };
        let message = record_to_message(&record);
        assert_eq!(message.routing_key.len(), 255);
        assert_eq!(
            message.properties.timestamp, None,
            "negative timestamps are dropped"
        );
    }

    fn header_value() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            any::<i32>().prop_map(FieldValue::I32),
            any::<i64>().prop_map(FieldValue::I64),
            any::<bool>().prop_map(FieldValue::Bool),
            "[ -~]{0,20}".prop_map(FieldValue::string),
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|b| FieldValue::ByteArray(Bytes::from(b))),
            Just(FieldValue::Void),
            any::<u64>().prop_map(FieldValue::Timestamp),
        ]
    }

    proptest! {
        #[test]
        fn any_message_round_trips(
            exchange in "[a-z.]{0,20}",
            routing_key in "[a-z.#*]{0,40}",
            headers in proptest::option::of(
                proptest::collection::vec(("(amqp\\.)?[a-z-]{1,12}", header_value()), 0..8)),
            content_type in proptest::option::of("[a-z/]{1,20}"),
            delivery_mode in proptest::option::of(1u8..=2),
            priority in proptest::option::of(any::<u8>()),
            timestamp in proptest::option::of(any::<u64>()),
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let properties = Properties {
                content_type,
                delivery_mode,
                priority,
                timestamp,
                headers: headers.map(|h| h.into_iter().collect()),
                ..Properties::default()
            };
            let message = Message::new(exchange, routing_key, properties, Bytes::from(body));
            let record = decode(&message_to_batch(&message, 7, false));
            prop_assert_eq!(record_to_message(&record), message);
        }
    }
}
