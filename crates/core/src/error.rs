//! The core's one error type. Frontends map each variant to their protocol's code at the edge.

use std::path::PathBuf;

use crate::group::GroupError;
use crate::stream::batch::BatchError;
use crate::stream::producer::SequenceError;

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
    /// A broken internal expectation (a task that died, an impossible encoding).
    #[error("internal error: {reason}")]
    Internal { reason: String },
    /// No stream (Kafka topic) of that name.
    #[error("no stream named '{stream}'")]
    StreamNotFound { stream: String },
    /// A stream of that name already exists.
    #[error("stream '{stream}' already exists")]
    StreamExists { stream: String },
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
}
