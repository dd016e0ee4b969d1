//! Lambda retries after partial failures: an invocation that dies at any write, followed by a
//! retry of the same messages, must end in exactly the state of one clean invocation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use meter_core::aggregate::{Aggregate, Period};
use meter_core::memory::{memory_ports, MemoryPendingAggregates};
use meter_core::ports::{
    AggregateStore, EventStore, InsertOutcome, PendingAggregates, QuarantineStore, ReadingStore,
    StoreError,
};
use meter_core::telemetry::{MessageContext, QuarantineEntry};
use meter_core::{
    Inbound, IngestConfig, Ingestor, MeterEvent, MeterId, Ports, Reading, RegistryMode, Timestamp,
};
use meterflow_tests::fixtures::{batch_payload, day_series, meter, payload, topic, T0};

/// Counts write calls across all wrapped stores and fails the one numbered `fail_at`.
struct Crash {
    calls: AtomicUsize,
    fail_at: usize,
}

impl Crash {
    /// Whether this write call is the one that dies.
    fn hit(&self) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at
    }
}

fn died() -> StoreError {
    StoreError::Unavailable("simulated crash".into())
}

struct Readings(Arc<dyn ReadingStore>, Arc<Crash>);
struct Aggs(Arc<dyn AggregateStore>, Arc<Crash>);
struct Events(Arc<dyn EventStore>, Arc<Crash>);
struct Quarantine(Arc<dyn QuarantineStore>, Arc<Crash>);

#[async_trait]
impl ReadingStore for Readings {
    async fn insert(&self, readings: &[Reading]) -> Result<Vec<InsertOutcome>, StoreError> {
        if self.1.hit() {
            // Die half-way through the batch: the first half is stored, the rest is not.
            self.0.insert(&readings[..readings.len() / 2]).await?;
            return Err(died());
        }
        self.0.insert(readings).await
    }
    async fn range(
        &self,
        m: &MeterId,
        a: Timestamp,
        b: Timestamp,
    ) -> Result<Vec<Reading>, StoreError> {
        self.0.range(m, a, b).await
    }
    async fn before(&self, m: &MeterId, t: Timestamp) -> Result<Option<Reading>, StoreError> {
        self.0.before(m, t).await
    }
    async fn after(&self, m: &MeterId, t: Timestamp) -> Result<Option<Reading>, StoreError> {
        self.0.after(m, t).await
    }
}

#[async_trait]
impl AggregateStore for Aggs {
    async fn next_version(&self, m: &MeterId) -> Result<u64, StoreError> {
        self.0.next_version(m).await
    }
    async fn put(&self, aggregates: &[Aggregate]) -> Result<(), StoreError> {
        if self.1.hit() {
            self.0.put(&aggregates[..aggregates.len() / 2]).await?;
            return Err(died());
        }
        self.0.put(aggregates).await
    }
    async fn range(&self, m: &MeterId, a: Period, b: Period) -> Result<Vec<Aggregate>, StoreError> {
        self.0.range(m, a, b).await
    }
}

#[async_trait]
impl EventStore for Events {
    async fn publish(&self, events: &[MeterEvent]) -> Result<(), StoreError> {
        if self.1.hit() {
            return Err(died());
        }
        self.0.publish(events).await
    }
    async fn for_meter(
        &self,
        m: &MeterId,
        a: Timestamp,
        b: Timestamp,
    ) -> Result<Vec<MeterEvent>, StoreError> {
        self.0.for_meter(m, a, b).await
    }
}

#[async_trait]
impl QuarantineStore for Quarantine {
    async fn put(&self, entries: &[QuarantineEntry]) -> Result<(), StoreError> {
        if self.1.hit() {
            return Err(died());
        }
        self.0.put(entries).await
    }
    async fn for_meter(&self, k: &str, limit: usize) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.0.for_meter(k, limit).await
    }
}

fn crashing(inner: &Ports, crash: Arc<Crash>) -> Ports {
    Ports {
        readings: Arc::new(Readings(inner.readings.clone(), crash.clone())),
        registry: inner.registry.clone(),
        quarantine: Arc::new(Quarantine(inner.quarantine.clone(), crash.clone())),
        aggregates: Arc::new(Aggs(inner.aggregates.clone(), crash.clone())),
        events: Arc::new(Events(inner.events.clone(), crash)),
    }
}

