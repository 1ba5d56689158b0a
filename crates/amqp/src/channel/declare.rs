//! exchange.* and queue.*: declarations, deletions, bindings, purge.

use std::str::FromStr;

use amq_protocol::protocol::{AMQPClass, exchange, queue};
use ferrymq_auth::{Action, ResourceType};
use ferrymq_core::exchange::{ExchangeKind, ExchangeSpec};
use ferrymq_core::interop::QueueDeclared;
use ferrymq_core::message::FieldValue;
use ferrymq_core::queue::{QueueSpec, REPLY_TO};
use ferrymq_core::{Error as CoreError, ResourceKind};

use super::Channel;
use crate::codec::table::from_amqp_table;
use crate::connection::session::Session;
use crate::error::{AmqpError, AmqpResult};

/// RabbitMQ removes CR and LF from object names.
pub(super) fn strip_cr_lf(name: &str) -> String {
    name.chars().filter(|c| *c != '\r' && *c != '\n').collect()
}

impl Channel {
    pub(super) fn handle_exchange(
        &mut self,
        s: &mut Session,
        method: exchange::AMQPMethod,
    ) -> AmqpResult<()> {
        let mark = s.definitions_mark();
        let result = self.exchange_method(s, method);
        s.note_definitions(mark);
        result
    }

