//! The `[tls]` configuration section, shared by every TLS listener.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Whether clients present certificates (RabbitMQ's `verify` and `fail_if_no_peer_cert`,
/// Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No certificate is asked for.
    #[default]
    None,
    /// Asked for; a client without one connects, one with an untrusted one is refused.
    Optional,
    /// Every client must present a certificate the CA bundle verifies.
    Required,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM: the server's certificate, then its intermediates.
    pub certfile: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub keyfile: PathBuf,
    /// PEM: the CAs client certificates are verified against (needed unless
    /// `client_auth = "none"`).
    pub cacertfile: PathBuf,
    pub client_auth: ClientAuth,
    /// Protocol versions offered: "1.2", "1.3".
    pub versions: Vec<String>,
    /// A client that has not finished the handshake by then is disconnected.
    pub handshake_timeout_ms: u64,
    /// How often the files are checked for changes (0: only on SIGHUP).
    pub reload_check_interval_ms: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            certfile: PathBuf::new(),
            keyfile: PathBuf::new(),
            cacertfile: PathBuf::new(),
            client_auth: ClientAuth::None,
            versions: vec!["1.2".to_owned(), "1.3".to_owned()],
            handshake_timeout_ms: 10_000,
            reload_check_interval_ms: 5_000,
        }
    }
}
