//! The ready list of a queue: messages waiting for a consumer, in delivery order.
//!
//! Without `x-max-priority` it is one FIFO. With it, one FIFO per priority level, served
//! highest first. Requeued messages go back to their original place (ordered by sequence
//! number within their level), as RabbitMQ's classic queues do.
//!
//! Each level is three ordered parts; every sequence number in one part is below every one
//! in the next:
//!
//! ```text
//! front: VecDeque<Entry>  in memory: requeued messages, and messages read back from disk
//! cold:  RangeSet         on disk only (durable queues): log offsets, a few bytes a run
//! back:  VecDeque<Entry>  in memory: the newest messages
//! ```
//! A queue without a store keeps everything in `back` (and requeues in `front`). A durable
//! queue's messages are all in its log (their sequence number is their offset); the newest
//! stay in `back` while the broker-wide message cache has room, and when it has none a level
//! spills `back` to `cold`, keeping only offsets. Popping from a cold head reads a batch back
//! (zero-copy views of the mapped segment). So memory does not grow with the backlog.
//!
//! A non-durable queue is charged to the same cache and starts without a store. When the
//! cache is full it gets one (a scratch log, see [`Ready::attach_store`]) whose offsets are
//! its sequence numbers. Unlike a durable queue's, nothing is written as messages arrive:
//! when the cache is full again, every level's `back` is written in one append (offsets it
//! skips are holes) and becomes `cold`; reading back is the durable queue's. So paging costs
//! one write per cache-full of messages (RabbitMQ's classic queues v2 page transient messages
//! the same way, in batches).
//!
//! # Invariants
//! - `len`/`bytes` count every ready message (all three parts); `mem_*` only `front` and
//!   `back`, which are what actually occupies memory.
//! - Requeued entries are older than everything in `cold` (a message is delivered from the
//!   head of its level, and only newer messages enter `cold` after it), so they go to
//!   `front`, which never spills.
//! - With a cache, every entry in `back` is charged to it, and so is every entry in `front`
//!   whose sequence number is below `charged_below` (what a non-durable queue held in memory
//!   before it had a store: all of `front` until then, none of it in a durable queue).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;

use super::store::{Cache, RangeSet, Recovered, Store, record};
use crate::message::Message;

/// A message in a queue, with the per-queue facts that travel with it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Position in the queue: increasing in publish order, unique per queue (the log
    /// offset in a durable queue).
    pub seq: u64,
    pub message: Arc<Message>,
    /// Delivered before (and requeued).
    pub redelivered: bool,
    /// When it expires (queue or per-message TTL), fixed when it was enqueued.
    pub expires_at: Option<Instant>,
    /// Its priority level in this queue (0 when the queue has no priorities).
    pub level: u8,
    /// How many times it was requeued (quorum queues' `x-delivery-limit` counts these).
    pub requeues: u32,
}

/// Entries read back from disk at once.
const REFILL_ENTRIES: usize = 256;
const REFILL_BYTES: usize = 128 * 1024;
/// The smallest read of a refill, and the first guess of an entry's size on disk.
const MIN_READ_BYTES: usize = 4096;
const FIRST_ESTIMATE: usize = 256;

#[derive(Debug, Default)]
struct Level {
    front: VecDeque<Entry>,
    cold: RangeSet,
    back: VecDeque<Entry>,
    /// Offsets below this were delivered before the broker restarted.
    redelivered_below: u64,
}

impl Level {
    fn is_empty(&self) -> bool {
        self.front.is_empty() && self.cold.is_empty() && self.back.is_empty()
    }

    fn first_seq(&self) -> Option<u64> {
        self.front
            .front()
            .map(|e| e.seq)
            .or_else(|| self.cold.first())
            .or_else(|| self.back.front().map(|e| e.seq))
    }
}

#[derive(Debug)]
pub(crate) struct Ready {
    levels: Vec<Level>,
    len: usize,
    bytes: u64,
    mem_len: usize,
    mem_bytes: u64,
    /// What this list's entries are charged in the cache (see [`charge`]).
    cached: u64,
    /// `front` entries below this sequence number are charged too.
    charged_below: u64,
    /// A scratch store's write failed (a full disk): entries stay in memory until then.
    spill_retry_at: Option<Instant>,
    /// Bytes an entry took on disk in the last refill, to size the next read.
    entry_estimate: usize,
    store: Option<Store>,
    cache: Option<Arc<Cache>>,
}

fn body(entry: &Entry) -> u64 {
    entry.message.body_size()
}

