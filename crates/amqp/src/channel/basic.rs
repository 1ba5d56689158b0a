//! basic.qos, consume, cancel, get, ack, nack, reject, recover.

use std::sync::Arc;

use amq_protocol::protocol::{AMQPClass, basic};
use ferrymq_auth::{Action, ResourceType};
use ferrymq_core::interop::{StartAt, StreamConsumer};
use ferrymq_core::message::{FieldTable, FieldValue};
use ferrymq_core::queue::{Consumer, ConsumerSpec, Queue, REPLY_TO};
use ferrymq_core::stream::Stream;

use super::declare::{strip_cr_lf, unimplemented};
use super::shared::{ChannelShared, Unacked};
use super::{Channel, ConsumerRef};
use crate::codec::content::put_content;
use crate::codec::method::put_get_ok;
use crate::codec::table::from_amqp_table;
use crate::connection::session::Session;
use crate::error::{AmqpError, AmqpResult, ReplyCode};

/// A server-generated consumer tag, RabbitMQ style.
fn generated_tag() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("amq.ctag-{n:x}{nanos:08x}")
}

/// What the client decided about deliveries.
pub(super) enum Settle {
    Ack,
    Requeue,
    Reject,
}

/// Hands settled deliveries back to their queues and returns their credit.
pub(super) fn settle(records: Vec<Unacked>, how: &Settle) {
    // Group by queue, preserving order (records come in tag order).
    let mut groups: Vec<(Arc<Queue>, Vec<ferrymq_core::queue::Entry>)> = Vec::new();
    let mut credit: Vec<(Arc<Consumer>, u32)> = Vec::new();
    for record in records {
        if let Some(consumer) = record.consumer {
            match credit.iter_mut().find(|(c, _)| Arc::ptr_eq(c, &consumer)) {
                Some((_, n)) => *n += 1,
                None => credit.push((consumer, 1)),
            }
        }
        // Stream deliveries hold nothing in a queue: their credit is all there is.
        let Some((queue, entry)) = record.held else {
            continue;
        };
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &queue)) {
            Some((_, entries)) => entries.push(entry),
            None => groups.push((queue, vec![entry])),
        }
    }
    for (queue, entries) in groups {
        match how {
            Settle::Ack => queue.ack(&entries),
            Settle::Requeue => queue.requeue(entries),
            Settle::Reject => queue.reject(entries),
        }
    }
    for (consumer, n) in credit {
        consumer.own.release(n);
        consumer.channel.release(n);
    }
}

/// Requeues every unacknowledged delivery of a closing channel.
pub(super) fn requeue_all(shared: &ChannelShared) {
    let records: Vec<Unacked> = std::mem::take(&mut shared.deliveries().unacked)
        .into_values()
        .collect();
    settle(records, &Settle::Requeue);
}

impl Channel {
    /// Drops consumers the broker cancelled (their queue was deleted).
    fn forget_cancelled(&mut self) {
        for gone in self.shared.take_server_cancelled() {
            self.consumers
                .retain(|_, c| !Arc::ptr_eq(&c.consumer, &gone));
            self.stream_consumers
                .retain(|_, c| !Arc::ptr_eq(c.consumer(), &gone));
        }
    }

    pub(super) fn handle_basic(
        &mut self,
        s: &mut Session,
        method: basic::AMQPMethod,
    ) -> AmqpResult<()> {
        self.forget_cancelled();
        match method {
            basic::AMQPMethod::Qos(m) => self.qos(s, &m),
            basic::AMQPMethod::Consume(m) => self.consume(s, &m),
            basic::AMQPMethod::Cancel(m) => self.cancel(s, m),
            basic::AMQPMethod::CancelOk(_) => Ok(()),
            basic::AMQPMethod::Get(m) => self.get(s, &m),
            basic::AMQPMethod::Ack(m) => self.settle_tags(m.delivery_tag, m.multiple, Settle::Ack),
            basic::AMQPMethod::Nack(m) => self.settle_tags(
                m.delivery_tag,
                m.multiple,
                if m.requeue {
                    Settle::Requeue
                } else {
                    Settle::Reject
                },
            ),
            basic::AMQPMethod::Reject(m) => self.settle_tags(
                m.delivery_tag,
                false,
                if m.requeue {
                    Settle::Requeue
                } else {
                    Settle::Reject
                },
            ),
            basic::AMQPMethod::RecoverAsync(m) => self.recover(m.requeue),
            basic::AMQPMethod::Recover(m) => {
                self.recover(m.requeue)?;
                s.send(
                    self.id,
                    &AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                );
                Ok(())
            }
            _ => Err(unimplemented()),
        }
    }

    fn qos(&mut self, s: &mut Session, m: &basic::Qos) -> AmqpResult<()> {
        let count = u32::from(m.prefetch_count);
        if m.global {
            self.shared_credit.set_limit(count);
        } else {
            self.prefetch = count;
        }
        s.send(
            self.id,
            &AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
        );
        Ok(())
    }

