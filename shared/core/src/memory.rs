//! In-memory adapters for every port: the fakes that unit tests and the domain benchmark use.
//! They hold the same contract as the SQLite and DynamoDB adapters (the conformance suite runs
//! against them too), but keep nothing across restarts.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::aggregate::{Aggregate, HourRange, Period};
use crate::anomaly::reconcile::StoredFinding;
use crate::events::MeterEvent;
use crate::forecast::stored::StoredForecast;
use crate::ports::{
    AggregateStore, EventStore, FindingCursor, FindingPage, FindingStore, ForecastStore,
    InsertOutcome, MeterPage, MeterRegistry, PendingAggregates, QuarantineStore, ReadingStore,
    ShardDispatcher, ShardJob, StoreError,
};
use crate::registry::{check_feeder, MeterInfo};
use crate::telemetry::QuarantineEntry;
use crate::types::{Energy, MeterId, MeterStatus, Reading, RelayState, Timestamp};

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::Corrupt("in-memory store lock poisoned".into()))
}

/// One meter's readings, kept sorted by time in a plain vector: readings nearly always arrive
/// in order, so an insert is a push, and a late one a shift of the few rows after it; lookups
/// are binary searches. The meter's `seq`s are kept sorted the same way, to catch re-sent
/// counters: a counter above the last one (the usual case) is new without a search.
///
/// Rows are [`Row`]s rather than whole [`Reading`]s: the meter id lives once in the map key
/// and the optional fields in one presence byte, so a row is 88 bytes instead of 192. The
/// domain benchmark inserts a fleet's readings interleaved, each into another meter's vector,
/// so the store's time is memory traffic (cache misses and first-touch page faults) far more
/// than instructions, and halving the bytes written per reading is what made it cheaper.
#[derive(Default)]
struct MeterReadings {
    rows: Vec<Row>,
    seqs: Vec<u64>,
    /// The texts of `MeterStatus::Other` statuses, which rows refer to by index: rare, and
    /// too big to keep inline in every row.
    other_statuses: Vec<Box<str>>,
}

impl MeterReadings {
    /// Where a reading at `ts` is or would go.
    fn position(&self, ts: Timestamp) -> Result<usize, usize> {
        match self.rows.last() {
            Some(last) if last.ts < ts => Err(self.rows.len()),
            _ => self.rows.binary_search_by_key(&ts, |r| r.ts),
        }
    }

    /// Records `seq` unless the meter already sent it; `false` for a repeat.
    fn record_seq(&mut self, seq: u64) -> bool {
        match self.seqs.last() {
            Some(&last) if last >= seq => match self.seqs.binary_search(&seq) {
                Ok(_) => false,
                Err(at) => {
                    self.seqs.insert(at, seq);
                    true
                }
            },
            _ => {
                self.seqs.push(seq);
                true
            }
        }
    }

    /// The row of `r`, filing an unusual status word in `other_statuses`.
    fn encode(&mut self, r: Reading) -> Row {
        let mut present = 0u8;
        let mut float = |bit: u8, v: Option<f64>| match v {
            Some(v) => {
                present |= bit;
                v
            }
            None => 0.0,
        };
        let power_w = float(P_POWER_W, r.power_w);
        let voltage_v = float(P_VOLTAGE_V, r.voltage_v);
        let current_a = float(P_CURRENT_A, r.current_a);
        let power_factor = float(P_POWER_FACTOR, r.power_factor);
        let frequency_hz = float(P_FREQUENCY_HZ, r.frequency_hz);
        if r.seq.is_some() {
            present |= P_SEQ;
        }
        if r.energy_export.is_some() {
            present |= P_EXPORT;
        }
        let status = match r.status {
            MeterStatus::Ok => STATUS_OK,
            MeterStatus::Tamper => STATUS_TAMPER,
            MeterStatus::Fault => STATUS_FAULT,
            MeterStatus::Other(text) => {
                // A meter repeats its odd status word while the condition lasts: keep one copy.
                if self.other_statuses.last() != Some(&text) {
                    self.other_statuses.push(text);
                }
                // Beyond u32::MAX texts per meter cannot fit in memory anyway.
                let index = u32::try_from(self.other_statuses.len() - 1).unwrap_or(u32::MAX);
                STATUS_OTHER.saturating_add(index)
            }
        };
        Row {
            ts: r.ts,
            received: r.received,
            seq: r.seq.unwrap_or(0),
            energy_import: r.energy_import,
            energy_export: r.energy_export.unwrap_or_default(),
            power_w,
            voltage_v,
            current_a,
            power_factor,
            frequency_hz,
            status,
            present,
            relay: match r.relay {
                None => 0,
                Some(RelayState::Closed) => 1,
                Some(RelayState::Open) => 2,
            },
        }
    }

