//! Interval energy from the cumulative register, and its exact attribution to local-hour buckets.
//!
//! Energy is derived from two consecutive register readings, never taken from the payload. A
//! decrease is a rollover when the register was near its maximum and restarted near zero;
//! otherwise it is a reset (meter replaced or cleared) and the interval carries no billable
//! energy. An interval longer than the gap threshold is a gap: its energy is spread linearly over
//! the hours it spans and marked estimated.
//!
//! Splitting uses cumulative integer floors (`floor(E·(t−t₀)/(t₁−t₀))` at each boundary), so the
//! parts always add up to exactly the interval's energy and the same input always gives the same
//! parts, whatever else is going on.

use chrono::{Datelike, NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;

use crate::types::{Energy, Timestamp, HOUR_MS};

/// How registers are read: where they wrap and what counts as a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterPolicy {
    /// The register's wrap-around point.
    pub register_max: Energy,
    /// A decrease is a rollover only if the previous value was within this fraction of the
    /// maximum and the new value within it of zero.
    pub rollover_margin: f64,
    /// Intervals longer than this are gaps, estimated by linear interpolation, ms.
    pub gap_threshold_ms: i64,
}

impl Default for RegisterPolicy {
    fn default() -> Self {
        Self {
            register_max: Energy::from_mwh(1_000_000 * 1_000_000),
            rollover_margin: 0.05,
            gap_threshold_ms: HOUR_MS,
        }
    }
}

/// What kind of energy an interval holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntervalKind {
    /// Measured by two consecutive readings.
    Measured,
    /// Measured across a register wrap-around.
    Rollover,
    /// A gap longer than the threshold: energy spread linearly, flagged estimated.
    Estimated,
    /// The register went down without wrapping: meter reset or replaced. No billable energy.
    Reset,
}

/// The energy between two consecutive readings of one meter: `(start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// The earlier reading's time (exclusive).
    pub start: Timestamp,
    /// The later reading's time (inclusive).
    pub end: Timestamp,
    /// Energy consumed in the interval (never negative).
    pub energy: Energy,
    /// Measured, rollover, estimated or reset.
    pub kind: IntervalKind,
}

/// Derives the interval between two readings of the same register, `prev.0 < cur.0`.
pub fn interval_between(
    prev: (Timestamp, Energy),
    cur: (Timestamp, Energy),
    policy: &RegisterPolicy,
) -> Interval {
    let (start, end) = (prev.0, cur.0);
    let delta = cur.1.mwh() - prev.1.mwh();
    let (energy, kind) = if delta >= 0 {
        let kind = if end.millis() - start.millis() > policy.gap_threshold_ms {
            IntervalKind::Estimated
        } else {
            IntervalKind::Measured
        };
        (delta, kind)
    } else {
        let max = policy.register_max.mwh();
        let margin = (max as f64 * policy.rollover_margin) as i64;
        if prev.1.mwh() >= max - margin && cur.1.mwh() <= margin {
            (max - prev.1.mwh() + cur.1.mwh(), IntervalKind::Rollover)
        } else {
            (0, IntervalKind::Reset)
        }
    };
    Interval {
        start,
        end,
        energy: Energy::from_mwh(energy),
        kind,
    }
}

/// The start (UTC) of the local hour containing `t`.
pub fn local_hour_floor(tz: &Tz, t: Timestamp) -> Timestamp {
    let offset_ms = offset_ms(tz, t);
    let local = t.millis() + offset_ms;
    Timestamp::from_millis(t.millis() - local.rem_euclid(HOUR_MS))
}

/// The hour bucket an instant's energy belongs to. Buckets are `(start, start + 1 h]`, matching
/// the meter convention that a timestamp ends the interval it measures: a reading at 11:00 closes
/// the 10:00–11:00 hour.
pub fn hour_bucket_of(tz: &Tz, t: Timestamp) -> Timestamp {
    local_hour_floor(tz, t.add_millis(-1))
}

/// The next local-hour boundary strictly after `t`.
fn next_hour_boundary(tz: &Tz, t: Timestamp) -> Timestamp {
    let candidate = local_hour_floor(tz, t).add_millis(HOUR_MS);
    // Across a half-hour DST shift the candidate is not a local hour start; realign it.
    let aligned = local_hour_floor(tz, candidate);
    if aligned > t {
        aligned
    } else {
        candidate
    }
}

fn offset_ms(tz: &Tz, t: Timestamp) -> i64 {
    let utc = t.to_datetime().naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()) * 1000
}

/// The local calendar date an hour bucket (given by its start) belongs to.
pub fn local_date_of_hour(tz: &Tz, hour_start: Timestamp) -> NaiveDate {
    tz.from_utc_datetime(&hour_start.to_datetime().naive_utc())
        .date_naive()
}

/// The UTC instant of local midnight starting `date` (the first instant of the day if midnight
/// does not exist because of a DST jump).
pub fn local_midnight(tz: &Tz, date: NaiveDate) -> Timestamp {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    let mut probe = naive;
    // Some zones skip midnight on DST day; step forward until a local time exists.
    for _ in 0..4 {
        if let Some(dt) = tz.from_local_datetime(&probe).earliest() {
            return Timestamp::from_millis(dt.timestamp_millis());
        }
        probe += chrono::Duration::minutes(30);
    }
    Timestamp::from_millis(naive.and_utc().timestamp_millis())
}

