//! Field tables on the wire, in RabbitMQ's dialect, decoded into ferrymq-core's
//! order-preserving [`FieldTable`] (and converted from amq-protocol's tables for method
//! arguments).
//!
//! ```text
//! table := u32 byte-length, then entries: shortstr key, u8 type tag, value
//! array := u32 byte-length, then values:  u8 type tag, value
//! tags  := t b B s u I i l L f d D S x A T F V   (see FieldValue)
//! ```
//! Every length is checked against the bytes actually present before anything is
//! allocated, and nesting is bounded, so hostile input fails cleanly.

use amq_protocol::types::{AMQPValue, FieldArray as AmqpArray, FieldTable as AmqpTable};
use bytes::{BufMut, Bytes, BytesMut};
use ferrymq_core::message::{FieldTable, FieldValue};

/// Deepest nesting of tables and arrays accepted.
const MAX_DEPTH: usize = 64;

/// Why bytes are not a valid field table or property list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("unexpected end of data: need {need} bytes, have {have}")]
    UnexpectedEof { need: usize, have: usize },
    #[error("unknown field type {tag:#04x}")]
    UnknownType { tag: u8 },
    #[error("field tables nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// A cursor over wire bytes that checks every read.
#[derive(Debug, Clone)]
pub struct Reader {
    data: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(data: Bytes) -> Self {
        Self { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes as a zero-copy slice.
    pub fn take(&mut self, n: usize) -> Result<Bytes, TableError> {
        if self.remaining() < n {
            return Err(TableError::UnexpectedEof {
                need: n,
                have: self.remaining(),
            });
        }
        let slice = self.data.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TableError> {
        let bytes = self
            .data
            .get(self.pos..self.pos + N)
            .ok_or(TableError::UnexpectedEof {
                need: N,
                have: self.remaining(),
            })?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos += N;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, TableError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, TableError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, TableError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, TableError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A short string, decoded lossily (the wire does not promise UTF-8).
    pub fn short_string(&mut self) -> Result<String, TableError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub fn long_bytes(&mut self) -> Result<Bytes, TableError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub fn table(&mut self) -> Result<FieldTable, TableError> {
        self.table_at(0)
    }

    fn table_at(&mut self, depth: usize) -> Result<FieldTable, TableError> {
        if depth > MAX_DEPTH {
            return Err(TableError::TooDeep);
        }
        let mut inner = Reader::new(self.long_bytes()?);
        let mut table = FieldTable::new();
        while inner.remaining() > 0 {
            let key = inner.short_string()?;
            let value = inner.value(depth)?;
            table.push(key, value);
        }
        Ok(table)
    }

    fn value(&mut self, depth: usize) -> Result<FieldValue, TableError> {
        let tag = self.u8()?;
        Ok(match tag {
            b't' => FieldValue::Bool(self.u8()? != 0),
            b'b' => FieldValue::I8(i8::from_be_bytes(self.array()?)),
            b'B' => FieldValue::U8(self.u8()?),
            b's' => FieldValue::I16(i16::from_be_bytes(self.array()?)),
            b'u' => FieldValue::U16(self.u16()?),
            b'I' => FieldValue::I32(i32::from_be_bytes(self.array()?)),
            b'i' => FieldValue::U32(self.u32()?),
            b'l' | b'L' => FieldValue::I64(i64::from_be_bytes(self.array()?)),
            b'f' => FieldValue::F32(f32::from_be_bytes(self.array()?)),
            b'd' => FieldValue::F64(f64::from_be_bytes(self.array()?)),
            b'D' => FieldValue::Decimal {
                scale: self.u8()?,
                value: self.u32()?,
            },
            b'S' => FieldValue::LongString(self.long_bytes()?),
            b'x' => FieldValue::ByteArray(self.long_bytes()?),
            b'T' => FieldValue::Timestamp(self.u64()?),
            b'V' => FieldValue::Void,
            b'F' => FieldValue::Table(self.table_at(depth + 1)?),
            b'A' => {
                if depth + 1 > MAX_DEPTH {
                    return Err(TableError::TooDeep);
                }
                let mut inner = Reader::new(self.long_bytes()?);
                let mut items = Vec::new();
                while inner.remaining() > 0 {
                    items.push(inner.value(depth + 1)?);
                }
                FieldValue::Array(items)
            }
            tag => return Err(TableError::UnknownType { tag }),
        })
    }
}

/// Decodes a whole table (length prefix included) from `bytes`.
pub fn decode_table(bytes: Bytes) -> Result<FieldTable, TableError> {
    Reader::new(bytes).table()
}

/// Writes a short string, cut to 255 bytes at a character boundary.
pub fn put_short_string(out: &mut BytesMut, s: &str) {
    let mut len = s.len().min(255);
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    out.put_u8(u8::try_from(len).unwrap_or(u8::MAX));
    out.put_slice(s.as_bytes().get(..len).unwrap_or_default());
}

fn put_long(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.put_slice(bytes);
}

/// Writes `body` preceded by its u32 length, patched in after.
fn with_length(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let at = out.len();
    out.put_u32(0);
    body(out);
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

pub fn encode_table(table: &FieldTable, out: &mut BytesMut) {
    with_length(out, |out| {
        for (key, value) in table.iter() {
            put_short_string(out, key);
            encode_value(value, out);
        }
    });
}

fn encode_value(value: &FieldValue, out: &mut BytesMut) {
    match value {
        FieldValue::Bool(v) => {
            out.put_u8(b't');
            out.put_u8(u8::from(*v));
        }
        FieldValue::I8(v) => {
            out.put_u8(b'b');
            out.put_i8(*v);
        }
        FieldValue::U8(v) => {
            out.put_u8(b'B');
            out.put_u8(*v);
        }
        FieldValue::I16(v) => {
            out.put_u8(b's');
            out.put_i16(*v);
        }
        FieldValue::U16(v) => {
            out.put_u8(b'u');
            out.put_u16(*v);
        }
        FieldValue::I32(v) => {
            out.put_u8(b'I');
            out.put_i32(*v);
        }
        FieldValue::U32(v) => {
            out.put_u8(b'i');
            out.put_u32(*v);
        }
        FieldValue::I64(v) => {
            out.put_u8(b'l');
            out.put_i64(*v);
        }
        FieldValue::F32(v) => {
            out.put_u8(b'f');
            out.put_f32(*v);
        }
        FieldValue::F64(v) => {
            out.put_u8(b'd');
            out.put_f64(*v);
        }
        FieldValue::Decimal { scale, value } => {
            out.put_u8(b'D');
            out.put_u8(*scale);
            out.put_u32(*value);
        }
        FieldValue::LongString(v) => {
            out.put_u8(b'S');
            put_long(out, v);
        }
        FieldValue::ByteArray(v) => {
            out.put_u8(b'x');
            put_long(out, v);
        }
        FieldValue::Timestamp(v) => {
            out.put_u8(b'T');
            out.put_u64(*v);
        }
        FieldValue::Void => out.put_u8(b'V'),
        FieldValue::Table(t) => {
            out.put_u8(b'F');
            encode_table(t, out);
        }
        FieldValue::Array(items) => {
            out.put_u8(b'A');
            with_length(out, |out| {
                for item in items {
                    encode_value(item, out);
                }
            });
        }
    }
}

/// Converts a method argument table parsed by amq-protocol.
pub fn from_amqp_table(table: &AmqpTable) -> FieldTable {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), from_amqp_value(v)))
        .collect()
}

fn from_amqp_value(value: &AMQPValue) -> FieldValue {
    match value {
        AMQPValue::Boolean(v) => FieldValue::Bool(*v),
        AMQPValue::ShortShortInt(v) => FieldValue::I8(*v),
        AMQPValue::ShortShortUInt(v) => FieldValue::U8(*v),
        AMQPValue::ShortInt(v) => FieldValue::I16(*v),
        AMQPValue::ShortUInt(v) => FieldValue::U16(*v),
        AMQPValue::LongInt(v) => FieldValue::I32(*v),
        AMQPValue::LongUInt(v) => FieldValue::U32(*v),
        AMQPValue::LongLongInt(v) => FieldValue::I64(*v),
        AMQPValue::Float(v) => FieldValue::F32(*v),
        AMQPValue::Double(v) => FieldValue::F64(*v),
        AMQPValue::DecimalValue(d) => FieldValue::Decimal {
            scale: d.scale,
            value: d.value,
        },
        AMQPValue::ShortString(s) => FieldValue::string(s.as_str()),
        AMQPValue::LongString(s) => FieldValue::LongString(Bytes::copy_from_slice(s.as_bytes())),
        AMQPValue::ByteArray(b) => FieldValue::ByteArray(Bytes::copy_from_slice(b.as_slice())),
        AMQPValue::FieldArray(items) => {
            FieldValue::Array(items.as_slice().iter().map(from_amqp_value).collect())
        }
        AMQPValue::Timestamp(t) => FieldValue::Timestamp(*t),
        AMQPValue::FieldTable(t) => FieldValue::Table(from_amqp_table(t)),
        AMQPValue::Void => FieldValue::Void,
    }
}

/// Converts a table for an outgoing method built with amq-protocol.
pub fn to_amqp_table(table: &FieldTable) -> AmqpTable {
    let mut out = AmqpTable::default();
    for (k, v) in table.iter() {
        out.insert(k.into(), to_amqp_value(v));
    }
    out
}

fn to_amqp_value(value: &FieldValue) -> AMQPValue {
    match value {
        FieldValue::Bool(v) => AMQPValue::Boolean(*v),
        FieldValue::I8(v) => AMQPValue::ShortShortInt(*v),
        FieldValue::U8(v) => AMQPValue::ShortShortUInt(*v),
        FieldValue::I16(v) => AMQPValue::ShortInt(*v),
        FieldValue::U16(v) => AMQPValue::ShortUInt(*v),
        FieldValue::I32(v) => AMQPValue::LongInt(*v),
        FieldValue::U32(v) => AMQPValue::LongUInt(*v),
        FieldValue::I64(v) => AMQPValue::LongLongInt(*v),
        FieldValue::F32(v) => AMQPValue::Float(*v),
        FieldValue::F64(v) => AMQPValue::Double(*v),
        FieldValue::Decimal { scale, value } => {
            AMQPValue::DecimalValue(amq_protocol::types::DecimalValue {
                scale: *scale,
                value: *value,
            })
        }
        FieldValue::LongString(b) => AMQPValue::LongString(b.to_vec().into()),
        FieldValue::ByteArray(b) => AMQPValue::ByteArray(b.to_vec().into()),
        FieldValue::Array(items) => {
            let mut array = AmqpArray::default();
            for item in items {
                array.push(to_amqp_value(item));
            }
            AMQPValue::FieldArray(array)
        }
        FieldValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        FieldValue::Table(t) => AMQPValue::FieldTable(to_amqp_table(t)),
        FieldValue::Void => AMQPValue::Void,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_type() -> FieldTable {
        let mut inner = FieldTable::new();
        inner.push("n", FieldValue::I32(-1));
        let mut t = FieldTable::new();
        t.push("t", FieldValue::Bool(true));
        t.push("b", FieldValue::I8(-2));
        t.push("B", FieldValue::U8(250));
        t.push("s", FieldValue::I16(-300));
        t.push("u", FieldValue::U16(60000));
        t.push("I", FieldValue::I32(-70000));
        t.push("i", FieldValue::U32(4_000_000_000));
        t.push("l", FieldValue::I64(-5_000_000_000));
        t.push("f", FieldValue::F32(1.5));
        t.push("d", FieldValue::F64(-2.25));
        t.push(
            "D",
            FieldValue::Decimal {
                scale: 2,
                value: 12345,
            },
        );
        t.push(
            "S",
            FieldValue::LongString(Bytes::from_static(b"\xffbinary")),
        );
        t.push("x", FieldValue::ByteArray(Bytes::from_static(b"\x00\x01")));
        t.push("T", FieldValue::Timestamp(1_700_000_000));
        t.push("V", FieldValue::Void);
        t.push("F", FieldValue::Table(inner));
        t.push(
            "A",
            FieldValue::Array(vec![FieldValue::string("a"), FieldValue::Array(vec![])]),
        );
        t.push("dup", FieldValue::I8(1));
        t.push("dup", FieldValue::I8(2));
        t
    }

    #[test]
    fn every_type_round_trips_in_order() {
        let table = every_type();
        let mut out = BytesMut::new();
        encode_table(&table, &mut out);
        let decoded = decode_table(out.clone().freeze()).unwrap();
        assert_eq!(decoded, table);
        let mut again = BytesMut::new();
        encode_table(&decoded, &mut again);
        assert_eq!(again, out);
    }

    #[test]
    fn every_prefix_fails_cleanly() {
        let mut out = BytesMut::new();
        encode_table(&every_type(), &mut out);
        let bytes = out.freeze();
        for cut in 0..bytes.len() {
            assert!(decode_table(bytes.slice(..cut)).is_err(), "prefix {cut}");
        }
    }

    #[test]
    fn big_l_reads_as_signed_long_and_unknown_tags_fail() {
        let bytes = Bytes::from_static(b"\x00\x00\x00\x0b\x01kL\xff\xff\xff\xff\xff\xff\xff\xff");
        let t = decode_table(bytes).unwrap();
        assert_eq!(t.get("k"), Some(&FieldValue::I64(-1)));
        let bad = Bytes::from_static(b"\x00\x00\x00\x03\x01kZ");
        assert_eq!(
            decode_table(bad),
            Err(TableError::UnknownType { tag: b'Z' })
        );
    }

    #[test]
    fn huge_lengths_and_deep_nesting_are_refused() {
        let huge = Bytes::from_static(b"\xff\xff\xff\xff");
        assert!(matches!(
            decode_table(huge),
            Err(TableError::UnexpectedEof { .. })
        ));
        let mut nested = FieldTable::new();
        for _ in 0..100 {
            let mut outer = FieldTable::new();
            outer.push("n", FieldValue::Table(nested));
            nested = outer;
        }
        let mut out = BytesMut::new();
        encode_table(&nested, &mut out);
        assert_eq!(decode_table(out.freeze()), Err(TableError::TooDeep));
    }

    #[test]
    fn amq_protocol_tables_convert_both_ways() {
        let table = every_type();
        let mut unique = FieldTable::new();
        for (k, v) in table.iter().filter(|(k, _)| *k != "dup") {
            unique.push(k, v.clone());
        }
        let round = from_amqp_table(&to_amqp_table(&unique));
        assert!(round.loosely_eq(&unique));
    }

    #[test]
    fn long_short_strings_are_cut_at_a_character_boundary() {
        let mut out = BytesMut::new();
        put_short_string(&mut out, &"é".repeat(200));
        assert_eq!(out[0], 254);
        assert!(std::str::from_utf8(&out[1..]).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_table(Bytes::from(data));
        }
    }
}
