//! The `forecast` Lambda's handler: a scheduled coordinator event fans the fleet out into
//! shards, and each shard event forecasts the meters of its shard.
//!
//! - `{"mode":"coordinator","shards":N}` (from the daily schedule) fixes the run's issue time
//!   (the current hour, unless `issued_at` is given) and hands one [`ShardJob`] per shard to the
//!   [`ShardDispatcher`] (an SQS queue in AWS, a direct call on the local stack).
//! - `{"mode":"shard","shard":i,"shards":N,"issued_at":...}` pages through the registry, keeps
//!   the meters with `shard_of(meter, N) == i`, reads each one's last
//!   [`ForecastConfig::history_days`] of readings, issues its forecast
//!   ([`meter_core::forecast::stored::issue`]: model re-selected once a week per meter, else the
//!   last one kept) and writes them through the [`ForecastStore`].
//! - An SQS event (`{"Records":[...]}`) carries shard events as message bodies; a failed record
//!   is reported in `batchItemFailures`, so only it is retried (and, in the end, dead-lettered).
//!
//! The handler decides nothing about forecasting itself (that is `meter-core`); it translates
//! events, walks the shard and reports. Every write is keyed by `(meter, issued_at)`, so any
//! retry or redelivery replaces its own forecasts.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use meter_core::forecast::stored::{is_reselection_day, issue, IssueConfig};
use meter_core::forecast::{shard_of, Kept, NoTariff, StoredForecast};
use meter_core::ports::{
    ForecastStore, MeterRegistry, ReadingStore, ShardDispatcher, ShardJob, StoreError,
};
use meter_core::types::DAY_MS;
use meter_core::{MeterInfo, Timestamp};
use meter_shards::Dispatched;
use serde::{Deserialize, Serialize};

/// The most shards a run may have: more would make each shard's registry walk (a full page
/// through the registry per shard) cost more than its forecasts.
pub const MAX_SHARDS: u32 = 10_000;

/// Meters asked of the registry per page.
const PAGE: usize = 500;

/// Meters whose history is read at once: the reads wait on the store, the forecasts on the CPU.
const CONCURRENCY: usize = 8;

/// Why the configuration in the environment cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {var}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What a valid value looks like.
    pub reason: &'static str,
}

/// How the function forecasts.
#[derive(Debug, Clone)]
pub struct ForecastConfig {
    /// Days of readings each meter's forecast is computed from (`FORECAST_HISTORY_DAYS`,
    /// default 60: the selection needs 17, the ridge model fits on up to 112, and 60 is where
    /// the speed figures in docs/forecasting.md were measured).
    pub history_days: u32,
    /// Forecast horizon, model choice and re-selection period (`FORECAST_RESELECT_DAYS`,
    /// default 7).
    pub issue: IssueConfig,
    /// Days a stored forecast is kept (`FORECAST_RETENTION_DAYS`, default 90; DynamoDB TTL).
    pub retention_days: u32,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            history_days: 60,
            issue: IssueConfig::default(),
            retention_days: 90,
        }
    }
}

impl ForecastConfig {
    /// Reads `FORECAST_HISTORY_DAYS`, `FORECAST_RESELECT_DAYS` and `FORECAST_RETENTION_DAYS`
    /// through `lookup`; unset keeps the default, a set value must be a whole number ≥ 1.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let days = |var: &'static str, default: u32| match lookup(var) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(default),
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=3_650).contains(&n) => Ok(n),
                _ => Err(ConfigError {
                    var,
                    value: v,
                    reason: "expected a whole number of days from 1 to 3650",
                }),
            },
        };
        Ok(Self {
            history_days: days("FORECAST_HISTORY_DAYS", d.history_days)?,
            issue: IssueConfig {
                reselect_every_days: days("FORECAST_RESELECT_DAYS", d.issue.reselect_every_days)?,
                ..d.issue
            },
            retention_days: days("FORECAST_RETENTION_DAYS", d.retention_days)?,
        })
    }
}