    fn consume(&mut self, s: &mut Session, m: &basic::Consume) -> AmqpResult<()> {
        let queue_name = strip_cr_lf(m.queue.as_str());
        let tag = match m.consumer_tag.as_str() {
            "" => generated_tag(),
            given => given.to_owned(),
        };
        let reuse = self.consumers.contains_key(&tag)
            || self.stream_consumers.contains_key(&tag)
            || self.reply.as_ref().is_some_and(|r| r.consumer.tag() == tag);
        if reuse {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        let args = from_amqp_table(&m.arguments);
        let priority = match args.get("x-priority") {
            None => 0,
            Some(v) => match v {
                FieldValue::Timestamp(_) => None,
                other => other.as_i64(),
            }
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| {
                AmqpError::new(
                    ReplyCode::PreconditionFailed,
                    format!(
                        "invalid arg 'x-priority' for queue '{queue_name}' in vhost '{}': \"expected integer, got {}\"",
                        s.vhost.name(),
                        v.type_name()
                    ),
                )
            })?,
        };
        let spec = ConsumerSpec {
            tag: tag.clone(),
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            priority,
            owner: s.conn_id,
            channel: self.id,
            arguments: args.clone(),
        };
        if queue_name != REPLY_TO {
            let name = self.queue_name(&queue_name)?;
            s.authorize(ResourceType::Queue, &name, Action::Read)?;
            if s.vhost.lookup_queue(&name).is_none()
                && let Some(stream) = s.vhost.streams().get(&name)
            {
                return self.consume_stream(s, m, stream, spec, &args);
            }
        }
        let window = s.ctx.config.consumer_window.max(1);
        let consumer = Arc::new(Consumer::new(
            spec,
            if m.no_ack { 0 } else { self.prefetch },
            self.shared_credit.clone(),
            window,
            self.shared.clone(),
        ));
        let queue = if queue_name == REPLY_TO {
            if !m.no_ack {
                return Err(AmqpError::new(
                    ReplyCode::PreconditionFailed,
                    "reply consumer cannot acknowledge",
                ));
            }
            if self.reply.is_some() {
                return Err(AmqpError::new(
                    ReplyCode::PreconditionFailed,
                    "reply consumer already set",
                ));
            }
            let queue = s.vhost.create_reply_queue(s.conn_id);
            queue.consume(consumer.clone())?;
            self.reply = Some(ConsumerRef {
                queue: queue.clone(),
                consumer: consumer.clone(),
            });
            queue
        } else {
            let name = self.queue_name(&queue_name)?;
            let queue = s.vhost.queue(&name)?;
            queue.check_access(s.conn_id)?;
            queue.consume(consumer.clone())?;
            self.consumers.insert(
                tag.clone(),
                ConsumerRef {
                    queue: queue.clone(),
                    consumer: consumer.clone(),
                },
            );
            queue
        };
        if !m.nowait {
            s.send(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: tag.into(),
                })),
            );
        }
        // consume-ok must reach the socket before the first delivery.
        s.flush();
        queue.activate(&consumer);
        Ok(())
    }

    /// basic.consume on a stream queue: RabbitMQ's rules (manual acks, a consumer prefetch,
    /// no global prefetch), `x-stream-offset` and ferrymq's `x-stream-partition`.
    fn consume_stream(
        &mut self,
        s: &mut Session,
        m: &basic::Consume,
        stream: Arc<Stream>,
        spec: ConsumerSpec,
        args: &FieldTable,
    ) -> AmqpResult<()> {
        let vhost = s.vhost.name().to_owned();
        let described = format!("queue '{}' in vhost '{vhost}'", stream.name());
        if self.prefetch == 0 {
            return Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!("consumer prefetch count is not set for '{described}'"),
            ));
        }
        if m.no_ack {
            return Err(AmqpError::new(
                ReplyCode::NotImplemented,
                format!("automatic acknowledgement not supported by stream queues {described}"),
            ));
        }
        if self.shared_credit.limit() > 0 {
            return Err(AmqpError::new(
                ReplyCode::NotImplemented,
                format!("{described} does not support global qos"),
            ));
        }
        let invalid = |arg: &str, reason: String| {
            AmqpError::new(
                ReplyCode::PreconditionFailed,
                format!(
                    "invalid arg '{arg}' for queue '{}' in vhost '{vhost}': {reason}",
                    stream.name()
                ),
            )
        };
        let start = StartAt::parse(args.get("x-stream-offset"))
            .map_err(|reason| invalid("x-stream-offset", reason))?;
        let partition = match args.get("x-stream-partition") {
            None => None,
            Some(value) => {
                let count = stream.partition_count();
                let index = match value {
                    FieldValue::Timestamp(_) => None,
                    other => other.as_i64(),
                }
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p < count)
                .ok_or_else(|| {
                    invalid(
                        "x-stream-partition",
                        format!("expected a partition number from 0 to {}", count - 1),
                    )
                })?;
                Some(index)
            }
        };
        let tag = spec.tag.clone();
        let window = s.ctx.config.consumer_window.max(1);
        let consumer = Arc::new(Consumer::new(
            spec,
            self.prefetch,
            self.shared_credit.clone(),
            window,
            self.shared.clone(),
        ));
        if !m.nowait {
            s.send(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: tag.clone().into(),
                })),
            );
        }
        // consume-ok must reach the socket before the first delivery.
        s.flush();
        let reader = StreamConsumer::start(stream, consumer, start, partition)?;
        self.stream_consumers.insert(tag, reader);
        Ok(())
    }

    fn cancel(&mut self, s: &mut Session, m: basic::Cancel) -> AmqpResult<()> {
        let tag = m.consumer_tag.as_str();
        if let Some(c) = self.consumers.remove(tag) {
            c.queue.cancel(&c.consumer);
        } else if let Some(c) = self.stream_consumers.remove(tag) {
            c.cancel();
        } else if self.reply.as_ref().is_some_and(|r| r.consumer.tag() == tag)
            && let Some(reply) = self.reply.take()
        {
            s.vhost.remove_queue(&reply.queue);
        }
        // Cancelling an unknown tag is not an error (RabbitMQ answers cancel-ok).
        if !m.nowait {
            s.send(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                    consumer_tag: m.consumer_tag,
                })),
            );
        }
        Ok(())
    }

    fn get(&mut self, s: &mut Session, m: &basic::Get) -> AmqpResult<()> {
        let name = self.queue_name(&strip_cr_lf(m.queue.as_str()))?;
        s.authorize(ResourceType::Queue, &name, Action::Read)?;
        if s.vhost.lookup_queue(&name).is_none() && s.vhost.streams().get(&name).is_some() {
            return Err(AmqpError::new(
                ReplyCode::NotImplemented,
                format!(
                    "basic.get not supported by stream queues queue '{name}' in vhost '{}'",
                    s.vhost.name()
                ),
            ));
        }
        let queue = s.vhost.queue(&name)?;
        queue.check_access(s.conn_id)?;
        let Some((entry, remaining)) = queue.get(m.no_ack)? else {
            s.send(
                self.id,
                &AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
            );
            return Ok(());
        };
        // Earlier replies first, then get-ok under the delivery lock so its tag is in order.
        s.flush();
        let frame_max = s.outbox.frame_max();
        let mut out = bytes::BytesMut::new();
        let mut d = self.shared.deliveries();
        let tag = d.next_tag();
        put_get_ok(
            &mut out,
            self.id,
            tag,
            entry.redelivered,
            &entry.message.exchange,
            &entry.message.routing_key,
            remaining,
        );
        put_content(&mut out, self.id, &entry.message, frame_max);
        if !m.no_ack {
            d.unacked.insert(
                tag,
                Unacked {
                    held: Some((queue, entry)),
                    consumer: None,
                    delivered_at: tokio::time::Instant::now(),
                },
            );
        }
        s.outbox.push_frames(out.freeze());
        Ok(())
    }

    fn settle_tags(&mut self, tag: u64, multiple: bool, how: Settle) -> AmqpResult<()> {
        let records: Vec<(u64, Unacked)> = {
            let mut d = self.shared.deliveries();
            if multiple {
                if tag == 0 {
                    std::mem::take(&mut d.unacked).into_iter().collect()
                } else {
                    // As RabbitMQ: the tag itself must be outstanding, not just older ones.
                    if !d.unacked.contains_key(&tag) {
                        return Err(unknown_tag(tag));
                    }
                    let rest = d.unacked.split_off(&(tag + 1));
                    std::mem::replace(&mut d.unacked, rest)
                        .into_iter()
                        .collect()
                }
            } else {
                match d.unacked.remove(&tag) {
                    Some(record) => vec![(tag, record)],
                    None => return Err(unknown_tag(tag)),
                }
            }
        };
        match &mut self.tx {
            Some(tx) => tx.settles.push((records, how)),
            None => settle(records.into_iter().map(|(_, r)| r).collect(), &how),
        }
        Ok(())
    }

    fn recover(&mut self, requeue: bool) -> AmqpResult<()> {
        if !requeue {
            return Err(AmqpError::new(ReplyCode::NotImplemented, "requeue=false"));
        }
        requeue_all(&self.shared);
        Ok(())
    }
}

fn unknown_tag(tag: u64) -> AmqpError {
    AmqpError::new(
        ReplyCode::PreconditionFailed,
        format!("unknown delivery tag {tag}"),
    )
}
