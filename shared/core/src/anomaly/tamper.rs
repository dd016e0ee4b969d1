//! Tampering signs on a feeder window: what the meter says about itself, and what its register
//! does against its relay and its feeder.
//!
//! - [`FindingKind::Tamper`]: readings with status `tamper` (cover opened, magnetic field,
//!   bypass detected by the meter). Score: the number of such readings.
//! - [`FindingKind::ConsumptionWhileRelayOpen`]: the register moved by more than its resolution
//!   over an interval the relay was open at both ends (an interval in which the relay opened or
//!   closed may hold energy from before or after). A disconnected supply draws nothing, so the
//!   relay is bypassed or misreports. Score: kWh registered while open.
//! - [`FindingKind::ZeroWhileFeederLoaded`] (consumers only, with a feeder meter): a run of at
//!   least [`TamperConfig::zero_min_ms`] (3 hours) in which the consumer's register does not
//!   move, with supply (voltage present, relay not open), while over the run the feeder's mean
//!   load is clearly above its own no-load level ([`TamperConfig::feeder_loaded_factor`] × its
//!   quiet level, the [`TamperConfig::feeder_quiet_quantile`] of its load in the window), and
//!   the consumer's own history says it normally consumes then: the median of its energy in the
//!   same local time-of-day slot on the window's other days, summed over the run, is at least
//!   [`TamperConfig::usual_min_kw`] on average. A home that is empty shows the same, so this is
//!   a lead for a visit, not proof; a window of a day or less has no history and finds nothing.
//!   Score: the kWh the consumer's history expected over the run.

use std::collections::HashMap;

use super::finding::{FeederWindow, Finding, FindingKind, MeterWindow};
use super::sampling::{hours, interval_ms, intervals, local_day_slot, Interval};
use crate::types::{MeterStatus, Reading, RelayState, Timestamp};

/// Tamper settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TamperConfig {
    /// The register's resolution, kWh (1 Wh): a register moving by less is standing still.
    pub register_resolution_kwh: f64,
    /// Shortest zero run judged against the feeder, ms (3 hours: longer than a home's quiet
    /// spells with the fridge off, shorter than the 4-hour windows of h2-style theft).
    pub zero_min_ms: i64,
    /// The feeder is loaded when its mean load over the run is at least this many times its
    /// quiet level (1.5).
    pub feeder_loaded_factor: f64,
    /// The feeder's quiet level: this quantile of its interval load over the window (0.05).
    pub feeder_quiet_quantile: f64,
    /// The consumer's usual mean power over the run must be at least this, kW (0.05: a home
    /// with a fridge and standby loads).
    pub usual_min_kw: f64,
    /// Fewest other days with a value in a slot for the slot's history to count (3).
    pub min_history_days: usize,
    /// Voltage below which the consumer has no supply (an outage, not theft), V.
    pub voltage_present_v: f64,
    /// Interval assumed for a meter with fewer than two readings, ms (15 min).
    pub default_interval_ms: i64,
}

impl TamperConfig {
    /// Defaults for a grid of `nominal_v` volts.
    pub fn for_nominal(nominal_v: f64) -> Self {
        Self {
            register_resolution_kwh: 0.001,
            zero_min_ms: 3 * 3_600_000,
            feeder_loaded_factor: 1.5,
            feeder_quiet_quantile: 0.05,
            usual_min_kw: 0.05,
            min_history_days: 3,
            voltage_present_v: 0.5 * nominal_v,
            default_interval_ms: 900_000,
        }
    }
}

impl Default for TamperConfig {
    /// Defaults for a 230 V grid.
    fn default() -> Self {
        Self::for_nominal(230.0)
    }
}

/// Tamper findings for every meter in the window.
pub fn detect(window: &FeederWindow, config: &TamperConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let feeder = window
        .feeder
        .as_ref()
        .and_then(|f| FeederLoad::new(f, config));
    for m in window.feeder.iter().chain(&window.consumers) {
        tamper_status(m, &mut out);
        let interval = interval_ms(&m.readings, config.default_interval_ms);
        let iv = intervals(&m.readings, interval);
        relay_open(m, &iv, config, &mut out);
    }
    if let Some(feeder) = &feeder {
        for m in &window.consumers {
            zero_while_loaded(m, feeder, config, &mut out);
        }
    }
    out
}

