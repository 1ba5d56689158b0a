//! Configuration the core needs; the server composes it into its TOML file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrymq_log::{FsyncPolicy, LogConfig};

use serde::{Deserialize, Serialize};

/// When data written to a log is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// fsync before an append is acknowledged; concurrent writers share one fsync.
    Always,
    /// fsync every `fsync_interval_ms`; acknowledged before it reaches disk.
    Interval,
    /// Leave write-back to the OS: survives a process crash, not a power loss.
    Never,
}

/// Storage defaults for every log the broker creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Durability policy for logs that do not set their own.
    pub fsync: FsyncMode,
    /// Flush interval for [`FsyncMode::Interval`].
    pub fsync_interval_ms: u64,
    /// Durability policy of streams (Kafka topic partitions and AMQP stream queues) that set
    /// no `flush.ms`/`flush.messages` of their own. Interval by default: a produce or stream
    /// confirm is answered once the record is in the log (it survives a crash of the broker
    /// process at once) and reaches the disk within `stream_fsync_interval_ms`, which is what
    /// Apache Kafka and RabbitMQ streams promise on a single node.
    pub stream_fsync: FsyncMode,
    /// Flush interval of streams under [`FsyncMode::Interval`].
    pub stream_fsync_interval_ms: u64,
    /// A log rolls to a new segment file once its active one reaches this size (durable
    /// queues' message logs use at most 16 MiB, so drained space is freed promptly).
    pub segment_bytes: u64,
    /// Memory for the newest messages of classic queues (bodies, properties and bookkeeping),
    /// shared by all of them, durable or not. Beyond it messages wait on disk only (a run of
    /// them costs a few bytes) and are read back when delivered, so a backlog larger than
    /// memory costs disk, not memory; a non-durable queue pages to scratch files that are
    /// removed at the next start.
    pub queue_cache_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncMode::Always,
            fsync_interval_ms: 200,
            stream_fsync: FsyncMode::Interval,
            stream_fsync_interval_ms: 1000,
            segment_bytes: 64 * 1024 * 1024,
            queue_cache_bytes: 64 * 1024 * 1024,
        }
    }
}

impl StorageConfig {
    /// The log durability policy this configuration selects.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        match self.fsync {
            FsyncMode::Always => FsyncPolicy::Always,
            FsyncMode::Interval => {
                FsyncPolicy::Interval(Duration::from_millis(self.fsync_interval_ms))
            }
            FsyncMode::Never => FsyncPolicy::Never,
        }
    }

    /// Log settings for broker metadata (definitions, offsets): small segments, no retention.
    pub fn metadata_log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: 8 * 1024 * 1024,
            segment_age: None,
            retention_bytes: None,
            retention_age: None,
            fsync: self.fsync_policy(),
            ..LogConfig::default()
        }
    }
}

/// What [`crate::Broker::open`] needs.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Root of everything the broker persists (see [`crate::layout`]).
    pub data_dir: PathBuf,
    pub storage: StorageConfig,
    /// Virtual hosts that exist at startup; `/` is always among them.
    pub vhosts: Vec<String>,
    /// The vhost whose streams the Kafka listener serves as topics.
    pub kafka_vhost: String,
}

impl BrokerConfig {
    /// Defaults for everything but the data directory.
    pub fn with_data_dir(data_dir: impl AsRef<Path>) -> Self {
        Self {
            data_dir: data_dir.as_ref().to_path_buf(),
            storage: StorageConfig::default(),
            vhosts: vec!["/".to_owned()],
            kafka_vhost: "/".to_owned(),
        }
    }
}
