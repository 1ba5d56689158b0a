//! Offset lookups that look inside batches: by timestamp and by largest timestamp (Kafka's
//! ListOffsets). Both decode the records of at most a few batches, so they run on the
//! blocking pool when called from async code.

use super::batch::RecordBatch;
use super::partition::Partition;
use super::records;
use crate::Error;

/// Decompression bound for lookups: a batch holding more than this is refused rather than
/// inflated in memory.
const LOOKUP_DECOMPRESS_LIMIT: usize = 256 << 20;
/// How far past the located entry to keep looking when batch headers disagree with records.
const SCAN_BYTES: usize = 4 << 20;

/// A record's offset and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    pub offset: u64,
    pub timestamp: i64,
}

impl Partition {
    fn corrupt(&self, offset: u64, source: super::batch::BatchError) -> Error {
        Error::CorruptBatch {
            stream: self.stream_name().to_owned(),
            partition: self.index(),
            offset,
            source,
        }
    }

    /// The first visible record whose timestamp is at least `timestamp`.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<OffsetAndTimestamp>, Error> {
        let hw = self.high_watermark();
        let start = self.log_start_offset();
        let Some(entry) =
            self.log()
                .find_by_timestamp(timestamp)
                .map_err(|source| Error::PartitionLog {
                    stream: self.stream_name().to_owned(),
                    partition: self.index(),
                    source,
                })?
        else {
            return Ok(None);
        };
        let mut from = entry.offset;
        let mut scanned = 0usize;
        while from < hw && scanned < SCAN_BYTES {
            let entries = self.read_entries(from, SCAN_BYTES)?;
            if entries.is_empty() {
                break;
            }
            for stored in entries {
                from = stored.offset + u64::from(stored.span);
                scanned = scanned.saturating_add(stored.payload.len());
                if stored.offset >= hw {
                    return Ok(None);
                }
                if stored.timestamp < timestamp {
                    continue;
                }
                let batch = RecordBatch::from_stored(stored.payload)
                    .map_err(|e| self.corrupt(stored.offset, e))?;
                let mut found = None;
                records::for_each(&batch, LOOKUP_DECOMPRESS_LIMIT, |record| {
                    let offset = u64::try_from(record.offset).unwrap_or(0);
                    if record.timestamp >= timestamp && offset >= start {
                        found = Some(OffsetAndTimestamp {
                            offset,
                            timestamp: record.timestamp,
                        });
                        return false;
                    }
                    true
                })
                .map_err(|e| self.corrupt(stored.offset, e))?;
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        Ok(None)
    }

    /// The visible record with the largest timestamp (the first such, Kafka's `MAX_TIMESTAMP`).
    pub fn offset_of_max_timestamp(&self) -> Result<Option<OffsetAndTimestamp>, Error> {
        let hw = self.high_watermark();
        let start = self.log_start_offset();
        let segments = self.log().segments();
        let Some(best) = segments
            .iter()
            .filter(|s| s.base_offset < hw && s.max_timestamp.is_some())
            .max_by_key(|s| (s.max_timestamp, std::cmp::Reverse(s.base_offset)))
        else {
            return Ok(None);
        };
        let target = best.max_timestamp.unwrap_or(i64::MIN);
        let mut from = best.base_offset.max(start);
        while from < best.next_offset.min(hw) {
            let entries = self.read_entries(from, SCAN_BYTES)?;
            if entries.is_empty() {
                break;
            }
            for stored in entries {
                from = stored.offset + u64::from(stored.span);
                if stored.offset >= hw {
                    return Ok(None);
                }
                if stored.timestamp != target {
                    continue;
                }
                let batch = RecordBatch::from_stored(stored.payload)
                    .map_err(|e| self.corrupt(stored.offset, e))?;
                let mut found = None;
                records::for_each(&batch, LOOKUP_DECOMPRESS_LIMIT, |record| {
                    let offset = u64::try_from(record.offset).unwrap_or(0);
                    if record.timestamp == target && offset >= start {
                        found = Some(OffsetAndTimestamp {
                            offset,
                            timestamp: target,
                        });
                        return false;
                    }
                    true
                })
                .map_err(|e| self.corrupt(stored.offset, e))?;
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        Ok(None)
    }
}
