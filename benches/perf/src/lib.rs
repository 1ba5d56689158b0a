//! `ferrymq-perf`: a load generator for message brokers, AMQP 0-9-1 and Kafka.
//!
//! It drives a broker through independent client libraries (lapin for AMQP, rdkafka, i.e.
//! librdkafka, for Kafka) so the same command measures ferrymq, RabbitMQ or Apache Kafka the
//! same way. Every message carries its send time (nanoseconds since the Unix epoch, little
//! endian, in its first 8 bytes); consumers turn that into end-to-end latency, kept in HDR
//! histograms. Throughput counts what the broker accepted (confirmed, when confirms are on)
//! and what consumers received, over the measured window only (after `--warmup`).
//!
//! ```text
//! ferrymq-perf amqp  --uri amqp://guest:guest@127.0.0.1:5672/%2f --size 16 --duration 10
//! ferrymq-perf kafka --bootstrap 127.0.0.1:9092 --partitions 3 --acks all --linger-ms 5
//! ferrymq-perf amqp  --uri amqps://guest:guest@127.0.0.1:5671/%2f --ca-file ca.pem
//! ferrymq-perf kafka --bootstrap 127.0.0.1:9093 --security-protocol ssl --ca-file ca.pem
//! ferrymq-perf connections --uri amqp://... --count 10000 --broker-pid 1234
//! ```
//!
//! Output: a progress line per `--interval` on stderr, one summary line on stdout, and with
//! `--json FILE` (`-` for stdout) the same figures as a JSON object.
//!
//! Layout: `amqp.rs` (lapin publishers/consumers), `kafka.rs` (rdkafka producers/consumers),
//! `connections.rs` (idle connection count test), `run.rs` (warm-up, measured window,
//! stop conditions, shared by both protocols), `stats.rs` (counters, histograms, payload
//! stamp), `report.rs` (progress, summary, JSON), `rss.rs` (broker RSS from /proc), `tls.rs`
//! (the CA to trust over TLS, both protocols).

pub mod amqp;
pub mod connections;
pub mod kafka;
pub mod report;
pub mod rss;
pub mod run;
pub mod stats;
pub mod tls;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrymq-perf",
    version,
    about = "Load generator for AMQP 0-9-1 and Kafka brokers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Publish and consume over AMQP 0-9-1 (lapin).
    Amqp(amqp::AmqpArgs),
    /// Produce and consume over the Kafka protocol (rdkafka / librdkafka).
    Kafka(kafka::KafkaArgs),
    /// Open many idle AMQP connections and report the broker's memory per connection.
    Connections(connections::ConnectionsArgs),
}

impl Command {
    /// Tokio worker threads the command asked for.
    pub fn threads(&self) -> usize {
        match self {
            Command::Amqp(a) => a.run.threads,
            Command::Kafka(k) => k.run.threads,
            Command::Connections(c) => c.threads,
        }
        .max(1)
    }

    /// Runs the command to its report.
    pub async fn execute(self) -> anyhow::Result<report::Output> {
        match self {
            Command::Amqp(args) => amqp::run(args).await,
            Command::Kafka(args) => kafka::run(args).await,
            Command::Connections(args) => connections::run(args).await,
        }
    }
}
