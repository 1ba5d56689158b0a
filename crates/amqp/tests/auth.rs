//! Users from configuration, and RabbitMQ's loopback rule: `guest` may only log in from a
//! loopback address. The broker listens on every interface and the client connects through
//! the machine's first non-loopback IPv4 address (the test is skipped without one).

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};

use amq_protocol::protocol::{AMQPClass, connection};
use ferrymq_amqp::AmqpConfig;
use ferrymq_auth::UserConfig;

use common::{Raw, server};

/// A local address other routes would use (no packet is sent by a UDP connect).
fn non_loopback_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

async fn login(addr: SocketAddr, user: &str, password: &str) -> Option<AMQPClass> {
    Raw::connect(addr).await.login(user, password).await
}

#[tokio::test]
async fn guest_is_refused_from_a_remote_address_but_other_users_are_not() {
    let Some(ip) = non_loopback_ip() else {
        return;
    };
    let mut config = AmqpConfig::default();
    config.users.push(UserConfig::new("app", "secret", &["/"]));
    let server = server("0.0.0.0:0", config).await;
    let port = server.addr.port();

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
    server.shutdown.cancel();
}
