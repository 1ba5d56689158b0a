//! One partition of a stream: a `ferrymq-log` log of record batches, its idempotent-producer
//! and transaction state (see `txn`: open transactions, aborted ones, the last stable
//! offset), its high watermark, and the wake-ups long-polling readers wait on.
//!
//! ```text
//! append ─(partition lock: sequence check, patch header, log append)─> next offset
//!   │  fsync policy Always: flusher task ─spawn_blocking(sync_to)─> high watermark
//!   │  Interval / Never:    high watermark = next offset at once
//!   └> readers see entries below the high watermark; `changed()` wakes long polls
//! ```
//!
//! # Invariants
//! - Only the partition lock (`state`) and the log's own writer lock are taken on the produce
//!   path; reads take neither.
//! - Under `FsyncPolicy::Always` the high watermark never passes the durable offset: a
//!   consumer never sees a record a crash could lose, and an acknowledged produce is on disk.
//! - The flusher runs fsyncs on the blocking pool, one at a time per partition; appends made
//!   while one runs are covered by the next (group commit).
//! - A failed fsync poisons the partition: waiters get an error, later appends fail.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use ferrymq_log::{Entry, FsyncPolicy, Log, LogError, Recovery, StoredEntry};
use tokio::sync::{Notify, watch};

use super::batch::RecordBatch;
use super::config::{Effective, TimestampType};
use super::encode::EncodedBatch;
use super::producer::{AppendedBatch, Producers, SequenceCheck};
use super::txn::{self, AbortedTxn, Outcome, PartitionTxns};
use crate::Error;

/// Records of an append, as Produce answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    /// One past the batch's last offset: wait for this to become visible.
    pub end_offset: u64,
    /// The log-append time given to the batch, or -1 for create time.
    pub log_append_time: i64,
    pub log_start_offset: u64,
    /// The batch repeated an idempotent batch already stored (not appended again).
    pub duplicate: bool,
}

#[derive(Debug, Default)]
struct Flusher {
    running: bool,
    again: bool,
}

