//! Which consumers get which injection, over which window and with which parameters, and the
//! day-level theft patterns h1–h6.
//!
//! The plan is a pure function of the configuration and the fleet's start time, so a resumed
//! fleet recomputes the same plan instead of storing it.

use meter_core::anomaly::{Attack, Rng};
use meter_core::types::{MeterId, Timestamp, HOUR_MS};

use crate::config::{FaultKind, FleetConfig};
use crate::load::Clock;
use crate::rng::{Purpose, SplitMix};

/// Ground truth of one injection: which meter, what, and when. Detectors are checked against it.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    /// The injected consumer meter.
    pub meter_id: MeterId,
    /// What was injected.
    pub kind: FaultKind,
    /// Start of the first affected interval.
    pub from: Timestamp,
    /// End of the last affected interval: readings with `from < ts ≤ to` (by the true interval
    /// end) are affected.
    pub to: Timestamp,
}

/// One injection as the simulator applies it.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub meter: usize,
    pub kind: FaultKind,
    /// First and last affected interval index (inclusive).
    pub first: i64,
    pub last: i64,
    /// Kind-specific: bypass fraction (the short bypass), voltage factor, overload factor, clock skew (ms),
    /// replacement register (kWh).
    pub param: f64,
    /// Outage: whether the restore reading reports no supply (`voltage_v` 0) rather than resuming
    /// plainly.
    pub zero_on_restore: bool,
}

impl Planned {
    pub(crate) fn active(&self, index: i64) -> bool {
        (self.first..=self.last).contains(&index)
    }
}

/// Plans the injections of a fleet started at `start_ms`. Returns one entry per injected
/// consumer, ordered by meter.
pub(crate) fn plan(cfg: &FleetConfig, clock: &Clock, start_ms: i64) -> Vec<Planned> {
    let n = cfg.consumers;
    let count = cfg.faults.count(n);
    let kinds = cfg.faults.kinds();
    if count == 0 || kinds.is_empty() {
        return Vec::new();
    }
    // A seeded partial Fisher–Yates shuffle picks the injected consumers.
    let mut order: Vec<usize> = (0..n).collect();
    let mut r = SplitMix::keyed(cfg.seed, 0, 0, Purpose::Plan);
    for i in 0..count {
        let j = i + r.below((n - i) as u64) as usize;
        order.swap(i, j);
    }
    let dt = clock.interval_ms;
    let first_index = start_ms.div_euclid(dt) + 1;
    let mut out: Vec<Planned> = order[..count]
        .iter()
        .enumerate()
        .map(|(i, &meter)| {
            let kind = kinds[i % kinds.len()];
            window(cfg, clock, meter, kind, first_index)
        })
        .collect();
    out.sort_by_key(|p| p.meter);
    out
}

fn window(cfg: &FleetConfig, clock: &Clock, meter: usize, kind: FaultKind, first: i64) -> Planned {
    let dt = clock.interval_ms;
    let per_hour = (HOUR_MS / dt).max(1);
    let mut r = SplitMix::keyed(cfg.seed, meter as u64, 0, Purpose::InjectionParams);
    // Starts 1–24 hours into the run, so the meter first shows some healthy history.
    let start = first + per_hour + r.below(23 * per_hour as u64) as i64;
    let hours = |r: &mut SplitMix, lo: i64, hi: i64| {
        let span = (hi - lo) * per_hour;
        lo * per_hour + r.below(span.max(1) as u64) as i64
    };
    let (first, last) = match kind {
        FaultKind::H1
        | FaultKind::H2
        | FaultKind::H3
        | FaultKind::H4
        | FaultKind::H5
        | FaultKind::H6 => {
            // Whole local days, since the patterns are defined on a day of readings.
            let days = 1 + r.below(3) as i64;
            let day0 = clock.day_start_at_or_after(start);
            let mut end = day0;
            for _ in 0..days {
                end = clock.day_start_at_or_after(end + 1);
            }
            (day0, end - 1)
        }
        FaultKind::LongBypass => {
            // Weeks, starting once a meter has the history its days are judged against
            // (`sustained_theft` scores a day against at least 7 previous days that were
            // themselves scored, so from its 15th day, and its evidence against at least 7
            // scored days: from its 22nd), so the scan sees the theft as a change from the
            // usual.
            let days = |r: &mut SplitMix, lo: i64, hi: i64| hours(r, lo * 24, hi * 24);
            let from = first + days(&mut r, 24, 31);
            (from, from + days(&mut r, 28, 56))
        }
        FaultKind::Rollover | FaultKind::Replacement => (start, start),
        FaultKind::Bypass | FaultKind::Tamper | FaultKind::StuckRegister => {
            (start, start + hours(&mut r, 12, 72))
        }
        FaultKind::Outage => (start, start + hours(&mut r, 1, 6)),
        FaultKind::Sag | FaultKind::Swell => (start, start + hours(&mut r, 1, 4)),
        FaultKind::Overload => (start, start + hours(&mut r, 1, 3)),
        FaultKind::ClockSkew | FaultKind::Duplicate | FaultKind::OutOfOrder => {
            (start, start + hours(&mut r, 2, 12))
        }
        FaultKind::StoreAndForward => (start, start + hours(&mut r, 1, 12)),
    };
    let param = match kind {
        FaultKind::Bypass => r.range(0.2, 0.6),
        FaultKind::Sag => r.range(0.80, 0.85),
        FaultKind::Swell => r.range(1.15, 1.20),
        FaultKind::Overload => r.range(1.1, 1.5),
        FaultKind::Replacement => r.range(0.0, 0.5),
        FaultKind::ClockSkew => {
            // 10 minutes to 6 hours, plus 17 s so a skewed ts never lands on a whole interval
            // (intervals are whole minutes), which the platform would take for a duplicate.
            let ms = (10 + r.below(350) as i64) * 60_000 + 17_000;
            let sign = if r.unit() < 0.5 { -1.0 } else { 1.0 };
            sign * ms as f64
        }
        _ => 0.0,
    };
    Planned {
        meter,
        kind,
        first,
        last,
        param,
        zero_on_restore: r.unit() < 0.5,
    }
}

