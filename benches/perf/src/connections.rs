//! Many idle AMQP connections: how much memory the broker spends per connection.
//!
//! Opens `--count` connections (`--parallel` handshakes at a time), waits `--settle` seconds,
//! samples the broker's RSS, holds them for `--hold` seconds, then closes each politely
//! (connection.close, close-ok).
//!
//! lapin is not used here: it runs an I/O thread with its own buffers per connection, which
//! costs this client about 2 MiB per connection (10,000 of them ran a 24 GiB machine out of
//! memory). Each connection is instead a small tokio task that does the client side of the
//! handshake with amq-protocol (the codec lapin itself uses): protocol header, start-ok
//! (PLAIN), tune-ok (the broker's own channel_max, frame_max and heartbeat), connection.open;
//! then it answers heartbeats as negotiated and otherwise sits idle, as an idle lapin or pika
//! connection does.
//!
//! ```text
//! client                               broker
//! AMQP 0 0 9 1               -->
//!                            <--       connection.start
//! connection.start-ok PLAIN  -->
//!                            <--       connection.tune
//! connection.tune-ok         -->
//! connection.open vhost      -->
//!                            <--       connection.open-ok
//! heartbeat every heartbeat/2 <-->     heartbeat
//! ```

use std::str::FromStr;
use std::time::{Duration, Instant};

use amq_protocol::frame::{AMQPFrame, ProtocolVersion, WriteContext, gen_frame, parse_frame};
use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{FieldTable, LongString};
use amq_protocol::uri::AMQPUri;
use anyhow::{Context, bail};
use clap::Args;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::report::{Output, mib};
use crate::rss::rss_bytes;

#[derive(Args, Serialize, Clone, Debug)]
pub struct ConnectionsArgs {
    /// Broker URI.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 100)]
    pub parallel: usize,
    /// Seconds to wait after the last connection opened before sampling RSS.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Seconds to keep the connections open after sampling.
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// The broker's pid, for its RSS before and with the connections.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[arg(long)]
    pub label: Option<String>,
    /// Also write the report as JSON to this file (`-`: stdout).
    #[arg(long)]
    pub json: Option<String>,
    /// Tokio worker threads of this client.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

#[derive(Serialize)]
struct ConnectionsReport {
    label: String,
    connections: usize,
    open_seconds: f64,
    rss_before_mib: Option<f64>,
    rss_with_connections_mib: Option<f64>,
    kib_per_connection: Option<f64>,
    settings: ConnectionsArgs,
}

/// Largest frame accepted from the broker during the handshake (connection.start carries
/// the server properties, a few hundred bytes).
const MAX_HANDSHAKE_FRAME: usize = 1 << 20;

struct Endpoint {
    addr: String,
    user: String,
    password: String,
    vhost: String,
}

/// An open idle connection: its task keeps heartbeats going until told to close.
struct Idle {
    close: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn encode(frame: &AMQPFrame, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let ctx = WriteContext::from(std::mem::take(out));
    let (buf, _) = gen_frame(frame)(ctx)
        .map_err(|e| anyhow::anyhow!("encoding {frame:?}: {e:?}"))?
        .into_inner();
    *out = buf;
    Ok(())
}

async fn send(s: &mut TcpStream, frames: &[AMQPFrame]) -> anyhow::Result<()> {
    let mut out = Vec::with_capacity(256);
    for f in frames {
        encode(f, &mut out)?;
    }
    s.write_all(&out).await?;
    Ok(())
}

/// Reads the next frame, buffering in `buf`.
async fn next_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<AMQPFrame> {
    loop {
        match parse_frame(buf.as_slice()) {
            Ok((rest, frame)) => {
                let used = buf.len() - rest.len();
                buf.drain(..used);
                return Ok(frame);
            }
            Err(e) if e.is_incomplete() => {}
            Err(e) => bail!("malformed frame from the broker: {e}"),
        }
        if buf.len() > MAX_HANDSHAKE_FRAME {
            bail!("frame from the broker larger than {MAX_HANDSHAKE_FRAME} bytes");
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("the broker closed the connection");
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

async fn expect_method(s: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<AMQPClass> {
    loop {
        match next_frame(s, buf).await? {
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                bail!("broker closed: {} {}", c.reply_code, c.reply_text)
            }
            AMQPFrame::Method(0, m) => return Ok(m),
            AMQPFrame::Heartbeat => {}
            other => bail!("unexpected frame during the handshake: {other:?}"),
        }
    }
}

async fn open(ep: &Endpoint) -> anyhow::Result<Idle> {
    let mut s = TcpStream::connect(&ep.addr).await?;
    s.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    send(
        &mut s,
        &[AMQPFrame::ProtocolHeader(ProtocolVersion::amqp_0_9_1())],
    )
    .await?;
    let AMQPClass::Connection(connection::AMQPMethod::Start(_)) =
        expect_method(&mut s, &mut buf).await?
    else {
        bail!("expected connection.start");
    };
    let start_ok = connection::StartOk {
        client_properties: FieldTable::default(),
        mechanism: "PLAIN".into(),
        response: LongString::from(format!("\0{}\0{}", ep.user, ep.password)),
        locale: "en_US".into(),
    };
    send(
        &mut s,
        &[AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)),
        )],
    )
    .await?;
    let AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) =
        expect_method(&mut s, &mut buf).await?
    else {
        bail!("expected connection.tune");
    };
    let tune_ok = connection::TuneOk {
        channel_max: tune.channel_max,
        frame_max: tune.frame_max,
        heartbeat: tune.heartbeat,
    };
    let open = connection::Open {
        virtual_host: ep.vhost.as_str().into(),
    };
    send(
        &mut s,
        &[
            AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)),
            ),
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Open(open))),
        ],
    )
    .await?;
    let AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) =
        expect_method(&mut s, &mut buf).await?
    else {
        bail!("expected connection.open-ok");
    };
    let (close, closed) = oneshot::channel();
    let heartbeat = Duration::from_secs(u64::from(tune.heartbeat));
    let task = tokio::spawn(idle(s, buf, heartbeat, closed));
    Ok(Idle { close, task })
}

