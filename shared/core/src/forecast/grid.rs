//! A meter's history on a regular time grid, and the local calendar of each grid slot.
//!
//! Models index time by position (slot `i` is the `i`-th interval), so a series with gaps is put
//! on a grid first. Missing intervals are filled from the past only (the same slot a week
//! earlier, else a day earlier, else the last value), so filling never leaks later data into an
//! earlier forecast; a mask keeps which slots were measured, and only those are ever scored.

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

use crate::types::Timestamp;

const DAY_MS: i64 = 86_400_000;

/// Slots per day and per week for an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seasons {
    /// Slots per day (48 for half-hourly).
    pub day: usize,
    /// Slots per week.
    pub week: usize,
}

impl Seasons {
    /// The seasons for an interval, `None` unless it divides a day into whole slots.
    pub fn for_interval(interval_ms: i64) -> Option<Self> {
        if interval_ms <= 0 || DAY_MS % interval_ms != 0 {
            return None;
        }
        let day = usize::try_from(DAY_MS / interval_ms).ok()?;
        Some(Self { day, week: day * 7 })
    }
}

/// Where each grid slot falls on the local clock: time of day and day of week.
///
/// One UTC offset is used for the whole grid (the zone's offset at the grid's last slot): models
/// count seasons in slots, and a daylight-saving zone's daily pattern shifts by an hour for part
/// of a long history either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    /// Local time (ms since the epoch, as if the local clock were UTC) of the start of slot 0.
    pub first_start_local_ms: i64,
    /// The interval in ms.
    pub interval_ms: i64,
    /// Slots per day and week.
    pub seasons: Seasons,
}

impl Calendar {
    /// Local start of slot `i`.
    fn local_start(&self, i: usize) -> i64 {
        self.first_start_local_ms + i as i64 * self.interval_ms
    }

    /// The slot of the day slot `i` starts in (0 = the one starting at local midnight).
    pub fn slot_of_day(&self, i: usize) -> usize {
        (self.local_start(i).rem_euclid(DAY_MS) / self.interval_ms) as usize
    }

    /// Day of week, 0 = Monday.
    pub fn day_of_week(&self, i: usize) -> usize {
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        ((self.local_start(i).div_euclid(DAY_MS) + 3).rem_euclid(7)) as usize
    }

    /// Whether slot `i` falls on a Saturday or Sunday.
    pub fn is_weekend(&self, i: usize) -> bool {
        self.day_of_week(i) >= 5
    }
}

/// One meter's history on a regular grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// End of the first interval.
    pub first_end: Timestamp,
    /// Energy per slot in kWh, gaps filled from the past.
    pub values: Vec<f64>,
    /// Whether each slot was measured (false: filled).
    pub observed: Vec<bool>,
    /// The local calendar.
    pub calendar: Calendar,
}

impl Grid {
    /// Puts `(interval end, kWh)` points (sorted by time) on a grid of `interval_ms`, with the
    /// local calendar of `tz`. A point off the grid's phase goes to the nearest slot (the first
    /// one there wins). `None` for no points or an interval that does not divide a day.
    pub fn from_points(points: &[(Timestamp, f64)], interval_ms: i64, tz: Tz) -> Option<Self> {
        let seasons = Seasons::for_interval(interval_ms)?;
        let (first, _) = *points.first()?;
        let (last, _) = *points.last()?;
        let span = last.millis().checked_sub(first.millis())?;
        let len = usize::try_from(span / interval_ms).ok()? + 1;
        let mut values = vec![f64::NAN; len];
        let mut observed = vec![false; len];
        for (t, kwh) in points {
            let offset = t.millis() - first.millis();
            let i = (offset + interval_ms / 2).div_euclid(interval_ms);
            let Ok(i) = usize::try_from(i) else { continue };
            if i < len && !observed[i] && kwh.is_finite() {
                values[i] = kwh.max(0.0);
                observed[i] = true;
            }
        }
        fill_from_past(&mut values, seasons);
        let offset_ms = match tz.timestamp_millis_opt(last.millis()) {
            chrono::LocalResult::Single(dt) => {
                i64::from(dt.offset().fix().local_minus_utc()) * 1000
            }
            _ => 0,
        };
        Some(Self {
            first_end: first,
            values,
            observed,
            calendar: Calendar {
                first_start_local_ms: first.millis() - interval_ms + offset_ms,
                interval_ms,
                seasons,
            },
        })
    }

