//! AMQP consumers of a stream: RabbitMQ's stream-queue consumer semantics over the log.
//!
//! Each consumer is a task that follows the stream's partitions from its start position,
//! decodes batches (any codec) and hands one message per record to the consumer's sink while
//! its credit allows. Acknowledgements only give credit back; nothing is removed from the
//! log, and every consumer reads independently.
//!
//! ```text
//! x-stream-offset  first | last | next | offset n | timestamp T | interval "10m"
//! x-stream-partition (optional) read only that partition
//! per partition: cursor (next offset) + decoded records not yet delivered
//! loop: refill empty cursors below the high watermark -> deliver round-robin over the
//!       partitions while credit lasts -> wait for data (the stream's wake-up), credit
//!       (the three credits' wake-ups) or cancellation
//! delivery headers: x-stream-offset (long); x-stream-partition (int) when partitions > 1
//! ```
//!
//! # Invariants
//! - A record is delivered at most once per consumer, in offset order within its partition.
//! - Every delivery took the consumer's credit first (window, prefetch, channel); what a
//!   consumer holds decoded is bounded by one read per partition.
//! - The task never holds a lock across an `.await`; wake-ups are armed before state is
//!   checked, so none is missed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::mapping::record_to_message;
use super::publish::now_ms;
use super::stream_queue::parse_max_age;
use crate::Error;
use crate::message::FieldValue;
use crate::queue::Consumer;
use crate::stream::batch::RecordBatch;
use crate::stream::records::{self, Record};
use crate::stream::txn::Verdict;
use crate::stream::{Partition, Stream};

/// Bytes read from a partition per refill (at least one batch is always read).
const READ_BYTES: usize = 256 * 1024;
/// A batch whose records decompress to more than this is skipped (and logged).
const DECOMPRESS_LIMIT: usize = 64 << 20;
/// Deliveries handed over before the sink is flushed and the task yields.
const DELIVERY_BURST: usize = 256;

/// Where a consumer starts reading (`x-stream-offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first record still stored.
    First,
    /// The last batch written (RabbitMQ: the last chunk).
    Last,
    /// Only records written from now on (the default).
    Next,
    /// This offset (records before it are skipped, even if it is not written yet).
    Offset(u64),
    /// The first record whose timestamp (ms) is at least this.
    Timestamp(i64),
}

impl StartAt {
    /// Parses `x-stream-offset` as RabbitMQ does: `first`, `last`, `next` (of any string
    /// type), an integer offset (negative: the first record), an AMQP timestamp (seconds), or
    /// an interval string such as `10m` meaning that long ago.
    pub fn parse(value: Option<&FieldValue>) -> Result<Self, String> {
        let Some(value) = value else {
            return Ok(Self::Next);
        };
        let text = match value {
            FieldValue::LongString(b) | FieldValue::ByteArray(b) => {
                Some(String::from_utf8_lossy(b).into_owned())
            }
            _ => None,
        };
        match (value, text.as_deref()) {
            (_, Some("first")) => Ok(Self::First),
            (_, Some("last")) => Ok(Self::Last),
            (_, Some("next")) => Ok(Self::Next),
            (FieldValue::LongString(_), Some(interval)) => {
                let ms = parse_max_age(interval).ok_or_else(|| {
                    format!("invalid offset specification {interval:?}: expected first, last, next, an offset, a timestamp or an interval such as \"10m\"")
                })?;
                Ok(Self::Timestamp(
                    now_ms().saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)),
                ))
            }
            (FieldValue::Timestamp(seconds), _) => Ok(Self::Timestamp(
                i64::try_from(*seconds)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000),
            )),
            (other, _) => match other.as_i64() {
                Some(n) => Ok(u64::try_from(n).map_or(Self::First, Self::Offset)),
                None => Err(format!(
                    "invalid offset specification of type {}",
                    other.type_name()
                )),
            },
        }
    }
}

/// One partition being followed.
#[derive(Debug)]
struct Cursor {
    partition: Arc<Partition>,
    /// The next offset to deliver.
    next: u64,
    /// Decoded records at or after `next`, not yet delivered.
    pending: VecDeque<Record>,
}

impl Cursor {
    fn new(partition: Arc<Partition>, start: StartAt) -> Self {
        let next = start_offset(&partition, start);
        Self {
            partition,
            next,
            pending: VecDeque::new(),
        }
    }

