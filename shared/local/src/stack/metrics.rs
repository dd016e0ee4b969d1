//! The local stack's counters, exposed at `/metrics` in the Prometheus/OpenMetrics text format
//! and read by the status line.
//!
//! Names follow Prometheus conventions: `meterflow_readings_total{outcome=...}`,
//! `meterflow_quarantined_total{reason=...}`, `meterflow_ingest_latency_seconds` (a histogram of
//! the time from a message reaching the rule bridge to its batch being stored),
//! `meterflow_findings_opened_total{kind=...}` (the anomaly scan's new findings).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use meter_core::IngestReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Every counter the local stack keeps. Cheap to update from any thread.
pub struct StackMetrics {
    registry: Registry,
    // The three outcome series, taken out of their family once (clones share the count).
    stored: Counter,
    duplicates: Counter,
    quarantined_readings: Counter,
    quarantined: Family<ReasonLabels, Counter>,
    messages: Counter,
    events: Counter,
    ingest_failures: Counter,
    latency: Histogram,
    meters_online: Gauge,
    published: Counter,
    findings_opened: Family<KindLabels, Counter>,
    sim_time_ms: AtomicI64,
    // Encoding walks the registry; one encoder at a time keeps scrapes consistent.
    encode_lock: Mutex<()>,
}

impl Default for StackMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl StackMetrics {
    /// All counters at zero, registered under their public names.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let readings = Family::<OutcomeLabels, Counter>::default();
        let quarantined = Family::<ReasonLabels, Counter>::default();
        let messages = Counter::default();
        let events = Counter::default();
        let ingest_failures = Counter::default();
        // 0.5 ms .. ~8 s: local batches take milliseconds, a stalled disk takes seconds.
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 15));
        let meters_online = Gauge::default();
        let published = Counter::default();
        registry.register(
            "meterflow_readings",
            "Readings by ingest outcome",
            readings.clone(),
        );
        registry.register(
            "meterflow_quarantined",
            "Quarantined readings and messages by reason",
            quarantined.clone(),
        );
        registry.register(
            "meterflow_messages",
            "MQTT messages handed to the ingest handler",
            messages.clone(),
        );
        registry.register(
            "meterflow_events",
            "Instant events raised by ingest",
            events.clone(),
        );
        registry.register(
            "meterflow_ingest_failures",
            "Ingest handler invocations that failed and were retried",
            ingest_failures.clone(),
        );
        registry.register(
            "meterflow_ingest_latency_seconds",
            "Time from a message reaching the rule bridge to its batch being stored",
            latency.clone(),
        );
        registry.register(
            "meterflow_meters_online",
            "Simulated meters currently publishing",
            meters_online.clone(),
        );
        registry.register(
            "meterflow_simulator_published",
            "Messages the simulated fleet published",
            published.clone(),
        );
        let findings_opened = Family::<KindLabels, Counter>::default();
        registry.register(
            "meterflow_findings_opened",
            "Findings the anomaly scan opened, by kind",
            findings_opened.clone(),
        );
        // Created up front, so a scrape shows zeros instead of nothing.
        let series = |outcome| readings.get_or_create(&OutcomeLabels { outcome }).clone();
        let (stored, duplicates, quarantined_readings) =
            (series("stored"), series("duplicate"), series("quarantined"));
        Self {
            registry,
            stored,
            duplicates,
            quarantined_readings,
            quarantined,
            messages,
            events,
            ingest_failures,
            latency,
            meters_online,
            published,
            findings_opened,
            sim_time_ms: AtomicI64::new(0),
            encode_lock: Mutex::new(()),
        }
    }

    /// Counts one stored batch of `messages` messages, with each message's ingest latency.
    pub fn record_batch(&self, messages: u64, report: &IngestReport, latencies: &[Duration]) {
        self.messages.inc_by(messages);
        self.stored.inc_by(report.stored);
        self.duplicates.inc_by(report.duplicates);
        self.quarantined_readings.inc_by(report.quarantined);
        for (reason, n) in &report.quarantined_by_reason {
            self.quarantined
                .get_or_create(&ReasonLabels {
                    reason: reason.clone(),
                })
                .inc_by(*n);
        }
        self.events.inc_by(report.events);
        for l in latencies {
            self.latency.observe(l.as_secs_f64());
        }
    }

    /// Counts a failed ingest attempt (the batch is retried).
    pub fn record_failure(&self) {
        self.ingest_failures.inc();
    }

    /// Sets the number of simulated meters publishing.
    pub fn set_meters_online(&self, n: usize) {
        self.meters_online.set(n as i64);
    }

    /// Counts messages the simulated fleet published.
    pub fn record_published(&self, n: u64) {
        self.published.inc_by(n);
    }

    /// Counts a finding the anomaly scan opened, by its kind's stable name.
    pub fn record_finding_opened(&self, kind: &str) {
        self.findings_opened
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records the simulated clock, for the status line.
    pub fn set_sim_time(&self, t: meter_core::Timestamp) {
        self.sim_time_ms.store(t.millis(), Ordering::Relaxed);
    }

    /// A consistent-enough copy of the counters for the status line and tests.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            stored: self.stored.get(),
            duplicates: self.duplicates.get(),
            quarantined: self.quarantined_readings.get(),
            messages: self.messages.get(),
            events: self.events.get(),
            ingest_failures: self.ingest_failures.get(),
            meters_online: self.meters_online.get().max(0) as u64,
            published: self.published.get(),
            sim_time: meter_core::Timestamp::from_millis(self.sim_time_ms.load(Ordering::Relaxed)),
        }
    }

    /// The Prometheus/OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let _guard = self.encode_lock.lock();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Readings stored.
    pub stored: u64,
    /// Readings that were duplicates.
    pub duplicates: u64,
    /// Readings or messages quarantined.
    pub quarantined: u64,
    /// Messages handed to ingest.
    pub messages: u64,
    /// Instant events raised.
    pub events: u64,
    /// Failed (and retried) ingest attempts.
    pub ingest_failures: u64,
    /// Simulated meters publishing.
    pub meters_online: u64,
    /// Messages the simulated fleet published.
    pub published: u64,
    /// The simulated clock.
    pub sim_time: meter_core::Timestamp,
}

impl Snapshot {
    /// Readings accounted for: stored + duplicates + quarantined.
    pub fn accounted(&self) -> u64 {
        self.stored + self.duplicates + self.quarantined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_outcomes_reasons_and_the_latency_histogram() {
        let m = StackMetrics::new();
        let mut report = IngestReport {
            stored: 3,
            duplicates: 1,
            quarantined: 2,
            ..IngestReport::default()
        };
        report
            .quarantined_by_reason
            .insert("malformed_json".into(), 2);
        m.record_batch(6, &report, &[Duration::from_millis(3)]);
        let text = m.encode();
        assert!(
            text.contains(r#"meterflow_readings_total{outcome="stored"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"meterflow_readings_total{outcome="duplicate"} 1"#));
        assert!(text.contains(r#"meterflow_quarantined_total{reason="malformed_json"} 2"#));
        assert!(text.contains("meterflow_ingest_latency_seconds_bucket"));
        assert_eq!(m.snapshot().accounted(), 6);
    }
}
