//! A TCP listener and its accept loop, shared by the AMQP, Kafka and HTTP frontends.
//!
//! The loop takes a connection permit, then accepts, then hands the socket to a per-connection
//! handler in its own task. At `max_connections` it stops accepting (new clients wait in the
//! kernel backlog, as Kafka's `max.connections` makes them) until a connection ends; AMQP
//! listeners take `usize::MAX` and refuse at `connection.open` instead. Shutdown is a [`CancellationToken`]
//! ([`Shutdown::polite`]): the loop stops accepting and drops the listening socket at once, and
//! every handler gets the same token.
//!
//! # Invariants
//!
//! A handler is `Fn(TcpStream, SocketAddr, CancellationToken) -> impl Future<Output = ()>`.
//! When the token is cancelled it should finish the request in flight, close politely in its
//! protocol's terms (AMQP `connection.close` 320, HTTP `Connection: close`) and return soon:
//! the server waits `server.shutdown_timeout_ms` for all handlers, then flushes storage and
//! exits regardless, dropping the handler futures still running.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use crate::shutdown::Shutdown;

/// The longest pause after an accept error such as running out of file descriptors.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// A bound listening socket, not yet accepting.
#[derive(Debug)]
pub struct Listener {
    name: &'static str,
    tcp: TcpListener,
    local_addr: SocketAddr,
    max_connections: usize,
    /// Kafka's `max.connections.per.ip`: a further connection from the address is closed.
    max_per_ip: usize,
}

/// Open connections per client address, for `max_per_ip`.
#[derive(Debug, Default)]
struct PerIp(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One connection counted against its address; uncounted when dropped.
struct IpSlot(Arc<PerIp>, std::net::IpAddr);

impl PerIp {
    fn take(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot(Arc::clone(self), ip))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = (self.0)
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port; [`Listener::local_addr`] tells which).
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        max_connections: usize,
    ) -> anyhow::Result<Self> {
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for {name} on {addr}"))?;
        let local_addr = tcp
            .local_addr()
            .with_context(|| format!("{name} listener address"))?;
        Ok(Self {
            name,
            tcp,
            local_addr,
            max_connections,
            max_per_ip: usize::MAX,
        })
    }

    /// Closes a client's connections beyond `max` from one address at once.
    pub fn with_max_per_ip(mut self, max: usize) -> Self {
        self.max_per_ip = max;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts until `shutdown.polite` is cancelled, running `handler` per connection as a
    /// task of `shutdown`.
    pub async fn serve<H, F>(self, handler: H, shutdown: Shutdown)
    where
        H: Fn(TcpStream, SocketAddr, CancellationToken) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            name,
            tcp,
            local_addr,
            max_connections,
            max_per_ip,
        } = self;
        let limit = Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS)));
        let per_ip = Arc::new(PerIp::default());
        let mut backoff = Duration::ZERO;
        loop {
            let permit = match Arc::clone(&limit).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    warn!(
                        listener = name,
                        max_connections, "connection limit reached; new connections wait"
                    );
                    tokio::select! {
                        biased;
                        () = shutdown.polite.cancelled() => break,
                        permit = Arc::clone(&limit).acquire_owned() => match permit {
                            Ok(permit) => permit,
                            Err(_) => break, // never closed
                        },
                    }
                }
            };
            let accepted = tokio::select! {
                biased;
                () = shutdown.polite.cancelled() => break,
                accepted = tcp.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(conn) => {
                    backoff = Duration::ZERO;
                    conn
                }
                Err(e) if is_per_connection(&e) => {
                    debug!(listener = name, error = %e, "accepted connection failed before use");
                    continue;
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning; the listener stays up.
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    warn!(listener = name, error = %e, retry_in = ?backoff, "accept failed");
                    tokio::select! {
                        () = shutdown.polite.cancelled() => break,
                        () = tokio::time::sleep(backoff) => continue,
                    }
                }
            };
            let Some(slot) = per_ip.take(peer.ip(), max_per_ip) else {
                warn!(listener = name, %peer, max_per_ip, "closing connection: too many from this address");
                drop(stream);
                continue;
            };
            // Both protocols are request/response with small frames: don't let Nagle delay them.
            if let Err(e) = stream.set_nodelay(true) {
                debug!(listener = name, %peer, error = %e, "cannot set TCP_NODELAY");
            }
            let span = info_span!("conn", listener = name, %peer);
            let connection = handler(stream, peer, shutdown.polite.clone());
            shutdown.spawn(
                async move {
                    connection.await;
                    drop((permit, slot));
                }
                .instrument(span),
            );
        }
        debug!(listener = name, addr = %local_addr, "stopped accepting");
    }
}

/// Accept errors that concern one connection only, not the listening socket.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Echoes until EOF; on shutdown says "bye" and returns.
    async fn echo(mut stream: TcpStream, _peer: SocketAddr, shutdown: CancellationToken) {
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => if stream.write_all(&buf[..n]).await.is_err() { return },
                },
                () = shutdown.cancelled() => {
                    let _ = stream.write_all(b"bye").await;
                    return;
                }
            }
        }
    }

    async fn round_trip(stream: &mut TcpStream, byte: u8) {
        stream.write_all(&[byte]).await.unwrap();
        let mut got = [0u8; 1];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got[0], byte);
    }

    #[tokio::test]
    async fn serves_connections_up_to_the_cap_and_closes_them_on_shutdown() {
        let listener = Listener::bind("test", "127.0.0.1:0".parse().unwrap(), 1)
            .await
            .unwrap();
        let addr = listener.local_addr();
        assert_ne!(addr.port(), 0);
        let shutdown = Shutdown::default();
        let accept = tokio::spawn(listener.serve(echo, shutdown.clone()));

        let mut first = TcpStream::connect(addr).await.unwrap();
        round_trip(&mut first, b'a').await;
        // The second connects (kernel backlog) but is not served while the first is open.
        let mut second = TcpStream::connect(addr).await.unwrap();
        second.write_all(b"b").await.unwrap();
        let mut got = [0u8; 1];
        let waited =
            tokio::time::timeout(Duration::from_millis(200), second.read_exact(&mut got)).await;
        assert!(waited.is_err(), "served beyond max_connections");
        drop(first);
        second.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"b");
        round_trip(&mut second, b'c').await;

        // Shutdown: the open connection hears about it, the loop ends, the port closes.
        shutdown.polite.cancel();
        accept.await.unwrap();
        shutdown.tracker.close();
        shutdown.tracker.wait().await;
        let mut bye = Vec::new();
        second.read_to_end(&mut bye).await.unwrap();
        assert_eq!(bye, b"bye");
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
