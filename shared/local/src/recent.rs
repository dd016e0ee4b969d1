//! What the SQLite store remembers of each meter's newest rows, so the rule bridge's per-meter
//! lookups (the neighbours of a batch, the readings of its hours, the day and month roll-ups)
//! are answered without a statement.
//!
//! Measured in `bench pipeline` at 20,000 readings/s, those lookups were a third of the rule
//! bridge's time, and the bridge runs near saturation there, where every saved microsecond per
//! reading shortens the queue (and the p99 latency) several times over.
//!
//! These are plain in-memory copies of committed rows. The store only answers from them inside
//! the write transaction of [`crate::SqliteDb::begin`], after checking that no other connection
//! has committed since they were taken; it keeps them in step with its own writes, and forgets
//! them all on a rollback. Moving rows from the hot tables to the main ones changes no logical
//! row, so it leaves them alone.

use std::collections::{BTreeMap, HashMap};

use meter_core::aggregate::{Aggregate, Period};
use meter_core::{Energy, MeterId, Reading, Timestamp};

/// How many of a meter's newest readings are kept: three hours at 15-minute reads, an hour at
/// 5-minute reads, enough for the hour (and the reading before it) that an in-order reading
/// changes. Meters read more often than that are answered by SQL, as before.
pub(crate) const TAIL_READINGS: usize = 12;

/// How many key ranges of aggregates are kept per meter before its copy is dropped: the day
/// and month being filled, and the ones before them.
const AGGREGATE_RANGES: usize = 4;

/// At most this many meters have copies (about 5 KiB each), so a huge fleet does not grow the
/// process without bound; the meters beyond it are answered by SQL, as before.
const MAX_METERS: usize = 50_000;

/// A meter's newest stored readings, in time order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tail {
    /// Every stored reading of the meter at or after this time is in `readings`; `None`: every
    /// stored reading at all.
    complete_from: Option<Timestamp>,
    readings: Vec<Reading>,
}

impl Tail {
    /// The tail from a meter's newest readings in each table, each list newest first and cut
    /// at [`TAIL_READINGS`] (the newest of the union are among them).
    pub(crate) fn from_newest(main: Vec<Reading>, hot: Vec<Reading>) -> Self {
        let mut readings: Vec<Reading> = main.into_iter().chain(hot).collect();
        readings.sort_by_key(|r| r.ts);
        readings.dedup_by_key(|r| r.ts);
        let complete_from = if readings.len() >= TAIL_READINGS {
            readings.drain(..readings.len() - TAIL_READINGS);
            readings.first().map(|r| r.ts)
        } else {
            None
        };
        Self {
            complete_from,
            readings,
        }
    }

    /// The latest reading before `ts`, when the tail knows it.
    pub(crate) fn before(&self, ts: Timestamp) -> Option<Option<Reading>> {
        let i = self.readings.partition_point(|r| r.ts < ts);
        match i.checked_sub(1) {
            Some(i) => Some(self.readings.get(i).cloned()),
            None => self.complete_from.is_none().then_some(None),
        }
    }

    /// The earliest reading after `ts`, when the tail knows it.
    pub(crate) fn after(&self, ts: Timestamp) -> Option<Option<Reading>> {
        if self.complete_from.is_some_and(|c| ts < c) {
            return None;
        }
        Some(self.readings.iter().find(|r| r.ts > ts).cloned())
    }

    /// The readings in `(from, to]` and the last one at or before `from`, when the tail knows
    /// them all.
    pub(crate) fn with_previous(&self, from: Timestamp, to: Timestamp) -> Option<Vec<Reading>> {
        let i = self.readings.partition_point(|r| r.ts <= from);
        if i == 0 && self.complete_from.is_some() {
            return None;
        }
        let end = self.readings.partition_point(|r| r.ts <= to);
        Some(
            self.readings
                .get(i.saturating_sub(1)..end.max(i.saturating_sub(1)))
                .map(<[Reading]>::to_vec)
                .unwrap_or_default(),
        )
    }

