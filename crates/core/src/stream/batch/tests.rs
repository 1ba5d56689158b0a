use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as Codec, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::stream::records;

/// A v2 batch of `n` records built by kafka-protocol's encoder (an independent encoder).
pub(crate) fn encoded(n: i64, codec: Codec, producer_id: i64, base_sequence: i32) -> Bytes {
    encoded_as(n, codec, producer_id, base_sequence, false)
}

/// As [`encoded`], the records of a transaction when `transactional`.
pub(crate) fn encoded_as(
    n: i64,
    codec: Codec,
    producer_id: i64,
    base_sequence: i32,
    transactional: bool,
) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional,
            control: false,
            partition_leader_epoch: 0,
            delete_horizon: false,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i,
            // Non-idempotent batches carry base sequence -1; the encoder groups records whose
            // offset - sequence is constant, so keep counting from the base.
            sequence: base_sequence.wrapping_add(i32::try_from(i).unwrap()),
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}").repeat(3))),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .unwrap();
    buf.freeze()
}

#[test]
fn parses_and_reads_every_codec() {
    for codec in [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ] {
        let batch = RecordBatch::parse_single(encoded(5, codec, -1, -1)).unwrap();
        assert_eq!(batch.record_count(), 5);
        assert_eq!(batch.span(), 5);
        assert_eq!(batch.max_timestamp(), 1_700_000_000_004);
        let mut seen = Vec::new();
        records::for_each(&batch, 1 << 20, |r| {
            seen.push((r.offset, r.timestamp, r.key.unwrap(), r.headers.len()));
            true
        })
        .unwrap();
        assert_eq!(seen.len(), 5, "{codec:?}");
        assert_eq!(
            seen[3],
            (3, 1_700_000_000_003, Bytes::from_static(b"key-3"), 1)
        );
    }
}

#[test]
fn every_truncation_is_refused_without_panicking() {
    let full = encoded(3, Codec::None, -1, -1);
    for len in 0..full.len() {
        let err = RecordBatch::parse_single(full.slice(..len)).unwrap_err();
        assert!(err.is_corrupt(), "{len}: {err}");
    }
}

#[test]
fn a_flipped_bit_fails_the_checksum() {
    let full = encoded(3, Codec::Lz4, -1, -1);
    for at in [21, 30, 61, full.len() - 1] {
        let mut damaged = BytesMut::from(&full[..]);
        damaged[at] ^= 0x10;
        let err = RecordBatch::parse(damaged.freeze()).unwrap_err();
        assert!(matches!(err, BatchError::Checksum { .. }), "{at}: {err}");
    }
    // Base offset and leader epoch are outside the checksum.
    let mut patched = BytesMut::from(&full[..]);
    patched[0..8].copy_from_slice(&99u64.to_be_bytes());
    patched[12] = 7;
    assert_eq!(
        RecordBatch::parse(patched.freeze()).unwrap().base_offset(),
        99
    );
}

#[test]
fn two_batches_where_one_is_allowed_are_counted() {
    let one = encoded(2, Codec::None, -1, -1);
    let mut two = BytesMut::from(&one[..]);
    two.extend_from_slice(&one);
    assert_eq!(
        RecordBatch::parse_single(two.freeze()),
        Err(BatchError::BatchCount { count: 2 })
    );
}

#[test]
fn stored_header_patches_offset_and_log_append_time() {
    let batch = RecordBatch::parse(encoded(4, Codec::Gzip, -1, -1)).unwrap();
    let header = batch.stored_header(1000, None);
    let mut stored = BytesMut::from(&header[..]);
    stored.extend_from_slice(&batch.bytes()[HEADER_LEN..]);
    let reparsed = RecordBatch::parse(stored.freeze()).unwrap();
    assert_eq!(
        (reparsed.base_offset(), reparsed.is_log_append_time()),
        (1000, false)
    );

    let header = batch.stored_header(2000, Some(1_800_000_000_000));
    let mut stored = BytesMut::from(&header[..]);
    stored.extend_from_slice(&batch.bytes()[HEADER_LEN..]);
    let reparsed = RecordBatch::parse(stored.freeze()).unwrap();
    assert!(reparsed.is_log_append_time());
    assert_eq!(reparsed.max_timestamp(), 1_800_000_000_000);
    let mut times = Vec::new();
    records::for_each(&reparsed, 1 << 20, |r| {
        times.push((r.offset, r.timestamp));
        true
    })
    .unwrap();
    assert_eq!(times[0], (2000, 1_800_000_000_000));
    assert_eq!(times[3], (2003, 1_800_000_000_000));
}

#[test]
fn decompression_is_bounded() {
    let batch = RecordBatch::parse(encoded(200, Codec::Zstd, -1, -1)).unwrap();
    let err = records::for_each(&batch, 1024, |_| true).unwrap_err();
    assert!(err.to_string().contains("more than 1024"), "{err}");
}

#[test]
fn inconsistent_record_counts_are_refused() {
    let full = encoded(3, Codec::None, -1, -1);
    let mut bad = BytesMut::from(&full[..]);
    bad[57..61].copy_from_slice(&5i32.to_be_bytes());
    let crc = crc32c::crc32c(&bad[21..]);
    bad[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        RecordBatch::parse(bad.freeze()),
        Err(BatchError::RecordCount { .. })
    ));
}

#[test]
fn sequences_wrap() {
    let batch = RecordBatch::parse(encoded(3, Codec::None, 7, i32::MAX - 1)).unwrap();
    assert_eq!(
        (batch.base_sequence(), batch.last_sequence()),
        (i32::MAX - 1, 0)
    );
}
