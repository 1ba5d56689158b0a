//! Hot-path measurement: one pipelined publisher and one consumer (prefetch 1000, multiple
//! acks every 100) through an in-process listener, speaking raw frames so the client is not
//! the bottleneck. Not a correctness test:
//! `cargo test --release -p ferrymq-amqp --test throughput -- --ignored --nocapture`.
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

const N: u64 = 500_000;
const BODY: usize = 16;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture in release mode"]
async fn throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
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

    let mut consumer = Peer::open(addr).await;
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
    header.put_u64(BODY as u64);
    header.put_u16(0);
    AmqpFrame::encode(FrameKind::Header, 1, &header, &mut one);
    AmqpFrame::encode(FrameKind::Body, 1, &[7u8; BODY], &mut one);
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();

    let started = Instant::now();
    let consume = tokio::spawn(async move {
        let mut received = 0u64;
        while received < N {
            let f = consumer.next().await;
            if f.kind == FrameKind::Method && peek_ids(&f.payload) == Some((60, 60)) {
                received += 1;
                if received.is_multiple_of(100) {
                    let Ok(AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) =
                        amq_protocol::protocol::parse_class(&f.payload[..]).map(|(_, m)| m)
                    else {
                        panic!("not a deliver");
                    };
                    consumer
                        .send(
                            1,
                            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                                delivery_tag: d.delivery_tag,
                                multiple: true,
                            })),
                        )
                        .await;
                }
            }
        }
        Instant::now()
    });
    let (mut read, mut write) = publisher.socket.into_split();
    let confirms = tokio::spawn(async move {
        let mut buf = publisher.buf;
        let mut confirmed = 0;
        while confirmed < N {
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
    for _ in 0..N / 1000 {
        write.write_all(&batch).await.expect("publish");
    }
    let confirmed = confirms.await.expect("confirms") - started;
    let consumed = consume.await.expect("consumer") - started;
    {
        println!(
            "{N} x {BODY} B: publish+confirm {:.0} msg/s, end-to-end {:.0} msg/s",
            N as f64 / confirmed.as_secs_f64(),
            N as f64 / consumed.as_secs_f64()
        );
    }
    shutdown.cancel();
}