    /// The reading a row holds.
    fn decode(&self, meter_id: &MeterId, row: &Row) -> Reading {
        let float = |bit: u8, v: f64| (row.present & bit != 0).then_some(v);
        Reading {
            meter_id: meter_id.clone(),
            ts: row.ts,
            seq: (row.present & P_SEQ != 0).then_some(row.seq),
            received: row.received,
            energy_import: row.energy_import,
            energy_export: (row.present & P_EXPORT != 0).then_some(row.energy_export),
            power_w: float(P_POWER_W, row.power_w),
            voltage_v: float(P_VOLTAGE_V, row.voltage_v),
            current_a: float(P_CURRENT_A, row.current_a),
            power_factor: float(P_POWER_FACTOR, row.power_factor),
            frequency_hz: float(P_FREQUENCY_HZ, row.frequency_hz),
            status: match row.status {
                STATUS_OK => MeterStatus::Ok,
                STATUS_TAMPER => MeterStatus::Tamper,
                STATUS_FAULT => MeterStatus::Fault,
                other => self
                    .other_statuses
                    .get((other - STATUS_OTHER) as usize)
                    .map_or(MeterStatus::Other("".into()), |s| {
                        MeterStatus::Other(s.clone())
                    }),
            },
            relay: match row.relay {
                1 => Some(RelayState::Closed),
                2 => Some(RelayState::Open),
                _ => None,
            },
        }
    }
}

/// A stored reading without its meter id; see [`MeterReadings`]. Absent optional fields are
/// zero with their bit in `present` clear.
struct Row {
    ts: Timestamp,
    received: Timestamp,
    seq: u64,
    energy_import: Energy,
    energy_export: Energy,
    power_w: f64,
    voltage_v: f64,
    current_a: f64,
    power_factor: f64,
    frequency_hz: f64,
    /// `STATUS_OK`, `STATUS_TAMPER`, `STATUS_FAULT`, or `STATUS_OTHER` plus an index into
    /// `MeterReadings::other_statuses`.
    status: u32,
    present: u8,
    /// 0 none, 1 closed, 2 open.
    relay: u8,
}

// Presence bits of `Row::present`.
const P_SEQ: u8 = 1;
const P_EXPORT: u8 = 1 << 1;
const P_POWER_W: u8 = 1 << 2;
const P_VOLTAGE_V: u8 = 1 << 3;
const P_CURRENT_A: u8 = 1 << 4;
const P_POWER_FACTOR: u8 = 1 << 5;
const P_FREQUENCY_HZ: u8 = 1 << 6;

// Codes of `Row::status`.
const STATUS_OK: u32 = 0;
const STATUS_TAMPER: u32 = 1;
const STATUS_FAULT: u32 = 2;
const STATUS_OTHER: u32 = 3;

/// Readings in memory. (Fx hashing: the keys are our own meter ids, and this store sits on the
/// benchmark's hot path.)
#[derive(Default)]
pub struct MemoryReadingStore {
    meters: Mutex<FxHashMap<MeterId, MeterReadings>>,
}

