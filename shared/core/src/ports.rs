//! The ports: what the domain needs from storage and messaging, one narrow trait per role.
//! Adapters implement them by technology (`SqliteReadingStore`, `DynamoReadingStore`, ...), and
//! one conformance suite (in `tests/`) holds every adapter to the same contract.
//!
//! Every write is idempotent: calling it again with the same input leaves the same state. That is
//! what makes a retried Lambda invocation, or a redelivered IoT message, harmless.

use async_trait::async_trait;

use crate::aggregate::{Aggregate, HourRange, Period};
use crate::anomaly::reconcile::StoredFinding;
use crate::events::MeterEvent;
use crate::forecast::stored::StoredForecast;
use crate::registry::MeterInfo;
use crate::telemetry::QuarantineEntry;
use crate::types::{MeterId, Reading, Timestamp};

/// A boxed error from an adapter's client library, kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend is throttling or temporarily unreachable: retrying later can succeed.
    #[error("store temporarily unavailable")]
    Unavailable(#[source] BoxError),
    /// The backend refused the request; retrying the same request will fail again.
    #[error("store rejected the request")]
    Rejected(#[source] BoxError),
    /// A stored record could not be decoded.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// A meter to be registered names a feeder that is not registered as a feeder meter. Its
    /// consumers would be scanned as a group with no feeder meter (no energy balance, no feeder
    /// outage), so the registry refuses it: register the feeder first.
    #[error(
        "meter {meter} names feeder {feeder}, which is not registered as a feeder meter; \
         register the feeder first"
    )]
    UnregisteredFeeder {
        /// The meter that was to be registered.
        meter: MeterId,
        /// The feeder it names.
        feeder: MeterId,
    },
}

impl StoreError {
    /// Whether retrying the whole operation may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// What happened to one reading offered to [`ReadingStore::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsertOutcome {
    /// Newly stored.
    Stored,
    /// A reading with the same meter and timestamp is already stored; nothing changed.
    DuplicateTimestamp,
    /// A reading with the same meter and `seq` (at another time) is already stored; nothing
    /// changed.
    DuplicateSeq,
}

impl InsertOutcome {
    /// Whether it was a duplicate of either kind.
    pub fn is_duplicate(self) -> bool {
        !matches!(self, Self::Stored)
    }
}

/// Raw readings, keyed by meter and timestamp, unique also by meter and `seq`.
#[async_trait]
pub trait ReadingStore: Send + Sync {
    /// Stores each reading unless one with the same (meter, ts) or (meter, seq) exists; returns
    /// one outcome per input, in order. The first of two equal readings in one call wins.
    async fn insert(&self, readings: &[Reading]) -> Result<Vec<InsertOutcome>, StoreError>;

