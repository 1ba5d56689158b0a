//! Opening a durable queue's logs and rebuilding its backlog without reading message bodies.
//!
//! ```text
//! 1. open messages/, index/, acks/ (each log truncates its own torn tail)
//! 2. replay acks/: offsets gone for good, "everything below" marks, delivered marks
//! 3. live = offsets in message segments, at or above the start, not acknowledged
//! 4. per live offset: its index slot (size, level, persistent); offsets the index lacks
//!    (the unwritten batch before a crash) are read from the message log and indexed now
//! 5. transient messages do not survive a restart: they are acknowledged here
//! ```
//! Only the index (8 bytes a message), the journal and the message log's tail are read, so
//! gigabytes of backlog recover in about the time it takes to read their index.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ferrymq_log::{Entry, FsyncPolicy, Log, LogConfig, Recovery, StoredEntry};

use super::record::{self, INDEX_SLOT, Info, Item};
use super::sync::Syncer;
use super::{RangeSet, StorageContext, Store, storage};
use crate::Error;

const READ_CHUNK: usize = 1 << 20;
const INDEX_BATCH_SPAN: usize = 8192;

/// What a recovered queue holds, for its ready list.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// Live persistent offsets, per priority level.
    pub(crate) levels: Vec<RangeSet>,
    /// Ready body bytes in all.
    pub(crate) bytes: u64,
    /// Per level: offsets below this were delivered before the restart.
    pub(crate) marks: Vec<u64>,
    pub(crate) report: Report,
}

/// What recovery did, for the log.
#[derive(Debug, Default, Clone)]
pub(crate) struct Report {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) transient_dropped: u64,
    pub(crate) unreadable: u64,
    pub(crate) bytes_truncated: u64,
    pub(crate) indexed_from_log: u64,
    pub(crate) elapsed: Duration,
}

fn truncated(recovery: &Recovery, what: &str, log: &str) -> u64 {
    match &recovery.truncated {
        Some(cut) => {
            tracing::warn!(queue = %what, log, file = %cut.path.display(),
                position = cut.position, bytes_dropped = cut.bytes_dropped,
                "queue log: dropped a torn tail");
            cut.bytes_dropped
        }
        None => 0,
    }
}

fn open_log(dir: &Path, config: LogConfig, what: &str) -> Result<(Log, Recovery), Error> {
    Log::open(dir, config).map_err(storage(what))
}

