//! One segment: a `{base:020}.log` file mapped read-only, its committed length, and its index.
//!
//! The writer appends with ordinary (vectored) file writes; readers read the mapping. A write
//! that fails (ENOSPC, EIO) returns an error, where a store through a writable mapping would
//! raise SIGBUS. The active segment is mapped with room to grow: Linux backs each mapped page
//! by the file once the file reaches it, and readers never touch bytes past the committed
//! length, which is published only after the bytes are written.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

use crate::entry::{Decoded, SEGMENT_HEADER_LEN, Scan, encode_segment_header};
use crate::index::{IndexKind, SegmentIndex};
use crate::{LogError, StoredEntry};

/// What [`Log::segments`](crate::Log::segments) reports about one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Offset of the segment's first entry (its file name).
    pub base_offset: u64,
    /// One past its last offset.
    pub next_offset: u64,
    /// Size of its `.log` file in committed bytes (header included).
    pub size_bytes: u64,
    /// Largest entry timestamp in it, `None` when empty.
    pub max_timestamp: Option<i64>,
    /// Whether it is the active (last, written) segment.
    pub active: bool,
}

pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// A byte budget for a read: Kafka's "up to max bytes, but at least one entry".
pub(crate) struct Budget {
    remaining: usize,
    pub(crate) full: bool,
}

impl Budget {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Budget {
            remaining: max_bytes,
            full: false,
        }
    }

    fn admit(&mut self, len: usize, first: bool) -> bool {
        if first || len <= self.remaining {
            self.remaining = self.remaining.saturating_sub(len);
            true
        } else {
            self.full = true;
            false
        }
    }
}

pub(crate) struct Segment {
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    /// The whole mapping; payloads are zero-copy slices of it.
    data: Bytes,
    /// Bytes of whole, written entries (header included). Published after the bytes.
    committed: AtomicU64,
    next: AtomicU64,
    max_timestamp: AtomicI64,
    pub(crate) index: SegmentIndex,
}

impl Segment {
    /// Creates `{base:020}.log` holding only a header, mapped with `capacity` bytes of room.
    pub(crate) fn create(
        dir: &Path,
        base: u64,
        capacity: u64,
    ) -> Result<(Segment, File), LogError> {
        let path = log_path(dir, base);
        let io = |e| LogError::io(&path, e);
        // Truncate: a file of this name can only be a failed earlier attempt at this roll.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io)?;
        file.write_all(&encode_segment_header(base)).map_err(io)?;
        let data = map(&file, capacity).map_err(io)?;
        let len = SEGMENT_HEADER_LEN as u64;
        let segment = Segment::new(
            base,
            path,
            data,
            len,
            base,
            i64::MIN,
            SegmentIndex::in_memory(Default::default()),
        );
        Ok((segment, file))
    }

    pub(crate) fn new(
        base: u64,
        path: PathBuf,
        map: Mmap,
        committed: u64,
        next: u64,
        max_timestamp: i64,
        index: SegmentIndex,
    ) -> Segment {
        Segment {
            base,
            path,
            data: Bytes::from_owner(map),
            committed: AtomicU64::new(committed),
            next: AtomicU64::new(next),
            max_timestamp: AtomicI64::new(max_timestamp),
            index,
        }
    }

    pub(crate) fn committed_len(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Bytes of address space mapped: how far the file may grow while this mapping serves it.
    pub(crate) fn capacity(&self) -> u64 {
        self.data.len() as u64
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.next_offset() == self.base
    }

    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        (!self.is_empty()).then(|| self.max_timestamp.load(Ordering::Acquire))
    }

    /// Makes entries written up to `len` bytes visible. Called by the writer after the write.
    pub(crate) fn publish(&self, len: u64, next: u64, max_timestamp: i64) {
        self.max_timestamp
            .fetch_max(max_timestamp, Ordering::AcqRel);
        self.next.store(next, Ordering::Release);
        self.committed.store(len, Ordering::Release);
    }

    pub(crate) fn info(&self, active: bool) -> SegmentInfo {
        SegmentInfo {
            base_offset: self.base,
            next_offset: self.next_offset(),
            size_bytes: self.committed_len(),
            max_timestamp: self.max_timestamp(),
            active,
        }
    }

    /// Whole entries from the index point at or below `offset`, bounded by the committed end.
    fn scan_from(&self, offset: u64) -> Scan<'_> {
        let limit = usize::try_from(self.committed_len()).unwrap_or(usize::MAX);
        let data = self.data.get(..limit).unwrap_or_default();
        let (rel, pos) = offset
            .checked_sub(self.base)
            .and_then(|rel| self.index.floor(rel, limit as u64))
            .map_or((0, SEGMENT_HEADER_LEN), |(rel, pos)| {
                (u64::from(rel), pos as usize)
            });
        Scan::new(data, pos, self.base + rel)
    }

    fn stored(&self, entry: Decoded) -> StoredEntry {
        StoredEntry {
            offset: entry.offset,
            span: entry.span,
            timestamp: entry.timestamp,
            payload: self.data.slice(entry.payload),
        }
    }

    /// Appends to `out` the entries from the one containing `offset` (or the first after it),
    /// while `budget` allows.
    pub(crate) fn read(
        &self,
        offset: u64,
        budget: &mut Budget,
        out: &mut Vec<StoredEntry>,
    ) -> Result<(), LogError> {
        for found in self.scan_from(offset) {
            let (_, entry) =
                found.map_err(|(pos, d)| LogError::corrupt(&self.path, pos as u64, d))?;
            if entry.next_offset() <= offset {
                continue;
            }
            if !budget.admit(entry.payload.len(), out.is_empty()) {
                break;
            }
            out.push(self.stored(entry));
        }
        Ok(())
    }

    /// The first entry ending above `start` with a timestamp at or above `timestamp`.
    pub(crate) fn find_timestamp(
        &self,
        timestamp: i64,
        start: u64,
    ) -> Result<Option<StoredEntry>, LogError> {
        let from = self
            .index
            .time_floor(timestamp)
            .map_or(self.base, |rel| self.base + u64::from(rel));
        for found in self.scan_from(from.max(start)) {
            let (_, entry) =
                found.map_err(|(pos, d)| LogError::corrupt(&self.path, pos as u64, d))?;
            if entry.next_offset() > start && entry.timestamp >= timestamp {
                return Ok(Some(self.stored(entry)));
            }
        }
        Ok(None)
    }
}

/// Maps `len` bytes of `file` read-only; `len` may exceed the file's current length.
pub(crate) fn map(file: &File, len: u64) -> io::Result<Mmap> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: segment files are only ever appended to (by this log, through `file`) or
    // truncated before being mapped (recovery), never changed below their committed length,
    // which is all that is read. Pages past the end of the file are mapped but not touched
    // until the file has grown to cover them. Unlinking the file leaves the mapping valid.
    #[expect(unsafe_code, reason = "read-only mmap of an append-only segment file")]
    unsafe {
        MmapOptions::new().len(len).map(file)
    }
}

/// Removes a segment's files, the `.log` first so a crash never leaves a log without its
/// start. Files already gone are fine.
pub(crate) fn remove_files(dir: &Path, base: u64) -> Result<(), LogError> {
    remove_if_exists(&log_path(dir, base))?;
    remove_if_exists(&IndexKind::Offset.path(dir, base))?;
    remove_if_exists(&IndexKind::Time.path(dir, base))
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(LogError::io(path, e)),
        _ => Ok(()),
    }
}
