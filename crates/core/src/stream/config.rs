//! Per-stream settings: what a stream sets explicitly ([`StreamConfig`]) and what applies when
//! it does not ([`StreamDefaults`]). Protocol-neutral: the Kafka frontend maps topic configs
//! (`retention.ms`, ...) onto these fields, the AMQP side maps queue arguments
//! (`x-max-age`, ...).

use std::collections::BTreeMap;
use std::time::Duration;

use ferrymq_log::{FsyncPolicy, LogConfig};

use crate::{FsyncMode, StorageConfig};

/// Whose clock timestamps a stored batch: the producer's or the broker's at append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Settings a stream sets explicitly; `None` takes the [`StreamDefaults`] value.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// Delete whole segments whose newest entry is older than this (-1: never).
    pub retention_ms: Option<i64>,
    /// Per partition: delete oldest segments while larger than this (-1: never).
    pub retention_bytes: Option<i64>,
    pub segment_bytes: Option<u64>,
    /// Roll the active segment once it is this old.
    pub segment_ms: Option<u64>,
    /// Largest batch accepted, in bytes.
    pub max_message_bytes: Option<u32>,
    pub timestamp_type: Option<TimestampType>,
    /// fsync after this many entries (1: every append; larger values map to the interval
    /// policy, as the log syncs whole appends, not counts).
    pub flush_messages: Option<u64>,
    /// fsync at least this often.
    pub flush_ms: Option<u64>,
    pub index_interval_bytes: Option<u32>,
    /// Settings kept and reported but without effect on a single node (a frontend decides
    /// which it accepts), by name.
    pub extra: BTreeMap<String, String>,
    /// Every record appended is also published to this exchange of the stream's vhost, its
    /// key as routing key (topic config `ferrymq.fanout.exchange`, stream queue argument
    /// `x-ferrymq-fanout-exchange`; see `interop::fanout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout_exchange: Option<String>,
    /// The arguments the stream was declared with as an AMQP stream queue, compared when it
    /// is declared again (empty for streams created any other way).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queue_arguments: Vec<QueueArgument>,
}

/// One stream queue argument as declared: its name, AMQP type letter and value in the
/// text form of `interop`'s header encoding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueArgument {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// The values streams use unless they set their own, already resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDefaults {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: Option<u64>,
    pub max_message_bytes: u32,
    pub timestamp_type: TimestampType,
    pub fsync: FsyncMode,
    pub fsync_interval_ms: u64,
    pub index_interval_bytes: u32,
}

impl StreamDefaults {
    /// Defaults from the storage section: no retention, 1 MiB batches, create time.
    pub fn from_storage(storage: &StorageConfig) -> Self {
        Self {
            retention_ms: -1,
            retention_bytes: -1,
            segment_bytes: storage.segment_bytes,
            segment_ms: None,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            fsync: storage.stream_fsync,
            fsync_interval_ms: storage.stream_fsync_interval_ms,
            index_interval_bytes: 4096,
        }
    }
}

/// What a stream actually runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: Option<u64>,
    pub max_message_bytes: u32,
    pub timestamp_type: TimestampType,
    pub fsync: FsyncPolicy,
    pub index_interval_bytes: u32,
}

/// Values at or above this mean "never" for Kafka's `Long.MAX_VALUE`-style settings.
const NEVER: u64 = 1 << 62;

