//! Kafka load through rdkafka (librdkafka): producers and a consumer group.
//!
//! Each producer is one librdkafka producer instance driven by its own thread (delivery reports
//! count what the broker acknowledged, under `--acks`); each consumer is one member of a fresh
//! consumer group, polling on its own thread. The topic is created with `--partitions` and any
//! `--topic-config` (e.g. `flush.messages=1` for fsync-always), and deleted at the end if this
//! run created it (unless `--keep`). Producers start once every consumer has its assignment.
//! With no producers and no `--count`, consumers drain the topic from the beginning up to the
//! high watermarks found at the start (the window opens at the first record received).
//! `--security-protocol ssl` connects every client over TLS, trusting `--ca-file`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use serde::Serialize;

use crate::amqp::parse_kv;
use crate::report::Output;
use crate::rss::RssTracker;
use crate::run::{self, RunArgs, Stop, Until};
use crate::stats::{self, Recorder, Stats};
use crate::tls::{SecurityProtocol, TlsArgs};

#[derive(Args, Serialize, Clone, Debug)]
pub struct KafkaArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// bootstrap.servers
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// security.protocol of every client (ssl: TLS to an SSL listener).
    #[arg(long, value_enum, default_value_t = SecurityProtocol::Plaintext)]
    pub security_protocol: SecurityProtocol,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Topic (default perf-<pid>); created if missing.
    #[arg(long)]
    pub topic: Option<String>,
    /// Partitions of a topic this run creates.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// linger.ms: how long the producer waits to fill a batch.
    #[arg(long, default_value_t = 5.0)]
    pub linger_ms: f64,
    /// compression.type: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// enable.idempotence
    #[arg(long)]
    pub idempotence: bool,
    /// batch.size in bytes (librdkafka's default if unset).
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Consumers start at the beginning of an existing topic (a topic this run creates is
    /// always read from its beginning).
    #[arg(long)]
    pub from_beginning: bool,
    /// Config of a topic this run creates, KEY=VALUE (e.g. flush.messages=1).
    #[arg(long = "topic-config", value_parser = parse_kv)]
    pub topic_config: Vec<(String, String)>,
    /// Extra librdkafka producer property KEY=VALUE.
    #[arg(long = "producer-config", value_parser = parse_kv)]
    pub producer_config: Vec<(String, String)>,
    /// Extra librdkafka consumer property KEY=VALUE.
    #[arg(long = "consumer-config", value_parser = parse_kv)]
    pub consumer_config: Vec<(String, String)>,
    /// Leave a topic this run created in place.
    #[arg(long)]
    pub keep: bool,
    /// Delete the topic at the end even if it existed before.
    #[arg(long)]
    pub delete: bool,
}

struct ProduceCtx {
    stats: Arc<Stats>,
}

impl ClientContext for ProduceCtx {}

impl ProducerContext for ProduceCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        match result {
            Ok(m) => self.stats.published(1, m.payload_len() as u64),
            Err(_) => self.stats.error(),
        }
    }
}

struct ConsumeCtx {
    assigned: Arc<AtomicUsize>,
    joined: std::sync::atomic::AtomicBool,
}

impl ClientContext for ConsumeCtx {}

impl ConsumerContext for ConsumeCtx {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) && !self.joined.swap(true, Ordering::Relaxed) {
            self.assigned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What every client of a run shares: the bootstrap address and how to connect to it.
fn base_config(a: &KafkaArgs) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &a.bootstrap)
        .set("security.protocol", a.security_protocol.as_config());
    if let Some(ca) = &a.tls.ca_file {
        c.set("ssl.ca.location", ca.to_string_lossy());
    }
    c
}

/// Refuses a CA that would go unused, and a CA file that is not PEM, before any client starts
/// (librdkafka would only log the latter and keep retrying).
fn check_tls(a: &KafkaArgs) -> anyhow::Result<()> {
    match &a.tls.ca_file {
        Some(_) if a.security_protocol == SecurityProtocol::Plaintext => {
            bail!("--ca-file needs --security-protocol ssl")
        }
        Some(path) => crate::tls::read_ca(path).map(|_| ()),
        None => Ok(()),
    }
}