pub(super) fn open(
    ctx: &StorageContext,
    dir: &Path,
    what: String,
    levels: usize,
) -> Result<(Store, Recovered), Error> {
    let started = std::time::Instant::now();
    let levels = levels.max(1);
    let (messages, r_messages) = open_log(&dir.join("messages"), ctx.message_config(), &what)?;
    let index_config = ctx.small_config(1024 * 1024);
    let (mut index, r_index) = open_log(&dir.join("index"), index_config.clone(), &what)?;
    let (acks, r_acks) = open_log(&dir.join("acks"), ctx.small_config(256 * 1024), &what)?;
    let mut report = Report {
        bytes_truncated: truncated(&r_messages, &what, "messages")
            + truncated(&r_index, &what, "index")
            + truncated(&r_acks, &what, "acks"),
        ..Report::default()
    };

    // 2. The journal.
    let mut acked = RangeSet::new();
    let mut below = 0u64;
    let mut marks = vec![0u64; levels];
    replay(&acks, &what, |item| match item {
        Item::Acked(ranges) => {
            for (start, end) in ranges {
                acked.insert_range(start, end);
            }
        }
        Item::Below(offset) => below = below.max(offset),
        Item::Delivered { level, upto } => {
            if let Some(mark) = marks.get_mut(usize::from(level)) {
                *mark = (*mark).max(upto);
            }
        }
    })?;

    let next = messages.next_offset();
    let base = messages.start_offset().max(below);
    if index.next_offset() > next {
        // Only a power loss can leave the index ahead of the messages: rebuild it.
        tracing::warn!(queue = %what, index = index.next_offset(), messages = next,
            "queue index is ahead of its message log; rebuilding it");
        drop(index);
        let index_dir = dir.join("index");
        std::fs::remove_dir_all(&index_dir).map_err(|source| Error::DataDir {
            path: index_dir.clone(),
            source,
        })?;
        index = open_log(&index_dir, index_config, &what)?.0;
    }

    // 3. Candidates: offsets present in a message segment, not acknowledged.
    let mut live = RangeSet::new();
    for segment in messages.segments() {
        let start = segment.base_offset.max(base);
        let end = segment.next_offset.min(next);
        live.insert_range(start, end);
    }
    for (start, end) in acked.iter() {
        live.remove_range(start, end);
    }

    // 4. What each live offset is.
    let index_start = index.start_offset();
    let index_next = index.next_offset();
    let tail_from = index_next.max(base);
    let mut tail = vec![
        Info {
            body_size: 0,
            level: 0,
            persistent: false,
        };
        usize::try_from(next - tail_from).unwrap_or(0)
    ];
    let mut slots = Slots::new(&index);
    let mut scan = Slots::new(&messages);
    let mut levels_live = vec![RangeSet::new(); levels];
    let mut drop_now = RangeSet::new();
    let mut bytes = 0u64;
    for (start, end) in live.iter() {
        for offset in start..end {
            let from_index = if (index_start..index_next).contains(&offset) {
                slots.index_info(offset)?
            } else {
                None
            };
            let info = match from_index {
                Some(info) => Some(info),
                None => {
                    report.indexed_from_log += 1;
                    scan.message_info(offset, &what)?
                }
            };
            if offset >= tail_from
                && let Some(info) = info
                && let Some(slot) =
                    tail.get_mut(usize::try_from(offset - tail_from).unwrap_or(usize::MAX))
            {
                *slot = info;
            }
            match info {
                Some(info) if info.persistent => {
                    let level = usize::from(info.level).min(levels - 1);
                    if let Some(set) = levels_live.get_mut(level) {
                        set.insert(offset);
                    }
                    bytes += u64::from(info.body_size);
                    report.messages += 1;
                }
                Some(_) => {
                    drop_now.insert(offset);
                    report.transient_dropped += 1;
                }
                None => {
                    drop_now.insert(offset);
                    report.unreadable += 1;
                }
            }
        }
    }
    report.bytes = bytes;

    // The index catches up: a hole for offsets nobody needs, then the rebuilt tail.
    append_hole(&index, index_next, tail_from, &what)?;
    for chunk in tail.chunks(INDEX_BATCH_SPAN) {
        let mut payload = Vec::with_capacity(chunk.len() * INDEX_SLOT);
        for info in chunk {
            info.encode(&mut payload);
        }
        let parts: [&[u8]; 1] = [&payload];
        index
            .append(&[Entry {
                timestamp: super::now_ms(),
                span: u32::try_from(chunk.len()).unwrap_or(u32::MAX),
                parts: &parts,
            }])
            .map_err(storage(&what))?;
    }

    let mut store = assemble(dir, what, messages, index, acks, ctx.fsync, marks.clone());
    store.journal_bytes = store.acks.size_bytes();
    if !drop_now.is_empty() {
        store.ack_all(&drop_now);
        store.flush_progress();
    }
    report.elapsed = started.elapsed();
    Ok((
        store,
        Recovered {
            levels: levels_live,
            bytes,
            marks,
            report,
        },
    ))
}

/// New, empty logs in `dir` for a non-durable queue that pages to disk: message offsets are
/// the queue's sequence numbers (the first append begins with a hole up to its first one),
/// nothing is fsynced or journaled (non-durable queues do not survive a restart, so their
/// files are removed at start, never recovered).
pub(super) fn scratch(
    ctx: &StorageContext,
    dir: &Path,
    what: String,
    levels: usize,
) -> Result<Store, Error> {
    let open = |name: &str, config: LogConfig| {
        let config = LogConfig {
            fsync: FsyncPolicy::Never,
            ..config
        };
        Log::open(dir.join(name), config)
            .map(|(log, _)| log)
            .map_err(storage(&what))
    };
    let messages = open("messages", ctx.message_config())?;
    let index = open("index", ctx.small_config(1024 * 1024))?;
    let acks = open("acks", ctx.small_config(256 * 1024))?;
    if messages.next_offset() != 0 {
        return Err(Error::Internal {
            reason: format!("{what}: paging directory {} is not new", dir.display()),
        });
    }
    let marks = vec![0; levels.max(1)];
    let mut store = assemble(dir, what, messages, index, acks, FsyncPolicy::Never, marks);
    store.scratch = true;
    Ok(store)
}

