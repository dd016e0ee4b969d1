//! The handler against the sample events in `events/anomaly-scan/` on in-memory ports (each
//! file ends as `events/anomaly-scan/README.md` says), the fan-out (the shards of a run scan
//! every group once, feeders whole, for many shard counts), and de-duplication across scans.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use anomaly_scan::{HandlerError, Response, ScanSettings, Scanner, ShardReport};
use meter_core::anomaly::FindingKind;
use meter_core::memory::{
    MemoryFindingStore, MemoryMeterRegistry, MemoryReadingStore, MemoryShardDispatcher,
};
use meter_core::ports::{FindingStore, MeterRegistry, ReadingStore};
use meter_core::{MeterInfo, MeterKind, MeterStatus, Reading, Timestamp};
use meterflow_tests::fixtures::{day_series, meter, QUARTER, T0};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// 2026-03-15T00:00:00Z, the scan time of the sample events: 14 days after the fixtures' start.
const SCAN_AT: i64 = T0 + 14 * DAY;
/// The handler's "now" in these tests: the scan time plus a few minutes.
const NOW: Timestamp = Timestamp::from_millis(SCAN_AT + 300_000);

fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/anomaly-scan")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// 14 days of quarter-hour readings ending at the scan time, power consistent with energy.
fn series(id: &str, start_kwh: f64) -> Vec<Reading> {
    let mut rs = day_series(id, T0 + QUARTER, start_kwh, 14 * 96);
    let mut prev = start_kwh;
    for r in &mut rs {
        let kwh = r.energy_import.kwh();
        r.power_w = Some((kwh - prev) * 4_000.0);
        prev = kwh;
    }
    rs
}

struct World {
    scanner: Scanner,
    dispatcher: Arc<MemoryShardDispatcher>,
    findings: Arc<MemoryFindingStore>,
}

/// Feeder `f-1` with consumers `c-01`..`c-05` (c-02's register stuck for the last 3 hours while
/// power flows, c-03 reporting tamper in its last 4 readings), and `lone-1` with no feeder.
async fn world() -> World {
    let registry = Arc::new(MemoryMeterRegistry::new());
    let readings = Arc::new(MemoryReadingStore::new());
    let mut feeder_info = MeterInfo::new_consumer(meter("f-1"), chrono_tz::Tz::UTC);
    feeder_info.kind = MeterKind::Feeder;
    registry.upsert(&feeder_info).await.unwrap();
    let mut feeder: Vec<f64> = vec![0.0; 14 * 96];
    for i in 1..=5 {
        let id = format!("c-{i:02}");
        let mut info = MeterInfo::new_consumer(meter(&id), chrono_tz::Tz::UTC);
        info.feeder_id = Some(meter("f-1"));
        registry.upsert(&info).await.unwrap();
        let mut rs = series(&id, 100.0 * i as f64);
        let mut prev = 100.0 * i as f64;
        for (k, r) in rs.iter().enumerate() {
            feeder[k] += r.energy_import.kwh() - prev;
            prev = r.energy_import.kwh();
        }
        let n = rs.len();
        if i == 2 {
            let frozen = rs[n - 13].energy_import;
            for r in &mut rs[n - 12..] {
                r.energy_import = frozen;
                r.power_w = Some(1_500.0);
            }
        }
        if i == 3 {
            for r in &mut rs[n - 4..] {
                r.status = MeterStatus::Tamper;
            }
        }
        readings.insert(&rs).await.unwrap();
    }
    // The feeder: the consumers' true load plus 2% losses.
    let mut register = 5_000.0;
    let mut frs = series("f-1", register);
    for (r, kwh) in frs.iter_mut().zip(&feeder) {
        register += kwh * 1.02 + 0.002;
        r.energy_import = meter_core::Energy::from_kwh(register).unwrap();
        r.power_w = Some((kwh * 1.02 + 0.002) * 4_000.0);
    }
    readings.insert(&frs).await.unwrap();
    registry
        .upsert(&MeterInfo::new_consumer(
            meter("lone-1"),
            chrono_tz::Tz::UTC,
        ))
        .await
        .unwrap();
    readings.insert(&series("lone-1", 7.0)).await.unwrap();
    let dispatcher = Arc::new(MemoryShardDispatcher::new());
    let findings = Arc::new(MemoryFindingStore::new());
    World {
        scanner: Scanner {
            registry,
            readings,
            findings: findings.clone(),
            dispatcher: dispatcher.clone(),
            settings: ScanSettings::default(),
        },
        dispatcher,
        findings,
    }
}

