//! A meter's interval energy cut into local days: the unit the theft and anomaly detectors
//! score. A day's slots are the intervals whose *end* falls on that local date (the date
//! `meterflow detect` reports), slot `k` ending `k` intervals after local midnight.

use chrono::{NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::series::MeterSeries;
use crate::types::MeterId;

const DAY_MS: i64 = 86_400_000;

/// One meter's days, in date order; a missing interval is NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterDays {
    /// The meter.
    pub meter_id: MeterId,
    /// Intervals per day (48 for half-hourly).
    pub slots: usize,
    /// The local date of each day, ascending; days without a single reading are absent.
    pub dates: Vec<NaiveDate>,
    /// `dates.len() × slots` kWh values, day after day.
    pub values: Vec<f64>,
}

impl MeterDays {
    /// Cuts a series into local days of `tz`. `None` when its interval is unknown or does not
    /// divide a day. Where a daylight-saving change repeats a local time, the first reading of
    /// that slot is kept.
    pub fn from_series(series: &MeterSeries, tz: Tz) -> Option<Self> {
        let interval = series.interval_ms?;
        if interval <= 0 || DAY_MS % interval != 0 {
            return None;
        }
        let slots = usize::try_from(DAY_MS / interval).ok()?;
        let mut dates: Vec<NaiveDate> = Vec::new();
        let mut values: Vec<f64> = Vec::new();
        for (t, e) in &series.points {
            let local = tz.timestamp_millis_opt(t.millis()).single()?;
            let date = local.date_naive();
            let since_midnight = i64::from(local.num_seconds_from_midnight()) * 1000;
            let slot = usize::try_from(since_midnight / interval)
                .ok()?
                .min(slots - 1);
            // Points are sorted by time, so a new date is always the latest one.
            if dates.last() != Some(&date) {
                dates.push(date);
                values.resize(values.len() + slots, f64::NAN);
            }
            let at = values.len() - slots + slot;
            if values[at].is_nan() {
                values[at] = e.kwh();
            }
        }
        Some(Self {
            meter_id: series.meter_id.clone(),
            slots,
            dates,
            values,
        })
    }

    /// The values of day `i`.
    pub fn day(&self, i: usize) -> &[f64] {
        &self.values[i * self.slots..(i + 1) * self.slots]
    }

    /// The values of day `i`, to change (the evaluation injects thefts this way).
    pub fn day_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.values[i * self.slots..(i + 1) * self.slots]
    }

    /// Number of days.
    pub fn len(&self) -> usize {
        self.dates.len()
    }

    /// Whether there are no days.
    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    /// Whether every interval of day `i` was measured.
    pub fn is_complete(&self, i: usize) -> bool {
        self.day(i).iter().all(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Energy, Timestamp};

    #[test]
    fn intervals_go_to_the_local_date_and_slot_of_their_end() {
        // Half-hourly, Brisbane (UTC+10): the interval ending 2026-03-01T14:00Z ends at local
        // midnight, so it is slot 0 of 2026-03-02.
        let first = Timestamp::parse_rfc3339("2026-03-01T13:30:00Z").unwrap();
        let points = (0..4)
            .map(|i| {
                let e = Energy::from_kwh(f64::from(i) + 1.0).unwrap();
                (first.add_millis(i64::from(i) * 1_800_000), e)
            })
            .collect();
        let series = MeterSeries {
            meter_id: MeterId::parse("m1").unwrap(),
            interval_ms: Some(1_800_000),
            points,
            gaps: 0,
            duplicates: 0,
            conflicting_duplicates: 0,
        };
        let days = MeterDays::from_series(&series, chrono_tz::Australia::Brisbane).unwrap();
        assert_eq!(days.slots, 48);
        assert_eq!(days.len(), 2);
        assert_eq!(days.dates[1], NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        assert_eq!(days.day(0)[47], 1.0);
        assert_eq!(&days.day(1)[..3], &[2.0, 3.0, 4.0]);
        assert!(days.day(1)[3].is_nan());
        assert!(!days.is_complete(1));
    }
}
