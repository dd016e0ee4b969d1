//! The ingest use case: messages in; readings stored, duplicates counted, the rest quarantined;
//! aggregates recomputed; instant events raised. The Lambda handler and the local rule bridge
//! both call [`Ingestor::ingest`], so the same code decides in AWS and on a laptop.
//!
//! Crash safety: every step is an idempotent write, and aggregates are recomputed for duplicates
//! as well as for new readings. A retried invocation therefore finishes whatever a crashed one
//! left half-done, and ends in the same state as if the first had succeeded.
//!
//! Aggregates are written by the ingest call itself (the Lambda), or, with
//! [`Ingestor::with_pending_aggregates`], only marked there and recomputed in bulk by
//! [`Ingestor::refresh_pending`] (the local rule bridge, where one writer does everything and
//! the aggregate writes were a quarter of its time).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono_tz::Tz;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::aggregate::{days_of_month, hourly, hours_of_day, HourRange, Period};
use crate::energy::RegisterPolicy;
use crate::events::EventPolicy;
use crate::ports::{
    AggregateStore, EventStore, InsertOutcome, MeterRegistry, PendingAggregates, QuarantineStore,
    ReadingStore, StoreError,
};
use crate::registry::MeterInfo;
use crate::telemetry::{parse_message_into, MessageContext, ParsedItem, QuarantineEntry};
use crate::types::{MeterId, Reading, Timestamp};
use crate::validation::{Limits, QuarantineReason, Rejection};

/// Whether unknown meters are refused or registered on first sight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryMode {
    /// Readings from meters not in the registry are quarantined as `unknown_meter` (AWS default).
    Enforce,
    /// Unknown meters are registered as consumers in the default time zone (local default).
    AutoRegister,
}

/// Everything ingest can be configured with.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Physical limits and time windows.
    pub limits: Limits,
    /// Register wrap-around and gap threshold.
    pub registers: RegisterPolicy,
    /// Instant-event thresholds.
    pub events: EventPolicy,
    /// Enforce the registry, or auto-register.
    pub registry_mode: RegistryMode,
    /// Time zone given to auto-registered meters.
    pub default_timezone: Tz,
    /// How long a registry record is cached in memory.
    pub registry_cache_ttl: Duration,
    /// How many meters are refreshed concurrently within one call.
    pub concurrency: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            registers: RegisterPolicy {
                register_max: limits.register_max(),
                ..RegisterPolicy::default()
            },
            limits,
            events: EventPolicy::default(),
            registry_mode: RegistryMode::Enforce,
            default_timezone: Tz::UTC,
            registry_cache_ttl: Duration::from_secs(300),
            concurrency: 8,
        }
    }
}

/// The adapters ingest writes through.
#[derive(Clone)]
pub struct Ports {
    /// Raw readings.
    pub readings: Arc<dyn ReadingStore>,
    /// The meter registry.
    pub registry: Arc<dyn MeterRegistry>,
    /// Quarantine.
    pub quarantine: Arc<dyn QuarantineStore>,
    /// Aggregates.
    pub aggregates: Arc<dyn AggregateStore>,
    /// Instant events.
    pub events: Arc<dyn EventStore>,
}

/// One inbound message: its bytes and what the transport knows.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The MQTT payload, or the IoT rule's JSON output.
    pub payload: &'a [u8],
    /// Topic and receive time.
    pub ctx: MessageContext<'a>,
}

/// What one call did. Every reading offered is counted exactly once in `stored`, `duplicates` or
/// `quarantined` (a message that could not be parsed counts once, as one quarantined item).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Newly stored readings.
    pub stored: u64,
    /// Readings already stored (same meter and timestamp, or same seq).
    pub duplicates: u64,
    /// Quarantined readings or messages.
    pub quarantined: u64,
    /// Quarantined, by reason name.
    pub quarantined_by_reason: BTreeMap<String, u64>,
    /// Instant events raised (including re-raised ones, which stores ignore).
    pub events: u64,
}

impl IngestReport {
    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: &IngestReport) {
        self.stored += other.stored;
        self.duplicates += other.duplicates;
        self.quarantined += other.quarantined;
        self.events += other.events;
        for (k, v) in &other.quarantined_by_reason {
            *self.quarantined_by_reason.entry(k.clone()).or_default() += v;
        }
    }
}

/// Why ingest failed as a whole. Input problems never end up here (they are quarantined); only
/// storage failures do, and the caller should let the platform retry.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A store call failed.
    #[error("ingest could not reach its store")]
    Store(#[from] StoreError),
}