/// What an entry held in memory costs against the shared cache: not only its body but its
/// properties, names and the structures around it, so a backlog of small messages spills to
/// disk as early (in bytes of memory) as one of large messages.
fn charge(entry: &Entry) -> u64 {
    charge_of(&entry.message)
}

fn charge_of(message: &Message) -> u64 {
    const FIXED: usize = size_of::<Entry>() + size_of::<Message>() + 2 * size_of::<usize>(); // the Arc's counts
    FIXED as u64
        + message.memory_size()
        + message.exchange.len() as u64
        + message.routing_key.len() as u64
}

impl Ready {
    /// An in-memory ready list.
    pub(crate) fn new(max_priority: Option<u8>) -> Self {
        let count = usize::from(max_priority.unwrap_or(0)) + 1;
        Self {
            levels: (0..count).map(|_| Level::default()).collect(),
            len: 0,
            bytes: 0,
            mem_len: 0,
            mem_bytes: 0,
            cached: 0,
            charged_below: 0,
            spill_retry_at: None,
            entry_estimate: FIRST_ESTIMATE,
            store: None,
            cache: None,
        }
    }

    /// An in-memory ready list charged to `cache`, that gets a store once the cache is full
    /// (see [`Self::wants_store`]).
    pub(crate) fn charged(max_priority: Option<u8>, cache: Arc<Cache>) -> Self {
        let mut ready = Self::new(max_priority);
        ready.charged_below = u64::MAX;
        ready.cache = Some(cache);
        ready
    }

    /// A ready list backed by `store`, holding what recovery found.
    pub(crate) fn with_store(
        max_priority: Option<u8>,
        store: Store,
        cache: Arc<Cache>,
        recovered: Recovered,
    ) -> Self {
        let mut ready = Self::new(max_priority);
        for (level, (live, mark)) in ready
            .levels
            .iter_mut()
            .zip(recovered.levels.into_iter().zip(recovered.marks))
        {
            ready.len += usize::try_from(live.len()).unwrap_or(usize::MAX);
            level.cold = live;
            level.redelivered_below = mark;
        }
        ready.bytes = recovered.bytes;
        ready.store = Some(store);
        ready.cache = Some(cache);
        ready
    }

    pub(crate) fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    pub(crate) fn store_mut(&mut self) -> Option<&mut Store> {
        self.store.as_mut()
    }

    /// Whether `message` no longer fits in the cache and this list has no store to page to.
    pub(crate) fn wants_store(&self, message: &Message) -> bool {
        self.store.is_none()
            && self
                .cache
                .as_ref()
                .is_some_and(|cache| !cache.fits(charge_of(message)))
    }

    /// Where a scratch store for this list must begin: its oldest entry in `back` (every
    /// `back` entry is newer than every `front` one), if any.
    pub(crate) fn spill_from(&self) -> Option<u64> {
        self.levels
            .iter()
            .filter_map(|level| level.back.front().map(|e| e.seq))
            .min()
    }

    /// Gives an in-memory list a scratch store; `from` is [`Self::spill_from`] (or a sequence
    /// number not used yet), the first that may go to disk. `front` stays in memory and
    /// charged; what `back` holds is written to the store when the cache is next full
    /// ([`Self::push_back`]).
    pub(crate) fn attach_store(&mut self, store: Store, from: u64) {
        self.charged_below = from;
        self.store = Some(store);
    }

