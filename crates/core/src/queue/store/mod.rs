//! The disk side of a durable queue: every message routed to it is appended to a log, so the
//! log *is* the backlog and memory holds only offsets (see `ready`).
//!
//! ```text
//! <data_dir>/queues/<vhost>/<queue>/
//!   messages/   ferrymq-log: one entry per message (persistent and transient, one order)
//!   index/      ferrymq-log: 8 bytes per message (size, priority level, flags), its offsets
//!               aligned with messages/, written in batches; recovery reads it, not the bodies
//!   acks/       ferrymq-log: acknowledgement journal (offsets gone for good, delivered marks),
//!               compacted into a snapshot as it grows
//! ```
//! Record layouts are in `record`.
//!
//! - Publish: the message is appended under the queue's lock (one `writev`); a persistent
//!   message under `fsync = always` gets a wait that resolves when a group-committed fsync
//!   covers it (`sync`). Its index slot is buffered and written with the next batch.
//! - Ack (and dead-lettering, expiry, purge, drops): the offsets go to the journal, one append
//!   per queue operation. Delivering moves the level's delivered mark, journaled the same way,
//!   so messages delivered before a crash come back marked redelivered.
//! - Compaction: once enough was acknowledged, a snapshot (everything below the oldest live
//!   message is gone, the acknowledged gaps above it, the marks) is appended and synced, the
//!   journal's start moves past the old records, and whole message segments holding nothing
//!   live are deleted (from the head with `advance_start`, in the middle with
//!   `delete_segment`): disk use follows the live backlog, not the history.
//!
//! # Invariants
//! - Offsets are assigned under the queue's lock, so message log order = queue order, and
//!   index slot n describes message offset n.
//! - What the journal says only ever grows (acknowledged sets, marks), so any prefix of it,
//!   or old records followed by part of a snapshot, describes a true state: a crash at any
//!   point loses at most acknowledgements not yet written (those messages come back).
//! - The journal's old records are dropped only after the snapshot replacing them is durable.
//! - Blocking work (fsync, file deletion) runs on the blocking pool, never under the queue's
//!   lock on a runtime worker; appends (page-cache writes) do run under the lock.

mod ranges;
pub(crate) mod record;
mod recover;
mod sync;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::BytesMut;
use ferrymq_log::{Entry, FsyncPolicy, Log, LogConfig, LogError, StoredEntry};
use tokio::time::Instant;

pub(crate) use ranges::RangeSet;
use record::{Info, Item};
pub(crate) use recover::Recovered;
use sync::Syncer;

use super::DurabilityWait;
use super::ready::Entry as Queued;
use crate::Error;
use crate::message::Message;

/// Largest message a durable queue stores (RabbitMQ's hard maximum is 512 MiB).
const MAX_RECORD_BYTES: u32 = 512 * 1024 * 1024 + 64 * 1024;
/// Message segments are at most this large, so drained space is freed promptly.
const MESSAGE_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Index slots written per index entry.
const INDEX_BATCH: usize = 1024;
/// Acknowledged ranges per journal entry (bounds one snapshot entry to ~64 KiB).
const RANGES_PER_ENTRY: usize = 4096;
/// Compact once the journal grew this much since the last snapshot.
const COMPACT_JOURNAL_BYTES: u64 = 1024 * 1024;
/// Look at compaction after this many removals.
const CHECK_EVERY: u64 = 4096;

/// Broker-wide settings and shared state of durable queues.
#[derive(Debug)]
pub(crate) struct StorageContext {
    pub(crate) data_dir: PathBuf,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) segment_bytes: u64,
    pub(crate) cache: Arc<Cache>,
    /// Non-durable queues that started paging (names their directories).
    paged: AtomicU64,
}

impl StorageContext {
    pub(crate) fn new(
        data_dir: PathBuf,
        fsync: FsyncPolicy,
        segment_bytes: u64,
        cache: u64,
    ) -> Self {
        Self {
            data_dir,
            fsync,
            segment_bytes,
            cache: Arc::new(Cache::new(cache)),
            paged: AtomicU64::new(0),
        }
    }

