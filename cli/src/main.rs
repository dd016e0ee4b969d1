//! `meterflow`: the command line. Today: `demo` (the ingest pipeline end to end on this machine)
//! and `bench ingest` (the ingest hot path's figures as JSON). The local stack (`up`), the
//! simulator and imports arrive with their issues.

/// `println!` that returns the write error instead of panicking, so `meterflow ... | head`
/// ends quietly when the reader goes away.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod bench;
mod demo;
mod sim;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meterflow",
    version,
    about = "Smart-meter data platform: local tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest a simulated fleet's day (with redeliveries, reordering and bad messages) into the
    /// local SQLite store and show what landed.
    Demo(demo::DemoArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The ingest hot path: domain (in memory), SQLite, and the full pipeline.
    Ingest(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("METERFLOW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
        Command::Bench(BenchCommand::Ingest(args)) => bench::run(&args),
    };
    match result {
        // The reader of our output went away (`| head`): that is not a failure.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}
