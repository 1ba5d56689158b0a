//! `GET /metrics` (aggregated) and `GET /metrics/per-object`: Prometheus text exposition.
//!
//! Names follow RabbitMQ's prometheus plugin (`rabbitmq_*`) where it has an equivalent, so
//! its Grafana dashboards mostly work, and kafka_exporter's (`kafka_topic_*`,
//! `kafka_consumergroup_*`) for Kafka. As RabbitMQ's, the aggregated form sums every queue
//! into one unlabelled series per figure, so a scrape stays small with 10,000 queues; the
//! per-object form labels every queue. Per-vhost sums are in both (`ferrymq_vhost_*`).
//!
//! ```text
//! rabbitmq_queue_messages_ready                   (per-object: {vhost, queue})
//! rabbitmq_queue_messages_published_total         ... delivered, acked, redelivered,
//!                                                 dead_lettered
//! ferrymq_vhost_messages_ready{vhost}             the same figures per vhost
//! rabbitmq_connections, rabbitmq_channels, rabbitmq_queues, rabbitmq_consumers
//! kafka_topic_partition_current_offset{topic, partition} ... oldest_offset, log size
//! kafka_consumergroup_current_offset{consumergroup, topic, partition}, ..._lag
//! kafka_network_requestmetrics_* {request}         count and latency histogram per API
//! ferrymq_log_fsync_duration_seconds               histogram
//! ferrymq_storage_failed_logs                      logs refusing writes after an I/O error
//! rabbitmq_process_resident_memory_bytes, rabbitmq_process_open_fds
//! ```

use ferrymq_core::alarms::Resource;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferrymq_core::histogram::{BUCKETS, FSYNC_LATENCY, HistogramSnapshot};
use ferrymq_core::queue::QueueCounts;

use crate::context::AdminContext;
use crate::process;

/// Builds one exposition, a family at a time.
#[derive(Default)]
struct Writer {
    out: String,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: f64) {
        let _ = writeln!(self.out, "{name}{} {value}", labels(pairs));
    }

    fn histogram(&mut self, name: &str, pairs: &[(&str, &str)], h: &HistogramSnapshot) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            let le = bound.to_string();
            let mut with = pairs.to_vec();
            with.push(("le", &le));
            let count = h.cumulative.get(i).copied().unwrap_or(0);
            self.sample(&format!("{name}_bucket"), &with, count as f64);
        }
        let mut with = pairs.to_vec();
        with.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &with, h.count as f64);
        self.sample(&format!("{name}_sum"), pairs, h.sum_seconds);
        self.sample(&format!("{name}_count"), pairs, h.count as f64);
    }
}

/// One queue's (or one vhost's summed) figures.
#[derive(Default, Clone)]
struct Row {
    ready: u64,
    unacked: u64,
    consumers: u64,
    counts: QueueCounts,
}

impl Row {
    fn add(&mut self, other: &Row) {
        self.ready += other.ready;
        self.unacked += other.unacked;
        self.consumers += other.consumers;
        self.counts.add(&other.counts);
    }
}

type Gauge = (&'static str, &'static str, fn(&Row) -> u64);

const QUEUE_GAUGES: [Gauge; 4] = [
    (
        "rabbitmq_queue_messages_ready",
        "Messages ready to be delivered to consumers",
        |r| r.ready,
    ),
    (
        "rabbitmq_queue_messages_unacked",
        "Messages delivered to consumers but not yet acknowledged",
        |r| r.unacked,
    ),
    (
        "rabbitmq_queue_messages",
        "Sum of ready and unacknowledged messages",
        |r| r.ready + r.unacked,
    ),
    ("rabbitmq_queue_consumers", "Consumers on a queue", |r| {
        r.consumers
    }),
];

const QUEUE_COUNTERS: [Gauge; 5] = [
    (
        "rabbitmq_queue_messages_published_total",
        "Messages published into a queue",
        |r| r.counts.publish,
    ),
    (
        "rabbitmq_queue_messages_delivered_total",
        "Messages delivered to consumers or fetched with basic.get",
        |r| r.counts.deliver_get(),
    ),
    (
        "rabbitmq_queue_messages_acked_total",
        "Messages acknowledged by consumers",
        |r| r.counts.ack,
    ),
    (
        "rabbitmq_queue_messages_redelivered_total",
        "Messages redelivered to consumers",
        |r| r.counts.redeliver,
    ),
    (
        "rabbitmq_queue_messages_dead_lettered_total",
        "Messages dead-lettered or dropped (expired, rejected, over a limit)",
        |r| r.counts.dead_lettered,
    ),
];

