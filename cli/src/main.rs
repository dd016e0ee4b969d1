//! `meterflow`: the command line. Today: `demo` (the ingest pipeline end to end on this machine)
//! and `bench ingest` (the ingest hot path's figures as JSON). The local stack (`up`), the
//! simulator and imports arrive with their issues.

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
    match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
        Command::Bench(BenchCommand::Ingest(args)) => bench::run(&args),
    }
}
