//! Exchanges: named routers from a message's routing keys and headers to destinations.
//!
//! An [`Exchange`] owns its bindings behind its own `RwLock`; routing takes the read side
//! only, so publishers through one exchange never wait for another exchange. Bindings hold
//! destination handles ([`Destination`]: an `Arc<Queue>` or an `Arc<Exchange>`), so routing
//! never looks a queue up by name. The default exchange (`""`) is the exception: it routes
//! to the queue named by the routing key, looked up in the vhost.
//!
//! ```text
//! publish ──> Exchange::matches (direct: hash map, fanout: list, topic: trie,
//!             headers: pattern list) ──> queues, exchanges (e2e, recursive, cycle-safe)
//!             nothing matched ──> alternate-exchange, if set
//! ```
//!
//! # Invariants
//! - A deleted exchange has `is_deleted() == true` and no bindings; callers that cache an
//!   `Arc<Exchange>` re-resolve it by name when they see the flag.
//! - `bindings.list` and the routing index always describe the same set of bindings.

mod bindings;
mod headers;
mod persist;
mod registry;
pub mod topic;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use bindings::Binding;
use bindings::Bindings;
pub use headers::HeadersPattern;
pub use registry::Exchanges;

use crate::Error;
use crate::message::{FieldTable, FieldValue, Message};
use crate::queue::{DurabilityWait, Enqueued, Queue};
use crate::stream::Stream;

/// The routing algorithm of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExchangeKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "direct" => Ok(Self::Direct),
            "fanout" => Ok(Self::Fanout),
            "topic" => Ok(Self::Topic),
            "headers" => Ok(Self::Headers),
            other => Err(Error::UnknownExchangeType {
                kind: other.to_owned(),
            }),
        }
    }
}

/// What a client asks for when it declares an exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeSpec {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

impl ExchangeSpec {
    pub fn new(name: impl Into<String>, kind: ExchangeKind) -> Self {
        Self {
            name: name.into(),
            kind,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
        }
    }
}

/// Where a binding leads.
#[derive(Debug, Clone)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
    /// A stream queue (a Kafka topic): routed messages are appended to its log.
    Stream(Arc<Stream>),
}

impl Destination {
    /// Same object (pointer identity): a re-declared queue is a different destination.
    pub fn same(&self, other: &Destination) -> bool {
        match (self, other) {
            (Self::Queue(a), Self::Queue(b)) => Arc::ptr_eq(a, b),
            (Self::Exchange(a), Self::Exchange(b)) => Arc::ptr_eq(a, b),
            (Self::Stream(a), Self::Stream(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Queue(q) => q.name(),
            Self::Exchange(x) => x.name(),
            Self::Stream(s) => s.name(),
        }
    }
}

/// One exchange.
#[derive(Debug)]
pub struct Exchange {
    vhost: String,
    spec: ExchangeSpec,
    alternate: Option<String>,
    bindings: RwLock<Bindings>,
    deleted: AtomicBool,
}

impl Exchange {
    pub(crate) fn new(vhost: &str, spec: ExchangeSpec) -> Result<Self, Error> {
        let alternate = match spec.arguments.get("alternate-exchange") {
            None => None,
            Some(FieldValue::LongString(name)) => Some(String::from_utf8_lossy(name).into_owned()),
            Some(other) => {
                return Err(Error::InvalidArgument {
                    kind: crate::error::ResourceKind::Exchange,
                    name: spec.name.clone(),
                    vhost: vhost.to_owned(),
                    arg: "alternate-exchange".to_owned(),
                    reason: format!("{{unacceptable_type,{}}}", other.type_name()),
                });
            }
        };
        Ok(Self {
            vhost: vhost.to_owned(),
            bindings: RwLock::new(Bindings::new(spec.kind)),
            spec,
            alternate,
            deleted: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    pub fn kind(&self) -> ExchangeKind {
        self.spec.kind
    }

    pub fn spec(&self) -> &ExchangeSpec {
        &self.spec
    }

    pub fn is_internal(&self) -> bool {
        self.spec.internal
    }

    pub fn is_default(&self) -> bool {
        self.spec.name.is_empty()
    }

    /// The `alternate-exchange` argument.
    pub fn alternate(&self) -> Option<&str> {
        self.alternate.as_deref()
    }

    /// True once the exchange has been deleted; a cached handle must be dropped then.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        self.write().clear();
    }

    fn read(&self) -> RwLockReadGuard<'_, Bindings> {
        self.bindings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Bindings> {
        self.bindings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a binding; `Ok(false)` if an identical one exists already.
    pub(crate) fn bind(&self, binding: Binding) -> Result<bool, Error> {
        self.write().add(binding)
    }

    /// Removes a binding; `false` if there was none.
    pub(crate) fn unbind(&self, destination: &Destination, key: &str, args: &FieldTable) -> bool {
        self.write().remove(destination, key, args)
    }

    /// Removes every binding to `destination`; returns how many bindings are left.
    pub(crate) fn unbind_all(&self, destination: &Destination) -> (usize, usize) {
        self.write().remove_destination(destination)
    }

    pub fn binding_count(&self) -> usize {
        self.read().len()
    }

    /// Snapshot of the bindings, for listings and for deletion.
    pub fn bindings(&self) -> Vec<Binding> {
        self.read().list().to_vec()
    }

    /// Destinations this exchange's own bindings select for `message` (no recursion, no
    /// alternate exchange, nothing for the default exchange).
    pub(crate) fn matches(&self, message: &Message, keys: &[&str], out: &mut Vec<Destination>) {
        self.read().matches(message, keys, out);
    }
}

/// Where a message went.
#[derive(Debug, Default)]
pub struct Routed {
    /// Distinct queues, in the order they were first reached.
    pub queues: Vec<Arc<Queue>>,
    /// Distinct streams (stream queues), in the order they were first reached.
    pub streams: Vec<Arc<Stream>>,
}

impl Routed {
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty() && self.streams.is_empty()
    }

    /// Offers `message` to every routed queue and appends it to every routed stream.
    /// Returns whether any refused it, and the durability waits a confirm depends on.
    pub fn enqueue(&self, message: &Arc<Message>) -> (bool, Vec<DurabilityWait>) {
        let mut rejected = false;
        let mut waits = Vec::new();
        for queue in &self.queues {
            match queue.publish(message.clone()) {
                Enqueued::Accepted { durable } => waits.extend(durable),
                Enqueued::Rejected => rejected = true,
            }
        }
        for stream in &self.streams {
            match stream.append_message(message) {
                Ok(appended) => waits.extend(appended.durability()),
                Err(e) => {
                    tracing::warn!(stream = stream.name(), "publish to stream refused: {e}");
                    rejected = true;
                }
            }
        }
        (rejected, waits)
    }

    fn push(&mut self, queue: Arc<Queue>) {
        if !self.queues.iter().any(|q| Arc::ptr_eq(q, &queue)) {
            self.queues.push(queue);
        }
    }

    fn push_stream(&mut self, stream: Arc<Stream>) {
        if !stream.is_deleted() && !self.streams.iter().any(|s| Arc::ptr_eq(s, &stream)) {
            self.streams.push(stream);
        }
    }
}

#[cfg(test)]
mod tests;
