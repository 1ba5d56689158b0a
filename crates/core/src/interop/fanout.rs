//! Topic -> exchange fan-out: every record appended to a stream that names a fan-out
//! exchange (topic config `ferrymq.fanout.exchange`, stream queue argument
//! `x-ferrymq-fanout-exchange`) is also published to that exchange of the stream's vhost, its
//! key as routing key, so Kafka records can feed AMQP work queues.
//!
//! ```text
//! manager (one per vhost): follows Streams::watch_changes, runs one follower per partition
//!                          of each stream with a fan-out exchange
//! follower: next position ──read──> records ──mapping──> route through the exchange
//!           ──> queue.publish (waits while a queue is full) ──> journal waits
//!           ──> position stored in the definitions journal (kind Setting,
//!               key fanout/<vhost>/<stream>/<partition>)
//! ```
//! Delivery is at-least-once: the position is stored only after the messages it covers are
//! in their queues (and, for durable queues and persistent messages, on disk), so a crash
//! replays at most what followed the last stored position. Records from Kafka producers are
//! published persistent (delivery mode 2), so durable queues journal them.
//!
//! Back-pressure: a queue that refuses a message (`x-overflow` reject-publish) or holds more
//! than [`QUEUE_MAX_READY`] ready messages or [`QUEUE_MAX_BYTES`] bytes pauses its
//! follower, which retries that queue until it takes the message. A missing exchange
//! pauses the follower until it is declared. Streams bound to the exchange are skipped (a
//! stream fanning out into itself would never end).
//!
//! # Invariants
//! - A follower starts where its stored position says, or at the partition's end when fan-out
//!   is newly configured (that start is stored before anything is published).
//! - Records of one partition are published in offset order.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::mapping::record_to_message;
use crate::exchange::Exchange;
use crate::message::Message;
use crate::queue::{DurabilityWait, Enqueued, Queue};
use crate::store::Kind;
use crate::stream::batch::RecordBatch;
use crate::stream::records;
use crate::stream::txn::Verdict;
use crate::stream::{Partition, Stream, StreamId};
use crate::{VHost, layout};

/// A queue holding this many ready messages pauses the fan-out into it.
pub const QUEUE_MAX_READY: u32 = 10_000;
/// A queue holding this many bytes pauses the fan-out into it.
pub const QUEUE_MAX_BYTES: u64 = 64 << 20;
/// Bytes read per step.
const READ_BYTES: usize = 256 * 1024;
/// Decompression bound per batch (larger batches are skipped and logged).
const DECOMPRESS_LIMIT: usize = 64 << 20;
/// The stored position is brought up to date at most this often while records flow.
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// Longest pause between retries while blocked.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Position {
    stream: StreamId,
    next: u64,
}

fn position_key(vhost: &str, stream: &str, partition: u32) -> String {
    format!(
        "fanout/{}/{}/{partition}",
        layout::encode_name(vhost),
        layout::encode_name(stream)
    )
}

/// Stops a follower.
#[derive(Debug, Default)]
struct Stop {
    stopped: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl Stop {
    fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sleeps `d` unless stopped first; `false` if stopped.
    async fn sleep(&self, d: Duration) -> bool {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_stopped() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => !self.is_stopped(),
            () = notified => false,
        }
    }
}

impl VHost {
    /// Starts the fan-out manager of this vhost (idempotent per call site: call once, from
    /// the runtime). It ends when the vhost is dropped.
    pub fn start_fanout(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(manage(Arc::downgrade(self)));
    }
}

/// Keeps one follower per partition of every stream with a fan-out exchange.
async fn manage(vhost: Weak<VHost>) {
    let Some(mut changes) = vhost.upgrade().map(|v| v.streams().watch_changes()) else {
        return;
    };
    let mut followers: HashMap<(StreamId, u32), Arc<Stop>> = HashMap::new();
    loop {
        changes.borrow_and_update();
        let Some(vh) = vhost.upgrade() else {
            break;
        };
        reconcile(&vh, &mut followers).await;
        drop(vh);
        if changes.changed().await.is_err() {
            break;
        }
    }
    for stop in followers.values() {
        stop.stop();
    }
}

