//! Classic queues: ordered messages waiting for consumers, with acknowledgements, prefetch
//! credit, TTL, dead-lettering, priorities, length limits and single-active-consumer.
//!
//! Each [`Queue`] has its own `Mutex`: publishing to one queue never waits for another, and
//! nothing on the publish or delivery path takes a vhost-wide lock. Whoever changes a
//! queue's state (a publisher, an ack, a credit coming back, the TTL timer) runs its
//! dispatch right there, under the queue's lock, handing deliveries to consumers' sinks
//! (see [`consumer`]); sinks are woken once per batch after the lock is released.
//!
//! ```text
//! publish ─> lock ─> ready list ─> dispatch ─> sink.deliver (per consumer, credit-bounded)
//!                 └─ over max-length: drop-head / reject ─> dead letters (after unlock)
//! ack ─────> unacked count; reject/nack ─> requeue in place or dead-letter
//! timer ───> expire heads (TTL), delete when unused (x-expires)
//! ```
//! Unacknowledged messages live with the channel that received them (it hands them back
//! to [`Queue::ack`], [`Queue::requeue`] or [`Queue::reject`]); the queue keeps their count.
//!
//! A durable queue (durable, not exclusive) keeps every message in its own logs (`store`):
//! the ready list holds only offsets for whatever the broker-wide message cache cannot hold,
//! acknowledgements are journaled, and a publisher confirm for a persistent message waits for
//! the group-committed fsync that covers it. A non-durable queue lives in memory.
//!
//! # Invariants
//! - Lock order: queue -> channel state inside a sink -> connection outbox. Nothing that
//!   holds a queue's lock takes another queue's lock: dead letters, auto-delete and sink
//!   wake-ups run after it is released.
//! - An entry is in exactly one place: the ready list, a channel's unacked map, or gone.
//! - A deleted queue accepts nothing and delivers nothing; late acks and requeues to it are
//!   dropped, as in RabbitMQ.

mod args;
pub mod consumer;
mod dead_letter;
mod dispatch;
mod expiry;
mod ops;
pub(crate) mod persist;
mod ready;
mod registry;
mod stats;
pub(crate) mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

pub use args::{Overflow, QueueArgs, QueueType};
pub(crate) use args::{describe as describe_arg, describe_mismatch};
pub use consumer::{Consumer, ConsumerSpec, Credit, Delivery, DeliverySink, OwnerId};
pub use dead_letter::DeathReason;
pub use ops::Enqueued;
pub use ready::Entry;
pub use registry::{Declared, Queues, REPLY_TO, REPLY_TO_PREFIX};
pub use stats::{QueueCounts, QueueStats};

use crate::message::FieldTable;
use crate::{Error, VHost, layout};
use ready::Ready;
use store::Store;

/// Resolves to `true` once a persistent message is durable under the configured policy,
/// `false` if it could not be made durable (the publisher then gets a nack).
pub type DurabilityWait = Pin<Box<dyn Future<Output = bool> + Send>>;

/// What a client asks for when it declares a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    pub name: String,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

impl QueueSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: FieldTable::new(),
        }
    }
}

/// One queue.
#[derive(Debug)]
pub struct Queue {
    vhost_name: String,
    vhost: Weak<VHost>,
    spec: QueueSpec,
    owner: Option<OwnerId>,
    args: QueueArgs,
    state: Mutex<State>,
    deleted: AtomicBool,
    /// Approximate bytes held (ready and unacknowledged), for the memory watermark.
    memory: AtomicU64,
    /// Wakes the TTL / x-expires timer task.
    timer: Arc<Notify>,
    /// Message counters (bumped under the queue's lock, read without it).
    stats: QueueStats,
}

#[derive(Debug)]
struct State {
    ready: Ready,
    unacked: u64,
    unacked_bytes: u64,
    next_seq: u64,
    /// Sorted by priority, highest first (registration order for single-active-consumer).
    consumers: Vec<Arc<Consumer>>,
    had_consumer: bool,
    last_used: Instant,
    timer_running: bool,
    deleted: bool,
    /// Whether a non-durable queue is getting its scratch store (see `start_paging`).
    paging: Paging,
    /// Messages refused for want of storage since the last such log line, and when it was
    /// written (a full disk refuses every publish: one line a second says so).
    refused_unlogged: u64,
    refusal_logged_at: Option<Instant>,
}

/// A non-durable queue on its way to a scratch store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paging {
    Idle,
    /// The store is being created on the blocking pool; messages stay in memory meanwhile.
    Opening,
    /// Creating it failed; try again after this.
    RetryAt(Instant),
}

/// A queue's depth and consumers at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueOverview {
    pub ready: u64,
    pub ready_bytes: u64,
    pub unacked: u64,
    pub unacked_bytes: u64,
    pub consumers: u32,
    /// Consumers that receive (one for single-active-consumer queues).
    pub active_consumers: u32,
    /// How long the queue has had no consumer, if it has none.
    pub idle_since_ms: Option<u64>,
}

/// Per-entry bookkeeping overhead counted toward memory use.
const ENTRY_OVERHEAD: u64 = 192;

impl Queue {
    /// A non-durable queue: in memory, charged to the broker's message cache, paging to
    /// scratch files once the cache is full.
    pub(crate) fn new(
        vhost: &Arc<VHost>,
        spec: QueueSpec,
        owner: Option<OwnerId>,
        args: QueueArgs,
    ) -> Arc<Self> {
        let ready = Ready::charged(args.max_priority, Arc::clone(&vhost.storage().cache));
        Self::with_ready(vhost, spec, owner, args, ready)
    }

