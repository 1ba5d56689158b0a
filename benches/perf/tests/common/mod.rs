//! What the test binaries share: an accept loop and ferrymq-perf run in-process.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test setup: any failure must fail the test"
)]

use std::net::SocketAddr;

use clap::Parser;
use ferrymq_perf::Cli;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Accepts connections on `listener` until `shutdown`, serving each with `serve`.
pub fn accept<F, Fut>(listener: TcpListener, shutdown: &CancellationToken, serve: F)
where
    F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let token = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Ok((s, peer)) = listener.accept() => {
                    tokio::spawn(serve(s, peer, token.clone()));
                }
                () = token.cancelled() => return,
            }
        }
    });
}

/// Runs ferrymq-perf with `args` (quiet, a 60 s timeout), or says why it failed.
pub async fn try_perf(args: &[&str]) -> anyhow::Result<Value> {
    let mut argv = vec!["ferrymq-perf"];
    argv.extend_from_slice(args);
    if args.first() != Some(&"connections") {
        argv.extend_from_slice(&["--quiet", "--timeout", "60"]);
    }
    let cli = Cli::try_parse_from(argv)?;
    Ok(cli.command.execute().await?.json)
}

/// Runs ferrymq-perf with `args`, which must succeed.
pub async fn perf(args: &[&str]) -> Value {
    try_perf(args).await.expect("run")
}

pub fn num(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}
