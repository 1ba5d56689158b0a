//! Encoding one record as a v2 record batch: what an AMQP publish to a stream stores.
//!
//! The batch is produced as pieces so the record's value (an AMQP body) is never copied into
//! a new buffer: the log writes the pieces one after the other.
//!
//! ```text
//! header  [u8; 61]   batch header (layout in `batch`), base offset patched at append
//! meta[..split]      record length | attributes 0 | timestamp delta 0 | offset delta 0
//!                    | key length | key | value length
//! value              the value bytes, as given (zero-copy)
//! meta[split..]      header count | { key length | key | value length | value }*
//! ```
//! Uncompressed, not idempotent (producer id -1, epoch -1, sequence -1), one record, so
//! `last_offset_delta` 0 and base timestamp = max timestamp = the record's timestamp. The
//! CRC-32C covers the header from `attributes` on and every piece after it.
//!
//! # Invariants
//! - The pieces concatenated are a batch [`super::batch::RecordBatch::parse`] accepts and
//!   [`super::records::for_each`] reads back field for field.

use bytes::{Bytes, BytesMut};

use super::batch::HEADER_LEN;

const CRC_START: usize = 21;
const LOG_APPEND_TIME: i16 = 1 << 3;

/// Zigzag varint (protobuf style) of `v`, as Kafka records encode lengths and deltas.
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let low7 = |z: u64| u8::try_from(z & 0x7f).unwrap_or(0);
    while z >= 0x80 {
        out.push(low7(z) | 0x80);
        z >>= 7;
    }
    out.push(low7(z));
}

#[cfg(test)]
fn varlong_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    let bits = 64 - z.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, len_i64(b.len()));
            out.extend_from_slice(b);
        }
    }
}

/// Collects the headers of the record being encoded.
#[derive(Debug, Default)]
pub struct Headers {
    buf: Vec<u8>,
    count: i64,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one header (`None`: a null value).
    pub fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        put_nullable(&mut self.buf, Some(key));
        put_nullable(&mut self.buf, value);
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// One record encoded as a batch, in pieces (see the module docs).
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    header: [u8; HEADER_LEN],
    meta: Vec<u8>,
    split: usize,
    value: Bytes,
    timestamp: i64,
}

impl EncodedBatch {
    /// Encodes one record. `log_append_time` marks the timestamp as the broker's (Kafka's
    /// `LogAppendTime` topics); `value` stays where it is.
    pub fn single(
        key: Option<&[u8]>,
        value: Bytes,
        headers: &Headers,
        timestamp: i64,
        log_append_time: bool,
    ) -> Self {
        let mut record_tail = Vec::with_capacity(headers.buf.len() + 5);
        put_varlong(&mut record_tail, headers.count);
        record_tail.extend_from_slice(&headers.buf);
        // attributes, timestamp delta, offset delta: one byte each.
        let mut body = vec![0u8, 0, 0];
        put_nullable(&mut body, key);
        put_varlong(&mut body, len_i64(value.len()));
        let record_len = body.len() + value.len() + record_tail.len();
        let mut meta = Vec::with_capacity(record_len - value.len() + 10);
        put_varlong(&mut meta, len_i64(record_len));
        meta.extend_from_slice(&body);
        let split = meta.len();
        meta.extend_from_slice(&record_tail);

        let total = HEADER_LEN + meta.len() + value.len();
        let mut header = [0u8; HEADER_LEN];
        let batch_length = i32::try_from(total - 12).unwrap_or(i32::MAX);
        let attributes: i16 = if log_append_time { LOG_APPEND_TIME } else { 0 };
        let mut at = 8;
        let mut put = |bytes: &[u8]| {
            if let Some(dst) = header.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
            at += bytes.len();
        };
        put(&batch_length.to_be_bytes());
        put(&0i32.to_be_bytes()); // partition leader epoch
        put(&[2]); // magic
        put(&[0; 4]); // crc, below
        put(&attributes.to_be_bytes());
        put(&0i32.to_be_bytes()); // last offset delta
        put(&timestamp.to_be_bytes()); // base timestamp
        put(&timestamp.to_be_bytes()); // max timestamp
        put(&(-1i64).to_be_bytes()); // producer id
        put(&(-1i16).to_be_bytes()); // producer epoch
        put(&(-1i32).to_be_bytes()); // base sequence
        put(&1i32.to_be_bytes()); // record count
        let (before, after) = meta.split_at(split);
        let mut crc = crc32c::crc32c(header.get(CRC_START..).unwrap_or_default());
        for piece in [before, &value[..], after] {
            crc = crc32c::crc32c_append(crc, piece);
        }
        if let Some(dst) = header.get_mut(17..21) {
            dst.copy_from_slice(&crc.to_be_bytes());
        }
        Self {
            header,
            meta,
            split,
            value,
            timestamp,
        }
    }

