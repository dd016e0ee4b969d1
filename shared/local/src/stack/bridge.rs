//! The local rule bridge: what the AWS IoT topic rule is in the cloud.
//!
//! It subscribes to `meters/+/telemetry` on the embedded broker and hands each message to the
//! `ingest` function's handler in exactly the shape the AWS rule
//! `SELECT *, topic(2) AS topic_meter_id, timestamp() AS received_ms FROM 'meters/+/telemetry'`
//! produces, so the same handler code runs in both places. Messages that arrive together are
//! handed over as one JSON array of rule outputs (the handler's batch form) so SQLite commits
//! once per batch, not once per reading.
//!
//! A batch whose ingest fails is retried with backoff; if the store keeps failing, the batch is
//! written to `dead-letter.jsonl` in the data directory (the local stand-in for the rule's
//! error action and the Lambda's on-failure destination) so nothing is dropped silently.
//!
//! The handler runs in its two halves on two threads: `rule-receive` builds each batch's event
//! and parses it ([`ingest::parse`]), and the bridge's own thread stores the parsed batches
//! ([`ingest::handle_parsed`]), so parsing the next batch overlaps storing this one.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use meter_core::telemetry::{meter_id_from_topic, ParsedItem};
use meter_core::{IngestReport, Ingestor};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;
use serde_json::value::RawValue;

use super::clock::SimClock;
use super::metrics::StackMetrics;

/// The topic filter the AWS rule selects from.
pub const TELEMETRY_FILTER: &str = "meters/+/telemetry";

/// Most messages handed to one handler call. Batches only get this large when a backlog has
/// built up; then a larger batch holds several readings of the same meters, whose aggregates
/// are refreshed once per batch.
pub const MAX_BATCH: usize = 20_000;

/// Ingest attempts per batch before it goes to the dead-letter file.
const ATTEMPTS: u32 = 5;

/// Appends the AWS rule's output for one MQTT message to `out`.
///
/// A JSON object payload gets `topic_meter_id` and `received_ms` added after its own fields,
/// so that (as with the rule's `SELECT *, topic(2) AS ...`) the broker's values win over any a
/// device put in its payload. Anything that is not a well-formed JSON object is wrapped in the
/// base64 envelope the handler understands (`payload_b64`, `topic`, `received_ms`), so a broken
/// message is quarantined as what it is without breaking the batch around it.
pub fn append_rule_output(out: &mut String, topic: &str, payload: &[u8], received_ms: i64) {
    let object = std::str::from_utf8(payload)
        .ok()
        .filter(|text| text.trim_start().starts_with('{'))
        .filter(|text| serde_json::from_str::<&RawValue>(text).is_ok());
    match (object, meter_id_from_topic(topic)) {
        (Some(text), Some(id)) if !needs_escaping(id) => {
            let body = text.trim_end();
            // The object is well-formed, so it ends with '}'.
            let inner = &body[..body.len() - 1];
            out.push_str(inner);
            if !inner.trim_end().ends_with('{') {
                out.push(',');
            }
            let _ = write!(
                out,
                r#""topic_meter_id":"{id}","received_ms":{received_ms}}}"#
            );
        }
        _ => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
            let topic_json = serde_json::Value::String(topic.to_string()).to_string();
            let _ = write!(
                out,
                r#"{{"payload_b64":"{b64}","topic":{topic_json},"received_ms":{received_ms}}}"#
            );
        }
    }
}

