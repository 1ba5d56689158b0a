//! One AMQP header value as Kafka header bytes, and back.
//!
//! A Kafka header value is plain bytes, so the AMQP type travels separately (one letter per
//! header in the reserved `amqp.types` header, see `mapping`). The bytes are chosen so Kafka
//! applications can read the common types without knowing AMQP:
//!
//! ```text
//! letter  AMQP type                    Kafka header value
//! S       long string                  the string's bytes (UTF-8 as published)
//! x       byte array                   the bytes
//! t       bool                         "true" / "false"
//! b B s u I i l                        i8 u8 i16 u16 i32 u32 i64, decimal ASCII ("-42")
//! f d     f32 f64                      shortest decimal that reads back exactly ("1.5",
//!                                      "NaN", "inf", "-inf")
//! D       decimal (scale, value)       decimal ASCII with `scale` digits after a point
//!                                      ("1.50" is scale 2, value 150)
//! T       timestamp                    seconds since the epoch, decimal ASCII
//! V       void                         null
//! A       array                        AMQP 0-9-1 encoding: u32 length, tagged values
//! F       table                        AMQP 0-9-1 encoding: u32 length, entries
//! ```
//! Every value converts back to the same type and value (floats bit for bit except NaN
//! payloads).

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

use crate::message::FieldValue;
use crate::message::wire::{self, Reader, WireError};

/// The type letter of `value` (RabbitMQ's field type tags).
pub(crate) fn letter(value: &FieldValue) -> u8 {
    match value {
        FieldValue::Bool(_) => b't',
        FieldValue::I8(_) => b'b',
        FieldValue::U8(_) => b'B',
        FieldValue::I16(_) => b's',
        FieldValue::U16(_) => b'u',
        FieldValue::I32(_) => b'I',
        FieldValue::U32(_) => b'i',
        FieldValue::I64(_) => b'l',
        FieldValue::F32(_) => b'f',
        FieldValue::F64(_) => b'd',
        FieldValue::Decimal { .. } => b'D',
        FieldValue::LongString(_) => b'S',
        FieldValue::ByteArray(_) => b'x',
        FieldValue::Array(_) => b'A',
        FieldValue::Timestamp(_) => b'T',
        FieldValue::Table(_) => b'F',
        FieldValue::Void => b'V',
    }
}

fn text(s: String) -> Option<Cow<'static, [u8]>> {
    Some(Cow::Owned(s.into_bytes()))
}

/// The Kafka header value of `value` (`None`: a null value).
pub(crate) fn encode(value: &FieldValue) -> Option<Cow<'_, [u8]>> {
    match value {
        FieldValue::LongString(b) | FieldValue::ByteArray(b) => Some(Cow::Borrowed(b)),
        FieldValue::Bool(v) => Some(Cow::Borrowed(if *v { b"true" } else { b"false" })),
        FieldValue::I8(v) => text(v.to_string()),
        FieldValue::U8(v) => text(v.to_string()),
        FieldValue::I16(v) => text(v.to_string()),
        FieldValue::U16(v) => text(v.to_string()),
        FieldValue::I32(v) => text(v.to_string()),
        FieldValue::U32(v) => text(v.to_string()),
        FieldValue::I64(v) => text(v.to_string()),
        FieldValue::Timestamp(v) => text(v.to_string()),
        // Rust prints the shortest decimal that parses back to the same float.
        FieldValue::F32(v) => text(v.to_string()),
        FieldValue::F64(v) => text(v.to_string()),
        FieldValue::Decimal { scale, value } => text(decimal_text(*scale, *value)),
        FieldValue::Array(items) => {
            let mut out = BytesMut::new();
            wire::encode_array(items, &mut out);
            Some(Cow::Owned(out.into()))
        }
        FieldValue::Table(table) => {
            let mut out = BytesMut::new();
            wire::encode_table(table, &mut out);
            Some(Cow::Owned(out.into()))
        }
        FieldValue::Void => None,
    }
}

fn decimal_text(scale: u8, value: u32) -> String {
    let digits = value.to_string();
    let scale = usize::from(scale);
    if scale == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{int}.{frac}")
}

fn parse_decimal(s: &str) -> Option<FieldValue> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || !all_digits(int)
        || !all_digits(frac)
        || (s.contains('.') && frac.is_empty())
    {
        return None;
    }
    let scale = u8::try_from(frac.len()).ok()?;
    let value = format!("{int}{frac}").parse::<u32>().ok()?;
    Some(FieldValue::Decimal { scale, value })
}

/// A table or array that is exactly `bytes` (its length prefix included), or `None`.
fn whole<T>(bytes: &Bytes, read: fn(&mut Reader) -> Result<T, WireError>) -> Option<T> {
    let mut reader = Reader::new(bytes.clone());
    let value = read(&mut reader).ok()?;
    (reader.remaining() == 0).then_some(value)
}