    /// Readings of `meter` with `from <= ts <= to`, in time order.
    async fn range(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reading>, StoreError>;

    /// The latest reading strictly before `ts`.
    async fn before(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError>;

    /// The earliest reading strictly after `ts`.
    async fn after(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError>;

    /// The latest reading at or before `from` (if any), then the readings with
    /// `from < ts <= to`, in time order: what ingest reads back to recompute hour buckets.
    ///
    /// Provided as [`ReadingStore::before`] plus [`ReadingStore::range`]; SQLite overrides it
    /// with one statement.
    async fn range_with_previous(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reading>, StoreError> {
        let mut out = Vec::new();
        if let Some(r) = self.before(meter, from.add_millis(1)).await? {
            out.push(r);
        }
        out.extend(self.range(meter, from.add_millis(1), to).await?);
        Ok(out)
    }
}

/// The meter registry.
#[async_trait]
pub trait MeterRegistry: Send + Sync {
    /// The meter, if registered.
    async fn get(&self, meter: &MeterId) -> Result<Option<MeterInfo>, StoreError>;

    /// Creates or replaces the meter's record. A record naming a feeder (`feeder_id`) is
    /// refused with [`StoreError::UnregisteredFeeder`] unless that feeder is registered, as a
    /// feeder meter ([`crate::registry::check_feeder`]): register feeders before their consumers.
    async fn upsert(&self, info: &MeterInfo) -> Result<(), StoreError>;

    /// Registers the meter unless it already is; returns the stored record either way. A new
    /// record naming a feeder is refused as by [`MeterRegistry::upsert`].
    async fn register_if_absent(&self, info: &MeterInfo) -> Result<MeterInfo, StoreError>;

    /// The consumer meters under a feeder.
    async fn by_feeder(&self, feeder: &MeterId) -> Result<Vec<MeterInfo>, StoreError>;

    /// One page of the whole registry, for jobs that visit every meter (the forecast shards):
    /// up to `limit` meters after the cursor `after` (`None`: from the start), and the cursor
    /// of the next page (`None`: this was the last). The order is the adapter's own; walking
    /// the pages from `None` to the end yields every meter registered throughout exactly once.
    async fn list(&self, after: Option<&MeterId>, limit: usize) -> Result<MeterPage, StoreError>;
}

/// A page of [`MeterRegistry::list`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeterPage {
    /// The meters of this page.
    pub meters: Vec<MeterInfo>,
    /// Where the next page starts, if there is one.
    pub next: Option<MeterId>,
}

/// Refused messages and readings, with their reasons.
#[async_trait]
pub trait QuarantineStore: Send + Sync {
    /// Stores the entries; an entry with an existing id is overwritten with itself.
    async fn put(&self, entries: &[QuarantineEntry]) -> Result<(), StoreError>;

    /// The latest entries for a meter key (a meter id or `_unknown`), newest first.
    async fn for_meter(
        &self,
        meter_key: &str,
        limit: usize,
    ) -> Result<Vec<QuarantineEntry>, StoreError>;
}

/// Hourly, daily and monthly aggregates.
#[async_trait]
pub trait AggregateStore: Send + Sync {
    /// A fresh version number for `meter`, greater than every one handed out before.
    async fn next_version(&self, meter: &MeterId) -> Result<u64, StoreError>;

    /// Writes each aggregate unless the stored one has an equal or higher version.
    async fn put(&self, aggregates: &[Aggregate]) -> Result<(), StoreError>;

    /// Aggregates of `meter` with periods `from..=to` (both of the same granularity), in order.
    async fn range(
        &self,
        meter: &MeterId,
        from: Period,
        to: Period,
    ) -> Result<Vec<Aggregate>, StoreError>;

    /// The aggregate for `period` with `version`, summed from the stored aggregates of `meter`
    /// with periods `from..=to` (the hours of a day, the days of a month).
    ///
    /// Provided as [`AggregateStore::range`] plus [`crate::aggregate::roll_up`]; a store that
    /// can sum on its side (SQLite) overrides it to skip moving the children.
    async fn roll_up(
        &self,
        meter: &MeterId,
        period: Period,
        from: Period,
        to: Period,
        version: u64,
    ) -> Result<Aggregate, StoreError> {
        let children = self.range(meter, from, to).await?;
        Ok(crate::aggregate::roll_up(meter, period, &children, version))
    }
}

/// Hours whose aggregates a later pass recomputes, for a store that refreshes aggregates in bulk
/// instead of in every ingest call (the local stack; see [`crate::Ingestor::with_pending_aggregates`]).
///
/// A mark is written in the same transaction as the readings it stands for, so a crash leaves
/// either both or neither, and the next pass finds every mark still there.
#[async_trait]
pub trait PendingAggregates: Send + Sync {
    /// Records that `meter`'s aggregates over `range` need recomputing, merged with any mark
    /// already pending for the meter (the merged range covers both).
    async fn mark(&self, meter: &MeterId, range: HourRange) -> Result<(), StoreError>;

    /// Up to `max` pending marks of meters after `after` (from the first when `None`), in meter
    /// order.
    async fn next(
        &self,
        after: Option<&MeterId>,
        max: usize,
    ) -> Result<Vec<(MeterId, HourRange)>, StoreError>;

    /// Removes the marks of `meters`, once their aggregates have been recomputed.
    async fn clear(&self, meters: &[MeterId]) -> Result<(), StoreError>;
}

/// Instant events, for the alerts function.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Records the events; an event already recorded (same meter and key) is left as it is.
    async fn publish(&self, events: &[MeterEvent]) -> Result<(), StoreError>;

    /// Events of `meter` with `from <= ts <= to`, in time order.
    async fn for_meter(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<MeterEvent>, StoreError>;
}

/// Issued forecasts, one per meter and issue time.
#[async_trait]
pub trait ForecastStore: Send + Sync {
    /// Stores each forecast, replacing one already stored for the same `(meter_id, issued_at)`,
    /// so a re-run shard leaves one forecast per meter and issue, never two.
    async fn put(&self, forecasts: &[StoredForecast]) -> Result<(), StoreError>;

    /// The meter's forecast issued at `issued_at`, if any.
    async fn get(
        &self,
        meter: &MeterId,
        issued_at: Timestamp,
    ) -> Result<Option<StoredForecast>, StoreError>;

    /// The meter's most recently issued forecast, if any.
    async fn latest(&self, meter: &MeterId) -> Result<Option<StoredForecast>, StoreError>;
}

/// One shard's work in a forecast run: the meters with `shard_of(meter, shards) == shard`,
/// forecast as of `issued_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardJob {
    /// This shard, `0..shards`.
    pub shard: u32,
    /// How many shards the run has.
    pub shards: u32,
    /// The run's issue time, shared by every shard so a retried shard writes the same keys.
    pub issued_at: Timestamp,
}

impl ShardJob {
    /// The job as the `forecast` function's shard event:
    /// `{"mode":"shard","shard":i,"shards":n,"issued_at":"<RFC 3339>"}`.
    pub fn to_event_json(&self) -> String {
        serde_json::json!({
            "mode": "shard",
            "shard": self.shard,
            "shards": self.shards,
            "issued_at": self.issued_at.to_rfc3339(),
        })
        .to_string()
    }
}

/// Hands shard jobs to workers: the forecast coordinator's fan-out (an SQS queue in AWS, a
/// direct call on the local stack).
#[async_trait]
pub trait ShardDispatcher: Send + Sync {
    /// Delivers every job at least once (a worker must tolerate a repeat; forecast writes do).
    async fn dispatch(&self, jobs: &[ShardJob]) -> Result<(), StoreError>;
}

/// Findings of the anomaly scan, one per condition across scans (see
/// [`crate::anomaly::reconcile()`]), kept by meter and id. Open findings are what operators and
/// the alerts function act on, so both "open findings of this meter" and "open findings of the
/// whole fleet" are cheap in every adapter.
#[async_trait]
pub trait FindingStore: Send + Sync {
    /// Stores each finding, replacing the one stored with the same `(meter_id, id)`: a retried
    /// scan rewrites its own findings, never adds new ones.
    async fn put(&self, findings: &[StoredFinding]) -> Result<(), StoreError>;

    /// The meter's finding `id`, open or closed, if stored.
    async fn get(&self, meter: &MeterId, id: &str) -> Result<Option<StoredFinding>, StoreError>;

    /// The meter's open findings, by id.
    async fn open_for_meter(&self, meter: &MeterId) -> Result<Vec<StoredFinding>, StoreError>;

    /// The meter's findings, open and closed (closed ones until they expire), by id.
    async fn for_meter(&self, meter: &MeterId) -> Result<Vec<StoredFinding>, StoreError>;

    /// One page of the fleet's open findings in `(meter_id, id)` order: up to `limit` after
    /// the cursor `after` (`None`: from the start), and the next page's cursor (`None`: this
    /// was the last).
    async fn open_page(
        &self,
        after: Option<&FindingCursor>,
        limit: usize,
    ) -> Result<FindingPage, StoreError>;
}

/// Where a page of [`FindingStore::open_page`] ends: the last finding's meter and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FindingCursor {
    /// The meter.
    pub meter_id: MeterId,
    /// The finding's id.
    pub id: String,
}

/// A page of [`FindingStore::open_page`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingPage {
    /// The open findings of this page.
    pub findings: Vec<StoredFinding>,
    /// Where the next page starts, if there is one.
    pub next: Option<FindingCursor>,
}
