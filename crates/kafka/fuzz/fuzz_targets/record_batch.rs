//! Any bytes as a produced record batch: parsing, CRC, and walking (decompressing) its
//! records return, never panic; decompression stays within its limit.
#![no_main]

use ferrymq_core::stream::batch::RecordBatch;
use ferrymq_core::stream::records;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    if let Ok(batch) = RecordBatch::parse_single(bytes.clone()) {
        let _ = records::for_each(&batch, 1 << 20, |_| true);
    }
    // Stored bytes skip the CRC check: the record walk must cope with anything.
    if let Ok(batch) = RecordBatch::from_stored(bytes) {
        let _ = records::for_each(&batch, 1 << 20, |_| true);
    }
});
