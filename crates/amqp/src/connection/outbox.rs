//! The outbox of a connection and the task that writes it to the socket.
//!
//! Everything a connection sends goes through one FIFO, so replies, deliveries and
//! confirms leave in the order they were produced (consume-ok before the first delivery,
//! delivery tags in increasing order). Handlers push pre-encoded frames; queues push
//! deliveries, which the writer encodes (a body is copied once, by the writer, never under
//! a queue's lock).
//!
//! # Invariants
//! - Deliveries in the outbox are bounded by consumer credit (each consumer's window);
//!   the writer gives the window back once a delivery is written (or skipped because its
//!   channel closed), which may let queues dispatch more.
//! - Other frames are bounded by [`CONTROL_LIMIT`]: the reader stops reading the socket
//!   while more than that waits to be written.
//! - The writer never holds the outbox lock while writing or while giving credit back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrymq_core::connections::Counters;
use ferrymq_core::message::Message;
use ferrymq_core::queue::Consumer;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::codec::content::put_content;
use crate::codec::frame::{AmqpFrame, FRAME_MIN_SIZE};
use crate::codec::method::put_deliver;

/// Bytes of non-delivery frames that may wait before the reader pauses.
pub const CONTROL_LIMIT: usize = 1 << 20;
/// The writer hands a batch to the socket once it has encoded this much.
const BATCH_BYTES: usize = 256 * 1024;

/// A delivery waiting to be encoded and written.
#[derive(Debug)]
pub struct OutDelivery {
    pub channel: u16,
    /// Set when the channel closes: its pending deliveries are skipped (they were
    /// requeued by the close).
    pub channel_closed: Arc<AtomicBool>,
    pub consumer: Arc<Consumer>,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub message: Arc<Message>,
}

#[derive(Debug)]
enum Out {
    Frames(Bytes),
    Deliver(OutDelivery),
    /// Write everything before it, then close the socket.
    Close,
}

#[derive(Debug, Default)]
struct Pending {
    items: VecDeque<Out>,
    control_bytes: usize,
}

/// The FIFO between a connection's producers and its writer task.
#[derive(Debug)]
pub struct Outbox {
    pending: Mutex<Pending>,
    wake: Notify,
    drained: Notify,
    frame_max: AtomicU32,
    /// Heartbeat interval in ms (0: none); the writer sends one when idle this long.
    heartbeat_ms: AtomicU64,
    /// Cancelled when the socket can no longer be written (or the writer finished).
    pub dead: CancellationToken,
    /// The registered connection's traffic counters, once it is open.
    counters: OnceLock<Arc<Counters>>,
}

