//! AMQP 0-9-1 load through lapin: publishers, consumers, a fan-out topology, a backlog drain.
//!
//! Topology (declared on a set-up connection, deleted at the end unless `--keep`):
//! ```text
//! --fanout 0:  publisher --(default exchange, key = queue)--> queue --> consumers
//! --fanout N:  publisher --> fanout exchange --> N queues --> `--consumers` each
//! ```
//! Every producer and consumer has its own connection (lapin runs one I/O thread per
//! connection). A lapin publish resolves once its I/O thread wrote the frames, so awaiting each
//! publish in turn caps a publisher at one publish per thread round trip. Publishers here keep
//! up to `--send-window` publishes in flight and, with confirms, up to `--confirm`
//! unconfirmed messages (the confirms window); consumers send acks without waiting for them.
//! An `amqps://` URI connects over TLS (rustls), trusting `--ca-file` besides the webpki roots.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer, DefaultConnectionBuilder,
    ExchangeKind,
};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::report::Output;
use crate::rss::RssTracker;
use crate::run::{self, RunArgs, Stop, Until};
use crate::stats::{self, Recorder, Stats};
use crate::tls::{self, TlsArgs};

#[derive(Args, Serialize, Clone, Debug)]
pub struct AmqpArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Broker URI (`amqps://`: over TLS).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Queue name (with --fanout: the prefix of the queue names); default perf-<pid>.
    #[arg(long)]
    pub queue: Option<String>,
    /// Publish to a fanout exchange bound to this many queues (0: straight to one queue).
    #[arg(long, default_value_t = 0)]
    pub fanout: usize,
    /// Declare the queues (and exchange) durable.
    #[arg(long)]
    pub durable: bool,
    /// Publish persistent messages (delivery_mode 2).
    #[arg(long)]
    pub persistent: bool,
    /// Publisher confirms with at most this many unconfirmed messages per publisher (0: off).
    #[arg(long, default_value_t = 0)]
    pub confirm: usize,
    /// Publishes handed to lapin but not yet written, per publisher (the pipelining depth).
    #[arg(long, default_value_t = 256)]
    pub send_window: usize,
    /// basic.qos prefetch count per consumer (0: unlimited).
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u16,
    /// Consume with no-ack (automatic acknowledgement).
    #[arg(long)]
    pub auto_ack: bool,
    /// Acknowledge with `multiple` every N deliveries (1: each delivery on its own).
    #[arg(long, default_value_t = 1)]
    pub multi_ack_every: u64,
    /// Fill the queue(s) with this many messages (confirmed) before any consumer starts,
    /// then measure the consumers draining them.
    #[arg(long)]
    pub backlog: Option<u64>,
    /// Queue argument KEY=VALUE (integers are sent as long-long, anything else as a string).
    #[arg(long = "queue-arg", value_parser = parse_kv)]
    pub queue_args: Vec<(String, String)>,
    /// Leave the queues and exchange in place at the end.
    #[arg(long)]
    pub keep: bool,
}

pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn queue_arguments(args: &[(String, String)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in args {
        let value = match v.parse::<i64>() {
            Ok(n) => AMQPValue::LongLongInt(n),
            Err(_) => AMQPValue::LongString(LongString::from(v.as_str())),
        };
        t.insert(ShortString::from(k.as_str()), value);
    }
    t
}

/// Where publishers send and consumers read.
struct Topology {
    exchange: String,
    routing_key: String,
    queues: Vec<String>,
}

/// Where every connection of a run goes, and the CAs an `amqps://` one trusts.
struct Endpoint {
    uri: String,
    tls: OwnedTLSConfig,
}

impl Endpoint {
    /// Reads `--ca-file` once for all the run's connections.
    fn new(uri: &str, tls: &TlsArgs) -> anyhow::Result<Self> {
        let secure = uri.starts_with("amqps://");
        let cert_chain = match &tls.ca_file {
            Some(_) if !secure => bail!("--ca-file needs an amqps:// URI, not {uri}"),
            Some(path) => Some(tls::read_ca(path)?),
            None => None,
        };
        Ok(Self {
            uri: uri.to_owned(),
            tls: OwnedTLSConfig {
                identity: None,
                cert_chain,
            },
        })
    }

    async fn connect(&self, name: &str) -> anyhow::Result<Connection> {
        let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
        DefaultConnectionBuilder::new()?
            .with_uri_str(self.uri.clone())
            .with_properties(props)
            .with_tls_config(self.tls.clone())
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.uri))
    }
}