    /// Detaches the store (the queue is being deleted); the list keeps its entries.
    pub(crate) fn take_store(&mut self) -> Option<Store> {
        self.store.take()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sum of body sizes (what `x-max-length-bytes` limits).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Entries held in memory.
    pub(crate) fn mem_len(&self) -> usize {
        self.mem_len
    }

    /// Body bytes held in memory.
    pub(crate) fn mem_bytes(&self) -> u64 {
        self.mem_bytes
    }

    /// The level a message of priority `priority` goes to.
    pub(crate) fn level_for(&self, priority: Option<u8>) -> u8 {
        let max = u8::try_from(self.levels.len() - 1).unwrap_or(u8::MAX);
        priority.unwrap_or(0).min(max)
    }

    fn level_index(&self, level: u8) -> usize {
        usize::from(level).min(self.levels.len() - 1)
    }

    pub(crate) fn push_back(&mut self, entry: Entry) {
        self.len += 1;
        self.bytes += body(&entry);
        let index = self.level_index(entry.level);
        let cost = charge(&entry);
        let fits = match &self.cache {
            None => true,
            // Without a store to spill to, the entry stays in memory in any case.
            Some(_) if self.store.is_none() => true,
            Some(cache) => {
                let taken = cache.try_take(cost);
                if taken {
                    self.cached += cost;
                }
                taken
            }
        };
        if fits {
            if self.store.is_none() {
                self.take(cost);
            }
            self.keep_in_back(entry);
            return;
        }
        if self.store.as_ref().is_some_and(Store::is_scratch) {
            self.spill_to_scratch(entry);
            return;
        }
        // The cache is full: this level's in-memory tail goes to disk-only, and so does the
        // new message (it is in the log already).
        self.spill(index);
        if let Some(level) = self.levels.get_mut(index) {
            level.cold.insert(entry.seq);
        }
    }

    /// The cache is full and this non-durable queue's scratch store takes what memory cannot:
    /// every level's `back` and `entry`, in sequence order, in one append; they become cold.
    /// If the write fails (a full disk), `entry` stays in memory beyond the cache, and writing
    /// is tried again a second later.
    fn spill_to_scratch(&mut self, entry: Entry) {
        const RETRY: std::time::Duration = std::time::Duration::from_secs(1);
        let now = Instant::now();
        let may_write = self.spill_retry_at.is_none_or(|at| now >= at);
        let written = match self.store.as_mut() {
            Some(store) if may_write => {
                let mut spilled: Vec<&Entry> =
                    self.levels.iter().flat_map(|l| l.back.iter()).collect();
                spilled.push(&entry);
                spilled.sort_unstable_by_key(|e| e.seq);
                store.append_spilled(&spilled).map_err(|e| {
                    tracing::error!(queue = %store.dir().display(),
                        "cannot page messages to disk, they stay in memory: {e}");
                })
            }
            _ => Err(()),
        };
        if written.is_err() {
            if may_write {
                self.spill_retry_at = Some(now + RETRY);
            }
            self.take(charge(&entry));
            self.keep_in_back(entry);
            return;
        }
        self.spill_retry_at = None;
        for index in 0..self.levels.len() {
            self.spill(index);
        }
        let index = self.level_index(entry.level);
        if let Some(level) = self.levels.get_mut(index) {
            level.cold.insert(entry.seq);
        }
    }

    fn spill(&mut self, index: usize) {
        let Some(level) = self.levels.get_mut(index) else {
            return;
        };
        let mut freed = 0;
        let mut charged = 0;
        let mut count = 0;
        for entry in level.back.drain(..) {
            freed += body(&entry);
            charged += charge(&entry);
            count += 1;
            level.cold.insert(entry.seq);
        }
        self.release(charged);
        self.mem_len -= count;
        self.mem_bytes -= freed;
    }

    /// Appends an entry (already counted in `len`/`bytes`, and charged) to its level's
    /// in-memory tail.
    fn keep_in_back(&mut self, entry: Entry) {
        self.mem_len += 1;
        self.mem_bytes += body(&entry);
        let index = self.level_index(entry.level);
        if let Some(level) = self.levels.get_mut(index) {
            level.back.push_back(entry);
        }
    }

    /// Charges `bytes` to the cache even beyond its limit (memory with nowhere else to go).
    fn take(&mut self, bytes: u64) {
        if let Some(cache) = &self.cache {
            cache.take(bytes);
            self.cached += bytes;
        }
    }

    fn release(&mut self, bytes: u64) {
        if let Some(cache) = &self.cache {
            cache.release(bytes);
            self.cached = self.cached.saturating_sub(bytes);
        }
    }

    /// Puts a requeued entry back at its original position.
    pub(crate) fn insert_by_seq(&mut self, entry: Entry) {
        let size = body(&entry);
        self.len += 1;
        self.bytes += size;
        self.mem_len += 1;
        self.mem_bytes += size;
        let index = self.level_index(entry.level);
        let charged_below = self.charged_below;
        let mut moved = 0;
        if let Some(level) = self.levels.get_mut(index) {
            // Newer in-memory entries that come before it move to `front` with it.
            while level.back.front().is_some_and(|e| e.seq < entry.seq) {
                if let Some(e) = level.back.pop_front() {
                    if e.seq >= charged_below {
                        moved += charge(&e);
                    }
                    level.front.push_back(e);
                }
            }
        }
        self.release(moved);
        if entry.seq < charged_below {
            self.take(charge(&entry));
        }
        if let Some(level) = self.levels.get_mut(index) {
            let at = level.front.partition_point(|e| e.seq < entry.seq);
            level.front.insert(at, entry);
        }
    }

    fn front_level(&self) -> Option<usize> {
        self.levels.iter().rposition(|level| !level.is_empty())
    }

    pub(crate) fn pop_front(&mut self) -> Option<Entry> {
        let index = self.front_level()?;
        self.pop_level(index)
    }

    /// The head of level `index`, read back from disk if it is cold.
    fn peek_level(&mut self, index: usize) -> Option<&Entry> {
        let needs_refill = self
            .levels
            .get(index)
            .is_some_and(|level| level.front.is_empty() && !level.cold.is_empty());
        if needs_refill {
            self.refill(index);
        }
        let level = self.levels.get(index)?;
        level.front.front().or_else(|| level.back.front())
    }

    fn pop_level(&mut self, index: usize) -> Option<Entry> {
        self.peek_level(index)?;
        let level = self.levels.get_mut(index)?;
        let (entry, from_back) = match level.front.pop_front() {
            Some(entry) => (entry, false),
            None => (level.back.pop_front()?, true),
        };
        let size = body(&entry);
        self.len -= 1;
        self.bytes -= size;
        self.mem_len -= 1;
        self.mem_bytes -= size;
        if from_back || entry.seq < self.charged_below {
            self.release(charge(&entry));
        }
        Some(entry)
    }

    /// Reads the next cold entries of level `index` into its `front`.
    fn refill(&mut self, index: usize) {
        let interleaved = self.levels.len();
        let mut estimate = self.entry_estimate;
        let Some(level) = self.levels.get_mut(index) else {
            return;
        };
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let clock = store.clock;
        let mut count = 0;
        let mut budget = REFILL_BYTES;
        let mut lost = Vec::new();
        while count < REFILL_ENTRIES && budget > 0 {
            let Some(start) = level.cold.first() else {
                break;
            };
            // Read about what the entries still wanted take (a priority queue's levels
            // interleave in its log), not the whole budget: a read checks every entry it returns.
            let wanted = (REFILL_ENTRIES - count).saturating_mul(interleaved);
            let read_bytes = wanted
                .saturating_mul(estimate)
                .clamp(MIN_READ_BYTES, budget.max(MIN_READ_BYTES));
            let entries = match store.read(start, read_bytes) {
                Ok(entries) => {
                    let bytes: usize = entries.iter().map(|e| e.payload.len()).sum();
                    if let Some(each) = bytes.checked_div(entries.len()) {
                        estimate = each.max(1);
                    }
                    entries
                }
                Err(e) => {
                    tracing::error!(queue = %store.dir().display(), offset = start,
                        "message unreadable, dropped: {e}");
                    level.cold.remove(start);
                    lost.push(start);
                    continue;
                }
            };
            // The read may hold other levels' messages and holes between this level's: take
            // this level's in order, as long as each is the next one it waits for.
            let mut progressed = false;
            for stored in entries {
                if count >= REFILL_ENTRIES {
                    break;
                }
                let Some(next) = level.cold.first() else {
                    break;
                };
                if stored.offset < next {
                    continue;
                }
                if stored.offset > next {
                    break; // the log lacks `next`: found out by the next read
                }
                level.cold.remove(next);
                progressed = true;
                budget = budget.saturating_sub(stored.payload.len());
                match record::decode_message(&stored.payload) {
                    Ok(record) => {
                        let expires_at = record.expires_ms.map(|ms| clock.to_instant(ms));
                        let entry = Entry {
                            seq: stored.offset,
                            redelivered: stored.offset < level.redelivered_below,
                            message: Arc::new(record.message),
                            expires_at,
                            level: record.level,
                            requeues: 0,
                        };
                        self.mem_len += 1;
                        self.mem_bytes += body(&entry);
                        level.front.push_back(entry);
                        count += 1;
                    }
                    Err(e) => {
                        tracing::error!(queue = %store.dir().display(), offset = stored.offset,
                            "message unreadable, dropped: {e}");
                        lost.push(stored.offset);
                    }
                }
            }
            if !progressed && level.cold.first() == Some(start) {
                // The log did not return the offset we need: it is gone.
                level.cold.remove(start);
                lost.push(start);
            }
        }
        for offset in lost {
            let size = store
                .info(offset)
                .map_or(0, |info| u64::from(info.body_size));
            store.ack(offset);
            self.len -= 1;
            self.bytes = self.bytes.saturating_sub(size);
        }
        self.entry_estimate = estimate;
    }

    /// Removes, from the head of every level, entries that have expired at `now`.
    pub(crate) fn take_expired(&mut self, now: Instant, out: &mut Vec<Entry>) {
        for index in 0..self.levels.len() {
            while self
                .peek_level(index)
                .is_some_and(|e| e.expires_at.is_some_and(|t| t <= now))
            {
                match self.pop_level(index) {
                    Some(entry) => out.push(entry),
                    None => break,
                }
            }
        }
    }

    /// The earliest expiry among level heads (only heads expire, as in RabbitMQ).
    pub(crate) fn next_expiry(&mut self) -> Option<Instant> {
        (0..self.levels.len())
            .filter_map(|index| self.peek_level(index)?.expires_at)
            .min()
    }

    /// Removes everything (journaling it as gone in a durable queue); returns how many
    /// entries there were.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.len;
        let mut gone = RangeSet::new();
        for level in &mut self.levels {
            for entry in level.front.drain(..).chain(level.back.drain(..)) {
                gone.insert(entry.seq);
            }
            gone.extend(&level.cold);
            level.cold.clear();
        }
        if let Some(store) = self.store.as_mut() {
            store.ack_all(&gone);
        }
        let cached = self.cached;
        self.release(cached);
        self.len = 0;
        self.bytes = 0;
        self.mem_len = 0;
        self.mem_bytes = 0;
        n
    }