fn producer_config(a: &KafkaArgs) -> ClientConfig {
    let mut c = base_config(a);
    c.set("acks", &a.acks)
        .set("linger.ms", a.linger_ms.to_string())
        .set("compression.type", &a.compression)
        .set("enable.idempotence", a.idempotence.to_string());
    if let Some(b) = a.batch_size {
        c.set("batch.size", b.to_string());
    }
    for (k, v) in &a.producer_config {
        c.set(k, v);
    }
    c
}

fn consumer_config(a: &KafkaArgs, group: &str, earliest: bool) -> ClientConfig {
    let mut c = base_config(a);
    c.set("group.id", group)
        .set(
            "auto.offset.reset",
            if earliest { "earliest" } else { "latest" },
        )
        .set("enable.auto.commit", "true")
        .set("enable.partition.eof", "false");
    for (k, v) in &a.consumer_config {
        c.set(k, v);
    }
    c
}

/// Creates the topic; Ok(true) if this call created it, Ok(false) if it existed.
async fn create_topic(a: &KafkaArgs, topic: &str) -> anyhow::Result<bool> {
    let admin: AdminClient<DefaultClientContext> = base_config(a).create()?;
    let mut new = NewTopic::new(topic, a.partitions, TopicReplication::Fixed(1));
    for (k, v) in &a.topic_config {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics([&new], &opts).await?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((name, code))) => bail!("creating topic {name}: {code}"),
        None => bail!("creating topic {topic}: no result"),
    }
}

async fn delete_topic(a: &KafkaArgs, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(a).create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin.delete_topics(&[topic], &opts).await? {
        if let Err((name, code)) = r {
            bail!("deleting topic {name}: {code}");
        }
    }
    Ok(())
}

/// Records between the low and high watermarks of every partition (blocking).
fn records_in(a: &KafkaArgs, topic: &str) -> anyhow::Result<u64> {
    let c: BaseConsumer = base_config(a).create()?;
    let timeout = Duration::from_secs(10);
    let md = c.fetch_metadata(Some(topic), timeout)?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("topic {topic} not in metadata"))?;
    let mut total = 0u64;
    for p in t.partitions() {
        let (lo, hi) = c.fetch_watermarks(topic, p.id(), timeout)?;
        total += u64::try_from(hi - lo).unwrap_or(0);
    }
    Ok(total)
}

struct ProducerJob {
    producer: ThreadedProducer<ProduceCtx>,
    topic: String,
    size: usize,
    pace: Option<Duration>,
    limit: Option<u64>,
}

fn produce(job: &ProducerJob, stop: &Stop) -> anyhow::Result<()> {
    let mut body = stats::payload(job.size);
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.is_stopped() && job.limit.is_none_or(|n| sent < n) {
        if let Some(pace) = job.pace {
            let due = start + pace.mul_f64(sent as f64);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
        loop {
            stats::stamp(&mut body);
            let record = BaseRecord::<(), [u8]>::to(&job.topic).payload(&body[..]);
            match job.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if stop.is_stopped() {
                        break;
                    }
                    thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => return Err(e).context("producing"),
            }
        }
        sent += 1;
    }
    job.producer
        .flush(Duration::from_secs(30))
        .context("flushing the producer")
}

fn consume(consumer: &BaseConsumer<ConsumeCtx>, recorder: &Recorder, stats: &Stats, stop: &Stop) {
    while !stop.is_stopped() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => recorder.received(m.payload().unwrap_or_default()),
            Some(Err(_)) => stats.error(),
            None => {}
        }
    }
}