impl Outbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            drained: Notify::new(),
            frame_max: AtomicU32::new(FRAME_MIN_SIZE),
            heartbeat_ms: AtomicU64::new(0),
            dead: CancellationToken::new(),
            counters: OnceLock::new(),
        })
    }

    /// Counts what the writer sends from now on into `counters`.
    pub fn attach_counters(&self, counters: Arc<Counters>) {
        let _ = self.counters.set(counters);
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_frame_max(&self, frame_max: u32) {
        self.frame_max.store(frame_max, Ordering::Relaxed);
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max.load(Ordering::Relaxed)
    }

    pub fn set_heartbeat(&self, interval: Duration) {
        let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Queues encoded frames.
    pub fn push_frames(&self, frames: Bytes) {
        if frames.is_empty() {
            return;
        }
        {
            let mut p = self.lock();
            p.control_bytes += frames.len();
            p.items.push_back(Out::Frames(frames));
        }
        self.wake.notify_one();
    }

    /// Queues a delivery without waking the writer (a queue batches, then calls
    /// [`Self::wake`]).
    pub fn push_delivery(&self, delivery: OutDelivery) {
        self.lock().items.push_back(Out::Deliver(delivery));
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks the writer to close the socket once everything queued so far is written.
    pub fn close(&self) {
        self.lock().items.push_back(Out::Close);
        self.wake.notify_one();
    }

    /// Whether control frames waiting to be written are under [`CONTROL_LIMIT`].
    pub fn has_space(&self) -> bool {
        self.lock().control_bytes < CONTROL_LIMIT
    }

    /// Waits until control frames waiting to be written are under [`CONTROL_LIMIT`].
    pub async fn wait_for_space(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.lock().control_bytes < CONTROL_LIMIT || self.dead.is_cancelled() {
                return;
            }
            tokio::select! {
                () = drained => {}
                () = self.dead.cancelled() => return,
            }
        }
    }

    /// Takes what is queued, up to about `BATCH_BYTES` of control frames.
    fn take_batch(&self, into: &mut Vec<Out>) {
        let mut p = self.lock();
        let mut bytes = 0;
        while let Some(item) = p.items.pop_front() {
            if let Out::Frames(f) = &item {
                bytes += f.len();
                p.control_bytes -= f.len();
            }
            let stop = matches!(item, Out::Close);
            into.push(item);
            if stop || bytes >= BATCH_BYTES || into.len() >= 4096 {
                break;
            }
        }
    }
}

/// Writes `buf` whole and flushes it: a TLS session may hold the last records back until
/// flushed (a TCP half's flush does nothing).
async fn write_out<W: AsyncWrite + Unpin>(socket: &mut W, buf: &[u8]) -> std::io::Result<()> {
    socket.write_all(buf).await?;
    socket.flush().await
}

/// Writes the outbox to the socket until it closes or fails.
pub async fn run_writer<W: AsyncWrite + Unpin>(outbox: Arc<Outbox>, mut socket: W) {
    let mut batch = Vec::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut credits: Vec<(Arc<Consumer>, u32)> = Vec::new();
    loop {
        let notified = outbox.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        outbox.take_batch(&mut batch);
        if batch.is_empty() {
            let heartbeat = outbox.heartbeat_ms.load(Ordering::Relaxed);
            let timed_out = if heartbeat == 0 {
                tokio::select! {
                    () = &mut notified => false,
                    () = outbox.dead.cancelled() => return,
                }
            } else {
                tokio::select! {
                    () = &mut notified => false,
                    () = tokio::time::sleep(Duration::from_millis(heartbeat)) => true,
                    () = outbox.dead.cancelled() => return,
                }
            };
            if timed_out {
                AmqpFrame::encode_heartbeat(&mut buf);
                if write_out(&mut socket, &buf).await.is_err() {
                    outbox.dead.cancel();
                    return;
                }
                buf.clear();
            }
            continue;
        }
        let frame_max = outbox.frame_max();
        let mut close = false;
        for item in batch.drain(..) {
            match item {
                Out::Frames(frames) => buf.extend_from_slice(&frames),
                Out::Deliver(d) => {
                    if !d.channel_closed.load(Ordering::Acquire) {
                        put_deliver(
                            &mut buf,
                            d.channel,
                            d.consumer.tag(),
                            d.delivery_tag,
                            d.redelivered,
                            &d.message.exchange,
                            &d.message.routing_key,
                        );
                        put_content(&mut buf, d.channel, &d.message, frame_max);
                    }
                    match credits
                        .iter_mut()
                        .find(|(c, _)| Arc::ptr_eq(c, &d.consumer))
                    {
                        Some((_, n)) => *n += 1,
                        None => credits.push((d.consumer, 1)),
                    }
                }
                Out::Close => close = true,
            }
        }
        if !buf.is_empty() && write_out(&mut socket, &buf).await.is_err() {
            outbox.dead.cancel();
            return;
        }
        if let Some(counters) = outbox.counters.get() {
            counters.sent(buf.len(), 1);
        }
        buf.clear();
        if buf.capacity() > 4 * BATCH_BYTES {
            buf = BytesMut::with_capacity(64 * 1024);
        }
        outbox.drained.notify_waiters();
        for (consumer, n) in credits.drain(..) {
            consumer.window.release(n);
        }
        if close {
            let _ = socket.shutdown().await;
            outbox.dead.cancel();
            return;
        }
    }
}