impl IngestError {
    /// Whether a retry of the whole call may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
        }
    }
}

/// The ingest service. Build once (at cold start) and share.
pub struct Ingestor {
    ports: Ports,
    config: IngestConfig,
    cache: Mutex<HashMap<MeterId, (Arc<MeterInfo>, Instant)>>,
    /// Where aggregates to recompute are marked instead of recomputed at once, if anywhere.
    pending: Option<Arc<dyn PendingAggregates>>,
}

/// What one [`Ingestor::refresh_pending`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingPass {
    /// Marks taken up: recomputed and cleared, or kept after an error retrying cannot fix.
    pub meters: usize,
    /// Of those, the marks kept (their meters' aggregates could not be recomputed).
    pub kept: usize,
    /// The last meter taken up, where the next call continues (`None`: none were pending).
    pub last: Option<MeterId>,
}

impl Ingestor {
    /// Builds the service.
    pub fn new(ports: Ports, config: IngestConfig) -> Self {
        Self {
            ports,
            config,
            cache: Mutex::new(HashMap::new()),
            pending: None,
        }
    }

    /// The same service, but ingest calls only mark the hours whose aggregates their readings
    /// change, and [`Ingestor::refresh_pending`] recomputes them later, several readings of a
    /// meter at once. For a store where the aggregate writes are most of an ingest call's cost
    /// and one writer does everything (the local stack's SQLite file): a meter publishing every
    /// few seconds then has its hour, day and month rows written once per pass, not once per
    /// reading. Readers see aggregates up to one pass late.
    pub fn with_pending_aggregates(mut self, pending: Arc<dyn PendingAggregates>) -> Self {
        self.pending = Some(pending);
        self
    }

