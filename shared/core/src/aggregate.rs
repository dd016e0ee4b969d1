//! Hourly, daily and monthly energy per meter, computed from the stored readings alone.
//!
//! An aggregate is a pure function of the set of readings, so it is the same whatever order the
//! readings arrived in and however often each was delivered. Ingest recomputes the buckets a batch
//! touched and overwrites them; each write carries a version from a per-meter counter and only
//! replaces an older version, so concurrent or retried invocations converge on the newest view
//! (see `docs/data-model.md`, "Aggregate versions").

use std::collections::BTreeMap;
use std::fmt;

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;

use crate::energy::{
    apportion, first_of_next_month, hour_bucket_of, interval_between, local_date_of_hour,
    local_hour_floor, local_midnight, IntervalKind, RegisterPolicy,
};
use crate::types::{Energy, MeterId, Timestamp, HOUR_MS};

/// Bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    /// One local hour.
    Hour,
    /// One local calendar day.
    Day,
    /// One local calendar month.
    Month,
}

impl Granularity {
    /// The one-letter key prefix used in storage (`H`, `D`, `M`).
    pub fn prefix(self) -> char {
        match self {
            Self::Hour => 'H',
            Self::Day => 'D',
            Self::Month => 'M',
        }
    }

    /// Parses `hour`, `day` or `month`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" | "hourly" => Some(Self::Hour),
            "day" | "daily" => Some(Self::Day),
            "month" | "monthly" => Some(Self::Month),
            _ => None,
        }
    }
}

/// One bucket: a local hour (by its UTC start), a local date, or a local month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// The local hour `(start, start + 1 h]`.
    Hour(Timestamp),
    /// A local calendar day.
    Day(NaiveDate),
    /// A local calendar month, by its first day.
    Month(NaiveDate),
}

impl Period {
    /// The bucket size.
    pub fn granularity(&self) -> Granularity {
        match self {
            Self::Hour(_) => Granularity::Hour,
            Self::Day(_) => Granularity::Day,
            Self::Month(_) => Granularity::Month,
        }
    }

    /// A sortable storage key: `H#<start ms, 15 digits>`, `D#2026-11-22`, `M#2026-11`. Keys of one
    /// granularity sort in time order.
    pub fn key(&self) -> String {
        match self {
            Self::Hour(t) => format!("H#{:015}", t.millis()),
            // Plain integer formatting: chrono's `format` parses its pattern on every call, and
            // ingest builds these keys for every meter of every batch.
            Self::Day(d) => format!("D#{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
            Self::Month(d) => format!("M#{:04}-{:02}", d.year(), d.month()),
        }
    }

    /// Parses a storage key.
    pub fn parse_key(key: &str) -> Option<Self> {
        let (prefix, rest) = key.split_once('#')?;
        match prefix {
            "H" => rest
                .parse()
                .ok()
                .map(|ms| Self::Hour(Timestamp::from_millis(ms))),
            "D" => NaiveDate::parse_from_str(rest, "%Y-%m-%d")
                .ok()
                .map(Self::Day),
            "M" => NaiveDate::parse_from_str(&format!("{rest}-01"), "%Y-%m-%d")
                .ok()
                .map(Self::Month),
            _ => None,
        }
    }

    /// The month a date falls in.
    pub fn month_of(date: NaiveDate) -> Self {
        Self::Month(date.with_day(1).unwrap_or(date))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hour(t) => write!(f, "{t}"),
            Self::Day(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Self::Month(d) => write!(f, "{}", d.format("%Y-%m")),
        }
    }
}

/// Energy of one meter in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The meter.
    pub meter_id: MeterId,
    /// The bucket.
    pub period: Period,
    /// Energy measured by consecutive readings (including across register rollovers).
    pub measured: Energy,
    /// Energy estimated across gaps by linear interpolation; never mixed into `measured`.
    pub estimated: Energy,
    /// Readings whose timestamp falls in the bucket.
    pub readings: u32,
    /// Register resets (meter replaced or cleared) closing an interval in the bucket.
    pub resets: u32,
    /// The recompute that wrote it; a write only replaces a lower version.
    pub version: u64,
}

impl Aggregate {
    /// An empty bucket.
    pub fn empty(meter_id: MeterId, period: Period, version: u64) -> Self {
        Self {
            meter_id,
            period,
            measured: Energy::ZERO,
            estimated: Energy::ZERO,
            readings: 0,
            resets: 0,
            version,
        }
    }

    /// Measured plus estimated energy.
    pub fn total(&self) -> Energy {
        Energy::from_mwh(self.measured.mwh() + self.estimated.mwh())
    }

    /// Whether the two describe the same energy (ignoring which recompute wrote them).
    pub fn same_content(&self, other: &Aggregate) -> bool {
        Aggregate {
            version: 0,
            ..self.clone()
        } == Aggregate {
            version: 0,
            ..other.clone()
        }
    }
}

