//! The operations frontends call on a queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::{Duration, Instant};

use super::dispatch::Effects;
use super::{Consumer, DeathReason, DurabilityWait, Entry, Overflow, Queue, State};
use crate::Error;
use crate::error::ResourceKind;
use crate::message::Message;

/// What became of a message offered to a queue.
pub enum Enqueued {
    /// Taken. For a persistent message in a journaled queue, `durable` resolves once it is
    /// on disk; a publisher confirm waits for it.
    Accepted { durable: Option<DurabilityWait> },
    /// Refused: the queue is full and its overflow is reject-publish(-dlx).
    Rejected,
}

impl std::fmt::Debug for Enqueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Accepted { durable } => f
                .debug_struct("Accepted")
                .field("durable", &durable.is_some())
                .finish(),
            Self::Rejected => f.write_str("Rejected"),
        }
    }
}

/// The sequence number of an entry that never entered the queue (refused by its length
/// limit and dead-lettered at once): nothing to journal.
const NOT_STORED: u64 = u64::MAX;

impl Queue {
    fn not_found(&self) -> Error {
        Error::NotFound {
            kind: ResourceKind::Queue,
            name: self.spec.name.clone(),
            vhost: self.vhost_name.clone(),
        }
    }

    fn over_limit(&self, len: usize, bytes: u64) -> bool {
        self.args.max_length.is_some_and(|max| len as u64 > max)
            || self.args.max_length_bytes.is_some_and(|max| bytes > max)
    }

