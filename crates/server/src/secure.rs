//! TLS in front of a frontend: the handshake on an accepted socket, then the frontend serves
//! the session as it serves a plaintext socket.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use ferrymq_core::connections::Transport;
use ferrymq_tls::{TlsAcceptor, TlsStream};
use tokio::net::TcpStream;
use tracing::warn;

use crate::config::Config;

/// The acceptor for every TLS listener, if any is configured; its files are watched for
/// changes (and reloaded on SIGHUP) from then on.
pub fn acceptor(config: &Config) -> anyhow::Result<Option<Arc<TlsAcceptor>>> {
    let listeners = config.tls_listeners();
    let Some(first) = listeners.first() else {
        return Ok(None);
    };
    let acceptor = TlsAcceptor::load(&config.tls)
        .with_context(|| format!("cannot load the certificates for {first}"))?;
    tokio::spawn(Arc::clone(&acceptor).watch());
    Ok(Some(acceptor))
}

/// Runs the handshake; a client that fails it (plaintext on a TLS port, an untrusted or
/// expired certificate, a stalled handshake) is logged with its address and dropped.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    listener: &str,
) -> Option<(TlsStream, Transport)> {
    let local = stream.local_addr().unwrap_or(peer);
    match acceptor.accept(stream).await {
        Ok(accepted) => Some((
            accepted.stream,
            Transport {
                peer,
                local,
                tls: Some(accepted.info),
            },
        )),
        Err(e) => {
            warn!(%peer, listener, "TLS connection refused: {e}");
            None
        }
    }
}
