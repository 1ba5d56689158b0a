//! Any content-header payload decodes or fails; once decoded, encoding is stable: the
//! encoding of what decodes from an encoding is that same encoding (the broker re-encodes
//! only messages it changed; non-UTF-8 short strings are read lossily, so the first
//! encoding may differ from the input). `cargo fuzz run content_header`.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use ferrymq_amqp::codec::properties::{ContentHeader, encode_properties};
use libfuzzer_sys::fuzz_target;

fn payload(properties: &[u8]) -> Bytes {
    let mut p = BytesMut::new();
    p.put_u16(60);
    p.put_u16(0);
    p.put_u64(0);
    p.extend_from_slice(properties);
    p.freeze()
}

fn encode(header: &ContentHeader) -> Bytes {
    let mut out = BytesMut::new();
    encode_properties(&header.properties, &mut out);
    out.freeze()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = ContentHeader::decode(&Bytes::copy_from_slice(data)) {
        let first = encode(&header);
        let again = ContentHeader::decode(&payload(&first)).expect("an encoding decodes");
        assert_eq!(encode(&again), first);
    }
});
