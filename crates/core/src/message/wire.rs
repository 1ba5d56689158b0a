//! The AMQP 0-9-1 binary encoding of field tables and of the basic class's property list.
//!
//! It is the wire format the AMQP frontend speaks and also the storage format of the
//! properties of a queued message (see `queue::store`), so it lives here, beside the types it
//! encodes; the frontend re-exports it.
//!
//! ```text
//! table      := u32 byte-length, then entries: shortstr key, u8 type tag, value
//! array      := u32 byte-length, then values:  u8 type tag, value
//! tags       := t b B s u I i l L f d D S x A T F V   (see FieldValue)
//! properties := flags u16 (bit 15 down: content-type, content-encoding, headers,
//!               delivery-mode, priority, correlation-id, reply-to, expiration, message-id,
//!               timestamp, type, user-id, app-id, cluster-id; bit 0: another flags word
//!               follows, never for class basic), then each present property in that order
//! ```
//! Every length is checked against the bytes actually present before anything is
//! allocated, and nesting is bounded, so hostile input fails cleanly.

use bytes::{BufMut, Bytes, BytesMut};

use super::{FieldTable, FieldValue, Properties};

/// Deepest nesting of tables and arrays accepted.
const MAX_DEPTH: usize = 64;

/// Why bytes are not a valid field table or property list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
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
    pub fn take(&mut self, n: usize) -> Result<Bytes, WireError> {
        if self.remaining() < n {
            return Err(WireError::UnexpectedEof {
                need: n,
                have: self.remaining(),
            });
        }
        let slice = self.data.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self
            .data
            .get(self.pos..self.pos + N)
            .ok_or(WireError::UnexpectedEof {
                need: N,
                have: self.remaining(),
            })?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos += N;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A short string, decoded lossily (the wire does not promise UTF-8).
    pub fn short_string(&mut self) -> Result<String, WireError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub fn long_bytes(&mut self) -> Result<Bytes, WireError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub fn table(&mut self) -> Result<FieldTable, WireError> {
        self.table_at(0)
    }

    /// A field array (length prefix included).
    pub fn field_array(&mut self) -> Result<Vec<FieldValue>, WireError> {
        self.array_at(0)
    }

    fn array_at(&mut self, depth: usize) -> Result<Vec<FieldValue>, WireError> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep);
        }
        let mut inner = Reader::new(self.long_bytes()?);
        let mut items = Vec::new();
        while inner.remaining() > 0 {
            items.push(inner.value(depth)?);
        }
        Ok(items)
    }

    fn table_at(&mut self, depth: usize) -> Result<FieldTable, WireError> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep);
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

    fn value(&mut self, depth: usize) -> Result<FieldValue, WireError> {
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
            b'A' => FieldValue::Array(self.array_at(depth + 1)?),
            tag => return Err(WireError::UnknownType { tag }),
        })
    }
}

/// Decodes a whole table (length prefix included) from `bytes`.
pub fn decode_table(bytes: Bytes) -> Result<FieldTable, WireError> {
    Reader::new(bytes).table()
}

/// `s` cut to the 255 bytes a short string holds, at a character boundary.
pub fn short(s: &str) -> &str {
    let mut len = s.len().min(255);
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    s.get(..len).unwrap_or_default()
}

/// Writes a short string, cut to 255 bytes at a character boundary.
pub fn put_short_string(out: &mut BytesMut, s: &str) {
    let s = short(s);
    out.put_u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.put_slice(s.as_bytes());
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

/// Writes an array with its length prefix (no type tag).
pub fn encode_array(items: &[FieldValue], out: &mut BytesMut) {
    with_length(out, |out| {
        for item in items {
            encode_value(item, out);
        }
    });
}

/// Writes a table with its length prefix (no type tag).
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
            encode_array(items, out);
        }
    }
}

const FLAG_CONTENT_TYPE: u16 = 1 << 15;
const FLAG_CONTENT_ENCODING: u16 = 1 << 14;
const FLAG_HEADERS: u16 = 1 << 13;
const FLAG_DELIVERY_MODE: u16 = 1 << 12;
const FLAG_PRIORITY: u16 = 1 << 11;
const FLAG_CORRELATION_ID: u16 = 1 << 10;
const FLAG_REPLY_TO: u16 = 1 << 9;
const FLAG_EXPIRATION: u16 = 1 << 8;
const FLAG_MESSAGE_ID: u16 = 1 << 7;
const FLAG_TIMESTAMP: u16 = 1 << 6;
const FLAG_TYPE: u16 = 1 << 5;
const FLAG_USER_ID: u16 = 1 << 4;
const FLAG_APP_ID: u16 = 1 << 3;
const FLAG_CLUSTER_ID: u16 = 1 << 2;

/// Decodes a property flags word and the properties it announces.
pub fn decode_properties(r: &mut Reader) -> Result<Properties, WireError> {
    let flags = r.u16()?;
    // Continuation words carry no basic-class properties; skip them.
    let mut more = flags & 1 == 1;
    while more {
        more = r.u16()? & 1 == 1;
    }
    let mut p = Properties::default();
    let has = |bit: u16| flags & bit != 0;
    if has(FLAG_CONTENT_TYPE) {
        p.content_type = Some(r.short_string()?);
    }
    if has(FLAG_CONTENT_ENCODING) {
        p.content_encoding = Some(r.short_string()?);
    }
    if has(FLAG_HEADERS) {
        p.headers = Some(r.table()?);
    }
    if has(FLAG_DELIVERY_MODE) {
        p.delivery_mode = Some(r.u8()?);
    }
    if has(FLAG_PRIORITY) {
        p.priority = Some(r.u8()?);
    }
    if has(FLAG_CORRELATION_ID) {
        p.correlation_id = Some(r.short_string()?);
    }
    if has(FLAG_REPLY_TO) {
        p.reply_to = Some(r.short_string()?);
    }
    if has(FLAG_EXPIRATION) {
        p.expiration = Some(r.short_string()?);
    }
    if has(FLAG_MESSAGE_ID) {
        p.message_id = Some(r.short_string()?);
    }
    if has(FLAG_TIMESTAMP) {
        p.timestamp = Some(r.u64()?);
    }
    if has(FLAG_TYPE) {
        p.kind = Some(r.short_string()?);
    }
    if has(FLAG_USER_ID) {
        p.user_id = Some(r.short_string()?);
    }
    if has(FLAG_APP_ID) {
        p.app_id = Some(r.short_string()?);
    }
    if has(FLAG_CLUSTER_ID) {
        p.cluster_id = Some(r.short_string()?);
    }
    Ok(p)
}