async fn declare(ch: &Channel, a: &AmqpArgs) -> anyhow::Result<Topology> {
    let base = a
        .queue
        .clone()
        .unwrap_or_else(|| format!("perf-{}", std::process::id()));
    let q_opts = QueueDeclareOptions {
        durable: a.durable,
        ..QueueDeclareOptions::default()
    };
    let q_args = queue_arguments(&a.queue_args);
    if a.fanout == 0 {
        ch.queue_declare(base.as_str().into(), q_opts, q_args)
            .await
            .with_context(|| format!("declaring queue {base}"))?;
        return Ok(Topology {
            exchange: String::new(),
            routing_key: base.clone(),
            queues: vec![base],
        });
    }
    let exchange = format!("{base}-fanout");
    ch.exchange_declare(
        exchange.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: a.durable,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .with_context(|| format!("declaring exchange {exchange}"))?;
    let mut queues = Vec::with_capacity(a.fanout);
    for i in 0..a.fanout {
        let q = format!("{base}-{i}");
        ch.queue_declare(q.as_str().into(), q_opts, q_args.clone())
            .await
            .with_context(|| format!("declaring queue {q}"))?;
        ch.queue_bind(
            q.as_str().into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("binding {q}"))?;
        queues.push(q);
    }
    Ok(Topology {
        exchange,
        routing_key: String::new(),
        queues,
    })
}

async fn delete(ch: &Channel, t: &Topology) -> anyhow::Result<()> {
    for q in &t.queues {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    if !t.exchange.is_empty() {
        ch.exchange_delete(t.exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
    }
    Ok(())
}

/// One publisher's settings.
#[derive(Clone)]
struct Publish {
    exchange: ShortString,
    routing_key: ShortString,
    properties: BasicProperties,
    size: usize,
    confirm: usize,
    send_window: usize,
    pace: Option<Duration>,
    limit: Option<u64>,
}

async fn open_publisher(
    endpoint: &Endpoint,
    i: usize,
    confirm: bool,
) -> anyhow::Result<(Connection, Channel)> {
    let conn = endpoint
        .connect(&format!("ferrymq-perf producer {i}"))
        .await?;
    let ch = conn.create_channel().await?;
    if confirm {
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
    }
    Ok((conn, ch))
}

/// Publishes until stopped or `limit` messages are accepted, keeping the windows full.
async fn publish(ch: Channel, p: Publish, stats: Arc<Stats>, stop: Stop) -> anyhow::Result<()> {
    let mut sends = FuturesUnordered::new();
    let mut confirms = FuturesUnordered::new();
    let mut body = stats::payload(p.size);
    let size = p.size as u64;
    let mut sent: u64 = 0;
    let start = Instant::now();
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    let mut stopping = false;
    loop {
        let done = stopping || p.limit.is_some_and(|n| sent >= n);
        if done && sends.is_empty() && confirms.is_empty() {
            return Ok(());
        }
        let room = !done
            && sends.len() < p.send_window
            && (p.confirm == 0 || sends.len() + confirms.len() < p.confirm);
        let due = p.pace.map(|pace| start + pace.mul_f64(sent as f64));
        if room && due.is_none_or(|d| d <= Instant::now()) {
            stats::stamp(&mut body);
            let (ch, ex, rk, props, data) = (
                ch.clone(),
                p.exchange.clone(),
                p.routing_key.clone(),
                p.properties.clone(),
                body.clone(),
            );
            sends.push(async move {
                ch.basic_publish(ex, rk, BasicPublishOptions::default(), &data, props)
                    .await
            });
            sent += 1;
            // Hand a burst to lapin before waiting; the first poll below enqueues them all.
            if due.is_none() && sends.len() < p.send_window {
                continue;
            }
        }
        let sleep_to = due.filter(|_| room);
        tokio::select! {
            biased;
            Some(r) = sends.next(), if !sends.is_empty() => {
                let confirm = r.context("basic.publish")?;
                if p.confirm > 0 {
                    confirms.push(confirm);
                } else {
                    stats.published(1, size);
                }
            }
            Some(r) = confirms.next(), if !confirms.is_empty() => {
                if r.context("publisher confirm")?.is_ack() {
                    stats.published(1, size);
                } else {
                    stats.error();
                }
            }
            () = async { if let Some(t) = sleep_to { tokio::time::sleep_until(t.into()).await } },
                if sleep_to.is_some() => {}
            () = &mut stopped, if !stopping => stopping = true,
        }
    }
}

async fn open_consumer(
    endpoint: &Endpoint,
    i: usize,
    queue: &str,
    a: &AmqpArgs,
) -> anyhow::Result<(Connection, Channel, Consumer)> {
    let conn = endpoint
        .connect(&format!("ferrymq-perf consumer {i}"))
        .await?;
    let ch = conn.create_channel().await?;
    if a.prefetch > 0 {
        ch.basic_qos(a.prefetch, BasicQosOptions::default()).await?;
    }
    let consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: a.auto_ack,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("basic.consume on {queue}"))?;
    Ok((conn, ch, consumer))
}

/// Receives until stopped, acknowledging every `ack_every` deliveries (never with auto-ack).
async fn consume(
    ch: Channel,
    mut consumer: Consumer,
    ack_every: Option<u64>,
    recorder: Recorder,
    stop: Stop,
) -> anyhow::Result<()> {
    let mut acks = FuturesUnordered::new();
    let mut unacked = 0u64;
    let mut last_tag = 0;
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            () = &mut stopped => break,
            Some(r) = acks.next(), if !acks.is_empty() => {
                let r: lapin::Result<()> = r;
                r.context("basic.ack")?;
            }
            d = consumer.next() => {
                let Some(d) = d else { break };
                let d = d.context("delivery")?;
                recorder.received(&d.data);
                if let Some(every) = ack_every {
                    unacked += 1;
                    last_tag = d.delivery_tag;
                    if unacked >= every {
                        unacked = 0;
                        let ch = ch.clone();
                        let multiple = every > 1;
                        acks.push(async move {
                            ch.basic_ack(last_tag, BasicAckOptions { multiple }).await
                        });
                    }
                }
            }
        }
    }
    if unacked > 0 {
        ch.basic_ack(last_tag, BasicAckOptions { multiple: true })
            .await?;
    }
    while let Some(r) = acks.next().await {
        r?;
    }
    Ok(())
}

