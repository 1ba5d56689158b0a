//! The exchanges of a vhost: the pre-declared ones, declare/delete, bindings between
//! exchanges and queues, and routing a message to its queues.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use super::{Binding, Destination, Exchange, ExchangeKind, ExchangeSpec, Routed};
use crate::error::ResourceKind;
use crate::message::{FieldTable, Message};
use crate::queue::{OwnerId, REPLY_TO_PREFIX};
use crate::{Error, VHost};

/// Name -> exchange, for one vhost.
#[derive(Debug)]
pub struct Exchanges {
    map: RwLock<HashMap<String, Arc<Exchange>>>,
}

/// Exchanges every vhost has from the start (durable, undeletable).
const PREDECLARED: &[(&str, ExchangeKind)] = &[
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

impl Exchanges {
    pub(crate) fn with_defaults(vhost: &str) -> Self {
        let mut map = HashMap::new();
        for (name, kind) in PREDECLARED {
            let mut spec = ExchangeSpec::new(*name, *kind);
            spec.durable = true;
            if let Ok(exchange) = Exchange::new(vhost, spec) {
                map.insert((*name).to_owned(), Arc::new(exchange));
            }
        }
        Self {
            map: RwLock::new(map),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Exchange>>> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Exchange>>> {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl VHost {
    fn not_found(&self, kind: ResourceKind, name: &str) -> Error {
        Error::NotFound {
            kind,
            name: name.to_owned(),
            vhost: self.name().to_owned(),
        }
    }

    /// The exchange named `name` (`""` is the default exchange).
    pub fn exchange(&self, name: &str) -> Result<Arc<Exchange>, Error> {
        self.exchanges
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| self.not_found(ResourceKind::Exchange, name))
    }

    /// Every exchange (a snapshot).
    pub fn exchange_list(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    /// exchange.declare. Creation of an `amq.`-prefixed name is refused; an existing
    /// exchange must match type, durable, auto-delete, internal and `alternate-exchange`.
    pub fn declare_exchange(
        &self,
        spec: ExchangeSpec,
        passive: bool,
    ) -> Result<Arc<Exchange>, Error> {
        if spec.name.is_empty() {
            return Err(Error::AccessRefused {
                reason: "operation not permitted on the default exchange".to_owned(),
            });
        }
        if passive {
            return self.exchange(&spec.name);
        }
        let existing = self.exchanges.read().get(&spec.name).cloned();
        let exchange = match existing {
            Some(x) => x,
            None => {
                if spec.name.starts_with("amq.") {
                    return Err(Error::ReservedName {
                        kind: ResourceKind::Exchange,
                        name: spec.name,
                    });
                }
                let created = Arc::new(Exchange::new(self.name(), spec.clone())?);
                let exchange = self
                    .exchanges
                    .write()
                    .entry(spec.name.clone())
                    .or_insert_with(|| created.clone())
                    .clone();
                if Arc::ptr_eq(&exchange, &created) && spec.durable {
                    self.save_exchange(&exchange)?;
                }
                exchange
            }
        };
        self.check_exchange_equivalent(&exchange, &spec)?;
        Ok(exchange)
    }

    fn check_exchange_equivalent(&self, x: &Exchange, spec: &ExchangeSpec) -> Result<(), Error> {
        let current = x.spec();
        let fail = |arg: &str, received: String, current: String| Error::Inequivalent {
            kind: ResourceKind::Exchange,
            name: x.name().to_owned(),
            vhost: self.name().to_owned(),
            mismatch: Box::new(crate::error::Mismatch {
                arg: arg.to_owned(),
                received,
                current,
            }),
        };
        if current.kind != spec.kind {
            return Err(fail(
                "type",
                format!("'{}'", spec.kind),
                format!("'{}'", current.kind),
            ));
        }
        for (arg, now, asked) in [
            ("durable", current.durable, spec.durable),
            ("auto_delete", current.auto_delete, spec.auto_delete),
            ("internal", current.internal, spec.internal),
        ] {
            if now != asked {
                return Err(fail(arg, format!("'{asked}'"), format!("'{now}'")));
            }
        }
        let (a, b) = (
            current.arguments.get("alternate-exchange"),
            spec.arguments.get("alternate-exchange"),
        );
        let same = match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        if !same {
            let (received, current) = crate::queue::describe_mismatch(b, a);
            return Err(fail("alternate-exchange", received, current));
        }
        Ok(())
    }

    /// exchange.delete. A missing exchange is not an error; `amq.*` and the default
    /// exchange cannot be deleted.
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), Error> {
        if name.is_empty() {
            return Err(Error::AccessRefused {
                reason: "operation not permitted on the default exchange".to_owned(),
            });
        }
        if name.starts_with("amq.") {
            return Err(Error::AccessRefused {
                reason: format!(
                    "deletion of system exchange '{name}' in vhost '{}' not allowed",
                    self.name()
                ),
            });
        }
        let Some(exchange) = self.exchanges.read().get(name).cloned() else {
            return Ok(());
        };
        if if_unused && exchange.binding_count() > 0 {
            return Err(Error::InUse {
                kind: ResourceKind::Exchange,
                name: name.to_owned(),
                vhost: self.name().to_owned(),
            });
        }
        self.remove_exchange(&exchange);
        Ok(())
    }

    fn remove_exchange(&self, exchange: &Arc<Exchange>) {
        {
            let mut map = self.exchanges.write();
            if !map
                .get(exchange.name())
                .is_some_and(|x| Arc::ptr_eq(x, exchange))
            {
                return;
            }
            map.remove(exchange.name());
        }
        self.forget_exchange(exchange);
        exchange.mark_deleted();
        self.remove_bindings_to(&Destination::Exchange(exchange.clone()));
    }

    /// Removes every binding leading to `destination`, auto-deleting source exchanges that
    /// lose their last binding.
    pub(crate) fn remove_bindings_to(&self, destination: &Destination) {
        for source in self.exchange_list() {
            for binding in source.bindings() {
                if binding.destination.same(destination) {
                    self.forget_binding(&source, &binding);
                }
            }
            let (removed, left) = source.unbind_all(destination);
            if removed > 0 && left == 0 && source.spec().auto_delete {
                self.remove_exchange(&source);
            }
        }
    }

    fn binding_ends(
        &self,
        source: &str,
        destination: &str,
        kind: ResourceKind,
        owner: OwnerId,
    ) -> Result<(Arc<Exchange>, Destination), Error> {
        if source.is_empty() || (kind == ResourceKind::Exchange && destination.is_empty()) {
            return Err(Error::AccessRefused {
                reason: "operation not permitted on the default exchange".to_owned(),
            });
        }
        let source = self.exchange(source)?;
        let destination = match kind {
            ResourceKind::Queue => match self.lookup_queue(destination) {
                Some(queue) => {
                    queue.check_access(owner)?;
                    Destination::Queue(queue)
                }
                // A stream queue (Kafka topic) of the vhost.
                None => match self.streams().get(destination) {
                    Some(stream) => Destination::Stream(stream),
                    None => return Err(self.not_found(ResourceKind::Queue, destination)),
                },
            },
            ResourceKind::Exchange => Destination::Exchange(self.exchange(destination)?),
        };
        Ok((source, destination))
    }

    /// queue.bind / exchange.bind.
    pub fn bind(
        &self,
        source: &str,
        destination: &str,
        kind: ResourceKind,
        routing_key: &str,
        arguments: &FieldTable,
        owner: OwnerId,
    ) -> Result<(), Error> {
        let (source, destination) = self.binding_ends(source, destination, kind, owner)?;
        let binding = Binding {
            destination,
            routing_key: routing_key.to_owned(),
            arguments: arguments.clone(),
        };
        if source.bind(binding.clone())? {
            self.save_binding(&source, &binding)?;
        }
        Ok(())
    }

    /// queue.unbind / exchange.unbind. Unbinding what is not bound (or from objects that
    /// do not exist) succeeds, as in RabbitMQ.
    pub fn unbind(
        &self,
        source: &str,
        destination: &str,
        kind: ResourceKind,
        routing_key: &str,
        arguments: &FieldTable,
        owner: OwnerId,
    ) -> Result<(), Error> {
        let (source, destination) = match self.binding_ends(source, destination, kind, owner) {
            Ok(ends) => ends,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(other) => return Err(other),
        };
        if !source.unbind(&destination, routing_key, arguments) {
            return Ok(());
        }
        self.forget_binding(
            &source,
            &Binding {
                destination,
                routing_key: routing_key.to_owned(),
                arguments: arguments.clone(),
            },
        );
        if source.binding_count() == 0 && source.spec().auto_delete {
            self.remove_exchange(&source);
        }
        Ok(())
    }

    /// The queues and streams `message` reaches from `exchange`: bindings, exchange-to-exchange
    /// bindings (each exchange visited once), and alternate exchanges of exchanges whose
    /// own bindings matched nothing.
    pub fn route(&self, exchange: &Arc<Exchange>, message: &Message) -> Routed {
        if let Some(routed) = self.route_to_named_queue(exchange, message) {
            return routed;
        }
        let keys = message.routing_keys();
        let mut routed = Routed::default();
        let mut seen: Vec<*const Exchange> = vec![Arc::as_ptr(exchange)];
        let mut work = VecDeque::from([exchange.clone()]);
        let mut found = Vec::new();
        while let Some(x) = work.pop_front() {
            found.clear();
            if x.is_default() {
                for key in &keys {
                    let queue = if key.starts_with(REPLY_TO_PREFIX) {
                        self.reply_queue(key)
                    } else {
                        self.lookup_queue(key)
                    };
                    if let Some(queue) = queue {
                        found.push(Destination::Queue(queue));
                    } else if let Some(stream) = self.streams().get(key) {
                        found.push(Destination::Stream(stream));
                    }
                }
            } else {
                x.matches(message, &keys, &mut found);
            }
            if found.is_empty()
                && let Some(alternate) = x.alternate().and_then(|name| self.exchange(name).ok())
            {
                found.push(Destination::Exchange(alternate));
            }
            for destination in found.drain(..) {
                match destination {
                    Destination::Queue(queue) => routed.push(queue),
                    Destination::Stream(stream) => routed.push_stream(stream),
                    Destination::Exchange(next) => {
                        if !seen.contains(&Arc::as_ptr(&next)) {
                            seen.push(Arc::as_ptr(&next));
                            work.push_back(next);
                        }
                    }
                }
            }
        }
        routed
    }

    /// The common publish: to the default exchange, one routing key (no CC/BCC), naming an
    /// existing queue. Gives what the general walk gives for it (that queue and nothing else)
    /// without the walk's key vector, work list and visited set: four allocations per message
    /// (see "Profiles" in docs/benchmarks.md). `None`: take the general walk.
    fn route_to_named_queue(&self, exchange: &Exchange, message: &Message) -> Option<Routed> {
        if !exchange.is_default() || message.properties.header_routes().next().is_some() {
            return None;
        }
        let key = message.routing_key.as_str();
        let queue = if key.starts_with(REPLY_TO_PREFIX) {
            self.reply_queue(key)
        } else {
            self.lookup_queue(key)
        }?;
        let mut routed = Routed::default();
        routed.push(queue);
        Some(routed)
    }
}
