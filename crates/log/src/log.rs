//! The `Log` handle: open, append, read, sync, inspect, close.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use crate::config::{FsyncPolicy, LogConfig};
use crate::recovery::{self, Recovery};
use crate::segment::{Budget, Segment, SegmentInfo};
use crate::sync::Durability;
use crate::writer::{Appender, Writer};
use crate::{Appended, Entry, LogError, StoredEntry};

/// A segmented commit log in one directory. `Send + Sync`: share it behind an `Arc`.
pub struct Log {
    pub(crate) dir: PathBuf,
    config: RwLock<LogConfig>,
    /// Oldest first; the last is the active segment. Replaced whole (copy on write) so a
    /// reader takes a snapshot under a momentary lock and does its I/O without one.
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    writer: Mutex<Writer>,
    /// End of committed entries, stored after they are written.
    pub(crate) next: AtomicU64,
    pub(crate) start: AtomicU64,
    pub(crate) sync: Durability,
    /// Serializes retention, `advance_start` and `delete_segment` (never taken by appends).
    pub(crate) admin: Mutex<()>,
    /// Makes the next writes fail with this error after half their bytes (tests).
    #[cfg(test)]
    pub(crate) fail_writes: Mutex<Option<std::io::ErrorKind>>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it: see [`Recovery`].
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<(Log, Recovery), LogError> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let recovered = recovery::recover(&dir, &config)?;
        let active = recovered.active;
        let file = Arc::new(active.file);
        let next = active.segment.next_offset();
        let sync = Durability::new(
            dir.clone(),
            Arc::clone(&file),
            active.segment.path.clone(),
            next,
        );
        let mut segments = recovered.sealed;
        segments.push(Arc::clone(&active.segment));
        let writer = Writer::new(active.segment, file, active.position, active.cursor);
        let log = Log {
            dir,
            config: RwLock::new(config),
            segments: RwLock::new(Arc::new(segments)),
            writer: Mutex::new(writer),
            next: AtomicU64::new(next),
            start: AtomicU64::new(recovered.start),
            sync,
            admin: Mutex::new(()),
            #[cfg(test)]
            fail_writes: Mutex::new(None),
        };
        Ok((log, recovered.report))
    }

    /// The directory holding the log's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a batch at contiguous offsets (see [`Appender::append`]).
    pub fn append(&self, entries: &[Entry<'_>]) -> Result<Appended, LogError> {
        self.appender()?.append(entries)
    }

    /// Takes the writer lock: the caller learns the next offset before building its entries
    /// (to write it into a Kafka batch header, say). Other appenders wait until it is dropped.
    pub fn appender(&self) -> Result<Appender<'_>, LogError> {
        self.sync.check()?;
        let writer = match self.writer.lock() {
            Ok(writer) => writer,
            // A panic mid-append may have left the writer between a write and its publication.
            Err(_) => return Err(self.sync.poison("append", &"an appending thread panicked")),
        };
        Ok(Appender::new(self, writer))
    }

    /// Seals the active segment and starts a new one (nothing happens if it is empty).
    pub fn roll(&self) -> Result<(), LogError> {
        self.appender()?.roll()
    }

    /// Entries from the one containing `offset` onward (skipping a gap left by
    /// `delete_segment`), up to `max_bytes` of payload but at least one entry if any exists.
    /// Only committed, whole, checksum-verified entries. `offset == next_offset()` gives none.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<StoredEntry>, LogError> {
        let next = self.next_offset();
        let start = self.start_offset();
        let out_of_range = || LogError::OffsetOutOfRange {
            offset,
            start: self.start_offset(),
            next,
        };
        if offset < start || offset > next {
            return Err(out_of_range());
        }
        let segments = self.snapshot();
        let holding = segments.partition_point(|s| s.base <= offset);
        // Zero only when retention removed the segment after `start` was read.
        let first = holding.checked_sub(1).ok_or_else(out_of_range)?;
        let mut out = Vec::new();
        let mut budget = Budget::new(max_bytes);
        for segment in segments.iter().skip(first) {
            segment.read(offset, &mut budget, &mut out)?;
            if budget.full {
                break;
            }
        }
        Ok(out)
    }

    /// The first entry at or after the start offset whose timestamp is `>= timestamp`.
    pub fn find_by_timestamp(&self, timestamp: i64) -> Result<Option<StoredEntry>, LogError> {
        let start = self.start_offset();
        for segment in self.snapshot().iter() {
            if segment.next_offset() <= start
                || segment.max_timestamp().is_none_or(|max| max < timestamp)
            {
                continue;
            }
            if let Some(found) = segment.find_timestamp(timestamp, start)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The first offset still readable.
    pub fn start_offset(&self) -> u64 {
        self.start.load(Ordering::Acquire)
    }

    /// One past the last committed offset: the offset the next entry gets.
    pub fn next_offset(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Blocks until every offset below `offset` (clamped to `next_offset()`) is on disk.
    /// Concurrent callers share fsyncs (group commit). Run it off async worker threads.
    pub fn sync_to(&self, offset: u64) -> Result<(), LogError> {
        self.sync.sync_to(offset, &self.next)
    }

    /// Syncs everything appended so far.
    pub fn flush(&self) -> Result<(), LogError> {
        self.sync_to(u64::MAX)
    }

    /// Under `FsyncPolicy::Interval`, flushes if the interval has passed since the last sync;
    /// otherwise does nothing. Call it from a ticker.
    pub fn flush_if_due(&self, now: Instant) -> Result<(), LogError> {
        self.sync.check()?;
        let FsyncPolicy::Interval(every) = self.config().fsync else {
            return Ok(());
        };
        if !self.sync.flush_due(now, every) {
            return Ok(());
        }
        if self.durable_offset() >= self.next_offset() {
            self.sync.touch(now);
            return Ok(());
        }
        self.flush()
    }

    /// Every offset below this is on disk.
    pub fn durable_offset(&self) -> u64 {
        self.sync.durable_offset()
    }

    /// Segment-file fsyncs since open (group commit makes this smaller than the number of
    /// `sync_to` calls); for metrics and tests.
    pub fn fsync_count(&self) -> u64 {
        self.sync.fsync_count()
    }

    /// The segments, oldest first; the last is the active one.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segments = self.snapshot();
        let last = segments.len().saturating_sub(1);
        segments
            .iter()
            .enumerate()
            .map(|(i, s)| s.info(i == last))
            .collect()
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.snapshot().iter().map(|s| s.committed_len()).sum()
    }

    /// The current configuration.
    pub fn config(&self) -> LogConfig {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the configuration; it applies from the next append, roll or retention pass.
    pub fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        config.validate()?;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    /// Cuts the zeros written ahead of the entries, syncs everything and closes the log.
    /// Fails if the log is poisoned.
    pub fn close(self) -> Result<(), LogError> {
        let cut = {
            let mut writer = lock(&self.writer);
            let path = writer.active.path.clone();
            writer.cut_padding().map_err(|e| LogError::io(&path, e))
        };
        self.flush()?;
        cut
    }

    /// Removes every file of the log and its directory. Payloads already read stay valid.
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).map_err(|e| LogError::io(&dir, e))
    }

    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        Arc::clone(&self.segments.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Copy-on-write update of the segment list.
    pub(crate) fn update_segments(&self, change: impl FnOnce(&mut Vec<Arc<Segment>>)) {
        let mut segments = self
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut list = Vec::clone(&segments);
        change(&mut list);
        *segments = Arc::new(list);
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("start_offset", &self.start_offset())
            .field("next_offset", &self.next_offset())
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}