pub async fn run(a: AmqpArgs) -> anyhow::Result<Output> {
    if a.multi_ack_every == 0 {
        bail!("--multi-ack-every must be at least 1");
    }
    if a.prefetch > 0 && a.multi_ack_every > u64::from(a.prefetch) && !a.auto_ack {
        bail!("--multi-ack-every above --prefetch would stall the consumer");
    }
    if a.backlog.is_some() && a.run.count.is_some() {
        bail!("--backlog and --count exclude each other");
    }
    let label = a.run.label.clone().unwrap_or_else(|| "amqp".into());
    let stats = Arc::new(Stats::default());
    let rss = RssTracker::new(a.run.broker_pid);
    let endpoint = Endpoint::new(&a.uri, &a.tls)?;
    let setup = endpoint.connect("ferrymq-perf setup").await?;
    let setup_ch = setup.create_channel().await?;
    let topo = declare(&setup_ch, &a).await?;
    let stop = Stop::default();
    let mut tasks = JoinSet::new();
    let mut conns = Vec::new();
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let publish_settings = |confirm: usize, limit: Option<u64>| Publish {
        exchange: topo.exchange.as_str().into(),
        routing_key: topo.routing_key.as_str().into(),
        properties: if a.persistent {
            persistent.clone()
        } else {
            BasicProperties::default()
        },
        size: a.run.size,
        confirm,
        send_window: a.send_window.max(1),
        pace: a.run.pace(),
        limit,
    };
    let mut extra = serde_json::Map::new();

    // A backlog is published (with confirms, so it is all in) before consumers attach.
    if let Some(n) = a.backlog {
        let confirm = a.confirm.max(1000);
        let mut channels = Vec::new();
        for i in 0..a.run.producers {
            let (conn, ch) = open_publisher(&endpoint, i, true).await?;
            conns.push(conn);
            channels.push(ch);
        }
        let until = Until::Published(n);
        let armed = run::arm(&a.run, &stats, until);
        let mut fill = JoinSet::new();
        for (i, ch) in channels.into_iter().enumerate() {
            let p = publish_settings(confirm, Some(a.run.share(n, i)));
            fill.spawn(publish(ch, p, Arc::clone(&stats), stop.clone()));
        }
        let fill_label = format!("{label} fill");
        let filled = run::measure(&a.run, &fill_label, &stats, &rss, until, armed).await;
        while let Some(r) = fill.join_next().await {
            r??;
        }
        extra.insert("backlog".into(), n.into());
        extra.insert(
            "fill_msgs_per_sec".into(),
            filled.publish_rate().msgs_per_sec.round().into(),
        );
    }

    let until = match a.backlog {
        Some(n) => Until::Consumed {
            total: n * topo.queues.len() as u64,
            from_first: true,
        },
        None => run::until_for(&a.run, topo.queues.len() as u64),
    };
    // A drain's count starts before its consumers attach: the broker may deliver the first
    // messages before basic.consume-ok reaches this side.
    let armed = a.backlog.map(|_| run::arm(&a.run, &stats, until));
    let ack_every = (!a.auto_ack).then_some(a.multi_ack_every);
    let consumers_per_queue = a.run.consumers;
    for (qi, q) in topo.queues.iter().enumerate() {
        for ci in 0..consumers_per_queue {
            let (conn, ch, consumer) =
                open_consumer(&endpoint, qi * consumers_per_queue + ci, q, &a).await?;
            conns.push(conn);
            tasks.spawn(consume(
                ch,
                consumer,
                ack_every,
                stats.recorder(),
                stop.clone(),
            ));
        }
    }
    // Every publisher is connected before any starts, so none gets a head start.
    let mut channels = Vec::new();
    if a.backlog.is_none() {
        for i in 0..a.run.producers {
            let (conn, ch) = open_publisher(&endpoint, i, a.confirm > 0).await?;
            conns.push(conn);
            channels.push(ch);
        }
    }
    let armed = armed.unwrap_or_else(|| run::arm(&a.run, &stats, until));
    for (i, ch) in channels.into_iter().enumerate() {
        let p = publish_settings(a.confirm, a.run.count.map(|n| a.run.share(n, i)));
        tasks.spawn(publish(ch, p, Arc::clone(&stats), stop.clone()));
    }
    let window = run::measure(&a.run, &label, &stats, &rss, until, armed).await;
    stop.stop();

    // Clients finish their in-flight work; one that hangs does not hold up the report.
    let mut failure = None;
    let joined = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r.map_err(anyhow::Error::from).and_then(|r| r) {
                failure.get_or_insert(e);
            }
        }
    })
    .await;
    if joined.is_err() {
        tasks.abort_all();
    }
    for conn in conns {
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.close(200, "done".into())).await;
    }
    if !a.keep {
        delete(&setup_ch, &topo).await?;
    }
    let _ = setup.close(200, "done".into()).await;
    if let Some(e) = failure {
        return Err(e.context("a client failed"));
    }
    let report = run::report(
        label,
        "amqp",
        &window,
        &rss,
        extra,
        serde_json::to_value(&a)?,
    );
    Output::from_report(&report, a.run.json.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arguments_are_typed() {
        let t = queue_arguments(&[
            ("x-max-length".into(), "10".into()),
            ("x-queue-type".into(), "classic".into()),
        ]);
        let inner = t.inner();
        assert_eq!(
            inner.get(&ShortString::from("x-max-length")),
            Some(&AMQPValue::LongLongInt(10))
        );
        assert_eq!(
            inner.get(&ShortString::from("x-queue-type")),
            Some(&AMQPValue::LongString(LongString::from("classic")))
        );
    }

    #[test]
    fn a_ca_file_needs_an_amqps_uri() {
        let tls = TlsArgs {
            ca_file: Some("ca.pem".into()),
        };
        let err = Endpoint::new("amqp://127.0.0.1:5672/%2f", &tls)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("needs an amqps:// URI"), "{err}");
        let plain = Endpoint::new("amqps://127.0.0.1:5671/%2f", &TlsArgs::default()).unwrap();
        assert_eq!(plain.tls.cert_chain, None);
    }

    #[test]
    fn key_values_parse() {
        assert_eq!(parse_kv("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_kv("novalue").is_err());
    }
}
