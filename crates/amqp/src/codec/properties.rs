//! Content headers: the frame between a content-carrying method and its body frames.
//!
//! ```text
//! class-id u16 | weight u16 (0) | body-size u64 | property-flags u16 [u16...] | properties
//! flags, bit 15 down: content-type, content-encoding, headers, delivery-mode, priority,
//!   correlation-id, reply-to, expiration, message-id, timestamp, type, user-id, app-id,
//!   cluster-id; bit 0 set means another flags word follows (never for class basic).
//! ```
//! The property bytes (flags onward) are kept as received in [`ContentHeader::raw`] so an
//! unchanged message goes back out byte for byte.

use bytes::{BufMut, Bytes, BytesMut};
use ferrymq_core::message::Properties;

use super::table::{Reader, TableError, encode_table, put_short_string};

/// A decoded content header.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    pub properties: Properties,
    /// Property flags and list exactly as received.
    pub raw: Bytes,
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

impl ContentHeader {
    /// Decodes a content header frame's payload.
    pub fn decode(payload: &Bytes) -> Result<Self, TableError> {
        let mut r = Reader::new(payload.clone());
        let class_id = r.u16()?;
        let _weight = r.u16()?;
        let body_size = r.u64()?;
        let start = r.position();
        let properties = decode_properties(&mut r)?;
        Ok(Self {
            class_id,
            body_size,
            properties,
            raw: payload.slice(start..),
        })
    }
}

/// Decodes a property flags word and the properties it announces.
pub fn decode_properties(r: &mut Reader) -> Result<Properties, TableError> {
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

#[cfg(test)]
mod tests {
    use ferrymq_core::message::{FieldTable, FieldValue};

    use super::*;

    fn all_properties() -> Properties {
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

    fn header_payload(props: &Properties, body_size: u64) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u16(60);
        out.put_u16(0);
        out.put_u64(body_size);
        encode_properties(props, &mut out);
        out.freeze()
    }

    #[test]
    fn all_fourteen_properties_round_trip() {
        let props = all_properties();
        let payload = header_payload(&props, 42);
        let header = ContentHeader::decode(&payload).unwrap();
        assert_eq!(header.class_id, 60);
        assert_eq!(header.body_size, 42);
        assert_eq!(header.properties, props);
        assert_eq!(header.raw, payload.slice(12..));
        let mut again = BytesMut::new();
        encode_properties(&header.properties, &mut again);
        assert_eq!(again.freeze(), header.raw);
    }

    #[test]
    fn empty_properties_are_a_zero_flags_word() {
        let mut out = BytesMut::new();
        encode_properties(&Properties::default(), &mut out);
        assert_eq!(&out[..], &[0, 0]);
    }

    #[test]
    fn every_prefix_fails_cleanly() {
        let payload = header_payload(&all_properties(), 1);
        for cut in 0..payload.len() {
            assert!(
                ContentHeader::decode(&payload.slice(..cut)).is_err(),
                "prefix {cut}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            let _ = ContentHeader::decode(&Bytes::from(data));
        }
    }
}