/// Sends a heartbeat every half interval and discards what arrives, until told to close.
async fn idle(
    mut s: TcpStream,
    mut buf: Vec<u8>,
    heartbeat: Duration,
    closed: oneshot::Receiver<()>,
) {
    let beat = heartbeat / 2;
    let mut ticker = tokio::time::interval(if beat.is_zero() {
        Duration::from_secs(3600)
    } else {
        beat
    });
    ticker.tick().await;
    tokio::pin!(closed);
    let mut chunk = [0u8; 512];
    loop {
        tokio::select! {
            _ = &mut closed => break,
            _ = ticker.tick(), if !beat.is_zero() => {
                if send(&mut s, &[AMQPFrame::Heartbeat]).await.is_err() {
                    return;
                }
            }
            r = s.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
        }
    }
    let close = connection::Close {
        reply_code: 200,
        reply_text: "done".into(),
        class_id: 0,
        method_id: 0,
    };
    let frame = AMQPFrame::Method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(close)),
    );
    if send(&mut s, &[frame]).await.is_err() {
        return;
    }
    buf.clear();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(f) = next_frame(&mut s, &mut buf).await {
            if let AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) =
                f
            {
                break;
            }
        }
    })
    .await;
}

pub async fn run(a: ConnectionsArgs) -> anyhow::Result<Output> {
    let uri = AMQPUri::from_str(&a.uri).map_err(|e| anyhow::anyhow!("bad --uri: {e}"))?;
    let ep = std::sync::Arc::new(Endpoint {
        addr: format!("{}:{}", uri.authority.host, uri.authority.port),
        user: uri.authority.userinfo.username.clone(),
        password: uri.authority.userinfo.password.clone(),
        vhost: uri.vhost.clone(),
    });
    let label = a.label.clone().unwrap_or_else(|| "connections".into());
    let before = a.broker_pid.and_then(rss_bytes);
    let start = Instant::now();
    let opened: Vec<anyhow::Result<Idle>> = stream::iter(0..a.count)
        .map(|i| {
            let ep = std::sync::Arc::clone(&ep);
            async move { open(&ep).await.with_context(|| format!("connection {i}")) }
        })
        .buffer_unordered(a.parallel.max(1))
        .collect()
        .await;
    let open_seconds = start.elapsed().as_secs_f64();
    let mut conns = Vec::with_capacity(opened.len());
    let mut first_error = None;
    for c in opened {
        match c {
            Ok(c) => conns.push(c),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        let n = a.count - conns.len();
        close_all(conns).await;
        bail!("{n} of {} connections failed; first: {e:#}", a.count);
    }
    tokio::time::sleep(Duration::from_secs_f64(a.settle.max(0.0))).await;
    let with = a.broker_pid.and_then(rss_bytes);
    let per_conn = match (before, with) {
        (Some(b), Some(w)) if a.count > 0 => {
            Some((w.saturating_sub(b)) as f64 / 1024.0 / a.count as f64)
        }
        _ => None,
    };
    tokio::time::sleep(Duration::from_secs_f64(a.hold.max(0.0))).await;
    close_all(conns).await;
    let report = ConnectionsReport {
        label: label.clone(),
        connections: a.count,
        open_seconds,
        rss_before_mib: before.map(mib),
        rss_with_connections_mib: with.map(mib),
        kib_per_connection: per_conn,
        settings: a.clone(),
    };
    let mut summary = format!(
        "{label}: {} connections opened in {open_seconds:.1} s",
        a.count
    );
    if let (Some(b), Some(w)) = (report.rss_before_mib, report.rss_with_connections_mib) {
        summary += &format!(" | broker rss {b:.1} MiB idle, {w:.1} MiB with them");
    }
    if let Some(k) = per_conn {
        summary += &format!(" | {k:.1} KiB per connection");
    }
    Ok(Output {
        summary,
        json: serde_json::to_value(&report)?,
        json_path: a.json,
    })
}

async fn close_all(conns: Vec<Idle>) {
    let mut tasks = Vec::with_capacity(conns.len());
    for c in conns {
        let _ = c.close.send(());
        tasks.push(c.task);
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
}
