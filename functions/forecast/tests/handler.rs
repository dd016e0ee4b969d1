//! The handler against the sample events in `events/forecast/` on in-memory ports (each file
//! ends as `events/forecast/README.md` says), and the fan-out: a coordinator's shards together
//! forecast every meter exactly once, for many shard counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use forecast::{ForecastConfig, Forecaster, HandlerError, Response, ShardReport};
use meter_core::forecast::StoredForecast;
use meter_core::memory::{
    MemoryForecastStore, MemoryMeterRegistry, MemoryReadingStore, MemoryShardDispatcher,
};
use meter_core::ports::{ForecastStore, MeterRegistry, ReadingStore, StoreError};
use meter_core::{MeterId, MeterInfo, Timestamp};
use meterflow_tests::fixtures::{day_series, meter, QUARTER, T0};

const DAY: i64 = 86_400_000;
/// 2026-03-15T00:00:00Z, the issue time of the sample events: 14 days after the fixtures' start.
const ISSUED: i64 = T0 + 14 * DAY;
/// The handler's "now" in these tests: the sample events' issue time plus an hour.
const NOW: Timestamp = Timestamp::from_millis(ISSUED + 3_600_000);

fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/forecast")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A forecast store that also records every forecast it is given.
#[derive(Default)]
struct Recording {
    inner: MemoryForecastStore,
    puts: Mutex<Vec<(MeterId, Timestamp)>>,
}

#[async_trait]
impl ForecastStore for Recording {
    async fn put(&self, forecasts: &[StoredForecast]) -> Result<(), StoreError> {
        self.puts
            .lock()
            .unwrap()
            .extend(forecasts.iter().map(|f| (f.meter_id.clone(), f.issued_at)));
        self.inner.put(forecasts).await
    }
    async fn get(
        &self,
        meter: &MeterId,
        issued_at: Timestamp,
    ) -> Result<Option<StoredForecast>, StoreError> {
        self.inner.get(meter, issued_at).await
    }
    async fn latest(&self, meter: &MeterId) -> Result<Option<StoredForecast>, StoreError> {
        self.inner.latest(meter).await
    }
}

struct World {
    forecaster: Forecaster,
    dispatcher: Arc<MemoryShardDispatcher>,
    store: Arc<Recording>,
}

/// `meters` meters `<prefix>-NN` with `days` days of quarter-hour readings from the fixtures'
/// start.
async fn world(prefix: &str, meters: usize, days: usize) -> World {
    let registry = Arc::new(MemoryMeterRegistry::new());
    let readings = Arc::new(MemoryReadingStore::new());
    for i in 0..meters {
        let id = format!("{prefix}-{i:02}");
        registry
            .upsert(&MeterInfo::new_consumer(meter(&id), chrono_tz::Tz::UTC))
            .await
            .unwrap();
        readings
            .insert(&day_series(
                &id,
                T0 + QUARTER,
                1_000.0 + i as f64,
                days * 96,
            ))
            .await
            .unwrap();
    }
    let dispatcher = Arc::new(MemoryShardDispatcher::new());
    let store = Arc::new(Recording::default());
    World {
        forecaster: Forecaster {
            registry,
            readings,
            forecasts: store.clone(),
            dispatcher: dispatcher.clone(),
            config: ForecastConfig::default(),
        },
        dispatcher,
        store,
    }
}

async fn run(w: &World, event: &serde_json::Value) -> Result<Response, HandlerError> {
    forecast::handle(&w.forecaster, event, NOW).await
}

fn shard_report(r: Response) -> ShardReport {
    match r {
        Response::Shard(s) => s,
        other => panic!("not a shard report: {other:?}"),
    }
}

#[tokio::test]
async fn the_coordinator_event_dispatches_one_job_per_shard_at_its_issue_time() {
    let w = world("m", 3, 2).await;
    let r = run(&w, &fixture("coordinator.json")).await.unwrap();
    assert!(
        matches!(r, Response::Coordinator(ref c) if c.dispatched == 4),
        "{r:?}"
    );
    let jobs = w.dispatcher.take();
    assert_eq!(
        jobs.iter().map(|j| (j.shard, j.shards)).collect::<Vec<_>>(),
        vec![(0, 4), (1, 4), (2, 4), (3, 4)]
    );
    assert!(jobs
        .iter()
        .all(|j| j.issued_at == Timestamp::from_millis(ISSUED)));
}

#[tokio::test]
async fn the_scheduled_coordinator_event_issues_at_the_current_hour() {
    let w = world("m", 1, 2).await;
    let now = Timestamp::from_millis(ISSUED + 3_600_000 + 1_234_567);
    forecast::handle(&w.forecaster, &fixture("coordinator_scheduled.json"), now)
        .await
        .unwrap();
    let jobs = w.dispatcher.take();
    assert_eq!(jobs.len(), 100);
    assert_eq!(
        jobs[0].issued_at,
        Timestamp::from_millis(ISSUED + 3_600_000)
    );
}