fn tamper_status(m: &MeterWindow, out: &mut Vec<Finding>) {
    let flagged: Vec<&Reading> = m
        .readings
        .iter()
        .filter(|r| r.status == MeterStatus::Tamper)
        .collect();
    let (Some(first), Some(last)) = (flagged.first(), flagged.last()) else {
        return;
    };
    out.push(Finding {
        meter_id: m.info.meter_id.clone(),
        kind: FindingKind::Tamper,
        score: flagged.len() as f64,
        from: first.ts,
        to: last.ts,
        explanation: format!(
            "meter reported tampering in {} of {} readings",
            flagged.len(),
            m.readings.len()
        ),
    });
}

fn relay_open(m: &MeterWindow, iv: &[Interval], config: &TamperConfig, out: &mut Vec<Finding>) {
    let open = |r: &Reading| r.relay == Some(RelayState::Open);
    let hits: Vec<&Interval> = iv
        .iter()
        .filter(|i| {
            open(&m.readings[i.index - 1])
                && open(&m.readings[i.index])
                && i.kwh > config.register_resolution_kwh
        })
        .collect();
    let (Some(first), Some(last)) = (hits.first(), hits.last()) else {
        return;
    };
    let kwh: f64 = hits.iter().map(|i| i.kwh).sum();
    out.push(Finding {
        meter_id: m.info.meter_id.clone(),
        kind: FindingKind::ConsumptionWhileRelayOpen,
        score: kwh,
        from: first.end,
        to: last.end,
        explanation: format!(
            "{kwh:.3} kWh registered in {} intervals while the relay was open",
            hits.len()
        ),
    });
}

/// The feeder's load over the window, to look up at a consumer's interval.
struct FeederLoad {
    /// (interval end, mean kW), by time.
    load: Vec<(Timestamp, f64)>,
    interval_ms: i64,
    /// Its quiet level, kW.
    quiet_kw: f64,
}

impl FeederLoad {
    fn new(m: &MeterWindow, config: &TamperConfig) -> Option<Self> {
        let interval = interval_ms(&m.readings, config.default_interval_ms);
        let load: Vec<(Timestamp, f64)> = intervals(&m.readings, interval)
            .into_iter()
            .map(|i| (i.end, i.kwh / hours(interval)))
            .collect();
        let mut sorted: Vec<f64> = load.iter().map(|(_, kw)| *kw).collect();
        sorted.sort_by(f64::total_cmp);
        let k = ((sorted.len() as f64 - 1.0) * config.feeder_quiet_quantile.clamp(0.0, 1.0)).round()
            as usize;
        let quiet_kw = *sorted.get(k)?;
        Some(Self {
            load,
            interval_ms: interval,
            quiet_kw,
        })
    }

    /// The feeder's mean load over the interval ending at `end`, if measured.
    fn at(&self, end: Timestamp) -> Option<f64> {
        // The feeder interval covering `end`: the first ending at or after it.
        let k = self.load.partition_point(|(t, _)| *t < end);
        self.load
            .get(k)
            .filter(|(t, _)| t.millis() - self.interval_ms < end.millis())
            .map(|(_, kw)| *kw)
    }
}

