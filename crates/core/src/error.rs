//! The core's one error type. Frontends map each variant to their protocol's code at the edge.

use std::path::PathBuf;

use crate::group::GroupError;
use crate::stream::batch::BatchError;
use crate::stream::producer::SequenceError;

/// Which property or argument of a redeclaration differs, as RabbitMQ words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub arg: String,
    /// The requested value, e.g. `'true'` or `the value '10' of type 'long'`.
    pub received: String,
    /// The existing value, worded the same way (`none` when absent).
    pub current: String,
}

/// The kind of a named broker object, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Exchange,
    Queue,
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Exchange => "exchange",
            Self::Queue => "queue",
        })
    }
}

/// Everything a core operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A virtual host that is not configured.
    #[error("no vhost named '{vhost}'")]
    UnknownVhost { vhost: String },
    /// The data directory could not be prepared or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A log under the data directory failed (I/O, corruption, poisoned by a failed fsync).
    #[error("{what}: {source}")]
    Storage {
        what: String,
        #[source]
        source: ferrymq_log::LogError,
    },
    /// A stored definition this build cannot read back.
    #[error("stored {kind} definition {key:?} is unreadable: {reason}")]
    CorruptDefinition {
        kind: String,
        key: String,
        reason: String,
    },
    /// A durable queue's journal holds a record this build cannot read.
    #[error("queue {queue}: journal record at offset {offset} is unreadable: {reason}")]
    CorruptQueue {
        queue: String,
        offset: u64,
        reason: String,
    },
    /// A broken internal expectation (a task that died, an impossible encoding).
    #[error("internal error: {reason}")]
    Internal { reason: String },
    /// No stream (Kafka topic) of that name.
    #[error("no stream named '{stream}'")]
    StreamNotFound { stream: String },
    /// A stream of that name already exists.
    #[error("stream '{stream}' already exists")]
    StreamExists { stream: String },
    /// The name is taken by the other kind of object: classic queues and streams of a vhost
    /// share one namespace.
    #[error(
        "a {holder} named '{name}' exists in vhost '{vhost}' (queues and streams share one \
         namespace)"
    )]
    NameInUse {
        name: String,
        vhost: String,
        holder: crate::namespace::NameKind,
    },
    /// The vhost's `max-queues` limit (queues and streams together) is reached.
    #[error("cannot declare queue '{name}': queue limit in vhost '{vhost}' ({limit}) is reached")]
    QueueLimit {
        name: String,
        vhost: String,
        limit: u64,
    },
    /// The node's connection limit for the protocol is reached.
    #[error("connection refused: node connection limit ({limit}) is reached")]
    NodeConnectionLimit { limit: usize },
    /// The vhost's `max-connections` limit is reached.
    #[error(
        "access to vhost '{vhost}' refused for user '{user}': connection limit ({limit}) is reached"
    )]
    ConnectionLimit {
        vhost: String,
        user: String,
        limit: u64,
    },
    #[error("invalid stream name '{name}': {reason}")]
    InvalidStreamName { name: String, reason: String },
    #[error("invalid partition count {requested}: {reason}")]
    InvalidPartitionCount { requested: i64, reason: String },
    /// A partition's log failed (I/O, corruption, a failed fsync).
    #[error("stream '{stream}' partition {partition}: {source}")]
    PartitionLog {
        stream: String,
        partition: u32,
        #[source]
        source: ferrymq_log::LogError,
    },
    /// An appended batch was not durable because the partition failed or went away.
    #[error("stream '{stream}' partition {partition} failed before the append was durable")]
    NotDurable { stream: String, partition: u32 },
    #[error("record batch of {size} bytes exceeds the stream's limit of {max} bytes")]
    BatchTooLarge { size: usize, max: u32 },
    /// A record batch offered for append is malformed or not acceptable.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A stored batch could not be decoded.
    #[error("stream '{stream}' partition {partition} offset {offset}: {source}")]
    CorruptBatch {
        stream: String,
        partition: u32,
        offset: u64,
        #[source]
        source: BatchError,
    },
    /// An idempotent producer's batch is fenced or out of sequence.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("offset {offset} is outside stream '{stream}' partition {partition} [{start}, {end}]")]
    OffsetOutOfRange {
        stream: String,
        partition: u32,
        offset: u64,
        start: u64,
        end: u64,
    },
    /// A consumer-group operation was refused.
    #[error(transparent)]
    Group(#[from] GroupError),
    // ---- exchanges, queues, bindings, consumers (AMQP maps these at its edge) ----
    /// A named exchange or queue that does not exist.
    #[error("no {kind} '{name}' in vhost '{vhost}'")]
    NotFound {
        kind: ResourceKind,
        name: String,
        vhost: String,
    },
    /// A redeclaration whose properties or arguments differ from the existing object's.
    #[error(
        "inequivalent arg '{}' for {kind} '{name}' in vhost '{vhost}': received {} but current \
         is {}",
        mismatch.arg,
        mismatch.received,
        mismatch.current
    )]
    Inequivalent {
        kind: ResourceKind,
        name: String,
        vhost: String,
        mismatch: Box<Mismatch>,
    },
    /// Creating an object whose name starts with `amq.`.
    #[error("{kind} name '{name}' contains reserved prefix 'amq.*'")]
    ReservedName { kind: ResourceKind, name: String },
    /// An exclusive queue used from a connection that does not own it.
    #[error(
        "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could \
         be originally declared on another connection or the exclusive property value does not \
         match that of the original declaration."
    )]
    ResourceLocked { name: String, vhost: String },
    /// Deleting with if-unused an object that has consumers or bindings.
    #[error("{kind} '{name}' in vhost '{vhost}' in use")]
    InUse {
        kind: ResourceKind,
        name: String,
        vhost: String,
    },
    /// Deleting with if-empty a queue that holds messages.
    #[error("queue '{name}' in vhost '{vhost}' not empty")]
    NotEmpty { name: String, vhost: String },
    /// An `x-` argument of the wrong type or out of range.
    #[error("invalid arg '{arg}' for {kind} '{name}' in vhost '{vhost}': {reason}")]
    InvalidArgument {
        kind: ResourceKind,
        name: String,
        vhost: String,
        arg: String,
        reason: String,
    },
    /// Binding arguments an exchange type refuses (headers `x-match`).
    #[error("{reason}")]
    InvalidBinding { reason: String },
    #[error("unknown exchange type '{kind}'")]
    UnknownExchangeType { kind: String },
    /// A consumer asked for exclusivity on a queue that has consumers, or the reverse.
    #[error("queue '{name}' in vhost '{vhost}' in exclusive use")]
    ExclusiveConsumer { name: String, vhost: String },
    /// A consumer tag already used on the same channel.
    #[error("attempt to reuse consumer tag '{tag}'")]
    DuplicateConsumerTag { tag: String },
    /// An operation the object's rules forbid (default exchange, internal exchange, ...).
    #[error("{reason}")]
    AccessRefused { reason: String },
    /// A request inconsistent with the broker's state or rules.
    #[error("{reason}")]
    PreconditionFailed { reason: String },
    /// A message property the broker refuses (expiration, delivery mode, CC/BCC).
    #[error(transparent)]
    InvalidProperty(#[from] crate::message::PropertyError),
    /// A feature the broker does not offer through this path.
    #[error("{feature} is not supported")]
    Unsupported { feature: String },
    /// A user without permission for a vhost.
    #[error("access to vhost '{vhost}' refused for user '{user}'")]
    VhostAccessRefused { vhost: String, user: String },
}
