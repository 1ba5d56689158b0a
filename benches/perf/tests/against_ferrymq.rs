//! ferrymq-perf against an in-process ferrymq (AMQP and Kafka listeners on loopback): the
//! counts it reports are the messages that really went through.

#![expect(
    clippy::expect_used,
    reason = "test setup: any failure must fail the test"
)]

mod common;

use std::sync::Arc;

use common::{accept, num, perf};
use ferrymq_amqp::{AmqpConfig, AmqpContext};
use ferrymq_core::{Broker, BrokerConfig};
use ferrymq_kafka::{Ctx, KafkaConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Server {
    amqp: String,
    kafka: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn server() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).expect("broker");
    let shutdown = CancellationToken::new();

    let amqp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let amqp_addr = amqp.local_addr().expect("addr");
    let amqp_ctx = AmqpContext::new(Arc::clone(&broker), AmqpConfig::default());
    accept(amqp, &shutdown, move |s, peer, token| {
        ferrymq_amqp::serve_connection(s, peer, Arc::clone(&amqp_ctx), token)
    });

    let kafka = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let kafka_addr = kafka.local_addr().expect("addr");
    let config = KafkaConfig {
        group_initial_rebalance_delay_ms: 0,
        ..KafkaConfig::default()
    };
    let kafka_ctx = Ctx::new(broker, config, "127.0.0.1", kafka_addr.port()).expect("kafka ctx");
    accept(kafka, &shutdown, move |s, peer, token| {
        ferrymq_kafka::serve_connection(s, peer, Arc::clone(&kafka_ctx), token)
    });
    Server {
        amqp: format!("amqp://guest:guest@{amqp_addr}/%2f"),
        kafka: kafka_addr.to_string(),
        shutdown,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_counts_every_confirmed_and_delivered_message() {
    let s = server().await;
    let r = perf(&[
        "amqp",
        "--uri",
        &s.amqp,
        "--count",
        "3000",
        "--producers",
        "2",
        "--size",
        "100",
        "--confirm",
        "50",
        "--multi-ack-every",
        "10",
    ])
    .await;
    assert_eq!(num(&r, &["publish", "messages"]), 3000.0, "{r}");
    assert_eq!(num(&r, &["consume", "messages"]), 3000.0, "{r}");
    assert_eq!(num(&r, &["errors"]), 0.0);
    assert_eq!(num(&r, &["latency", "count"]), 3000.0);
    let mb = num(&r, &["consume", "mb_per_sec"]);
    let secs = num(&r, &["seconds"]);
    assert!(
        (mb * secs * 1e6 - 300_000.0).abs() < 1.0,
        "bytes: {mb} MB/s over {secs} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_fanout_delivers_to_every_queue() {
    let s = server().await;
    let r = perf(&[
        "amqp",
        "--uri",
        &s.amqp,
        "--count",
        "500",
        "--fanout",
        "3",
        "--auto-ack",
    ])
    .await;
    assert_eq!(num(&r, &["publish", "messages"]), 500.0, "{r}");
    assert_eq!(num(&r, &["consume", "messages"]), 1500.0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_backlog_is_filled_then_drained() {
    let s = server().await;
    let r = perf(&[
        "amqp",
        "--uri",
        &s.amqp,
        "--backlog",
        "5000",
        "--multi-ack-every",
        "100",
        "--prefetch",
        "1000",
    ])
    .await;
    assert_eq!(num(&r, &["consume", "messages"]), 5000.0, "{r}");
    assert_eq!(
        num(&r, &["publish", "messages"]),
        0.0,
        "publishing is not in the drain window"
    );
    assert!(num(&r, &["extra", "fill_msgs_per_sec"]) > 0.0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_fixed_rate_is_kept() {
    let s = server().await;
    let r = perf(&[
        "amqp",
        "--uri",
        &s.amqp,
        "--rate",
        "2000",
        "--duration",
        "1",
        "--warmup",
        "0.2",
    ])
    .await;
    let rate = num(&r, &["publish", "msgs_per_sec"]);
    assert!((1800.0..2200.0).contains(&rate), "publish rate {rate}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_idle_connections_open_and_close() {
    let s = server().await;
    let pid = std::process::id().to_string();
    let r = perf(&[
        "connections",
        "--uri",
        &s.amqp,
        "--count",
        "300",
        "--settle",
        "0",
        "--broker-pid",
        &pid,
    ])
    .await;
    assert_eq!(num(&r, &["connections"]), 300.0, "{r}");
    assert!(num(&r, &["rss_with_connections_mib"]) > 0.0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_produces_then_drains_a_topic() {
    let s = server().await;
    let produced = perf(&[
        "kafka",
        "--bootstrap",
        &s.kafka,
        "--topic",
        "t1",
        "--count",
        "4000",
        "--consumers",
        "0",
        "--size",
        "200",
        "--keep",
    ])
    .await;
    assert_eq!(
        num(&produced, &["publish", "messages"]),
        4000.0,
        "{produced}"
    );
    let drained = perf(&[
        "kafka",
        "--bootstrap",
        &s.kafka,
        "--topic",
        "t1",
        "--producers",
        "0",
        "--from-beginning",
        "--delete",
    ])
    .await;
    assert_eq!(num(&drained, &["consume", "messages"]), 4000.0, "{drained}");
    assert_eq!(num(&drained, &["extra", "drained_records"]), 4000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_group_consumes_what_is_produced() {
    let s = server().await;
    let r = perf(&[
        "kafka",
        "--bootstrap",
        &s.kafka,
        "--count",
        "3000",
        "--consumers",
        "2",
        "--acks",
        "1",
        "--compression",
        "lz4",
    ])
    .await;
    assert_eq!(num(&r, &["publish", "messages"]), 3000.0, "{r}");
    assert_eq!(num(&r, &["consume", "messages"]), 3000.0, "{r}");
    assert_eq!(num(&r, &["latency", "count"]), 3000.0);
}