/// The AMQP value of Kafka header bytes typed `letter`; `None` if the bytes do not parse as
/// that type (the caller falls back to a long string).
pub(crate) fn decode(letter: u8, bytes: Option<&Bytes>) -> Option<FieldValue> {
    let Some(bytes) = bytes else {
        return Some(FieldValue::Void);
    };
    let s = || std::str::from_utf8(bytes).ok();
    Some(match letter {
        b'S' => FieldValue::LongString(bytes.clone()),
        b'x' => FieldValue::ByteArray(bytes.clone()),
        b't' => match s()? {
            "true" => FieldValue::Bool(true),
            "false" => FieldValue::Bool(false),
            _ => return None,
        },
        b'b' => FieldValue::I8(s()?.parse().ok()?),
        b'B' => FieldValue::U8(s()?.parse().ok()?),
        b's' => FieldValue::I16(s()?.parse().ok()?),
        b'u' => FieldValue::U16(s()?.parse().ok()?),
        b'I' => FieldValue::I32(s()?.parse().ok()?),
        b'i' => FieldValue::U32(s()?.parse().ok()?),
        b'l' => FieldValue::I64(s()?.parse().ok()?),
        b'T' => FieldValue::Timestamp(s()?.parse().ok()?),
        b'f' => FieldValue::F32(s()?.parse().ok()?),
        b'd' => FieldValue::F64(s()?.parse().ok()?),
        b'D' => parse_decimal(s()?)?,
        b'A' => FieldValue::Array(whole(bytes, Reader::field_array)?),
        b'F' => FieldValue::Table(whole(bytes, Reader::table)?),
        // A void value is null; bytes under a void letter are not ours.
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::FieldTable;

    fn round_trip(value: &FieldValue) -> Option<FieldValue> {
        let encoded = encode(value).map(|c| Bytes::from(c.into_owned()));
        decode(letter(value), encoded.as_ref())
    }

    #[test]
    fn every_type_converts_back_to_itself() {
        for (key, value) in wire::every_type().iter() {
            assert_eq!(round_trip(value).as_ref(), Some(value), "{key}");
        }
    }

    #[test]
    fn text_forms_are_what_kafka_applications_read() {
        let text = |v: FieldValue| encode(&v).map(|c| String::from_utf8(c.into_owned()).unwrap());
        assert_eq!(text(FieldValue::I32(-42)).as_deref(), Some("-42"));
        assert_eq!(text(FieldValue::Bool(false)).as_deref(), Some("false"));
        assert_eq!(text(FieldValue::F64(0.1)).as_deref(), Some("0.1"));
        assert_eq!(
            text(FieldValue::F32(f32::NEG_INFINITY)).as_deref(),
            Some("-inf")
        );
        assert_eq!(
            text(FieldValue::Decimal {
                scale: 2,
                value: 150
            })
            .as_deref(),
            Some("1.50")
        );
        assert_eq!(
            text(FieldValue::Decimal { scale: 3, value: 5 }).as_deref(),
            Some("0.005")
        );
        assert_eq!(text(FieldValue::Void), None);
        assert_eq!(decode(b'I', Some(&Bytes::from_static(b"x"))), None);
        assert_eq!(decode(b'D', Some(&Bytes::from_static(b"1."))), None);
        assert_eq!(decode(b'?', Some(&Bytes::from_static(b"1"))), None);
    }

    fn scalar() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            any::<bool>().prop_map(FieldValue::Bool),
            any::<i8>().prop_map(FieldValue::I8),
            any::<u8>().prop_map(FieldValue::U8),
            any::<i16>().prop_map(FieldValue::I16),
            any::<u16>().prop_map(FieldValue::U16),
            any::<i32>().prop_map(FieldValue::I32),
            any::<u32>().prop_map(FieldValue::U32),
            any::<i64>().prop_map(FieldValue::I64),
            any::<f32>()
                .prop_filter("NaN never equals itself", |f| !f.is_nan())
                .prop_map(FieldValue::F32),
            any::<f64>()
                .prop_filter("NaN never equals itself", |f| !f.is_nan())
                .prop_map(FieldValue::F64),
            (any::<u8>(), any::<u32>())
                .prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| FieldValue::LongString(Bytes::from(b))),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| FieldValue::ByteArray(Bytes::from(b))),
            any::<u64>().prop_map(FieldValue::Timestamp),
            Just(FieldValue::Void),
        ]
    }

    fn value() -> impl Strategy<Value = FieldValue> {
        scalar().prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
                proptest::collection::vec(("[a-z]{1,8}", inner), 0..6).prop_map(|entries| {
                    FieldValue::Table(entries.into_iter().collect::<FieldTable>())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_round_trips(v in value()) {
            prop_assert_eq!(round_trip(&v), Some(v));
        }
    }
}
