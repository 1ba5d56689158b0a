//! Choosing consumers: priorities first, round-robin within a priority, credit-gated; and
//! the work a locked operation leaves for after the lock (wake sinks, dead-letter, delete).

use std::sync::Arc;

use tokio::time::Instant;

use super::dead_letter::{DeathReason, dead_lettered, is_cycle, now_secs};
use super::{Consumer, Delivery, DeliverySink, Entry, Queue, State};

/// Side effects collected under a queue's lock and run after it is released.
#[derive(Debug, Default)]
pub(super) struct Effects {
    sinks: Vec<Arc<dyn DeliverySink>>,
    pub(super) dead: Vec<(Entry, DeathReason)>,
    pub(super) cancelled: Vec<Arc<Consumer>>,
    /// Delete the queue (auto-delete, x-expires).
    pub(super) delete: bool,
}

impl Effects {
    fn touch(&mut self, sink: &Arc<dyn DeliverySink>) {
        if !self.sinks.iter().any(|s| Arc::ptr_eq(s, sink)) {
            self.sinks.push(sink.clone());
        }
    }
}

/// Tries a consumer a few times if credit keeps coming back while we look.
const CREDIT_RETRIES: usize = 3;

impl Queue {
    /// Hands ready messages to consumers while some consumer has credit.
    pub(super) fn dispatch(self: &Arc<Self>, st: &mut State, fx: &mut Effects) {
        let now = Instant::now();
        let mut expired = Vec::new();
        loop {
            // Expiry is checked where a delivery would happen (and by the queue's timer), so
            // a durable queue without consumers never reads its backlog back.
            if st.ready.is_empty() || st.consumers.is_empty() {
                break;
            }
            st.ready.take_expired(now, &mut expired);
            if st.ready.is_empty() {
                break;
            }
            let Some(index) = self.pick(st) else {
                break;
            };
            let Some(entry) = st.ready.pop_front() else {
                break;
            };
            self.hand_over(st, fx, index, entry);
        }
        fx.dead
            .extend(expired.into_iter().map(|e| (e, DeathReason::Expired)));
        self.update_memory(st);
    }

    /// Delivers `entry` to the consumer at `index`, whose credit [`Self::pick`] took.
    pub(super) fn hand_over(
        self: &Arc<Self>,
        st: &mut State,
        fx: &mut Effects,
        index: usize,
        entry: Entry,
    ) {
        let Some(consumer) = st.consumers.get(index).cloned() else {
            return;
        };
        if !consumer.spec.no_ack {
            st.unacked += 1;
            st.unacked_bytes += entry.message.body_size();
        }
        if let Some(store) = st.ready.store_mut() {
            store.delivered(entry.level, entry.seq);
            if consumer.spec.no_ack {
                store.ack(entry.seq);
            } else {
                store.unacked.insert(entry.seq);
            }
        }
        self.stats
            .delivered(consumer.spec.no_ack, entry.redelivered);
        fx.touch(&consumer.sink);
        let sink = consumer.sink.clone();
        sink.deliver(Delivery {
            queue: self.clone(),
            consumer,
            entry,
        });
    }

    /// The index of the consumer that gets the next message, with its credit taken.
    pub(super) fn pick(self: &Arc<Self>, st: &mut State) -> Option<usize> {
        if self.args.single_active_consumer {
            let first = st.consumers.first()?;
            return self.try_consumer(first).then_some(0);
        }
        let n = st.consumers.len();
        let mut start = 0;
        while start < n {
            let priority = st.consumers.get(start)?.spec.priority;
            let end = start
                + st.consumers
                    .get(start..)?
                    .iter()
                    .take_while(|c| c.spec.priority == priority)
                    .count();
            for i in start..end {
                let consumer = st.consumers.get(i)?;
                if self.try_consumer(consumer) {
                    // Round-robin: the chosen consumer goes to the back of its group.
                    st.consumers.get_mut(i..end)?.rotate_left(1);
                    return Some(end - 1);
                }
            }
            start = end;
        }
        None
    }

    fn try_consumer(self: &Arc<Self>, consumer: &Arc<Consumer>) -> bool {
        if !consumer.is_active() {
            return false;
        }
        for _ in 0..CREDIT_RETRIES {
            if let Some(taken) = consumer.take_credit(self) {
                return taken;
            }
        }
        false
    }

    /// Runs what a locked operation left behind. Must be called without the lock.
    pub(super) fn finish(self: &Arc<Self>, fx: Effects) {
        for sink in &fx.sinks {
            sink.flush();
        }
        for consumer in &fx.cancelled {
            consumer.sink.cancelled(consumer);
        }
        if !fx.dead.is_empty() {
            self.dead_letter(fx.dead);
        }
        if fx.delete
            && let Some(vhost) = self.vhost.upgrade()
        {
            vhost.remove_queue(self);
        }
    }

    /// Republishes dead messages to the dead-letter exchange, if there is one.
    fn dead_letter(self: &Arc<Self>, dead: Vec<(Entry, DeathReason)>) {
        self.stats.dead_lettered(dead.len() as u64);
        let Some(dlx_name) = self.args.dead_letter_exchange.as_deref() else {
            return;
        };
        let Some(vhost) = self.vhost.upgrade() else {
            return;
        };
        let Ok(dlx) = vhost.exchange(dlx_name) else {
            tracing::debug!(queue = %self.name(), dlx = %dlx_name, "dead-letter exchange missing; message dropped");
            return;
        };
        let dlrk = self.args.dead_letter_routing_key.as_deref();
        let now = now_secs();
        for (entry, reason) in dead {
            let message = Arc::new(dead_lettered(
                &entry.message,
                reason,
                self.name(),
                dlx_name,
                dlrk,
                now,
            ));
            let routed = vhost.route(&dlx, &message);
            for queue in routed.queues {
                if reason != DeathReason::Rejected && is_cycle(&message, queue.name()) {
                    tracing::warn!(queue = %queue.name(), "dead-letter cycle detected; message dropped");
                    continue;
                }
                let _ = queue.publish(message.clone());
            }
        }
    }
}
