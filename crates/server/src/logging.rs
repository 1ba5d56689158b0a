//! The process log: `tracing` events written to **stderr**, as text or one JSON object per line.
//!
//! stdout is left to command output (`--print-config`, `--version`). The ready line is logged
//! under the target [`READY_TARGET`], which stays enabled at `info` whatever `log.level` says,
//! so supervisors and tests can always wait for it.

use std::io::IsTerminal;

use anyhow::anyhow;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Target of the `ferrymq ready ...` line.
pub const READY_TARGET: &str = "ferrymq::ready";

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .parse(format!("{},{READY_TARGET}=info", config.level.trim()))
        .map_err(|e| anyhow!("invalid log.level `{}`: {e}", config.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    installed.map_err(|e| anyhow!("cannot install the logger: {e}"))
}
