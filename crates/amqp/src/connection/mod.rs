//! One AMQP connection, from the protocol header to the last close-ok.
//!
//! ```text
//! socket ─read─> reader (this task): frames -> handshake / channel state machines -> core
//!                   │ replies, confirms (encoded)            queues (deliveries, credit)
//!                   v                                              │
//!                outbox (FIFO) <───────────────────────────────────┘
//!                   │
//! socket <─write─ writer task: encodes deliveries, heartbeats when idle, gives credit back
//! ```
//!
//! # Invariants
//! - Only this task reads the socket and owns the channels; queues reach a channel only
//!   through its [`crate::channel::shared::ChannelShared`].
//! - Frames are size-checked from their header (4096 before tune-ok, then frame_max).
//! - Whatever ends the connection (close, error, peer gone, shutdown), every channel is
//!   cleaned up (unacked messages requeued) and exclusive queues are deleted.

mod dispatch;
pub mod handshake;
pub mod outbox;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amq_protocol::protocol::{AMQPClass, connection};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use ferrymq_core::connections::{
    Admission, ConnectionInfo, Counters, Protocol, TlsInfo, Transport,
};

use crate::channel::Channel;
use crate::codec::frame::{AmqpFrame, FRAME_MIN_SIZE, FrameError, FrameKind};
use crate::codec::method::{decode_method, encode_method, peek_ids};
use crate::context::AmqpContext;
use crate::error::{AmqpError, ReplyCode};
use dispatch::{Flow, cleanup, expire_unacked, method_error};
use handshake::{AuthFailure, ClientInfo, PROTOCOL_HEADER, Tuned};
use outbox::Outbox;
use session::Session;

/// How long a peer that was sent connection.close has to answer close-ok.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the writer gets to flush after the connection ends.
const WRITER_DRAIN: Duration = Duration::from_secs(5);
/// Durability confirmations waiting for the reader, per connection.
const DURABLE_EVENTS: usize = 1024;

/// Serves one accepted AMQP connection until it closes.
pub async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    ctx: Arc<AmqpContext>,
    shutdown: CancellationToken,
) {
    let _ = socket.set_nodelay(true);
    let transport = Transport {
        peer,
        local: socket.local_addr().unwrap_or(peer),
        tls: None,
    };
    let (read, write) = socket.into_split();
    serve_halves(Box::new(read), write, transport, ctx, shutdown).await;
}

/// [`serve_connection`] over any byte stream, such as a TLS session.
pub async fn serve_stream<S>(
    stream: S,
    transport: Transport,
    ctx: Arc<AmqpContext>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (read, write) = tokio::io::split(stream);
    serve_halves(Box::new(read), write, transport, ctx, shutdown).await;
}

async fn serve_halves<W>(
    read: Reader,
    write: W,
    transport: Transport,
    ctx: Arc<AmqpContext>,
    shutdown: CancellationToken,
) where
    W: AsyncWrite + Send + Unpin + 'static,
{
    let peer = transport.peer;
    let outbox = Outbox::new();
    let writer = tokio::spawn(outbox::run_writer(outbox.clone(), write));
    let mut conn = Connection {
        ctx,
        peer,
        local: transport.local,
        tls: transport.tls,
        counters: None,
        read,
        buf: BytesMut::with_capacity(8 * 1024),
        outbox: outbox.clone(),
        frame_limit: FRAME_MIN_SIZE,
        last_read: Instant::now(),
    };
    let reason = conn.run(shutdown).await;
    tracing::debug!(%peer, reason = %reason.describe(), "amqp connection ended");
    outbox.close();
    if tokio::time::timeout(WRITER_DRAIN, writer).await.is_err() {
        tracing::debug!(%peer, "writer did not drain in time");
    }
}