fn assemble(
    dir: &Path,
    what: String,
    messages: Log,
    index: Log,
    acks: Log,
    fsync: FsyncPolicy,
    marks: Vec<u64>,
) -> Store {
    let messages = Arc::new(messages);
    Store {
        dir: dir.to_path_buf(),
        sync: Syncer::new(Arc::clone(&messages)),
        index_from: messages.next_offset(),
        messages,
        index: Arc::new(index),
        acks: Arc::new(acks),
        fsync,
        index_buf: Vec::new(),
        pending: RangeSet::new(),
        marks,
        dirty_marks: Vec::new(),
        unacked: RangeSet::new(),
        removed_since_check: 0,
        journal_bytes: 0,
        compacting: Arc::new(AtomicBool::new(false)),
        clock: super::Clock::now(),
        scratch: false,
        what,
    }
}

/// Replays every journal entry from the start.
fn replay(acks: &Log, what: &str, mut apply: impl FnMut(Item)) -> Result<(), Error> {
    let mut offset = acks.start_offset();
    while offset < acks.next_offset() {
        let entries = acks.read(offset, READ_CHUNK).map_err(storage(what))?;
        let Some(last) = entries.last() else { break };
        offset = last.next_offset();
        for entry in entries {
            let items = Item::decode_all(&entry.payload).map_err(|e| Error::CorruptQueue {
                queue: what.to_owned(),
                offset: entry.offset,
                reason: e.to_string(),
            })?;
            items.into_iter().for_each(&mut apply);
        }
    }
    Ok(())
}

/// Fills `[from, to)` of the index with entries that say nothing (offsets already gone).
fn append_hole(index: &Log, from: u64, to: u64, what: &str) -> Result<(), Error> {
    let mut at = from;
    while at < to {
        let span = u32::try_from(to - at).unwrap_or(u32::MAX);
        let parts: [&[u8]; 0] = [];
        index
            .append(&[Entry {
                timestamp: super::now_ms(),
                span,
                parts: &parts,
            }])
            .map_err(storage(what))?;
        at += u64::from(span);
    }
    Ok(())
}

/// Sequential reads of a log for ascending offsets.
struct Slots<'a> {
    log: &'a Log,
    entries: VecDeque<StoredEntry>,
}

impl<'a> Slots<'a> {
    fn new(log: &'a Log) -> Self {
        Self {
            log,
            entries: VecDeque::new(),
        }
    }

    /// The entry holding `offset`, reading further as needed.
    fn entry(&mut self, offset: u64) -> Result<Option<&StoredEntry>, ferrymq_log::LogError> {
        while self
            .entries
            .front()
            .is_some_and(|e| e.next_offset() <= offset)
        {
            self.entries.pop_front();
        }
        if self.entries.front().is_none_or(|e| e.offset > offset) {
            self.entries.clear();
            if offset >= self.log.next_offset() || offset < self.log.start_offset() {
                return Ok(None);
            }
            self.entries.extend(self.log.read(offset, READ_CHUNK)?);
        }
        Ok(self
            .entries
            .front()
            .filter(|e| e.offset <= offset && offset < e.next_offset()))
    }

    fn index_info(&mut self, offset: u64) -> Result<Option<Info>, Error> {
        let entry = self.entry(offset).map_err(|source| Error::Storage {
            what: "queue index".to_owned(),
            source,
        })?;
        Ok(entry
            .and_then(|e| Info::decode_slot(&e.payload, usize::try_from(offset - e.offset).ok()?)))
    }

    fn message_info(&mut self, offset: u64, what: &str) -> Result<Option<Info>, Error> {
        let entry = self.entry(offset).map_err(storage(what))?;
        Ok(match entry {
            Some(e) if e.offset == offset => match record::peek(&e.payload) {
                Ok(info) => Some(info),
                Err(err) => {
                    tracing::error!(queue = %what, offset, "unreadable message dropped: {err}");
                    None
                }
            },
            _ => None,
        })
    }
}