/// The reported energies of one local day of true energies `x` under theft pattern `kind`: the
/// same injection as the detection evaluation uses (`meter_core::anomaly::Attack::inject`, h1–h6
/// as `shared/README.md` defines them, on a whole day of slots), drawn from `r`. Other kinds
/// report `x` unchanged. Every pattern reports non-negative energies, so the cumulative register
/// built from them stays monotonic.
pub(crate) fn theft_day(kind: FaultKind, x: &[f64], r: &mut SplitMix) -> Vec<f64> {
    let mut day = x.to_vec();
    let attack = match kind {
        FaultKind::H1 => Attack::H1,
        FaultKind::H2 => Attack::H2,
        FaultKind::H3 => Attack::H3,
        FaultKind::H4 => Attack::H4,
        FaultKind::H5 => Attack::H5,
        FaultKind::H6 => Attack::H6,
        _ => return day,
    };
    if !day.is_empty() {
        // One keyed draw seeds the injection's own generator, so a day's pattern still depends
        // only on (seed, meter, local day).
        attack.inject(&mut day, &mut Rng::new(r.next_u64()));
    }
    day
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A day of hourly values 1..=24.
    fn day() -> Vec<f64> {
        (1..=24).map(f64::from).collect()
    }

    #[test]
    fn h1_scales_the_whole_day_by_one_alpha() {
        let x = day();
        let y = theft_day(FaultKind::H1, &x, &mut SplitMix::new(3));
        let alpha = y[0] / x[0];
        assert!((0.1..0.8).contains(&alpha));
        for (a, b) in y.iter().zip(&x) {
            assert!((a / b - alpha).abs() < 1e-12);
        }
    }

    #[test]
    fn h2_zeroes_a_window_of_at_least_four_hours() {
        for seed in 0..50 {
            let y = theft_day(FaultKind::H2, &day(), &mut SplitMix::new(seed));
            let zeros: Vec<usize> = (0..24).filter(|i| y[*i] == 0.0).collect();
            assert!(zeros.len() >= 4, "{y:?}");
            assert_eq!(zeros.last().unwrap() - zeros[0] + 1, zeros.len());
        }
    }

    #[test]
    fn h3_to_h6_follow_their_definitions() {
        let x = day();
        let mut r = SplitMix::new(5);
        let y3 = theft_day(FaultKind::H3, &x, &mut r);
        assert!(y3
            .iter()
            .zip(&x)
            .all(|(a, b)| (0.1..0.8).contains(&(a / b))));
        let y4 = theft_day(FaultKind::H4, &x, &mut r);
        assert!(y4.iter().all(|a| (1.25..10.0).contains(a)));
        assert_eq!(theft_day(FaultKind::H5, &x, &mut r), vec![12.5; 24]);
        let y6 = theft_day(FaultKind::H6, &x, &mut r);
        assert_eq!(y6, x.iter().rev().copied().collect::<Vec<_>>());
    }

    #[test]
    fn the_same_key_gives_the_same_day_and_other_kinds_report_the_truth() {
        let x = day();
        for kind in [FaultKind::H1, FaultKind::H2, FaultKind::H3, FaultKind::H4] {
            let a = theft_day(kind, &x, &mut SplitMix::new(9));
            assert_eq!(a, theft_day(kind, &x, &mut SplitMix::new(9)));
            assert!(a.iter().all(|v| *v >= 0.0));
        }
        assert_eq!(theft_day(FaultKind::Bypass, &x, &mut SplitMix::new(9)), x);
        assert!(theft_day(FaultKind::H2, &[], &mut SplitMix::new(9)).is_empty());
    }
}
