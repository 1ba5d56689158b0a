//! Consumers and the credit that bounds what a queue may hand them.
//!
//! A queue pushes deliveries to a consumer's [`DeliverySink`] only while every credit the
//! consumer depends on allows it:
//!
//! ```text
//! window   per consumer: handed to the sink but not yet written to the socket (always)
//! own      per consumer: unacknowledged deliveries, basic.qos prefetch (ack mode only)
//! channel  per channel:  unacknowledged deliveries, basic.qos global (ack mode only);
//!          also paused by channel.flow (every mode)
//! ```
//! So what sits in a connection's outbox is bounded by construction, and a consumer that
//! stops reading or acking only stops receiving: the queue skips it and serves others.
//!
//! When a queue finds a credit exhausted it *parks* on it; giving credit back (an ack, a
//! written delivery, a qos change) wakes every parked queue, which then dispatches again.
//!
//! # Invariants
//! - [`Credit::release`] and [`Credit::set_limit`] may run queue dispatch: never call them
//!   while holding a queue's lock.
//! - [`DeliverySink::deliver`] runs with the queue's lock held: it must not block and must not
//!   call into any queue.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::{Entry, Queue};
use crate::message::Message;

/// Identifies the connection that owns exclusive queues and consumers.
pub type OwnerId = u64;

/// A counter of outstanding items with an optional limit, and the queues waiting for it.
#[derive(Debug, Default)]
pub struct Credit {
    /// 0 means unlimited.
    limit: AtomicU32,
    used: AtomicU32,
    paused: AtomicBool,
    waiters: Mutex<Vec<Weak<Queue>>>,
    /// Woken whenever credit may have come back, for waiters that are not queues (stream
    /// readers).
    changed: tokio::sync::Notify,
}

impl Credit {
    pub fn new(limit: u32) -> Self {
        Self {
            limit: AtomicU32::new(limit),
            ..Self::default()
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Acquire)
    }

    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    fn available(&self) -> bool {
        let limit = self.limit();
        !self.paused.load(Ordering::Acquire) && (limit == 0 || self.used() < limit)
    }

    /// Takes one unit if the limit allows.
    pub(crate) fn try_take(&self) -> bool {
        if self.paused.load(Ordering::Acquire) {
            return false;
        }
        let mut used = self.used();
        loop {
            let limit = self.limit();
            if limit != 0 && used >= limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => used = actual,
            }
        }
    }

    /// Whether the credit is paused (channel.flow).
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Gives back a unit taken by [`Self::try_take`] without waking anyone (rollback).
    pub(crate) fn untake(&self) {
        self.sub(1);
    }

    fn sub(&self, n: u32) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }

    /// Registers `queue` to be kicked when credit comes back. Returns false (and registers
    /// nothing) if credit is available already, so the caller retries instead of waiting
    /// for a wake-up that already happened.
    pub(crate) fn park(&self, queue: &Arc<Queue>) -> bool {
        let mut waiters = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.available() {
            return false;
        }
        if !waiters.iter().any(|w| w.as_ptr() == Arc::as_ptr(queue)) {
            waiters.push(Arc::downgrade(queue));
        }
        true
    }

    /// Returns `n` units and wakes the queues parked on this credit.
    pub fn release(&self, n: u32) {
        if n == 0 {
            return;
        }
        self.sub(n);
        self.changed.notify_waiters();
        self.wake();
    }

    /// Changes the limit (0 = unlimited) and wakes parked queues.
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
        self.changed.notify_waiters();
        self.wake();
    }

    /// Pauses or resumes (channel.flow); resuming wakes parked queues.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        if !paused {
            self.changed.notify_waiters();
            self.wake();
        }
    }

    /// A future that completes when credit may have come back. Create (and `enable`) it
    /// before trying to take credit, so no release is missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn wake(&self) {
        let waiters = {
            let mut waiters = self
                .waiters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if waiters.is_empty() || !self.available() {
                return;
            }
            std::mem::take(&mut *waiters)
        };
        for queue in waiters.iter().filter_map(Weak::upgrade) {
            queue.kick();
        }
    }
}

