//! Small helpers the scan detectors share over a meter's stored readings: the meter's reading
//! interval (inferred, since a window does not carry it) and the energy of each interval from
//! the cumulative register.

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;

use crate::types::{Reading, Timestamp};

/// The meter's reading interval, ms: the median spacing of consecutive readings, or `fallback`
/// with fewer than two. The median, so a few gaps or a burst of late messages do not move it.
pub(crate) fn interval_ms(readings: &[Reading], fallback: i64) -> i64 {
    let mut steps: Vec<i64> = readings
        .windows(2)
        .map(|w| w[1].ts.millis() - w[0].ts.millis())
        .filter(|&d| d > 0)
        .collect();
    if steps.is_empty() {
        return fallback.max(1);
    }
    let mid = steps.len() / 2;
    let (_, median, _) = steps.select_nth_unstable(mid);
    (*median).max(1)
}

/// The energy of one interval, from the register of two readings one interval apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interval {
    /// Index of the reading that ends the interval.
    pub index: usize,
    /// End of the interval.
    pub end: Timestamp,
    /// Energy, kWh.
    pub kwh: f64,
}

/// The energy of every interval whose two readings are exactly one interval apart and whose
/// register did not go backwards: across a gap the energy is smeared over an unknown span, and
/// a register going down is a reset or rollover, not consumption.
pub(crate) fn intervals(readings: &[Reading], interval_ms: i64) -> Vec<Interval> {
    readings
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1].ts.millis() - w[0].ts.millis() == interval_ms)
        .filter_map(|(i, w)| {
            let mwh = w[1].energy_import.mwh() - w[0].energy_import.mwh();
            (mwh >= 0).then(|| Interval {
                index: i + 1,
                end: w[1].ts,
                kwh: mwh as f64 / 1_000_000.0,
            })
        })
        .collect()
}

/// The local day (days since the common era) and the slot of that day (0 = the interval
/// ending just after local midnight) of an interval ending at `end`, so history is compared at
/// the same time of the meter's day, across daylight-saving changes.
pub(crate) fn local_day_slot(tz: &Tz, end: Timestamp, interval_ms: i64) -> (i32, usize) {
    let local = end.add_millis(-1).to_datetime().with_timezone(tz);
    let ms_of_day = i64::from(local.num_seconds_from_midnight()) * 1000;
    (
        local.date_naive().num_days_from_ce(),
        (ms_of_day / interval_ms.max(1)) as usize,
    )
}

/// Hours in `ms` milliseconds.
pub(crate) fn hours(ms: i64) -> f64 {
    ms as f64 / crate::types::HOUR_MS as f64
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Constructed readings for the detectors' tests.

    use crate::registry::MeterInfo;
    use crate::types::{Energy, MeterId, MeterKind, MeterStatus, Reading, RelayState, Timestamp};

    use super::super::finding::MeterWindow;

    /// Fifteen minutes, ms.
    pub const QUARTER: i64 = 900_000;
    /// 2026-03-02T00:00:00Z, a Monday.
    pub const T0: i64 = 1_772_409_600_000;

    /// A healthy reading: 230 V, 50 Hz, power factor 0.95, relay closed, 1 kW.
    pub fn reading(id: &str, ts: i64, register_kwh: f64) -> Reading {
        Reading {
            meter_id: MeterId::parse(id).unwrap(),
            ts: Timestamp::from_millis(ts),
            seq: None,
            received: Timestamp::from_millis(ts),
            energy_import: Energy::from_kwh(register_kwh).unwrap(),
            energy_export: None,
            power_w: Some(1_000.0),
            voltage_v: Some(230.0),
            current_a: Some(4.6),
            power_factor: Some(0.95),
            frequency_hz: Some(50.0),
            status: MeterStatus::Ok,
            relay: Some(RelayState::Closed),
        }
    }

    /// `n` quarter-hourly readings of `id` ending at `T0 + (i + 1) · 15 min`, each interval
    /// `kwh(i)`.
    pub fn series(id: &str, n: usize, kwh: impl Fn(usize) -> f64) -> Vec<Reading> {
        let mut register = 1_000.0;
        (0..n)
            .map(|i| {
                register += kwh(i);
                let mut r = reading(id, T0 + (i as i64 + 1) * QUARTER, register);
                r.power_w = Some(kwh(i) * 4_000.0);
                r
            })
            .collect()
    }

    /// A consumer's window.
    pub fn consumer(id: &str, readings: Vec<Reading>) -> MeterWindow {
        MeterWindow {
            info: MeterInfo {
                feeder_id: Some(MeterId::parse("f-1").unwrap()),
                ..MeterInfo::new_consumer(MeterId::parse(id).unwrap(), chrono_tz::Tz::UTC)
            },
            readings,
        }
    }

    /// A feeder's window.
    pub fn feeder(id: &str, readings: Vec<Reading>) -> MeterWindow {
        MeterWindow {
            info: MeterInfo {
                kind: MeterKind::Feeder,
                ..MeterInfo::new_consumer(MeterId::parse(id).unwrap(), chrono_tz::Tz::UTC)
            },
            readings,
        }
    }

    /// The time `i` quarter-hours after `T0`.
    pub fn at(i: i64) -> Timestamp {
        Timestamp::from_millis(T0 + i * QUARTER)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn the_interval_is_the_median_spacing_despite_a_gap() {
        let mut r = series("m-1", 20, |_| 0.1);
        r.drain(5..9);
        assert_eq!(interval_ms(&r, 60_000), QUARTER);
        assert_eq!(interval_ms(&r[..1], 60_000), 60_000);
    }

    #[test]
    fn interval_energy_skips_gaps_and_registers_going_backwards() {
        let mut r = series("m-1", 6, |_| 0.25);
        r.remove(2);
        r[4].energy_import = crate::types::Energy::ZERO;
        let iv = intervals(&r, QUARTER);
        let ends: Vec<usize> = iv.iter().map(|i| i.index).collect();
        assert_eq!(ends, vec![1, 3]);
        assert!((iv[0].kwh - 0.25).abs() < 1e-9);
    }

    #[test]
    fn local_slots_count_from_local_midnight() {
        let tz: Tz = "Australia/Sydney".parse().unwrap();
        // 13:15Z on 2026-03-01 is 00:15 on 2 March in Sydney (UTC+11): the first slot.
        let t = Timestamp::parse_rfc3339("2026-03-01T13:15:00Z").unwrap();
        let (day, slot) = local_day_slot(&tz, t, QUARTER);
        assert_eq!(slot, 0);
        assert_eq!(local_day_slot(&Tz::UTC, at(4), QUARTER), (day, 3));
    }
}