    /// Reads and decodes what follows `next`, if anything is visible. `Err` only when the
    /// stream is gone.
    fn refill(&mut self, stream: &str) -> Result<(), Error> {
        if !self.pending.is_empty() {
            return Ok(());
        }
        // Committed records only: nothing past the last stable offset, no transaction markers,
        // nothing of an aborted transaction.
        let filter = self.partition.committed_filter(self.next);
        if self.next >= filter.last_stable() {
            return Ok(());
        }
        let stored = match self.partition.read(self.next, READ_BYTES) {
            Ok(stored) => stored,
            // Retention deleted what we were about to read: go on from what is left.
            Err(Error::OffsetOutOfRange { start, end, .. }) => {
                self.next = if self.next < start { start } else { end };
                return Ok(());
            }
            Err(e @ Error::StreamNotFound { .. }) => return Err(e),
            Err(e) => {
                tracing::error!(
                    stream,
                    partition = self.partition.index(),
                    "stream read failed: {e}"
                );
                return Ok(());
            }
        };
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
                    if self.pending.is_empty() {
                        self.next = self.next.max(batch_end);
                    }
                    continue;
                }
            }
            let next = self.next;
            let decoded = records::for_each(&batch, DECOMPRESS_LIMIT, |record| {
                if u64::try_from(record.offset).is_ok_and(|o| o >= next) {
                    self.pending.push_back(record);
                }
                true
            });
            if let Err(e) = decoded {
                tracing::error!(
                    stream,
                    partition = self.partition.index(),
                    offset = batch.base_offset(),
                    "skipping a batch AMQP consumers cannot read: {e}"
                );
                self.pending
                    .retain(|r| u64::try_from(r.offset).is_ok_and(|o| o < batch_end));
                if self.pending.is_empty() {
                    self.next = self.next.max(batch_end);
                }
            }
        }
        Ok(())
    }
}

fn start_offset(partition: &Partition, start: StartAt) -> u64 {
    let (first, end) = (partition.log_start_offset(), partition.last_stable_offset());
    match start {
        StartAt::First => first,
        StartAt::Next => end,
        StartAt::Offset(n) => n.max(first),
        StartAt::Last => {
            if end <= first {
                return end;
            }
            // The entry holding the last visible offset starts the last batch.
            match partition.read(end - 1, 1) {
                Ok(stored) => stored
                    .first()
                    .and_then(|b| RecordBatch::from_stored(b.clone()).ok())
                    .and_then(|b| u64::try_from(b.base_offset()).ok())
                    .unwrap_or(first)
                    .max(first),
                Err(_) => first,
            }
        }
        StartAt::Timestamp(ts) => match partition.offset_for_timestamp(ts) {
            Ok(Some(found)) => found.offset,
            Ok(None) => end,
            Err(_) => first,
        },
    }
}

/// A running AMQP consumer of a stream. Dropping the handle does not stop it: call
/// [`StreamConsumer::cancel`].
#[derive(Debug)]
pub struct StreamConsumer {
    stream: Arc<Stream>,
    consumer: Arc<Consumer>,
    /// Set by `cancel`; deliveries are handed over under this lock, so none follows it.
    stopped: Mutex<bool>,
    stop: Notify,
}

impl StreamConsumer {
    /// Starts reading `stream` for `consumer` (which must not be `no_ack`), all partitions
    /// or only `partition`. Needs a tokio runtime. Call it once the consumer is announced
    /// (consume-ok sent): deliveries may start at once.
    pub fn start(
        stream: Arc<Stream>,
        consumer: Arc<Consumer>,
        start: StartAt,
        partition: Option<u32>,
    ) -> Result<Arc<Self>, Error> {
        if let Some(p) = partition
            && p >= stream.partition_count()
        {
            return Err(Error::PreconditionFailed {
                reason: format!(
                    "stream '{}' has no partition {p} (it has {})",
                    stream.name(),
                    stream.partition_count()
                ),
            });
        }
        let handle = Arc::new(Self {
            stream,
            consumer,
            stopped: Mutex::new(false),
            stop: Notify::new(),
        });
        handle.stream.add_reader(1);
        let running = Arc::clone(&handle);
        tokio::spawn(async move {
            running.run(start, partition).await;
            running.stream.add_reader(-1);
        });
        Ok(handle)
    }