async fn reconcile(vhost: &Arc<VHost>, followers: &mut HashMap<(StreamId, u32), Arc<Stop>>) {
    let streams = vhost.streams();
    let mut wanted = Vec::new();
    for stream in streams.list() {
        if stream.config().fanout_exchange.is_none() {
            continue;
        }
        for partition in stream.partitions().iter() {
            wanted.push((stream.clone(), Arc::clone(partition)));
        }
    }
    // Followers of streams that are gone or no longer fan out: stop, forget the position.
    let keep: Vec<(StreamId, u32)> = wanted.iter().map(|(s, p)| (s.id(), p.index())).collect();
    let gone: Vec<(StreamId, u32)> = followers
        .keys()
        .filter(|k| !keep.contains(k))
        .copied()
        .collect();
    for key in gone {
        if let Some(stop) = followers.remove(&key) {
            stop.stop();
        }
    }
    forget_unused_positions(vhost, &wanted).await;
    for (stream, partition) in wanted {
        let key = (stream.id(), partition.index());
        if followers.contains_key(&key) {
            continue;
        }
        let stop = Arc::new(Stop::default());
        followers.insert(key, Arc::clone(&stop));
        tokio::spawn(follow(Arc::downgrade(vhost), stream, partition, stop));
    }
}

/// Removes stored positions of streams (by name) that no longer fan out.
async fn forget_unused_positions(vhost: &VHost, wanted: &[(Arc<Stream>, Arc<Partition>)]) {
    let store = Arc::clone(vhost.streams().definitions());
    let prefix = format!("fanout/{}/", layout::encode_name(vhost.name()));
    let stale: Vec<String> = store
        .keys(Kind::Setting)
        .into_iter()
        .filter(|key| key.starts_with(&prefix))
        .filter(|key| {
            !wanted
                .iter()
                .any(|(s, p)| *key == position_key(vhost.name(), s.name(), p.index()))
        })
        .collect();
    for key in stale {
        match store.remove(Kind::Setting, &key) {
            Ok(Some(pending)) => {
                let _ = pending.durable().await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(key, "could not forget a fan-out position: {e}"),
        }
    }
}

/// Follows one partition, publishing each record to the fan-out exchange.
async fn follow(
    vhost: Weak<VHost>,
    stream: Arc<Stream>,
    partition: Arc<Partition>,
    stop: Arc<Stop>,
) {
    let Some(vh) = vhost.upgrade() else {
        return;
    };
    let store = Arc::clone(vh.streams().definitions());
    let key = position_key(vh.name(), stream.name(), partition.index());
    drop(vh);
    let stored = store
        .get(Kind::Setting, &key)
        .and_then(|bytes| {
            crate::store::DefinitionStore::decode_json::<Position>(Kind::Setting, &key, &bytes).ok()
        })
        .filter(|p| p.stream == stream.id());
    let mut next = match stored {
        Some(position) => position.next,
        None => {
            let start = partition.high_watermark();
            if !commit(&store, &key, stream.id(), start).await {
                return;
            }
            start
        }
    };
    let mut committed = next;
    let mut last_commit = tokio::time::Instant::now();
    tracing::info!(
        stream = stream.name(),
        partition = partition.index(),
        from = next,
        "fan-out started"
    );
    loop {
        let data = partition.changed();
        let stopped = stop.notify.notified();
        tokio::pin!(data, stopped);
        data.as_mut().enable();
        stopped.as_mut().enable();
        if stop.is_stopped() || stream.is_deleted() {
            break;
        }
        let Some(exchange_name) = stream.config().fanout_exchange.clone() else {
            break;
        };
        let start = partition.log_start_offset();
        if next < start {
            tracing::warn!(
                stream = stream.name(),
                partition = partition.index(),
                from = next,
                to = start,
                "fan-out fell behind retention; records were deleted before they were published"
            );
            next = start;
        }
        // Up to the last stable offset: an open transaction's records wait for its end.
        if next < partition.last_stable_offset() {
            match publish_from(&vhost, &stream, &partition, &exchange_name, next, &stop).await {
                Some(advanced) => next = advanced,
                None => break,
            }
            if next != committed && last_commit.elapsed() >= COMMIT_EVERY {
                if !commit(&store, &key, stream.id(), next).await {
                    break;
                }
                committed = next;
                last_commit = tokio::time::Instant::now();
            }
            continue;
        }
        // Caught up: make the position durable, then wait for more.
        if next != committed {
            if !commit(&store, &key, stream.id(), next).await {
                break;
            }
            committed = next;
            last_commit = tokio::time::Instant::now();
        }
        tokio::select! {
            () = data => {}
            () = stopped => {}
        }
    }
    // A follower stopped while the fan-out stays configured (shutdown) keeps its progress.
    if next != committed && !stream.is_deleted() && stream.config().fanout_exchange.is_some() {
        let _ = commit(&store, &key, stream.id(), next).await;
    }
}

/// Records where the fan-out of one partition starts, as the fan-out is configured (stream
/// creation, a config change, new partitions), so that what is appended from then on is
/// published even if the broker stops before its follower runs. Not flushed: the caller
/// flushes the store before it answers.
pub(crate) fn record_start(
    store: &crate::store::DefinitionStore,
    vhost: &str,
    stream: &str,
    id: StreamId,
    partition: u32,
    next: u64,
) -> Result<(), crate::Error> {
    let pending = store.put_json(
        Kind::Setting,
        &position_key(vhost, stream, partition),
        &Position { stream: id, next },
    )?;
    drop(pending);
    Ok(())
}

async fn commit(
    store: &crate::store::DefinitionStore,
    key: &str,
    stream: StreamId,
    next: u64,
) -> bool {
    let result = match store.put_json(Kind::Setting, key, &Position { stream, next }) {
        Ok(pending) => pending.durable().await,
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::error!(key, "could not store the fan-out position: {e}");
    }
    result.is_ok()
}

/// Publishes the records from `next` on (one read's worth); the new position, or `None` if
/// the follower must stop.
async fn publish_from(
    vhost: &Weak<VHost>,
    stream: &Arc<Stream>,
    partition: &Arc<Partition>,
    exchange_name: &str,
    mut next: u64,
    stop: &Stop,
) -> Option<u64> {
    let stored = match partition.read(next, READ_BYTES) {
        Ok(stored) => stored,
        Err(crate::Error::StreamNotFound { .. }) => return None,
        Err(crate::Error::OffsetOutOfRange { start, .. }) => return Some(start.max(next)),
        Err(e) => {
            tracing::error!(
                stream = stream.name(),
                partition = partition.index(),
                "fan-out read failed: {e}"
            );
            return stop.sleep(MAX_BACKOFF).await.then_some(next);
        }
    };
    let mut waits: Vec<DurabilityWait> = Vec::new();
    // Committed records only, as AMQP stream consumers see them.
    let filter = partition.committed_filter(next);
    for bytes in stored {
        let Ok(batch) = RecordBatch::from_stored(bytes) else {
            continue;
        };
        let batch_end = u64::try_from(batch.base_offset())
            .unwrap_or(0)
            .saturating_add(u64::from(batch.span()));
        match filter.verdict(&batch) {
            Verdict::Deliver => {}
            Verdict::Stop => break,
            Verdict::Skip => {
                next = next.max(batch_end);
                continue;
            }
        }
        let mut decoded = Vec::new();
        let from = next;
        if let Err(e) = records::for_each(&batch, DECOMPRESS_LIMIT, |record| {
            if u64::try_from(record.offset).is_ok_and(|o| o >= from) {
                decoded.push(record);
            }
            true
        }) {
            tracing::error!(
                stream = stream.name(),
                partition = partition.index(),
                offset = batch.base_offset(),
                "fan-out skips a batch it cannot read: {e}"
            );
            next = next.max(batch_end);
            continue;
        }
        for record in decoded {
            let exchange = exchange(vhost, exchange_name, stop).await?;
            let mut message = record_to_message(&record);
            message.exchange = exchange_name.to_owned();
            if message.properties.delivery_mode.is_none() {
                message.properties.delivery_mode = Some(2);
            }
            let vh = vhost.upgrade()?;
            let routed = vh.route(&exchange, &message);
            drop(vh);
            let message = Arc::new(message.without_bcc().unwrap_or(message));
            for queue in &routed.queues {
                waits.extend(offer(queue, &message, stop).await?);
            }
            next = u64::try_from(record.offset)
                .unwrap_or(next)
                .saturating_add(1);
        }
    }
    for wait in waits {
        if !wait.await {
            tracing::error!(
                stream = stream.name(),
                partition = partition.index(),
                "a fanned-out message could not be made durable by its queue"
            );
        }
    }
    Some(next)
}

/// The fan-out exchange, waiting (with backoff) while it does not exist.
async fn exchange(vhost: &Weak<VHost>, name: &str, stop: &Stop) -> Option<Arc<Exchange>> {
    let mut backoff = Duration::from_millis(20);
    let mut warned = false;
    loop {
        let found = vhost.upgrade()?.exchange(name);
        match found {
            Ok(exchange) => return Some(exchange),
            Err(e) => {
                if !warned {
                    tracing::warn!(exchange = name, "fan-out paused: {e}");
                    warned = true;
                }
                if !stop.sleep(backoff).await {
                    return None;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Puts `message` into `queue`, waiting while the queue is full; its durability wait.
async fn offer(
    queue: &Arc<Queue>,
    message: &Arc<Message>,
    stop: &Stop,
) -> Option<Option<DurabilityWait>> {
    let mut backoff = Duration::from_millis(5);
    loop {
        if queue.is_deleted() {
            return Some(None);
        }
        let full = queue.message_count() >= QUEUE_MAX_READY || queue.memory() >= QUEUE_MAX_BYTES;
        if !full {
            match queue.publish(Arc::clone(message)) {
                Enqueued::Accepted { durable } => return Some(durable),
                Enqueued::Rejected => {}
            }
        }
        if !stop.sleep(backoff).await {
            return None;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::exchange::{ExchangeKind, ExchangeSpec};
    use crate::message::{FieldTable, FieldValue, Properties};
    use crate::queue::QueueSpec;
    use crate::stream::StreamConfig;
    use crate::{Broker, BrokerConfig, ResourceKind};

    fn setup(vhost: &Arc<VHost>, queue_args: &[(&str, FieldValue)]) -> Arc<Queue> {
        vhost
            .declare_exchange(ExchangeSpec::new("tasks", ExchangeKind::Direct), false)
            .unwrap();
        let mut spec = QueueSpec::new("work");
        for (k, v) in queue_args {
            spec.arguments.push(*k, v.clone());
        }
        let queue = vhost.declare_queue(spec, false, 1).unwrap().queue;
        vhost
            .bind(
                "tasks",
                "work",
                ResourceKind::Queue,
                "k",
                &FieldTable::new(),
                1,
            )
            .unwrap();
        queue
    }

    fn fanning(vhost: &Arc<VHost>) -> Arc<Stream> {
        match vhost.streams().get("t") {
            Some(stream) => stream,
            None => vhost
                .streams()
                .create(
                    "t",
                    1,
                    StreamConfig {
                        fanout_exchange: Some("tasks".into()),
                        ..StreamConfig::default()
                    },
                )
                .unwrap(),
        }
    }

    async fn append(stream: &Stream, bodies: &[&str]) {
        for body in bodies {
            let message = Message::new(
                "",
                "k",
                Properties::default(),
                Bytes::from(body.to_string()),
            );
            let appended = stream.append_message(&message).unwrap();
            if let Some(wait) = appended.durability() {
                assert!(wait.await);
            }
        }
    }

    async fn drain(queue: &Arc<Queue>, n: usize) -> Vec<Arc<Message>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < n && tokio::time::Instant::now() < deadline {
            match queue.get(true).unwrap() {
                Some((entry, _)) => got.push(entry.message),
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        got
    }

    fn bodies(messages: &[Arc<Message>]) -> Vec<String> {
        messages
            .iter()
            .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
            .collect()
    }

    async fn stored_position(vhost: &VHost, until: u64) {
        let key = position_key(vhost.name(), "t", 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let next = vhost
                .streams()
                .definitions()
                .get(Kind::Setting, &key)
                .and_then(|b| serde_json::from_slice::<Position>(&b).ok())
                .map(|p| p.next);
            if next == Some(until) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "position {next:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn records_reach_the_exchange_and_resume_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
            let vhost = broker.vhost("/").unwrap();
            let queue = setup(&vhost, &[]);
            let stream = fanning(&vhost);
            vhost.start_fanout();
            // Records appended before the follower starts are not fanned out: the position
            // starts at the end once fan-out is configured.
            stored_position(&vhost, 0).await;
            append(&stream, &["a", "b", "c"]).await;
            let got = drain(&queue, 3).await;
            assert_eq!(bodies(&got), ["a", "b", "c"]);
            let first = &got[0];
            assert_eq!(first.exchange, "tasks");
            assert_eq!(first.routing_key, "k");
            stored_position(&vhost, 3).await;
            broker.shutdown().await.unwrap();
        }
        let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
        let vhost = broker.vhost("/").unwrap();
        let queue = setup(&vhost, &[]);
        let stream = fanning(&vhost);
        vhost.start_fanout();
        append(&stream, &["d"]).await;
        let got = drain(&queue, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(bodies(&got), ["d"], "nothing skipped");
        assert_eq!(queue.message_count(), 0, "nothing replayed");
    }

    #[tokio::test]
    async fn a_full_queue_and_a_missing_exchange_pause_without_losing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
        let vhost = broker.vhost("/").unwrap();
        let stream = fanning(&vhost);
        vhost.start_fanout();
        stored_position(&vhost, 0).await;
        append(&stream, &["1", "2"]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The exchange appears late; the queue takes two at a time.
        let queue = setup(
            &vhost,
            &[
                ("x-max-length", FieldValue::I32(2)),
                ("x-overflow", FieldValue::string("reject-publish")),
            ],
        );
        append(&stream, &["3", "4", "5"]).await;
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 5 && tokio::time::Instant::now() < deadline {
            assert!(queue.message_count() <= 2);
            got.extend(drain(&queue, 1).await);
        }
        assert_eq!(bodies(&got), ["1", "2", "3", "4", "5"]);
        // Without a delivery mode, fanned-out messages are persistent (durable queues keep them).
        assert!(got.iter().all(|m| m.properties.delivery_mode == Some(2)));
    }

    fn position(vhost: &VHost, partition: u32) -> Option<u64> {
        let key = position_key(vhost.name(), "t", partition);
        vhost
            .streams()
            .definitions()
            .get(Kind::Setting, &key)
            .and_then(|b| serde_json::from_slice::<Position>(&b).ok())
            .map(|p| p.next)
    }

    #[tokio::test]
    async fn positions_are_recorded_when_fan_out_is_configured_not_when_followed() {
        // No follower runs here (start_fanout is never called): what is appended after the
        // configuration is covered even if the broker stops before a follower starts.
        let dir = tempfile::tempdir().unwrap();
        {
            let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
            let vhost = broker.vhost("/").unwrap();
            let stream = fanning(&vhost);
            assert_eq!(
                position(&vhost, 0),
                Some(0),
                "created with fan-out: from the start"
            );
            append(&stream, &["a", "b"]).await;
            vhost.streams().add_partitions(&stream, 2).unwrap();
            assert_eq!(
                position(&vhost, 1),
                Some(0),
                "new partitions: from their start"
            );
            broker.shutdown().await.unwrap();
        }
        let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
        let vhost = broker.vhost("/").unwrap();
        assert_eq!(position(&vhost, 0), Some(0), "durable");
        let queue = setup(&vhost, &[]);
        vhost.start_fanout();
        assert_eq!(bodies(&drain(&queue, 2).await), ["a", "b"]);

        // Switched on later: from the log end at that moment.
        let plain = vhost
            .streams()
            .create("p", 1, StreamConfig::default())
            .unwrap();
        append(&plain, &["old"]).await;
        let config = StreamConfig {
            fanout_exchange: Some("tasks".into()),
            ..StreamConfig::default()
        };
        vhost.streams().set_config(&plain, config).unwrap();
        let key = position_key("/", "p", 0);
        let stored = vhost
            .streams()
            .definitions()
            .get(Kind::Setting, &key)
            .and_then(|b| serde_json::from_slice::<Position>(&b).ok());
        assert_eq!(stored.map(|p| p.next), Some(1));
    }

    #[tokio::test]
    async fn turning_fan_out_off_stops_and_forgets_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
        let vhost = broker.vhost("/").unwrap();
        let queue = setup(&vhost, &[]);
        let stream = fanning(&vhost);
        vhost.start_fanout();
        stored_position(&vhost, 0).await;
        vhost
            .streams()
            .set_config(&stream, StreamConfig::default())
            .unwrap();
        let key = position_key("/", "t", 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while vhost
            .streams()
            .definitions()
            .get(Kind::Setting, &key)
            .is_some()
        {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        append(&stream, &["x"]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(queue.message_count(), 0);
    }
}
