//! basic.publish: assembling content, validating, routing, enqueueing; mandatory returns,
//! publisher confirms, and transactions (tx.select / commit / rollback).
//!
//! Small bodies are copied out of the read buffer into their own allocation: a message
//! that stays queued must not pin the whole socket buffer it arrived in. Bodies of
//! [`ZERO_COPY_MIN`] bytes or more are kept as zero-copy views of the frame.

use std::sync::Arc;

use amq_protocol::protocol::{AMQPClass, basic, tx};
use bytes::{Bytes, BytesMut};
use ferrymq_auth::{Action, ResourceType};
use ferrymq_core::exchange::{Exchange, ExchangeKind, Routed};
use ferrymq_core::message::Message;
use ferrymq_core::queue::REPLY_TO;

use super::Channel;
use super::basic::{Settle, settle};
use super::shared::Unacked;
use crate::codec::content::put_content;
use crate::codec::method::put_return;
use crate::codec::properties::ContentHeader;
use crate::connection::session::Session;
use crate::error::{AmqpError, AmqpResult, ReplyCode};

/// Bodies at least this large are not copied out of the frame they arrived in.
const ZERO_COPY_MIN: usize = 64 * 1024;
/// Exchange handles a channel remembers before starting over.
const EXCHANGE_CACHE: usize = 1024;

/// A publish whose content is still arriving.
#[derive(Debug)]
pub struct Incoming {
    publish: basic::Publish,
    pub(super) header: Option<ContentHeader>,
    body: Option<Bytes>,
    parts: BytesMut,
    remaining: u64,
}

impl Incoming {
    pub(super) fn unexpected(&self, what: &str) -> AmqpError {
        let expected = if self.header.is_none() {
            "expected content header for class 60, "
        } else {
            "expected content body, "
        };
        AmqpError::new(ReplyCode::UnexpectedFrame, format!("{expected}{what}")).on((60, 40))
    }

    pub(super) fn start_body(&mut self, header: ContentHeader) {
        self.remaining = header.body_size;
        self.header = Some(header);
    }

    pub(super) fn is_complete(&self) -> bool {
        self.header.is_some() && self.remaining == 0
    }

    pub(super) fn push_body(&mut self, payload: Bytes) -> AmqpResult<()> {
        let len = payload.len() as u64;
        if len > self.remaining {
            return Err(AmqpError::new(
                ReplyCode::FrameError,
                format!(
                    "content body larger than announced: {len} bytes with {} remaining",
                    self.remaining
                ),
            )
            .on((60, 40)));
        }
        self.remaining -= len;
        match (&self.body, self.parts.is_empty()) {
            (None, true) if self.remaining == 0 => self.body = Some(payload),
            (None, true) => self.parts.extend_from_slice(&payload),
            (Some(first), _) => {
                let first = first.clone();
                self.body = None;
                self.parts.extend_from_slice(&first);
                self.parts.extend_from_slice(&payload);
            }
            (None, false) => self.parts.extend_from_slice(&payload),
        }
        Ok(())
    }

    fn take_body(&mut self) -> Bytes {
        match self.body.take() {
            Some(body) if body.len() >= ZERO_COPY_MIN => body,
            Some(body) => Bytes::copy_from_slice(&body),
            None => std::mem::take(&mut self.parts).freeze(),
        }
    }
}

/// Publishes and acknowledgements buffered by a transaction.
#[derive(Debug, Default)]
pub struct Tx {
    publishes: Vec<(Routed, Arc<Message>, bool)>,
    pub(super) settles: Vec<(Vec<(u64, Unacked)>, Settle)>,
}

impl std::fmt::Debug for Settle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Settle::Ack => "Ack",
            Settle::Requeue => "Requeue",
            Settle::Reject => "Reject",
        })
    }
}

impl Channel {
    pub(super) fn start_publish(
        &mut self,
        s: &mut Session,
        publish: basic::Publish,
    ) -> AmqpResult<()> {
        if publish.immediate {
            return Err(AmqpError::new(ReplyCode::NotImplemented, "immediate=true").on((60, 40)));
        }
        s.published = true;
        self.incoming = Some(Incoming {
            publish,
            header: None,
            body: None,
            parts: BytesMut::new(),
            remaining: 0,
        });
        Ok(())
    }

    /// The exchange a publish goes to: write permission is checked when it enters the
    /// channel's cache, so publishes after the first pay no pattern match.
    fn exchange(&mut self, s: &Session, name: &str) -> AmqpResult<Arc<Exchange>> {
        if let Some(x) = self.exchanges.get(name)
            && !x.is_deleted()
        {
            return Ok(x.clone());
        }
        s.authorize(ResourceType::Exchange, name, Action::Write)?;
        let x = s.vhost.exchange(name)?;
        if self.exchanges.len() >= EXCHANGE_CACHE {
            self.exchanges.clear();
        }
        self.exchanges.insert(name.to_owned(), x.clone());
        Ok(x)
    }