/// The socket's read side (a TCP half, or one half of a TLS session).
type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// Why a connection ended (for the log).
#[derive(Debug)]
enum End {
    PeerClosed,
    ClientClose,
    ServerClose(AmqpError),
    Io(std::io::Error),
    Frame(FrameError),
    HeartbeatTimeout,
    HandshakeTimeout,
    BadHeader,
    AuthFailed,
    WriterGone,
    Shutdown,
    /// Closed from outside (the management API, a deleted vhost).
    Closed,
}

impl End {
    fn describe(&self) -> String {
        match self {
            Self::PeerClosed => "peer closed the socket".into(),
            Self::ClientClose => "client closed the connection".into(),
            Self::ServerClose(e) => format!("closed by the broker: {}", e.reply_text()),
            Self::Io(e) => format!("socket error: {e}"),
            Self::Frame(e) => format!("frame error: {e}"),
            Self::HeartbeatTimeout => "missed heartbeats".into(),
            Self::HandshakeTimeout => "handshake timed out".into(),
            Self::BadHeader => "unsupported protocol header".into(),
            Self::AuthFailed => "authentication failed".into(),
            Self::WriterGone => "socket write failed".into(),
            Self::Shutdown => "broker shutting down".into(),
            Self::Closed => "closed by an operator".into(),
        }
    }
}

struct Connection {
    ctx: Arc<AmqpContext>,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<TlsInfo>,
    /// The registered connection's traffic counters, once it is open.
    counters: Option<Arc<Counters>>,
    read: Reader,
    buf: BytesMut,
    outbox: Arc<Outbox>,
    frame_limit: u32,
    last_read: Instant,
}

enum Read {
    Frame(AmqpFrame),
    End(End),
}

