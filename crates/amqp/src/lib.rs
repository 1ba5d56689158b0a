//! ferrymq-amqp: the AMQP 0-9-1 frontend.
//!
//! It turns bytes from stock RabbitMQ clients (pika, kombu/py-amqp, aio-pika, lapin) into
//! calls on ferrymq-core's exchanges and queues, and core errors into AMQP reply codes. It
//! owns no broker state of its own beyond connections and channels.
//!
//! ```text
//! codec/       pure: frames (size-checked from the header), methods (amq-protocol),
//!              content headers (kept as received), field tables, outgoing messages
//! connection/  handshake, the reader loop, the outbox and its writer task, heartbeats,
//!              connection.blocked
//! channel/     channel state machine, content assembly, exchange/queue/basic/confirm/tx
//! error        reply codes; core error -> code
//! ```
//!
//! ```no_run
//! # async fn example(broker: std::sync::Arc<ferrymq_core::Broker>) -> std::io::Result<()> {
//! use ferrymq_amqp::{AmqpConfig, AmqpContext, serve_connection};
//! let ctx = AmqpContext::new(broker, AmqpConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5672").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! loop {
//!     let (socket, peer) = listener.accept().await?;
//!     tokio::spawn(serve_connection(socket, peer, ctx.clone(), shutdown.clone()));
//! }
//! # }
//! ```
//!
//! # Invariants
//! - Bad input from a client ends in a channel.close or connection.close with the reply
//!   code RabbitMQ would send, never in a panic, and never affects other connections.
//! - Nothing a connection buffers is unbounded: frames are checked against frame_max before
//!   they are read, replies pause the reader past a limit, deliveries are bounded by
//!   consumer credit.
//! - A slow or stalled client only stops its own consumers: queues skip consumers without
//!   credit and keep serving the others.

pub mod channel;
pub mod codec;
mod config;
pub mod connection;
mod context;
pub mod error;

pub use config::{AmqpConfig, CertLogin};
pub use connection::{serve_connection, serve_stream};
pub use context::AmqpContext;