    /// The oldest message still in the queue (ready or delivered and unsettled).
    pub(crate) fn oldest_live(&self) -> Option<u64> {
        let ready = self.levels.iter().filter_map(Level::first_seq).min();
        let unacked = self.store.as_ref().and_then(|s| s.unacked.first());
        match (ready, unacked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every message still in the queue, as offsets.
    pub(crate) fn live(&self) -> RangeSet {
        let mut live = RangeSet::new();
        for level in &self.levels {
            for entry in level.front.iter().chain(level.back.iter()) {
                live.insert(entry.seq);
            }
            live.extend(&level.cold);
        }
        if let Some(store) = &self.store {
            live.extend(&store.unacked);
        }
        live
    }

    /// Runs a compaction of the store if one is due; `thorough` also looks for sealed
    /// segments in the middle of the log that hold nothing live (the periodic check).
    pub(crate) fn maybe_compact(&mut self, thorough: bool) {
        let oldest = self.oldest_live();
        let due = match self.store.as_mut() {
            None => return,
            Some(store) if thorough => store.check_compaction(oldest),
            Some(store) => store.wants_compaction(oldest),
        };
        let live = if due || thorough {
            self.live()
        } else {
            return;
        };
        if let Some(store) = self.store.as_mut()
            && (due || store.has_free_middle(&live))
        {
            store.compact(&live);
        }
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        let cached = self.cached;
        self.release(cached);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::Properties;

    fn entry(seq: u64, level: u8, body: &'static str) -> Entry {
        Entry {
            seq,
            message: Arc::new(Message::new(
                "",
                "",
                Properties::default(),
                Bytes::from_static(body.as_bytes()),
            )),
            redelivered: false,
            expires_at: None,
            level,
            requeues: 0,
        }
    }

    #[test]
    fn priorities_then_fifo_and_requeue_in_place() {
        let mut ready = Ready::new(Some(5));
        assert_eq!(ready.level_for(Some(9)), 5);
        assert_eq!(ready.level_for(None), 0);
        ready.push_back(entry(1, 0, "a"));
        ready.push_back(entry(2, 5, "bb"));
        ready.push_back(entry(3, 0, "c"));
        ready.push_back(entry(4, 5, "d"));
        assert_eq!(ready.bytes(), 5);
        let order: Vec<u64> = std::iter::from_fn(|| ready.pop_front())
            .map(|e| e.seq)
            .collect();
        assert_eq!(order, [2, 4, 1, 3]);
        assert!(ready.is_empty());
        ready.push_back(entry(7, 0, "x"));
        ready.insert_by_seq(entry(3, 0, "y"));
        ready.insert_by_seq(entry(5, 0, "z"));
        ready.push_back(entry(8, 0, "w"));
        ready.insert_by_seq(entry(6, 0, "v"));
        let order: Vec<u64> = std::iter::from_fn(|| ready.pop_front())
            .map(|e| e.seq)
            .collect();
        assert_eq!(order, [3, 5, 6, 7, 8]);
        assert_eq!(
            (ready.bytes(), ready.mem_bytes(), ready.mem_len()),
            (0, 0, 0)
        );
    }

    #[test]
    fn only_heads_expire() {
        let now = Instant::now();
        let mut ready = Ready::new(None);
        let mut a = entry(1, 0, "a");
        a.expires_at = Some(now + std::time::Duration::from_secs(10));
        let mut b = entry(2, 0, "b");
        b.expires_at = Some(now);
        ready.push_back(a);
        ready.push_back(b);
        let mut out = Vec::new();
        ready.take_expired(now, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            ready.next_expiry(),
            Some(now + std::time::Duration::from_secs(10))
        );
        ready.take_expired(now + std::time::Duration::from_secs(10), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(ready.len(), 0);
    }
}
