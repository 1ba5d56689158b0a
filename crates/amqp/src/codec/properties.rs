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

use bytes::Bytes;
use ferrymq_core::message::Properties;

pub use ferrymq_core::message::wire::{decode_properties, encode_properties};

use super::table::{Reader, TableError};

/// A decoded content header.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    pub properties: Properties,
    /// Property flags and list exactly as received.
    pub raw: Bytes,
}

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

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use ferrymq_core::message::wire::all_properties;

    use super::*;

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