/// The first day of the month after `date`'s month.
pub fn first_of_next_month(date: NaiveDate) -> NaiveDate {
    let (y, m) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(date)
}

/// Splits an interval over the local-hour buckets it spans, calling `f(bucket_start, energy)` for
/// each, in time order. The parts add up to exactly `interval.energy`.
pub fn apportion(tz: &Tz, interval: &Interval, mut f: impl FnMut(Timestamp, Energy)) {
    let (t0, t1) = (interval.start.millis(), interval.end.millis());
    let total = i128::from(interval.energy.mwh());
    let span = i128::from(t1 - t0);
    if span <= 0 {
        return;
    }
    let cum = |t: i64| -> i64 {
        // 0 <= t - t0 <= span, so the quotient lies in 0..=total and fits an i64.
        i64::try_from(total * i128::from(t - t0) / span).unwrap_or(0)
    };
    let mut seg_start = interval.start;
    let mut done = 0i64;
    loop {
        let boundary = next_hour_boundary(tz, seg_start);
        let seg_end = if boundary < interval.end {
            boundary
        } else {
            interval.end
        };
        let upto = cum(seg_end.millis());
        f(hour_bucket_of(tz, seg_end), Energy::from_mwh(upto - done));
        done = upto;
        if seg_end >= interval.end {
            break;
        }
        seg_start = seg_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn e(kwh: f64) -> Energy {
        Energy::from_kwh(kwh).unwrap()
    }

    #[test]
    fn a_rising_register_is_measured_energy() {
        let i = interval_between(
            (ts("2026-01-01T00:00:00Z"), e(10.0)),
            (ts("2026-01-01T00:15:00Z"), e(10.25)),
            &RegisterPolicy::default(),
        );
        assert_eq!((i.energy, i.kind), (e(0.25), IntervalKind::Measured));
    }

    #[test]
    fn a_long_silence_is_estimated_not_measured() {
        let i = interval_between(
            (ts("2026-01-01T00:00:00Z"), e(10.0)),
            (ts("2026-01-01T03:00:00Z"), e(13.0)),
            &RegisterPolicy::default(),
        );
        assert_eq!((i.energy, i.kind), (e(3.0), IntervalKind::Estimated));
    }

    #[test]
    fn a_drop_from_near_the_maximum_is_a_rollover() {
        let p = RegisterPolicy {
            register_max: e(100_000.0),
            ..RegisterPolicy::default()
        };
        let i = interval_between(
            (ts("2026-01-01T00:00:00Z"), e(99_999.5)),
            (ts("2026-01-01T00:15:00Z"), e(0.25)),
            &p,
        );
        assert_eq!((i.energy, i.kind), (e(0.75), IntervalKind::Rollover));
    }

    #[test]
    fn any_other_drop_is_a_reset_with_no_energy() {
        let i = interval_between(
            (ts("2026-01-01T00:00:00Z"), e(5_000.0)),
            (ts("2026-01-01T00:15:00Z"), e(3.0)),
            &RegisterPolicy::default(),
        );
        assert_eq!((i.energy, i.kind), (Energy::ZERO, IntervalKind::Reset));
    }

    #[test]
    fn apportioned_parts_sum_exactly_and_follow_time() {
        let i = Interval {
            start: ts("2026-01-01T00:30:00Z"),
            end: ts("2026-01-01T03:00:00Z"),
            energy: Energy::from_mwh(1_000_001),
            kind: IntervalKind::Estimated,
        };
        let mut parts = Vec::new();
        apportion(&Tz::UTC, &i, |b, en| parts.push((b, en.mwh())));
        assert_eq!(
            parts,
            vec![
                (ts("2026-01-01T00:00:00Z"), 200_000),
                (ts("2026-01-01T01:00:00Z"), 400_000),
                (ts("2026-01-01T02:00:00Z"), 400_001),
            ]
        );
    }

    #[test]
    fn a_reading_on_the_hour_closes_the_previous_hour() {
        let i = Interval {
            start: ts("2026-01-01T00:45:00Z"),
            end: ts("2026-01-01T01:00:00Z"),
            energy: e(1.0),
            kind: IntervalKind::Measured,
        };
        let mut parts = Vec::new();
        apportion(&Tz::UTC, &i, |b, en| parts.push((b, en)));
        assert_eq!(parts, vec![(ts("2026-01-01T00:00:00Z"), e(1.0))]);
    }

    #[test]
    fn buckets_follow_local_hours_in_half_hour_zones() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        assert_eq!(
            local_hour_floor(&tz, ts("2026-01-01T00:40:00Z")),
            ts("2026-01-01T00:30:00Z")
        );
        assert_eq!(
            local_date_of_hour(&tz, ts("2025-12-31T18:30:00Z")).to_string(),
            "2026-01-01"
        );
        assert_eq!(
            local_midnight(&tz, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()),
            ts("2025-12-31T18:30:00Z")
        );
    }

    #[test]
    fn a_dst_day_has_the_right_midnight() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        assert_eq!(local_midnight(&tz, d), ts("2026-03-28T23:00:00Z"));
        assert_eq!(
            local_midnight(&tz, first_of_next_month(d)),
            ts("2026-03-31T22:00:00Z")
        );
    }
}
