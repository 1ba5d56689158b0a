//! Record batches (Kafka message format v2): the unit a stream stores, one per log entry.
//!
//! ```text
//! offset  field                  type    notes
//!      0  base_offset            int64   assigned by the broker on append
//!      8  batch_length           int32   bytes after this field (total = 12 + batch_length)
//!     12  partition_leader_epoch int32   set to 0 on append
//!     16  magic                  int8    2
//!     17  crc                    uint32  CRC-32C of bytes 21..end
//!     21  attributes             int16   bits 0-2 compression, 3 timestamp type (1 = log
//!                                        append time), 4 transactional, 5 control
//!     23  last_offset_delta      int32   record count - 1
//!     27  base_timestamp         int64
//!     35  max_timestamp          int64
//!     43  producer_id            int64   -1: not idempotent
//!     51  producer_epoch         int16
//!     53  base_sequence          int32
//!     57  record_count           int32
//!     61  records                        compressed as `attributes` says
//! ```
//! The base offset and leader epoch lie outside the checksum, so the broker rewrites them
//! without recomputing it; setting log-append time changes covered bytes and does.
//!
//! # Invariants
//! - [`RecordBatch::parse`] checks every length against the bytes present before reading
//!   and verifies the CRC; a batch it returns has `record_count == last_offset_delta + 1 >= 1`.
//! - Nothing here allocates in proportion to a length read from the bytes.

use bytes::Bytes;

/// Bytes before the records.
pub const HEADER_LEN: usize = 61;
const CRC_START: usize = 21;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// How the records of a batch are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// What is wrong with a batch. `Corrupt` ones are damaged in transit or storage (Kafka:
/// CORRUPT_MESSAGE); `Invalid` ones are well-formed but not acceptable (INVALID_RECORD or
/// UNSUPPORTED_COMPRESSION_TYPE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch truncated: {len} bytes, need {need}")]
    Truncated { len: usize, need: usize },
    #[error("record batch checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("record batch magic {magic} is not supported (only v2)")]
    Magic { magic: i8 },
    #[error("{count} record batches where exactly one is allowed")]
    BatchCount { count: usize },
    #[error(
        "record batch declares {record_count} records but last offset delta {last_offset_delta}"
    )]
    RecordCount {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("unknown compression codec {codec}")]
    Codec { codec: i16 },
    #[error("control and transactional batches are not supported")]
    Transactional,
    #[error("malformed records: {reason}")]
    Records { reason: String },
}

impl BatchError {
    /// Damage (as opposed to a well-formed batch the broker refuses).
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            Self::Truncated { .. } | Self::Checksum { .. } | Self::Records { .. }
        )
    }
}