/// The exposition; `per_object` labels each queue, else queues are summed per vhost.
pub fn render(ctx: &AdminContext, per_object: bool) -> String {
    let mut w = Writer::default();
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    let mut vhost_rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut queue_count = 0u64;
    for vhost in ctx.broker.vhosts() {
        let total = vhost_rows.entry(vhost.name().to_owned()).or_default();
        for queue in vhost.queue_list() {
            let o = queue.overview();
            let row = Row {
                ready: o.ready,
                unacked: o.unacked,
                consumers: u64::from(o.consumers),
                counts: queue.stats().snapshot(),
            };
            total.add(&row);
            queue_count += 1;
            if per_object {
                rows.insert((vhost.name().to_owned(), queue.name().to_owned()), row);
            }
        }
        for stream in vhost.streams().list() {
            let published = stream.appended();
            let row = Row {
                ready: stream.message_count(),
                consumers: u64::from(stream.reader_count()),
                counts: QueueCounts {
                    publish: published,
                    ..QueueCounts::default()
                },
                ..Row::default()
            };
            total.add(&row);
            queue_count += 1;
            if per_object {
                rows.insert((vhost.name().to_owned(), stream.name().to_owned()), row);
            }
        }
    }

    w.family("rabbitmq_identity_info", "gauge", "Node and cluster names");
    w.sample(
        "rabbitmq_identity_info",
        &[
            ("rabbitmq_node", &ctx.node),
            ("rabbitmq_cluster", &ctx.cluster_name),
        ],
        1.0,
    );
    w.family("rabbitmq_build_info", "gauge", "Product and version");
    w.sample(
        "rabbitmq_build_info",
        &[
            ("product", "ferrymq"),
            ("product_version", env!("CARGO_PKG_VERSION")),
            ("rabbitmq_version", crate::context::RABBITMQ_VERSION),
        ],
        1.0,
    );
    let mut overall = Row::default();
    for row in vhost_rows.values() {
        overall.add(row);
    }
    let families = QUEUE_GAUGES
        .iter()
        .map(|g| (g, "gauge"))
        .chain(QUEUE_COUNTERS.iter().map(|c| (c, "counter")));
    for ((name, help, get), kind) in families {
        w.family(name, kind, help);
        if per_object {
            for ((vhost, queue), row) in &rows {
                w.sample(name, &[("vhost", vhost), ("queue", queue)], get(row) as f64);
            }
        } else {
            w.sample(name, &[], get(&overall) as f64);
        }
        let per_vhost = name.replacen("rabbitmq_queue_", "ferrymq_vhost_", 1);
        w.family(&per_vhost, kind, &format!("{help}, summed per vhost"));
        for (vhost, row) in &vhost_rows {
            w.sample(&per_vhost, &[("vhost", vhost)], get(row) as f64);
        }
    }
    let connections = ctx.broker.connections().list();
    let channels: usize = connections.iter().map(|c| c.channel_count()).sum();
    let alarms = ctx.broker.alarms();
    let usage = alarms.usage();
    let consumers: u64 = vhost_rows.values().map(|r| r.consumers).sum();
    for (name, help, value) in [
        (
            "rabbitmq_connections",
            "Open client connections (AMQP and Kafka)",
            connections.len() as f64,
        ),
        ("rabbitmq_channels", "Open AMQP channels", channels as f64),
        (
            "rabbitmq_queues",
            "Queues and stream queues",
            queue_count as f64,
        ),
        (
            "rabbitmq_consumers",
            "Consumers of queues and stream queues",
            consumers as f64,
        ),
        (
            "rabbitmq_process_resident_memory_bytes",
            "Resident memory of the broker process",
            process::rss_bytes() as f64,
        ),
        (
            "rabbitmq_process_open_fds",
            "Open file descriptors",
            process::open_fds() as f64,
        ),
        (
            "rabbitmq_process_max_fds",
            "Limit on open file descriptors",
            process::max_fds() as f64,
        ),
        (
            "rabbitmq_alarms_memory_used_watermark",
            "1 while the memory alarm is in effect",
            f64::from(u8::from(alarms.is_set(Resource::Memory))),
        ),
        (
            "rabbitmq_alarms_free_disk_space_watermark",
            "1 while the disk alarm is in effect",
            f64::from(u8::from(alarms.is_set(Resource::Disk))),
        ),
        (
            "rabbitmq_resident_memory_limit_bytes",
            "The memory high watermark",
            usage.memory_limit as f64,
        ),
        (
            "ferrymq_memory_used_bytes",
            "Memory held by the broker's allocator, compared with the watermark",
            usage.memory_used as f64,
        ),
        (
            "rabbitmq_disk_space_available_bytes",
            "Free space on the data directory's file system",
            usage.disk_free as f64,
        ),
        (
            "rabbitmq_disk_space_available_limit_bytes",
            "The free disk space limit",
            usage.disk_free_limit as f64,
        ),
        (
            "ferrymq_storage_failed_logs",
            "Logs that refuse writes since a write or fsync failed (a restart recovers them)",
            ferrymq_log::failed_logs().len() as f64,
        ),
    ] {
        w.family(name, "gauge", help);
        w.sample(name, &[], value);
    }
    kafka(&mut w, ctx);
    w.family(
        "ferrymq_log_fsync_duration_seconds",
        "histogram",
        "Duration of fdatasync calls of every log (queues, streams, definitions, offsets)",
    );
    w.histogram(
        "ferrymq_log_fsync_duration_seconds",
        &[],
        &FSYNC_LATENCY.snapshot(),
    );
    w.out
}