    /// Takes in a reading this connection has just stored.
    pub(crate) fn add(&mut self, r: &Reading) {
        if self.complete_from.is_some_and(|c| r.ts < c) {
            // Older than the tail: the tail still holds everything from `complete_from` on.
            return;
        }
        let i = self.readings.partition_point(|x| x.ts < r.ts);
        if self.readings.get(i).is_some_and(|x| x.ts == r.ts) {
            return;
        }
        self.readings.insert(i, r.clone());
        if self.readings.len() > TAIL_READINGS {
            self.readings.remove(0);
            self.complete_from = self.readings.first().map(|r| r.ts);
        }
    }
}

/// A meter's aggregates over the key ranges it has been asked to roll up.
#[derive(Debug, Default)]
pub(crate) struct AggregateTail {
    /// Key ranges (inclusive) whose every stored row is in `rows`.
    ranges: Vec<(Period, Period)>,
    rows: BTreeMap<Period, Sums>,
}

/// The parts of a stored aggregate a roll-up needs (not its meter, which the map is keyed by:
/// a fleet's copies are tens of megabytes, and an `Aggregate` carries its meter id).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sums {
    measured: i64,
    estimated: i64,
    readings: u32,
    resets: u32,
    version: u64,
}

impl From<&Aggregate> for Sums {
    fn from(a: &Aggregate) -> Self {
        Self {
            measured: a.measured.mwh(),
            estimated: a.estimated.mwh(),
            readings: a.readings,
            resets: a.resets,
            version: a.version,
        }
    }
}

impl AggregateTail {
    fn covers(&self, key: Period) -> bool {
        self.ranges.iter().any(|(a, b)| *a <= key && key <= *b)
    }

    /// `parent` summed from the stored rows with periods `from..=to` (as
    /// [`meter_core::aggregate::roll_up`] sums them), when the tail holds them all.
    pub(crate) fn roll_up(
        &self,
        from: Period,
        to: Period,
        mut parent: Aggregate,
    ) -> Option<Aggregate> {
        if !self.ranges.iter().any(|(a, b)| *a <= from && to <= *b) {
            return None;
        }
        for c in self.rows.range(from..=to).map(|(_, c)| c) {
            parent.measured = Energy::from_mwh(parent.measured.mwh() + c.measured);
            parent.estimated = Energy::from_mwh(parent.estimated.mwh() + c.estimated);
            parent.readings += c.readings;
            parent.resets += c.resets;
        }
        Some(parent)
    }

    /// Takes in every stored row with keys in `from..=to`, as just read.
    pub(crate) fn fill(&mut self, from: Period, to: Period, rows: &[Aggregate]) {
        if self.ranges.len() >= AGGREGATE_RANGES {
            self.ranges.clear();
            self.rows.clear();
        }
        let stale: Vec<Period> = self.rows.range(from..=to).map(|(k, _)| *k).collect();
        for k in stale {
            self.rows.remove(&k);
        }
        for a in rows {
            self.rows.insert(a.period, Sums::from(a));
        }
        self.ranges.push((from, to));
    }

    /// Takes in an aggregate this connection has just put, by the store's rule: it replaces
    /// the stored row unless that has an equal or higher version.
    pub(crate) fn put(&mut self, a: &Aggregate) {
        if !self.covers(a.period) {
            return;
        }
        if self
            .rows
            .get(&a.period)
            .is_some_and(|cur| cur.version >= a.version)
        {
            return;
        }
        self.rows.insert(a.period, Sums::from(a));
    }
}

/// The copies for every meter.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    pub(crate) tails: HashMap<MeterId, Tail>,
    pub(crate) aggregates: HashMap<MeterId, AggregateTail>,
}

impl Recent {
    /// Forgets everything (another connection committed, or a transaction rolled back).
    pub(crate) fn clear(&mut self) {
        self.tails.clear();
        self.aggregates.clear();
    }

    /// Whether another meter's readings can be copied.
    pub(crate) fn room_for_tail(&self) -> bool {
        self.tails.len() < MAX_METERS
    }