    /// A durable queue: opens (creating or recovering) its logs. Blocking.
    pub(crate) fn open_durable(
        vhost: &Arc<VHost>,
        spec: QueueSpec,
        args: QueueArgs,
    ) -> Result<Arc<Self>, Error> {
        let storage = vhost.storage();
        let dir = layout::queue_dir(&storage.data_dir, vhost.name(), &spec.name);
        let what = format!("queue '{}' in vhost '{}'", spec.name, vhost.name());
        let levels = usize::from(args.max_priority.unwrap_or(0)) + 1;
        let (store, recovered) = Store::open(storage, &dir, what, levels)?;
        let report = recovered.report.clone();
        if report.messages > 0
            || report.transient_dropped > 0
            || report.unreadable > 0
            || report.bytes_truncated > 0
        {
            tracing::info!(
                vhost = %vhost.name(),
                queue = %spec.name,
                messages = report.messages,
                bytes = report.bytes,
                transient_dropped = report.transient_dropped,
                unreadable = report.unreadable,
                bytes_truncated = report.bytes_truncated,
                indexed_from_log = report.indexed_from_log,
                elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
                "recovered durable queue"
            );
        }
        let ready = Ready::with_store(
            args.max_priority,
            store,
            Arc::clone(&storage.cache),
            recovered,
        );
        let queue = Self::with_ready(vhost, spec, None, args, ready);
        queue.start_maintenance();
        Ok(queue)
    }

    fn with_ready(
        vhost: &Arc<VHost>,
        spec: QueueSpec,
        owner: Option<OwnerId>,
        args: QueueArgs,
        ready: Ready,
    ) -> Arc<Self> {
        let queue = Arc::new(Self {
            vhost_name: vhost.name().to_owned(),
            vhost: Arc::downgrade(vhost),
            state: Mutex::new(State {
                ready,
                unacked: 0,
                unacked_bytes: 0,
                next_seq: 0,
                consumers: Vec::new(),
                had_consumer: false,
                last_used: Instant::now(),
                timer_running: false,
                deleted: false,
                paging: Paging::Idle,
                refused_unlogged: 0,
                refusal_logged_at: None,
            }),
            spec,
            owner,
            args,
            deleted: AtomicBool::new(false),
            memory: AtomicU64::new(0),
            timer: Arc::new(Notify::new()),
            stats: QueueStats::default(),
        });
        {
            let mut st = queue.lock();
            if queue.args.message_ttl.is_some()
                || queue.args.expires.is_some()
                || (st.ready.store().is_some() && !st.ready.is_empty())
            {
                // A recovered backlog may hold messages with their own TTL.
                queue.ensure_timer(&mut st);
            }
            queue.update_memory(&st);
        }
        queue
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn vhost_name(&self) -> &str {
        &self.vhost_name
    }

    pub fn spec(&self) -> &QueueSpec {
        &self.spec
    }

    pub fn args(&self) -> &QueueArgs {
        &self.args
    }

    /// Durable as RabbitMQ records it: an exclusive queue is never durable.
    pub fn is_durable(&self) -> bool {
        self.spec.durable && !self.spec.exclusive
    }

    pub fn is_auto_delete(&self) -> bool {
        self.spec.auto_delete
    }

    /// The connection owning an exclusive queue.
    pub fn owner(&self) -> Option<OwnerId> {
        self.owner
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Ready messages (what queue.declare-ok reports).
    pub fn message_count(&self) -> u32 {
        u32::try_from(self.lock().ready.len()).unwrap_or(u32::MAX)
    }

    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.lock().consumers.len()).unwrap_or(u32::MAX)
    }

    /// Delivered and not yet acknowledged.
    pub fn unacked_count(&self) -> u64 {
        self.lock().unacked
    }

    /// Message counters.
    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    /// What the management API shows, read under one short lock.
    pub fn overview(&self) -> QueueOverview {
        let st = self.lock();
        QueueOverview {
            ready: st.ready.len() as u64,
            ready_bytes: st.ready.bytes(),
            unacked: st.unacked,
            unacked_bytes: st.unacked_bytes,
            consumers: u32::try_from(st.consumers.len()).unwrap_or(u32::MAX),
            active_consumers: if self.args.single_active_consumer {
                u32::from(!st.consumers.is_empty())
            } else {
                u32::try_from(st.consumers.len()).unwrap_or(u32::MAX)
            },
            idle_since_ms: (st.consumers.is_empty())
                .then(|| u64::try_from(st.last_used.elapsed().as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The queue's consumers, highest priority first.
    pub fn consumers(&self) -> Vec<Arc<Consumer>> {
        self.lock().consumers.clone()
    }

    /// Approximate bytes held by the queue's messages.
    pub fn memory(&self) -> u64 {
        self.memory.load(Ordering::Relaxed)
    }

    /// Refuses a connection other than the owner of an exclusive queue.
    pub fn check_access(&self, owner: OwnerId) -> Result<(), Error> {
        match self.owner {
            Some(o) if o != owner => Err(Error::ResourceLocked {
                name: self.spec.name.clone(),
                vhost: self.vhost_name.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Counts what the queue holds in memory: in-memory ready entries (messages that wait
    /// on disk only cost nothing here) and delivered, unsettled ones.
    fn update_memory(&self, st: &State) {
        let entries = st.ready.mem_len() as u64 + st.unacked;
        let bytes = st.ready.mem_bytes() + st.unacked_bytes + entries * ENTRY_OVERHEAD;
        self.memory.store(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