fn kafka(w: &mut Writer, ctx: &AdminContext) {
    let Ok(vhost) = ctx.broker.kafka_vhost() else {
        return;
    };
    let mut streams = vhost.streams().list();
    streams.sort_by(|a, b| a.name().cmp(b.name()));
    w.family("kafka_brokers", "gauge", "Brokers in the cluster");
    w.sample("kafka_brokers", &[], 1.0);
    w.family("kafka_topic_partitions", "gauge", "Partitions of a topic");
    for s in &streams {
        w.sample(
            "kafka_topic_partitions",
            &[("topic", s.name())],
            f64::from(s.partition_count()),
        );
    }
    type PartitionFigure = (
        &'static str,
        &'static str,
        fn(&ferrymq_core::stream::Partition) -> u64,
    );
    let figures: [PartitionFigure; 3] = [
        (
            "kafka_topic_partition_current_offset",
            "Log end offset of a partition",
            |p| p.log_end_offset(),
        ),
        (
            "kafka_topic_partition_oldest_offset",
            "Log start offset of a partition",
            |p| p.log_start_offset(),
        ),
        ("kafka_log_log_size", "Bytes of a partition's log", |p| {
            p.size_bytes()
        }),
    ];
    for (name, help, get) in figures {
        w.family(name, "gauge", help);
        for s in &streams {
            for p in s.partitions().iter() {
                let partition = p.index().to_string();
                w.sample(
                    name,
                    &[("topic", s.name()), ("partition", &partition)],
                    get(p) as f64,
                );
            }
        }
    }
    let Some(k) = &ctx.kafka else {
        return;
    };
    let groups = k.groups.list();
    let mut offsets = Vec::new();
    for g in &groups {
        for (topic, partition, committed) in k.groups.fetch_offsets(&g.group_id, None) {
            let Some(committed) = committed else { continue };
            let end = vhost
                .streams()
                .get(&topic)
                .and_then(|s| s.partition(u32::try_from(partition).ok()?))
                .map(|p| p.high_watermark());
            offsets.push((g.group_id.clone(), topic, partition, committed.offset, end));
        }
    }
    w.family(
        "kafka_consumergroup_members",
        "gauge",
        "Members of a consumer group",
    );
    for g in &groups {
        let members = k.groups.describe(&g.group_id).members.len();
        w.sample(
            "kafka_consumergroup_members",
            &[("consumergroup", &g.group_id)],
            members as f64,
        );
    }
    w.family(
        "kafka_consumergroup_current_offset",
        "gauge",
        "Committed offset of a group on a partition",
    );
    for (group, topic, partition, offset, _) in &offsets {
        let p = partition.to_string();
        w.sample(
            "kafka_consumergroup_current_offset",
            &[
                ("consumergroup", group),
                ("topic", topic),
                ("partition", &p),
            ],
            *offset as f64,
        );
    }
    w.family(
        "kafka_consumergroup_lag",
        "gauge",
        "Records between a group's committed offset and the partition's end",
    );
    for (group, topic, partition, offset, end) in &offsets {
        let Some(end) = end else { continue };
        let lag = end.saturating_sub(u64::try_from(*offset).unwrap_or(0));
        let p = partition.to_string();
        w.sample(
            "kafka_consumergroup_lag",
            &[
                ("consumergroup", group),
                ("topic", topic),
                ("partition", &p),
            ],
            lag as f64,
        );
    }
    let requests = k.requests.snapshot();
    w.family(
        "kafka_network_requestmetrics_requests_total",
        "counter",
        "Kafka requests received, by API",
    );
    for op in &requests {
        w.sample(
            "kafka_network_requestmetrics_requests_total",
            &[("request", &op.name)],
            op.requests as f64,
        );
    }
    w.family(
        "kafka_network_requestmetrics_totaltime_seconds",
        "histogram",
        "Time from a Kafka request's arrival to its response being ready, by API",
    );
    for op in &requests {
        w.histogram(
            "kafka_network_requestmetrics_totaltime_seconds",
            &[("request", &op.name)],
            &op.latency,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_are_cumulative() {
        assert_eq!(labels(&[("q", "a\"b\\c\nd")]), "{q=\"a\\\"b\\\\c\\nd\"}");
        let mut w = Writer::default();
        let h = ferrymq_core::histogram::Histogram::new();
        h.observe(std::time::Duration::from_millis(3));
        w.histogram("x_seconds", &[], &h.snapshot());
        assert!(
            w.out.contains("x_seconds_bucket{le=\"0.0025\"} 0\n"),
            "{}",
            w.out
        );
        assert!(
            w.out.contains("x_seconds_bucket{le=\"0.005\"} 1\n"),
            "{}",
            w.out
        );
        assert!(
            w.out.contains("x_seconds_bucket{le=\"+Inf\"} 1\n"),
            "{}",
            w.out
        );
        assert!(w.out.contains("x_seconds_count 1\n"), "{}", w.out);
    }
}
