//! The `ferrymq` binary: one broker for stock RabbitMQ (AMQP 0-9-1) and Kafka clients.
//!
//! Layout, top to bottom:
//!
//! ```text
//! main.rs        parse flags, load config, start logging and the runtime, exit status
//! cli.rs         clap flags -> config overrides; the `user` subcommand's arguments
//! user_cmd.rs    `ferrymq user ...`: users and permissions of a running broker, over its API
//! config/        the config sections and their defaults (mod.rs), validation,
//!                generic layering: defaults < file < FERRYMQ_* env < flags (layers.rs)
//! logging.rs     tracing to stderr, text or JSON
//! app.rs         the broker's lifetime: lock, bind, wire frontends, ready line, shutdown
//! lock.rs        exclusive lock on the data directory
//! listener.rs    accept loop with a connection cap, shared by every listener
//! advertised.rs  the address the Kafka listener advertises
//! http.rs        the HTTP admin routes (GET /healthz)
//! shutdown.rs    signals and the bounded wait for connections
//! ```
//!
//! Exit status: 0 after a graceful shutdown (or `--version`, `--help`, `--print-config`);
//! 2 for a usage or configuration error; 1 when the broker cannot run (data directory locked
//! by another instance, address in use, ...). `ferrymq user ...` runs no broker: it exits 0
//! when the broker made the change, 1 when it refused or could not be reached.
//!
//! ```text
//! ferrymq --data-dir /var/lib/ferrymq --kafka-advertised broker-1.example.com:9092
//! ```

mod advertised;
mod app;
mod cli;
mod config;
mod health_cmd;
mod http;
mod listener;
mod lock;
mod logging;
mod resources;
mod secure;
mod shutdown;
mod user_cmd;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{Config, Loaded};

/// jemalloc instead of the system allocator: it returns memory freed after a burst (a drained
/// backlog of a million messages) to the OS within seconds, where glibc's arenas kept it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long runtime teardown waits for blocking tasks after the broker has stopped.
const RUNTIME_TEARDOWN: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::User(args)) => return user_cmd::run(args),
        Some(Command::Health { url }) => return health_cmd::run(url.as_deref()),
        None => {}
    }
    let Loaded { config, warnings } = match cli
        .overrides()
        .and_then(|flags| Config::load(cli.config.as_deref(), std::env::vars_os(), flags))
    {
        Ok(loaded) => loaded,
        Err(e) => return report_early(&e, 2),
    };
    if cli.print_config {
        for warning in &warnings {
            let _ = writeln!(std::io::stderr(), "ferrymq: warning: {warning}");
        }
        return match print_config(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => report_early(&e, 1),
        };
    }
    if let Err(e) = logging::init(&config.log) {
        return report_early(&e, 2);
    }
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        "ferrymq starting"
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferrymq-worker")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(app::run(config));
    runtime.shutdown_timeout(RUNTIME_TEARDOWN);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_config(config: &Config) -> anyhow::Result<()> {
    let text = toml::to_string(config)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# ferrymq {} effective configuration",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        out,
        "# (flags > FERRYMQ_* environment > config file > defaults)\n"
    )?;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Reports an error that happened before logging was set up.
fn report_early(e: &anyhow::Error, status: u8) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "ferrymq: error: {e:#}");
    ExitCode::from(status)
}
