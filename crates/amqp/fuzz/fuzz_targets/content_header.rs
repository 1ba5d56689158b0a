//! Any content-header payload decodes or fails; what decodes re-encodes to the same
//! property bytes (the byte-exact promise). `cargo fuzz run content_header`.
#![no_main]

use bytes::{Bytes, BytesMut};
use ferrymq_amqp::codec::properties::{ContentHeader, encode_properties};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(header) = ContentHeader::decode(&payload) {
        let mut again = BytesMut::new();
        encode_properties(&header.properties, &mut again);
        // Encoding is canonical ('L' becomes 'l', booleans 0/1, continuation flags dropped),
        // so only the decoded values must survive another round.
        let round = {
            let mut p = BytesMut::from(&data[..12]);
            p.extend_from_slice(&again);
            ContentHeader::decode(&p.freeze()).expect("re-encoded properties decode")
        };
        assert_eq!(round.properties, header.properties);
    }
});
