//! Serving the HTTP listeners (management API, dashboard, metrics): the routes are
//! `ferrymq-admin`'s axum [`Router`]; each accepted connection is served by hyper's HTTP/1.1
//! server from [`serve_connection`], so HTTP shares the accept loop, connection cap and
//! shutdown of the broker's other listeners (see [`crate::listener`]).

use std::net::SocketAddr;
use std::time::Duration;

use axum::{Extension, Router};
use ferrymq_admin::PeerAddr;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// A client that has not sent a whole request head by then is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1.1 on one connection until the client leaves or `shutdown` is cancelled; a
/// request in flight at shutdown is answered (with `Connection: close`) before closing.
pub async fn serve_connection<S>(
    router: Router,
    stream: S,
    peer: SocketAddr,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    // Requests learn their peer (loopback-only users may log in from loopback only).
    let router = router.layer(Extension(PeerAddr(peer)));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn router() -> Router {
        Router::new().route("/healthz", get(|| async { "ok" }))
    }

    async fn request(raw: &str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            serve_connection(router(), stream, peer, CancellationToken::new()).await;
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(raw.as_bytes()).await.unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        server.await.unwrap();
        response
    }

    #[tokio::test]
    async fn healthz_says_ok() {
        let response =
            request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nok"), "{response}");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let response = request("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
        let response = request(
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
    }

    #[tokio::test]
    async fn shutdown_closes_an_idle_keep_alive_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            serve_connection(router(), stream, peer, token).await;
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // Read the whole first response (it may arrive in pieces); the connection stays open.
        let mut response = Vec::new();
        let mut buf = [0u8; 512];
        while !response.ends_with(b"\r\n\r\nok") {
            let n = client.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "closed before the response: {response:?}");
            response.extend_from_slice(&buf[..n]);
        }
        assert!(response.starts_with(b"HTTP/1.1 200"));
        shutdown.cancel();
        server.await.unwrap();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    }
}
