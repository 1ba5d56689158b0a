//! Any frame payload: decoding (header, bounds walk, kafka-protocol) returns, never panics or
//! allocates without bound. `cargo fuzz run request` (seed corpus: tests/fixtures/*.bin).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferrymq_kafka::message::KafkaRequest::decode(bytes::Bytes::copy_from_slice(data));
    let _ = ferrymq_kafka::frame::decode_size(data, 1 << 20);
});