    /// Recomputes the aggregates of up to `max` meters with pending marks after `after`, in
    /// meter order, and clears their marks. Call it inside one transaction with the store when
    /// it has them, so marks are only cleared together with the rows they asked for. Marks of
    /// a meter no longer in the registry are cleared with a warning (there is nothing to
    /// recompute it with). A meter whose recompute fails with an error retrying cannot fix (a
    /// corrupt row) keeps its mark, is logged, and does not hold up the meters after it; a
    /// retryable error (the store busy) fails the call. Without
    /// [`Ingestor::with_pending_aggregates`] nothing is pending.
    pub async fn refresh_pending(
        &self,
        after: Option<&MeterId>,
        max: usize,
    ) -> Result<PendingPass, IngestError> {
        let Some(pending) = &self.pending else {
            return Ok(PendingPass::default());
        };
        let marks = pending.next(after, max).await?;
        let mut done = Vec::with_capacity(marks.len());
        for (meter, range) in &marks {
            let recomputed = match self.meter_info(meter).await? {
                Some(info) => self.recompute_aggregates(&info, *range).await,
                None => {
                    tracing::warn!(meter_id = %meter, "aggregates pending for a meter not in the registry; mark dropped");
                    Ok(())
                }
            };
            match recomputed {
                Ok(()) => done.push(meter.clone()),
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => {
                    tracing::error!(meter_id = %meter, error = %e, "aggregates cannot be recomputed; the mark stays for the next pass");
                }
            }
        }
        if !done.is_empty() {
            pending.clear(&done).await?;
        }
        Ok(PendingPass {
            meters: marks.len(),
            kept: marks.len() - done.len(),
            last: marks.last().map(|(m, _)| m.clone()),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Ingests a batch of messages: [`Ingestor::parse`], then [`Ingestor::ingest_parsed`].
    pub async fn ingest(&self, messages: &[Inbound<'_>]) -> Result<IngestReport, IngestError> {
        self.ingest_parsed(&self.parse(messages)).await
    }

    /// Parses and validates a batch of messages into readings and quarantine entries, in
    /// order. Pure CPU work that touches no port, so a caller with a busy store (the local rule
    /// bridge) can do it on another thread while the previous batch is being stored.
    pub fn parse(&self, messages: &[Inbound<'_>]) -> Vec<ParsedItem> {
        let mut items = Vec::with_capacity(messages.len());
        for m in messages {
            parse_message_into(m.payload, m.ctx, &self.config.limits, &mut items);
        }
        items
    }

    /// Stores what [`Ingestor::parse`] gave: the readings of known meters, the quarantine
    /// entries with their reasons, the aggregates and instant events the readings change. The
    /// items are only read, so a failed call can be retried with the same slice.
    pub async fn ingest_parsed(&self, items: &[ParsedItem]) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::default();
        let mut quarantine: Vec<QuarantineEntry> = Vec::new();
        let mut by_meter: BTreeMap<MeterId, Vec<Reading>> = BTreeMap::new();
        for item in items {
            match item {
                Ok(r) => by_meter
                    .entry(r.meter_id.clone())
                    .or_default()
                    .push(r.clone()),
                Err(q) => quarantine.push(q.clone()),
            }
        }

        let mut accepted: Vec<(Arc<MeterInfo>, Vec<Reading>)> = Vec::with_capacity(by_meter.len());
        for (meter, readings) in by_meter {
            match self.meter_info(&meter).await? {
                Some(info) => accepted.push((info, readings)),
                None => quarantine.extend(readings.iter().map(|r| {
                    QuarantineEntry::for_reading(
                        r,
                        Rejection::new(
                            QuarantineReason::UnknownMeter,
                            format!("meter {meter} is not in the registry"),
                        ),
                    )
                })),
            }
        }

        let flat: Vec<Reading> = accepted
            .iter()
            .flat_map(|(_, rs)| rs.iter().cloned())
            .collect();
        let outcomes = if flat.is_empty() {
            Vec::new()
        } else {
            self.ports.readings.insert(&flat).await?
        };
        for o in &outcomes {
            match o {
                InsertOutcome::Stored => report.stored += 1,
                _ => report.duplicates += 1,
            }
        }
        // Duplicates by seq at another timestamp are not in the store: they must not drive a
        // refresh around a time they do not occupy.
        let mut outcome_iter = outcomes.into_iter();
        let work: Vec<(Arc<MeterInfo>, Vec<Reading>)> = accepted
            .into_iter()
            .map(|(info, rs)| {
                let kept = rs
                    .into_iter()
                    .filter(|_| outcome_iter.next() != Some(InsertOutcome::DuplicateSeq))
                    .collect();
                (info, kept)
            })
            .filter(|(_, rs): &(_, Vec<Reading>)| !rs.is_empty())
            .collect();

        if !quarantine.is_empty() {
            for q in &quarantine {
                tracing::warn!(meter_id = %q.meter_key, reason = %q.reason, detail = %q.detail, "reading quarantined");
                *report
                    .quarantined_by_reason
                    .entry(q.reason.as_str().to_owned())
                    .or_default() += 1;
            }
            report.quarantined = quarantine.len() as u64;
            self.ports.quarantine.put(&quarantine).await?;
        }

        let events: Vec<usize> = stream::iter(work.iter())
            .map(|(info, rs)| self.refresh(info, rs))
            .buffer_unordered(self.config.concurrency.max(1))
            .try_collect()
            .await?;
        report.events = events.into_iter().sum::<usize>() as u64;
        tracing::info!(
            stored = report.stored,
            duplicates = report.duplicates,
            quarantined = report.quarantined,
            events = report.events,
            "ingest batch done"
        );
        Ok(report)
    }

    /// The registry record, from the cache, the registry, or auto-registration.
    async fn meter_info(&self, meter: &MeterId) -> Result<Option<Arc<MeterInfo>>, StoreError> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((info, at)) = cache.get(meter) {
                if at.elapsed() < self.config.registry_cache_ttl {
                    return Ok(Some(info.clone()));
                }
            }
        }
        let found = match self.ports.registry.get(meter).await? {
            Some(info) => Some(info),
            None => match self.config.registry_mode {
                RegistryMode::Enforce => None,
                RegistryMode::AutoRegister => Some(
                    self.ports
                        .registry
                        .register_if_absent(&MeterInfo::new_consumer(
                            meter.clone(),
                            self.config.default_timezone,
                        ))
                        .await?,
                ),
            },
        };
        let found = found.map(Arc::new);
        if let (Some(info), Ok(mut cache)) = (&found, self.cache.lock()) {
            cache.insert(meter.clone(), (info.clone(), Instant::now()));
        }
        Ok(found)
    }

    /// Recomputes the aggregates a meter's batch can have changed (or, with pending aggregates,
    /// marks their hours for the next pass) and raises its instant events. Returns the number of
    /// events raised.
    async fn refresh(&self, info: &MeterInfo, batch: &[Reading]) -> Result<usize, StoreError> {
        let store = &self.ports.readings;
        let aggs = &self.ports.aggregates;
        let meter = &info.meter_id;
        let tz = &info.timezone;
        let (Some(lo), Some(hi)) = (
            batch.iter().map(|r| r.ts).min(),
            batch.iter().map(|r| r.ts).max(),
        ) else {
            return Ok(0);
        };
        let prev = store.before(meter, lo).await?.map(|r| r.ts);
        let next = store.after(meter, hi).await?.map(|r| r.ts);
        let range = HourRange::affected(tz, prev, lo, hi, next);

        // Versions are taken after this call's readings are stored and before reading them back,
        // so a higher version always saw at least what a lower one saw.
        let v_hour = match &self.pending {
            Some(_) => None,
            None => Some(aggs.next_version(meter).await?),
        };
        let from = range.load_from();
        let to = range.load_to();
        let mut loaded = store.range_with_previous(meter, from, to).await?;
        // With nothing stored after the batch (the usual in-order append) there is nothing
        // after `to` either: skip the query.
        if next.is_some() {
            if let Some(r) = store.after(meter, to).await? {
                loaded.push(r);
            }
        }
        if let Some(v_hour) = v_hour {
            self.put_hours(meter, tz, &loaded, range, v_hour).await?;
        }

        let mut events = Vec::new();
        for r in batch {
            let pos = loaded.partition_point(|x| x.ts < r.ts);
            let prev = pos.checked_sub(1).and_then(|i| loaded.get(i));
            // Check against what is stored, which wins over a duplicate in the batch.
            let stored = loaded.get(pos).filter(|x| x.ts == r.ts).unwrap_or(r);
            events.extend(
                self.config
                    .events
                    .detect(info, &self.config.registers, stored, prev),
            );
        }
        if !events.is_empty() {
            for e in &events {
                tracing::info!(meter_id = %meter, kind = %e.kind, ts = %e.ts, "instant event");
            }
            self.ports.events.publish(&events).await?;
        }
        match &self.pending {
            Some(pending) => pending.mark(meter, range).await?,
            None => self.roll_up_days_and_months(meter, tz, range).await?,
        }
        Ok(events.len())
    }

    /// Recomputes `info`'s hour rows over `range` from the stored readings, then the days and
    /// months they fall in: what an ingest call does inline, for a pending mark.
    async fn recompute_aggregates(
        &self,
        info: &MeterInfo,
        range: HourRange,
    ) -> Result<(), StoreError> {
        let store = &self.ports.readings;
        let meter = &info.meter_id;
        let tz = &info.timezone;
        // As in `refresh`: the version is taken before the readings are read back.
        let v_hour = self.ports.aggregates.next_version(meter).await?;
        let to = range.load_to();
        let mut loaded = store
            .range_with_previous(meter, range.load_from(), to)
            .await?;
        if let Some(r) = store.after(meter, to).await? {
            loaded.push(r);
        }
        self.put_hours(meter, tz, &loaded, range, v_hour).await?;
        self.roll_up_days_and_months(meter, tz, range).await
    }

    /// The hour rows of `range` from `loaded` (the readings in it, the one before and the one
    /// after).
    async fn put_hours(
        &self,
        meter: &MeterId,
        tz: &Tz,
        loaded: &[Reading],
        range: HourRange,
        version: u64,
    ) -> Result<(), StoreError> {
        let points: Vec<(Timestamp, crate::types::Energy)> =
            loaded.iter().map(|r| (r.ts, r.energy_import)).collect();
        self.ports
            .aggregates
            .put(&hourly(
                meter,
                tz,
                &self.config.registers,
                &points,
                range,
                version,
            ))
            .await
    }

    /// The day rows of the dates `range` touches, from their hours, and the month rows of those
    /// days.
    async fn roll_up_days_and_months(
        &self,
        meter: &MeterId,
        tz: &Tz,
        range: HourRange,
    ) -> Result<(), StoreError> {
        let aggs = &self.ports.aggregates;
        let dates = range.dates(tz);
        let v_day = aggs.next_version(meter).await?;
        let mut days = Vec::with_capacity(dates.len());
        for d in &dates {
            let (a, b) = hours_of_day(tz, *d);
            days.push(aggs.roll_up(meter, Period::Day(*d), a, b, v_day).await?);
        }
        aggs.put(&days).await?;

        let mut months: Vec<Period> = dates.iter().map(|d| Period::month_of(*d)).collect();
        months.dedup();
        let v_month = aggs.next_version(meter).await?;
        let mut rolled = Vec::with_capacity(months.len());
        for m in months {
            if let Period::Month(first) = m {
                let (a, b) = days_of_month(first);
                rolled.push(aggs.roll_up(meter, m, a, b, v_month).await?);
            }
        }
        aggs.put(&rolled).await
    }
}

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration {name}={value:?} is invalid: {expected}")]
pub struct ConfigError {
    /// The variable.
    pub name: String,
    /// Its value.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl IngestConfig {
    /// Builds the configuration from named settings (environment variables in Lambda, flags
    /// locally); missing names keep their defaults. Recognised names: `REGISTRY_MODE`
    /// (`enforce` | `auto_register`), `DEFAULT_TIMEZONE`, `NOMINAL_VOLTAGE_V`,
    /// `VOLTAGE_TOLERANCE_PCT`, `REGISTER_MAX_KWH`, `MAX_POWER_W`, `MAX_VOLTAGE_V`,
    /// `MAX_CURRENT_A`, `CLOCK_SKEW_TOLERANCE_S`, `READING_RETENTION_DAYS`,
    /// `GAP_THRESHOLD_MINUTES`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn num(
            lookup: &impl Fn(&str) -> Option<String>,
            name: &str,
            min: f64,
        ) -> Result<Option<f64>, ConfigError> {
            match lookup(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= min => Ok(Some(x)),
                    _ => Err(ConfigError {
                        name: name.into(),
                        value: v,
                        expected: "a finite number in range",
                    }),
                },
            }
        }
        let mut c = IngestConfig::default();
        if let Some(v) = lookup("REGISTRY_MODE") {
            c.registry_mode = match v.trim() {
                "enforce" => RegistryMode::Enforce,
                "auto_register" | "auto" => RegistryMode::AutoRegister,
                _ => {
                    return Err(ConfigError {
                        name: "REGISTRY_MODE".into(),
                        value: v,
                        expected: "enforce or auto_register",
                    })
                }
            };
        }
        if let Some(v) = lookup("DEFAULT_TIMEZONE") {
            c.default_timezone = v.trim().parse().map_err(|_| ConfigError {
                name: "DEFAULT_TIMEZONE".into(),
                value: v.clone(),
                expected: "an IANA time zone such as Australia/Sydney",
            })?;
        }
        if let Some(x) = num(&lookup, "NOMINAL_VOLTAGE_V", 1.0)? {
            c.events.nominal_voltage_v = x;
        }
        if let Some(x) = num(&lookup, "VOLTAGE_TOLERANCE_PCT", 0.0)? {
            c.events.voltage_tolerance = x / 100.0;
        }
        if let Some(x) = num(&lookup, "REGISTER_MAX_KWH", 1.0)? {
            c.limits.register_max_kwh = x;
            c.registers.register_max = c.limits.register_max();
        }
        if let Some(x) = num(&lookup, "MAX_POWER_W", 0.0)? {
            c.limits.max_power_w = x;
        }
        if let Some(x) = num(&lookup, "MAX_VOLTAGE_V", 0.0)? {
            c.limits.max_voltage_v = x;
        }
        if let Some(x) = num(&lookup, "MAX_CURRENT_A", 0.0)? {
            c.limits.max_current_a = x;
        }
        if let Some(x) = num(&lookup, "CLOCK_SKEW_TOLERANCE_S", 0.0)? {
            c.limits.clock_skew_tolerance_ms = (x * 1000.0) as i64;
        }
        if let Some(x) = num(&lookup, "READING_RETENTION_DAYS", 1.0)? {
            c.limits.retention_ms = (x * crate::types::DAY_MS as f64) as i64;
        }
        if let Some(x) = num(&lookup, "GAP_THRESHOLD_MINUTES", 1.0)? {
            c.registers.gap_threshold_ms = (x * 60_000.0) as i64;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn settings_override_defaults() {
        let c = IngestConfig::from_lookup(lookup(&[
            ("REGISTRY_MODE", "auto_register"),
            ("DEFAULT_TIMEZONE", "Australia/Sydney"),
            ("NOMINAL_VOLTAGE_V", "240"),
            ("CLOCK_SKEW_TOLERANCE_S", "60"),
        ]))
        .unwrap();
        assert_eq!(c.registry_mode, RegistryMode::AutoRegister);
        assert_eq!(c.default_timezone.name(), "Australia/Sydney");
        assert_eq!(c.events.nominal_voltage_v, 240.0);
        assert_eq!(c.limits.clock_skew_tolerance_ms, 60_000);
    }

    #[test]
    fn a_bad_setting_is_named_in_the_error() {
        let err = IngestConfig::from_lookup(lookup(&[("MAX_POWER_W", "lots")])).unwrap_err();
        assert!(err.to_string().contains("MAX_POWER_W"), "{err}");
        assert!(IngestConfig::from_lookup(lookup(&[("REGISTRY_MODE", "maybe")])).is_err());
        assert!(IngestConfig::from_lookup(lookup(&[("DEFAULT_TIMEZONE", "Mars/Base")])).is_err());
    }
}