    /// A new directory name for a non-durable queue's scratch logs.
    pub(crate) fn scratch_dir(&self) -> PathBuf {
        let n = self.paged.fetch_add(1, Ordering::Relaxed);
        crate::layout::transient_dir(&self.data_dir, n)
    }

    fn message_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes.clamp(4096, MESSAGE_SEGMENT_BYTES),
            segment_age: None,
            retention_bytes: None,
            retention_age: None,
            max_entry_bytes: MAX_RECORD_BYTES,
            fsync: self.fsync,
            ..LogConfig::default()
        }
    }

    fn small_config(&self, segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            segment_age: None,
            retention_bytes: None,
            retention_age: None,
            max_entry_bytes: 1024 * 1024,
            fsync: self.fsync,
            ..LogConfig::default()
        }
    }
}

/// Memory for the bodies of durable queues' newest messages, shared by every durable queue.
/// Beyond it, new messages wait on disk only and are read back when delivered.
#[derive(Debug)]
pub(crate) struct Cache {
    limit: u64,
    used: AtomicU64,
}

impl Cache {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Takes `bytes` if they fit.
    pub(crate) fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let next = used.saturating_add(bytes);
                (next <= self.limit).then_some(next)
            })
            .is_ok()
    }

    /// Whether `bytes` more would fit now.
    pub(crate) fn fits(&self, bytes: u64) -> bool {
        self.used.load(Ordering::Acquire).saturating_add(bytes) <= self.limit
    }

    /// Takes `bytes` even beyond the limit (memory that has nowhere else to go).
    pub(crate) fn take(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    pub(crate) fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Converts between queue deadlines (`Instant`s) and wall-clock milliseconds, which is what
/// survives a restart. Anchored once per store, so both clocks advance together (also under
/// a paused test clock).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    wall_ms: i64,
}

impl Clock {
    pub(crate) fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall_ms: now_ms(),
        }
    }

    pub(crate) fn to_wall(self, at: Instant) -> i64 {
        let offset = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if at >= self.instant {
            self.wall_ms.saturating_add(offset(at - self.instant))
        } else {
            self.wall_ms.saturating_sub(offset(self.instant - at))
        }
    }

    pub(crate) fn to_instant(self, wall_ms: i64) -> Instant {
        let delta = wall_ms.saturating_sub(self.wall_ms);
        let magnitude = std::time::Duration::from_millis(delta.unsigned_abs());
        if delta >= 0 {
            self.instant + magnitude
        } else {
            self.instant.checked_sub(magnitude).unwrap_or(self.instant)
        }
    }
}

/// The logs of one durable queue and what has not been journaled yet.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    what: String,
    messages: Arc<Log>,
    index: Arc<Log>,
    acks: Arc<Log>,
    sync: Arc<Syncer>,
    fsync: FsyncPolicy,
    /// Slots for offsets `index_from..` not yet written to the index log.
    index_buf: Vec<u8>,
    index_from: u64,
    /// Offsets that left the queue and are not journaled yet.
    pending: RangeSet,
    /// Per level: every offset below was delivered at least once.
    marks: Vec<u64>,
    dirty_marks: Vec<u8>,
    /// Delivered and not yet settled.
    pub(crate) unacked: RangeSet,
    removed_since_check: u64,
    /// Journal bytes appended since the last snapshot.
    journal_bytes: u64,
    compacting: Arc<AtomicBool>,
    pub(crate) clock: Clock,
    /// A non-durable queue's scratch logs: messages are written only when the queue spills
    /// them from memory (`append_spilled`), and nothing is journaled.
    scratch: bool,
}

#[cfg(test)]
mod tests;