    /// A meter's aggregate copy, if it has one or there is room for one.
    pub(crate) fn aggregates_of(&mut self, meter: &MeterId) -> Option<&mut AggregateTail> {
        if self.aggregates.len() >= MAX_METERS && !self.aggregates.contains_key(meter) {
            return None;
        }
        Some(self.aggregates.entry(meter.clone()).or_default())
    }

    /// Takes in readings this connection has just stored.
    pub(crate) fn stored(&mut self, readings: &[&Reading]) {
        for r in readings {
            if let Some(t) = self.tails.get_mut(&r.meter_id) {
                t.add(r);
            }
        }
    }

    /// Takes in aggregates this connection has just put.
    pub(crate) fn put(&mut self, aggregates: &[Aggregate]) {
        for a in aggregates {
            if let Some(t) = self.aggregates.get_mut(&a.meter_id) {
                t.put(a);
            }
        }
    }
}

/// Whether a roll-up over `from..=to` can be answered from the copies: within one granularity,
/// and (for hours) where the order of periods is the order of their storage keys, which SQL
/// compares, that is from 1970 on.
pub(crate) fn can_roll_up(from: Period, to: Period) -> bool {
    from.granularity() == to.granularity()
        && [from, to]
            .iter()
            .all(|p| !matches!(p, Period::Hour(t) if t.millis() < 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(ts: i64) -> Reading {
        Reading::register_only(
            MeterId::parse("m1").expect("valid id"),
            Timestamp::from_millis(ts),
            Timestamp::from_millis(ts),
            Energy::from_mwh(ts),
        )
    }

    fn at(ts: &[i64]) -> Vec<Reading> {
        ts.iter().map(|t| reading(*t)).collect()
    }

    fn times(rs: &[Reading]) -> Vec<i64> {
        rs.iter().map(|r| r.ts.millis()).collect()
    }

    #[test]
    fn a_short_history_is_known_completely() {
        let t = Tail::from_newest(at(&[3, 1]), at(&[5]));
        assert_eq!(t.before(Timestamp::from_millis(1)), Some(None));
        assert_eq!(
            t.before(Timestamp::from_millis(4))
                .flatten()
                .map(|r| r.ts.millis()),
            Some(3)
        );
        assert_eq!(t.after(Timestamp::from_millis(5)), Some(None));
        assert_eq!(
            t.with_previous(Timestamp::from_millis(0), Timestamp::from_millis(3))
                .map(|v| times(&v)),
            Some(vec![1, 3])
        );
        assert_eq!(
            t.with_previous(Timestamp::from_millis(3), Timestamp::from_millis(9))
                .map(|v| times(&v)),
            Some(vec![3, 5])
        );
    }

    #[test]
    fn a_long_history_answers_only_from_its_oldest_kept_reading_on() {
        let n = TAIL_READINGS as i64;
        let hot: Vec<Reading> = (0..n + 4).rev().map(|i| reading(i * 10)).collect();
        let t = Tail::from_newest(Vec::new(), hot);
        let oldest = 40;
        assert_eq!(t.before(Timestamp::from_millis(oldest)), None);
        assert!(t.before(Timestamp::from_millis(oldest + 1)).is_some());
        assert_eq!(t.after(Timestamp::from_millis(oldest - 1)), None);
        assert!(t.after(Timestamp::from_millis(oldest)).is_some());
        assert_eq!(
            t.with_previous(
                Timestamp::from_millis(oldest - 1),
                Timestamp::from_millis(100)
            ),
            None
        );
        assert_eq!(
            t.with_previous(Timestamp::from_millis(oldest), Timestamp::from_millis(60))
                .map(|v| times(&v)),
            Some(vec![40, 50, 60])
        );
    }

    #[test]
    fn stored_readings_join_the_tail_and_push_the_oldest_out() {
        let mut t = Tail::from_newest(Vec::new(), at(&[10]));
        for i in 2..=(TAIL_READINGS as i64 + 1) {
            t.add(&reading(i * 10));
        }
        assert_eq!(t.readings.len(), TAIL_READINGS);
        assert_eq!(t.complete_from, Some(Timestamp::from_millis(20)));
        assert_eq!(t.before(Timestamp::from_millis(20)), None);
        // A late reading older than the tail changes nothing it answers.
        t.add(&reading(15));
        assert_eq!(t.readings.len(), TAIL_READINGS);
        // A late reading inside the tail is placed in order.
        t.add(&reading(25));
        assert_eq!(
            t.before(Timestamp::from_millis(30))
                .flatten()
                .map(|r| r.ts.millis()),
            Some(25)
        );
    }

    fn agg(key_hour: i64, measured: i64, version: u64) -> Aggregate {
        let mut a = Aggregate::empty(
            MeterId::parse("m1").expect("valid id"),
            Period::Hour(Timestamp::from_millis(key_hour * 3_600_000)),
            version,
        );
        a.measured = Energy::from_mwh(measured);
        a
    }

    #[test]
    fn aggregates_are_known_only_over_the_ranges_filled() {
        let mut t = AggregateTail::default();
        let (a, b) = (agg(0, 0, 0).period, agg(23, 0, 0).period);
        assert_eq!(t.roll_up(a, b, agg(0, 0, 5)), None);
        t.fill(a, b, &[agg(1, 5, 1), agg(2, 7, 1)]);
        assert_eq!(
            t.roll_up(a, b, agg(0, 0, 5))
                .map(|p| (p.measured.mwh(), p.version)),
            Some((12, 5))
        );
        let (c, d) = (agg(24, 0, 0).period, agg(47, 0, 0).period);
        assert_eq!(t.roll_up(c, d, agg(0, 0, 5)), None);
        // A put outside every filled range is not kept.
        t.put(&agg(30, 1, 9));
        assert!(t.rows.len() == 2);
    }

    #[test]
    fn a_put_replaces_a_known_row_only_with_a_higher_version() {
        let mut t = AggregateTail::default();
        let (a, b) = (agg(0, 0, 0).period, agg(23, 0, 0).period);
        t.fill(a, b, &[agg(1, 5, 10)]);
        t.put(&agg(1, 6, 10));
        t.put(&agg(1, 4, 9));
        t.put(&agg(2, 3, 1));
        let sum = |t: &AggregateTail| t.roll_up(a, b, agg(0, 0, 99)).map(|p| p.measured.mwh());
        assert_eq!(sum(&t), Some(5 + 3));
        t.put(&agg(1, 8, 11));
        assert_eq!(sum(&t), Some(8 + 3));
    }

    #[test]
    fn too_many_ranges_start_the_copy_afresh() {
        let mut t = AggregateTail::default();
        for day in 0..=AGGREGATE_RANGES as i64 {
            let (a, b) = (agg(day * 24, 0, 0).period, agg(day * 24 + 23, 0, 0).period);
            t.fill(a, b, &[agg(day * 24, 1, 1)]);
        }
        assert_eq!(t.ranges.len(), 1);
        assert_eq!(t.rows.len(), 1);
    }

    #[test]
    fn past_the_meter_limit_new_meters_get_no_copy_but_known_ones_keep_theirs() {
        let mut r = Recent::default();
        for i in 0..MAX_METERS {
            let id = MeterId::parse(&format!("m{i}")).expect("valid id");
            assert!(r.aggregates_of(&id).is_some());
            r.tails
                .insert(id, Tail::from_newest(Vec::new(), Vec::new()));
        }
        assert!(!r.room_for_tail());
        let newcomer = MeterId::parse("newcomer").expect("valid id");
        assert!(r.aggregates_of(&newcomer).is_none());
        assert!(r
            .aggregates_of(&MeterId::parse("m7").expect("valid id"))
            .is_some());
        r.clear();
        assert!(r.room_for_tail() && r.aggregates_of(&newcomer).is_some());
    }
}
