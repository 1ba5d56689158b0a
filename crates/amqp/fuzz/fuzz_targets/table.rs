//! Any field table (length prefix included) decodes or fails without unbounded allocation
//! or recursion. `cargo fuzz run table`.
#![no_main]

use ferrymq_amqp::codec::table::decode_table;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_table(bytes::Bytes::copy_from_slice(data));
});