fn storage(what: &str) -> impl Fn(LogError) -> Error + '_ {
    move |source| Error::Storage {
        what: what.to_owned(),
        source,
    }
}

impl Store {
    /// Opens (creating or recovering) the logs in `dir`; `levels` priority levels.
    pub(crate) fn open(
        ctx: &StorageContext,
        dir: &Path,
        what: String,
        levels: usize,
    ) -> Result<(Self, Recovered), Error> {
        recover::open(ctx, dir, what, levels)
    }

    /// Creates the logs of a non-durable queue that starts paging to disk, in a new `dir`
    /// (blocking: run it off the queue's lock).
    pub(crate) fn scratch(
        ctx: &StorageContext,
        dir: &Path,
        what: String,
        levels: usize,
    ) -> Result<Self, Error> {
        recover::scratch(ctx, dir, what, levels)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the next entry of `log` ("messages", "acks" or "index") will start in its
    /// active segment file: the end of its entries, before any zeros written ahead (tests).
    #[cfg(test)]
    pub(crate) fn log_end(&self, log: &str) -> u64 {
        let log = match log {
            "messages" => &self.messages,
            "acks" => &self.acks,
            _ => &self.index,
        };
        log.segments().last().map_or(0, |s| s.size_bytes)
    }

    /// Appends `message`: its offset, and for a persistent message under `fsync = always` the
    /// wait a publisher confirm needs.
    pub(crate) fn append(
        &mut self,
        message: &Message,
        level: u8,
        expires_at: Option<Instant>,
    ) -> Result<(u64, Option<DurabilityWait>), Error> {
        let persistent = message.properties.is_persistent();
        let now_ms = now_ms();
        let expires_ms = expires_at.map(|deadline| self.clock.to_wall(deadline));
        let encoded =
            record::encode_message(message, level, persistent, expires_ms).ok_or_else(|| {
                Error::Internal {
                    reason: "exchange or routing key too long to store".to_owned(),
                }
            })?;
        let parts: [&[u8]; 3] = [&encoded.head, &encoded.properties, &message.body];
        let appended = self
            .messages
            .append(&[Entry {
                timestamp: now_ms,
                span: 1,
                parts: &parts,
            }])
            .map_err(storage(&self.what))?;
        let offset = appended.base_offset;
        Info {
            body_size: u32::try_from(message.body.len()).unwrap_or(u32::MAX),
            level,
            persistent,
        }
        .encode(&mut self.index_buf);
        if self.index_buf.len() >= INDEX_BATCH * record::INDEX_SLOT {
            self.flush_index();
        }
        let wait = (persistent && self.fsync == FsyncPolicy::Always).then(|| {
            let wait = self.sync.wait(appended.next_offset);
            self.sync.schedule();
            wait
        });
        Ok((offset, wait))
    }

    /// Whether this is a non-durable queue's scratch store (see `Store::scratch`).
    pub(crate) fn is_scratch(&self) -> bool {
        self.scratch
    }

    /// Writes messages a non-durable queue no longer keeps in memory, in one append: each at
    /// the offset of its sequence number, the offsets between them as holes (span only, no
    /// payload), so sequence number and offset stay one. `entries` ascend and none is below
    /// the log's end.
    pub(crate) fn append_spilled(&mut self, entries: &[&Queued]) -> Result<(), Error> {
        let now_ms = now_ms();
        let mut encoded = Vec::with_capacity(entries.len());
        for entry in entries {
            let expires_ms = entry.expires_at.map(|at| self.clock.to_wall(at));
            let persistent = entry.message.properties.is_persistent();
            let record =
                record::encode_message(&entry.message, entry.level, persistent, expires_ms)
                    .ok_or_else(|| Error::Internal {
                        reason: "exchange or routing key too long to store".to_owned(),
                    })?;
            encoded.push(record);
        }
        let parts: Vec<[&[u8]; 3]> = encoded
            .iter()
            .zip(entries)
            .map(|(record, entry)| {
                [
                    &record.head[..],
                    &record.properties[..],
                    &entry.message.body[..],
                ]
            })
            .collect();
        let hole: [&[u8]; 0] = [];
        let mut batch = Vec::with_capacity(entries.len() + 1);
        let mut at = self.messages.next_offset();
        for (entry, parts) in entries.iter().zip(&parts) {
            if entry.seq < at {
                return Err(Error::Internal {
                    reason: format!(
                        "{}: spilled message {} below the log end {at}",
                        self.what, entry.seq
                    ),
                });
            }
            while at < entry.seq {
                let span = u32::try_from(entry.seq - at).unwrap_or(u32::MAX);
                batch.push(Entry {
                    timestamp: now_ms,
                    span,
                    parts: &hole,
                });
                at += u64::from(span);
            }
            batch.push(Entry {
                timestamp: now_ms,
                span: 1,
                parts,
            });
            at += 1;
        }
        self.messages.append(&batch).map_err(storage(&self.what))?;
        Ok(())
    }

    /// Entries from `offset` on, up to `max_bytes` (at least one).
    pub(crate) fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<StoredEntry>, Error> {
        self.messages
            .read(offset, max_bytes)
            .map_err(storage(&self.what))
    }

    /// The index's facts about `offset`, if written (for accounting a lost message).
    pub(crate) fn info(&self, offset: u64) -> Option<Info> {
        if offset >= self.index_from {
            let slot = usize::try_from(offset - self.index_from).ok()?;
            return Info::decode_slot(&self.index_buf, slot);
        }
        let entry = self.index.read(offset, 1).ok()?.into_iter().next()?;
        let slot = usize::try_from(offset.checked_sub(entry.offset)?).ok()?;
        Info::decode_slot(&entry.payload, slot)
    }

    /// `offset` left the queue for good.
    pub(crate) fn ack(&mut self, offset: u64) {
        self.unacked.remove(offset);
        if !self.scratch {
            self.pending.insert(offset);
        }
        self.removed_since_check += 1;
    }

    /// Every offset of `set` left the queue for good.
    pub(crate) fn ack_all(&mut self, set: &RangeSet) {
        if !self.scratch {
            self.pending.extend(set);
        }
        self.removed_since_check += set.len();
    }

    /// `offset` of `level` was handed to a consumer.
    pub(crate) fn delivered(&mut self, level: u8, offset: u64) {
        if self.scratch {
            return;
        }
        if let Some(mark) = self.marks.get_mut(usize::from(level))
            && offset >= *mark
        {
            *mark = offset + 1;
            if !self.dirty_marks.contains(&level) {
                self.dirty_marks.push(level);
            }
        }
    }

    /// Journals what changed since the last call (one append), if anything did.
    pub(crate) fn flush_progress(&mut self) {
        if self.scratch || (self.pending.is_empty() && self.dirty_marks.is_empty()) {
            return;
        }
        let mut items = Vec::new();
        if !self.pending.is_empty() {
            let ranges: Vec<(u64, u64)> = self.pending.iter().collect();
            for chunk in ranges.chunks(RANGES_PER_ENTRY) {
                items.push(Item::Acked(chunk.to_vec()));
            }
            self.pending.clear();
        }
        for level in self.dirty_marks.drain(..) {
            if let Some(&upto) = self.marks.get(usize::from(level)) {
                items.push(Item::Delivered { level, upto });
            }
        }
        if let Err(e) = self.journal(&items) {
            // Losing an acknowledgement only means a redelivery after a crash.
            tracing::error!(queue = %self.what, "acknowledgement journal append failed: {e}");
        }
    }

    /// Writes buffered index slots.
    pub(crate) fn flush_index(&mut self) {
        if self.index_buf.is_empty() {
            return;
        }
        let slots = self.index_buf.len() / record::INDEX_SLOT;
        if self.index.next_offset() != self.index_from {
            // Only a failed earlier write can cause this; recovery rebuilds the index.
            tracing::error!(queue = %self.what, "index out of step with the message log");
            self.index_buf.clear();
            self.index_from += slots as u64;
            return;
        }
        let parts: [&[u8]; 1] = [&self.index_buf];
        let entry = Entry {
            timestamp: now_ms(),
            span: u32::try_from(slots).unwrap_or(u32::MAX),
            parts: &parts,
        };
        match self.index.append(&[entry]) {
            Ok(_) => {}
            // Kept for the next flush: the disk may have room again by then.
            Err(LogError::StorageFull { .. }) => return,
            Err(e) => {
                tracing::error!(queue = %self.what, "index append failed (recovery will rebuild it): {e}");
            }
        }
        self.index_buf.clear();
        self.index_from += slots as u64;
    }

    /// Whether a compaction is worth running now (cheap).
    pub(crate) fn wants_compaction(&mut self, oldest_live: Option<u64>) -> bool {
        if self.compacting.load(Ordering::Acquire) {
            return false;
        }
        if self.removed_since_check < CHECK_EVERY {
            return false;
        }
        self.removed_since_check = 0;
        self.check_compaction(oldest_live)
    }

    /// Compaction is due: the journal grew, or a whole message segment is behind the oldest
    /// live message.
    pub(crate) fn check_compaction(&self, oldest_live: Option<u64>) -> bool {
        if self.compacting.load(Ordering::Acquire) {
            return false;
        }
        if self.journal_bytes > COMPACT_JOURNAL_BYTES {
            return true;
        }
        let oldest = oldest_live.unwrap_or_else(|| self.messages.next_offset());
        self.messages
            .segments()
            .first()
            .is_some_and(|first| !first.active && first.next_offset <= oldest)
    }

    /// Whether a sealed message segment above the oldest live message holds nothing live
    /// (a stuck old message keeps the head; this frees the middle).
    pub(crate) fn has_free_middle(&self, live: &RangeSet) -> bool {
        let below = live.first().unwrap_or_else(|| self.messages.next_offset());
        self.messages.segments().iter().any(|s| {
            !s.active && s.base_offset >= below && !live.intersects(s.base_offset, s.next_offset)
        })
    }

    /// Starts a compaction given every live offset; the blocking part runs on the blocking
    /// pool (inline without a runtime). Does nothing if one is running.
    pub(crate) fn compact(&mut self, live: &RangeSet) {
        if self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        self.flush_index();
        self.flush_progress();
        let next = self.messages.next_offset();
        let below = live.first().unwrap_or(next);
        let mut gaps = Vec::new();
        let mut cursor = below;
        for (start, end) in live.iter() {
            if start > cursor {
                gaps.push((cursor, start));
            }
            cursor = end;
        }
        if next > cursor {
            gaps.push((cursor, next));
        }
        let mut items = vec![Item::Below(below)];
        for (level, upto) in self.marks.iter().enumerate() {
            if let Ok(level) = u8::try_from(level) {
                items.push(Item::Delivered { level, upto: *upto });
            }
        }
        let first = self.acks.next_offset();
        if let Err(e) = self.journal(&items) {
            tracing::error!(queue = %self.what, "journal snapshot failed: {e}");
            self.compacting.store(false, Ordering::Release);
            return;
        }
        for chunk in gaps.chunks(RANGES_PER_ENTRY) {
            if let Err(e) = self.journal(&[Item::Acked(chunk.to_vec())]) {
                tracing::error!(queue = %self.what, "journal snapshot failed: {e}");
                self.compacting.store(false, Ordering::Release);
                return;
            }
        }
        let end = self.acks.next_offset();
        // Sealed message segments inside a gap hold nothing live.
        let middle: Vec<u64> = self
            .messages
            .segments()
            .iter()
            .filter(|s| !s.active && s.base_offset >= below)
            .filter(|s| !live.intersects(s.base_offset, s.next_offset))
            .map(|s| s.base_offset)
            .collect();
        let job = Compaction {
            what: self.what.clone(),
            messages: Arc::clone(&self.messages),
            index: Arc::clone(&self.index),
            acks: Arc::clone(&self.acks),
            journal_from: first,
            journal_end: end,
            below,
            middle,
            done: Arc::clone(&self.compacting),
        };
        self.journal_bytes = 0;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(move || job.run())),
            Err(_) => job.run(),
        }
    }

    pub(crate) fn policy(&self) -> FsyncPolicy {
        self.fsync
    }

    /// The three logs (for interval fsyncs off the queue's lock).
    pub(crate) fn logs(&self) -> Vec<Arc<Log>> {
        vec![
            Arc::clone(&self.messages),
            Arc::clone(&self.index),
            Arc::clone(&self.acks),
        ]
    }

    /// Logs to fsync at shutdown, after the buffers are written (call under the queue lock,
    /// sync the result without it).
    pub(crate) fn prepare_close(&mut self) -> Vec<Arc<Log>> {
        self.flush_index();
        self.flush_progress();
        self.logs()
    }

    /// The queue was deleted: waits resolve, and the files are removed (blocking; run it on
    /// the blocking pool).
    pub(crate) fn close_for_delete(&self) -> PathBuf {
        self.sync.close();
        self.dir.clone()
    }
}

