//! Scheduled jobs on simulated time: the local stand-in for EventBridge Scheduler.
//!
//! The `forecast` and `anomaly-scan` functions run here ([`super::forecast_job`],
//! [`super::scan_job`]): each is a [`ScheduledJob`] with a period in simulated time, and the
//! [`Scheduler`] runs it whenever the simulated clock crosses a multiple of that period (so at
//! 3600× speed an hourly job runs every wall second). A failing job is logged and retried at its next period, as a scheduled Lambda
//! would be.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use meter_core::Timestamp;

/// A job the stack runs on a schedule.
#[async_trait]
pub trait ScheduledJob: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// How often it runs, in simulated time.
    fn every(&self) -> Duration;
    /// Runs once for the simulated time `now`; returns a one-line summary for the log.
    async fn run(&self, now: Timestamp) -> Result<String, anyhow::Error>;
}

/// Runs registered jobs when the simulated clock crosses their periods.
#[derive(Default)]
pub struct Scheduler {
    jobs: Vec<(Arc<dyn ScheduledJob>, i64)>,
}

impl Scheduler {
    /// No jobs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a job; it first runs at the first period boundary after `now`.
    pub fn add(&mut self, job: Arc<dyn ScheduledJob>, now: Timestamp) {
        let period = job.every().as_millis().max(1) as i64;
        let next = (now.millis().div_euclid(period) + 1) * period;
        self.jobs.push((job, next));
    }

    /// How many jobs are registered.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job is registered.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Runs every job that is due at `now` (once, however many periods were missed, like a
    /// schedule that does not backfill) and returns how many ran.
    pub async fn tick(&mut self, now: Timestamp) -> usize {
        let mut ran = 0;
        for (job, next) in &mut self.jobs {
            if now.millis() < *next {
                continue;
            }
            let period = job.every().as_millis().max(1) as i64;
            *next = (now.millis().div_euclid(period) + 1) * period;
            ran += 1;
            match job.run(now).await {
                Ok(summary) => tracing::info!(job = job.name(), %summary, "scheduled job ran"),
                Err(e) => {
                    tracing::warn!(job = job.name(), error = %format!("{e:#}"), "scheduled job failed")
                }
            }
        }
        ran
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    #[async_trait]
    impl ScheduledJob for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn every(&self) -> Duration {
            Duration::from_secs(3_600)
        }
        async fn run(&self, _now: Timestamp) -> Result<String, anyhow::Error> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok("ok".into())
        }
    }

    #[tokio::test]
    async fn a_job_runs_once_per_period_boundary_crossed() {
        let job = Arc::new(Counting(AtomicUsize::new(0)));
        let mut s = Scheduler::new();
        let hour = 3_600_000;
        s.add(job.clone(), Timestamp::from_millis(10 * hour + 5));
        assert_eq!(s.tick(Timestamp::from_millis(10 * hour + 100)).await, 0);
        assert_eq!(s.tick(Timestamp::from_millis(11 * hour)).await, 1);
        assert_eq!(s.tick(Timestamp::from_millis(11 * hour + 1)).await, 0);
        // Three periods missed: one run, not three.
        assert_eq!(s.tick(Timestamp::from_millis(14 * hour + 7)).await, 1);
        assert_eq!(job.0.load(Ordering::Relaxed), 2);
    }
}