    /// Offers a message. Dispatches it at once if a consumer has credit.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> Enqueued {
        let mut fx = Effects::default();
        let outcome = {
            let mut st = self.lock();
            if st.deleted {
                return Enqueued::Accepted { durable: None };
            }
            let size = message.body_size();
            let full = self.over_limit(st.ready.len() + 1, st.ready.bytes() + size);
            if full && self.args.overflow != Overflow::DropHead {
                if self.args.overflow == Overflow::RejectPublishDlx {
                    let mut entry = self.new_entry(&mut st, message, Instant::now());
                    entry.seq = NOT_STORED;
                    fx.dead.push((entry, DeathReason::MaxLen));
                }
                drop(st);
                self.finish(fx);
                return Enqueued::Rejected;
            }
            if st.ready.wants_store(&message) {
                self.start_paging(&mut st);
            }
            let now = Instant::now();
            let mut entry = self.new_entry(&mut st, message, now);
            let mut durable = None;
            // A durable queue's log takes every message now; a scratch store only what its queue
            // spills from memory later.
            if let Some(store) = st.ready.store_mut().filter(|s| !s.is_scratch()) {
                match store.append(&entry.message, entry.level, entry.expires_at) {
                    Ok((offset, wait)) => {
                        entry.seq = offset;
                        durable = wait;
                    }
                    Err(e) => {
                        self.log_refusal(&mut st, &e);
                        return Enqueued::Rejected;
                    }
                }
            }
            let was_empty = st.ready.is_empty();
            if entry.expires_at.is_some() {
                self.ensure_timer(&mut st);
                if was_empty {
                    self.timer.notify_one();
                }
            }

            // As RabbitMQ: a message that finds the queue empty and a consumer with credit
            // goes straight to it, even with a TTL of 0.
            let direct = if was_empty { self.pick(&mut st) } else { None };
            match direct {
                Some(index) => self.hand_over(&mut st, &mut fx, index, entry),
                None => {
                    st.ready.push_back(entry);
                    self.dispatch(&mut st, &mut fx);
                }
            }
            while self.over_limit(st.ready.len(), st.ready.bytes()) {
                match st.ready.pop_front() {
                    Some(head) => fx.dead.push((head, DeathReason::MaxLen)),
                    None => break,
                }
            }
            self.seal(&mut st, &fx);
            self.update_memory(&st);
            self.stats.published();
            Enqueued::Accepted { durable }
        };
        self.finish(fx);
        outcome
    }

    /// Logs a message refused because it cannot be stored: at once, then at most once a second
    /// with the number refused meanwhile.
    fn log_refusal(&self, st: &mut State, e: &Error) {
        const EVERY: Duration = Duration::from_secs(1);
        st.refused_unlogged += 1;
        let now = Instant::now();
        if st.refusal_logged_at.is_some_and(|at| now < at + EVERY) {
            return;
        }
        tracing::error!(queue = %self.name(), vhost = %self.vhost_name,
            refused = st.refused_unlogged, "messages refused: cannot store them: {e}");
        st.refused_unlogged = 0;
        st.refusal_logged_at = Some(now);
    }

    fn new_entry(&self, st: &mut State, message: Arc<Message>, now: Instant) -> Entry {
        let seq = st.next_seq;
        st.next_seq += 1;
        let message_ttl = message.properties.expiration_ms().ok().flatten();
        let ttl = match (self.args.message_ttl, message_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let level = st.ready.level_for(message.properties.priority);
        Entry {
            seq,
            message,
            redelivered: false,
            expires_at: ttl.map(|ms| now + Duration::from_millis(ms)),
            level,
            requeues: 0,
        }
    }

    /// Registers a consumer. It receives nothing until [`Queue::activate`].
    pub fn consume(self: &Arc<Self>, consumer: Arc<Consumer>) -> Result<(), Error> {
        let mut st = self.lock();
        if st.deleted {
            return Err(self.not_found());
        }
        let exclusive_in_use = st.consumers.iter().any(|c| c.spec.exclusive);
        if exclusive_in_use || (consumer.spec.exclusive && !st.consumers.is_empty()) {
            return Err(Error::ExclusiveConsumer {
                name: self.spec.name.clone(),
                vhost: self.vhost_name.clone(),
            });
        }
        let at = if self.args.single_active_consumer {
            st.consumers.len()
        } else {
            st.consumers
                .iter()
                .position(|c| c.spec.priority < consumer.spec.priority)
                .unwrap_or(st.consumers.len())
        };
        st.consumers.insert(at, consumer);
        st.had_consumer = true;
        st.last_used = Instant::now();
        Ok(())
    }

    /// Lets a registered consumer receive (its consume-ok is out), and dispatches.
    pub fn activate(self: &Arc<Self>, consumer: &Arc<Consumer>) {
        consumer.set_active();
        self.kick();
    }

    /// Removes a consumer; `false` if it was not registered. An auto-delete queue losing its
    /// last consumer is deleted.
    pub fn cancel(self: &Arc<Self>, consumer: &Arc<Consumer>) -> bool {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            let Some(index) = st.consumers.iter().position(|c| Arc::ptr_eq(c, consumer)) else {
                return false;
            };
            st.consumers.remove(index);
            if st.consumers.is_empty() {
                st.last_used = Instant::now();
                self.timer.notify_one();
                if self.spec.auto_delete && st.had_consumer && !st.deleted {
                    fx.delete = true;
                }
            } else if !fx.delete {
                // A single-active-consumer queue may have a new active consumer.
                self.dispatch(&mut st, &mut fx);
                self.seal(&mut st, &fx);
            }
        }
        self.finish(fx);
        true
    }

    /// basic.get: the next message, and how many remain ready after it.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Result<Option<(Entry, u32)>, Error> {
        let mut fx = Effects::default();
        let result = {
            let mut st = self.lock();
            if st.deleted {
                return Err(self.not_found());
            }
            let now = Instant::now();
            st.last_used = now;
            let mut expired = Vec::new();
            st.ready.take_expired(now, &mut expired);
            fx.dead
                .extend(expired.into_iter().map(|e| (e, DeathReason::Expired)));
            let entry = st.ready.pop_front();
            self.stats
                .got(no_ack, entry.as_ref().map(|e| e.redelivered));
            if let Some(entry) = &entry {
                if !no_ack {
                    st.unacked += 1;
                    st.unacked_bytes += entry.message.body_size();
                }
                if let Some(store) = st.ready.store_mut() {
                    store.delivered(entry.level, entry.seq);
                    if no_ack {
                        store.ack(entry.seq);
                    } else {
                        store.unacked.insert(entry.seq);
                    }
                }
            }
            self.seal(&mut st, &fx);
            self.update_memory(&st);
            let remaining = u32::try_from(st.ready.len()).unwrap_or(u32::MAX);
            entry.map(|e| (e, remaining))
        };
        self.finish(fx);
        Ok(result)
    }

    fn settle(&self, st: &mut State, entries: &[Entry]) {
        st.unacked = st.unacked.saturating_sub(entries.len() as u64);
        let bytes: u64 = entries.iter().map(|e| e.message.body_size()).sum();
        st.unacked_bytes = st.unacked_bytes.saturating_sub(bytes);
        if let Some(store) = st.ready.store_mut() {
            for entry in entries {
                store.unacked.remove(entry.seq);
            }
        }
    }

    /// Journals what a locked operation changed in a durable queue: messages it dead-lettered
    /// or dropped are gone for good. Call before releasing the lock.
    pub(super) fn seal(&self, st: &mut State, fx: &Effects) {
        let Some(store) = st.ready.store_mut() else {
            return;
        };
        for (entry, _) in &fx.dead {
            if entry.seq != NOT_STORED {
                store.ack(entry.seq);
            }
        }
        store.flush_progress();
        st.ready.maybe_compact(false);
    }

    /// Acknowledged deliveries leave the queue for good.
    pub fn ack(self: &Arc<Self>, entries: &[Entry]) {
        let mut st = self.lock();
        self.settle(&mut st, entries);
        self.stats.acked(entries.len() as u64);
        let deleted = st.deleted;
        if let Some(store) = st.ready.store_mut()
            && !deleted
        {
            for entry in entries {
                store.ack(entry.seq);
            }
            self.seal(&mut st, &Effects::default());
        }
        self.update_memory(&st);
    }

    /// Puts unacknowledged deliveries back in their original positions, marked redelivered.
    pub fn requeue(self: &Arc<Self>, entries: Vec<Entry>) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            self.settle(&mut st, &entries);
            if st.deleted {
                return;
            }
            for mut entry in entries {
                entry.redelivered = true;
                entry.requeues = entry.requeues.saturating_add(1);
                if self
                    .args
                    .delivery_limit
                    .is_some_and(|limit| u64::from(entry.requeues) > limit)
                {
                    fx.dead.push((entry, DeathReason::DeliveryLimit));
                } else {
                    st.ready.insert_by_seq(entry);
                }
            }
            self.timer.notify_one();
            self.dispatch(&mut st, &mut fx);
            self.seal(&mut st, &fx);
        }
        self.finish(fx);
    }

    /// Rejected without requeue: dead-lettered (reason `rejected`) or dropped.
    pub fn reject(self: &Arc<Self>, entries: Vec<Entry>) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            self.settle(&mut st, &entries);
            self.update_memory(&st);
            if st.deleted {
                return;
            }
            fx.dead
                .extend(entries.into_iter().map(|e| (e, DeathReason::Rejected)));
            self.seal(&mut st, &fx);
        }
        self.finish(fx);
    }

    /// Drops every ready message; returns how many.
    pub fn purge(self: &Arc<Self>) -> Result<u32, Error> {
        let mut st = self.lock();
        if st.deleted {
            return Err(self.not_found());
        }
        let n = st.ready.clear();
        self.seal(&mut st, &Effects::default());
        self.update_memory(&st);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Runs dispatch (credit came back somewhere).
    pub fn kick(self: &Arc<Self>) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            if st.deleted {
                return;
            }
            self.dispatch(&mut st, &mut fx);
            self.seal(&mut st, &fx);
        }
        self.finish(fx);
    }

    /// Resets the x-expires clock (a redeclaration counts as use).
    pub(crate) fn touch(&self) {
        self.lock().last_used = Instant::now();
    }

    /// Marks the queue deleted, cancels its consumers; returns the ready count it had and,
    /// for a durable queue, the directory of its files (for the caller to remove).
    pub(crate) fn shut_down(self: &Arc<Self>) -> (u32, Option<std::path::PathBuf>) {
        let mut fx = Effects::default();
        let mut files = None;
        let count = {
            let mut st = self.lock();
            if st.deleted {
                return (0, None);
            }
            st.deleted = true;
            self.deleted.store(true, Ordering::Release);
            fx.cancelled = std::mem::take(&mut st.consumers);
            if let Some(store) = st.ready.take_store() {
                files = Some(store.close_for_delete());
            }
            let n = st.ready.clear();
            st.unacked = 0;
            st.unacked_bytes = 0;
            self.update_memory(&st);
            self.timer.notify_one();
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        self.finish(fx);
        (count, files)
    }

    /// `(ready, consumers)` in one look, for declare-ok.
    pub fn counts(&self) -> (u32, u32) {
        let st = self.lock();
        (
            u32::try_from(st.ready.len()).unwrap_or(u32::MAX),
            u32::try_from(st.consumers.len()).unwrap_or(u32::MAX),
        )
    }
}
