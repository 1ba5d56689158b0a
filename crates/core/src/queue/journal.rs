//! The persistence seam of a durable queue.
//!
//! Issue 5 (durability) journals persistent messages of durable queues on `ferrymq-log`.
//! A queue calls its [`Journal`] when a persistent message enters it and when one leaves it
//! for good (acknowledged, dropped, dead-lettered). A publisher confirm for such a message
//! waits for the [`DurabilityWait`] the append returned, so the confirm path is
//! asynchronous per message from the start even though, without a journal, every wait is
//! already complete.

use std::future::Future;
use std::pin::Pin;

use super::Entry;

/// Resolves to `true` once the record is durable under the configured policy, `false` if
/// it could not be made durable (the publisher then gets a nack).
pub type DurabilityWait = Pin<Box<dyn Future<Output = bool> + Send>>;

/// What a durable queue records so it survives a restart.
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// A persistent message entered the queue at `entry.seq`.
    fn append(&self, entry: &Entry) -> Option<DurabilityWait>;
    /// Messages left the queue for good.
    fn remove(&self, seqs: &[u64]);
}
