//! Any byte stream after the protocol header: frames are split (size-checked from the
//! header), method payloads decoded, content headers decoded. Every call must return.
//! `cargo fuzz run frames corpus/frames ../tests/fixtures` (seed: the recorded pika session).
#![no_main]

use bytes::BytesMut;
use ferrymq_amqp::codec::properties::ContentHeader;
use ferrymq_amqp::codec::{AmqpFrame, FrameKind};
use ferrymq_amqp::codec::method::decode_method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = AmqpFrame::decode(&mut buf, 131_072) {
        match frame.kind {
            FrameKind::Method => {
                let _ = decode_method(&frame.payload);
            }
            FrameKind::Header => {
                let _ = ContentHeader::decode(&frame.payload);
            }
            FrameKind::Body | FrameKind::Heartbeat => {}
        }
    }
});
