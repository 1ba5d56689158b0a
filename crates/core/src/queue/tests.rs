use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::time::Duration;

use super::*;
use crate::message::{FieldValue, Message, Properties};
use crate::{Broker, BrokerConfig, Error, VHost};

#[derive(Debug, Default)]
struct Sink {
    got: Mutex<Vec<Delivery>>,
    cancelled: Mutex<Vec<String>>,
}

impl DeliverySink for Sink {
    fn deliver(&self, delivery: Delivery) {
        self.got.lock().unwrap().push(delivery);
    }
    fn deliver_message(&self, _consumer: &Arc<Consumer>, _message: Arc<Message>) {
        unreachable!("classic queues deliver entries")
    }
    fn flush(&self) {}
    fn cancelled(&self, consumer: &Arc<Consumer>) {
        self.cancelled
            .lock()
            .unwrap()
            .push(consumer.tag().to_owned());
    }
}

impl Sink {
    fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
    fn bodies(&self) -> Vec<String> {
        self.take()
            .into_iter()
            .map(|d| String::from_utf8(d.entry.message.body.to_vec()).unwrap())
            .collect()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    vhost: Arc<VHost>,
}

tokio::task_local! {
    /// Whether the test runs against durable queues (declared by `declare`) with no message
    /// cache, so every message is read back from its log.
    static DURABLE: bool;
}

fn durable() -> bool {
    DURABLE.try_with(|d| *d).unwrap_or(false)
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::with_data_dir(dir.path());
    if durable() {
        config.storage.queue_cache_bytes = 0;
        config.storage.segment_bytes = 4096;
    }
    let broker = Broker::open(config).unwrap();
    let vhost = broker.vhost("/").unwrap();
    Fixture { _dir: dir, vhost }
}

fn declare(f: &Fixture, name: &str, args: &[(&str, FieldValue)]) -> Arc<Queue> {
    let mut spec = QueueSpec::new(name);
    spec.durable = durable();
    for (k, v) in args {
        spec.arguments.push(*k, v.clone());
    }
    f.vhost.declare_queue(spec, false, 1).unwrap().queue
}

fn msg(body: &str) -> Arc<Message> {
    Arc::new(Message::new(
        "",
        "rk",
        Properties::default(),
        Bytes::from(body.to_owned()),
    ))
}

fn msg_with(body: &str, props: Properties) -> Arc<Message> {
    Arc::new(Message::new("", "rk", props, Bytes::from(body.to_owned())))
}

fn consumer(tag: &str, prefetch: u32, sink: &Arc<Sink>) -> Arc<Consumer> {
    consumer_with(tag, prefetch, 0, false, sink)
}

fn consumer_with(
    tag: &str,
    prefetch: u32,
    priority: i32,
    no_ack: bool,
    sink: &Arc<Sink>,
) -> Arc<Consumer> {
    Arc::new(Consumer::new(
        ConsumerSpec {
            tag: tag.to_owned(),
            no_ack,
            exclusive: false,
            priority,
            owner: 1,
            channel: 1,
            arguments: FieldTable::new(),
        },
        prefetch,
        Arc::new(Credit::new(0)),
        1000,
        sink.clone(),
    ))
}

fn start(q: &Arc<Queue>, c: &Arc<Consumer>) {
    q.consume(c.clone()).unwrap();
    q.activate(c);
}

/// What a channel does on ack: settle with the queue, then give credit back.
fn ack(deliveries: Vec<Delivery>) {
    for d in deliveries {
        d.queue.ack(std::slice::from_ref(&d.entry));
        d.consumer.window.release(1);
        d.consumer.own.release(1);
        d.consumer.channel.release(1);
    }
}

async fn prefetch_bounds_deliveries_and_acks_refill() {
    let f = fixture();
    let q = declare(&f, "work", &[]);
    for i in 0..5 {
        q.publish(msg(&i.to_string()));
    }
    let sink = Arc::new(Sink::default());
    let c = consumer("c1", 2, &sink);
    start(&q, &c);
    let first = sink.take();
    assert_eq!(first.len(), 2);
    assert_eq!(q.message_count(), 3);
    assert_eq!(q.unacked_count(), 2);
    ack(first);
    assert_eq!(sink.bodies(), ["2", "3"]);
    assert_eq!(q.unacked_count(), 2);
}

async fn inactive_consumers_get_nothing_until_activated() {
    let f = fixture();
    let q = declare(&f, "q", &[]);
    q.publish(msg("a"));
    let sink = Arc::new(Sink::default());
    let c = consumer("c", 0, &sink);
    q.consume(c.clone()).unwrap();
    q.publish(msg("b"));
    assert!(sink.take().is_empty());
    q.activate(&c);
    assert_eq!(sink.bodies(), ["a", "b"]);
}

async fn round_robin_and_consumer_priorities() {
    let f = fixture();
    let q = declare(&f, "rr", &[]);
    let (s1, s2, s3) = (
        Arc::new(Sink::default()),
        Arc::new(Sink::default()),
        Arc::new(Sink::default()),
    );
    let c1 = consumer("c1", 0, &s1);
    let c2 = consumer("c2", 0, &s2);
    start(&q, &c1);
    start(&q, &c2);
    for i in 0..4 {
        q.publish(msg(&i.to_string()));
    }
    assert_eq!(s1.bodies(), ["0", "2"]);
    assert_eq!(s2.bodies(), ["1", "3"]);
    // A higher-priority consumer takes everything while it has credit.
    let hi = consumer_with("hi", 1, 10, false, &s3);
    start(&q, &hi);
    q.publish(msg("x"));
    q.publish(msg("y"));
    assert_eq!(s3.bodies(), ["x"]);
    assert_eq!(s1.take().len() + s2.take().len(), 1);
}

async fn requeue_restores_order_and_sets_redelivered() {
    let f = fixture();
    let q = declare(&f, "rq", &[]);
    for b in ["a", "b", "c"] {
        q.publish(msg(b));
    }
    let (a, _) = q.get(false).unwrap().unwrap();
    let (b, remaining) = q.get(false).unwrap().unwrap();
    assert_eq!(remaining, 1);
    q.requeue(vec![b, a]);
    let order: Vec<(String, bool)> = std::iter::from_fn(|| q.get(true).unwrap())
        .map(|(e, _)| {
            (
                String::from_utf8(e.message.body.to_vec()).unwrap(),
                e.redelivered,
            )
        })
        .collect();
    assert_eq!(
        order,
        [("a".into(), true), ("b".into(), true), ("c".into(), false)]
    );
    assert_eq!(q.unacked_count(), 0);
}

async fn max_length_overflow_modes() {
    let f = fixture();
    let dlq = declare(&f, "dlq", &[]);
    let drop_head = declare(
        &f,
        "drop",
        &[
            ("x-max-length", FieldValue::I32(2)),
            ("x-dead-letter-exchange", FieldValue::string("")),
            ("x-dead-letter-routing-key", FieldValue::string("dlq")),
        ],
    );
    for b in ["1", "2", "3"] {
        assert!(matches!(
            drop_head.publish(msg(b)),
            Enqueued::Accepted { .. }
        ));
    }
    assert_eq!(drop_head.message_count(), 2);
    let (dead, _) = dlq.get(true).unwrap().unwrap();
    assert_eq!(dead.message.body, Bytes::from_static(b"1"));
    let death = dead.message.properties.headers.as_ref().unwrap();
    assert_eq!(
        death
            .get("x-first-death-reason")
            .and_then(FieldValue::as_str),
        Some("maxlen")
    );

    let reject = declare(
        &f,
        "reject",
        &[
            ("x-max-length-bytes", FieldValue::I32(3)),
            ("x-overflow", FieldValue::string("reject-publish")),
        ],
    );
    assert!(matches!(
        reject.publish(msg("ab")),
        Enqueued::Accepted { .. }
    ));
    assert!(matches!(reject.publish(msg("cd")), Enqueued::Rejected));
    assert!(matches!(
        reject.publish(msg("e")),
        Enqueued::Accepted { .. }
    ));
    assert_eq!(reject.message_count(), 2);

    let reject_dlx = declare(
        &f,
        "reject-dlx",
        &[
            ("x-max-length", FieldValue::I32(0)),
            ("x-overflow", FieldValue::string("reject-publish-dlx")),
            ("x-dead-letter-exchange", FieldValue::string("")),
            ("x-dead-letter-routing-key", FieldValue::string("dlq")),
        ],
    );
    assert!(matches!(reject_dlx.publish(msg("z")), Enqueued::Rejected));
    assert_eq!(dlq.message_count(), 1);
}

async fn ttl_expires_to_dead_letter_queue() {
    let f = fixture();
    let dlq = declare(&f, "expired", &[]);
    let q = declare(
        &f,
        "ttl",
        &[
            ("x-message-ttl", FieldValue::I32(1000)),
            ("x-dead-letter-exchange", FieldValue::string("")),
            ("x-dead-letter-routing-key", FieldValue::string("expired")),
        ],
    );
    q.publish(msg("slow"));
    q.publish(msg_with(
        "fast",
        Properties {
            expiration: Some("10".into()),
            ..Properties::default()
        },
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Per-message TTL only applies at the head: "fast" waits behind "slow".
    assert_eq!(q.message_count(), 2);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(q.message_count(), 0);
    let bodies: Vec<Bytes> = std::iter::from_fn(|| dlq.get(true).unwrap())
        .map(|(e, _)| e.message.body.clone())
        .collect();
    assert_eq!(
        bodies,
        [Bytes::from_static(b"slow"), Bytes::from_static(b"fast")]
    );
}

async fn expired_messages_are_never_delivered() {
    let f = fixture();
    let q = declare(&f, "ttl0", &[("x-message-ttl", FieldValue::I32(0))]);
    q.publish(msg("gone"));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let sink = Arc::new(Sink::default());
    start(&q, &consumer("c", 0, &sink));
    assert!(sink.take().is_empty());
    // With a consumer waiting, a TTL-0 message is delivered at once.
    q.publish(msg("now"));
    assert_eq!(sink.bodies(), ["now"]);
}

async fn unused_queues_expire() {
    let f = fixture();
    let q = declare(&f, "temp", &[("x-expires", FieldValue::I32(1000))]);
    let sink = Arc::new(Sink::default());
    let c = consumer("c", 0, &sink);
    start(&q, &c);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(f.vhost.lookup_queue("temp").is_some(), "in use: kept");
    q.cancel(&c);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(f.vhost.lookup_queue("temp").is_some());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(f.vhost.lookup_queue("temp").is_none());
    assert!(q.is_deleted());
}

async fn priority_queue_serves_highest_first() {
    let f = fixture();
    let q = declare(&f, "prio", &[("x-max-priority", FieldValue::U8(5))]);
    for (body, p) in [("low", 0), ("high", 9), ("mid", 3), ("none", 255)] {
        let props = Properties {
            priority: (p != 255).then_some(p),
            ..Properties::default()
        };
        q.publish(msg_with(body, props));
    }
    let order: Vec<Bytes> = std::iter::from_fn(|| q.get(true).unwrap())
        .map(|(e, _)| e.message.body.clone())
        .collect();
    assert_eq!(order, ["high", "mid", "low", "none"].map(Bytes::from));
}

async fn single_active_consumer_fails_over_in_order() {
    let f = fixture();
    let q = declare(
        &f,
        "sac",
        &[("x-single-active-consumer", FieldValue::Bool(true))],
    );
    let (s1, s2) = (Arc::new(Sink::default()), Arc::new(Sink::default()));
    let c1 = consumer("c1", 0, &s1);
    let c2 = consumer_with("c2", 0, 10, false, &s2);
    start(&q, &c1);
    start(&q, &c2);
    q.publish(msg("a"));
    q.publish(msg("b"));
    assert_eq!(s1.bodies(), ["a", "b"]);
    q.cancel(&c1);
    q.publish(msg("c"));
    assert_eq!(s2.bodies(), ["c"]);
}

async fn exclusive_consumers_and_auto_delete() {
    let f = fixture();
    let mut spec = QueueSpec::new("auto");
    spec.auto_delete = true;
    let q = f.vhost.declare_queue(spec, false, 1).unwrap().queue;
    let sink = Arc::new(Sink::default());
    let c1 = consumer("c1", 0, &sink);
    start(&q, &c1);
    let mut exclusive = consumer("ex", 0, &sink).spec.clone();
    exclusive.exclusive = true;
    let ex = Arc::new(Consumer::new(
        exclusive,
        0,
        Arc::new(Credit::new(0)),
        10,
        sink.clone(),
    ));
    assert!(matches!(
        q.consume(ex),
        Err(Error::ExclusiveConsumer { .. })
    ));
    q.cancel(&c1);
    assert!(q.is_deleted());
    assert!(f.vhost.lookup_queue("auto").is_none());
}

async fn deleting_a_queue_cancels_its_consumers() {
    let f = fixture();
    let q = declare(&f, "del", &[]);
    q.publish(msg("a"));
    let sink = Arc::new(Sink::default());
    start(&q, &consumer("c", 1, &sink));
    q.publish(msg("b"));
    assert!(matches!(
        f.vhost.delete_queue("del", true, false, 1),
        Err(Error::InUse { .. })
    ));
    assert!(matches!(
        f.vhost.delete_queue("del", false, true, 1),
        Err(Error::NotEmpty { .. })
    ));
    assert_eq!(f.vhost.delete_queue("del", false, false, 1).unwrap(), 1);
    assert_eq!(*sink.cancelled.lock().unwrap(), ["c"]);
    assert!(matches!(q.get(true), Err(Error::NotFound { .. })));
}

async fn no_ack_consumers_are_bounded_by_their_write_window() {
    let f = fixture();
    let q = declare(&f, "noack", &[]);
    let sink = Arc::new(Sink::default());
    let c = Arc::new(Consumer::new(
        ConsumerSpec {
            tag: "n".into(),
            no_ack: true,
            exclusive: false,
            priority: 0,
            owner: 1,
            channel: 1,
            arguments: FieldTable::new(),
        },
        0,
        Arc::new(Credit::new(0)),
        3,
        sink.clone(),
    ));
    start(&q, &c);
    for i in 0..10 {
        q.publish(msg(&i.to_string()));
    }
    assert_eq!(sink.take().len(), 3);
    assert_eq!(
        q.unacked_count(),
        0,
        "no-ack deliveries are settled at once"
    );
    // The writer reports two frames written: two more come.
    c.window.release(2);
    assert_eq!(sink.take().len(), 2);
    c.channel.set_paused(true);
    c.window.release(3);
    assert!(sink.take().is_empty(), "channel.flow paused");
    c.channel.set_paused(false);
    assert_eq!(sink.take().len(), 3);
}

async fn declare_equivalence_and_exclusivity() {
    let f = fixture();
    let mut spec = QueueSpec::new("mine");
    spec.exclusive = true;
    f.vhost.declare_queue(spec.clone(), false, 1).unwrap();
    assert!(matches!(
        f.vhost.declare_queue(spec.clone(), false, 2),
        Err(Error::ResourceLocked { .. })
    ));
    assert!(matches!(
        f.vhost.declare_queue(QueueSpec::new("mine"), true, 2),
        Err(Error::ResourceLocked { .. })
    ));
    assert!(
        f.vhost
            .declare_queue(QueueSpec::new("mine"), true, 1)
            .is_ok()
    );
    let mut durable = QueueSpec::new("plain");
    f.vhost.declare_queue(durable.clone(), false, 1).unwrap();
    durable.durable = true;
    let err = f.vhost.declare_queue(durable, false, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "inequivalent arg 'durable' for queue 'plain' in vhost '/': received 'true' but current is 'false'"
    );
    assert!(matches!(
        f.vhost.declare_queue(QueueSpec::new("amq.mine"), false, 1),
        Err(Error::ReservedName { .. })
    ));
    let named = f.vhost.declare_queue(QueueSpec::new(""), false, 1).unwrap();
    assert!(named.queue.name().starts_with("amq.gen-"));
    assert!(named.created);
}

async fn rejected_messages_dead_letter_and_requeue_limit() {
    let f = fixture();
    let dlq = declare(&f, "rejected", &[]);
    let mut spec = QueueSpec::new("quorum");
    spec.durable = true;
    spec.arguments
        .push("x-queue-type", FieldValue::string("quorum"));
    spec.arguments.push("x-delivery-limit", FieldValue::I32(1));
    spec.arguments
        .push("x-dead-letter-exchange", FieldValue::string(""));
    spec.arguments
        .push("x-dead-letter-routing-key", FieldValue::string("rejected"));
    let q = f.vhost.declare_queue(spec, false, 1).unwrap().queue;
    q.publish(msg("a"));
    q.publish(msg("b"));
    let (a, _) = q.get(false).unwrap().unwrap();
    q.reject(vec![a]);
    let (dead, _) = dlq.get(true).unwrap().unwrap();
    assert_eq!(
        dead.message
            .properties
            .headers
            .as_ref()
            .unwrap()
            .get("x-first-death-reason"),
        Some(&FieldValue::string("rejected"))
    );
    let (b, _) = q.get(false).unwrap().unwrap();
    q.requeue(vec![b]);
    let (b, _) = q.get(false).unwrap().unwrap();
    assert!(b.redelivered);
    q.requeue(vec![b]);
    assert_eq!(
        q.message_count(),
        0,
        "second requeue exceeds the delivery limit"
    );
    assert_eq!(dlq.message_count(), 1);
}

/// Runs each test twice: against in-memory queues and against durable queues whose every
/// message waits on disk (message cache 0, 4 KiB segments).
macro_rules! in_memory_and_durable {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn in_memory() {
                super::DURABLE.scope(false, super::$name()).await;
            }
            #[tokio::test]
            async fn durable() {
                super::DURABLE.scope(true, super::$name()).await;
            }
        }
    )*};
}

/// The same under a paused clock.
macro_rules! in_memory_and_durable_paused {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(start_paused = true)]
            async fn in_memory() {
                super::DURABLE.scope(false, super::$name()).await;
            }
            #[tokio::test(start_paused = true)]
            async fn durable() {
                super::DURABLE.scope(true, super::$name()).await;
            }
        }
    )*};
}

in_memory_and_durable!(
    prefetch_bounds_deliveries_and_acks_refill,
    inactive_consumers_get_nothing_until_activated,
    round_robin_and_consumer_priorities,
    requeue_restores_order_and_sets_redelivered,
    max_length_overflow_modes,
    priority_queue_serves_highest_first,
    single_active_consumer_fails_over_in_order,
    exclusive_consumers_and_auto_delete,
    deleting_a_queue_cancels_its_consumers,
    no_ack_consumers_are_bounded_by_their_write_window,
    declare_equivalence_and_exclusivity,
    rejected_messages_dead_letter_and_requeue_limit
);

in_memory_and_durable_paused!(
    ttl_expires_to_dead_letter_queue,
    expired_messages_are_never_delivered,
    unused_queues_expire
);
