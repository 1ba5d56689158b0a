//! One Kafka connection: frames in, handlers applied in order, responses out in order.
//!
//! ```text
//!  socket ──read──> frames ──decode──> dispatch (awaited in arrival order)
//!                                         │ Reply::Now(body)   -> encoded at once
//!                                         │ Reply::Later(fut)  -> spawned; runs while later
//!                                         │                       requests are dispatched
//!                                         └ Reply::Nothing     (acks=0 produce)
//!  socket <──write── bounded queue of (encoded | pending) responses, in request order
//! ```
//!
//! # Invariants
//! - Requests are *applied* in arrival order (a handler's synchronous part runs before the
//!   next request is dispatched), so pipelined produces to one partition append in order,
//!   as on a Kafka broker. Waiting parts (fsync, long-poll, rebalance) overlap.
//! - Responses are written in request order. At most [`MAX_IN_FLIGHT`] responses are
//!   outstanding; beyond that the connection stops reading (backpressure).
//! - A size prefix above `max_request_bytes` closes the connection before any of the frame is
//!   buffered; buffer space grows with the bytes that actually arrive.
//! - A request that cannot be decoded gets an INVALID_REQUEST response where its API has a
//!   top-level error code; otherwise the connection is closed and the event logged. Nothing
//!   a client sends can panic the broker or affect another connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrymq_core::connections::{Connection, ConnectionInfo, Protocol, Transport};
use ferrymq_core::message::{FieldTable, FieldValue};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace, warn};

use crate::listeners::KafkaListener;
use crate::message::{DecodeError, KafkaRequest, KafkaResponse, RequestBody, ResponseBody};
use crate::sasl::SaslSession;
use crate::session::{ANONYMOUS, ConnState, Reply};
use crate::{Ctx, api, frame};

/// Responses that may be outstanding on one connection before it stops reading.
pub const MAX_IN_FLIGHT: usize = 128;
/// Read-buffer growth per read while a large frame arrives.
const MAX_RESERVE_STEP: usize = 1 << 20;
const INITIAL_BUFFER: usize = 8 * 1024;

enum Outgoing {
    Frame(Bytes),
    Pending(JoinHandle<Option<Bytes>>),
}

/// Serves one accepted Kafka connection until the peer closes it, a protocol error closes it,
/// or `shutdown` fires (then in-flight responses are still delivered).
pub async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
) {
    let listener = ctx.default_listener();
    serve_listener(socket, peer, ctx, listener, shutdown).await;
}

/// [`serve_connection`] for a connection accepted on `listener`.
pub async fn serve_listener(
    socket: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    listener: Arc<KafkaListener>,
    shutdown: CancellationToken,
) {
    if let Err(e) = socket.set_nodelay(true) {
        debug!(%peer, "set_nodelay: {e}");
    }
    let transport = Transport {
        peer,
        local: socket.local_addr().unwrap_or(peer),
        tls: None,
    };
    let (reader, writer) = socket.into_split();
    serve_transport(reader, writer, transport, ctx, listener, shutdown).await;
}

/// [`serve_listener`] over a TLS session (`SSL` and `SASL_SSL` listeners).
pub async fn serve_stream<S>(
    stream: S,
    transport: Transport,
    ctx: Arc<Ctx>,
    listener: Arc<KafkaListener>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    serve_transport(reader, writer, transport, ctx, listener, shutdown).await;
}

async fn serve_transport<R, W>(
    reader: R,
    writer: W,
    transport: Transport,
    ctx: Arc<Ctx>,
    listener: Arc<KafkaListener>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Kafka's principal for a client certificate is its subject; without SASL or a
    // certificate, ANONYMOUS.
    let certified = transport
        .tls
        .as_ref()
        .and_then(|t| t.peer.as_ref())
        .map(|p| p.subject.clone());
    let registration = ctx.broker.connections().register(ConnectionInfo {
        protocol: Protocol::Kafka,
        peer: transport.peer,
        local: transport.local,
        user: certified.clone().unwrap_or_else(|| ANONYMOUS.to_owned()),
        vhost: ctx.vhost.name().to_owned(),
        auth_mechanism: if certified.is_some() { "EXTERNAL" } else { "" }.to_owned(),
        client_properties: FieldTable::new(),
        user_provided_name: None,
        frame_max: ctx.config.max_request_bytes,
        channel_max: 0,
        heartbeat: 0,
        tls: transport.tls,
    });
    let connection = Arc::clone(registration.connection());
    let conn = Conn {
        peer: transport.peer,
        listener,
        registered: Some(connection),
        certified,
    };
    serve_registered(reader, writer, conn, ctx, shutdown).await;
    drop(registration);
}

/// [`serve_connection`] over any byte stream halves (tests use in-memory pipes).
pub async fn serve<R, W>(
    reader: R,
    writer: W,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let conn = Conn {
        peer,
        listener: ctx.default_listener(),
        registered: None,
        certified: None,
    };
    serve_registered(reader, writer, conn, ctx, shutdown).await;
}