#[tokio::test]
async fn a_shard_event_forecasts_its_meters_48_hours_ahead_and_a_rerun_replaces_them() {
    let w = world("m", 12, 14).await;
    let report = shard_report(run(&w, &fixture("shard.json")).await.unwrap());
    assert_eq!(report.shard, 0);
    assert!(report.meters > 0, "{report:?}");
    assert_eq!(report.forecast, report.meters, "{report:?}");
    let (id, at) = w.store.puts.lock().unwrap()[0].clone();
    assert_eq!(at, Timestamp::from_millis(ISSUED));
    let fc = w.store.get(&id, at).await.unwrap().unwrap();
    assert_eq!(fc.points.len(), 192, "48 hours of quarter hours");
    assert_eq!(fc.points[0].target, at.add_millis(QUARTER));
    assert!(fc.next_day.mwh() > 0);
    assert_eq!(fc.projected_bill, None, "no tariffs yet");
    // Re-running the shard (a redelivered message) replaces its forecasts.
    let again = shard_report(run(&w, &fixture("shard.json")).await.unwrap());
    assert_eq!(again.forecast, report.forecast);
    assert_eq!(w.store.get(&id, at).await.unwrap().unwrap(), fc);
}

#[tokio::test]
async fn an_sqs_batch_of_shard_messages_runs_each_and_reports_no_failures() {
    let w = world("m", 12, 14).await;
    let r = run(&w, &fixture("sqs_shards.json")).await.unwrap();
    assert_eq!(
        r,
        Response::Batch {
            batch_item_failures: vec![]
        }
    );
    assert!(!w.store.puts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_bad_record_in_an_sqs_batch_is_the_only_one_reported_for_retry() {
    let w = world("m", 12, 3).await;
    let r = run(&w, &fixture("sqs_bad_record.json")).await.unwrap();
    let Response::Batch {
        batch_item_failures,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(batch_item_failures.len(), 1);
    assert_eq!(
        batch_item_failures[0].item_identifier,
        "6f1b6a52-0004-4d2e-9c1a-000000000004"
    );
    let json = serde_json::to_value(Response::Batch {
        batch_item_failures,
    })
    .unwrap();
    assert_eq!(
        json["batchItemFailures"][0]["itemIdentifier"],
        "6f1b6a52-0004-4d2e-9c1a-000000000004"
    );
}

#[tokio::test]
async fn bad_events_fail_without_a_retry_and_write_nothing() {
    let w = world("m", 3, 3).await;
    for name in ["bad_shard.json", "unknown_mode.json"] {
        let err = run(&w, &fixture(name)).await.unwrap_err();
        assert!(matches!(err, HandlerError::BadEvent(_)), "{name}: {err}");
        assert!(!err.is_retryable());
    }
    for bad in [
        serde_json::json!({"mode":"coordinator","shards":0}),
        serde_json::json!({"mode":"coordinator","shards":4,"issued_at":"yesterday"}),
        serde_json::json!({"mode":"shard","shard":0,"shards":4,"issued_at":"2099-01-01T00:00:00Z"}),
        serde_json::json!({"mode":"shard","shard":0,"shards":4,"extra":true}),
        serde_json::json!([1, 2, 3]),
    ] {
        assert!(
            matches!(run(&w, &bad).await, Err(HandlerError::BadEvent(_))),
            "{bad}"
        );
    }
    assert!(w.store.puts.lock().unwrap().is_empty());
    assert!(w.dispatcher.take().is_empty());
}

#[tokio::test]
async fn the_shards_of_a_run_forecast_every_meter_exactly_once_for_any_shard_count() {
    let w = world("fan", 40, 14).await;
    for shards in [1u32, 2, 3, 5, 7, 16, 39, 40, 41, 64, 100] {
        w.store.puts.lock().unwrap().clear();
        let coordinator = serde_json::json!({
            "mode": "coordinator", "shards": shards, "issued_at": ISSUED
        });
        run(&w, &coordinator).await.unwrap();
        let jobs = w.dispatcher.take();
        assert_eq!(jobs.len(), shards as usize);
        let mut meters = 0;
        for job in jobs {
            let event: serde_json::Value = serde_json::from_str(&job.to_event_json()).unwrap();
            meters += shard_report(run(&w, &event).await.unwrap()).meters;
        }
        assert_eq!(meters, 40, "{shards} shards");
        let mut written: Vec<String> = w
            .store
            .puts
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| m.to_string())
            .collect();
        written.sort();
        let expected: Vec<String> = (0..40).map(|i| format!("fan-{i:02}")).collect();
        assert_eq!(written, expected, "{shards} shards: each meter once");
    }
}