/// What the handler works with, built once per cold start.
pub struct Forecaster {
    /// The registry, paged through by each shard.
    pub registry: Arc<dyn MeterRegistry>,
    /// Raw readings: each meter's history.
    pub readings: Arc<dyn ReadingStore>,
    /// Where forecasts go.
    pub forecasts: Arc<dyn ForecastStore>,
    /// The coordinator's fan-out.
    pub dispatcher: Arc<dyn ShardDispatcher>,
    /// Settings.
    pub config: ForecastConfig,
}

/// One SQS record the function could not handle, for a partial batch response.
pub use meter_shards::ItemFailure;
/// A run time in an event: RFC 3339 (`"2026-11-22T14:00:00Z"`) or epoch milliseconds.
pub use meter_shards::RunTime as IssueTime;

/// The function's own events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ForecastEvent {
    /// Fan the run out into `shards` shard jobs.
    Coordinator {
        /// How many shards.
        shards: u32,
        /// The run's issue time; default: the current hour.
        #[serde(default)]
        issued_at: Option<IssueTime>,
    },
    /// Forecast the meters of one shard.
    Shard {
        /// This shard, `0..shards`.
        shard: u32,
        /// How many shards the run has.
        shards: u32,
        /// The run's issue time; default: the current hour.
        #[serde(default)]
        issued_at: Option<IssueTime>,
    },
}

/// What a shard did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardReport {
    /// The shard.
    pub shard: u32,
    /// Of how many.
    pub shards: u32,
    /// The run's issue time (RFC 3339).
    pub issued_at: String,
    /// Meters of this shard in the registry.
    pub meters: usize,
    /// Forecasts written.
    pub forecast: usize,
    /// Meters without a forecast (too little or too old history), with the reason's count.
    pub skipped: BTreeMap<String, usize>,
    /// Forecasts written by model.
    pub by_model: BTreeMap<String, usize>,
    /// Meters whose model was re-selected by full backtest this time.
    pub reselected: usize,
}

/// What the coordinator did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoordinatorReport {
    /// The run's issue time (RFC 3339).
    pub issued_at: String,
    /// Shard jobs handed to the dispatcher.
    pub dispatched: u32,
}

/// An invocation's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// For a coordinator event.
    Coordinator(CoordinatorReport),
    /// For a shard event.
    Shard(ShardReport),
    /// For an SQS event: the records to retry (Lambda's `ReportBatchItemFailures`).
    Batch {
        /// Failed records; empty when all succeeded.
        #[serde(rename = "batchItemFailures")]
        batch_item_failures: Vec<ItemFailure>,
    },
}

/// Why an invocation failed.
pub use meter_shards::HandlerError;

/// Handles one invocation at wall (or simulated) time `now`.
pub async fn handle(
    f: &Forecaster,
    event: &serde_json::Value,
    now: Timestamp,
) -> Result<Response, HandlerError> {
    let outcome = meter_shards::dispatch(
        event,
        |e: &ForecastEvent| matches!(e, ForecastEvent::Coordinator { .. }),
        |text| async move { handle_event(f, &text, now).await },
        "forecast failed",
    )
    .await?;
    Ok(match outcome {
        Dispatched::Batch(failures) => Response::Batch {
            batch_item_failures: failures,
        },
        Dispatched::Direct(response) => response,
    })
}

/// The run's issue time: the event's, or the hour `now` falls in (so every re-run of the same
/// scheduled run within the hour writes the same keys).
fn issue_time(given: Option<IssueTime>, now: Timestamp) -> Result<Timestamp, HandlerError> {
    meter_shards::run_time(given, now, DAY_MS, "issued_at").map_err(HandlerError::BadEvent)
}

fn check_shards(shards: u32) -> Result<(), HandlerError> {
    meter_shards::check_shards(shards, MAX_SHARDS).map_err(HandlerError::BadEvent)
}

