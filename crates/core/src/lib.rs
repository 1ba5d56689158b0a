//! ferrymq-core: the protocol-neutral heart of ferrymq.
//!
//! It owns everything a broker knows independently of the wire: virtual hosts, exchanges and
//! their bindings, queues and their consumers, streams (a Kafka topic and an AMQP stream queue
//! are the same [`stream`] object, each partition a `ferrymq-log` log), consumer groups and
//! committed offsets. The AMQP and Kafka frontends translate frames into calls on a shared
//! [`Broker`] and translate [`Error`] values into their own reply codes; nothing in this crate
//! knows a frame, a socket or a protocol error code.
//!
//! ```text
//! Broker
//!  ├── vhosts: name -> VHost
//!  │     ├── exchanges: name -> Exchange (bindings to queues, streams, exchanges)
//!  │     ├── queues:    name -> Queue    (classic: in memory, journaled when durable)
//!  │     └── streams:   name -> Stream   (partitions, each a ferrymq-log Log)
//!  └── data_dir (see `layout`)
//! ```
//!
//! ```
//! use ferrymq_core::{Broker, BrokerConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
//! assert!(broker.vhost("/").is_some());
//! ```
//!
//! # Invariants
//! - No lock is global to the publish or fetch path: state lives per vhost, per exchange, per
//!   queue and per partition, and the maps of those are read-mostly.
//! - std `Mutex`/`RwLock` guard short sections that never `.await`; nothing blocking (fsync)
//!   runs on a runtime worker.

pub mod alarms;
mod broker;
mod config;
pub mod connections;
mod error;
pub mod exchange;
pub mod group;
pub mod interop;
pub mod layout;
pub mod message;
pub mod metrics;
pub mod namespace;
pub mod queue;
pub mod store;
pub mod stream;
pub mod transactions;
pub mod vhost;

/// Latency histograms (fsync latency is recorded by every log).
pub use ferrymq_log::histogram;

pub use broker::Broker;
pub use config::{BrokerConfig, FsyncMode, StorageConfig};
pub use error::{Error, Mismatch, ResourceKind};
pub use vhost::{VHost, VhostMeta};
