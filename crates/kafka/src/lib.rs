//! ferrymq-kafka: the Kafka wire-protocol frontend.
//!
//! Stock Kafka clients (librdkafka/confluent-kafka/kcat, kafka-python, aiokafka) connect to
//! the listener the server binds and call [`serve_connection`] for. Topics are the streams of
//! the Kafka vhost (`ferrymq_core::stream`); consumer groups and committed offsets live in
//! `ferrymq_core::group`. This crate only translates: frames to requests, requests to core
//! calls, core errors to Kafka error codes, results to responses.
//!
//! ```text
//! TcpStream ── connection (framing, ordering) ── message (header, bounds walk, decode)
//!                    │                                 │
//!                    └── api::dispatch ── api::<one module per API key> ── ferrymq_core
//! ```
//!
//! ```no_run
//! # async fn run(broker: std::sync::Arc<ferrymq_core::Broker>) -> Result<(), Box<dyn std::error::Error>> {
//! use ferrymq_kafka::{Ctx, KafkaConfig, serve_connection};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9092").await?;
//! let ctx = Ctx::new(broker, KafkaConfig::default(), "127.0.0.1", 9092)?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! loop {
//!     let (socket, peer) = listener.accept().await?;
//!     tokio::spawn(serve_connection(socket, peer, ctx.clone(), shutdown.clone()));
//! }
//! # }
//! ```
//!
//! # Invariants
//! - Every request is bounds-checked ([`bounds`]) before kafka-protocol decodes it, and
//!   every frame's size before it is buffered: no input can make the broker allocate
//!   unboundedly, panic, or affect another connection.
//! - Responses never carry tagged fields with default values (librdkafka < 2.2 misparses
//!   them) and only versions listed in [`versions::SUPPORTED`] are served.
//! - Handlers apply requests in arrival order per connection and never block an async
//!   worker on file I/O or fsync.

pub mod api;
pub mod bounds;
mod config;
pub mod connection;
mod ctx;
pub mod error;
pub mod frame;
pub mod header;
pub mod listeners;
pub mod message;
mod sasl;
pub mod session;
pub mod topic_config;
pub mod versions;

pub use config::KafkaConfig;
pub use connection::{serve, serve_connection, serve_listener, serve_stream};
pub use ctx::Ctx;
pub use listeners::{KafkaListener, ListenerSpec, SecurityProtocol};
