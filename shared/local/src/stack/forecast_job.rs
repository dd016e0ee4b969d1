//! The forecast run on the local stack: the stand-in for the daily EventBridge schedule and the
//! SQS shard queue. Each run hands the coordinator event to the same `forecast::handle` the
//! Lambda runs, collects the shard jobs it dispatches, and hands each one back as a shard
//! event, on the SQLite adapters, at simulated time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use forecast::{ForecastConfig, Forecaster, Response};
use meter_core::memory::MemoryShardDispatcher;
use meter_core::ports::{ForecastStore, MeterRegistry, ReadingStore};
use meter_core::Timestamp;

use super::schedule::ScheduledJob;

/// How the local stack runs the forecast.
#[derive(Debug, Clone)]
pub struct ForecastSchedule {
    /// How often, in simulated time (a day, as in production).
    pub every: Duration,
    /// Shards per run (run one after another here; several show the fan-out at work).
    pub shards: u32,
    /// The function's settings.
    pub config: ForecastConfig,
}

impl Default for ForecastSchedule {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(86_400),
            shards: 4,
            config: ForecastConfig::default(),
        }
    }
}

/// The scheduled forecast run.
pub struct ForecastJob {
    forecaster: Forecaster,
    queue: Arc<MemoryShardDispatcher>,
    schedule: ForecastSchedule,
}

impl ForecastJob {
    /// A run over these stores.
    pub fn new(
        registry: Arc<dyn MeterRegistry>,
        readings: Arc<dyn ReadingStore>,
        forecasts: Arc<dyn ForecastStore>,
        schedule: ForecastSchedule,
    ) -> Self {
        let queue = Arc::new(MemoryShardDispatcher::new());
        Self {
            forecaster: Forecaster {
                registry,
                readings,
                forecasts,
                dispatcher: queue.clone(),
                config: schedule.config.clone(),
            },
            queue,
            schedule,
        }
    }
}

#[async_trait]
impl ScheduledJob for ForecastJob {
    fn name(&self) -> &str {
        "forecast"
    }

    fn every(&self) -> Duration {
        self.schedule.every
    }

    async fn run(&self, now: Timestamp) -> Result<String, anyhow::Error> {
        let coordinator =
            serde_json::json!({"mode": "coordinator", "shards": self.schedule.shards});
        forecast::handle(&self.forecaster, &coordinator, now).await?;
        let (mut meters, mut written, mut reselected) = (0, 0, 0);
        let mut issued_at = String::new();
        for job in self.queue.take() {
            let event: serde_json::Value = serde_json::from_str(&job.to_event_json())?;
            if let Response::Shard(r) = forecast::handle(&self.forecaster, &event, now).await? {
                meters += r.meters;
                written += r.forecast;
                reselected += r.reselected;
                issued_at = r.issued_at;
            }
        }
        Ok(format!(
            "issued at {issued_at}: {written} of {meters} meters forecast ({reselected} models re-selected)"
        ))
    }
}
