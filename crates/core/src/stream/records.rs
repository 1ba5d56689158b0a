//! The records inside a batch: decompression (bounded) and the v2 record layout.
//!
//! ```text
//! record:  length varint | attributes int8 | timestamp_delta varlong | offset_delta varint
//!          | key_len varint (-1 null) | key | value_len varint (-1 null) | value
//!          | header_count varint | { key_len varint | key | value_len varint | value }*
//! ```
//! Varints are zigzag-encoded (protobuf style). Snappy data may be raw or in xerial's
//! framing (the Java client's `SnappyOutputStream`); LZ4 is the LZ4 frame format.
//!
//! # Invariants
//! - Decompressed output is capped at the caller's limit: a small batch cannot expand into
//!   unbounded memory (a decompression bomb fails with [`BatchError::Records`]).
//! - Every length is checked against the bytes that remain before slicing; keys, values and
//!   headers are zero-copy slices of the (decompressed) records buffer.

use std::io::Read;

use bytes::Bytes;

use super::batch::{BatchError, Compression, RecordBatch};

/// One record, with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

fn bad(reason: impl Into<String>) -> BatchError {
    BatchError::Records {
        reason: reason.into(),
    }
}

/// The records section of `batch`, decompressed, at most `limit` bytes.
pub fn decompressed(batch: &RecordBatch, limit: usize) -> Result<Bytes, BatchError> {
    let raw = batch.records();
    let reader: Box<dyn Read + '_> = match batch.compression() {
        Compression::None => return Ok(raw),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&raw[..])),
        Compression::Snappy => return snappy(&raw, limit),
        Compression::Lz4 => {
            Box::new(lz4::Decoder::new(&raw[..]).map_err(|e| bad(format!("lz4: {e}")))?)
        }
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(&raw[..]).map_err(|e| bad(format!("zstd: {e}")))?,
        ),
    };
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("decompression failed: {e}")))?;
    if out.len() > limit {
        return Err(bad(format!(
            "records decompress to more than {limit} bytes"
        )));
    }
    Ok(Bytes::from(out))
}

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

/// Snappy, raw or xerial-framed (8-byte magic, two int32 versions, then int32-length blocks).
fn snappy(raw: &[u8], limit: usize) -> Result<Bytes, BatchError> {
    let one = |block: &[u8], room: usize| -> Result<Vec<u8>, BatchError> {
        let len = snap::raw::decompress_len(block).map_err(|e| bad(format!("snappy: {e}")))?;
        if len > room {
            return Err(bad(format!(
                "records decompress to more than {limit} bytes"
            )));
        }
        snap::raw::Decoder::new()
            .decompress_vec(block)
            .map_err(|e| bad(format!("snappy: {e}")))
    };
    if !raw.starts_with(XERIAL_MAGIC) {
        return one(raw, limit).map(Bytes::from);
    }
    let mut rest = raw
        .get(16..)
        .ok_or_else(|| bad("snappy: truncated xerial header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("snappy: truncated block length"))?;
        let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
        let block = tail
            .get(..len)
            .ok_or_else(|| bad("snappy: truncated block"))?;
        out.extend_from_slice(&one(block, limit.saturating_sub(out.len()))?);
        rest = tail.get(len..).unwrap_or_default();
    }
    Ok(Bytes::from(out))
}

/// A cursor over decompressed records.
struct Cursor {
    buf: Bytes,
    pos: usize,
}

impl Cursor {
    fn byte(&mut self) -> Result<u8, BatchError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| bad("truncated record"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varlong(&mut self) -> Result<i64, BatchError> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                let value = (raw >> 1) as i64 ^ -((raw & 1) as i64);
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        i32::try_from(self.varlong()?).map_err(|_| bad("varint out of range"))
    }

    fn bytes(&mut self, len: usize) -> Result<Bytes, BatchError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.buf.len());
        let end = end.ok_or_else(|| bad(format!("field of {len} bytes runs past the records")))?;
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    fn nullable(&mut self) -> Result<Option<Bytes>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(bad(format!("negative length {n}"))),
            n => self
                .bytes(usize::try_from(n).unwrap_or(usize::MAX))
                .map(Some),
        }
    }
}

/// Calls `each` for every record of `batch` in order, stopping early when it returns
/// `false`. Decompresses at most `limit` bytes. Checks that offset deltas run 0, 1, 2, ...
/// and that the count matches the header.
pub fn for_each(
    batch: &RecordBatch,
    limit: usize,
    mut each: impl FnMut(Record) -> bool,
) -> Result<(), BatchError> {
    let buf = decompressed(batch, limit)?;
    let mut cursor = Cursor { buf, pos: 0 };
    let count = batch.record_count();
    let base_offset = batch.base_offset();
    let base_ts = batch.base_timestamp();
    let append_time = batch.is_log_append_time().then(|| batch.max_timestamp());
    for i in 0..count {
        let length = cursor.varint()?;
        let length = usize::try_from(length).map_err(|_| bad(format!("record length {length}")))?;
        let end = cursor.pos.saturating_add(length);
        if end > cursor.buf.len() {
            return Err(bad(format!(
                "record {i} of {length} bytes runs past the records"
            )));
        }
        let _attributes = cursor.byte()?;
        let ts_delta = cursor.varlong()?;
        let offset_delta = cursor.varint()?;
        if offset_delta != i {
            return Err(bad(format!("record {i} has offset delta {offset_delta}")));
        }
        let key = cursor.nullable()?;
        let value = cursor.nullable()?;
        let header_count = cursor.varint()?;
        let mut headers = Vec::with_capacity(usize::try_from(header_count).unwrap_or(0).min(64));
        for _ in 0..header_count {
            let key = cursor.nullable()?.ok_or_else(|| bad("null header key"))?;
            headers.push((key, cursor.nullable()?));
        }
        if cursor.pos != end {
            return Err(bad(format!(
                "record {i} length {length} does not match its fields"
            )));
        }
        let record = Record {
            offset: base_offset.saturating_add(i64::from(offset_delta)),
            timestamp: append_time.unwrap_or_else(|| base_ts.saturating_add(ts_delta)),
            key,
            value,
            headers,
        };
        if !each(record) {
            return Ok(());
        }
    }
    if cursor.pos != cursor.buf.len() {
        return Err(bad(format!(
            "{} bytes after the last record",
            cursor.buf.len() - cursor.pos
        )));
    }
    Ok(())
}

/// Checks the records of an uncompressed batch (cheap: no copies, no decompression).
pub fn validate_uncompressed(batch: &RecordBatch) -> Result<(), BatchError> {
    if batch.compression() != Compression::None {
        return Ok(());
    }
    for_each(batch, usize::MAX, |_| true)
}
