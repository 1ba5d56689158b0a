//! Users from configuration, and RabbitMQ's loopback rule: `guest` may only log in from a
//! loopback address. The broker listens on every interface and the client connects through
//! the machine's first non-loopback IPv4 address (the test is skipped without one).
#![expect(
    clippy::expect_used,
    reason = "test setup: any failure must fail the test"
)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;

use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::BytesMut;
use ferrymq_amqp::codec::AmqpFrame;
use ferrymq_amqp::codec::method::encode_method;
use ferrymq_amqp::{AmqpConfig, AmqpContext, serve_connection};
use ferrymq_core::auth::UserConfig;
use ferrymq_core::{Broker, BrokerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A local address other routes would use (no packet is sent by a UDP connect).
fn non_loopback_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

async fn method(socket: &mut TcpStream, buf: &mut BytesMut) -> Option<AMQPClass> {
    loop {
        if let Some(frame) = AmqpFrame::decode(buf, 131_072).expect("frame") {
            let (_, m) = amq_protocol::protocol::parse_class(&frame.payload[..]).ok()?;
            return Some(m);
        }
        if socket.read_buf(buf).await.expect("read") == 0 {
            return None;
        }
    }
}

async fn send(socket: &mut TcpStream, method: &AMQPClass) {
    let mut out = BytesMut::new();
    encode_method(0, method, &mut out);
    socket.write_all(&out).await.expect("write");
}

/// Logs in as `user`; returns the first method after start-ok (tune on success).
async fn login(addr: SocketAddr, user: &str, password: &str) -> Option<AMQPClass> {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket
        .write_all(b"AMQP\x00\x00\x09\x01")
        .await
        .expect("header");
    let mut buf = BytesMut::new();
    assert!(matches!(
        method(&mut socket, &mut buf).await,
        Some(AMQPClass::Connection(connection::AMQPMethod::Start(_)))
    ));
    let mut caps = FieldTable::default();
    caps.insert(
        "authentication_failure_close".into(),
        AMQPValue::Boolean(true),
    );
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    send(
        &mut socket,
        &AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response: format!("\0{user}\0{password}").into(),
            locale: "en_US".into(),
        })),
    )
    .await;
    method(&mut socket, &mut buf).await
}

#[tokio::test]
async fn guest_is_refused_from_a_remote_address_but_other_users_are_not() {
    let Some(ip) = non_loopback_ip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).expect("broker");
    let mut config = AmqpConfig::default();
    config.users.push(UserConfig::new("app", "secret", &["/"]));
    let ctx = AmqpContext::new(broker, config);
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
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

    let remote = SocketAddr::new(ip, port);
    match login(remote, "guest", "guest").await {
        Some(AMQPClass::Connection(connection::AMQPMethod::Close(close))) => {
            assert_eq!(close.reply_code, 403);
            assert!(close.reply_text.as_str().starts_with("ACCESS_REFUSED"));
        }
        other => panic!("guest from {ip}: expected connection.close 403, got {other:?}"),
    }
    assert!(matches!(
        login(remote, "app", "secret").await,
        Some(AMQPClass::Connection(connection::AMQPMethod::Tune(_)))
    ));
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(matches!(
        login(local, "guest", "guest").await,
        Some(AMQPClass::Connection(connection::AMQPMethod::Tune(_)))
    ));
    match login(local, "app", "wrong").await {
        Some(AMQPClass::Connection(connection::AMQPMethod::Close(close))) => {
            assert_eq!(close.reply_code, 403);
        }
        other => panic!("wrong password: expected connection.close 403, got {other:?}"),
    }
    shutdown.cancel();
}
