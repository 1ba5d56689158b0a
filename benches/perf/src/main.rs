//! `ferrymq-perf` command line: see the library docs (`src/lib.rs`) and `--help`.

use clap::Parser;
use ferrymq_perf::Cli;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.command.threads())
        .enable_all()
        .build()?;
    let output = runtime.block_on(cli.command.execute())?;
    output.emit()
}