fn config() -> IngestConfig {
    IngestConfig {
        registry_mode: RegistryMode::AutoRegister,
        default_timezone: "Europe/Berlin".parse().unwrap(),
        ..IngestConfig::default()
    }
}

/// The messages of one invocation: two meters, a batch and singles, a tamper flag, a bad one.
fn messages() -> Vec<(String, Vec<u8>)> {
    let mut a = day_series("m-a", T0, 50.0, 40);
    a[20].status = meter_core::MeterStatus::Tamper;
    let b = day_series("m-b", T0 + 7 * 60_000, 900.0, 40);
    let mut out: Vec<(String, Vec<u8>)> = a
        .chunks(8)
        .map(|c| (topic("m-a"), batch_payload(c)))
        .collect();
    out.extend(b.iter().map(|r| (topic("m-b"), payload(r))));
    out.push((topic("m-b"), br#"{"v":1,"ts":"#.to_vec()));
    out
}

async fn run(
    ing: &Ingestor,
    msgs: &[(String, Vec<u8>)],
) -> Result<meter_core::IngestReport, meter_core::ingest::IngestError> {
    let inbound: Vec<Inbound<'_>> = msgs
        .iter()
        .map(|(t, p)| Inbound {
            payload: p,
            ctx: MessageContext {
                topic: Some(t),
                received: Timestamp::from_millis(T0 + 86_400_000),
            },
        })
        .collect();
    ing.ingest(&inbound).await
}

/// Everything observable: readings, aggregates (without versions), events, quarantine.
async fn state(p: &Ports) -> String {
    let mut out = String::new();
    let (from, to) = (
        Timestamp::from_millis(T0 - 86_400_000),
        Timestamp::from_millis(T0 + 2 * 86_400_000),
    );
    for id in ["m-a", "m-b"] {
        let m = meter(id);
        out += &format!("{:?}\n", p.readings.range(&m, from, to).await.unwrap());
        for (a, b) in [
            (Period::Hour(from), Period::Hour(to)),
            (
                Period::Day(from.to_datetime().date_naive()),
                Period::Day(to.to_datetime().date_naive()),
            ),
            (
                Period::month_of(from.to_datetime().date_naive()),
                Period::month_of(to.to_datetime().date_naive()),
            ),
        ] {
            for agg in p.aggregates.range(&m, a, b).await.unwrap() {
                out += &format!("{:?}\n", Aggregate { version: 0, ..agg });
            }
        }
        out += &format!("{:?}\n", p.events.for_meter(&m, from, to).await.unwrap());
        out += &format!("{:?}\n", p.quarantine.for_meter(id, 100).await.unwrap());
    }
    out
}

/// The state one clean invocation with `msgs` leaves, aggregates written by the call itself.
async fn clean_state(msgs: &[(String, Vec<u8>)]) -> String {
    let clean = memory_ports();
    run(&Ingestor::new(clean.clone(), config()), msgs)
        .await
        .unwrap();
    state(&clean).await
}

#[tokio::test]
async fn a_crash_at_any_write_followed_by_a_retry_ends_as_one_clean_run() {
    let msgs = messages();
    let expected = clean_state(&msgs).await;
    assert!(expected.contains("Tamper"), "the scenario raises an event");

    let mut crashed_somewhere = 0;
    for fail_at in 1.. {
        let inner = memory_ports();
        let crash = Arc::new(Crash {
            calls: AtomicUsize::new(0),
            fail_at,
        });
        let first = run(&Ingestor::new(crashing(&inner, crash), config()), &msgs).await;
        if first.is_ok() {
            break; // fail_at is past the last write: every write position has been tried
        }
        crashed_somewhere += 1;
        let retry = run(&Ingestor::new(inner.clone(), config()), &msgs)
            .await
            .unwrap();
        assert_eq!(
            retry.stored + retry.duplicates + retry.quarantined,
            81,
            "every reading counted once"
        );
        assert_eq!(state(&inner).await, expected, "crash at write {fail_at}");
    }
    assert!(
        crashed_somewhere >= 5,
        "only {crashed_somewhere} crash points exercised"
    );
}

/// The hour rows of meter `id` around the test messages.
async fn hours_of(p: &Ports, id: &str) -> Vec<Aggregate> {
    p.aggregates
        .range(
            &meter(id),
            Period::Hour(Timestamp::from_millis(T0 - 86_400_000)),
            Period::Hour(Timestamp::from_millis(T0 + 2 * 86_400_000)),
        )
        .await
        .unwrap()
}

/// Recomputes every pending mark, `per_call` meters at a time, as the local rule bridge does.
async fn pass_over_every_mark(ing: &Ingestor, per_call: usize) {
    let mut after: Option<MeterId> = None;
    loop {
        let pass = ing.refresh_pending(after.as_ref(), per_call).await.unwrap();
        if pass.meters == 0 {
            break;
        }
        after = pass.last;
    }
}

#[tokio::test]
async fn aggregates_marked_pending_and_recomputed_in_a_later_pass_match_those_written_at_once() {
    let msgs = messages();
    let expected = clean_state(&msgs).await;

    let ports = memory_ports();
    let pending = Arc::new(MemoryPendingAggregates::new());
    let ing = Ingestor::new(ports.clone(), config()).with_pending_aggregates(pending.clone());
    run(&ing, &msgs).await.unwrap();
    let hours = hours_of(&ports, "m-a").await;
    assert!(hours.is_empty(), "nothing is aggregated before the pass");
    assert_eq!(
        pending.next(None, 10).await.unwrap().len(),
        2,
        "both meters are marked"
    );

    pass_over_every_mark(&ing, 1).await;
    assert_eq!(state(&ports).await, expected);
    assert!(
        pending.next(None, 10).await.unwrap().is_empty(),
        "every mark is cleared"
    );
}

#[tokio::test]
async fn with_pending_aggregates_a_crash_at_any_write_then_a_retry_and_a_pass_ends_as_one_clean_run(
) {
    let msgs = messages();
    let expected = clean_state(&msgs).await;

    let mut crashed_somewhere = 0;
    for fail_at in 1.. {
        let inner = memory_ports();
        let pending = Arc::new(MemoryPendingAggregates::new());
        let crash = Arc::new(Crash {
            calls: AtomicUsize::new(0),
            fail_at,
        });
        let first = run(
            &Ingestor::new(crashing(&inner, crash), config())
                .with_pending_aggregates(pending.clone()),
            &msgs,
        )
        .await;
        if first.is_ok() {
            break;
        }
        crashed_somewhere += 1;
        let ing = Ingestor::new(inner.clone(), config()).with_pending_aggregates(pending);
        run(&ing, &msgs).await.unwrap();
        pass_over_every_mark(&ing, 1).await;
        assert_eq!(state(&inner).await, expected, "crash at write {fail_at}");
    }
    assert!(
        crashed_somewhere >= 3,
        "only {crashed_somewhere} crash points exercised"
    );
}

/// Aggregates that refuse every write of one meter, as a corrupt row would.
struct RefusesMeter(Arc<dyn AggregateStore>, MeterId);

#[async_trait]
impl AggregateStore for RefusesMeter {
    async fn next_version(&self, m: &MeterId) -> Result<u64, StoreError> {
        self.0.next_version(m).await
    }
    async fn put(&self, aggregates: &[Aggregate]) -> Result<(), StoreError> {
        if aggregates.iter().any(|a| a.meter_id == self.1) {
            return Err(StoreError::Corrupt("an unreadable row".into()));
        }
        self.0.put(aggregates).await
    }
    async fn range(&self, m: &MeterId, a: Period, b: Period) -> Result<Vec<Aggregate>, StoreError> {
        self.0.range(m, a, b).await
    }
}

#[tokio::test]
async fn a_meter_whose_aggregates_cannot_be_written_keeps_its_mark_and_holds_up_no_other() {
    let msgs = messages();
    let inner = memory_ports();
    let ports = Ports {
        aggregates: Arc::new(RefusesMeter(inner.aggregates.clone(), meter("m-a"))),
        ..inner.clone()
    };
    let pending = Arc::new(MemoryPendingAggregates::new());
    let ing = Ingestor::new(ports, config()).with_pending_aggregates(pending.clone());
    run(&ing, &msgs).await.unwrap();
    let pass = ing.refresh_pending(None, 10).await.unwrap();
    assert_eq!((pass.meters, pass.kept), (2, 1));
    assert_eq!(pass.last, Some(meter("m-b")));
    let left = pending.next(None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, meter("m-a"));
    let b_hours = hours_of(&inner, "m-b").await;
    assert!(
        !b_hours.is_empty(),
        "the other meter's aggregates are written"
    );
}
