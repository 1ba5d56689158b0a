//! Removing data from the head: retention by bytes and age, `advance_start`, `delete_segment`.
//!
//! Only sealed segments are ever deleted. A deletion persists the new start offset first,
//! then drops the segments from the list readers snapshot, then unlinks the files: a crash in
//! between leaves files that the next open removes because they lie below the start offset.
//! Readers holding a snapshot or payloads of a deleted segment keep its mapping alive.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::log::lock;
use crate::segment::{self, Segment};
use crate::{Log, LogError, meta};

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Their size in bytes.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub start_offset: u64,
}

impl Log {
    /// Deletes head segments (never the active one) that retention no longer covers: those
    /// wholly below the start offset, those whose newest entry is older than `retention_age`
    /// at `now_ms` (ms since the epoch; empty ones too), and, oldest first, those whose removal
    /// still leaves at least `retention_bytes`. Moves the start offset past them.
    pub fn apply_retention(&self, now_ms: i64) -> Result<Retained, LogError> {
        let _admin = lock(&self.admin);
        let config = self.config();
        let segments = self.snapshot();
        let start = self.start_offset();
        let age_ms = config
            .retention_age
            .map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let mut remaining: u64 = segments.iter().map(|s| s.committed_len()).sum();
        let mut doomed = 0;
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            let size = segment.committed_len();
            let below_start = segment.next_offset() <= start;
            let by_bytes = config
                .retention_bytes
                .is_some_and(|keep| remaining - size >= keep);
            let by_age = age_ms.is_some_and(|limit| {
                segment
                    .max_timestamp()
                    .is_none_or(|newest| now_ms.saturating_sub(newest) > limit)
            });
            if !(below_start || by_bytes || by_age) {
                break;
            }
            doomed += 1;
            remaining -= size;
        }
        self.drop_head(&segments, doomed)
    }

    /// Moves the start offset up to `offset` (at most `next_offset()`), persisted so it
    /// survives reopening, and deletes sealed segments wholly below it. Reads below it fail
    /// with `OffsetOutOfRange`; reading at it returns the entry containing it. Moving it
    /// backwards does nothing.
    pub fn advance_start(&self, offset: u64) -> Result<(), LogError> {
        let _admin = lock(&self.admin);
        let (start, next) = (self.start_offset(), self.next_offset());
        if offset > next {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start,
                next,
            });
        }
        if offset <= start {
            return Ok(());
        }
        meta::write(&self.dir, offset)?;
        self.start.fetch_max(offset, Ordering::AcqRel);
        let segments = self.snapshot();
        let sealed = segments.len().saturating_sub(1);
        let below = segments
            .iter()
            .take(sealed)
            .take_while(|s| s.next_offset() <= offset)
            .count();
        self.drop_head(&segments, below).map(drop)
    }

    /// Deletes one sealed segment the caller knows holds nothing live (every message in it
    /// acknowledged, say). Deleting the head moves the start offset; deleting another leaves a
    /// gap in the offsets, which reads skip.
    pub fn delete_segment(&self, base: u64) -> Result<(), LogError> {
        let _admin = lock(&self.admin);
        let segments = self.snapshot();
        let at = segments.iter().position(|s| s.base == base);
        let at = at.ok_or(LogError::NoSuchSegment { base })?;
        if at + 1 == segments.len() {
            return Err(LogError::ActiveSegment { base });
        }
        if at == 0 {
            return self.drop_head(&segments, 1).map(drop);
        }
        let doomed = segments.get(at..=at).unwrap_or_default();
        self.remove(doomed)
    }

    /// Deletes the first `count` segments of `segments`, which are sealed.
    fn drop_head(&self, segments: &[Arc<Segment>], count: usize) -> Result<Retained, LogError> {
        let (doomed, kept) = segments.split_at(count.min(segments.len()));
        let old_start = self.start_offset();
        let start = kept.first().map_or(old_start, |s| s.base.max(old_start));
        if start > old_start {
            meta::write(&self.dir, start)?;
            self.start.fetch_max(start, Ordering::AcqRel);
        }
        let bytes_deleted = doomed.iter().map(|s| s.committed_len()).sum();
        self.remove(doomed)?;
        Ok(Retained {
            segments_deleted: doomed.len(),
            bytes_deleted,
            start_offset: start,
        })
    }

    fn remove(&self, doomed: &[Arc<Segment>]) -> Result<(), LogError> {
        if doomed.is_empty() {
            return Ok(());
        }
        self.update_segments(|list| list.retain(|s| !doomed.iter().any(|d| Arc::ptr_eq(s, d))));
        for segment in doomed {
            segment::remove_files(&self.dir, segment.base)?;
        }
        meta::sync_dir(&self.dir)
    }
}
