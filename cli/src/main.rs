//! `meterflow`: the command line: `up` (the local stack), `simulate` (a fleet against any
//! broker), `demo` (the ingest pipeline end to end on this machine), `import` (real
//! interval-energy files into the local store), `forecast` and `eval forecast` (day-ahead
//! backtests of the forecasting models on such files), `detect`, `eval theft` and `eval vee`
//! (theft and anomaly scores per meter-day, bad-data checks), `scan` and `findings` (the anomaly
//! scan once over the local store, and what it keeps), `cost` (the monthly AWS bill of a
//! fleet) and `bench ingest|pipeline|forecast|forecast-run|anomaly` (figures as JSON).

/// `println!` that returns the write error instead of panicking, so `meterflow ... | head`
/// ends quietly when the reader goes away.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod anomaly_bench;
mod bench;
mod cost;
mod demo;
mod detect;
mod feeders;
mod findings;
mod forecast;
mod forecast_bench;
mod forecast_run;
mod import;
mod paths;
mod pipeline;
mod scan_calibration;
mod sim;
mod simulate;
mod sustained_eval;
mod up;
mod vee_eval;

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
    /// Run the whole pipeline on this machine: MQTT broker, ingest, SQLite store, a simulated
    /// fleet, /health and /metrics. Ctrl-C stops cleanly; running it again resumes.
    Up(up::UpArgs),
    /// Publish a simulated fleet to any MQTT broker (mqtt:// or mqtts:// for AWS IoT Core).
    Simulate(simulate::SimulateArgs),
    /// Ingest a simulated fleet's day (with redeliveries, reordering and bad messages) into the
    /// local SQLite store and show what landed.
    Demo(demo::DemoArgs),
    /// Load an interval-energy file (SGSC export or meter_id,timestamp,kwh CSV; plain, gzip or
    /// stdin) into the local SQLite store as meter readings, through the ingest pipeline.
    Import(import::ImportArgs),
    /// The monthly AWS cost of a fleet by service, from the dated price table and the ingest
    /// work measured per reading (docs/cost.md).
    Cost(cost::CostArgs),
    /// Day-ahead forecasts issued at local midnight on each of the last N days of every series
    /// in an interval file (SGSC or meter_id,timestamp,kwh CSV), from earlier data only, as CSV.
    Forecast(forecast::ForecastArgs),
    /// Run the anomaly scan once over the local store (the `anomaly-scan` Lambda's handler on
    /// SQLite): findings opened, updated and closed as of `--at`.
    Scan(findings::ScanArgs),
    /// The findings the anomaly scan keeps in the local store: the fleet's open ones, or every
    /// finding of one meter.
    Findings(findings::FindingsArgs),
    /// Theft and anomaly scores of every meter-day of an interval file (SGSC or
    /// meter_id,timestamp,kwh CSV) as CSV: meter_id,day,score,detector (higher = more suspicious).
    Detect(detect::DetectArgs),
    /// Evaluations.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum EvalCommand {
    /// The `forecast` backtest, scored: NRMSE, MASE and P10-P90 coverage of the selected model
    /// and of every model and baseline side by side, with wall time.
    Forecast(forecast::EvalArgs),
    /// Theft detection on real data: h1-h6 injected into a seeded share of its meter-days,
    /// ROC-AUC and PR-AUC per attack and overall.
    Theft(detect::EvalTheftArgs),
    /// The bad-data (VEE) checks on real data with seeded stuck registers, zero runs and
    /// negative intervals planted: recall and other findings per kind, as JSON.
    Vee(vee_eval::EvalVeeArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The ingest hot path: domain (in memory), SQLite, and the full pipeline.
    Ingest(bench::BenchArgs),
    /// The local stack end to end: simulated meters over MQTT into ingest and SQLite.
    Pipeline(pipeline::PipelineArgs),
    /// Forecasting speed on real data: daily forecasts and model re-selection, meters/s.
    Forecast(forecast_bench::BenchForecastArgs),
    /// The forecast function's path (coordinator, shards, store reads and writes) on a local
    /// store, day by day: meters/s with full re-selection and with kept models.
    ForecastRun(forecast_run::ForecastRunArgs),
    /// The isolation forest against scikit-learn's on the same data (scripts/bench-anomaly):
    /// fit and score time, AUC.
    Anomaly(anomaly_bench::BenchAnomalyArgs),
}

fn main() -> anyhow::Result<()> {
    // rumqttd reports every dropped client connection at error level: off unless asked for.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("METERFLOW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Cost(args) => cost::run(&args),
        Command::Bench(BenchCommand::Ingest(args)) => bench::run(&args),
        Command::Forecast(args) => forecast::run_forecast(&args),
        Command::Eval(EvalCommand::Forecast(args)) => forecast::run_eval(&args),
        Command::Bench(BenchCommand::Forecast(args)) => forecast_bench::run(&args),
        Command::Detect(args) => detect::run_detect(&args),
        Command::Eval(EvalCommand::Theft(args)) => detect::run_eval(&args),
        Command::Eval(EvalCommand::Vee(args)) => vee_eval::run(&args),
        Command::Bench(BenchCommand::Anomaly(args)) => anomaly_bench::run(&args),
        Command::Up(args) => runtime().and_then(|rt| rt.block_on(up::run(&args))),
        Command::Scan(args) => runtime().and_then(|rt| rt.block_on(findings::run_scan(&args))),
        Command::Findings(args) => {
            runtime().and_then(|rt| rt.block_on(findings::run_findings(&args)))
        }
        Command::Simulate(args) => runtime().and_then(|rt| rt.block_on(simulate::run(&args))),
        Command::Bench(BenchCommand::ForecastRun(args)) => {
            runtime().and_then(|rt| rt.block_on(forecast_run::run(&args)))
        }
        Command::Bench(BenchCommand::Pipeline(args)) => {
            runtime().and_then(|rt| rt.block_on(pipeline::run(&args)))
        }
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

/// The runtime for the long-running commands (the local stack, the simulator).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