pub async fn run(a: KafkaArgs) -> anyhow::Result<Output> {
    check_tls(&a)?;
    let label = a.run.label.clone().unwrap_or_else(|| "kafka".into());
    let topic = a
        .topic
        .clone()
        .unwrap_or_else(|| format!("perf-{}", std::process::id()));
    let stats = Arc::new(Stats::default());
    let rss = RssTracker::new(a.run.broker_pid);
    let created = create_topic(&a, &topic).await?;
    let stop = Stop::default();
    let mut threads: Vec<thread::JoinHandle<anyhow::Result<()>>> = Vec::new();
    let mut extra = serde_json::Map::new();
    extra.insert("topic".into(), topic.clone().into());

    let drain = if a.run.producers == 0 && a.run.count.is_none() {
        let (a2, t2) = (a.clone(), topic.clone());
        let n = tokio::task::spawn_blocking(move || records_in(&a2, &t2)).await??;
        if n == 0 {
            bail!("topic {topic} is empty: nothing to drain");
        }
        extra.insert("drained_records".into(), n.into());
        Some(n)
    } else {
        None
    };

    let group = format!(
        "perf-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let until = if let Some(n) = drain {
        Until::Consumed {
            total: n,
            from_first: true,
        }
    } else {
        run::until_for(&a.run, 1)
    };
    // A drain's count starts before its consumers fetch anything.
    let armed = drain.map(|_| run::arm(&a.run, &stats, until));
    let assigned = Arc::new(AtomicUsize::new(0));
    for i in 0..a.run.consumers {
        let ctx = ConsumeCtx {
            assigned: Arc::clone(&assigned),
            joined: false.into(),
        };
        let consumer: BaseConsumer<ConsumeCtx> =
            consumer_config(&a, &group, created || a.from_beginning).create_with_context(ctx)?;
        consumer.subscribe(&[&topic])?;
        let (recorder, stats, stop) = (stats.recorder(), Arc::clone(&stats), stop.clone());
        threads.push(
            thread::Builder::new()
                .name(format!("consumer-{i}"))
                .spawn(move || {
                    consume(&consumer, &recorder, &stats, &stop);
                    Ok(())
                })?,
        );
    }
    let join_deadline = Instant::now() + Duration::from_secs(60);
    while assigned.load(Ordering::Relaxed) < a.run.consumers {
        if Instant::now() > join_deadline {
            stop.stop();
            bail!("consumers did not get an assignment within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut jobs = Vec::new();
    for i in 0..a.run.producers {
        let ctx = ProduceCtx {
            stats: Arc::clone(&stats),
        };
        jobs.push(ProducerJob {
            producer: producer_config(&a).create_with_context(ctx)?,
            topic: topic.clone(),
            size: a.run.size,
            pace: a.run.pace(),
            limit: a.run.count.map(|n| a.run.share(n, i)),
        });
    }
    let armed = armed.unwrap_or_else(|| run::arm(&a.run, &stats, until));
    for (i, job) in jobs.into_iter().enumerate() {
        let stop = stop.clone();
        threads.push(
            thread::Builder::new()
                .name(format!("producer-{i}"))
                .spawn(move || produce(&job, &stop))?,
        );
    }
    let window = run::measure(&a.run, &label, &stats, &rss, until, armed).await;
    stop.stop();
    let results = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))
            })
            .collect::<Vec<_>>()
    })
    .await?;
    if (created && !a.keep) || a.delete {
        delete_topic(&a, &topic).await?;
    }
    if let Some(e) = results.into_iter().find_map(Result::err) {
        return Err(e.context("a client failed"));
    }
    let report = run::report(
        label,
        "kafka",
        &window,
        &rss,
        extra,
        serde_json::to_value(&a)?,
    );
    Output::from_report(&report, a.run.json.clone())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn args(extra: &[&str]) -> KafkaArgs {
        let cli = Cli::try_parse_from(["ferrymq-perf", "kafka"].iter().chain(extra)).unwrap();
        match cli.command {
            Command::Kafka(a) => a,
            _ => panic!("not the kafka command"),
        }
    }

    #[test]
    fn ssl_reaches_every_client_config() {
        let a = args(&["--security-protocol", "ssl", "--ca-file", "/tmp/ca.pem"]);
        let c = base_config(&a);
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(c.get("ssl.ca.location"), Some("/tmp/ca.pem"));
        assert_eq!(producer_config(&a).get("security.protocol"), Some("ssl"));
        let plain = base_config(&args(&[]));
        assert_eq!(plain.get("security.protocol"), Some("plaintext"));
        assert_eq!(plain.get("ssl.ca.location"), None);
    }

    #[test]
    fn a_ca_file_needs_ssl() {
        let err = check_tls(&args(&["--ca-file", "/tmp/ca.pem"])).unwrap_err();
        assert!(err.to_string().contains("--security-protocol ssl"), "{err}");
        assert!(check_tls(&args(&["--security-protocol", "ssl"])).is_ok());
    }
}
