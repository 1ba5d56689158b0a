//! The append path: one writer at a time, entries written with vectored writes, then published.
//!
//! Ahead of the entries the file is extended with zeros to the next multiple of `PAD` bytes
//! (`Writer::pad`). The entries' own writes end wherever an entry ends, mid-page; writing
//! into pages the zeros already brought into the page cache, as large aligned folios, is
//! cheaper for the kernel than having each write allocate the pages it reaches, and so is
//! writing them back: in measurements (docs/benchmarks.md) appends ran 1.5x faster under
//! `Never` and 1.3-1.9x faster under `Always`. The file is therefore up to
//! one block longer than its entries while it is written; an entry header is never all zeros,
//! so recovery reads zeros after the last entry as its clean end and cuts them, and sealing a
//! segment or closing the log cuts them first.

use std::fs::File;
use std::io::{self, IoSlice, Seek as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use crate::config::LogConfig;
use crate::entry::{ENTRY_HEADER_LEN, SEGMENT_HEADER_LEN, encode_entry_header};
use crate::index::{IndexCursor, Points, SegmentIndex, SegmentSummary};
use crate::segment::{self, Segment};
use crate::{Appended, Entry, Log, LogError, meta};

/// Bytes of zeros written ahead of the entries at a time, at offsets that are multiples of it.
const PAD: u64 = 64 * 1024;
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// State guarded by the writer lock.
pub(crate) struct Writer {
    pub(crate) active: Arc<Segment>,
    pub(crate) file: Arc<File>,
    /// End of the last whole entry in the active file (the file cursor stands here).
    pub(crate) position: u64,
    /// Length of the active file: `position` plus the zeros written ahead of it.
    padded: u64,
    pub(crate) next: u64,
    pub(crate) cursor: IndexCursor,
    /// When the active segment received its first entry (since open), for `segment_age`.
    pub(crate) first_write: Option<Instant>,
    headers: Vec<u8>,
    points: Points,
}

impl Writer {
    pub(crate) fn new(
        active: Arc<Segment>,
        file: Arc<File>,
        position: u64,
        cursor: IndexCursor,
    ) -> Self {
        let first_write = (!active.is_empty()).then(Instant::now);
        Writer {
            next: active.next_offset(),
            active,
            file,
            position,
            padded: position,
            cursor,
            first_write,
            headers: Vec::new(),
            points: Points::default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.position == SEGMENT_HEADER_LEN as u64
    }

    /// Before entries are written up to `end`: writes zeros over the `PAD` block that `end`
    /// falls in, from its start (or from the end of the file, if that is further) to its
    /// end, so the small writes that follow land in pages already cached. Bytes between the
    /// file's end and that block are left to the entries' own write, which starts there at a
    /// multiple of `PAD` and, being long, gets large folios anyway: zeroing them first would
    /// only double the page-cache writes of a large batch.
    fn pad(&mut self, end: u64) -> io::Result<()> {
        if end <= self.padded {
            return Ok(());
        }
        let to = end.div_ceil(PAD) * PAD;
        let from = self.padded.max(end / PAD * PAD);
        if from < to {
            let len = usize::try_from(to - from).unwrap_or(ZEROS.len());
            self.file
                .write_all_at(ZEROS.get(..len).unwrap_or(&ZEROS), from)?;
        }
        self.padded = to;
        Ok(())
    }

    /// Cuts the zeros written ahead: the file ends at its entries.
    pub(crate) fn cut_padding(&mut self) -> io::Result<()> {
        if self.padded > self.position {
            self.file.set_len(self.position)?;
            self.padded = self.position;
        }
        Ok(())
    }

    /// Whether the active segment is older than `segment_age` (read once per append call:
    /// the clock is not free).
    fn aged(&self, config: &LogConfig) -> bool {
        let first = self.first_write;
        config
            .segment_age
            .is_some_and(|age| first.is_some_and(|t| t.elapsed() >= age))
    }

    /// Whether an entry of `record` bytes starting at `position` (with `next` offsets so far)
    /// must go to a new segment.
    fn must_roll(
        &self,
        position: u64,
        next: u64,
        record: u64,
        aged: bool,
        config: &LogConfig,
    ) -> bool {
        let end = position + record;
        if end > self.active.capacity() {
            return true;
        }
        if position == SEGMENT_HEADER_LEN as u64 {
            return false;
        }
        aged || end > config.roll_bytes() || next - self.active.base > u64::from(u32::MAX)
    }
}

/// Exclusive access to the end of the log: learn the next offset, then append, with no other
/// appender in between. Holds the writer lock until dropped; readers and syncs carry on.
pub struct Appender<'a> {
    log: &'a Log,
    writer: MutexGuard<'a, Writer>,
}

impl<'a> Appender<'a> {
    pub(crate) fn new(log: &'a Log, writer: MutexGuard<'a, Writer>) -> Self {
        Appender { log, writer }
    }

    /// The offset the next appended entry will get.
    pub fn next_offset(&self) -> u64 {
        self.writer.next
    }

    /// Appends `entries` in order at contiguous offsets. The whole batch is validated first,
    /// so a too-large entry or zero span appends nothing. An I/O failure poisons the log; the
    /// entries before the failing write stay visible.
    pub fn append(&mut self, entries: &[Entry<'_>]) -> Result<Appended, LogError> {
        self.log.write(&mut self.writer, entries)
    }

    /// Seals the active segment and starts a new one, if the active one holds any entry.
    pub fn roll(&mut self) -> Result<(), LogError> {
        self.log.sync.check()?;
        if self.writer.is_empty() {
            return Ok(());
        }
        let config = self.log.config();
        self.log.roll_segment(&mut self.writer, &config, 0)
    }
}

impl Log {
    fn write(&self, w: &mut Writer, entries: &[Entry<'_>]) -> Result<Appended, LogError> {
        self.sync.check()?;
        let config = self.config();
        let mut next = w.next;
        for entry in entries {
            if entry.span == 0 {
                return Err(LogError::InvalidSpan { span: 0 });
            }
            let size = entry.payload_len();
            if size > u64::from(config.max_entry_bytes) {
                return Err(LogError::EntryTooLarge {
                    size,
                    max: config.max_entry_bytes,
                });
            }
            next = next
                .checked_add(u64::from(entry.span))
                .ok_or(LogError::OffsetOverflow {
                    next,
                    span: entry.span,
                })?;
        }
        let base_offset = w.next;
        let mut headers = std::mem::take(&mut w.headers);
        let (mut group, mut position, mut next, mut max_ts) = (0, w.position, w.next, i64::MIN);
        let mut aged = w.aged(&config);
        // The index cursor as it was before the group being built, to undo a failed write.
        let mut before_group = w.cursor.clone();
        for (i, entry) in entries.iter().enumerate() {
            let len = entry.payload_len();
            let record = ENTRY_HEADER_LEN as u64 + len;
            if w.must_roll(position, next, record, aged, &config) {
                if i > group {
                    let written = &entries[group..i];
                    self.write_group(w, written, &headers, position, next, max_ts)
                        .map_err(|e| self.undo_group(w, before_group.clone(), e))?;
                    headers.clear();
                    group = i;
                    max_ts = i64::MIN;
                }
                self.roll_segment(w, &config, record)?;
                (position, next, aged) = (w.position, w.next, false);
                before_group = w.cursor.clone();
            }
            // Lengths are checked against max_entry_bytes < u32::MAX above.
            let len32 = u32::try_from(len).unwrap_or(u32::MAX);
            headers.extend(encode_entry_header(
                next,
                entry.span,
                entry.timestamp,
                len32,
                entry.parts,
            ));
            let at = u32::try_from(next - w.active.base)
                .ok()
                .zip(u32::try_from(position).ok());
            w.cursor.observe(
                config.index_interval_bytes,
                at,
                record,
                entry.timestamp,
                &mut w.points,
            );
            position += record;
            next += u64::from(entry.span);
            max_ts = max_ts.max(entry.timestamp);
        }
        if entries.len() > group {
            self.write_group(w, &entries[group..], &headers, position, next, max_ts)
                .map_err(|e| self.undo_group(w, before_group, e))?;
        }
        headers.clear();
        w.headers = headers;
        Ok(Appended {
            base_offset,
            next_offset: w.next,
        })
    }

    /// Writes one segment's share of a batch and publishes it to readers.
    fn write_group(
        &self,
        w: &mut Writer,
        entries: &[Entry<'_>],
        headers: &[u8],
        position: u64,
        next: u64,
        max_ts: i64,
    ) -> Result<(), LogError> {
        let mut slices = Vec::with_capacity(entries.len() * 2);
        for (entry, header) in entries.iter().zip(headers.chunks_exact(ENTRY_HEADER_LEN)) {
            slices.push(IoSlice::new(header));
            slices.extend(
                entry
                    .parts
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| IoSlice::new(p)),
            );
        }
        w.pad(position).map_err(|e| self.write_failed(w, e))?;
        #[cfg(test)]
        if let Some(kind) = *self
            .fail_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            // Simulate a short write followed by the error: half the bytes land.
            let half: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
            let _ = (&*w.file).write_all(half.get(..half.len() / 2).unwrap_or_default());
            return Err(self.write_failed(w, io::Error::new(kind, "injected")));
        }
        write_all_vectored(&w.file, &mut slices).map_err(|e| self.write_failed(w, e))?;
        w.active.index.push(&w.points);
        w.points.clear();
        if w.first_write.is_none() {
            w.first_write = Some(Instant::now());
        }
        (w.position, w.next) = (position, next);
        w.active.publish(position, next, max_ts);
        self.next.store(next, Ordering::Release);
        Ok(())
    }

    /// A write that failed: a full file system is left for [`Log::undo_group`] to undo;
    /// anything else poisons the log.
    fn write_failed(&self, w: &Writer, e: io::Error) -> LogError {
        if e.kind() == io::ErrorKind::StorageFull {
            LogError::StorageFull {
                path: w.active.path.clone(),
            }
        } else {
            self.sync.poison("write", &LogError::io(&w.active.path, e))
        }
    }

    /// Undoes the bytes of a group that failed for want of space: the file is cut back to
    /// its last published entry, so a later append writes where this one would have and
    /// readers never see a partial entry. If even that fails, the log is poisoned.
    fn undo_group(&self, w: &mut Writer, cursor: IndexCursor, error: LogError) -> LogError {
        if !matches!(error, LogError::StorageFull { .. }) {
            return error;
        }
        w.points.clear();
        w.cursor = cursor;
        let undone = w
            .file
            .set_len(w.position)
            .and_then(|()| (&*w.file).seek(io::SeekFrom::Start(w.position)).map(drop));
        match undone {
            Ok(()) => {
                w.padded = w.position;
                error
            }
            Err(e) => self.sync.poison("write", &LogError::io(&w.active.path, e)),
        }
    }

    /// Seals the active segment and starts one at the next offset with room for at least
    /// `record` bytes. The sealed segment is fsynced before its successor exists, so recovery
    /// only ever finds a torn tail in the last segment.
    pub(crate) fn roll_segment(
        &self,
        w: &mut Writer,
        config: &LogConfig,
        record: u64,
    ) -> Result<(), LogError> {
        let capacity = config
            .segment_capacity()
            .max(SEGMENT_HEADER_LEN as u64 + record);
        let poison = |e: LogError| self.sync.poison("segment roll", &e);
        if w.is_empty() {
            // Nothing to seal; the empty segment only needs more room for a large entry.
            let old = &w.active;
            let map =
                segment::map(&w.file, capacity).map_err(|e| poison(LogError::io(&old.path, e)))?;
            let index = SegmentIndex::in_memory(Points::default());
            let len = SEGMENT_HEADER_LEN as u64;
            let fresh = Segment::new(
                old.base,
                old.path.clone(),
                map,
                len,
                old.base,
                i64::MIN,
                index,
            );
            let fresh = Arc::new(fresh);
            self.update_segments(|list| {
                if let Some(last) = list.last_mut() {
                    *last = Arc::clone(&fresh);
                }
            });
            w.active = fresh;
            return Ok(());
        }
        let old = Arc::clone(&w.active);
        // A sealed segment ends at its entries, durably: only the last one may end in zeros.
        w.cut_padding()
            .map_err(|e| poison(LogError::io(&old.path, e)))?;
        self.sync.sync_file(&w.file, &old.path)?;
        let (segment, file) = Segment::create(&self.dir, w.next, capacity).map_err(poison)?;
        meta::sync_dir(&self.dir).map_err(poison)?;
        let (segment, file) = (Arc::new(segment), Arc::new(file));
        self.sync
            .rolled(Arc::clone(&file), segment.path.clone(), old.next_offset());
        self.update_segments(|list| list.push(Arc::clone(&segment)));
        let summary = SegmentSummary {
            base: old.base,
            next: old.next_offset(),
            log_len: old.committed_len(),
            max_timestamp: old.max_timestamp().unwrap_or(i64::MIN),
        };
        // If the index files cannot be written, the in-memory index keeps serving lookups and
        // the next open finds them missing and rebuilds them: not worth failing appends for.
        let _ = old.index.seal(&self.dir, summary);
        w.active = segment;
        w.file = file;
        w.position = SEGMENT_HEADER_LEN as u64;
        w.padded = w.position;
        w.cursor = IndexCursor::new();
        w.first_write = None;
        Ok(())
    }
}

/// `write_all` for vectored writes: the file cursor is the writer's position.
fn write_all_vectored(mut file: &File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