impl Store {
    /// Appends `items` to the journal as one entry (nothing for a scratch store, which is
    /// never recovered).
    fn journal(&mut self, items: &[Item]) -> Result<(), LogError> {
        if items.is_empty() || self.scratch {
            return Ok(());
        }
        let mut out = BytesMut::new();
        for item in items {
            item.encode(&mut out);
        }
        let parts: [&[u8]; 1] = [&out];
        self.acks.append(&[Entry {
            timestamp: now_ms(),
            span: 1,
            parts: &parts,
        }])?;
        self.journal_bytes += out.len() as u64;
        Ok(())
    }
}

/// The blocking half of a compaction.
struct Compaction {
    what: String,
    messages: Arc<Log>,
    index: Arc<Log>,
    acks: Arc<Log>,
    journal_from: u64,
    journal_end: u64,
    below: u64,
    middle: Vec<u64>,
    done: Arc<AtomicBool>,
}

impl Compaction {
    fn run(self) {
        if let Err(e) = self.apply() {
            tracing::error!(queue = %self.what, "compaction failed: {e}");
        }
        self.done.store(false, Ordering::Release);
    }

    fn apply(&self) -> Result<(), LogError> {
        // The snapshot must be on disk before the records it replaces go.
        self.acks.sync_to(self.journal_end)?;
        self.acks.advance_start(self.journal_from)?;
        self.messages
            .advance_start(self.below.min(self.messages.next_offset()))?;
        self.index
            .advance_start(self.below.min(self.index.next_offset()))?;
        for base in &self.middle {
            match self.messages.delete_segment(*base) {
                Ok(()) | Err(LogError::NoSuchSegment { .. } | LogError::ActiveSegment { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::debug!(queue = %self.what, below = self.below, middle = self.middle.len(),
            "queue journal compacted");
        Ok(())
    }
}

/// Moves a deleted queue's directory out of the way at once (a rename), so a queue declared
/// again under the same name starts afresh while the old files are removed in the background.
/// Names made by `layout::encode_name` never start with `.`, so the new name collides with
/// no queue; open removes leftovers.
pub(crate) fn retire(dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = dir.with_file_name(format!(".deleted-{}-{n}-{name}", std::process::id()));
    match std::fs::rename(dir, &target) {
        Ok(()) => target,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "could not move a deleted queue's files: {e}");
            dir.to_path_buf()
        }
    }
}

/// Removes a deleted queue's files (blocking).
pub(crate) fn remove_files(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::error!(dir = %dir.display(), "removing a deleted queue's files: {e}"),
    }
}