/// One partition.
#[derive(Debug)]
pub struct Partition {
    stream: String,
    index: u32,
    log: Log,
    state: Mutex<Producers>,
    /// Taken under `state` when both are (appends and markers update both at once).
    txns: Mutex<PartitionTxns>,
    settings: RwLock<Effective>,
    high_watermark: watch::Sender<u64>,
    data: Notify,
    /// The stream's wake-up, shared by its partitions: readers of every partition wait on it.
    stream_data: Arc<Notify>,
    flusher: Mutex<Flusher>,
    poisoned: AtomicBool,
    /// The log end covered by the last producer snapshot written (`u64::MAX`: none yet).
    snapshot_covers: std::sync::atomic::AtomicU64,
    deleted: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Partition {
    /// Opens (recovering) the log in `dir`.
    pub(crate) fn open(
        stream: &str,
        index: u32,
        dir: &Path,
        settings: Effective,
        producers: Producers,
        stream_data: Arc<Notify>,
    ) -> Result<(Self, Recovery), Error> {
        let (log, recovery) =
            Log::open(dir, settings.log_config()).map_err(|source| Error::PartitionLog {
                stream: stream.to_owned(),
                partition: index,
                source,
            })?;
        let next = log.next_offset();
        let partition = Self {
            stream: stream.to_owned(),
            index,
            log,
            state: Mutex::new(producers),
            txns: Mutex::new(PartitionTxns::default()),
            settings: RwLock::new(settings),
            high_watermark: watch::Sender::new(next),
            data: Notify::new(),
            stream_data,
            flusher: Mutex::new(Flusher::default()),
            poisoned: AtomicBool::new(false),
            snapshot_covers: std::sync::atomic::AtomicU64::new(u64::MAX),
            deleted: AtomicBool::new(false),
        };
        Ok((partition, recovery))
    }

    fn storage(&self, source: LogError) -> Error {
        if matches!(source, LogError::Poisoned { .. }) {
            self.poisoned.store(true, Ordering::Release);
        }
        Error::PartitionLog {
            stream: self.stream.clone(),
            partition: self.index,
            source,
        }
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    pub fn settings(&self) -> Effective {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn apply_settings(&self, settings: Effective) -> Result<(), Error> {
        self.log
            .set_config(settings.log_config())
            .map_err(|e| self.storage(e))?;
        let always = settings.fsync == FsyncPolicy::Always;
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
        if !always {
            self.publish(self.log.next_offset());
        }
        Ok(())
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> u64 {
        self.log.start_offset()
    }

    /// One past the last appended offset (Kafka's log end offset).
    pub fn log_end_offset(&self) -> u64 {
        self.log.next_offset()
    }

    /// One past the last offset readers may see (Kafka's high watermark and, without
    /// transactions, its last stable offset).
    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// Rebuilds producer state: from `snapshot` (producers and the offset it covers) plus the
    /// batches after it, or, without a usable snapshot, from the last two segments.
    pub(crate) fn restore_producers(
        &self,
        snapshot: Option<(Producers, u64)>,
    ) -> Result<(), Error> {
        let (start, end) = (self.log.start_offset(), self.log.next_offset());
        let segments = self.log.segments();
        let tail = segments
            .iter()
            .rev()
            .nth(1)
            .or(segments.last())
            .map_or(start, |s| s.base_offset)
            .max(start);
        let (mut producers, mut at) = match snapshot {
            Some((producers, covers_to)) if covers_to <= end && covers_to >= tail => {
                (producers, covers_to)
            }
            _ => (Producers::default(), tail),
        };
        // Transactions are rebuilt from the same batches.
        let mut txns = PartitionTxns::default();
        while at < end {
            let entries = self.read_entries(at, 8 << 20)?;
            let Some(last) = entries.last() else { break };
            at = last.offset + u64::from(last.span);
            for entry in entries {
                if let Ok(batch) = RecordBatch::from_stored(entry.payload) {
                    producers.replay(&batch);
                    txns.replay(&batch, entry.offset);
                }
            }
        }
        producers.truncate_below(start);
        txns.trim(start);
        *lock(&self.state) = producers;
        *lock(&self.txns) = txns;
        Ok(())
    }

    /// Whether a snapshot covering `covers_to` was already written.
    pub(crate) fn snapshot_is_current(&self, covers_to: u64) -> bool {
        self.snapshot_covers.load(Ordering::Acquire) == covers_to
    }

    pub(crate) fn snapshot_written(&self, covers_to: u64) {
        self.snapshot_covers.store(covers_to, Ordering::Release);
    }

    pub(crate) fn producers_snapshot(&self) -> (Producers, u64) {
        let state = lock(&self.state);
        (state.clone(), self.log.next_offset())
    }

    fn check_alive(&self) -> Result<(), Error> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(Error::StreamNotFound {
                stream: self.stream.clone(),
            });
        }
        Ok(())
    }

    /// Appends one validated batch at the next offset, `now_ms` being the broker's clock.
    pub fn append(self: &Arc<Self>, batch: &RecordBatch, now_ms: i64) -> Result<Appended, Error> {
        self.check_alive()?;
        let settings = self.settings();
        let size = batch.bytes().len();
        if size > settings.max_message_bytes as usize {
            return Err(Error::BatchTooLarge {
                size,
                max: settings.max_message_bytes,
            });
        }
        let log_append_time =
            (settings.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let idempotent = batch.producer_id() >= 0;
        let mut producers = lock(&self.state);
        if idempotent && let SequenceCheck::Duplicate(original) = producers.check(batch)? {
            return Ok(Appended {
                base_offset: original.base_offset,
                end_offset: original.base_offset + u64::from(batch.span()),
                log_append_time: original.log_append_time,
                log_start_offset: self.log.start_offset(),
                duplicate: true,
            });
        }
        let timestamp = log_append_time.unwrap_or_else(|| batch.max_timestamp());
        let (base_offset, next_offset) = self.write_batch(batch, log_append_time, timestamp)?;
        if txn::is_transactional_data(batch) {
            lock(&self.txns).on_data(batch.producer_id(), base_offset);
        }
        if idempotent {
            producers.record(
                batch.producer_id(),
                batch.producer_epoch(),
                AppendedBatch {
                    first_seq: batch.base_sequence(),
                    last_seq: batch.last_sequence(),
                    base_offset,
                    log_append_time: log_append_time.unwrap_or(-1),
                },
            );
        }
        drop(producers);
        self.made_visible(&settings, next_offset);
        Ok(Appended {
            base_offset,
            end_offset: next_offset,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: self.log.start_offset(),
            duplicate: false,
        })
    }

    /// Appends the marker ending `producer_id`'s transaction here (a control batch, see
    /// `txn`), as the transaction coordinator does for every partition of a transaction. A
    /// marker of an older epoch than the producer's is fenced.
    pub fn write_marker(
        self: &Arc<Self>,
        producer_id: i64,
        producer_epoch: i16,
        outcome: Outcome,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended, Error> {
        self.check_alive()?;
        let bytes = txn::marker_batch(
            producer_id,
            producer_epoch,
            outcome,
            coordinator_epoch,
            now_ms,
        );
        let batch = RecordBatch::parse(bytes).map_err(|e| Error::Internal {
            reason: format!("transaction marker: {e}"),
        })?;
        let mut producers = lock(&self.state);
        producers.apply_marker(producer_id, producer_epoch)?;
        let (base_offset, next_offset) = self.write_batch(&batch, None, now_ms)?;
        lock(&self.txns).on_marker(producer_id, outcome, base_offset);
        drop(producers);
        self.made_visible(&self.settings(), next_offset);
        Ok(Appended {
            base_offset,
            end_offset: next_offset,
            log_append_time: -1,
            log_start_offset: self.log.start_offset(),
            duplicate: false,
        })
    }

    /// Writes `batch` at the log's next offset as stored (base offset patched, and with
    /// `log_append_time` its timestamp); returns its base offset and the log's next offset.
    /// The caller holds `state`.
    fn write_batch(
        &self,
        batch: &RecordBatch,
        log_append_time: Option<i64>,
        timestamp: i64,
    ) -> Result<(u64, u64), Error> {
        let mut appender = self.log.appender().map_err(|e| self.storage(e))?;
        let base_offset = appender.next_offset();
        let header = batch.stored_header(base_offset, log_append_time);
        let body = batch
            .bytes()
            .get(super::batch::HEADER_LEN..)
            .unwrap_or_default();
        let entry = Entry {
            timestamp,
            span: batch.span(),
            parts: &[&header, body],
        };
        let appended = appender.append(&[entry]).map_err(|e| self.storage(e))?;
        Ok((base_offset, appended.next_offset))
    }

    /// An append ended at `next_offset`: visible now, or once the flusher has synced it.
    fn made_visible(self: &Arc<Self>, settings: &Effective, next_offset: u64) {
        if settings.fsync == FsyncPolicy::Always {
            self.schedule_sync();
        } else {
            self.publish(next_offset);
        }
    }

    /// Everything below this offset is committed or aborted (what read_committed consumers
    /// may read up to): the first offset of the oldest open transaction, else the high
    /// watermark.
    pub fn last_stable_offset(&self) -> u64 {
        lock(&self.txns).last_stable_offset(self.high_watermark())
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn has_open_transaction(&self, producer_id: i64) -> bool {
        lock(&self.txns).is_open(producer_id)
    }

    /// What to deliver of a read from `from` for readers of committed records only.
    pub fn committed_filter(&self, from: u64) -> txn::CommittedFilter {
        let txns = lock(&self.txns);
        let last_stable = txns.last_stable_offset(self.high_watermark());
        txn::CommittedFilter {
            last_stable,
            aborted: txns.aborted_between(from, last_stable),
        }
    }

    /// The aborted transactions a read_committed fetch of `[from, upto)` must report.
    pub fn aborted_between(&self, from: u64, upto: u64) -> Vec<AbortedTxn> {
        lock(&self.txns).aborted_between(from, upto)
    }

    /// Appends a one-record batch built by [`EncodedBatch::single`] (an AMQP publish): its
    /// pieces are written as they are, the value never copied. Not idempotent, so no
    /// producer state is involved. The caller chose the timestamp type from
    /// [`Self::settings`].
    pub fn append_encoded(self: &Arc<Self>, batch: &EncodedBatch) -> Result<Appended, Error> {
        self.check_alive()?;
        let settings = self.settings();
        let size = batch.len();
        if size > settings.max_message_bytes as usize {
            return Err(Error::BatchTooLarge {
                size,
                max: settings.max_message_bytes,
            });
        }
        let mut header = *batch.header();
        let [meta, value, tail] = batch.pieces();
        let mut appender = self.log.appender().map_err(|e| self.storage(e))?;
        let base_offset = appender.next_offset();
        if let Some(dst) = header.get_mut(..8) {
            dst.copy_from_slice(&base_offset.to_be_bytes());
        }
        let entry = Entry {
            timestamp: batch.timestamp(),
            span: 1,
            parts: &[&header, meta, value, tail],
        };
        let appended = appender.append(&[entry]).map_err(|e| self.storage(e))?;
        drop(appender);
        self.made_visible(&settings, appended.next_offset);
        Ok(Appended {
            base_offset,
            end_offset: appended.next_offset,
            log_append_time: if settings.timestamp_type == TimestampType::LogAppendTime {
                batch.timestamp()
            } else {
                -1
            },
            log_start_offset: self.log.start_offset(),
            duplicate: false,
        })
    }

    fn publish(&self, high_watermark: u64) {
        let advanced = self.high_watermark.send_if_modified(|hw| {
            let moved = high_watermark > *hw;
            *hw = (*hw).max(high_watermark);
            moved
        });
        if advanced {
            self.data.notify_waiters();
            self.stream_data.notify_waiters();
        }
    }

    /// Makes sure a sync covering everything appended so far runs (group commit).
    fn schedule_sync(self: &Arc<Self>) {
        {
            let mut flusher = lock(&self.flusher);
            if flusher.running {
                flusher.again = true;
                return;
            }
            flusher.running = true;
        }
        let partition = Arc::clone(self);
        let run = async move {
            loop {
                let target = partition.log.next_offset();
                let syncing = Arc::clone(&partition);
                let done = tokio::task::spawn_blocking(move || syncing.log.sync_to(target)).await;
                match done {
                    Ok(Ok(())) => partition.publish(target),
                    Ok(Err(e)) => partition.fail_sync(&e.to_string()),
                    Err(e) => partition.fail_sync(&e.to_string()),
                }
                let mut flusher = lock(&partition.flusher);
                if flusher.again && !partition.poisoned.load(Ordering::Acquire) {
                    flusher.again = false;
                } else {
                    flusher.running = false;
                    flusher.again = false;
                    return;
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(run);
            }
            Err(_) => {
                // No runtime (tools, tests): sync inline.
                let target = self.log.next_offset();
                match self.log.sync_to(target) {
                    Ok(()) => self.publish(target),
                    Err(e) => self.fail_sync(&e.to_string()),
                }
                lock(&self.flusher).running = false;
            }
        }
    }

    fn fail_sync(&self, cause: &str) {
        tracing::error!(stream = %self.stream, partition = self.index,
            "fsync failed, partition refuses further writes: {cause}");
        self.poisoned.store(true, Ordering::Release);
        self.high_watermark.send_modify(|_| {});
        self.data.notify_waiters();
        self.stream_data.notify_waiters();
    }

    /// Waits until offsets below `end` are visible to readers (durable under `Always`).
    pub async fn wait_visible(&self, end: u64) -> Result<(), Error> {
        let mut rx = self.high_watermark.subscribe();
        let result = rx
            .wait_for(|hw| {
                *hw >= end
                    || self.poisoned.load(Ordering::Acquire)
                    || self.deleted.load(Ordering::Acquire)
            })
            .await
            .map(|hw| *hw >= end);
        match result {
            Ok(true) => Ok(()),
            _ if self.deleted.load(Ordering::Acquire) => Err(Error::StreamNotFound {
                stream: self.stream.clone(),
            }),
            _ => Err(Error::NotDurable {
                stream: self.stream.clone(),
                partition: self.index,
            }),
        }
    }

    /// A future that completes when the high watermark moves or the partition goes away.
    /// Create it (and `enable` it) *before* reading, so no wake-up is missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.data.notified()
    }

    /// Stored batches from the one containing `offset`, up to `max_bytes` (at least one
    /// batch if any is visible), never past the high watermark.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<Bytes>, Error> {
        self.check_alive()?;
        let hw = self.high_watermark();
        let (start, end) = (self.log.start_offset(), self.log.next_offset());
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange {
                stream: self.stream.clone(),
                partition: self.index,
                offset,
                start,
                end,
            });
        }
        if offset >= hw {
            return Ok(Vec::new());
        }
        let entries = match self.log.read(offset, max_bytes) {
            Ok(entries) => entries,
            Err(LogError::OffsetOutOfRange { start, next, .. }) => {
                return Err(Error::OffsetOutOfRange {
                    stream: self.stream.clone(),
                    partition: self.index,
                    offset,
                    start,
                    end: next,
                });
            }
            Err(e) => return Err(self.storage(e)),
        };
        Ok(entries
            .into_iter()
            .take_while(|e| e.offset < hw)
            .map(|e| e.payload)
            .collect())
    }

    /// Stored entries from `offset` regardless of the high watermark (admin lookups).
    pub(crate) fn read_entries(
        &self,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Vec<StoredEntry>, Error> {
        self.log
            .read(offset, max_bytes)
            .map_err(|e| self.storage(e))
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        self.high_watermark.send_modify(|_| {});
        self.data.notify_waiters();
        self.stream_data.notify_waiters();
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Moves the log start to `offset` (DeleteRecords); it must not pass the high watermark.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64, Error> {
        self.check_alive()?;
        let hw = self.high_watermark();
        let start = self.log.start_offset();
        if offset > hw {
            return Err(Error::OffsetOutOfRange {
                stream: self.stream.clone(),
                partition: self.index,
                offset,
                start,
                end: hw,
            });
        }
        if offset > start {
            self.log
                .advance_start(offset)
                .map_err(|e| self.storage(e))?;
            lock(&self.state).truncate_below(offset);
            lock(&self.txns).trim(offset);
        }
        Ok(self.log.start_offset())
    }

    /// Deletes segments past retention (blocking file I/O: run off the async workers).
    pub(crate) fn apply_retention(&self, now_ms: i64) -> Result<u64, Error> {
        let retained = self
            .log
            .apply_retention(now_ms)
            .map_err(|e| self.storage(e))?;
        if retained.segments_deleted > 0 {
            lock(&self.state).truncate_below(retained.start_offset);
            lock(&self.txns).trim(retained.start_offset);
            tracing::info!(stream = %self.stream, partition = self.index,
                segments = retained.segments_deleted, bytes = retained.bytes_deleted,
                start_offset = retained.start_offset, "retention deleted segments");
        }
        Ok(retained.bytes_deleted)
    }

    /// Syncs if the interval policy says it is due (blocking).
    pub(crate) fn flush_if_due(&self) -> Result<(), Error> {
        self.log
            .flush_if_due(std::time::Instant::now())
            .map_err(|e| self.storage(e))
    }

    /// Fsyncs everything (blocking; shutdown).
    pub(crate) fn flush(&self) -> Result<(), Error> {
        self.log.flush().map_err(|e| self.storage(e))?;
        self.publish(self.log.next_offset());
        Ok(())
    }
}