fn shard_report(r: Response) -> ShardReport {
    match r {
        Response::Shard(r) => r,
        other => panic!("not a shard report: {other:?}"),
    }
}

fn opened(r: &ShardReport) -> Vec<(String, String)> {
    r.opened
        .iter()
        .map(|o| (o.meter_id.clone(), o.kind.clone()))
        .collect()
}

#[tokio::test]
async fn the_shard_event_scans_every_group_and_opens_the_planted_faults() {
    let w = world().await;
    let r = shard_report(
        anomaly_scan::handle(&w.scanner, &fixture("shard.json"), NOW)
            .await
            .unwrap(),
    );
    assert_eq!((r.groups, r.meters), (2, 7));
    let got = opened(&r);
    for want in [("c-02", "stuck_register"), ("c-03", "tamper")] {
        assert!(
            got.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {got:?}"
        );
    }
    assert!(
        !got.iter().any(|(m, _)| m == "lone-1" || m == "f-1"),
        "the clean meters have no findings: {got:?}"
    );
    let stored = w.findings.open_for_meter(&meter("c-03")).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, FindingKind::Tamper);
    assert_eq!(stored[0].opened_at, Timestamp::from_millis(SCAN_AT));
}

#[tokio::test]
async fn no_finding_is_duplicated_across_consecutive_scans_of_the_same_condition() {
    let w = world().await;
    let first = shard_report(
        anomaly_scan::handle(&w.scanner, &fixture("shard.json"), NOW)
            .await
            .unwrap(),
    );
    assert!(!first.opened.is_empty());
    // The same scan retried, then the next hour's scan: the conditions persist.
    let retry = shard_report(
        anomaly_scan::handle(&w.scanner, &fixture("shard.json"), NOW)
            .await
            .unwrap(),
    );
    let next_hour = serde_json::json!({"mode": "shard", "shard": 0, "shards": 1});
    let later = Timestamp::from_millis(SCAN_AT + HOUR + 60_000);
    let next = shard_report(
        anomaly_scan::handle(&w.scanner, &next_hour, later)
            .await
            .unwrap(),
    );
    for r in [&retry, &next] {
        assert!(r.opened.is_empty(), "reopened: {:?}", r.opened);
        assert_eq!(r.updated, first.opened.len());
        assert_eq!(r.closed, 0);
    }
    let mut total = 0;
    for id in ["c-01", "c-02", "c-03", "c-04", "c-05", "f-1", "lone-1"] {
        let all = w.findings.for_meter(&meter(id)).await.unwrap();
        total += all.len();
        for f in &all {
            assert_eq!(f.last_seen, Timestamp::from_millis(SCAN_AT + HOUR));
        }
    }
    assert_eq!(
        total,
        first.opened.len(),
        "one stored finding per condition"
    );
}

#[tokio::test]
async fn the_shards_of_a_run_scan_every_group_once_with_feeders_whole() {
    for shards in [1u32, 2, 3, 7] {
        let w = world().await;
        let coordinator = serde_json::json!({"mode": "coordinator", "shards": shards});
        let r = anomaly_scan::handle(&w.scanner, &coordinator, NOW)
            .await
            .unwrap();
        assert!(matches!(r, Response::Coordinator(c) if c.dispatched == shards));
        let (mut groups, mut meters, mut opened) = (0, 0, 0);
        for job in w.dispatcher.take() {
            let event: serde_json::Value = serde_json::from_str(&job.to_event_json()).unwrap();
            let r = shard_report(anomaly_scan::handle(&w.scanner, &event, NOW).await.unwrap());
            assert_eq!(r.scan_at, Timestamp::from_millis(SCAN_AT).to_rfc3339());
            groups += r.groups;
            meters += r.meters;
            opened += r.opened.len();
        }
        assert_eq!((groups, meters), (2, 7), "{shards} shards");
        assert!(opened >= 2, "{shards} shards");
    }
}

