//! `[amqp]`: the AMQP listener, what it offers in connection.tune, users, and limits.

use std::net::SocketAddr;

use ferrymq_auth::UserConfig;
use serde::{Deserialize, Serialize};

/// The certificate field EXTERNAL takes the user name from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertLogin {
    /// The subject's common name (`alice`).
    CommonName,
    /// The whole subject, RFC 2253 (`CN=alice,O=Example`).
    DistinguishedName,
}

/// The AMQP frontend's configuration (the server composes it as the `[amqp]` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    pub listen: SocketAddr,
    /// A second listener, for AMQP over TLS (`amqps`), with the certificates of `[tls]`.
    pub tls_enabled: bool,
    pub tls_listen: SocketAddr,
    /// Which part of a client certificate names the user when a client logs in with
    /// EXTERNAL (RabbitMQ's `ssl_cert_login_from`).
    pub ssl_cert_login_from: CertLogin,
    /// AMQP connections on this node (all AMQP listeners; RabbitMQ's `connection_max`): a
    /// further `connection.open` is refused with 530 NOT_ALLOWED.
    pub max_connections: usize,
    /// Heartbeat timeout proposed to clients, in seconds; 0 disables heartbeats.
    pub heartbeat: u16,
    /// Largest frame, in bytes, a client may send or be sent.
    pub frame_max: u32,
    /// Highest channel number a client may open.
    pub channel_max: u16,
    /// Users and the vhosts they may open. The default is RabbitMQ's: guest/guest on `/`.
    pub users: Vec<UserConfig>,
    /// Users that may only connect from a loopback address (RabbitMQ's `loopback_users`).
    pub loopback_users: Vec<String>,
    /// Largest message body accepted (RabbitMQ's `max_message_size`), in bytes.
    pub max_message_size: u64,
    /// Deliveries a consumer may have queued for its socket before the queue moves on to
    /// other consumers (credit returned as they are written).
    pub consumer_window: u32,
    /// Seconds a client has to send its protocol header and complete the handshake.
    pub handshake_timeout: u64,
    /// A channel whose oldest unacknowledged delivery is older than this many milliseconds is
    /// closed with 406 (RabbitMQ's `consumer_timeout`); 0 disables the check.
    pub consumer_timeout: u64,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 5672)),
            tls_enabled: false,
            tls_listen: SocketAddr::from(([0, 0, 0, 0], 5671)),
            ssl_cert_login_from: CertLogin::CommonName,
            max_connections: 10_000,
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2_047,
            users: vec![UserConfig::new("guest", "guest", &["/"]).with_tags(&["administrator"])],
            loopback_users: vec!["guest".to_owned()],
            max_message_size: 128 * 1024 * 1024,
            consumer_window: 1_000,
            handshake_timeout: 10,
            consumer_timeout: 1_800_000,
        }
    }
}