fn needs_escaping(s: &str) -> bool {
    s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Why one handler call failed (the batch is retried).
#[derive(Debug, thiserror::Error)]
enum BridgeError {
    #[error(transparent)]
    Handler(#[from] ingest::HandlerError),
    #[error("SQLite transaction")]
    Transaction(#[from] meter_core::ports::StoreError),
    #[error("recomputing pending aggregates")]
    Aggregates(#[from] meter_core::ingest::IngestError),
}

/// One message taken off the broker.
struct Pending {
    topic: String,
    payload: bytes::Bytes,
    arrived: Instant,
}

/// Everything the bridge needs.
pub struct Bridge {
    /// The ingest use case (SQLite ports).
    pub ingestor: Arc<Ingestor>,
    /// Simulated time, for `received_ms`.
    pub clock: SimClock,
    /// Counters.
    pub metrics: Arc<StackMetrics>,
    /// Where batches that could not be stored go.
    pub dead_letter: PathBuf,
    /// Set when the stack shuts down: the bridge drains what the broker holds, then stops.
    pub stopping: Arc<AtomicBool>,
    /// When set, each handler call runs as one SQLite transaction (one commit per batch).
    pub db: Option<Arc<crate::SqliteDb>>,
    /// Called after each stored batch with the payloads and the time they were stored (the
    /// pipeline benchmark measures publish-to-stored latency with it).
    pub observer: Option<super::BatchObserver>,
    /// How often a pass recomputes the aggregates the batches left pending, when the ingestor
    /// marks them instead of writing them ([`Ingestor::with_pending_aggregates`]).
    pub aggregate_every: Duration,
}

/// Meters whose aggregates one transaction of a pass recomputes. A pass runs a chunk after each
/// stored batch (or back to back when no batch waits), so it never holds the store for long:
/// measured at 20,000 readings/s, about 25 µs per meter, so a chunk is some 6 ms.
pub const AGGREGATE_CHUNK: usize = 256;

/// Where the current aggregate pass is.
struct AggregatePass {
    every: Duration,
    /// When the last pass started.
    started: Instant,
    /// `Some(after)` while a pass runs: the last meter done (`None`: from the first).
    cursor: Option<Option<meter_core::MeterId>>,
}

impl AggregatePass {
    fn new(every: Duration) -> Self {
        Self {
            every,
            started: Instant::now(),
            cursor: None,
        }
    }

    /// Starts a pass if one is due; whether one runs.
    fn due(&mut self) -> bool {
        if self.cursor.is_none() && self.started.elapsed() >= self.every {
            self.started = Instant::now();
            self.cursor = Some(None);
        }
        self.cursor.is_some()
    }

    /// How long the queue may be waited on before the next pass is due.
    fn wait(&self) -> Duration {
        if self.cursor.is_some() {
            Duration::ZERO
        } else {
            self.every.saturating_sub(self.started.elapsed())
        }
    }
}

/// How long the bridge waits for more messages once it has been asked to stop.
const DRAIN_IDLE: Duration = Duration::from_millis(300);

/// Parsed batches the receiving thread may queue ahead of the storing one. The storing thread
/// takes everything queued as one transaction, so a few are enough to keep it busy; the bound
/// stops a stalled store from growing the process, leaving the backlog with the broker (which
/// pauses the link) as before.
const PARSED_AHEAD: usize = 16;

/// Messages taken off the broker together, with what the handler's first half made of them.
struct Parsed {
    batch: Vec<Pending>,
    items: Vec<ParsedItem>,
}

/// The half of the bridge that receives and parses: it owns the broker link.
struct Receiving {
    ingestor: Arc<Ingestor>,
    clock: SimClock,
    stopping: Arc<AtomicBool>,
    dead_letter: PathBuf,
}

impl Bridge {
    /// Subscribes and runs until [`Bridge::stopping`] is set and the broker has been quiet for
    /// a moment. Returns what it ingested.
    ///
    /// Two threads share the work: `rule-receive` takes messages off the broker, builds the
    /// rule's event and runs the handler's first half ([`ingest::parse`]); the calling thread
    /// stores each parsed batch ([`ingest::handle_parsed`], one transaction) while the next is
    /// being parsed. Measured in `bench pipeline`, parsing was 6% of the storing thread's time,
    /// and that thread is the pipeline's limit.
    pub async fn run(self, link: (LinkTx, LinkRx)) -> IngestReport {
        let (tx, rx) = tokio::sync::mpsc::channel(PARSED_AHEAD);
        let receiving = Receiving {
            ingestor: self.ingestor.clone(),
            clock: self.clock,
            stopping: self.stopping.clone(),
            dead_letter: self.dead_letter.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("rule-receive".into())
            .spawn(move || {
                super::block_on_own_runtime("rule bridge receiving", (), receiving.run(link, tx))
            });
        match spawned {
            Ok(thread) => {
                let total = self.store_all(rx).await;
                if thread.join().is_err() {
                    tracing::error!("rule bridge receiving thread panicked");
                }
                total
            }
            Err(e) => {
                tracing::error!(error = %e, "rule bridge could not start its receiving thread");
                IngestReport::default()
            }
        }
    }

    /// Stores parsed batches until the receiving side closes the queue, taking everything queued
    /// at once (up to [`MAX_BATCH`] messages) so batches grow with a backlog.
    ///
    /// Between batches it runs the aggregate passes (see [`Bridge::aggregate_every`]), a chunk of
    /// [`AGGREGATE_CHUNK`] meters at a time; once the queue is closed it finishes every pending
    /// mark, so a clean stop leaves all aggregates written. Marks left by a crash are picked up
    /// by the first pass after the next start.
    async fn store_all(&self, mut rx: tokio::sync::mpsc::Receiver<Parsed>) -> IngestReport {
        let mut total = IngestReport::default();
        let mut pass = AggregatePass::new(self.aggregate_every);
        loop {
            let wait = pass.wait();
            let first = if wait.is_zero() {
                match rx.try_recv() {
                    Ok(group) => Some(group),
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => None,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(group)) => Some(group),
                    Ok(None) => break,
                    Err(_) => None,
                }
            };
            if let Some(mut group) = first {
                while group.batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(more) => {
                            group.batch.extend(more.batch);
                            group.items.extend(more.items);
                        }
                        Err(_) => break,
                    }
                }
                total.merge(&self.store(&group).await);
            }
            if pass.due() {
                let after = pass.cursor.clone().flatten();
                pass.cursor = match self.aggregate_chunk(after.as_ref()).await {
                    Ok(done) if done.meters == AGGREGATE_CHUNK => Some(done.last),
                    Ok(_) => None,
                    Err(e) => {
                        // The marks stay; the next pass tries again.
                        tracing::warn!(error = %e, "aggregate pass failed; retrying in the next one");
                        None
                    }
                };
            }
        }
        self.finish_pending().await;
        total
    }

    /// Recomputes every pending mark, chunk by chunk: the end of a clean stop.
    async fn finish_pending(&self) {
        let mut after = None;
        loop {
            match self.aggregate_chunk(after.as_ref()).await {
                Ok(done) if done.meters == AGGREGATE_CHUNK => after = done.last,
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(error = %e, "pending aggregates left for the next start");
                    return;
                }
            }
        }
    }

    /// One chunk of an aggregate pass, as one transaction when a database is set.
    async fn aggregate_chunk(
        &self,
        after: Option<&meter_core::MeterId>,
    ) -> Result<meter_core::PendingPass, BridgeError> {
        let started = Instant::now();
        let done = self
            .in_transaction(self.ingestor.refresh_pending(after, AGGREGATE_CHUNK))
            .await?;
        if done.meters > 0 {
            tracing::debug!(
                meters = done.meters,
                kept = done.kept,
                ms = started.elapsed().as_secs_f64() * 1e3,
                "aggregates recomputed"
            );
        }
        Ok(done)
    }

    async fn store(&self, group: &Parsed) -> IngestReport {
        let batch = &group.batch;
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=ATTEMPTS {
            let started = Instant::now();
            match self.handle_once(&group.items).await {
                Ok(report) => {
                    let stored_at = Instant::now();
                    tracing::debug!(
                        messages = batch.len(),
                        ingest_ms = stored_at.duration_since(started).as_secs_f64() * 1e3,
                        wait_ms = started.duration_since(batch[0].arrived).as_secs_f64() * 1e3,
                        "batch stored"
                    );
                    let latencies: Vec<Duration> = batch
                        .iter()
                        .map(|m| stored_at.duration_since(m.arrived))
                        .collect();
                    self.metrics
                        .record_batch(batch.len() as u64, &report, &latencies);
                    if let Some(observer) = &self.observer {
                        let parts: Vec<(&str, &[u8])> = batch
                            .iter()
                            .map(|m| (m.topic.as_str(), m.payload.as_ref()))
                            .collect();
                        observer(&parts, stored_at);
                    }
                    return report;
                }
                Err(e) => {
                    self.metrics.record_failure();
                    tracing::warn!(attempt, error = %e, messages = batch.len(), "ingest failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        dead_letter(&self.dead_letter, batch);
        IngestReport::default()
    }

    /// One handler call, inside one transaction when a database is set: all of it is stored,
    /// or (rolled back) none of it, so the retry starts clean.
    async fn handle_once(&self, items: &[ParsedItem]) -> Result<IngestReport, BridgeError> {
        self.in_transaction(ingest::handle_parsed(&self.ingestor, items))
            .await
    }

    /// Runs `work` as one transaction when a database is set: committed if it succeeds, rolled
    /// back if it or the commit fails.
    async fn in_transaction<T, E>(
        &self,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, BridgeError>
    where
        BridgeError: From<E>,
    {
        let Some(db) = &self.db else {
            return Ok(work.await?);
        };
        db.begin()?;
        let outcome = match work.await {
            Ok(value) => db
                .commit()
                .map(|()| value)
                .map_err(BridgeError::Transaction),
            Err(e) => Err(e.into()),
        };
        if outcome.is_err() {
            let _ = db.rollback();
        }
        outcome
    }
}

impl Receiving {
    /// Takes messages off the broker and queues them parsed, until the bridge is stopping and
    /// the broker has been quiet for a moment. Dropping `tx` at the end tells the storing side
    /// to finish.
    async fn run(self, link: (LinkTx, LinkRx), tx: tokio::sync::mpsc::Sender<Parsed>) {
        let (mut link_tx, mut rx) = link;
        if let Err(e) = link_tx.subscribe(TELEMETRY_FILTER) {
            tracing::error!(error = %e, "rule bridge could not subscribe");
            return;
        }
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = if self.stopping.load(Ordering::Relaxed) {
                match tokio::time::timeout(DRAIN_IDLE, rx.next()).await {
                    Ok(n) => n,
                    Err(_) => break,
                }
            } else {
                // Wake up now and then to notice a shutdown request.
                match tokio::time::timeout(Duration::from_millis(200), rx.next()).await {
                    Ok(n) => n,
                    Err(_) => continue,
                }
            };
            let mut unscheduled = false;
            match first {
                Ok(Some(n)) => take(n, &mut batch, &mut unscheduled),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "rule bridge lost its broker link");
                    break;
                }
            }
            // Whatever else is already waiting joins this batch. Under a backlog the router
            // hands over a chunk at a time and pauses the link (`Unschedule`); asking for the
            // next chunk right away lets batches grow with the backlog, so a meter with several
            // queued readings has its aggregates refreshed once, not once per reading, while a
            // quiet stream still goes through in small, prompt batches.
            loop {
                while batch.len() < MAX_BATCH {
                    match rx.next().now_or_never() {
                        Some(Ok(Some(n))) => take(n, &mut batch, &mut unscheduled),
                        _ => break,
                    }
                }
                if !unscheduled || batch.len() >= MAX_BATCH {
                    break;
                }
                unscheduled = false;
                if let Err(e) = rx.wake().await {
                    tracing::error!(error = %e, "rule bridge could not resume its link");
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(2), rx.next()).await {
                    Ok(Ok(Some(n))) => take(n, &mut batch, &mut unscheduled),
                    _ => break,
                }
            }
            if !batch.is_empty() {
                let taken = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
                if let Some(parsed) = self.parse(taken) {
                    if let Err(unsent) = tx.send(parsed).await {
                        // Only if the storing side has died: keep the messages.
                        tracing::error!("rule bridge's storing side is gone");
                        dead_letter(&self.dead_letter, &unsent.0.batch);
                        break;
                    }
                }
            }
            if unscheduled {
                // The router paused us because our buffer filled: ask for more.
                if let Err(e) = rx.wake().await {
                    tracing::error!(error = %e, "rule bridge could not resume its link");
                    break;
                }
            }
        }
    }

    /// The rule's event for `batch`, through the handler's first half.
    fn parse(&self, batch: Vec<Pending>) -> Option<Parsed> {
        let received_ms = self.clock.now().millis();
        let mut event = String::with_capacity(batch.len() * 400 + 2);
        event.push('[');
        for (i, m) in batch.iter().enumerate() {
            if i > 0 {
                event.push(',');
            }
            append_rule_output(&mut event, &m.topic, &m.payload, received_ms);
        }
        event.push(']');
        match serde_json::from_str::<&RawValue>(&event) {
            Ok(raw) => {
                let items = ingest::parse(&self.ingestor, raw, self.clock.now());
                Some(Parsed { batch, items })
            }
            Err(e) => {
                // Cannot happen: every part is a checked object or our own envelope.
                tracing::error!(error = %e, "rule bridge built an invalid event");
                dead_letter(&self.dead_letter, &batch);
                None
            }
        }
    }
}

/// Appends `batch` to the dead-letter file at `path`.
fn dead_letter(path: &std::path::Path, batch: &[Pending]) {
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for m in batch {
            let line = serde_json::json!({
                "topic": m.topic,
                "payload": String::from_utf8_lossy(&m.payload),
            });
            writeln!(f, "{line}")?;
        }
        f.sync_all()
    };
    match write() {
        Ok(()) => tracing::error!(
            messages = batch.len(),
            file = %path.display(),
            "batch could not be stored; written to the dead-letter file"
        ),
        Err(e) => tracing::error!(
            messages = batch.len(),
            error = %e,
            "batch could not be stored nor written to the dead-letter file"
        ),
    }
}

fn take(n: Notification, batch: &mut Vec<Pending>, unscheduled: &mut bool) {
    match n {
        Notification::Forward(f) => batch.push(Pending {
            topic: String::from_utf8_lossy(&f.publish.topic).into_owned(),
            payload: f.publish.payload,
            arrived: Instant::now(),
        }),
        Notification::Unschedule => *unscheduled = true,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(topic: &str, payload: &[u8]) -> serde_json::Value {
        let mut s = String::new();
        append_rule_output(&mut s, topic, payload, 42);
        serde_json::from_str(&s).unwrap()
    }

    #[test]
    fn an_object_payload_gets_the_rule_fields_appended() {
        let v = output("meters/m-1/telemetry", br#"{"v":1,"ts":5} "#);
        assert_eq!(v["v"], 1);
        assert_eq!(v["topic_meter_id"], "m-1");
        assert_eq!(v["received_ms"], 42);
    }

    #[test]
    fn an_empty_object_still_makes_valid_json() {
        let v = output("meters/m-1/telemetry", b"{ }");
        assert_eq!(v["topic_meter_id"], "m-1");
    }

    #[test]
    fn malformed_or_non_object_payloads_are_wrapped_in_the_base64_envelope() {
        for payload in [&b"{\"v\":1,}"[..], b"[1,2]", b"not json", b"\xff\xfe"] {
            let v = output("meters/m-1/telemetry", payload);
            assert_eq!(v["topic"], "meters/m-1/telemetry");
            assert!(v["payload_b64"].is_string(), "{payload:?}");
        }
    }

    fn parsed(receiving: &Receiving, meter: &str, seqs: std::ops::Range<i64>) -> Parsed {
        let t0 = 1_763_790_000_000_i64;
        let batch = seqs
            .map(|i| Pending {
                topic: format!("meters/{meter}/telemetry"),
                payload: bytes::Bytes::from(format!(
                    r#"{{"v":1,"seq":{i},"ts":{},"energy_import_kwh":{}}}"#,
                    t0 + i * 900_000,
                    10.0 + i as f64
                )),
                arrived: Instant::now(),
            })
            .collect();
        receiving
            .parse(batch)
            .expect("the bridge's own event is well-formed")
    }

    /// A bridge over `db` whose ingestor marks aggregates pending, with its receiving half (to
    /// parse test batches) and the batch sizes its observer saw.
    fn bridge_over(
        db: Arc<crate::SqliteDb>,
        aggregate_every: Duration,
    ) -> (Bridge, Receiving, Arc<std::sync::Mutex<Vec<usize>>>) {
        use meter_core::{IngestConfig, RegistryMode};
        let dir = std::env::temp_dir().join(format!("meterflow-bridge-{}", std::process::id()));
        let ingestor = Arc::new(
            Ingestor::new(
                crate::sqlite_ports(db.clone()),
                IngestConfig {
                    registry_mode: RegistryMode::AutoRegister,
                    ..IngestConfig::default()
                },
            )
            .with_pending_aggregates(Arc::new(crate::SqlitePendingAggregates::new(db.clone()))),
        );
        // A day after the readings, so none of them is from the future.
        let clock = SimClock::new(meter_core::Timestamp::from_millis(1_763_876_400_000), 1.0);
        let receiving = Receiving {
            ingestor: ingestor.clone(),
            clock,
            stopping: Arc::new(AtomicBool::new(false)),
            dead_letter: dir.join("dead-letter.jsonl"),
        };
        let stored_batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = stored_batches.clone();
        let bridge = Bridge {
            ingestor,
            clock,
            metrics: Arc::new(StackMetrics::new()),
            dead_letter: dir.join("dead-letter.jsonl"),
            stopping: Arc::new(AtomicBool::new(false)),
            db: Some(db),
            observer: Some(Arc::new(move |parts: &[(&str, &[u8])], _| {
                seen.lock().unwrap().push(parts.len());
            })),
            aggregate_every,
        };
        (bridge, receiving, stored_batches)
    }

    /// Every hour, day and month row of `meter` around the test readings.
    async fn aggregates_of(
        db: &Arc<crate::SqliteDb>,
        meter: &str,
    ) -> Vec<meter_core::aggregate::Aggregate> {
        use meter_core::aggregate::Period;
        let ports = crate::sqlite_ports(db.clone());
        let m = meter_core::MeterId::parse(meter).unwrap();
        let (a, b) = (
            meter_core::Timestamp::from_millis(1_763_700_000_000),
            meter_core::Timestamp::from_millis(1_763_900_000_000),
        );
        let mut out = Vec::new();
        for (from, to) in [
            (Period::Hour(a), Period::Hour(b)),
            (
                Period::Day(a.to_datetime().date_naive()),
                Period::Day(b.to_datetime().date_naive()),
            ),
            (
                Period::month_of(a.to_datetime().date_naive()),
                Period::month_of(b.to_datetime().date_naive()),
            ),
        ] {
            out.extend(ports.aggregates.range(&m, from, to).await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn batches_parsed_while_the_store_was_busy_are_stored_together_in_one_transaction() {
        let db = Arc::new(crate::SqliteDb::in_memory().unwrap());
        let (bridge, receiving, stored_batches) = bridge_over(db, Duration::from_secs(2));
        let (tx, rx) = tokio::sync::mpsc::channel(PARSED_AHEAD);
        // Three parsed batches wait in the queue, the last re-delivering two of the first's.
        tx.send(parsed(&receiving, "m-1", 0..3)).await.unwrap();
        tx.send(parsed(&receiving, "m-2", 0..2)).await.unwrap();
        tx.send(parsed(&receiving, "m-1", 1..5)).await.unwrap();
        drop(tx);
        let report = bridge.store_all(rx).await;
        assert_eq!(
            (report.stored, report.duplicates, report.quarantined),
            (7, 2, 0)
        );
        assert_eq!(*stored_batches.lock().unwrap(), vec![9]);
    }

    #[tokio::test]
    async fn a_pass_writes_the_aggregates_of_stored_batches_while_the_bridge_keeps_running() {
        let db = Arc::new(crate::SqliteDb::in_memory().unwrap());
        let (bridge, receiving, _) = bridge_over(db.clone(), Duration::from_millis(20));
        let (tx, rx) = tokio::sync::mpsc::channel(PARSED_AHEAD);
        tx.send(parsed(&receiving, "m-1", 0..6)).await.unwrap();
        // The bridge runs while the test watches the store from the same task.
        let watch = async {
            let mut waited = 0;
            while aggregates_of(&db, "m-1").await.is_empty() {
                assert!(waited < 200, "no pass within 2 s of the batch");
                tokio::time::sleep(Duration::from_millis(10)).await;
                waited += 1;
            }
            let aggs = aggregates_of(&db, "m-1").await;
            drop(tx);
            aggs
        };
        let (report, aggs) = tokio::join!(bridge.store_all(rx), watch);
        let hours = aggs
            .iter()
            .filter(|a| matches!(a.period, meter_core::aggregate::Period::Hour(_)))
            .count();
        assert!(
            hours >= 1 && aggs.len() == hours + 2,
            "hours, a day and a month: {aggs:?}"
        );
        assert_eq!(report.stored, 6);
    }

    #[tokio::test]
    async fn marks_a_crash_left_behind_are_recomputed_when_the_next_bridge_stops() {
        let dir = std::env::temp_dir().join(format!(
            "meterflow-bridge-marks-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("meterflow.db");
        {
            // Readings and their marks are committed, then the process dies before a pass.
            let db = Arc::new(crate::SqliteDb::open(&path).unwrap());
            let (bridge, receiving, _) = bridge_over(db.clone(), Duration::from_secs(3600));
            let batch = parsed(&receiving, "m-1", 0..6);
            assert_eq!(bridge.handle_once(&batch.items).await.unwrap().stored, 6);
            assert!(aggregates_of(&db, "m-1").await.is_empty());
        }
        let db = Arc::new(crate::SqliteDb::open(&path).unwrap());
        let (bridge, _, _) = bridge_over(db.clone(), Duration::from_secs(3600));
        let (tx, rx) = tokio::sync::mpsc::channel(PARSED_AHEAD);
        drop(tx);
        bridge.store_all(rx).await;
        assert!(!aggregates_of(&db, "m-1").await.is_empty());
        let pending = crate::SqlitePendingAggregates::new(db.clone());
        use meter_core::ports::PendingAggregates as _;
        assert!(pending.next(None, 10).await.unwrap().is_empty());
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_brokers_meter_id_comes_after_a_forged_one_in_the_payload() {
        let mut s = String::new();
        append_rule_output(
            &mut s,
            "meters/m-1/telemetry",
            br#"{"topic_meter_id":"m-2"}"#,
            1,
        );
        assert!(
            s.ends_with(r#""topic_meter_id":"m-1","received_ms":1}"#),
            "{s}"
        );
    }
}