/// Encodes properties (flags word and list) the way RabbitMQ does.
pub fn encode_properties(p: &Properties, out: &mut BytesMut) {
    let mut flags = 0u16;
    let mut set = |present: bool, bit: u16| {
        if present {
            flags |= bit;
        }
    };
    set(p.content_type.is_some(), FLAG_CONTENT_TYPE);
    set(p.content_encoding.is_some(), FLAG_CONTENT_ENCODING);
    set(p.headers.is_some(), FLAG_HEADERS);
    set(p.delivery_mode.is_some(), FLAG_DELIVERY_MODE);
    set(p.priority.is_some(), FLAG_PRIORITY);
    set(p.correlation_id.is_some(), FLAG_CORRELATION_ID);
    set(p.reply_to.is_some(), FLAG_REPLY_TO);
    set(p.expiration.is_some(), FLAG_EXPIRATION);
    set(p.message_id.is_some(), FLAG_MESSAGE_ID);
    set(p.timestamp.is_some(), FLAG_TIMESTAMP);
    set(p.kind.is_some(), FLAG_TYPE);
    set(p.user_id.is_some(), FLAG_USER_ID);
    set(p.app_id.is_some(), FLAG_APP_ID);
    set(p.cluster_id.is_some(), FLAG_CLUSTER_ID);
    out.put_u16(flags);
    let short = |out: &mut BytesMut, s: &Option<String>| {
        if let Some(s) = s {
            put_short_string(out, s);
        }
    };
    short(out, &p.content_type);
    short(out, &p.content_encoding);
    if let Some(h) = &p.headers {
        encode_table(h, out);
    }
    if let Some(v) = p.delivery_mode {
        out.put_u8(v);
    }
    if let Some(v) = p.priority {
        out.put_u8(v);
    }
    short(out, &p.correlation_id);
    short(out, &p.reply_to);
    short(out, &p.expiration);
    short(out, &p.message_id);
    if let Some(v) = p.timestamp {
        out.put_u64(v);
    }
    short(out, &p.kind);
    short(out, &p.user_id);
    short(out, &p.app_id);
    short(out, &p.cluster_id);
}

/// A table holding one value of every type, a nested table and array, and a repeated key
/// (tests, here and in the frontends).
#[cfg(any(test, feature = "test-support"))]
pub fn every_type() -> FieldTable {
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

/// A property list with every property set (tests, here and in the frontends).
#[cfg(any(test, feature = "test-support"))]
pub fn all_properties() -> Properties {
    let mut headers = FieldTable::new();
    headers.push("k", FieldValue::string("v"));
    Properties {
        content_type: Some("application/json".into()),
        content_encoding: Some("utf-8".into()),
        headers: Some(headers),
        delivery_mode: Some(2),
        priority: Some(7),
        correlation_id: Some("corr".into()),
        reply_to: Some("amq.rabbitmq.reply-to".into()),
        expiration: Some("60000".into()),
        message_id: Some("id-1".into()),
        timestamp: Some(1_700_000_000),
        kind: Some("type".into()),
        user_id: Some("guest".into()),
        app_id: Some("app".into()),
        cluster_id: Some("cluster".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(decode_table(bad), Err(WireError::UnknownType { tag: b'Z' }));
    }

    #[test]
    fn huge_lengths_and_deep_nesting_are_refused() {
        let huge = Bytes::from_static(b"\xff\xff\xff\xff");
        assert!(matches!(
            decode_table(huge),
            Err(WireError::UnexpectedEof { .. })
        ));
        let mut nested = FieldTable::new();
        for _ in 0..100 {
            let mut outer = FieldTable::new();
            outer.push("n", FieldValue::Table(nested));
            nested = outer;
        }
        let mut out = BytesMut::new();
        encode_table(&nested, &mut out);
        assert_eq!(decode_table(out.freeze()), Err(WireError::TooDeep));
    }

    #[test]
    fn long_short_strings_are_cut_at_a_character_boundary() {
        let mut out = BytesMut::new();
        put_short_string(&mut out, &"é".repeat(200));
        assert_eq!(out[0], 254);
        assert!(std::str::from_utf8(&out[1..]).is_ok());
    }

    #[test]
    fn properties_round_trip_and_every_prefix_fails() {
        let props = all_properties();
        let mut out = BytesMut::new();
        encode_properties(&props, &mut out);
        let bytes = out.freeze();
        let mut reader = Reader::new(bytes.clone());
        assert_eq!(decode_properties(&mut reader).unwrap(), props);
        assert_eq!(reader.remaining(), 0);
        for cut in 0..bytes.len() {
            assert!(
                decode_properties(&mut Reader::new(bytes.slice(..cut))).is_err(),
                "prefix {cut}"
            );
        }
        let mut empty = BytesMut::new();
        encode_properties(&Properties::default(), &mut empty);
        assert_eq!(&empty[..], &[0, 0]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_table(Bytes::from(data));
        }
    }
}
