//! Streams: append-only, partitioned logs of record batches. A stream is a Kafka topic and
//! (issue "one log, two protocols") an AMQP stream queue; this module knows neither protocol.
//!
//! ```text
//! Streams (one per vhost) ── name -> Stream ── id, StreamConfig, [Partition; N]
//!                                                 └─ Partition = ferrymq_log::Log of batches
//! <data>/streams/<vhost>/<stream>/stream.def      definition (see `persist`)
//!                                /<p>/            partition p's log
//!                                /<p>.producers   idempotent-producer snapshot
//! ```
//!
//! ```
//! use ferrymq_core::{Broker, BrokerConfig, stream::StreamConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
//! let streams = broker.vhost("/").unwrap().streams().clone();
//! let orders = streams.create("orders", 3, StreamConfig::default()).unwrap();
//! assert_eq!(orders.partition_count(), 3);
//! assert!(streams.get("orders").is_some());
//! ```
//!
//! # Invariants
//! - Creating, deleting and repartitioning streams is serialized per vhost and does blocking
//!   file I/O: async callers run it on the blocking pool. Produce and fetch never take that
//!   lock: they clone an `Arc<Partition>` out of a read-mostly map and lock only it.
//! - A stream's definition is persisted before the stream becomes visible, and removed
//!   (with its files) after it is hidden.

pub mod batch;
mod config;
pub mod encode;
mod lookup;
mod maintenance;
mod partition;
pub mod partitioner;
mod persist;
pub mod producer;
mod producer_ids;
pub mod records;
mod registry;
pub mod txn;

use std::fmt;

pub use config::{Effective, QueueArgument, StreamConfig, StreamDefaults, TimestampType};
pub use lookup::OffsetAndTimestamp;
pub use partition::{Appended, Partition};
pub use producer_ids::ProducerIds;
pub use registry::{Stream, Streams};

/// Partitions a stream may have at most.
pub const MAX_PARTITIONS: u32 = 10_000;

/// A stream's permanent identity (a Kafka topic id): 16 random bytes, never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub [u8; 16]);

impl StreamId {
    /// A fresh random id (from the OS's random source).
    pub fn random() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut bytes = [0u8; 16];
        let from_os = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
        if from_os.is_err() {
            // No /dev/urandom: std's per-process random hash keys, mixed with the time.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            for half in bytes.chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u128(now);
                half.copy_from_slice(&h.finish().to_be_bytes());
            }
        }
        // The all-zero id means "none" in Kafka.
        if bytes == [0; 16] {
            bytes[15] = 1;
        }
        Self(bytes)
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl serde::Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(d)?;
        Self::from_hex(&hex)
            .ok_or_else(|| serde::de::Error::custom(format!("not a stream id: {hex:?}")))
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.to_hex())
    }
}

/// What is persisted about a stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamDefinition {
    pub id: StreamId,
    pub partitions: u32,
    pub config: StreamConfig,
}

#[cfg(test)]
mod tests;