impl StreamConfig {
    /// Resolves against `defaults`.
    pub fn resolve(&self, defaults: &StreamDefaults) -> Effective {
        let default_fsync = match defaults.fsync {
            FsyncMode::Always => FsyncPolicy::Always,
            FsyncMode::Interval => {
                FsyncPolicy::Interval(Duration::from_millis(defaults.fsync_interval_ms.max(1)))
            }
            FsyncMode::Never => FsyncPolicy::Never,
        };
        let interval = |ms: u64| match ms {
            0 => FsyncPolicy::Always,
            ms if ms >= NEVER => FsyncPolicy::Never,
            ms => FsyncPolicy::Interval(Duration::from_millis(ms)),
        };
        let fsync = match (self.flush_messages, self.flush_ms) {
            (Some(0 | 1), _) => FsyncPolicy::Always,
            (_, Some(ms)) => interval(ms),
            (Some(n), None) if n >= NEVER => FsyncPolicy::Never,
            (Some(_), None) => interval(defaults.fsync_interval_ms.max(1)),
            (None, None) => default_fsync,
        };
        Effective {
            retention_ms: self.retention_ms.unwrap_or(defaults.retention_ms),
            retention_bytes: self.retention_bytes.unwrap_or(defaults.retention_bytes),
            segment_bytes: self.segment_bytes.unwrap_or(defaults.segment_bytes),
            segment_ms: self.segment_ms.or(defaults.segment_ms),
            max_message_bytes: self.max_message_bytes.unwrap_or(defaults.max_message_bytes),
            timestamp_type: self.timestamp_type.unwrap_or(defaults.timestamp_type),
            fsync,
            index_interval_bytes: self
                .index_interval_bytes
                .unwrap_or(defaults.index_interval_bytes),
        }
    }
}

impl Effective {
    /// The log configuration of each partition.
    pub fn log_config(&self) -> LogConfig {
        let positive = |v: i64| u64::try_from(v).ok();
        LogConfig {
            segment_bytes: self.segment_bytes.max(1024),
            segment_age: self
                .segment_ms
                .filter(|ms| *ms > 0 && *ms < NEVER)
                .map(Duration::from_millis),
            retention_bytes: positive(self.retention_bytes),
            retention_age: positive(self.retention_ms).map(Duration::from_millis),
            index_interval_bytes: self.index_interval_bytes.max(1),
            // The log frames entries itself; allow what the stream allows plus slack so an
            // accepted batch always fits.
            max_entry_bytes: self
                .max_message_bytes
                .saturating_add(1024)
                .min(u32::MAX / 2),
            fsync: self.fsync,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> StreamDefaults {
        StreamDefaults::from_storage(&StorageConfig::default())
    }

    #[test]
    fn unset_fields_take_the_defaults() {
        let e = StreamConfig::default().resolve(&defaults());
        assert_eq!(e.retention_ms, -1);
        // Streams flush once a second unless configured otherwise (Kafka-like).
        assert_eq!(e.fsync, FsyncPolicy::Interval(Duration::from_secs(1)));
        assert_eq!(e.log_config().retention_age, None);
    }

    #[test]
    fn flush_settings_map_onto_the_fsync_policy() {
        let d = defaults();
        let with = |messages, ms| StreamConfig {
            flush_messages: messages,
            flush_ms: ms,
            ..StreamConfig::default()
        };
        assert_eq!(
            with(Some(1), Some(5000)).resolve(&d).fsync,
            FsyncPolicy::Always
        );
        assert_eq!(
            with(None, Some(250)).resolve(&d).fsync,
            FsyncPolicy::Interval(Duration::from_millis(250))
        );
        assert_eq!(
            with(Some(u64::MAX >> 1), Some(u64::MAX >> 1))
                .resolve(&d)
                .fsync,
            FsyncPolicy::Never
        );
        assert_eq!(with(None, Some(0)).resolve(&d).fsync, FsyncPolicy::Always);
    }

    #[test]
    fn retention_and_segments_reach_the_log() {
        let c = StreamConfig {
            retention_ms: Some(60_000),
            retention_bytes: Some(1 << 20),
            segment_ms: Some(1_000),
            ..StreamConfig::default()
        };
        let log = c.resolve(&defaults()).log_config();
        assert_eq!(log.retention_age, Some(Duration::from_secs(60)));
        assert_eq!(log.retention_bytes, Some(1 << 20));
        assert_eq!(log.segment_age, Some(Duration::from_secs(1)));
    }
}
