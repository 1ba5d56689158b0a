//! A channel: its state machine, content assembly, and method dispatch.
//!
//! ```text
//! open ──channel.close (client)──> cleaned up, close-ok sent, gone
//!   └──soft error──> closing: channel.close sent, every frame but close/close-ok ignored
//! content: basic.publish ─> header (class 60, body-size) ─> body frames until body-size
//! ```
//! Handlers live in `declare` (exchanges, queues, bindings), `basic` (consumers,
//! get, acks, qos), `publish` (publish, confirms, tx).
//!
//! # Invariants
//! - A channel that is not `Open` processes no method but channel.close / close-ok.
//! - Cleanup (consumers cancelled, unacked requeued, reply queue removed) runs exactly
//!   once, when the channel stops being `Open`.

mod basic;
pub mod confirm;
mod declare;
mod publish;
pub mod shared;

use std::collections::HashMap;
use std::sync::Arc;

use amq_protocol::protocol::{
    AMQPClass, access, basic as amqp_basic, channel, confirm as amqp_confirm,
};
use bytes::Bytes;
use ferrymq_core::exchange::Exchange;
use ferrymq_core::interop::StreamConsumer;
use ferrymq_core::queue::{Consumer, Credit, Queue};

use crate::codec::frame::{AmqpFrame, FrameKind};
use crate::codec::method::{MethodError, decode_method, peek_ids};
use crate::codec::properties::ContentHeader;
use crate::connection::session::Session;
use crate::error::{AmqpError, AmqpResult, ReplyCode};
use confirm::ConfirmTracker;
use publish::{Incoming, Tx};
use shared::ChannelShared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// The broker sent channel.close and waits for close-ok.
    Closing,
}

/// A consumer registered through this channel.
#[derive(Debug, Clone)]
pub struct ConsumerRef {
    pub queue: Arc<Queue>,
    pub consumer: Arc<Consumer>,
}

/// One open channel, owned by its connection's reader.
#[derive(Debug)]
pub struct Channel {
    pub id: u16,
    pub state: ChannelState,
    pub shared: Arc<ChannelShared>,
    incoming: Option<Incoming>,
    exchanges: HashMap<String, Arc<Exchange>>,
    consumers: HashMap<String, ConsumerRef>,
    /// Consumers of stream queues, by tag (tags are unique across both maps).
    stream_consumers: HashMap<String, Arc<StreamConsumer>>,
    /// basic.qos global=false: prefetch of consumers created from now on.
    prefetch: u32,
    /// basic.qos global=true and channel.flow.
    shared_credit: Arc<Credit>,
    /// The last queue declared (an empty queue name in later methods means this one).
    last_queue: Option<String>,
    /// Direct reply-to: the consumer tag and its reply queue.
    reply: Option<ConsumerRef>,
    confirm: Option<ConfirmTracker>,
    tx: Option<Tx>,
    cleaned: bool,
}

impl Channel {
    pub fn new(id: u16, s: &Session) -> Self {
        Self {
            id,
            state: ChannelState::Open,
            shared: ChannelShared::new(id, s.outbox.clone(), s.cancel_notify),
            incoming: None,
            exchanges: HashMap::new(),
            consumers: HashMap::new(),
            stream_consumers: HashMap::new(),
            prefetch: 0,
            shared_credit: Arc::new(Credit::new(0)),
            last_queue: None,
            reply: None,
            confirm: None,
            tx: None,
            cleaned: false,
        }
    }

