//! TLS for ferrymq's listeners (AMQP over TLS, Kafka `SSL`/`SASL_SSL` listeners, HTTPS):
//! one PEM certificate chain and key, an optional CA bundle for client certificates, TLS 1.2
//! and 1.3 only, reloaded without a restart.
//!
//! ```text
//! TlsSettings (the [tls] config)  ──load──>  TlsAcceptor ── current rustls ServerConfig
//!                                               │   reload(): SIGHUP, or a changed file
//! accepted TcpStream ── accept() ──────────────>├── first byte not a TLS record: refused
//!                                               ├── handshake within handshake_timeout_ms
//!                                               └── TlsStream + TlsInfo (version, cipher,
//!                                                   verified peer certificate's subject)
//! ```
//!
//! A reload that fails (a half-written file, a key that does not match) keeps the previous
//! certificates and logs why; connections already open keep the session they negotiated.

mod acceptor;
mod identity;
mod settings;

pub use acceptor::{AcceptError, Accepted, TlsAcceptor, TlsStream};
pub use identity::peer_certificate;
pub use settings::{ClientAuth, TlsSettings};

/// What can go wrong loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tls.{key} is not set: a TLS listener needs a certificate chain and its key")]
    Missing { key: &'static str },
    #[error("cannot read tls.{key} {path}: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("tls.{key} {path}: {reason}")]
    Pem {
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls.cacertfile: {0}")]
    Verifier(String),
    #[error("tls.versions: `{0}` is not one of 1.2, 1.3")]
    Version(String),
}
