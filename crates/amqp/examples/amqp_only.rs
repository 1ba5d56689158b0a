//! A broker with only the AMQP frontend, for developing and testing it on its own.
//!
//! Accepts the flags the Python test harness passes to `ferrymq` and prints the same
//! ready line, so `FERRYMQ_BIN=target/debug/examples/amqp_only pytest tests/amqp` works
//! without the server crate. Kafka and HTTP listeners are bound but close at once.
//!
//! `cargo run -p ferrymq-amqp --example amqp_only -- --amqp-listen 127.0.0.1:5672`

use std::net::SocketAddr;

use ferrymq_amqp::{AmqpConfig, AmqpContext, serve_connection};
use ferrymq_core::{Broker, BrokerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut data_dir = std::path::PathBuf::from("data");
    let mut amqp: SocketAddr = "127.0.0.1:5672".parse()?;
    let mut kafka: SocketAddr = "127.0.0.1:0".parse()?;
    let mut http: SocketAddr = "127.0.0.1:0".parse()?;
    let mut level = "info".to_owned();
    let mut config = AmqpConfig::default();
    // The server's environment layer: FERRYMQ_AMQP_<KEY> for the keys tests need.
    let env = |key: &str| std::env::var(format!("FERRYMQ_AMQP_{key}")).ok();
    if let Some(v) = env("HEARTBEAT") {
        config.heartbeat = v.parse()?;
    }
    if let Some(v) = env("FRAME_MAX") {
        config.frame_max = v.parse()?;
    }
    if let Some(v) = env("CHANNEL_MAX") {
        config.channel_max = v.parse()?;
    }
    if let Some(v) = env("MEMORY_HIGH_WATERMARK") {
        config.memory_high_watermark = v.parse()?;
    }
    if let Some(v) = env("MAX_MESSAGE_SIZE") {
        config.max_message_size = v.parse()?;
    }
    while let Some(flag) = args.next() {
        let value = args.next().ok_or("missing value")?;
        match flag.as_str() {
            "--data-dir" => data_dir = value.into(),
            "--amqp-listen" => amqp = value.parse()?,
            "--kafka-listen" => kafka = value.parse()?,
            "--http-listen" => http = value.parse()?,
            "--log-level" => level = value,
            "--memory-high-watermark" => config.memory_high_watermark = value.parse()?,
            "--heartbeat" => config.heartbeat = value.parse()?,
            "--frame-max" => config.frame_max = value.parse()?,
            "--channel-max" => config.channel_max = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let mut broker_config = BrokerConfig::with_data_dir(&data_dir);
    broker_config.vhosts.push("other".to_owned());
    let broker = Broker::open(broker_config)?;
    let ctx = AmqpContext::new(broker, config);
    let amqp = TcpListener::bind(amqp).await?;
    let kafka = TcpListener::bind(kafka).await?;
    let http = TcpListener::bind(http).await?;
    tracing::info!(
        "ferrymq ready amqp={} kafka={} http={}",
        amqp.local_addr()?,
        kafka.local_addr()?,
        http.local_addr()?
    );
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
    #[cfg(unix)]
    {
        let token = shutdown.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            term.recv().await;
            token.cancel();
        });
    }
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        tokio::select! {
            accepted = amqp.accept() => {
                let (socket, peer) = accepted?;
                tracker.spawn(serve_connection(socket, peer, ctx.clone(), shutdown.clone()));
            }
            _ = kafka.accept() => {}
            _ = http.accept() => {}
            () = shutdown.cancelled() => break,
        }
    }
    tracker.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait()).await;
    Ok(())
}