async fn handle_event(
    f: &Forecaster,
    text: &str,
    now: Timestamp,
) -> Result<Response, HandlerError> {
    match meter_shards::parse::<ForecastEvent>(text)? {
        ForecastEvent::Coordinator { shards, issued_at } => {
            check_shards(shards)?;
            let issued_at = issue_time(issued_at, now)?;
            let jobs: Vec<ShardJob> = (0..shards)
                .map(|shard| ShardJob {
                    shard,
                    shards,
                    issued_at,
                })
                .collect();
            f.dispatcher.dispatch(&jobs).await?;
            tracing::info!(shards, %issued_at, "forecast run fanned out");
            Ok(Response::Coordinator(CoordinatorReport {
                issued_at: issued_at.to_rfc3339(),
                dispatched: shards,
            }))
        }
        ForecastEvent::Shard {
            shard,
            shards,
            issued_at,
        } => {
            check_shards(shards)?;
            if shard >= shards {
                return Err(HandlerError::BadEvent(format!(
                    "shard {shard} is not below shards {shards}"
                )));
            }
            let job = ShardJob {
                shard,
                shards,
                issued_at: issue_time(issued_at, now)?,
            };
            Ok(Response::Shard(run_shard(f, job).await?))
        }
    }
}

/// What became of one meter.
enum Outcome {
    Issued(Box<StoredForecast>, bool),
    Skipped(&'static str),
}

/// Forecasts the meters of `job`'s shard and writes them, one registry page at a time.
pub async fn run_shard(f: &Forecaster, job: ShardJob) -> Result<ShardReport, StoreError> {
    let mut report = ShardReport {
        shard: job.shard,
        shards: job.shards,
        issued_at: job.issued_at.to_rfc3339(),
        ..ShardReport::default()
    };
    let mut after = None;
    loop {
        let page = f.registry.list(after.as_ref(), PAGE).await?;
        let mine: Vec<MeterInfo> = page
            .meters
            .into_iter()
            .filter(|m| shard_of(&m.meter_id, job.shards) == job.shard)
            .collect();
        report.meters += mine.len();
        let outcomes: Vec<Result<Outcome, StoreError>> = stream::iter(mine)
            .map(|m| forecast_one(f, m, job.issued_at))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut batch = Vec::new();
        for outcome in outcomes {
            match outcome? {
                Outcome::Issued(fc, reselected) => {
                    *report.by_model.entry(fc.model.to_string()).or_default() += 1;
                    report.reselected += usize::from(reselected);
                    batch.push(*fc);
                }
                Outcome::Skipped(why) => *report.skipped.entry(why.to_owned()).or_default() += 1,
            }
        }
        f.forecasts.put(&batch).await?;
        report.forecast += batch.len();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    tracing::info!(
        shard = report.shard,
        shards = report.shards,
        meters = report.meters,
        forecast = report.forecast,
        reselected = report.reselected,
        "forecast shard done"
    );
    Ok(report)
}

async fn forecast_one(
    f: &Forecaster,
    m: MeterInfo,
    issued_at: Timestamp,
) -> Result<Outcome, StoreError> {
    let cfg = &f.config;
    let from = issued_at.add_millis(-i64::from(cfg.history_days) * DAY_MS);
    let readings = f.readings.range(&m.meter_id, from, issued_at).await?;
    let reselect = is_reselection_day(&m.meter_id, issued_at, cfg.issue.reselect_every_days);
    // Only a day that keeps the model needs to know which one it was; a forecast issued at or
    // after this issue (a backfill of an earlier day) chose its model from later data, so it is
    // not used.
    let previous = if reselect {
        None
    } else {
        f.forecasts
            .latest(&m.meter_id)
            .await?
            .filter(|fc| fc.issued_at < issued_at)
            .map(|fc| Kept::of(&fc))
    };
    let reselected = previous.is_none();
    match issue(
        &m.meter_id,
        m.timezone,
        &readings,
        issued_at,
        previous,
        &cfg.issue,
        &NoTariff,
    ) {
        Ok(fc) => Ok(Outcome::Issued(Box::new(fc), reselected)),
        Err(e) => {
            tracing::debug!(meter_id = %m.meter_id, reason = %e, "no forecast");
            Ok(Outcome::Skipped(match e {
                meter_core::forecast::IssueError::NoHistory => "no_history",
                meter_core::forecast::IssueError::Silent { .. } => "silent",
                meter_core::forecast::IssueError::Model(_) => "model_failed",
                meter_core::forecast::IssueError::StoreForm(_) => "unstorable",
            }))
        }
    }
}