impl Connection {
    async fn fill(&mut self) -> Result<(), End> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        match self.read.read_buf(&mut self.buf).await {
            Ok(0) => Err(End::PeerClosed),
            Ok(n) => {
                self.last_read = Instant::now();
                if let Some(counters) = &self.counters {
                    counters.received(n, 0);
                }
                Ok(())
            }
            Err(e) => Err(End::Io(e)),
        }
    }

    /// The next complete frame, reading as needed.
    async fn next_frame(&mut self) -> Read {
        loop {
            match AmqpFrame::decode(&mut self.buf, self.frame_limit) {
                Ok(Some(frame)) => return Read::Frame(frame),
                Ok(None) => {}
                Err(e) => return Read::End(End::Frame(e)),
            }
            if let Err(end) = self.fill().await {
                return Read::End(end);
            }
        }
    }

    fn send0(&self, method: &AMQPClass) {
        let mut out = BytesMut::new();
        encode_method(0, method, &mut out);
        self.outbox.push_frames(out.freeze());
    }

    fn send_close(&self, error: &AmqpError) {
        self.send0(&AMQPClass::Connection(connection::AMQPMethod::Close(
            connection::Close {
                reply_code: error.code.code(),
                reply_text: error.reply_text().into(),
                class_id: error.class_id,
                method_id: error.method_id,
            },
        )));
    }

    /// Waits (bounded) for the client's close-ok after we sent connection.close.
    async fn await_close_ok(&mut self) {
        let wait = async {
            loop {
                match self.next_frame().await {
                    Read::Frame(f) if f.kind == FrameKind::Method && f.channel == 0 => {
                        if peek_ids(&f.payload) == Some((10, 51))
                            || peek_ids(&f.payload) == Some((10, 50))
                        {
                            return;
                        }
                    }
                    Read::Frame(_) => {}
                    Read::End(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, wait).await;
    }

    /// Sends connection.close for `error`, waits for close-ok, ends.
    async fn close_with(&mut self, error: AmqpError) -> End {
        tracing::info!(peer = %self.peer, error = %error.reply_text(), "closing amqp connection");
        self.send_close(&error);
        self.await_close_ok().await;
        End::ServerClose(error)
    }

    async fn run(&mut self, shutdown: CancellationToken) -> End {
        let handshake_timeout = Duration::from_secs(self.ctx.config.handshake_timeout.max(1));
        let opened = tokio::select! {
            r = tokio::time::timeout(handshake_timeout, self.handshake()) => match r {
                Ok(r) => r,
                Err(_) => Err(End::HandshakeTimeout),
            },
            () = shutdown.cancelled() => Err(End::Shutdown),
        };
        match opened {
            Ok((session, tuned, info)) => self.serve(session, tuned, info, shutdown).await,
            Err(end) => end,
        }
    }

    async fn handshake(&mut self) -> Result<(Session, Tuned, ClientInfo), End> {
        while self.buf.len() < 8 {
            self.fill().await?;
        }
        if self.buf.get(..8) != Some(&PROTOCOL_HEADER[..]) {
            let mut w = BytesMut::new();
            w.extend_from_slice(PROTOCOL_HEADER);
            self.outbox.push_frames(w.freeze());
            return Err(End::BadHeader);
        }
        let _ = self.buf.split_to(8);
        let external = self.tls.as_ref().is_some_and(|t| t.peer.is_some());
        self.send0(&handshake::start_method(external));
        let start_ok = match self.expect_method().await? {
            AMQPClass::Connection(connection::AMQPMethod::StartOk(m)) => m,
            _ => return Err(self.handshake_error("expected connection.start-ok").await),
        };
        let peer_cert = self.tls.as_ref().and_then(|t| t.peer.as_ref());
        let (user, info) = match handshake::authenticate(&self.ctx, &start_ok, self.peer, peer_cert)
        {
            Ok(ok) => ok,
            Err(AuthFailure::Protocol(error)) => return Err(self.close_with(error).await),
            Err(AuthFailure::Refused(error)) => {
                let auth_failure_close = ClientInfo::from_properties(
                    &crate::codec::table::from_amqp_table(&start_ok.client_properties),
                )
                .auth_failure_close;
                if auth_failure_close {
                    self.send_close(&error);
                }
                return Err(End::AuthFailed);
            }
        };
        let config = &self.ctx.config;
        let offer = Tuned {
            channel_max: config.channel_max,
            frame_max: config.frame_max,
            heartbeat: config.heartbeat,
        };
        self.send0(&AMQPClass::Connection(connection::AMQPMethod::Tune(
            connection::Tune {
                channel_max: offer.channel_max,
                frame_max: offer.frame_max,
                heartbeat: offer.heartbeat,
            },
        )));
        let tune_ok = match self.expect_method().await? {
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(m)) => m,
            _ => return Err(self.handshake_error("expected connection.tune-ok").await),
        };
        let tuned = match handshake::check_tune_ok(offer, &tune_ok) {
            Ok(t) => t,
            Err(e) => return Err(self.close_with(e).await),
        };
        self.frame_limit = tuned.frame_max;
        self.outbox.set_frame_max(tuned.frame_max);
        if tuned.heartbeat > 0 {
            self.outbox
                .set_heartbeat(Duration::from_secs(u64::from(tuned.heartbeat)) / 2);
        }
        let open = match self.expect_method().await? {
            AMQPClass::Connection(connection::AMQPMethod::Open(m)) => m,
            _ => return Err(self.handshake_error("expected connection.open").await),
        };
        let vhost = match handshake::open_vhost(&self.ctx, &user, open.virtual_host.as_str()) {
            Ok(v) => v,
            Err(e) => return Err(self.close_with(e).await),
        };
        // As RabbitMQ: the node's limit, then the vhost's, before open-ok. Checked and counted
        // in one step, so connections opening at once cannot overshoot either.
        let limits = Admission {
            node: Some(self.ctx.config.max_connections),
            vhost: vhost.meta().limit("max-connections"),
        };
        let admitted = self.ctx.broker.connections().admit(
            ConnectionInfo {
                protocol: Protocol::Amqp091,
                peer: self.peer,
                local: self.local,
                user: user.name.clone(),
                vhost: vhost.name().to_owned(),
                auth_mechanism: info.mechanism.clone(),
                client_properties: info.properties.clone(),
                user_provided_name: info.name.clone(),
                frame_max: tuned.frame_max,
                channel_max: tuned.channel_max,
                heartbeat: tuned.heartbeat,
                tls: self.tls.clone(),
            },
            limits,
        );
        let registration = match admitted {
            Ok(registration) => registration,
            Err(e) => return Err(self.close_with(AmqpError::from(e).on((10, 40))).await),
        };
        self.send0(&AMQPClass::Connection(connection::AMQPMethod::OpenOk(
            connection::OpenOk {},
        )));
        let (durable_tx, _) = mpsc::channel(1);
        let counters = Arc::clone(&registration.connection().counters);
        self.outbox.attach_counters(Arc::clone(&counters));
        self.counters = Some(counters);
        let session = Session {
            ctx: self.ctx.clone(),
            vhost,
            user,
            conn_id: registration.id(),
            registration,
            outbox: self.outbox.clone(),
            exclusive: Vec::new(),
            cancel_notify: info.cancel_notify,
            pending: BytesMut::new(),
            published: false,
            durable_tx,
            sync_definitions: false,
            topic_checks: false,
            decisions: Mutex::default(),
        };
        let mut session = session;
        session.topic_checks = self
            .ctx
            .users
            .has_topic_permissions(&session.user.name, session.vhost.name());
        tracing::info!(
            peer = %self.peer,
            user = %session.user.name,
            vhost = %session.vhost.name(),
            name = ?info.name,
            "amqp connection opened"
        );
        Ok((session, tuned, info))
    }

    async fn handshake_error(&mut self, what: &str) -> End {
        let error = AmqpError::new(ReplyCode::CommandInvalid, what.to_owned());
        self.close_with(error).await
    }

    /// Reads the next method on channel 0 during the handshake.
    async fn expect_method(&mut self) -> Result<AMQPClass, End> {
        loop {
            let frame = match self.next_frame().await {
                Read::Frame(f) => f,
                Read::End(end) => return Err(end),
            };
            match frame.kind {
                FrameKind::Heartbeat => continue,
                FrameKind::Method if frame.channel == 0 => {
                    return match decode_method(&frame.payload) {
                        Ok(AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                            self.send0(&AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                connection::CloseOk {},
                            )));
                            Err(End::ClientClose)
                        }
                        Ok(m) => Ok(m),
                        Err(e) => Err(self.close_with(method_error(&frame.payload, &e)).await),
                    };
                }
                _ => {
                    let error = AmqpError::new(
                        ReplyCode::UnexpectedFrame,
                        "unexpected frame during handshake",
                    );
                    return Err(self.close_with(error).await);
                }
            }
        }
    }

    async fn serve(
        &mut self,
        mut s: Session,
        tuned: Tuned,
        info: ClientInfo,
        shutdown: CancellationToken,
    ) -> End {
        let (durable_tx, mut durable_rx) = mpsc::channel(DURABLE_EVENTS);
        s.durable_tx = durable_tx;
        let mut channels: HashMap<u16, Channel> = HashMap::new();
        let registered = Arc::clone(s.registration.connection());
        let broker = Arc::clone(&self.ctx.broker);
        let mut alarm = broker.alarms().subscribe();
        let mut blocked = false;
        let timeout =
            (tuned.heartbeat > 0).then(|| Duration::from_secs(u64::from(tuned.heartbeat)) * 2);
        let ack_timeout = Duration::from_millis(self.ctx.config.consumer_timeout);
        let mut ack_check = tokio::time::interval(
            (ack_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)),
        );
        ack_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            // Process every complete frame already buffered, then answer in one batch.
            let mut ended = None;
            loop {
                match AmqpFrame::decode(&mut self.buf, self.frame_limit) {
                    Ok(Some(frame)) => {
                        if let Err(flow) = self.on_frame(&mut s, &mut channels, tuned, frame) {
                            ended = Some(flow);
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let text = e.to_string();
                        ended = Some(Flow::Close(AmqpError::new(ReplyCode::FrameError, text)));
                        break;
                    }
                }
                if s.published && broker.alarms().any() {
                    break;
                }
            }
            for channel in channels.values_mut() {
                channel.flush_confirms(&mut s);
            }
            if s.sync_definitions {
                s.sync_definitions = false;
                if let Err(e) = s.vhost.definitions().sync_all().durable().await {
                    tracing::error!(peer = %self.peer, "definitions journal sync failed: {e}");
                    ended = Some(Flow::Close(AmqpError::new(
                        ReplyCode::InternalError,
                        "definitions could not be stored",
                    )));
                }
            }
            s.flush();
            match ended {
                Some(Flow::ClientClosed) => break End::ClientClose,
                Some(Flow::Close(error)) => {
                    cleanup(&mut s, &mut channels);
                    break self.close_with(error).await;
                }
                None => {}
            }
            let alarm_on = broker.alarms().any();
            if alarm_on && s.published && !blocked {
                blocked = true;
                registered.set_blocked(true);
                if info.blocked_notifications {
                    let active = broker.alarms().active();
                    let reason = active.first().map_or("", |r| r.blocked_reason());
                    self.send0(&AMQPClass::Connection(connection::AMQPMethod::Blocked(
                        connection::Blocked {
                            reason: reason.into(),
                        },
                    )));
                }
            } else if !alarm_on && blocked {
                blocked = false;
                registered.set_blocked(false);
                self.last_read = Instant::now();
                if info.blocked_notifications {
                    self.send0(&AMQPClass::Connection(connection::AMQPMethod::Unblocked(
                        connection::Unblocked {},
                    )));
                }
            }
            // A client that does not read its replies stops being read (its sends wait in
            // the kernel); shutdown and the other events are still served meanwhile.
            let room = self.outbox.has_space();
            let reading = room && !blocked;
            let deadline = timeout.map(|t| self.last_read + t);
            tokio::select! {
                () = self.outbox.wait_for_space(), if !room => {
                    self.last_read = Instant::now();
                }
                r = self.read.read_buf(&mut self.buf), if reading => match r {
                    Ok(0) => break End::PeerClosed,
                    Ok(n) => {
                        self.last_read = Instant::now();
                        if let Some(counters) = &self.counters {
                            counters.received(n, 0);
                        }
                        if self.buf.capacity() - self.buf.len() < 4096 {
                            self.buf.reserve(16 * 1024);
                        }
                    }
                    Err(e) => break End::Io(e),
                },
                () = sleep_until_opt(deadline), if reading => {
                    tracing::warn!(peer = %self.peer, "missed heartbeats from client, closing connection");
                    break End::HeartbeatTimeout;
                }
                changed = alarm.changed() => {
                    if changed.is_err() {
                        // The context is gone: the server is shutting down.
                        continue;
                    }
                }
                _ = ack_check.tick(), if !ack_timeout.is_zero() => {
                    expire_unacked(&mut s, &mut channels, ack_timeout);
                    s.flush();
                }
                Some((channel, seq, ok)) = durable_rx.recv() => {
                    if let Some(ch) = channels.get_mut(&channel) {
                        ch.settle_confirm(seq, ok);
                    }
                    // One group commit settles many publishes at once: take them all.
                    while let Ok((channel, seq, ok)) = durable_rx.try_recv() {
                        if let Some(ch) = channels.get_mut(&channel) {
                            ch.settle_confirm(seq, ok);
                        }
                    }
                }
                () = self.outbox.dead.cancelled() => break End::WriterGone,
                reason = registered.close_requested() => {
                    cleanup(&mut s, &mut channels);
                    let error = AmqpError::new(ReplyCode::ConnectionForced, reason);
                    self.close_with(error).await;
                    break End::Closed;
                }
                () = shutdown.cancelled() => {
                    cleanup(&mut s, &mut channels);
                    let error = AmqpError::new(
                        ReplyCode::ConnectionForced,
                        "broker forced connection closure with reason 'shutdown'",
                    );
                    self.close_with(error).await;
                    break End::Shutdown;
                }
            }
        };
        cleanup(&mut s, &mut channels);
        end
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
