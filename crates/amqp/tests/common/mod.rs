//! Shared by the black-box tests: an in-process AMQP listener and a raw-frame client.
#![allow(dead_code, reason = "each test file uses a different part")]
#![expect(
    clippy::expect_used,
    reason = "test setup: any failure must fail the test"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::BytesMut;
use ferrymq_amqp::codec::AmqpFrame;
use ferrymq_amqp::codec::method::encode_method;
use ferrymq_amqp::{AmqpConfig, AmqpContext, serve_connection};
use ferrymq_core::{Broker, BrokerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// An AMQP listener on `bind` serving a fresh broker.
pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

pub async fn server(bind: &str, config: AmqpConfig) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).expect("broker");
    let ctx = AmqpContext::new(broker, config);
    let listener = TcpListener::bind(bind).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    // Under a paused clock the runtime jumps to the next timer whenever it would park, even
    // while bytes are still in flight on loopback; a short tick bounds each jump, so that a
    // handshake timeout cannot fire between a client's send and the server's read.
    let ticking = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = ticking.cancelled() => return,
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((socket, peer)) = accepted else { return };
                    tokio::spawn(serve_connection(socket, peer, Arc::clone(&ctx), token.clone()));
                }
                () = token.cancelled() => return,
            }
        }
    });
    Server {
        addr,
        shutdown,
        _dir: dir,
    }
}

/// A client speaking raw frames.
pub struct Raw {
    pub socket: TcpStream,
    pub buf: BytesMut,
}

pub enum Got {
    Frame(AmqpFrame),
    Eof,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        socket
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .expect("header");
        Self {
            socket,
            buf: BytesMut::new(),
        }
    }

    pub async fn next(&mut self) -> Got {
        loop {
            if let Some(frame) = AmqpFrame::decode(&mut self.buf, 131_072).expect("frame") {
                return Got::Frame(frame);
            }
            match self.socket.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Got::Eof,
                Ok(_) => {}
            }
        }
    }

    /// The next method (any channel), or `None` at end of stream.
    pub async fn method(&mut self) -> Option<AMQPClass> {
        loop {
            match self.next().await {
                Got::Eof => return None,
                Got::Frame(f) => {
                    if let Ok((_, m)) = amq_protocol::protocol::parse_class(&f.payload[..]) {
                        return Some(m);
                    }
                }
            }
        }
    }

    pub async fn send(&mut self, channel: u16, method: &AMQPClass) {
        let mut out = BytesMut::new();
        encode_method(channel, method, &mut out);
        self.socket.write_all(&out).await.expect("write");
    }

    /// start-ok with PLAIN and `authentication_failure_close`; returns the reply.
    pub async fn login(&mut self, user: &str, password: &str) -> Option<AMQPClass> {
        assert!(matches!(
            self.method().await,
            Some(AMQPClass::Connection(connection::AMQPMethod::Start(_)))
        ));
        let mut caps = FieldTable::default();
        caps.insert(
            "authentication_failure_close".into(),
            AMQPValue::Boolean(true),
        );
        let mut props = FieldTable::default();
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        self.send(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: format!("\0{user}\0{password}").into(),
                locale: "en_US".into(),
            })),
        )
        .await;
        self.method().await
    }

    /// Logs in as guest, tunes with `heartbeat`, opens `/`.
    pub async fn open(&mut self, heartbeat: u16) {
        assert!(matches!(
            self.login("guest", "guest").await,
            Some(AMQPClass::Connection(connection::AMQPMethod::Tune(_)))
        ));
        self.send(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 10,
                frame_max: 131_072,
                heartbeat,
            })),
        )
        .await;
        self.send(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        )
        .await;
        assert!(matches!(
            self.method().await,
            Some(AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))
        ));
    }
}
