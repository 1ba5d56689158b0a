//! Hot-path measurement: one pipelined publisher and one consumer (prefetch 1000, multiple
//! acks every 100) through an in-process listener, speaking raw frames so the client is not
//! the bottleneck. Not a correctness test:
//! `cargo test --release -p ferrymq-amqp --test throughput -- --ignored --nocapture`.
//!
//! Environment: `FERRYMQ_BENCH_N` messages (default 500000), `FERRYMQ_BENCH_BODY` bytes each
//! (default 16), `FERRYMQ_BENCH_DURABLE=1` for a durable queue and persistent messages
//! (confirmed once fsynced, group-committed), `FERRYMQ_BENCH_BACKLOG=1` to publish everything
//! before the consumer starts (a drain of a backlog).
#![expect(
    clippy::expect_used,
    reason = "test setup: any failure must fail the test"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection, queue};
use amq_protocol::types::FieldTable;
use bytes::{BufMut, BytesMut};
use ferrymq_amqp::codec::frame::{AmqpFrame, FrameKind};
use ferrymq_amqp::codec::method::{encode_method, peek_ids};
use ferrymq_amqp::{AmqpConfig, AmqpContext, serve_connection};
use ferrymq_core::{Broker, BrokerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Peer {
    socket: TcpStream,
    buf: BytesMut,
}

impl Peer {
    async fn next(&mut self) -> AmqpFrame {
        loop {
            if let Some(frame) = AmqpFrame::decode(&mut self.buf, 131_072).expect("frame") {
                return frame;
            }
            let n = self.socket.read_buf(&mut self.buf).await.expect("read");
            assert!(n > 0, "eof");
        }
    }

    async fn send(&mut self, channel: u16, method: AMQPClass) {
        let mut out = BytesMut::new();
        encode_method(channel, &method, &mut out);
        self.socket.write_all(&out).await.expect("write");
    }

    async fn expect(&mut self, ids: (u16, u16)) {
        loop {
            let f = self.next().await;
            if f.kind == FrameKind::Method && peek_ids(&f.payload) == Some(ids) {
                return;
            }
        }
    }

    async fn open(addr: SocketAddr) -> Self {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        socket.set_nodelay(true).expect("nodelay");
        socket
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .expect("header");
        let mut peer = Self {
            socket,
            buf: BytesMut::with_capacity(1 << 20),
        };
        peer.expect((10, 10)).await;
        peer.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            })),
        )
        .await;
        peer.expect((10, 30)).await;
        peer.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 10,
                frame_max: 131_072,
                heartbeat: 0,
            })),
        )
        .await;
        peer.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        )
        .await;
        peer.expect((10, 41)).await;
        peer.send(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
        peer.expect((20, 11)).await;
        peer
    }
}

/// Consumes `n` messages (prefetch 1000, a multiple ack every 100): (start, end).
async fn consume(mut consumer: Peer, n: u64) -> (Instant, Instant) {
    consumer
        .send(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 1000,
                global: false,
            })),
        )
        .await;
    consumer.expect((60, 11)).await;
    consumer
        .send(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "bench".into(),
                consumer_tag: "bench".into(),
                ..basic::Consume::default()
            })),
        )
        .await;
    consumer.expect((60, 21)).await;
    let started = Instant::now();
    let mut received = 0u64;
    while received < n {
        let f = consumer.next().await;
        if f.kind == FrameKind::Method && peek_ids(&f.payload) == Some((60, 60)) {
            received += 1;
            if received.is_multiple_of(100) {
                let delivery_tag = match amq_protocol::protocol::parse_class(&f.payload[..]) {
                    Ok((_, AMQPClass::Basic(basic::AMQPMethod::Deliver(d)))) => {
                        Some(d.delivery_tag)
                    }
                    _ => None,
                }
                .expect("a basic.deliver");
                consumer
                    .send(
                        1,
                        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                            delivery_tag,
                            multiple: true,
                        })),
                    )
                    .await;
            }
        }
    }
    (started, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture in release mode"]
async fn throughput() {
    let n = env_or("FERRYMQ_BENCH_N", 500_000).max(1000) / 1000 * 1000;
    let body = usize::try_from(env_or("FERRYMQ_BENCH_BODY", 16)).expect("body size");
    let durable = env_or("FERRYMQ_BENCH_DURABLE", 0) == 1;
    let backlog = env_or("FERRYMQ_BENCH_BACKLOG", 0) == 1;
    let dir =
        tempfile::tempdir_in(std::env::var("FERRYMQ_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .expect("tempdir");
    let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).expect("broker");
    let ctx = AmqpContext::new(broker, AmqpConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        while let Ok((socket, peer)) = listener.accept().await {
            tokio::spawn(serve_connection(
                socket,
                peer,
                Arc::clone(&ctx),
                token.clone(),
            ));
        }
    });

    let mut publisher = Peer::open(addr).await;
    publisher
        .send(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "bench".into(),
                durable,
                ..queue::Declare::default()
            })),
        )
        .await;
    publisher.expect((50, 11)).await;
    publisher
        .send(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        )
        .await;
    publisher.expect((85, 11)).await;

    let consumer = Peer::open(addr).await;

    // One publish: method + header + body, repeated into one buffer per batch.
    let mut one = BytesMut::new();
    encode_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "bench".into(),
            mandatory: false,
            immediate: false,
        })),
        &mut one,
    );
    let mut header = BytesMut::new();
    header.put_u16(60);
    header.put_u16(0);
    header.put_u64(body as u64);
    if durable {
        header.put_u16(1 << 12); // delivery-mode present
        header.put_u8(2); // persistent
    } else {
        header.put_u16(0);
    }
    AmqpFrame::encode(FrameKind::Header, 1, &header, &mut one);
    AmqpFrame::encode(FrameKind::Body, 1, &vec![7u8; body], &mut one);
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();

    let started = Instant::now();
    let (running, idle) = if backlog {
        (None, Some(consumer))
    } else {
        (Some(tokio::spawn(consume(consumer, n))), None)
    };
    let (mut read, mut write) = publisher.socket.into_split();
    let confirms = tokio::spawn(async move {
        let mut buf = publisher.buf;
        let mut confirmed = 0;
        while confirmed < n {
            match AmqpFrame::decode(&mut buf, 131_072).expect("frame") {
                Some(f) => {
                    if let Ok(AMQPClass::Basic(basic::AMQPMethod::Ack(a))) =
                        amq_protocol::protocol::parse_class(&f.payload[..]).map(|(_, m)| m)
                    {
                        confirmed = a.delivery_tag;
                    }
                }
                None => {
                    read.read_buf(&mut buf).await.expect("read");
                }
            }
        }
        Instant::now()
    });
    for _ in 0..n / 1000 {
        write.write_all(&batch).await.expect("publish");
    }
    let confirmed = confirms.await.expect("confirms") - started;
    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    let mode = if durable {
        "durable+persistent"
    } else {
        "transient"
    };
    if let Some(running) = running {
        let (_, done) = running.await.expect("consumer");
        println!(
            "{n} x {body} B {mode}: publish+confirm {:.0} msg/s, end-to-end {:.0} msg/s",
            rate(confirmed),
            rate(done - started)
        );
    } else {
        let peer = idle.expect("consumer connection");
        let (began, done) = tokio::spawn(consume(peer, n)).await.expect("consumer");
        println!(
            "{n} x {body} B {mode}: publish+confirm {:.0} msg/s (no consumer), then drain {:.0} msg/s",
            rate(confirmed),
            rate(done - began)
        );
    }
    shutdown.cancel();
}