    /// Slots `from..to` as a grid of their own (clamped to the grid).
    pub fn window(&self, from: usize, to: usize) -> Self {
        let to = to.min(self.values.len());
        let from = from.min(to);
        Self {
            first_end: self.end_of(from),
            values: self.values[from..to].to_vec(),
            observed: self.observed[from..to].to_vec(),
            calendar: Calendar {
                first_start_local_ms: self.calendar.first_start_local_ms
                    + from as i64 * self.calendar.interval_ms,
                ..self.calendar
            },
        }
    }

    /// The end of slot `i`.
    pub fn end_of(&self, i: usize) -> Timestamp {
        self.first_end
            .add_millis(i as i64 * self.calendar.interval_ms)
    }

    /// The slot whose interval ends at `t`, if `t` is on the grid (it may lie past the end).
    pub fn index_of_end(&self, t: Timestamp) -> Option<usize> {
        let d = t.millis() - self.first_end.millis();
        if d < 0 || d % self.calendar.interval_ms != 0 {
            return None;
        }
        usize::try_from(d / self.calendar.interval_ms).ok()
    }

    /// Slots `i` (history `values[..i]`) whose issue time, the start of slot `i`, is a local
    /// midnight, from the earliest to the latest with `min_history <= i <= len - after`.
    pub fn midnight_issues(&self, min_history: usize, after: usize) -> Vec<usize> {
        let len = self.values.len();
        let Some(last) = len.checked_sub(after) else {
            return Vec::new();
        };
        (min_history.max(1)..=last)
            .filter(|i| self.calendar.slot_of_day(*i) == 0)
            .collect()
    }
}

/// Fills NaN slots from the same slot a week, else a day, earlier, else the last value, else 0.
fn fill_from_past(values: &mut [f64], s: Seasons) {
    let mut last = 0.0;
    for i in 0..values.len() {
        if values[i].is_nan() {
            let week = i.checked_sub(s.week).map(|j| values[j]);
            let day = i.checked_sub(s.day).map(|j| values[j]);
            values[i] = week.or(day).filter(|v| v.is_finite()).unwrap_or(last);
        }
        last = values[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn gaps_are_filled_from_the_past_and_masked() {
        let points = [
            (ts("2026-01-01T00:30:00Z"), 1.0),
            (ts("2026-01-01T01:00:00Z"), 2.0),
            (ts("2026-01-01T02:00:00Z"), 4.0),
        ];
        let g = Grid::from_points(&points, 1_800_000, Tz::UTC).unwrap();
        assert_eq!(g.values, [1.0, 2.0, 2.0, 4.0]);
        assert_eq!(g.observed, [true, true, false, true]);
        assert_eq!(g.end_of(3), ts("2026-01-01T02:00:00Z"));
        assert_eq!(g.index_of_end(ts("2026-01-01T03:00:00Z")), Some(5));
    }

    #[test]
    fn the_calendar_follows_the_local_clock() {
        // Slot 0 ends 00:30 local in UTC+10, so it starts at local midnight on a Thursday.
        let points = [
            (ts("2026-01-07T14:30:00Z"), 1.0),
            (ts("2026-01-07T15:00:00Z"), 1.0),
        ];
        let g = Grid::from_points(&points, 1_800_000, chrono_tz::Australia::Brisbane).unwrap();
        assert_eq!(g.calendar.slot_of_day(0), 0);
        assert_eq!(g.calendar.day_of_week(0), 3);
        assert_eq!(g.calendar.slot_of_day(1), 1);
        assert_eq!(g.calendar.day_of_week(48 * 2), 5);
        assert!(g.calendar.is_weekend(48 * 2));
    }
}
