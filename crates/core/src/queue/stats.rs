//! Per-queue message counters, for the management API and metrics.
//!
//! Each queue has its own counters, bumped with relaxed atomics by operations that already
//! hold the queue's lock: no extra lock and no shared cache line between queues. Readers take
//! a [`QueueCounts`] snapshot; rates are computed by whoever samples them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters since the queue was created (or the broker started).
#[derive(Debug, Default)]
pub struct QueueStats {
    publish: AtomicU64,
    deliver: AtomicU64,
    deliver_no_ack: AtomicU64,
    get: AtomicU64,
    get_no_ack: AtomicU64,
    get_empty: AtomicU64,
    redeliver: AtomicU64,
    ack: AtomicU64,
    dead_lettered: AtomicU64,
}

/// A snapshot of [`QueueStats`], named as RabbitMQ's `message_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub publish: u64,
    /// Delivered to consumers in acknowledgement mode.
    pub deliver: u64,
    pub deliver_no_ack: u64,
    /// basic.get in acknowledgement mode.
    pub get: u64,
    pub get_no_ack: u64,
    pub get_empty: u64,
    /// Deliveries and gets of messages delivered before.
    pub redeliver: u64,
    pub ack: u64,
    /// Dead-lettered or dropped (expired, rejected, over a length or delivery limit).
    pub dead_lettered: u64,
}

impl QueueCounts {
    /// RabbitMQ's `deliver_get`: every delivery and get.
    pub fn deliver_get(&self) -> u64 {
        self.deliver + self.deliver_no_ack + self.get + self.get_no_ack
    }

    /// Adds another snapshot (vhost and broker totals).
    pub fn add(&mut self, other: &QueueCounts) {
        self.publish += other.publish;
        self.deliver += other.deliver;
        self.deliver_no_ack += other.deliver_no_ack;
        self.get += other.get;
        self.get_no_ack += other.get_no_ack;
        self.get_empty += other.get_empty;
        self.redeliver += other.redeliver;
        self.ack += other.ack;
        self.dead_lettered += other.dead_lettered;
    }
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl QueueStats {
    pub(crate) fn published(&self) {
        bump(&self.publish, 1);
    }

    pub(crate) fn delivered(&self, no_ack: bool, redelivered: bool) {
        bump(
            if no_ack {
                &self.deliver_no_ack
            } else {
                &self.deliver
            },
            1,
        );
        if redelivered {
            bump(&self.redeliver, 1);
        }
    }

    pub(crate) fn got(&self, no_ack: bool, redelivered: Option<bool>) {
        match redelivered {
            None => bump(&self.get_empty, 1),
            Some(redelivered) => {
                bump(if no_ack { &self.get_no_ack } else { &self.get }, 1);
                if redelivered {
                    bump(&self.redeliver, 1);
                }
            }
        }
    }

    pub(crate) fn acked(&self, n: u64) {
        bump(&self.ack, n);
    }

    pub(crate) fn dead_lettered(&self, n: u64) {
        bump(&self.dead_lettered, n);
    }

    pub fn snapshot(&self) -> QueueCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        QueueCounts {
            publish: get(&self.publish),
            deliver: get(&self.deliver),
            deliver_no_ack: get(&self.deliver_no_ack),
            get: get(&self.get),
            get_no_ack: get(&self.get_no_ack),
            get_empty: get(&self.get_empty),
            redeliver: get(&self.redeliver),
            ack: get(&self.ack),
            dead_lettered: get(&self.dead_lettered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_as_rabbitmq_names_them() {
        let stats = QueueStats::default();
        stats.published();
        stats.published();
        stats.delivered(false, false);
        stats.delivered(true, true);
        stats.got(false, Some(true));
        stats.got(true, None);
        stats.acked(2);
        stats.dead_lettered(1);
        let counts = stats.snapshot();
        assert_eq!(counts.publish, 2);
        assert_eq!(counts.deliver_get(), 3);
        assert_eq!(counts.redeliver, 2);
        assert_eq!(counts.get_empty, 1);
        assert_eq!((counts.ack, counts.dead_lettered), (2, 1));
        let mut total = QueueCounts::default();
        total.add(&counts);
        total.add(&counts);
        assert_eq!(total.publish, 4);
    }
}