    fn exchange_method(&mut self, s: &mut Session, method: exchange::AMQPMethod) -> AmqpResult<()> {
        let id = self.id;
        match method {
            exchange::AMQPMethod::Declare(m) => {
                let name = strip_cr_lf(m.exchange.as_str());
                if m.passive {
                    if name.is_empty() {
                        return Err(CoreError::AccessRefused {
                            reason: "operation not permitted on the default exchange".into(),
                        }
                        .into());
                    }
                    s.vhost.exchange(&name)?;
                } else {
                    s.authorize(ResourceType::Exchange, &name, Action::Configure)?;
                    let arguments = from_amqp_table(&m.arguments);
                    if let Some(alternate) = arguments
                        .get("alternate-exchange")
                        .and_then(FieldValue::as_str)
                    {
                        s.authorize(ResourceType::Exchange, &name, Action::Read)?;
                        s.authorize(ResourceType::Exchange, alternate, Action::Write)?;
                    }
                    let kind = ExchangeKind::from_str(m.kind.as_str())?;
                    let spec = ExchangeSpec {
                        name,
                        kind,
                        durable: m.durable,
                        auto_delete: m.auto_delete,
                        internal: m.internal,
                        arguments,
                    };
                    s.vhost.declare_exchange(spec, false)?;
                }
                if !m.nowait {
                    s.send(
                        id,
                        &AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(
                            exchange::DeclareOk {},
                        )),
                    );
                }
            }
            exchange::AMQPMethod::Delete(m) => {
                let name = strip_cr_lf(m.exchange.as_str());
                s.authorize(ResourceType::Exchange, &name, Action::Configure)?;
                s.vhost.delete_exchange(&name, m.if_unused)?;
                self.exchanges.remove(&name);
                if !m.nowait {
                    s.send(
                        id,
                        &AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
                    );
                }
            }
            exchange::AMQPMethod::Bind(m) => {
                authorize_binding(
                    s,
                    m.source.as_str(),
                    ResourceType::Exchange,
                    m.destination.as_str(),
                    m.routing_key.as_str(),
                )?;
                s.vhost.bind(
                    &strip_cr_lf(m.source.as_str()),
                    &strip_cr_lf(m.destination.as_str()),
                    ResourceKind::Exchange,
                    m.routing_key.as_str(),
                    &from_amqp_table(&m.arguments),
                    s.conn_id,
                )?;
                if !m.nowait {
                    s.send(
                        id,
                        &AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
                    );
                }
            }
            exchange::AMQPMethod::Unbind(m) => {
                authorize_binding(
                    s,
                    m.source.as_str(),
                    ResourceType::Exchange,
                    m.destination.as_str(),
                    m.routing_key.as_str(),
                )?;
                s.vhost.unbind(
                    &strip_cr_lf(m.source.as_str()),
                    &strip_cr_lf(m.destination.as_str()),
                    ResourceKind::Exchange,
                    m.routing_key.as_str(),
                    &from_amqp_table(&m.arguments),
                    s.conn_id,
                )?;
                if !m.nowait {
                    s.send(
                        id,
                        &AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
                    );
                }
            }
            _ => return Err(unimplemented()),
        }
        Ok(())
    }

    pub(super) fn handle_queue(
        &mut self,
        s: &mut Session,
        method: queue::AMQPMethod,
    ) -> AmqpResult<()> {
        let mark = s.definitions_mark();
        let result = self.queue_method(s, method);
        s.note_definitions(mark);
        result
    }

    fn queue_method(&mut self, s: &mut Session, method: queue::AMQPMethod) -> AmqpResult<()> {
        let id = self.id;
        match method {
            queue::AMQPMethod::Declare(m) => {
                let name = strip_cr_lf(m.queue.as_str());
                let (name, messages, consumers) = if name.starts_with(REPLY_TO) {
                    // Declares of the reply pseudo-queue are passive: it exists while
                    // this channel has a reply consumer.
                    match &self.reply {
                        Some(_) if name == REPLY_TO => (name, 0, 1),
                        _ => match s.vhost.reply_queue(&name) {
                            Some(_) => (name, 0, 1),
                            None => {
                                return Err(CoreError::NotFound {
                                    kind: ResourceKind::Queue,
                                    name,
                                    vhost: s.vhost.name().to_owned(),
                                }
                                .into());
                            }
                        },
                    }
                } else {
                    let arguments = from_amqp_table(&m.arguments);
                    if !m.passive {
                        // A server-named queue is checked as RabbitMQ names it (amq.gen-...).
                        let checked = if name.is_empty() {
                            "amq.gen-"
                        } else {
                            name.as_str()
                        };
                        s.authorize(ResourceType::Queue, checked, Action::Configure)?;
                        if let Some(dlx) = arguments
                            .get("x-dead-letter-exchange")
                            .and_then(FieldValue::as_str)
                        {
                            s.authorize(ResourceType::Queue, checked, Action::Read)?;
                            s.authorize(ResourceType::Exchange, dlx, Action::Write)?;
                        }
                    }
                    let spec = QueueSpec {
                        name,
                        durable: m.durable,
                        exclusive: m.exclusive,
                        auto_delete: m.auto_delete,
                        arguments,
                    };
                    match s
                        .vhost
                        .declare_queue_or_stream(spec, m.passive, s.conn_id)?
                    {
                        QueueDeclared::Queue(declared) => {
                            if declared.created && declared.queue.owner().is_some() {
                                s.exclusive.push(declared.queue.clone());
                            }
                            (
                                declared.queue.name().to_owned(),
                                declared.message_count,
                                declared.consumer_count,
                            )
                        }
                        QueueDeclared::Stream(declared) => (
                            declared.stream.name().to_owned(),
                            declared.message_count,
                            declared.consumer_count,
                        ),
                    }
                };
                self.last_queue = Some(name.clone());
                if !m.nowait {
                    s.send(
                        id,
                        &AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                            queue: name.into(),
                            message_count: messages,
                            consumer_count: consumers,
                        })),
                    );
                }
            }
            queue::AMQPMethod::Bind(m) => {
                let raw = strip_cr_lf(m.queue.as_str());
                let queue = self.queue_name(&raw)?;
                let key = if raw.is_empty() && m.routing_key.as_str().is_empty() {
                    queue.clone()
                } else {
                    m.routing_key.as_str().to_owned()
                };
                authorize_binding(s, m.exchange.as_str(), ResourceType::Queue, &queue, &key)?;
                s.vhost.bind(
                    &strip_cr_lf(m.exchange.as_str()),
                    &queue,
                    ResourceKind::Queue,
                    &key,
                    &from_amqp_table(&m.arguments),
                    s.conn_id,
                )?;
                if !m.nowait {
                    s.send(
                        id,
                        &AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
                    );
                }
            }
            queue::AMQPMethod::Unbind(m) => {
                let raw = strip_cr_lf(m.queue.as_str());
                let queue = self.queue_name(&raw)?;
                let key = if raw.is_empty() && m.routing_key.as_str().is_empty() {
                    queue.clone()
                } else {
                    m.routing_key.as_str().to_owned()
                };
                authorize_binding(s, m.exchange.as_str(), ResourceType::Queue, &queue, &key)?;
                s.vhost.unbind(
                    &strip_cr_lf(m.exchange.as_str()),
                    &queue,
                    ResourceKind::Queue,
                    &key,
                    &from_amqp_table(&m.arguments),
                    s.conn_id,
                )?;
                s.send(
                    id,
                    &AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
                );
            }
            queue::AMQPMethod::Purge(m) => {
                let name = self.queue_name(&strip_cr_lf(m.queue.as_str()))?;
                s.authorize(ResourceType::Queue, &name, Action::Read)?;
                if s.vhost.lookup_queue(&name).is_none() && s.vhost.streams().get(&name).is_some() {
                    return Err(AmqpError::new(
                        crate::error::ReplyCode::NotImplemented,
                        format!(
                            "queue.purge not supported by stream queues queue '{name}' in vhost \
                             '{}'",
                            s.vhost.name()
                        ),
                    ));
                }
                let queue = s.vhost.queue(&name)?;
                queue.check_access(s.conn_id)?;
                let count = queue.purge()?;
                if !m.nowait {
                    s.send(
                        id,
                        &AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                            message_count: count,
                        })),
                    );
                }
            }
            queue::AMQPMethod::Delete(m) => {
                let name = self.queue_name(&strip_cr_lf(m.queue.as_str()))?;
                s.authorize(ResourceType::Queue, &name, Action::Configure)?;
                let count = if s.vhost.lookup_queue(&name).is_none()
                    && s.vhost.streams().get(&name).is_some()
                {
                    // As RabbitMQ: if-unused and if-empty do not apply to streams, and the
                    // count answered is 0.
                    s.vhost.delete_stream(&name)?;
                    0
                } else {
                    s.vhost
                        .delete_queue(&name, m.if_unused, m.if_empty, s.conn_id)?
                };
                s.prune_exclusive();
                if !m.nowait {
                    s.send(
                        id,
                        &AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                            message_count: count,
                        })),
                    );
                }
            }
            _ => return Err(unimplemented()),
        }
        Ok(())
    }
}

/// A binding from `source` to `destination`: write on the destination, read on the source,
/// and on a topic exchange the topic permission's read pattern on the key (RabbitMQ's order).
fn authorize_binding(
    s: &Session,
    source: &str,
    kind: ResourceType,
    destination: &str,
    key: &str,
) -> AmqpResult<()> {
    let source = strip_cr_lf(source);
    s.authorize(kind, &strip_cr_lf(destination), Action::Write)?;
    s.authorize(ResourceType::Exchange, &source, Action::Read)?;
    if let Ok(exchange) = s.vhost.exchange(&source)
        && exchange.kind() == ExchangeKind::Topic
    {
        s.authorize_topic(&source, key, Action::Read)?;
    }
    Ok(())
}

pub(super) fn unimplemented() -> AmqpError {
    AmqpError::new(
        crate::error::ReplyCode::CommandInvalid,
        "unimplemented method",
    )
}