/// An inclusive range of hour buckets, by their UTC starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourRange {
    /// First bucket start.
    pub first: Timestamp,
    /// Last bucket start.
    pub last: Timestamp,
}

impl HourRange {
    /// The hour buckets whose energy can change when readings at `lo..=hi` are added between the
    /// existing neighbours `prev` (latest before `lo`) and `next` (earliest after `hi`).
    pub fn affected(
        tz: &Tz,
        prev: Option<Timestamp>,
        lo: Timestamp,
        hi: Timestamp,
        next: Option<Timestamp>,
    ) -> Self {
        let first = match prev {
            Some(p) => local_hour_floor(tz, p),
            None => hour_bucket_of(tz, lo),
        };
        Self {
            first,
            last: hour_bucket_of(tz, next.unwrap_or(hi).max(hi)),
        }
    }

    /// The smallest range holding both (recomputing the hours between is harmless).
    pub fn union(self, other: Self) -> Self {
        Self {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
        }
    }

    /// The instant after which readings are needed: readings in `(load_from, load_to]` plus the
    /// last one at or before `load_from` and the first one after `load_to`.
    pub fn load_from(&self) -> Timestamp {
        self.first
    }

    /// The end of the last bucket.
    pub fn load_to(&self) -> Timestamp {
        self.last.add_millis(HOUR_MS)
    }

    /// Every bucket start in the range.
    pub fn starts(&self, tz: &Tz) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = self.first;
        while t <= self.last {
            out.push(t);
            // Step a little over an hour and realign, which stays correct across DST shifts.
            let next = local_hour_floor(tz, t.add_millis(HOUR_MS + HOUR_MS / 4));
            t = if next > t {
                next
            } else {
                t.add_millis(HOUR_MS)
            };
        }
        out
    }

    /// The local dates the range's buckets fall on.
    pub fn dates(&self, tz: &Tz) -> Vec<NaiveDate> {
        let mut out: Vec<NaiveDate> = self
            .starts(tz)
            .into_iter()
            .map(|h| local_date_of_hour(tz, h))
            .collect();
        out.dedup();
        out
    }
}

/// Computes the hourly aggregates for every bucket in `range` from readings sorted by time, which
/// must include the last reading at or before `range.load_from()` and the first after
/// `range.load_to()` if they exist. Buckets with no data come back empty, so a recompute also
/// clears energy that a newly arrived reading moved elsewhere.
pub fn hourly(
    meter_id: &MeterId,
    tz: &Tz,
    policy: &RegisterPolicy,
    readings: &[(Timestamp, Energy)],
    range: HourRange,
    version: u64,
) -> Vec<Aggregate> {
    let mut buckets: BTreeMap<Timestamp, Aggregate> = range
        .starts(tz)
        .into_iter()
        .map(|h| {
            (
                h,
                Aggregate::empty(meter_id.clone(), Period::Hour(h), version),
            )
        })
        .collect();
    for &(ts, _) in readings {
        if let Some(b) = buckets.get_mut(&hour_bucket_of(tz, ts)) {
            b.readings += 1;
        }
    }
    for pair in readings.windows(2) {
        let interval = interval_between(pair[0], pair[1], policy);
        if interval.kind == IntervalKind::Reset {
            if let Some(b) = buckets.get_mut(&hour_bucket_of(tz, interval.end)) {
                b.resets += 1;
            }
            continue;
        }
        if interval.end <= range.load_from() || interval.start >= range.load_to() {
            continue;
        }
        let estimated = interval.kind == IntervalKind::Estimated;
        apportion(tz, &interval, |bucket, energy| {
            if let Some(b) = buckets.get_mut(&bucket) {
                let slot = if estimated {
                    &mut b.estimated
                } else {
                    &mut b.measured
                };
                *slot = Energy::from_mwh(slot.mwh() + energy.mwh());
            }
        });
    }
    buckets.into_values().collect()
}

/// Sums child aggregates (hours of a day, or days of a month) into the parent bucket.
pub fn roll_up(
    meter_id: &MeterId,
    period: Period,
    children: &[Aggregate],
    version: u64,
) -> Aggregate {
    children.iter().fold(
        Aggregate::empty(meter_id.clone(), period, version),
        |mut acc, c| {
            acc.measured = Energy::from_mwh(acc.measured.mwh() + c.measured.mwh());
            acc.estimated = Energy::from_mwh(acc.estimated.mwh() + c.estimated.mwh());
            acc.readings += c.readings;
            acc.resets += c.resets;
            acc
        },
    )
}

/// The hour-bucket key range of a local day: first and last bucket starts.
pub fn hours_of_day(tz: &Tz, date: NaiveDate) -> (Period, Period) {
    let start = local_midnight(tz, date);
    let next = local_midnight(tz, date.succ_opt().unwrap_or(date));
    (
        Period::Hour(start),
        Period::Hour(next.add_millis(-HOUR_MS).max(start)),
    )
}

