//! The anomaly scan on the local stack: the stand-in for the scan's EventBridge schedule, its
//! SQS shard queue and the findings table's stream. Each run hands the coordinator event to the
//! same `anomaly_scan::handle` the Lambda runs, collects the shard jobs it dispatches, hands each
//! one back as a shard event on the SQLite adapters at simulated time, and announces every newly
//! opened finding in the [`Outbox`] (channel `finding`): what the alerts function will read from
//! the findings table's stream in AWS.

use std::sync::Arc;
use std::time::Duration;

use anomaly_scan::{Response, ScanSettings, Scanner};
use async_trait::async_trait;
use meter_core::memory::MemoryShardDispatcher;
use meter_core::ports::{FindingStore, MeterRegistry, ReadingStore};
use meter_core::Timestamp;

use super::metrics::StackMetrics;
use super::outbox::{Outbox, OutboxMessage};
use super::schedule::ScheduledJob;

/// How the local stack runs the anomaly scan.
#[derive(Debug, Clone)]
pub struct ScanSchedule {
    /// How often, in simulated time (default: a day, as the production schedule).
    pub every: Duration,
    /// Shards per run (run one after another here; several show the fan-out at work).
    pub shards: u32,
    /// The function's settings.
    pub settings: ScanSettings,
}

impl Default for ScanSchedule {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(86_400),
            shards: 2,
            settings: ScanSettings::default(),
        }
    }
}

/// The scheduled anomaly scan.
pub struct ScanJob {
    scanner: Scanner,
    queue: Arc<MemoryShardDispatcher>,
    outbox: Arc<Outbox>,
    metrics: Option<Arc<StackMetrics>>,
    schedule: ScanSchedule,
}

impl ScanJob {
    /// A run over these stores, announcing new findings in `outbox`.
    pub fn new(
        registry: Arc<dyn MeterRegistry>,
        readings: Arc<dyn ReadingStore>,
        findings: Arc<dyn FindingStore>,
        outbox: Arc<Outbox>,
        schedule: ScanSchedule,
    ) -> Self {
        let queue = Arc::new(MemoryShardDispatcher::new());
        Self {
            scanner: Scanner {
                registry,
                readings,
                findings,
                dispatcher: queue.clone(),
                settings: schedule.settings.clone(),
            },
            queue,
            outbox,
            metrics: None,
            schedule,
        }
    }

    /// Also counts opened findings in `metrics` (`meterflow_findings_opened_total`).
    pub fn with_metrics(mut self, metrics: Arc<StackMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

#[async_trait]
impl ScheduledJob for ScanJob {
    fn name(&self) -> &str {
        "anomaly-scan"
    }

    fn every(&self) -> Duration {
        self.schedule.every
    }

    async fn run(&self, now: Timestamp) -> Result<String, anyhow::Error> {
        // The scan time is the simulated instant, not its hour: at high speed the job runs
        // several times an hour of simulated time, and each run must see the data up to then.
        let coordinator = serde_json::json!({
            "mode": "coordinator",
            "shards": self.schedule.shards,
            "scan_at": now.millis(),
        });
        anomaly_scan::handle(&self.scanner, &coordinator, now).await?;
        let (mut meters, mut opened, mut updated, mut closed) = (0, 0, 0, 0);
        for job in self.queue.take() {
            let event: serde_json::Value = serde_json::from_str(&job.to_event_json())?;
            if let Response::Shard(r) = anomaly_scan::handle(&self.scanner, &event, now).await? {
                meters += r.meters;
                updated += r.updated;
                closed += r.closed;
                opened += r.opened.len();
                for f in &r.opened {
                    if let Some(m) = &self.metrics {
                        m.record_finding_opened(&f.kind);
                    }
                    self.outbox.send(&OutboxMessage {
                        channel: "finding".into(),
                        to: "alerts".into(),
                        subject: format!("{} on {}", f.kind, f.meter_id),
                        body: format!("{} (finding {})", f.explanation, f.id),
                        sent_ms: now.millis(),
                    })?;
                }
            }
        }
        Ok(format!(
            "scanned {meters} meters at {now}: {opened} findings opened, {updated} still open, {closed} closed"
        ))
    }
}
