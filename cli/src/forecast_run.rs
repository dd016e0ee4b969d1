//! `meterflow bench forecast-run`: the `forecast` function's own path, timed on a local store
//! (for example one `meterflow import` filled with real data): for each of `--days` consecutive
//! daily issues, the coordinator event and every shard event go through `forecast::handle` on
//! the SQLite adapters, exactly as `meterflow up` and the Lambda run them. The first day finds
//! no earlier forecast, so every meter's model is chosen by full backtest; on later days only
//! the meters whose re-selection day it is (one in `FORECAST_RESELECT_DAYS`) are, and the rest
//! keep their model. Prints JSON per day: meters, forecasts, re-selections, seconds, meters/s.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use forecast::{ForecastConfig, Forecaster, Response};
use meter_core::memory::MemoryShardDispatcher;
use meter_core::types::DAY_MS;
use meter_core::Timestamp;
use meter_local::{SqliteDb, SqliteForecastStore};
use serde_json::json;

use crate::paths;

/// Settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ForecastRunArgs {
    /// The local store to forecast from (and write forecasts to).
    #[arg(long, default_value_os_t = paths::default_data_dir())]
    pub data_dir: PathBuf,
    /// The first issue time (RFC 3339); later days follow at 24 h steps.
    #[arg(long)]
    pub issued_at: String,
    /// Consecutive daily issues.
    #[arg(long, default_value_t = 2)]
    pub days: u32,
    /// Shards per run (run one after another, on one thread).
    #[arg(long, default_value_t = 4)]
    pub shards: u32,
    /// Print JSON (the only output; kept for symmetry with the other benches).
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark.
pub async fn run(args: &ForecastRunArgs) -> anyhow::Result<()> {
    let path = args.data_dir.join("meterflow.db");
    anyhow::ensure!(path.exists(), "no store at {}", path.display());
    let db = Arc::new(SqliteDb::open(&path).context("opening the local store")?);
    let ports = meter_local::sqlite_ports(db.clone());
    let queue = Arc::new(MemoryShardDispatcher::new());
    let f = Forecaster {
        registry: ports.registry,
        readings: ports.readings,
        forecasts: Arc::new(SqliteForecastStore::new(db)),
        dispatcher: queue.clone(),
        config: ForecastConfig::default(),
    };
    let first = Timestamp::parse_rfc3339(&args.issued_at)?;
    let mut days = Vec::new();
    for d in 0..args.days {
        let issued = first.add_millis(i64::from(d) * DAY_MS);
        let started = Instant::now();
        let coordinator =
            json!({"mode": "coordinator", "shards": args.shards, "issued_at": issued.millis()});
        forecast::handle(&f, &coordinator, issued).await?;
        let (mut meters, mut written, mut reselected) = (0usize, 0usize, 0usize);
        let mut by_model = std::collections::BTreeMap::<String, usize>::new();
        for job in queue.take() {
            let event: serde_json::Value = serde_json::from_str(&job.to_event_json())?;
            if let Response::Shard(r) = forecast::handle(&f, &event, issued).await? {
                meters += r.meters;
                written += r.forecast;
                reselected += r.reselected;
                for (m, n) in r.by_model {
                    *by_model.entry(m).or_default() += n;
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        days.push(json!({
            "issued_at": issued.to_rfc3339(),
            "meters": meters,
            "forecast": written,
            "reselected": reselected,
            "by_model": by_model,
            "seconds": secs,
            "meters_per_s": meters as f64 / secs.max(1e-9),
        }));
    }
    say!(
        "{}",
        serde_json::to_string_pretty(&json!({ "days": days }))?
    );
    Ok(())
}
