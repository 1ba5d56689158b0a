//! Heartbeats under a paused clock: the broker sends one when it has been idle for half the
//! negotiated interval, and drops a peer silent for two intervals, not earlier.

mod common;

use std::time::Duration;

use ferrymq_amqp::AmqpConfig;
use ferrymq_amqp::codec::FrameKind;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use common::{Got, Raw, server};

/// With a paused clock, time jumps to the next timer whenever the runtime waits for the
/// socket, including during the handshake: keep its timeout out of reach.
fn config() -> AmqpConfig {
    AmqpConfig {
        handshake_timeout: 365 * 24 * 3600,
        ..AmqpConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeats_are_sent_and_a_silent_peer_is_dropped_after_two_intervals() {
    let server = server("127.0.0.1:0", config()).await;
    let mut raw = Raw::connect(server.addr).await;
    raw.open(10).await;
    let opened = Instant::now();

    // Silent client: the broker's first heartbeat comes after ~5 s (half of 10 s).
    let Got::Frame(frame) = raw.next().await else {
        panic!("expected a heartbeat, got end of stream");
    };
    assert_eq!(frame.kind, FrameKind::Heartbeat);
    let first = opened.elapsed();
    assert!(
        first >= Duration::from_secs(5) && first < Duration::from_secs(6),
        "{first:?}"
    );

    // A heartbeat from the client at 15 s keeps it alive past the 20 s mark.
    tokio::time::sleep_until(opened + Duration::from_secs(15)).await;
    raw.socket
        .write_all(&[8, 0, 0, 0, 0, 0, 0, 0xCE])
        .await
        .expect("heartbeat");
    let dropped = loop {
        match raw.next().await {
            Got::Frame(f) => assert_eq!(f.kind, FrameKind::Heartbeat),
            Got::Eof => break opened.elapsed(),
        }
    };
    // Last sign of life at 15 s: dropped two intervals later, at ~35 s.
    assert!(
        dropped >= Duration::from_secs(35) && dropped < Duration::from_secs(37),
        "{dropped:?}"
    );
    server.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn heartbeat_zero_disables_both_directions() {
    let server = server("127.0.0.1:0", config()).await;
    let mut raw = Raw::connect(server.addr).await;
    raw.open(0).await;
    let outcome = tokio::time::timeout(Duration::from_secs(3600), raw.next()).await;
    assert!(
        outcome.is_err(),
        "nothing sent and no disconnect within an hour"
    );
    server.shutdown.cancel();
}