/// The day key range of a month: first and last day.
pub fn days_of_month(month_start: NaiveDate) -> (Period, Period) {
    let next = first_of_next_month(month_start);
    (
        Period::Day(month_start),
        Period::Day(next.pred_opt().unwrap_or(month_start)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn meter() -> MeterId {
        MeterId::parse("m1").unwrap()
    }

    fn kwh(v: f64) -> Energy {
        Energy::from_kwh(v).unwrap()
    }

    /// The UTC hourly aggregates from hour `first` to hour `last`.
    fn utc_hours(readings: &[(Timestamp, Energy)], first: &str, last: &str) -> Vec<Aggregate> {
        let range = HourRange {
            first: ts(first),
            last: ts(last),
        };
        hourly(
            &meter(),
            &Tz::UTC,
            &RegisterPolicy::default(),
            readings,
            range,
            1,
        )
    }

    #[test]
    fn period_keys_round_trip_and_sort_in_time_order() {
        let a = Period::Hour(ts("2026-01-01T09:00:00Z"));
        let b = Period::Hour(ts("2026-01-01T10:00:00Z"));
        assert!(a.key() < b.key());
        for p in [
            a,
            Period::Day(NaiveDate::from_ymd_opt(2026, 2, 3).unwrap()),
            Period::month_of(NaiveDate::from_ymd_opt(2026, 2, 3).unwrap()),
        ] {
            assert_eq!(Period::parse_key(&p.key()), Some(p));
        }
        assert_eq!(
            Period::month_of(NaiveDate::from_ymd_opt(2026, 2, 3).unwrap()).key(),
            "M#2026-02"
        );
    }

    #[test]
    fn quarter_hour_readings_fill_their_hours() {
        let readings: Vec<_> = (0..=8)
            .map(|i| {
                (
                    ts("2026-01-01T00:00:00Z").add_millis(i * 15 * 60_000),
                    kwh(100.0 + i as f64 * 0.25),
                )
            })
            .collect();
        let hours = utc_hours(&readings, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z");
        assert_eq!(hours.len(), 2);
        assert_eq!(hours[0].measured, kwh(1.0));
        assert_eq!(hours[1].measured, kwh(1.0));
        assert_eq!(hours[0].readings, 4);
        assert_eq!(hours[0].estimated, Energy::ZERO);
    }

    #[test]
    fn a_gap_is_estimated_and_kept_apart_from_measured_energy() {
        let readings = vec![
            (ts("2026-01-01T00:45:00Z"), kwh(10.0)),
            (ts("2026-01-01T01:00:00Z"), kwh(10.5)),
            (ts("2026-01-01T04:00:00Z"), kwh(13.5)),
        ];
        let hours = utc_hours(&readings, "2026-01-01T00:00:00Z", "2026-01-01T03:00:00Z");
        assert_eq!(hours[0].measured, kwh(0.5));
        for h in &hours[1..] {
            assert_eq!((h.measured, h.estimated), (Energy::ZERO, kwh(1.0)));
        }
    }

    #[test]
    fn a_reset_counts_but_bills_nothing() {
        let readings = vec![
            (ts("2026-01-01T00:15:00Z"), kwh(5000.0)),
            (ts("2026-01-01T00:30:00Z"), kwh(0.1)),
        ];
        let hours = utc_hours(&readings, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        assert_eq!((hours[0].total(), hours[0].resets), (Energy::ZERO, 1));
    }

    #[test]
    fn affected_range_runs_from_the_previous_to_the_next_reading() {
        let r = HourRange::affected(
            &Tz::UTC,
            Some(ts("2026-01-01T00:45:00Z")),
            ts("2026-01-01T02:10:00Z"),
            ts("2026-01-01T02:20:00Z"),
            Some(ts("2026-01-01T03:00:00Z")),
        );
        assert_eq!(
            (r.first, r.last),
            (ts("2026-01-01T00:00:00Z"), ts("2026-01-01T02:00:00Z"))
        );
        assert_eq!(r.starts(&Tz::UTC).len(), 3);
    }

    #[test]
    fn a_dst_day_has_23_hour_buckets() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let (Period::Hour(a), Period::Hour(b)) =
            hours_of_day(&tz, NaiveDate::from_ymd_opt(2026, 3, 29).unwrap())
        else {
            panic!()
        };
        assert_eq!(HourRange { first: a, last: b }.starts(&tz).len(), 23);
    }

    #[test]
    fn roll_up_sums_children() {
        let mut a = Aggregate::empty(meter(), Period::Hour(ts("2026-01-01T00:00:00Z")), 1);
        a.measured = kwh(1.0);
        a.readings = 4;
        let mut b = a.clone();
        b.estimated = kwh(2.0);
        let d = roll_up(
            &meter(),
            Period::Day(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()),
            &[a, b],
            7,
        );
        assert_eq!(
            (d.measured, d.estimated, d.readings, d.version),
            (kwh(2.0), kwh(2.0), 8, 7)
        );
    }
}