    pub fn consumer(&self) -> &Arc<Consumer> {
        &self.consumer
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    fn stopped(&self) -> std::sync::MutexGuard<'_, bool> {
        self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the consumer: once this returns, nothing more is delivered.
    pub fn cancel(&self) {
        *self.stopped() = true;
        self.stop.notify_waiters();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped()
    }

    /// Hands one record over unless cancelled meanwhile; `false` if cancelled.
    fn deliver(&self, record: &Record, partition: u32, multi: bool) -> bool {
        let mut message = record_to_message(record);
        let headers = message
            .properties
            .headers
            .get_or_insert_with(Default::default);
        headers.set("x-stream-offset", FieldValue::I64(record.offset));
        if multi {
            let index = i32::try_from(partition).unwrap_or(i32::MAX);
            headers.set("x-stream-partition", FieldValue::I32(index));
        }
        let stopped = self.stopped();
        if *stopped {
            return false;
        }
        self.consumer
            .sink
            .deliver_message(&self.consumer, Arc::new(message));
        true
    }

    async fn run(&self, start: StartAt, only: Option<u32>) {
        let name = self.stream.name().to_owned();
        let mut cursors: Vec<Cursor> = match only {
            Some(p) => self
                .stream
                .partition(p)
                .map(|p| Cursor::new(p, start))
                .into_iter()
                .collect(),
            None => self
                .stream
                .partitions()
                .iter()
                .map(|p| Cursor::new(Arc::clone(p), start))
                .collect(),
        };
        let mut round_robin = 0usize;
        loop {
            let data = self.stream.changed();
            let window = self.consumer.window.changed();
            let own = self.consumer.own.changed();
            let channel = self.consumer.channel.changed();
            let stop = self.stop.notified();
            tokio::pin!(data, window, own, channel, stop);
            data.as_mut().enable();
            window.as_mut().enable();
            own.as_mut().enable();
            channel.as_mut().enable();
            stop.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            if self.stream.is_deleted() {
                self.consumer.sink.cancelled(&self.consumer);
                return;
            }
            let partitions = self.stream.partitions();
            let multi = partitions.len() > 1;
            // Partitions added since the consumer started (CreatePartitions) are read from
            // their start.
            if only.is_none() {
                for p in partitions.iter().skip(cursors.len()) {
                    cursors.push(Cursor::new(Arc::clone(p), StartAt::First));
                }
            }
            for cursor in &mut cursors {
                if let Err(Error::StreamNotFound { .. }) = cursor.refill(&name) {
                    self.consumer.sink.cancelled(&self.consumer);
                    return;
                }
            }
            let mut delivered = 0;
            while delivered < DELIVERY_BURST {
                let n = cursors.len().max(1);
                let Some(i) = (0..n)
                    .map(|k| (round_robin + k) % n)
                    .find(|i| cursors.get(*i).is_some_and(|c| !c.pending.is_empty()))
                else {
                    break;
                };
                if !self.consumer.try_take_credit() {
                    break;
                }
                let Some(cursor) = cursors.get_mut(i) else {
                    break;
                };
                let Some(record) = cursor.pending.pop_front() else {
                    break;
                };
                cursor.next = u64::try_from(record.offset).unwrap_or(0).saturating_add(1);
                if !self.deliver(&record, cursor.partition.index(), multi) {
                    return;
                }
                delivered += 1;
                round_robin = i + 1;
                if cursor.pending.is_empty() {
                    let _ = cursor.refill(&name);
                }
            }
            if delivered > 0 {
                self.consumer.sink.flush();
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = data => {}
                () = window => {}
                () = own => {}
                () = channel => {}
                () = stop => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::message::{Message, Properties};
    use crate::queue::{ConsumerSpec, Credit, Delivery, DeliverySink};
    use crate::stream::{StreamConfig, Streams};
    use crate::{Broker, BrokerConfig};

    #[derive(Debug, Default)]
    struct Sink {
        got: StdMutex<Vec<Arc<Message>>>,
        cancelled: AtomicBool,
        woken: Notify,
    }

    use std::sync::atomic::AtomicBool;

    impl DeliverySink for Sink {
        fn deliver(&self, _delivery: Delivery) {
            unreachable!("streams deliver messages")
        }
        fn deliver_message(&self, _consumer: &Arc<Consumer>, message: Arc<Message>) {
            self.got.lock().unwrap().push(message);
        }
        fn flush(&self) {
            self.woken.notify_waiters();
        }
        fn cancelled(&self, _consumer: &Arc<Consumer>) {
            self.cancelled
                .store(true, std::sync::atomic::Ordering::Release);
            self.woken.notify_waiters();
        }
    }

    impl Sink {
        /// What arrived so far, after a short pause (for "nothing more" checks).
        async fn settled(&self) -> Vec<(String, i64, Option<i32>)> {
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.wait_for(0).await
        }

        /// Waits (bounded) until `n` messages arrived; returns (body, offset, partition).
        async fn wait_for(&self, n: usize) -> Vec<(String, i64, Option<i32>)> {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let woken = self.woken.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                if self.got.lock().unwrap().len() >= n {
                    break;
                }
                if tokio::time::timeout_at(deadline, woken).await.is_err() {
                    break;
                }
            }
            self.got
                .lock()
                .unwrap()
                .iter()
                .map(|m| {
                    let h = m.properties.headers.as_ref().unwrap();
                    let offset = match h.get("x-stream-offset") {
                        Some(FieldValue::I64(o)) => *o,
                        other => panic!("{other:?}"),
                    };
                    let partition = match h.get("x-stream-partition") {
                        Some(FieldValue::I32(p)) => Some(*p),
                        None => None,
                        other => panic!("{other:?}"),
                    };
                    (
                        String::from_utf8(m.body.to_vec()).unwrap(),
                        offset,
                        partition,
                    )
                })
                .collect()
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        streams: Arc<Streams>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
        let streams = Arc::clone(broker.vhost("/").unwrap().streams());
        Fixture { _dir: dir, streams }
    }

    async fn publish(stream: &Stream, key: &str, bodies: &[&str]) {
        for body in bodies {
            let appended = stream
                .append_message(&Message::new(
                    "",
                    key,
                    Properties::default(),
                    Bytes::from(body.to_string()),
                ))
                .unwrap();
            if let Some(wait) = appended.durability() {
                assert!(wait.await);
            }
        }
    }

    fn consumer(prefetch: u32) -> (Arc<Sink>, Arc<Consumer>) {
        let sink = Arc::new(Sink::default());
        let spec = ConsumerSpec {
            tag: "c".into(),
            no_ack: false,
            exclusive: false,
            priority: 0,
            owner: 1,
            channel: 1,
            arguments: crate::message::FieldTable::new(),
        };
        let consumer = Arc::new(Consumer::new(
            spec,
            prefetch,
            Arc::new(Credit::new(0)),
            1000,
            sink.clone(),
        ));
        (sink, consumer)
    }

    fn bodies(got: &[(String, i64, Option<i32>)]) -> Vec<&str> {
        got.iter().map(|(b, _, _)| b.as_str()).collect()
    }

    #[tokio::test]
    async fn credit_bounds_deliveries_and_acks_give_it_back() {
        let f = fixture();
        let stream = f.streams.create("s", 1, StreamConfig::default()).unwrap();
        publish(&stream, "k", &["a", "b", "c", "d", "e"]).await;
        let (sink, c) = consumer(2);
        let reader =
            StreamConsumer::start(stream.clone(), c.clone(), StartAt::First, None).unwrap();
        sink.wait_for(2).await;
        let got = sink.settled().await;
        assert_eq!(got.len(), 2, "prefetch 2: {got:?}");
        assert_eq!(stream.reader_count(), 1);
        c.own.release(2);
        let got = sink.wait_for(4).await;
        assert_eq!(bodies(&got), ["a", "b", "c", "d"]);
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(
            got.iter().all(|g| g.2.is_none()),
            "one partition: no partition header"
        );
        reader.cancel();
        c.own.release(2);
        publish(&stream, "k", &["f"]).await;
        assert_eq!(sink.settled().await.len(), 4, "nothing after cancel");
    }

    #[tokio::test]
    async fn start_positions() {
        let f = fixture();
        let stream = f.streams.create("s", 1, StreamConfig::default()).unwrap();
        publish(&stream, "k", &["a", "b", "c"]).await;
        let cases = [
            (StartAt::First, vec!["a", "b", "c", "d"]),
            (StartAt::Last, vec!["c", "d"]),
            (StartAt::Next, vec!["d"]),
            (StartAt::Offset(1), vec!["b", "c", "d"]),
            (StartAt::Offset(5), vec!["f"]),
            (StartAt::Timestamp(0), vec!["a", "b", "c", "d"]),
            (StartAt::Timestamp(i64::MAX), vec!["d"]),
        ];
        let mut readers = Vec::new();
        for (start, _) in &cases {
            let (sink, c) = consumer(100);
            readers.push((
                sink,
                StreamConsumer::start(stream.clone(), c, *start, None).unwrap(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        publish(&stream, "k", &["d", "e", "f"]).await;
        for ((start, expected), (sink, _)) in cases.iter().zip(&readers) {
            let got = sink.wait_for(expected.len()).await;
            let got = bodies(&got);
            assert_eq!(
                &got[..expected.len().min(got.len())],
                expected.as_slice(),
                "{start:?}"
            );
        }
    }

    #[tokio::test]
    async fn every_partition_is_read_in_order_with_its_number() {
        let f = fixture();
        let stream = f.streams.create("s", 3, StreamConfig::default()).unwrap();
        for key in ["k0", "k1", "k2", "k3"] {
            let bodies: Vec<String> = (0..5).map(|i| format!("{key}-{i}")).collect();
            let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
            publish(&stream, key, &refs).await;
        }
        let (sink, c) = consumer(1000);
        StreamConsumer::start(stream.clone(), c, StartAt::First, None).unwrap();
        let got = sink.wait_for(20).await;
        assert_eq!(got.len(), 20);
        for key in ["k0", "k1", "k2", "k3"] {
            let mine: Vec<&(String, i64, Option<i32>)> =
                got.iter().filter(|g| g.0.starts_with(key)).collect();
            let order: Vec<&str> = mine.iter().map(|g| g.0.as_str()).collect();
            let expected: Vec<String> = (0..5).map(|i| format!("{key}-{i}")).collect();
            assert_eq!(order, expected, "per-key order");
            let partition = stream.partition_for_routing_key(key);
            assert!(
                mine.iter()
                    .all(|g| g.2 == Some(i32::try_from(partition).unwrap()))
            );
        }
        // One partition only.
        let (sink, c) = consumer(1000);
        StreamConsumer::start(stream.clone(), c, StartAt::First, Some(1)).unwrap();
        let in_one = stream.partition(1).unwrap().high_watermark();
        assert!(in_one > 0 && in_one < 20, "{in_one}");
        let got = sink.wait_for(usize::try_from(in_one).unwrap()).await;
        assert_eq!(got.len() as u64, in_one);
        assert!(got.iter().all(|g| g.2 == Some(1)));
        let (_, c) = consumer(1);
        assert!(StreamConsumer::start(stream, c, StartAt::First, Some(3)).is_err());
    }

    #[tokio::test]
    async fn deleting_the_stream_cancels_its_consumers() {
        let f = fixture();
        let stream = f.streams.create("s", 1, StreamConfig::default()).unwrap();
        let (sink, c) = consumer(10);
        StreamConsumer::start(stream.clone(), c, StartAt::Next, None).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        f.streams.delete("s").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !sink.cancelled.load(std::sync::atomic::Ordering::Acquire) {
            assert!(tokio::time::Instant::now() < deadline, "not cancelled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(stream.reader_count(), 0);
    }

    #[test]
    fn offsets_parse_like_rabbitmq() {
        let s = FieldValue::string;
        assert_eq!(StartAt::parse(None), Ok(StartAt::Next));
        assert_eq!(StartAt::parse(Some(&s("first"))), Ok(StartAt::First));
        assert_eq!(
            StartAt::parse(Some(&FieldValue::ByteArray(Bytes::from_static(b"last")))),
            Ok(StartAt::Last)
        );
        assert_eq!(StartAt::parse(Some(&s("next"))), Ok(StartAt::Next));
        assert_eq!(
            StartAt::parse(Some(&FieldValue::I64(42))),
            Ok(StartAt::Offset(42))
        );
        assert_eq!(
            StartAt::parse(Some(&FieldValue::I8(-1))),
            Ok(StartAt::First)
        );
        assert_eq!(
            StartAt::parse(Some(&FieldValue::Timestamp(1_700_000_000))),
            Ok(StartAt::Timestamp(1_700_000_000_000))
        );
        let Ok(StartAt::Timestamp(ts)) = StartAt::parse(Some(&s("10m"))) else {
            panic!()
        };
        assert!((now_ms() - ts - 600_000).abs() < 5_000);
        assert!(StartAt::parse(Some(&s("bogus"))).is_err());
        assert!(StartAt::parse(Some(&FieldValue::Bool(true))).is_err());
    }
}