/// What a consumer asked for in basic.consume.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSpec {
    pub tag: String,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority`: higher-priority consumers are served first while they have credit.
    pub priority: i32,
    /// The connection the consumer belongs to.
    pub owner: OwnerId,
    /// Its channel on that connection (for listings).
    pub channel: u16,
    /// basic.consume's arguments, as given (for listings).
    pub arguments: crate::message::FieldTable,
}

/// Where a queue hands the deliveries of one consumer (an AMQP channel, in practice).
pub trait DeliverySink: Send + Sync + std::fmt::Debug {
    /// Accepts one delivery. Runs with the queue's lock held (see the module invariants).
    fn deliver(&self, delivery: Delivery);
    /// Accepts one message read from a stream for `consumer`, who took its credit. There is
    /// no queue entry behind it: settling it only gives the credit back. Runs without any
    /// lock held.
    fn deliver_message(&self, consumer: &Arc<Consumer>, message: Arc<Message>);
    /// Called once after a batch of `deliver` calls, outside the queue's lock: the place to
    /// wake a writer.
    fn flush(&self);
    /// The queue dropped the consumer on its own (queue deleted): a broker-initiated cancel.
    fn cancelled(&self, consumer: &Arc<Consumer>);
}

/// A registered consumer, shared by its queue and its channel.
#[derive(Debug)]
pub struct Consumer {
    pub spec: ConsumerSpec,
    /// Per-consumer prefetch (`basic.qos` with global=false).
    pub own: Credit,
    /// Shared by every consumer of the channel: global prefetch and channel.flow.
    pub channel: Arc<Credit>,
    /// Deliveries handed to the sink and not yet written out.
    pub window: Credit,
    pub sink: Arc<dyn DeliverySink>,
    /// A consumer receives nothing until its channel has announced it (consume-ok sent).
    active: AtomicBool,
}

impl Consumer {
    pub fn new(
        spec: ConsumerSpec,
        prefetch: u32,
        channel: Arc<Credit>,
        window: u32,
        sink: Arc<dyn DeliverySink>,
    ) -> Self {
        Self {
            spec,
            own: Credit::new(prefetch),
            channel,
            window: Credit::new(window),
            sink,
            active: AtomicBool::new(false),
        }
    }

    pub fn tag(&self) -> &str {
        &self.spec.tag
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    pub(crate) fn set_active(&self) {
        self.active.store(true, Ordering::Release);
    }

    /// Takes every credit one delivery needs, or nothing. Stream readers use this and wait
    /// on the credits' [`Credit::changed`] instead of parking.
    pub fn try_take_credit(&self) -> bool {
        if !self.window.try_take() {
            return false;
        }
        if self.spec.no_ack {
            if self.channel.is_paused() {
                self.window.untake();
                return false;
            }
            return true;
        }
        if !self.own.try_take() {
            self.window.untake();
            return false;
        }
        if !self.channel.try_take() {
            self.window.untake();
            self.own.untake();
            return false;
        }
        true
    }

    /// Takes every credit one delivery needs, or parks `queue` on the first one missing.
    /// `Some(true)`: taken; `Some(false)`: parked; `None`: nothing taken but credit freed
    /// meanwhile (try again).
    pub(crate) fn take_credit(&self, queue: &Arc<Queue>) -> Option<bool> {
        if !self.window.try_take() {
            return self.window.park(queue).then_some(false);
        }
        if self.spec.no_ack {
            if self.channel.is_paused() {
                self.window.untake();
                return self.channel.park(queue).then_some(false);
            }
            return Some(true);
        }
        if !self.own.try_take() {
            self.window.untake();
            return self.own.park(queue).then_some(false);
        }
        if !self.channel.try_take() {
            self.window.untake();
            self.own.untake();
            return self.channel.park(queue).then_some(false);
        }
        Some(true)
    }
}

/// One message handed to a consumer.
#[derive(Debug)]
pub struct Delivery {
    pub queue: Arc<Queue>,
    pub consumer: Arc<Consumer>,
    pub entry: Entry,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_limits_and_pauses() {
        let c = Credit::new(2);
        assert!(c.try_take());
        assert!(c.try_take());
        assert!(!c.try_take());
        c.release(1);
        assert!(c.try_take());
        c.set_limit(0);
        assert!(c.try_take());
        c.set_paused(true);
        assert!(!c.try_take());
        c.set_paused(false);
        assert!(c.try_take());
        c.release(100);
        assert_eq!(c.used(), 0);
    }
}