    /// Processes a frame on an open channel. An `Err` is a channel or connection error,
    /// which the connection turns into channel.close or connection.close.
    pub fn handle_frame(&mut self, s: &mut Session, frame: AmqpFrame) -> AmqpResult<()> {
        match frame.kind {
            FrameKind::Method => {
                if let Some(incoming) = &self.incoming {
                    return Err(incoming.unexpected("got non content header/body frame instead"));
                }
                let ids = peek_ids(&frame.payload).unwrap_or((0, 0));
                // amq-protocol drops basic.qos's prefetch-size; RabbitMQ refuses non-zero.
                if ids == (60, 10)
                    && let Some(size) = frame.payload.get(4..8)
                    && size != [0, 0, 0, 0]
                {
                    let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
                    return Err(AmqpError::new(
                        ReplyCode::NotImplemented,
                        format!("prefetch_size!=0 ({size})"),
                    )
                    .on(ids));
                }
                let method = decode_method(&frame.payload).map_err(|e| match e {
                    MethodError::Unknown { .. } => {
                        AmqpError::new(ReplyCode::CommandInvalid, "unimplemented method").on(ids)
                    }
                    MethodError::Malformed { .. } => AmqpError::new(
                        ReplyCode::FrameError,
                        format!("cannot decode method {}.{}", ids.0, ids.1),
                    )
                    .on(ids),
                })?;
                self.handle_method(s, method).map_err(|e| {
                    if e.class_id == 0 && e.method_id == 0 {
                        e.on(ids)
                    } else {
                        e
                    }
                })
            }
            FrameKind::Header => self.handle_header(s, &frame.payload),
            FrameKind::Body => self.handle_body(s, frame.payload),
            FrameKind::Heartbeat => Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                format!("heartbeat on channel {}", self.id),
            )),
        }
    }

    fn handle_header(&mut self, s: &mut Session, payload: &Bytes) -> AmqpResult<()> {
        let Some(incoming) = self.incoming.as_mut() else {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "expected method frame, got non method frame instead",
            ));
        };
        if incoming.header.is_some() {
            return Err(incoming.unexpected("got non content body frame instead"));
        }
        let header = ContentHeader::decode(payload).map_err(|e| {
            AmqpError::new(
                ReplyCode::FrameError,
                format!("malformed content header: {e}"),
            )
            .on((60, 40))
        })?;
        if header.class_id != 60 {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                format!(
                    "expected content header for class 60, got one for class {} instead",
                    header.class_id
                ),
            )
            .on((60, 40)));
        }
        let max = s.ctx.config.max_message_size;
        if header.body_size > max {
            self.incoming = None;
            return Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!(
                    "message size {} is larger than configured max size {max}",
                    header.body_size
                ),
            )
            .on((60, 40)));
        }
        incoming.start_body(header);
        if incoming.is_complete() {
            return self.finish_publish(s);
        }
        Ok(())
    }

    fn handle_body(&mut self, s: &mut Session, payload: Bytes) -> AmqpResult<()> {
        let Some(incoming) = self.incoming.as_mut() else {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "expected method frame, got non method frame instead",
            ));
        };
        if incoming.header.is_none() {
            return Err(incoming.unexpected("got non content header frame instead"));
        }
        incoming.push_body(payload)?;
        if incoming.is_complete() {
            return self.finish_publish(s);
        }
        Ok(())
    }

    fn handle_method(&mut self, s: &mut Session, method: AMQPClass) -> AmqpResult<()> {
        if let AMQPClass::Basic(amqp_basic::AMQPMethod::Publish(p)) = method {
            return self.start_publish(s, p);
        }
        let result = self.handle_control(s, method);
        self.publish_facts();
        result
    }

    /// Copies the settings listings show into the shared part (after any non-publish method).
    fn publish_facts(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let facts = &self.shared.facts;
        facts.prefetch.store(self.prefetch, Relaxed);
        facts
            .global_prefetch
            .store(self.shared_credit.limit(), Relaxed);
        let consumers =
            self.consumers.len() + self.stream_consumers.len() + usize::from(self.reply.is_some());
        facts
            .consumers
            .store(u32::try_from(consumers).unwrap_or(u32::MAX), Relaxed);
        facts.confirm.store(self.confirm.is_some(), Relaxed);
        facts.transactional.store(self.tx.is_some(), Relaxed);
        facts
            .flow_blocked
            .store(self.shared_credit.is_paused(), Relaxed);
    }

    fn handle_control(&mut self, s: &mut Session, method: AMQPClass) -> AmqpResult<()> {
        let id = self.id;
        match method {
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => Err(AmqpError::new(
                ReplyCode::ChannelError,
                "second 'channel.open' seen",
            )),
            AMQPClass::Channel(channel::AMQPMethod::Flow(flow)) => {
                self.shared_credit.set_paused(!flow.active);
                s.send(
                    id,
                    &AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                        active: flow.active,
                    })),
                );
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => Ok(()),
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                s.send(
                    id,
                    &AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
                );
                Ok(())
            }
            AMQPClass::Exchange(m) => self.handle_exchange(s, m),
            AMQPClass::Queue(m) => self.handle_queue(s, m),
            AMQPClass::Basic(m) => self.handle_basic(s, m),
            AMQPClass::Confirm(amqp_confirm::AMQPMethod::Select(select)) => {
                if self.tx.is_some() {
                    return Err(AmqpError::new(
                        ReplyCode::PreconditionFailed,
                        "cannot switch from tx to confirm mode",
                    ));
                }
                self.confirm.get_or_insert_with(ConfirmTracker::default);
                if !select.nowait {
                    s.send(
                        id,
                        &AMQPClass::Confirm(amqp_confirm::AMQPMethod::SelectOk(
                            amqp_confirm::SelectOk {},
                        )),
                    );
                }
                Ok(())
            }
            AMQPClass::Tx(m) => self.handle_tx(s, &m),
            // connection.* on a non-zero channel, channel.close(-ok) handled by the connection.
            _ => Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                "unimplemented method",
            )),
        }
    }

    /// The queue name to use: an empty name means the last queue declared on the channel.
    fn queue_name(&self, name: &str) -> AmqpResult<String> {
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::new(ReplyCode::NotFound, "no previously declared queue"))
    }

    /// Tears the channel down: consumers cancelled, unacked deliveries requeued (marked
    /// redelivered), pending publish and transaction dropped. Idempotent.
    pub fn cleanup(&mut self, s: &mut Session) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.incoming = None;
        self.tx = None;
        for (_, c) in self.consumers.drain() {
            c.queue.cancel(&c.consumer);
        }
        for (_, c) in self.stream_consumers.drain() {
            c.cancel();
        }
        if let Some(reply) = self.reply.take() {
            s.vhost.remove_queue(&reply.queue);
        }
        basic::requeue_all(&self.shared);
    }

    /// Sends pending confirms (called once per read batch).
    pub fn flush_confirms(&mut self, s: &mut Session) {
        if let Some(tracker) = self.confirm.as_mut() {
            for c in tracker.flush() {
                crate::codec::method::put_confirm(
                    &mut s.pending,
                    self.id,
                    c.ack,
                    c.delivery_tag,
                    c.multiple,
                );
            }
        }
    }
}