/// Who a connection is, before it is served.
struct Conn {
    peer: SocketAddr,
    listener: Arc<KafkaListener>,
    registered: Option<Arc<Connection>>,
    /// The subject of a verified client certificate.
    certified: Option<String>,
}

async fn serve_registered<R, W>(
    reader: R,
    writer: W,
    conn: Conn,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    let Conn {
        peer,
        listener,
        registered,
        certified,
    } = conn;
    let counted = registered.clone();
    let state = ConnState {
        peer,
        client_id: None,
        shutdown,
        registered,
        listener,
        sasl: SaslSession::default(),
        certified,
        decisions: Mutex::default(),
    };
    tokio::join!(
        read_loop(reader, tx, state, ctx),
        write_loop(writer, rx, peer, counted)
    );
    debug!(%peer, "kafka connection closed");
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    tx: mpsc::Sender<Outgoing>,
    mut state: ConnState,
    ctx: Arc<Ctx>,
) {
    let max = ctx.config.max_request_bytes;
    let connected = tokio::time::Instant::now();
    let auth_timeout = std::time::Duration::from_millis(ctx.config.authentication_timeout_ms);
    let mut buf = BytesMut::with_capacity(INITIAL_BUFFER);
    loop {
        loop {
            let size = match frame::decode_size(&buf, max) {
                Ok(Some(size)) => size,
                Ok(None) => break,
                Err(e) => {
                    warn!(peer = %state.peer, "closing Kafka connection: {e}");
                    return;
                }
            };
            let needed = frame::PREFIX_LEN + size;
            if buf.len() < needed {
                buf.reserve((needed - buf.len()).min(MAX_RESERVE_STEP));
                break;
            }
            buf.advance(frame::PREFIX_LEN);
            let payload = buf.split_to(size).freeze();
            if !handle_frame(payload, &tx, &mut state, &ctx).await {
                return;
            }
        }
        if buf.capacity() == buf.len() {
            buf.reserve(INITIAL_BUFFER);
        }
        let registered = state.registered.clone();
        // A client on a SASL listener has `authentication_timeout_ms` from connecting to
        // authenticate; a stalled one is dropped.
        let unauthenticated = state.listener.security.uses_sasl() && state.sasl.principal.is_none();
        let deadline = async {
            if unauthenticated {
                tokio::time::sleep_until(connected + auth_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let read = tokio::select! {
            biased;
            () = state.shutdown.cancelled() => return,
            reason = close_requested(registered.as_deref()) => {
                warn!(peer = %state.peer, %reason, "closing Kafka connection on request");
                return;
            }
            () = deadline => {
                warn!(peer = %state.peer, listener = %state.listener.name,
                    "closing Kafka connection: no SASL authentication within {auth_timeout:?}");
                return;
            }
            read = reader.read_buf(&mut buf) => read,
        };
        if let (Ok(n), Some(c)) = (&read, &state.registered) {
            c.counters.received(*n, 0);
        }
        match read {
            Ok(0) if buf.is_empty() => return,
            Ok(0) => {
                debug!(peer = %state.peer, pending = buf.len(), "peer closed mid-request");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                debug!(peer = %state.peer, "read: {e}");
                return;
            }
        }
    }
}

/// Decodes and dispatches one frame; `false` closes the connection.
async fn handle_frame(
    payload: Bytes,
    tx: &mpsc::Sender<Outgoing>,
    state: &mut ConnState,
    ctx: &Arc<Ctx>,
) -> bool {
    if state.sasl.raw_tokens {
        return match state.sasl.raw_token(ctx, state.peer, payload) {
            Some(reply) => tx.send(Outgoing::Frame(reply)).await.is_ok(),
            None => false,
        };
    }
    let request = match KafkaRequest::decode(payload) {
        Ok(request) => request,
        Err(DecodeError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            correlation_id,
            version,
        }) => {
            debug!(peer = %state.peer, version, "ApiVersions too new, answering with v0 ranges");
            let response = api::api_versions::unsupported(correlation_id);
            return send_now(&response, tx, state).await;
        }
        Err(DecodeError::Body {
            api,
            version,
            correlation_id,
            reason,
            ..
        }) => {
            let Some(body) = api::invalid_request(api, version) else {
                warn!(peer = %state.peer, ?api, version, correlation_id,
                    "closing Kafka connection: malformed request: {reason}");
                return false;
            };
            warn!(peer = %state.peer, ?api, version, correlation_id,
                "malformed request answered with INVALID_REQUEST: {reason}");
            let response = KafkaResponse {
                correlation_id,
                version,
                body,
            };
            return send_now(&response, tx, state).await;
        }
        Err(e) => {
            warn!(peer = %state.peer, "closing Kafka connection: {e}");
            return false;
        }
    };
    let correlation_id = request.header.correlation_id;
    let version = request.header.api_version;
    if request.header.client_id.is_some() && state.client_id != request.header.client_id {
        state.client_id.clone_from(&request.header.client_id);
        if let (Some(c), Some(id)) = (&state.registered, &state.client_id) {
            let id = id.to_string();
            c.update(|info| {
                info.client_properties =
                    FieldTable::from_iter([("product".to_owned(), FieldValue::string(id))]);
            });
        }
    }
    if let Some(c) = &state.registered {
        c.counters.received(0, 1);
    }
    let api_index = usize::try_from(request.body.api() as i16).unwrap_or(usize::MAX);
    let started = Instant::now();
    if !state
        .sasl
        .allows(&state.listener, request.body.api(), started)
    {
        warn!(peer = %state.peer, api = ?request.body.api(), listener = %state.listener.name,
            "closing Kafka connection: request before SASL authentication (or after the session expired)");
        return false;
    }
    match &request.body {
        RequestBody::SaslHandshake(r) => {
            let body = state.sasl.handshake(ctx, &state.listener, r, version);
            ctx.metrics.observe(api_index, started.elapsed());
            let response = KafkaResponse {
                correlation_id,
                version,
                body: ResponseBody::SaslHandshake(body),
            };
            return send_now(&response, tx, state).await;
        }
        RequestBody::SaslAuthenticate(r) => {
            let outcome = state.sasl.authenticate(ctx, state.peer, r);
            ctx.metrics.observe(api_index, started.elapsed());
            if let (Some(c), Some(user), Some(mechanism)) = (
                &state.registered,
                &state.sasl.principal,
                state.sasl.authenticated_with,
            ) {
                let user = user.clone();
                c.update(|info| {
                    info.user = user;
                    info.auth_mechanism = mechanism.to_owned();
                });
            }
            let response = KafkaResponse {
                correlation_id,
                version,
                body: ResponseBody::SaslAuthenticate(outcome.response),
            };
            return send_now(&response, tx, state).await && !outcome.close;
        }
        _ => {}
    }
    trace!(peer = %state.peer, api = ?request.body.api(), version, correlation_id, "request");
    match api::dispatch(ctx, state, request).await {
        Reply::Now(body) => {
            ctx.metrics.observe(api_index, started.elapsed());
            send_now(
                &KafkaResponse {
                    correlation_id,
                    version,
                    body,
                },
                tx,
                state,
            )
            .await
        }
        Reply::Later(future) => {
            let peer = state.peer;
            let metrics = Arc::clone(&ctx.metrics);
            let task = tokio::spawn(async move {
                let body = future.await;
                metrics.observe(api_index, started.elapsed());
                encode(
                    &KafkaResponse {
                        correlation_id,
                        version,
                        body,
                    },
                    peer,
                )
            });
            tx.send(Outgoing::Pending(task)).await.is_ok()
        }
        Reply::Nothing => {
            ctx.metrics.observe(api_index, started.elapsed());
            true
        }
    }
}

/// Resolves once the registered connection is asked to close; never without one.
async fn close_requested(connection: Option<&Connection>) -> String {
    match connection {
        Some(c) => c.close_requested().await,
        None => std::future::pending().await,
    }
}

async fn send_now(
    response: &KafkaResponse,
    tx: &mpsc::Sender<Outgoing>,
    state: &ConnState,
) -> bool {
    match encode(response, state.peer) {
        Some(frame) => tx.send(Outgoing::Frame(frame)).await.is_ok(),
        None => false,
    }
}

fn encode(response: &KafkaResponse, peer: SocketAddr) -> Option<Bytes> {
    let mut out = BytesMut::new();
    match response.encode(&mut out) {
        Ok(()) => Some(out.freeze()),
        Err(e) => {
            warn!(%peer, api = ?response.body.api(), version = response.version,
                "closing Kafka connection: response could not be encoded: {e}");
            None
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
    registered: Option<Arc<Connection>>,
) {
    while let Some(outgoing) = rx.recv().await {
        let frame = match outgoing {
            Outgoing::Frame(frame) => frame,
            Outgoing::Pending(task) => match task.await {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, "closing Kafka connection: response task failed: {e}");
                    break;
                }
            },
        };
        if let Err(e) = writer.write_all(&frame).await {
            debug!(%peer, "write: {e}");
            break;
        }
        // A TLS session may hold records back until flushed: flush when nothing else is
        // queued (a TCP half's flush does nothing).
        if rx.is_empty()
            && let Err(e) = writer.flush().await
        {
            debug!(%peer, "flush: {e}");
            break;
        }
        if let Some(c) = &registered {
            c.counters.sent(frame.len(), 1);
        }
    }
    // Dropping the receiver makes the reader stop at its next send.
    rx.close();
    let _ = writer.shutdown().await;
}