#[tokio::test]
async fn the_coordinator_sample_fans_out_four_shards_at_its_scan_time() {
    let w = world().await;
    let r = anomaly_scan::handle(&w.scanner, &fixture("coordinator.json"), NOW)
        .await
        .unwrap();
    assert!(matches!(&r, Response::Coordinator(c) if c.dispatched == 4));
    let jobs = w.dispatcher.take();
    assert_eq!(jobs.len(), 4);
    assert!(jobs
        .iter()
        .all(|j| j.issued_at == Timestamp::from_millis(SCAN_AT)));
}

#[tokio::test]
async fn the_sqs_batch_runs_each_shard_and_reports_only_the_bad_record() {
    let w = world().await;
    let r = anomaly_scan::handle(&w.scanner, &fixture("sqs_shards.json"), NOW)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        serde_json::json!({"batchItemFailures": []})
    );
    assert_eq!(
        w.findings
            .open_for_meter(&meter("c-03"))
            .await
            .unwrap()
            .len(),
        1
    );
    let r = anomaly_scan::handle(&w.scanner, &fixture("sqs_bad_record.json"), NOW)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "0c5e1d2a-0004-4b7f-8e3a-000000000004"}
        ]})
    );
}

#[tokio::test]
async fn bad_events_fail_without_retry_and_write_nothing() {
    let w = world().await;
    for name in ["bad_shard.json", "unknown_mode.json"] {
        let err = anomaly_scan::handle(&w.scanner, &fixture(name), NOW)
            .await
            .unwrap_err();
        assert!(matches!(err, HandlerError::BadEvent(_)), "{name}: {err}");
        assert!(!err.is_retryable());
    }
    let future = serde_json::json!({"mode": "shard", "shard": 0, "shards": 1,
        "scan_at": Timestamp::from_millis(SCAN_AT + 2 * DAY).to_rfc3339()});
    assert!(anomaly_scan::handle(&w.scanner, &future, NOW)
        .await
        .is_err());
    assert!(w
        .findings
        .open_page(None, 10)
        .await
        .unwrap()
        .findings
        .is_empty());
    assert!(w.dispatcher.take().is_empty());
}

#[tokio::test]
async fn the_scheduled_coordinator_scans_the_current_hour() {
    let w = world().await;
    let r = anomaly_scan::handle(&w.scanner, &fixture("coordinator_scheduled.json"), NOW)
        .await
        .unwrap();
    assert!(matches!(&r, Response::Coordinator(c) if c.dispatched == 16));
    assert!(w
        .dispatcher
        .take()
        .iter()
        .all(|j| j.issued_at == Timestamp::from_millis(SCAN_AT)));
}

#[test]
fn settings_come_from_the_environment_and_refuse_nonsense() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let s = ScanSettings::from_lookup(env(&[])).unwrap();
    assert_eq!(
        (s.scan.history_days, s.scan.report_ms, s.retention_days),
        (35, DAY, 90)
    );
    let s = ScanSettings::from_lookup(env(&[
        ("SCAN_HISTORY_DAYS", "14"),
        ("SCAN_REPORT_HOURS", "6"),
        ("FINDING_RETENTION_DAYS", "30"),
    ]))
    .unwrap();
    assert_eq!(
        (s.scan.history_days, s.scan.report_ms, s.retention_days),
        (14, 6 * HOUR, 30)
    );
    for bad in ["0", "-3", "two", "1.5"] {
        let err = ScanSettings::from_lookup(move |k: &str| {
            (k == "SCAN_HISTORY_DAYS").then(|| bad.to_owned())
        })
        .unwrap_err();
        assert_eq!(err.var, "SCAN_HISTORY_DAYS");
    }
}