    /// The batch header (base offset 0 until the append patches it).
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// Everything after the header, in order.
    pub fn pieces(&self) -> [&[u8]; 3] {
        let (before, after) = self.meta.split_at(self.split.min(self.meta.len()));
        [before, &self.value, after]
    }

    /// Total encoded size.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.meta.len() + self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The record's (and the batch's max) timestamp.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The batch as one buffer (tests, tools; the append path writes the pieces).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        out.extend_from_slice(&self.header);
        for piece in self.pieces() {
            out.extend_from_slice(piece);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::RecordBatchDecoder;
    use proptest::prelude::*;

    use super::*;
    use crate::stream::batch::RecordBatch;
    use crate::stream::records;

    #[test]
    fn varints_match_their_lengths() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_len(v), "{v}");
        }
        let mut out = Vec::new();
        put_varlong(&mut out, 150);
        assert_eq!(out, [0xac, 0x02]);
    }

    fn sample(log_append_time: bool) -> EncodedBatch {
        let mut headers = Headers::new();
        headers.push(b"amqp.content-type", Some(b"text/plain"));
        headers.push(b"void", None);
        EncodedBatch::single(
            Some(b"rk"),
            Bytes::from_static(b"hello"),
            &headers,
            1_700_000_000_123,
            log_append_time,
        )
    }

    #[test]
    fn our_decoder_reads_what_the_encoder_wrote() {
        let encoded = sample(false);
        let batch = RecordBatch::parse_single(encoded.to_bytes()).unwrap();
        assert_eq!(batch.record_count(), 1);
        assert_eq!(batch.max_timestamp(), 1_700_000_000_123);
        assert_eq!(batch.producer_id(), -1);
        let mut seen = Vec::new();
        records::for_each(&batch, 1 << 20, |r| {
            seen.push(r);
            true
        })
        .unwrap();
        let [record] = seen.as_slice() else {
            panic!("{seen:?}")
        };
        assert_eq!(record.key.as_deref(), Some(&b"rk"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"hello"[..]));
        assert_eq!(record.timestamp, 1_700_000_000_123);
        assert_eq!(
            record.headers,
            vec![
                (
                    Bytes::from_static(b"amqp.content-type"),
                    Some(Bytes::from_static(b"text/plain"))
                ),
                (Bytes::from_static(b"void"), None),
            ]
        );
        let appended = RecordBatch::parse(sample(true).to_bytes()).unwrap();
        assert!(appended.is_log_append_time());
    }

    #[test]
    fn kafka_protocol_decodes_it_too() {
        let mut bytes = sample(false).to_bytes();
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        let [record] = set.records.as_slice() else {
            panic!("{:?}", set.records)
        };
        assert_eq!(record.key.as_deref(), Some(&b"rk"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"hello"[..]));
        assert_eq!(record.timestamp, 1_700_000_000_123);
        assert_eq!(record.producer_id, -1);
        assert_eq!(record.headers.len(), 2);
    }

    proptest! {
        #[test]
        fn any_record_round_trips(
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            value in proptest::collection::vec(any::<u8>(), 0..3000),
            headers in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..40),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))),
                0..20),
            timestamp in any::<i64>(),
        ) {
            let mut h = Headers::new();
            for (k, v) in &headers {
                h.push(k, v.as_deref());
            }
            let encoded = EncodedBatch::single(
                key.as_deref(), Bytes::from(value.clone()), &h, timestamp, false);
            let batch = RecordBatch::parse_single(encoded.to_bytes()).unwrap();
            let mut got = None;
            records::for_each(&batch, usize::MAX, |r| { got = Some(r); true }).unwrap();
            let got = got.unwrap();
            prop_assert_eq!(got.key.map(|k| k.to_vec()), key);
            prop_assert_eq!(got.value.map(|v| v.to_vec()), Some(value));
            prop_assert_eq!(got.timestamp, timestamp);
            let decoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = got
                .headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.as_ref().map(|v| v.to_vec())))
                .collect();
            prop_assert_eq!(decoded, headers);
        }
    }
}