    /// The last body frame arrived: validate, route, enqueue, answer.
    pub(super) fn finish_publish(&mut self, s: &mut Session) -> AmqpResult<()> {
        let Some(mut incoming) = self.incoming.take() else {
            return Ok(());
        };
        let body = incoming.take_body();
        let Some(header) = incoming.header.take() else {
            return Ok(());
        };
        let publish = incoming.publish;
        let at = (60, 40);
        let exchange = self
            .exchange(s, publish.exchange.as_str())
            .map_err(|e| e.on(at))?;
        if exchange.is_internal() {
            return Err(AmqpError::new(
                ReplyCode::AccessRefused,
                format!(
                    "cannot publish to internal exchange '{}' in vhost '{}'",
                    exchange.name(),
                    s.vhost.name()
                ),
            )
            .on(at));
        }
        if exchange.kind() == ExchangeKind::Topic {
            s.authorize_topic(exchange.name(), publish.routing_key.as_str(), Action::Write)
                .map_err(|e| e.on(at))?;
        }
        let mut properties = header.properties;
        if let Some(user_id) = &properties.user_id
            && *user_id != s.user.name
            && !s.user.is_impersonator()
        {
            return Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!(
                    "user_id property set to '{user_id}' but authenticated user was '{}'",
                    s.user.name
                ),
            )
            .on(at));
        }
        properties
            .validate()
            .map_err(|e| AmqpError::from(ferrymq_core::Error::from(e)).on(at))?;
        let mut encoded = Some(Bytes::copy_from_slice(&header.raw));
        if properties.reply_to.as_deref() == Some(REPLY_TO) {
            let Some(reply) = &self.reply else {
                return Err(AmqpError::new(
                    ReplyCode::PreconditionFailed,
                    "fast reply consumer does not exist",
                )
                .on(at));
            };
            properties.reply_to = Some(reply.queue.name().to_owned());
            encoded = None;
        }
        let mut message = Message {
            exchange: exchange.name().to_owned(),
            routing_key: publish.routing_key.as_str().to_owned(),
            properties,
            encoded_properties: encoded,
            body,
        };
        let routed = s.vhost.route(&exchange, &message);
        if let Some(stripped) = message.without_bcc() {
            message = stripped;
        }
        let message = Arc::new(message);
        if let Some(tx) = self.tx.as_mut() {
            tx.publishes.push((routed, message, publish.mandatory));
            return Ok(());
        }
        let (rejected, waits) = routed.enqueue(&message);
        if routed.is_empty() && publish.mandatory {
            self.put_return(s, &message);
        }
        if let Some(tracker) = self.confirm.as_mut() {
            let seq = tracker.publish(!rejected, waits.len());
            for wait in waits {
                s.await_durability(self.id, seq, wait);
            }
        }
        Ok(())
    }

    fn put_return(&self, s: &mut Session, message: &Message) {
        put_return(
            &mut s.pending,
            self.id,
            ReplyCode::NoRoute.code(),
            ReplyCode::NoRoute.name(),
            &message.exchange,
            &message.routing_key,
        );
        put_content(&mut s.pending, self.id, message, s.outbox.frame_max());
    }

    /// A durability confirmation for publish `seq` arrived.
    pub fn settle_confirm(&mut self, seq: u64, ok: bool) {
        if let Some(tracker) = self.confirm.as_mut() {
            tracker.settle(seq, ok);
        }
    }

    pub(super) fn handle_tx(&mut self, s: &mut Session, method: &tx::AMQPMethod) -> AmqpResult<()> {
        let id = self.id;
        let not_tx = || {
            AmqpError::new(
                ReplyCode::PreconditionFailed,
                "channel is not transactional",
            )
        };
        match method {
            tx::AMQPMethod::Select(_) => {
                if self.confirm.is_some() {
                    return Err(AmqpError::new(
                        ReplyCode::PreconditionFailed,
                        "cannot switch from confirm to tx mode",
                    ));
                }
                self.tx.get_or_insert_with(Tx::default);
                s.send(
                    id,
                    &AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
                );
            }
            tx::AMQPMethod::Commit(_) => {
                let tx = std::mem::take(self.tx.as_mut().ok_or_else(not_tx)?);
                for (routed, message, mandatory) in tx.publishes {
                    let _ = routed.enqueue(&message);
                    if routed.is_empty() && mandatory {
                        self.put_return(s, &message);
                    }
                }
                for (records, how) in tx.settles {
                    settle(records.into_iter().map(|(_, r)| r).collect(), &how);
                }
                s.send(
                    id,
                    &AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
                );
            }
            tx::AMQPMethod::Rollback(_) => {
                let tx = std::mem::take(self.tx.as_mut().ok_or_else(not_tx)?);
                let mut d = self.shared.deliveries();
                for (records, _) in tx.settles {
                    d.unacked.extend(records);
                }
                drop(d);
                s.send(
                    id,
                    &AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                );
            }
            _ => return Err(super::declare::unimplemented()),
        }
        Ok(())
    }
}
