//! Pure encoders and decoders: bytes in, values out, and back. No I/O, no async.
//!
//! - [`frame`]: the frame envelope, with the `frame_max` check from the header alone.
//! - [`method`]: method frames (amq-protocol, plus hand-written hot-path encoders).
//! - [`properties`]: content headers, kept as received for byte-exact re-delivery.
//! - [`table`]: field tables in RabbitMQ's dialect.
//! - [`content`]: a whole message out: method, content header, body split at frame_max.

pub mod content;
pub mod frame;
pub mod method;
pub mod properties;
pub mod table;

pub use frame::{AmqpFrame, FrameError, FrameKind};