impl MemoryReadingStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores one reading it takes ownership of: the synchronous core of
    /// [`ReadingStore::insert`], which the domain benchmark calls directly.
    pub fn insert_one(&self, r: Reading) -> Result<InsertOutcome, StoreError> {
        let mut meters = lock(&self.meters)?;
        Ok(insert_owned(&mut meters, r))
    }

    /// Number of readings held.
    pub fn len(&self) -> usize {
        lock(&self.meters).map_or(0, |m| m.values().map(|r| r.rows.len()).sum())
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn insert_owned(meters: &mut FxHashMap<MeterId, MeterReadings>, r: Reading) -> InsertOutcome {
    // Look up before inserting so the common case (a known meter) clones no key.
    let m = match meters.get_mut(&r.meter_id) {
        Some(m) => m,
        None => meters
            .entry(r.meter_id.clone())
            .or_insert_with(|| MeterReadings {
                // A day of quarter hours before the first reallocation.
                rows: Vec::with_capacity(96),
                seqs: Vec::with_capacity(96),
                other_statuses: Vec::new(),
            }),
    };
    let Err(at) = m.position(r.ts) else {
        return InsertOutcome::DuplicateTimestamp;
    };
    if let Some(seq) = r.seq {
        if !m.record_seq(seq) {
            return InsertOutcome::DuplicateSeq;
        }
    }
    let row = m.encode(r);
    m.rows.insert(at, row);
    InsertOutcome::Stored
}

#[async_trait]
impl ReadingStore for MemoryReadingStore {
    async fn insert(&self, readings: &[Reading]) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut meters = lock(&self.meters)?;
        Ok(readings
            .iter()
            .map(|r| insert_owned(&mut meters, r.clone()))
            .collect())
    }

    async fn range(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reading>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let meters = lock(&self.meters)?;
        Ok(meters
            .get(meter)
            .map(|m| {
                let lo = m.rows.partition_point(|r| r.ts < from);
                let hi = m.rows.partition_point(|r| r.ts <= to);
                m.rows[lo..hi]
                    .iter()
                    .map(|row| m.decode(meter, row))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn before(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError> {
        let meters = lock(&self.meters)?;
        Ok(meters.get(meter).and_then(|m| {
            let i = m.rows.partition_point(|r| r.ts < ts);
            let row = i.checked_sub(1).and_then(|i| m.rows.get(i))?;
            Some(m.decode(meter, row))
        }))
    }

    async fn after(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError> {
        let meters = lock(&self.meters)?;
        Ok(meters.get(meter).and_then(|m| {
            let i = m.rows.partition_point(|r| r.ts <= ts);
            m.rows.get(i).map(|row| m.decode(meter, row))
        }))
    }
}

/// The record of the feeder `info` names, if it names one and it is registered.
fn feeder_of<'a>(
    meters: &'a BTreeMap<MeterId, MeterInfo>,
    info: &MeterInfo,
) -> Option<&'a MeterInfo> {
    info.feeder_id.as_ref().and_then(|f| meters.get(f))
}

/// The registry in memory.
#[derive(Default)]
pub struct MemoryMeterRegistry {
    meters: Mutex<BTreeMap<MeterId, MeterInfo>>,
}

impl MemoryMeterRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl MeterRegistry for MemoryMeterRegistry {
    async fn get(&self, meter: &MeterId) -> Result<Option<MeterInfo>, StoreError> {
        Ok(lock(&self.meters)?.get(meter).cloned())
    }

    async fn upsert(&self, info: &MeterInfo) -> Result<(), StoreError> {
        let mut meters = lock(&self.meters)?;
        check_feeder(info, feeder_of(&meters, info))?;
        meters.insert(info.meter_id.clone(), info.clone());
        Ok(())
    }

    async fn register_if_absent(&self, info: &MeterInfo) -> Result<MeterInfo, StoreError> {
        let mut meters = lock(&self.meters)?;
        if let Some(existing) = meters.get(&info.meter_id) {
            return Ok(existing.clone());
        }
        check_feeder(info, feeder_of(&meters, info))?;
        meters.insert(info.meter_id.clone(), info.clone());
        Ok(info.clone())
    }

    async fn by_feeder(&self, feeder: &MeterId) -> Result<Vec<MeterInfo>, StoreError> {
        Ok(lock(&self.meters)?
            .values()
            .filter(|m| m.feeder_id.as_ref() == Some(feeder))
            .cloned()
            .collect())
    }

    async fn list(&self, after: Option<&MeterId>, limit: usize) -> Result<MeterPage, StoreError> {
        let map = lock(&self.meters)?;
        let from = match after {
            Some(a) => std::ops::Bound::Excluded(a.clone()),
            None => std::ops::Bound::Unbounded,
        };
        let meters: Vec<MeterInfo> = map
            .range((from, std::ops::Bound::Unbounded))
            .take(limit.max(1))
            .map(|(_, m)| m.clone())
            .collect();
        let next = match meters.last() {
            Some(last) if map.range(last.meter_id.clone()..).nth(1).is_some() => {
                Some(last.meter_id.clone())
            }
            _ => None,
        };
        Ok(MeterPage { meters, next })
    }
}

/// Quarantine in memory.
#[derive(Default)]
pub struct MemoryQuarantineStore {
    entries: Mutex<BTreeMap<(String, Timestamp, String), QuarantineEntry>>,
}

impl MemoryQuarantineStore {
    /// An empty quarantine.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl QuarantineStore for MemoryQuarantineStore {
    async fn put(&self, entries: &[QuarantineEntry]) -> Result<(), StoreError> {
        let mut map = lock(&self.entries)?;
        for e in entries {
            map.insert((e.meter_key.clone(), e.received, e.id.clone()), e.clone());
        }
        Ok(())
    }

    async fn for_meter(
        &self,
        meter_key: &str,
        limit: usize,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        Ok(lock(&self.entries)?
            .iter()
            .rev()
            .filter(|((k, _, _), _)| k == meter_key)
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

/// Aggregates in memory.
#[derive(Default)]
pub struct MemoryAggregateStore {
    versions: Mutex<HashMap<MeterId, u64>>,
    aggregates: Mutex<BTreeMap<(MeterId, Period), Aggregate>>,
}

impl MemoryAggregateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AggregateStore for MemoryAggregateStore {
    async fn next_version(&self, meter: &MeterId) -> Result<u64, StoreError> {
        let mut v = lock(&self.versions)?;
        let n = v.entry(meter.clone()).or_insert(0);
        *n += 1;
        Ok(*n)
    }

    async fn put(&self, aggregates: &[Aggregate]) -> Result<(), StoreError> {
        let mut map = lock(&self.aggregates)?;
        for a in aggregates {
            let key = (a.meter_id.clone(), a.period);
            match map.get(&key) {
                Some(old) if old.version >= a.version => {}
                _ => {
                    map.insert(key, a.clone());
                }
            }
        }
        Ok(())
    }

    async fn range(
        &self,
        meter: &MeterId,
        from: Period,
        to: Period,
    ) -> Result<Vec<Aggregate>, StoreError> {
        if from.granularity() != to.granularity() || from > to {
            return Ok(Vec::new());
        }
        Ok(lock(&self.aggregates)?
            .range((meter.clone(), from)..=(meter.clone(), to))
            .map(|(_, a)| a.clone())
            .collect())
    }
}

/// Events in memory.
#[derive(Default)]
pub struct MemoryEventStore {
    events: Mutex<BTreeMap<(MeterId, Timestamp, String), MeterEvent>>,
}

impl MemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn publish(&self, events: &[MeterEvent]) -> Result<(), StoreError> {
        let mut map = lock(&self.events)?;
        for e in events {
            map.entry((e.meter_id.clone(), e.ts, e.key()))
                .or_insert_with(|| e.clone());
        }
        Ok(())
    }

    async fn for_meter(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<MeterEvent>, StoreError> {
        Ok(lock(&self.events)?
            .iter()
            .filter(|((m, ts, _), _)| m == meter && *ts >= from && *ts <= to)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

/// Issued forecasts in memory.
#[derive(Default)]
pub struct MemoryForecastStore {
    forecasts: Mutex<BTreeMap<(MeterId, Timestamp), StoredForecast>>,
}

impl MemoryForecastStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ForecastStore for MemoryForecastStore {
    async fn put(&self, forecasts: &[StoredForecast]) -> Result<(), StoreError> {
        let mut map = lock(&self.forecasts)?;
        for f in forecasts {
            map.insert((f.meter_id.clone(), f.issued_at), f.clone());
        }
        Ok(())
    }

    async fn get(
        &self,
        meter: &MeterId,
        issued_at: Timestamp,
    ) -> Result<Option<StoredForecast>, StoreError> {
        Ok(lock(&self.forecasts)?
            .get(&(meter.clone(), issued_at))
            .cloned())
    }

    async fn latest(&self, meter: &MeterId) -> Result<Option<StoredForecast>, StoreError> {
        let from = (meter.clone(), Timestamp::from_millis(i64::MIN));
        let to = (meter.clone(), Timestamp::from_millis(i64::MAX));
        Ok(lock(&self.forecasts)?
            .range(from..=to)
            .next_back()
            .map(|(_, f)| f.clone()))
    }
}

/// Anomaly-scan findings in memory, by `(meter, id)`.
#[derive(Default)]
pub struct MemoryFindingStore {
    findings: Mutex<BTreeMap<(MeterId, String), StoredFinding>>,
}

impl MemoryFindingStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn of_meter(&self, meter: &MeterId, open_only: bool) -> Result<Vec<StoredFinding>, StoreError> {
        Ok(lock(&self.findings)?
            .range((meter.clone(), String::new())..)
            .take_while(|((m, _), _)| m == meter)
            .map(|(_, f)| f)
            .filter(|f| !open_only || f.is_open())
            .cloned()
            .collect())
    }
}

#[async_trait]
impl FindingStore for MemoryFindingStore {
    async fn put(&self, findings: &[StoredFinding]) -> Result<(), StoreError> {
        let mut map = lock(&self.findings)?;
        for f in findings {
            map.insert((f.meter_id.clone(), f.id.clone()), f.clone());
        }
        Ok(())
    }

    async fn get(&self, meter: &MeterId, id: &str) -> Result<Option<StoredFinding>, StoreError> {
        Ok(lock(&self.findings)?
            .get(&(meter.clone(), id.to_owned()))
            .cloned())
    }

    async fn open_for_meter(&self, meter: &MeterId) -> Result<Vec<StoredFinding>, StoreError> {
        self.of_meter(meter, true)
    }

    async fn for_meter(&self, meter: &MeterId) -> Result<Vec<StoredFinding>, StoreError> {
        self.of_meter(meter, false)
    }

    async fn open_page(
        &self,
        after: Option<&FindingCursor>,
        limit: usize,
    ) -> Result<FindingPage, StoreError> {
        let map = lock(&self.findings)?;
        let limit = limit.max(1);
        let mut findings: Vec<StoredFinding> = map
            .iter()
            .filter(|((m, id), _)| after.is_none_or(|c| (m, id) > (&c.meter_id, &c.id)))
            .map(|(_, f)| f)
            .filter(|f| f.is_open())
            .take(limit + 1)
            .cloned()
            .collect();
        let more = findings.len() > limit;
        findings.truncate(limit);
        let next = if more {
            findings.last().map(|f| FindingCursor {
                meter_id: f.meter_id.clone(),
                id: f.id.clone(),
            })
        } else {
            None
        };
        Ok(FindingPage { findings, next })
    }
}

/// Shard jobs collected in memory, for tests and for callers that run the shards themselves.
#[derive(Default)]
pub struct MemoryShardDispatcher {
    jobs: Mutex<Vec<ShardJob>>,
}

impl MemoryShardDispatcher {
    /// No jobs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every job dispatched so far.
    pub fn take(&self) -> Vec<ShardJob> {
        self.jobs
            .lock()
            .map(|mut j| std::mem::take(&mut *j))
            .unwrap_or_default()
    }
}

#[async_trait]
impl ShardDispatcher for MemoryShardDispatcher {
    async fn dispatch(&self, jobs: &[ShardJob]) -> Result<(), StoreError> {
        lock(&self.jobs)?.extend_from_slice(jobs);
        Ok(())
    }
}

/// Pending aggregate marks, one merged range per meter.
#[derive(Default)]
pub struct MemoryPendingAggregates {
    marks: Mutex<BTreeMap<MeterId, HourRange>>,
}

impl MemoryPendingAggregates {
    /// An empty set of marks.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl PendingAggregates for MemoryPendingAggregates {
    async fn mark(&self, meter: &MeterId, range: HourRange) -> Result<(), StoreError> {
        let mut marks = lock(&self.marks)?;
        let merged = match marks.get(meter) {
            Some(old) => old.union(range),
            None => range,
        };
        marks.insert(meter.clone(), merged);
        Ok(())
    }

    async fn next(
        &self,
        after: Option<&MeterId>,
        max: usize,
    ) -> Result<Vec<(MeterId, HourRange)>, StoreError> {
        use std::ops::Bound;
        let marks = lock(&self.marks)?;
        let from = match after {
            Some(m) => Bound::Excluded(m.clone()),
            None => Bound::Unbounded,
        };
        Ok(marks
            .range((from, Bound::Unbounded))
            .take(max)
            .map(|(m, r)| (m.clone(), *r))
            .collect())
    }

    async fn clear(&self, meters: &[MeterId]) -> Result<(), StoreError> {
        let mut marks = lock(&self.marks)?;
        for m in meters {
            marks.remove(m);
        }
        Ok(())
    }
}

/// A full set of in-memory ports.
pub fn memory_ports() -> crate::ingest::Ports {
    use std::sync::Arc;
    crate::ingest::Ports {
        readings: Arc::new(MemoryReadingStore::new()),
        registry: Arc::new(MemoryMeterRegistry::new()),
        quarantine: Arc::new(MemoryQuarantineStore::new()),
        aggregates: Arc::new(MemoryAggregateStore::new()),
        events: Arc::new(MemoryEventStore::new()),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future as _;

    use super::*;

    fn reading(minute: i64, seq: Option<u64>) -> Reading {
        Reading {
            meter_id: MeterId::parse("m-1").unwrap(),
            ts: Timestamp::from_millis(1_772_323_200_000 + minute * 60_000),
            seq,
            received: Timestamp::from_millis(1_772_323_260_000 + minute * 60_000),
            energy_import: Energy::from_mwh(1_000 + minute),
            energy_export: None,
            power_w: Some(-12.5),
            voltage_v: None,
            current_a: Some(0.0),
            power_factor: Some(0.95),
            frequency_hz: None,
            status: MeterStatus::Ok,
            relay: None,
        }
    }

    fn stored(store: &MemoryReadingStore) -> Vec<Reading> {
        let meter = MeterId::parse("m-1").unwrap();
        let all = store.range(
            &meter,
            Timestamp::from_millis(0),
            Timestamp::from_millis(i64::MAX),
        );
        // The in-memory store never waits, so one poll finishes it.
        let mut all = std::pin::pin!(all);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match all.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r.unwrap(),
            std::task::Poll::Pending => panic!("the in-memory store waited"),
        }
    }

    #[test]
    fn a_compact_row_gives_back_the_reading_it_was_made_from() {
        let store = MemoryReadingStore::new();
        let mut odd = reading(15, Some(7));
        odd.energy_export = Some(Energy::from_mwh(42));
        odd.voltage_v = Some(231.2);
        odd.frequency_hz = Some(f64::from_bits(0x7ff8_0000_0000_0001));
        odd.status = MeterStatus::Other("maintenance".into());
        odd.relay = Some(RelayState::Open);
        let mut tamper = reading(30, None);
        tamper.status = MeterStatus::Tamper;
        tamper.relay = Some(RelayState::Closed);
        let mut odd_again = reading(45, Some(8));
        odd_again.status = MeterStatus::Other("maintenance".into());
        let mut other = reading(60, Some(9));
        other.status = MeterStatus::Other("calibrating".into());
        let all = [reading(0, Some(6)), odd, tamper, odd_again, other];
        for r in &all {
            assert_eq!(store.insert_one(r.clone()).unwrap(), InsertOutcome::Stored);
        }
        let back = stored(&store);
        assert_eq!(format!("{back:?}"), format!("{all:?}"));
        let nan_bits = back[1].frequency_hz.map(f64::to_bits);
        assert_eq!(nan_bits, Some(0x7ff8_0000_0000_0001));
    }

    #[test]
    fn late_readings_and_repeated_counters_are_told_apart() {
        let store = MemoryReadingStore::new();
        let insert = |minute, seq| store.insert_one(reading(minute, seq)).unwrap();
        assert_eq!(insert(30, Some(30)), InsertOutcome::Stored);
        assert_eq!(insert(60, Some(60)), InsertOutcome::Stored);
        // Late, with a counter between the others: stored in time order.
        assert_eq!(insert(45, Some(45)), InsertOutcome::Stored);
        assert_eq!(insert(0, Some(0)), InsertOutcome::Stored);
        assert_eq!(insert(45, Some(99)), InsertOutcome::DuplicateTimestamp);
        assert_eq!(insert(50, Some(45)), InsertOutcome::DuplicateSeq);
        assert_eq!(insert(55, Some(60)), InsertOutcome::DuplicateSeq);
        assert_eq!(insert(70, None), InsertOutcome::Stored);
        let minutes: Vec<i64> = stored(&store)
            .iter()
            .map(|r| (r.ts.millis() - 1_772_323_200_000) / 60_000)
            .collect();
        assert_eq!(minutes, [0, 30, 45, 60, 70]);
    }
}
