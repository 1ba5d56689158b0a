//! The part of a channel that queues touch: delivery tags, unacknowledged deliveries, and
//! the [`DeliverySink`] through which queues hand it messages.
//!
//! # Invariants
//! - A delivery tag is assigned and the delivery queued on the outbox under one lock, so
//!   tags reach the client in increasing order.
//! - Every ack-mode delivery is in `unacked` from the moment it is handed over until the
//!   client settles it or the channel closes (then it is requeued).
//! - Methods here run under a queue's lock (`deliver`) or with no queue lock at all; they
//!   never call into a queue.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use amq_protocol::protocol::{AMQPClass, basic};
use bytes::BytesMut;
use ferrymq_core::connections::{ChannelSnapshot, ChannelView};
use ferrymq_core::message::Message;
use ferrymq_core::queue::{Consumer, Delivery, DeliverySink, Entry, Queue};
use tokio::time::Instant;

use crate::codec::method::encode_method;
use crate::connection::outbox::{OutDelivery, Outbox};

/// A delivery the client has not settled yet.
#[derive(Debug)]
pub struct Unacked {
    /// The queue and entry to settle; `None` for a message read from a stream queue
    /// (settling it, whichever way, only gives the consumer's credit back).
    pub held: Option<(Arc<Queue>, Entry)>,
    /// `None` for basic.get deliveries (they hold no consumer credit).
    pub consumer: Option<Arc<Consumer>>,
    /// When it was handed to the channel (for the consumer acknowledgement timeout).
    pub delivered_at: Instant,
}

#[derive(Debug, Default)]
pub struct Deliveries {
    pub next_tag: u64,
    pub unacked: BTreeMap<u64, Unacked>,
}

impl Deliveries {
    pub fn next_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }
}

/// Shared between a channel (owned by its connection's reader) and the queues feeding it.
#[derive(Debug)]
pub struct ChannelShared {
    pub id: u16,
    pub outbox: Arc<Outbox>,
    deliveries: Mutex<Deliveries>,
    pub closed: Arc<AtomicBool>,
    /// The client understands broker-initiated basic.cancel.
    cancel_notify: bool,
    /// Consumers the broker cancelled (queue deleted), for the channel to forget.
    server_cancelled: Mutex<Vec<Arc<Consumer>>>,
    /// What the channel last published about itself for listings (see [`Facts`]).
    pub facts: Facts,
}

/// Settings of a channel, copied here by its reader after each method that may change them,
/// so listings read them without reaching into the reader's state.
#[derive(Debug, Default)]
pub struct Facts {
    pub prefetch: AtomicU32,
    pub global_prefetch: AtomicU32,
    pub consumers: AtomicU32,
    pub confirm: AtomicBool,
    pub transactional: AtomicBool,
    pub flow_blocked: AtomicBool,
}

impl ChannelShared {
    pub fn new(id: u16, outbox: Arc<Outbox>, cancel_notify: bool) -> Arc<Self> {
        Arc::new(Self {
            id,
            outbox,
            deliveries: Mutex::new(Deliveries::default()),
            closed: Arc::new(AtomicBool::new(false)),
            cancel_notify,
            server_cancelled: Mutex::new(Vec::new()),
            facts: Facts::default(),
        })
    }

    pub fn deliveries(&self) -> MutexGuard<'_, Deliveries> {
        self.deliveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// When the oldest unacknowledged delivery was handed out.
    pub fn oldest_unacked(&self) -> Option<Instant> {
        self.deliveries()
            .unacked
            .first_key_value()
            .map(|(_, u)| u.delivered_at)
    }

    /// Consumers the broker cancelled since the last call.
    pub fn take_server_cancelled(&self) -> Vec<Arc<Consumer>> {
        std::mem::take(
            &mut *self
                .server_cancelled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl ChannelView for ChannelShared {
    fn snapshot(&self) -> ChannelSnapshot {
        let f = &self.facts;
        ChannelSnapshot {
            number: self.id,
            prefetch_count: f.prefetch.load(Ordering::Relaxed),
            global_prefetch_count: f.global_prefetch.load(Ordering::Relaxed),
            messages_unacknowledged: self.deliveries().unacked.len() as u64,
            messages_unconfirmed: 0,
            consumer_count: f.consumers.load(Ordering::Relaxed),
            confirm: f.confirm.load(Ordering::Relaxed),
            transactional: f.transactional.load(Ordering::Relaxed),
            flow_blocked: f.flow_blocked.load(Ordering::Relaxed),
        }
    }
}

impl DeliverySink for ChannelShared {
    fn deliver(&self, delivery: Delivery) {
        let Delivery {
            queue,
            consumer,
            entry,
        } = delivery;
        let mut d = self.deliveries();
        let tag = d.next_tag();
        let out = OutDelivery {
            channel: self.id,
            channel_closed: self.closed.clone(),
            consumer: consumer.clone(),
            delivery_tag: tag,
            redelivered: entry.redelivered,
            message: entry.message.clone(),
        };
        if !consumer.spec.no_ack {
            d.unacked.insert(
                tag,
                Unacked {
                    held: Some((queue, entry)),
                    consumer: Some(consumer),
                    delivered_at: Instant::now(),
                },
            );
        }
        self.outbox.push_delivery(out);
    }

    fn deliver_message(&self, consumer: &Arc<Consumer>, message: Arc<Message>) {
        let mut d = self.deliveries();
        let tag = d.next_tag();
        let out = OutDelivery {
            channel: self.id,
            channel_closed: self.closed.clone(),
            consumer: consumer.clone(),
            delivery_tag: tag,
            redelivered: false,
            message,
        };
        if !consumer.spec.no_ack {
            d.unacked.insert(
                tag,
                Unacked {
                    held: None,
                    consumer: Some(consumer.clone()),
                    delivered_at: Instant::now(),
                },
            );
        }
        self.outbox.push_delivery(out);
    }

    fn flush(&self) {
        self.outbox.wake();
    }

    fn cancelled(&self, consumer: &Arc<Consumer>) {
        self.server_cancelled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(consumer.clone());
        if self.cancel_notify && !self.is_closed() {
            let mut out = BytesMut::new();
            encode_method(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: consumer.tag().into(),
                    nowait: true,
                })),
                &mut out,
            );
            self.outbox.push_frames(out.freeze());
        }
    }
}