/// A validated v2 record batch, borrowing the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    let mut v = [0; 2];
    if let Some(s) = b.get(at..at + 2) {
        v.copy_from_slice(s);
    }
    i16::from_be_bytes(v)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut v = [0; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    i32::from_be_bytes(v)
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut v = [0; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    i64::from_be_bytes(v)
}

/// The length of the batch at the start of `bytes` (from its header), if its header is there.
pub fn framed_len(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 12 {
        return None;
    }
    usize::try_from(be_i32(bytes, 8))
        .ok()
        .map(|n| n.saturating_add(12))
}

impl RecordBatch {
    /// Parses the single batch that `bytes` must consist of (as a Produce partition carries).
    pub fn parse_single(bytes: Bytes) -> Result<Self, BatchError> {
        let len = framed_len(&bytes).ok_or(BatchError::Truncated {
            len: bytes.len(),
            need: 12,
        })?;
        if len < bytes.len() {
            let mut count = 1;
            let mut rest = bytes.get(len..).unwrap_or_default();
            while let Some(next) = framed_len(rest) {
                count += 1;
                rest = rest.get(next..).unwrap_or_default();
            }
            return Err(BatchError::BatchCount { count });
        }
        Self::parse(bytes)
    }

    /// Parses and verifies one batch that is exactly `bytes`.
    pub fn parse(bytes: Bytes) -> Result<Self, BatchError> {
        let len = bytes.len();
        if len < HEADER_LEN {
            return Err(BatchError::Truncated {
                len,
                need: HEADER_LEN,
            });
        }
        let need = framed_len(&bytes).unwrap_or(usize::MAX);
        if need != len {
            return Err(BatchError::Truncated { len, need });
        }
        let magic = i8::from_be_bytes([bytes.get(16).copied().unwrap_or(0)]);
        if magic != 2 {
            return Err(BatchError::Magic { magic });
        }
        let stored = be_i32(&bytes, 17) as u32;
        let computed = crc32c::crc32c(bytes.get(CRC_START..).unwrap_or_default());
        if stored != computed {
            return Err(BatchError::Checksum { stored, computed });
        }
        let batch = Self { bytes };
        let (record_count, last_offset_delta) = (batch.record_count(), batch.last_offset_delta());
        if record_count < 1 || i64::from(record_count) != i64::from(last_offset_delta) + 1 {
            return Err(BatchError::RecordCount {
                record_count,
                last_offset_delta,
            });
        }
        let codec = batch.attributes() & 0x07;
        if codec > 4 {
            return Err(BatchError::Codec { codec });
        }
        Ok(batch)
    }

    /// Wraps stored bytes without verifying them again (the log checksums its entries).
    pub fn from_stored(bytes: Bytes) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                len: bytes.len(),
                need: HEADER_LEN,
            });
        }
        Ok(Self { bytes })
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn base_offset(&self) -> i64 {
        be_i64(&self.bytes, 0)
    }

    pub fn attributes(&self) -> i16 {
        be_i16(&self.bytes, 21)
    }

    pub fn compression(&self) -> Compression {
        match self.attributes() & 0x07 {
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => Compression::None,
        }
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional_or_control(&self) -> bool {
        self.attributes() & (TRANSACTIONAL_BIT | CONTROL_BIT) != 0
    }

    pub fn last_offset_delta(&self) -> i32 {
        be_i32(&self.bytes, 23)
    }

    pub fn base_timestamp(&self) -> i64 {
        be_i64(&self.bytes, 27)
    }

    pub fn max_timestamp(&self) -> i64 {
        be_i64(&self.bytes, 35)
    }

    pub fn producer_id(&self) -> i64 {
        be_i64(&self.bytes, 43)
    }

    pub fn producer_epoch(&self) -> i16 {
        be_i16(&self.bytes, 51)
    }

    pub fn base_sequence(&self) -> i32 {
        be_i32(&self.bytes, 53)
    }

    /// The sequence number of the last record (sequences wrap at `i32::MAX`).
    pub fn last_sequence(&self) -> i32 {
        let last = i64::from(self.base_sequence()) + i64::from(self.last_offset_delta());
        i32::try_from(last % (i64::from(i32::MAX) + 1)).unwrap_or(0)
    }

    pub fn record_count(&self) -> i32 {
        be_i32(&self.bytes, 57)
    }

    /// Offsets the batch occupies.
    pub fn span(&self) -> u32 {
        u32::try_from(self.record_count()).unwrap_or(1).max(1)
    }

    /// The records section (compressed as [`Self::compression`] says).
    pub fn records(&self) -> Bytes {
        self.bytes.slice(HEADER_LEN.min(self.bytes.len())..)
    }

    /// The header as stored for an append at `base_offset`: base offset patched, leader
    /// epoch 0, and with `log_append_time` the timestamp type, max timestamp and CRC
    /// rewritten. The records after [`HEADER_LEN`] are unchanged and not copied.
    pub fn stored_header(
        &self,
        base_offset: u64,
        log_append_time: Option<i64>,
    ) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        if let Some(src) = self.bytes.get(..HEADER_LEN) {
            header.copy_from_slice(src);
        }
        header[..8].copy_from_slice(&base_offset.to_be_bytes());
        header[12..16].copy_from_slice(&0i32.to_be_bytes());
        if let Some(now) = log_append_time {
            let attributes = self.attributes() | TIMESTAMP_TYPE_BIT;
            header[21..23].copy_from_slice(&attributes.to_be_bytes());
            header[35..43].copy_from_slice(&now.to_be_bytes());
            let mut crc = crc32c::crc32c(&header[CRC_START..]);
            crc = crc32c::crc32c_append(crc, self.bytes.get(HEADER_LEN..).unwrap_or_default());
            header[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        header
    }
}

#[cfg(test)]
pub(crate) mod tests;
