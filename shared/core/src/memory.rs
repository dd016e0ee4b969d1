//! In-memory adapters for every port: the fakes that unit tests and the domain benchmark use.
//! They hold the same contract as the SQLite and DynamoDB adapters (the conformance suite runs
//! against them too), but keep nothing across restarts.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::aggregate::{Aggregate, Period};
use crate::events::MeterEvent;
use crate::ports::{
    AggregateStore, EventStore, InsertOutcome, MeterRegistry, QuarantineStore, ReadingStore,
    StoreError,
};
use crate::registry::MeterInfo;
use crate::telemetry::QuarantineEntry;
use crate::types::{MeterId, Reading, Timestamp};

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::Corrupt("in-memory store lock poisoned".into()))
}

/// One meter's readings, kept sorted by time in a plain vector: readings nearly always arrive
/// in order, so an insert is a push, and a late one a shift of the few rows after it; lookups
/// are binary searches. A `seq` index catches re-sent counters.
#[derive(Default)]
struct MeterReadings {
    rows: Vec<Reading>,
    seqs: FxHashMap<u64, Timestamp>,
}

impl MeterReadings {
    /// Where a reading at `ts` is or would go.
    fn position(&self, ts: Timestamp) -> Result<usize, usize> {
        match self.rows.last() {
            Some(last) if last.ts < ts => Err(self.rows.len()),
            _ => self.rows.binary_search_by_key(&ts, |r| r.ts),
        }
    }
}

/// Readings in memory. (Fx hashing: the keys are our own meter ids and counters, and this store
/// sits on the benchmark's hot path.)
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
        // Look up before inserting so the common case (a known meter) clones no key.
        if let Some(m) = meters.get_mut(&r.meter_id) {
            return Ok(insert_owned(m, r));
        }
        let m = meters
            .entry(r.meter_id.clone())
            .or_insert_with(|| MeterReadings {
                // A day of quarter hours before the first reallocation.
                rows: Vec::with_capacity(96),
                seqs: FxHashMap::with_capacity_and_hasher(96, Default::default()),
            });
        Ok(insert_owned(m, r))
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

fn insert_owned(m: &mut MeterReadings, r: Reading) -> InsertOutcome {
    let Err(at) = m.position(r.ts) else {
        return InsertOutcome::DuplicateTimestamp;
    };
    if let Some(seq) = r.seq {
        if m.seqs.contains_key(&seq) {
            return InsertOutcome::DuplicateSeq;
        }
        m.seqs.insert(seq, r.ts);
    }
    m.rows.insert(at, r);
    InsertOutcome::Stored
}

#[async_trait]
impl ReadingStore for MemoryReadingStore {
    async fn insert(&self, readings: &[Reading]) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut meters = lock(&self.meters)?;
        Ok(readings
            .iter()
            .map(|r| insert_owned(meters.entry(r.meter_id.clone()).or_default(), r.clone()))
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
                m.rows[lo..hi].to_vec()
            })
            .unwrap_or_default())
    }

    async fn before(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError> {
        let meters = lock(&self.meters)?;
        Ok(meters.get(meter).and_then(|m| {
            let i = m.rows.partition_point(|r| r.ts < ts);
            i.checked_sub(1).and_then(|i| m.rows.get(i)).cloned()
        }))
    }

    async fn after(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError> {
        let meters = lock(&self.meters)?;
        Ok(meters.get(meter).and_then(|m| {
            let i = m.rows.partition_point(|r| r.ts <= ts);
            m.rows.get(i).cloned()
        }))
    }
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
        lock(&self.meters)?.insert(info.meter_id.clone(), info.clone());
        Ok(())
    }

    async fn register_if_absent(&self, info: &MeterInfo) -> Result<MeterInfo, StoreError> {
        Ok(lock(&self.meters)?
            .entry(info.meter_id.clone())
            .or_insert_with(|| info.clone())
            .clone())
    }

    async fn by_feeder(&self, feeder: &MeterId) -> Result<Vec<MeterInfo>, StoreError> {
        Ok(lock(&self.meters)?
            .values()
            .filter(|m| m.feeder_id.as_ref() == Some(feeder))
            .cloned()
            .collect())
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
