//! One log, two protocols: AMQP stream queues are streams, and so are Kafka topics.
//!
//! A stream holds Kafka record batches (see `stream`). This module is everything the AMQP
//! view of a stream needs on top of that, protocol-neutral like the rest of the core:
//!
//! ```text
//! mapping       AMQP message <-> Kafka record (body/value, routing key/key, properties and
//!               headers in reserved `amqp.*` headers, timestamps)
//! header_value  one typed header value <-> Kafka header bytes
//! stream_queue  queue.declare / delete of stream queues (RabbitMQ's rules and wording)
//! publish       an AMQP publish appended to a stream (partition by Kafka's partitioner)
//! consumer      AMQP consumers of a stream (x-stream-offset, credit, independent readers)
//! fanout        topic -> exchange fan-out (at-least-once, position in the definitions store)
//! ```
//!
//! # Invariants
//! - A message published over AMQP and read back over AMQP is unchanged (mapping is
//!   lossless in that direction); a Kafka record read over AMQP keeps key, value, headers and
//!   timestamp.

pub mod consumer;
pub mod fanout;
mod header_value;
pub mod mapping;
pub mod publish;
pub mod stream_queue;

pub use consumer::{StartAt, StreamConsumer};
pub use mapping::{message_to_batch, record_to_message};
pub use publish::StreamAppend;
pub use stream_queue::{FANOUT_ARG, QueueDeclared, StreamDeclared, parse_max_age, wants_stream};