fn zero_while_loaded(
    m: &MeterWindow,
    feeder: &FeederLoad,
    config: &TamperConfig,
    out: &mut Vec<Finding>,
) {
    let interval = interval_ms(&m.readings, config.default_interval_ms);
    let iv = intervals(&m.readings, interval);
    let tz = m.info.timezone;
    let keys: Vec<(i32, usize)> = iv
        .iter()
        .map(|i| local_day_slot(&tz, i.end, interval))
        .collect();
    // Each slot's values by day, for the history of an interval (its own day left out).
    let mut by_slot: HashMap<usize, Vec<(i32, f64)>> = HashMap::new();
    for (i, &(day, slot)) in iv.iter().zip(&keys) {
        by_slot.entry(slot).or_default().push((day, i.kwh));
    }
    let usual = |k: usize| -> Option<f64> {
        let (day, slot) = keys[k];
        let mut v: Vec<f64> = by_slot
            .get(&slot)?
            .iter()
            .filter(|(d, _)| *d != day)
            .map(|(_, kwh)| *kwh)
            .collect();
        if v.len() < config.min_history_days.max(1) {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    };
    let supplied = |r: &Reading| {
        r.relay != Some(RelayState::Open)
            && r.voltage_v.is_none_or(|v| v >= config.voltage_present_v)
    };
    let zero = |k: usize| {
        let i = &iv[k];
        i.kwh < config.register_resolution_kwh
            && supplied(&m.readings[i.index - 1])
            && supplied(&m.readings[i.index])
            && feeder.at(i.end).is_some()
    };
    let mut k = 0;
    while k < iv.len() {
        if !zero(k) {
            k += 1;
            continue;
        }
        let start = k;
        while k + 1 < iv.len()
            && zero(k + 1)
            && iv[k + 1].end.millis() - iv[k].end.millis() == interval
        {
            k += 1;
        }
        judge_run(
            m,
            &iv[start..=k],
            start,
            &usual,
            feeder,
            interval,
            config,
            out,
        );
        k += 1;
    }
}

/// Reports a zero run `run` (starting at interval `start`) if it is long, the feeder was loaded
/// and the consumer's history expected consumption.
#[allow(clippy::too_many_arguments)]
fn judge_run(
    m: &MeterWindow,
    run: &[Interval],
    start: usize,
    usual: &impl Fn(usize) -> Option<f64>,
    feeder: &FeederLoad,
    interval: i64,
    config: &TamperConfig,
    out: &mut Vec<Finding>,
) {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return;
    };
    let span_ms = (run.len() as i64).saturating_mul(interval);
    if span_ms < config.zero_min_ms {
        return;
    }
    let feeder_kw = run.iter().filter_map(|i| feeder.at(i.end)).sum::<f64>() / run.len() as f64;
    if feeder_kw < config.feeder_loaded_factor * feeder.quiet_kw || feeder_kw <= 0.0 {
        return;
    }
    let history: Vec<f64> = (start..start + run.len()).filter_map(usual).collect();
    // Most of the run must have a history to judge by.
    if 2 * history.len() < run.len() {
        return;
    }
    let expected_kwh = history.iter().sum::<f64>() * run.len() as f64 / history.len() as f64;
    let run_h = hours(span_ms);
    if expected_kwh < config.usual_min_kw * run_h {
        return;
    }
    out.push(Finding {
        meter_id: m.info.meter_id.clone(),
        kind: FindingKind::ZeroWhileFeederLoaded,
        score: expected_kwh,
        from: first.end,
        to: last.end,
        explanation: format!(
            "no consumption for {run_h:.1} h with supply, while the feeder carried {feeder_kw:.1} \
             kW ({:.1}× its quiet {:.1} kW) and this meter usually uses {expected_kwh:.2} kWh then",
            feeder_kw / feeder.quiet_kw.max(f64::MIN_POSITIVE),
            feeder.quiet_kw
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::super::sampling::test_support::*;
    use super::*;
    use crate::types::Energy;

    /// Quarter-hours in a day.
    const DAY: usize = 96;

    /// A home's usual quarter-hour: 0.05 kWh at night, 0.3 in the day (06:00–22:00).
    fn home(i: usize) -> f64 {
        if (24..88).contains(&(i % DAY)) {
            0.3
        } else {
            0.05
        }
    }

    /// Five days of a feeder and four homes; the feeder carries the homes plus 1 kWh of no-load
    /// loss per quarter-hour, and more in the day.
    fn window() -> FeederWindow {
        let n = 5 * DAY;
        FeederWindow {
            feeder: Some(feeder(
                "f-1",
                series("f-1", n, |i| 1.0 + 4.0 * home(i) + 8.0 * home(i)),
            )),
            consumers: (0..4)
                .map(|k| consumer(&format!("c-{k}"), series(&format!("c-{k}"), n, home)))
                .collect(),
            from: at(0),
            to: at(n as i64),
        }
    }

    /// Rewrites a consumer's registers so the interval ending at reading `i` records `kwh(i)`.
    fn set_registers(m: &mut MeterWindow, kwh: impl Fn(usize) -> f64) {
        let mut register = 1_000.0;
        for (i, r) in m.readings.iter_mut().enumerate() {
            register += kwh(i);
            r.energy_import = Energy::from_kwh(register).unwrap();
        }
    }

    /// Rewrites a consumer's registers so intervals `range` record `kwh` each, the rest as usual.
    fn set_kwh(m: &mut MeterWindow, range: std::ops::Range<usize>, kwh: f64) {
        set_registers(m, |i| if range.contains(&i) { kwh } else { home(i) });
    }

    fn run(w: &FeederWindow) -> Vec<Finding> {
        detect(w, &TamperConfig::default())
    }

    #[test]
    fn a_clean_feeder_has_no_tamper_findings() {
        assert!(run(&window()).is_empty());
    }

    #[test]
    fn tamper_status_readings_are_one_finding_with_their_count() {
        let mut w = window();
        for r in &mut w.consumers[2].readings[100..104] {
            r.status = MeterStatus::Tamper;
        }
        let f = run(&w);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].kind, f[0].score), (FindingKind::Tamper, 4.0));
        assert_eq!((f[0].from, f[0].to), (at(101), at(104)));
    }

    #[test]
    fn energy_registered_with_the_relay_open_is_caught() {
        let mut w = window();
        // Open from the reading ending at 231 to the one ending at 240 (09:45–12:00 on day 2);
        // the register keeps going.
        for r in &mut w.consumers[1].readings[230..240] {
            r.relay = Some(RelayState::Open);
        }
        let f = run(&w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FindingKind::ConsumptionWhileRelayOpen);
        // Nine intervals open at both ends, 0.3 kWh each.
        assert!((f[0].score - 2.7).abs() < 1e-9, "{}", f[0].score);
        assert_eq!((f[0].from, f[0].to), (at(232), at(240)));
    }

    #[test]
    fn an_open_relay_with_a_still_register_is_fine_even_for_hours() {
        let mut w = window();
        for r in &mut w.consumers[1].readings[200..260] {
            r.relay = Some(RelayState::Open);
        }
        set_kwh(&mut w.consumers[1], 201..260, 0.0);
        assert!(run(&w).is_empty());
    }

    #[test]
    fn a_register_moving_by_its_resolution_with_the_relay_open_is_not_consumption() {
        let mut w = window();
        for r in &mut w.consumers[1].readings[200..210] {
            r.relay = Some(RelayState::Open);
        }
        set_kwh(&mut w.consumers[1], 201..210, 0.001);
        assert!(run(&w).is_empty());
    }

    #[test]
    fn zero_for_hours_while_the_feeder_is_loaded_and_the_home_usually_consumes_is_caught() {
        let mut w = window();
        // Day 3, 08:00–14:00: the home usually uses 0.3 kWh a quarter-hour.
        set_kwh(&mut w.consumers[3], 3 * DAY + 32..3 * DAY + 56, 0.0);
        let f = run(&w);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::ZeroWhileFeederLoaded);
        assert_eq!(f[0].meter_id.as_str(), "c-3");
        assert!((f[0].score - 24.0 * 0.3).abs() < 1e-6, "{}", f[0].score);
        assert_eq!((f[0].from, f[0].to), (at(3 * 96 + 33), at(3 * 96 + 56)));
    }

    #[test]
    fn a_short_quiet_spell_is_not_a_zero_run() {
        let mut w = window();
        set_kwh(&mut w.consumers[3], 3 * DAY + 32..3 * DAY + 42, 0.0);
        assert!(run(&w).is_empty());
    }

    #[test]
    fn zero_at_a_time_the_home_is_always_empty_is_not_suspicious() {
        let mut w = window();
        // Empty every day from 10:00 to 14:00: its history says zero then.
        set_registers(&mut w.consumers[0], |i| {
            if (40..56).contains(&(i % DAY)) {
                0.0
            } else {
                home(i)
            }
        });
        assert!(run(&w).is_empty());
    }

    #[test]
    fn zero_during_an_outage_or_with_the_relay_open_is_not_theft() {
        let mut w = window();
        set_kwh(&mut w.consumers[3], 3 * DAY + 32..3 * DAY + 56, 0.0);
        for r in &mut w.consumers[3].readings[3 * DAY + 31..3 * DAY + 56] {
            r.voltage_v = Some(0.0);
        }
        assert!(run(&w).is_empty());
        let mut w = window();
        set_kwh(&mut w.consumers[3], 3 * DAY + 32..3 * DAY + 56, 0.0);
        for r in &mut w.consumers[3].readings[3 * DAY + 31..3 * DAY + 56] {
            r.relay = Some(RelayState::Open);
        }
        assert!(run(&w).is_empty());
    }

    #[test]
    fn zero_while_the_feeder_is_quiet_is_not_judged() {
        let mut w = window();
        set_kwh(&mut w.consumers[3], 3 * DAY + 32..3 * DAY + 56, 0.0);
        // The feeder draws its no-load level only.
        if let Some(f) = &mut w.feeder {
            let mut register = 0.0;
            for r in &mut f.readings {
                register += 1.0;
                r.energy_import = Energy::from_kwh(register).unwrap();
            }
        }
        assert!(run(&w).is_empty());
    }

    #[test]
    fn without_a_feeder_meter_zero_runs_are_not_judged() {
        let mut w = window();
        set_kwh(&mut w.consumers[3], 3 * DAY + 32..3 * DAY + 56, 0.0);
        w.feeder = None;
        assert!(run(&w).is_empty());
    }
}
