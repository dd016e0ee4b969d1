//! Power quality of every meter in a feeder window (consumers and the feeder meter), after
//! EN 50160.
//!
//! - Voltage: the mean of the readings within each aligned 10-minute block (EN 50160's 10-minute
//!   mean r.m.s. value; blocks aligned to the clock, a reading belonging to the block its time
//!   ends) against nominal ± [`QualityConfig::voltage_tolerance`] (10%). EN 50160 asks 95% of a
//!   week's 10-minute means to be within ±10%; a scan window is usually shorter than a week, so
//!   any block out of limits is reported ([`QualityConfig::min_blocks`] = 1: a 10-minute mean is
//!   already a sustained excursion, not a transient) as [`FindingKind::VoltageSag`] or
//!   [`FindingKind::VoltageSwell`], with the count and the share of blocks out in the
//!   explanation so a reader can hold it against the 5%. Readings below 5% of nominal are supply
//!   interruptions (EN 50160's definition), left to the outage detector, not averaged in as a
//!   sag. Score: the worst 10-minute mean's deviation from nominal, % of nominal.
//! - Power factor: the mean |PF| of the readings with meaningful power (at least
//!   [`QualityConfig::pf_min_power_w`]; at standby a power factor says little), over at least
//!   [`QualityConfig::pf_min_duration_ms`] of such readings, below [`QualityConfig::pf_limit`]
//!   (0.8) → [`FindingKind::LowPowerFactor`]. Score: the shortfall below the limit (PF points,
//!   0.8 − mean).
//! - Frequency: readings outside nominal ± [`QualityConfig::frequency_tolerance`] (50 Hz ± 1%,
//!   EN 50160's band for interconnected systems) → [`FindingKind::FrequencyExcursion`]; readings
//!   during an interruption (0 Hz or no voltage) are not judged. Frequency is one value for the
//!   whole grid, so when the feeder meter measures it, only the feeder meter is judged: a grid
//!   event is one finding per feeder, not one per home. Score: the worst deviation, Hz.

use super::finding::{FeederWindow, Finding, FindingKind, MeterWindow};
use super::sampling::interval_ms;
use crate::types::{Reading, Timestamp};

/// Power-quality settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityConfig {
    /// Nominal (declared) voltage, V.
    pub nominal_voltage_v: f64,
    /// Allowed deviation of a 10-minute mean from nominal, a fraction (EN 50160: 0.10).
    pub voltage_tolerance: f64,
    /// Length of a voltage averaging block, ms (EN 50160: 10 minutes).
    pub block_ms: i64,
    /// Blocks out of limits before a finding (1).
    pub min_blocks: usize,
    /// Readings below this share of nominal are interruptions, not sags (EN 50160: 5%).
    pub interruption_share: f64,
    /// Power factor below which a meter's mean |PF| is low (0.8).
    pub pf_limit: f64,
    /// Readings with less active power than this do not count for the power factor, W (100).
    pub pf_min_power_w: f64,
    /// Time covered by readings with meaningful power before the power factor is judged, ms
    /// (one hour).
    pub pf_min_duration_ms: i64,
    /// Nominal frequency, Hz (50 or 60).
    pub nominal_frequency_hz: f64,
    /// Allowed deviation from the nominal frequency, a fraction (EN 50160: 0.01).
    pub frequency_tolerance: f64,
    /// Interval assumed for a meter with fewer than two readings, ms (15 min).
    pub default_interval_ms: i64,
}

impl QualityConfig {
    /// EN 50160 defaults for a grid of `nominal_v` volts at 50 Hz.
    pub fn for_nominal(nominal_v: f64) -> Self {
        Self {
            nominal_voltage_v: nominal_v,
            voltage_tolerance: 0.10,
            block_ms: 600_000,
            min_blocks: 1,
            interruption_share: 0.05,
            pf_limit: 0.8,
            pf_min_power_w: 100.0,
            pf_min_duration_ms: 3_600_000,
            nominal_frequency_hz: 50.0,
            frequency_tolerance: 0.01,
            default_interval_ms: 900_000,
        }
    }

    /// The same for a 60 Hz grid.
    pub fn at_60_hz(self) -> Self {
        Self {
            nominal_frequency_hz: 60.0,
            ..self
        }
    }
}

impl Default for QualityConfig {
    /// 230 V, 50 Hz.
    fn default() -> Self {
        Self::for_nominal(230.0)
    }
}

/// Power-quality findings of every meter in the window (the feeder meter first).
pub fn detect(window: &FeederWindow, config: &QualityConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let feeder_has_frequency = window.feeder.as_ref().is_some_and(|f| {
        f.readings
            .iter()
            .any(|r| r.frequency_hz.is_some_and(|hz| hz > 0.0))
    });
    for (k, m) in window.feeder.iter().chain(&window.consumers).enumerate() {
        voltage(m, config, &mut out);
        power_factor(m, config, &mut out);
        let is_feeder = k == 0 && window.feeder.is_some();
        if is_feeder || !feeder_has_frequency {
            frequency(m, config, &mut out);
        }
    }
    out
}

/// One 10-minute block's mean voltage.
struct Block {
    first: Timestamp,
    last: Timestamp,
    mean_v: f64,
}

/// The 10-minute means of a meter's voltage readings.
fn blocks(readings: &[Reading], config: &QualityConfig) -> Vec<Block> {
    let floor = config.interruption_share * config.nominal_voltage_v;
    let len = config.block_ms.max(1);
    let mut out: Vec<Block> = Vec::new();
    let mut current: Option<(i64, Block, usize)> = None;
    for r in readings {
        let Some(v) = r.voltage_v.filter(|v| v.is_finite() && *v >= floor) else {
            continue;
        };
        // The block a reading's time ends: (k·len, (k+1)·len].
        let k = (r.ts.millis() - 1).div_euclid(len);
        match &mut current {
            Some((key, b, n)) if *key == k => {
                b.mean_v += v;
                b.last = r.ts;
                *n += 1;
            }
            _ => {
                if let Some((_, b, n)) = current.take() {
                    out.push(Block {
                        mean_v: b.mean_v / n as f64,
                        ..b
                    });
                }
                current = Some((
                    k,
                    Block {
                        first: r.ts,
                        last: r.ts,
                        mean_v: v,
                    },
                    1,
                ));
            }
        }
    }
    if let Some((_, b, n)) = current {
        out.push(Block {
            mean_v: b.mean_v / n as f64,
            ..b
        });
    }
    out
}

fn voltage(m: &MeterWindow, config: &QualityConfig, out: &mut Vec<Finding>) {
    let blocks = blocks(&m.readings, config);
    let nominal = config.nominal_voltage_v;
    let lo = nominal * (1.0 - config.voltage_tolerance);
    let hi = nominal * (1.0 + config.voltage_tolerance);
    for (kind, below) in [
        (FindingKind::VoltageSag, true),
        (FindingKind::VoltageSwell, false),
    ] {
        let outside: Vec<&Block> = blocks
            .iter()
            .filter(|b| if below { b.mean_v < lo } else { b.mean_v > hi })
            .collect();
        if outside.is_empty() || outside.len() < config.min_blocks {
            continue;
        }
        let worst = outside.iter().map(|b| b.mean_v).fold(
            if below { f64::INFINITY } else { 0.0 },
            |a, v| {
                if below {
                    a.min(v)
                } else {
                    a.max(v)
                }
            },
        );
        let deviation = 100.0 * (worst - nominal).abs() / nominal;
        let share = 100.0 * outside.len() as f64 / blocks.len() as f64;
        let (word, limit) = if below { ("below", lo) } else { ("above", hi) };
        out.push(Finding {
            meter_id: m.info.meter_id.clone(),
            kind,
            score: deviation,
            from: outside[0].first,
            to: outside[outside.len() - 1].last,
            explanation: format!(
                "{} of {} 10-minute mean voltages {word} {limit:.1} V (worst {worst:.1} V, \
                 {deviation:.1}% from {nominal:.0} V); {share:.1}% of blocks outside ±{:.0}% \
                 (EN 50160 allows 5% over a week)",
                outside.len(),
                blocks.len(),
                100.0 * config.voltage_tolerance
            ),
        });
    }
}

fn power_factor(m: &MeterWindow, config: &QualityConfig, out: &mut Vec<Finding>) {
    let interval = interval_ms(&m.readings, config.default_interval_ms);
    let loaded: Vec<(&Reading, f64)> = m
        .readings
        .iter()
        .filter(|r| r.power_w.is_some_and(|p| p.abs() >= config.pf_min_power_w))
        .filter_map(|r| {
            r.power_factor
                .filter(|pf| pf.is_finite())
                .map(|pf| (r, pf.abs()))
        })
        .collect();
    let covered = (loaded.len() as i64).saturating_mul(interval);
    if loaded.is_empty() || covered < config.pf_min_duration_ms {
        return;
    }
    let mean = loaded.iter().map(|(_, pf)| pf).sum::<f64>() / loaded.len() as f64;
    if mean >= config.pf_limit {
        return;
    }
    out.push(Finding {
        meter_id: m.info.meter_id.clone(),
        kind: FindingKind::LowPowerFactor,
        score: config.pf_limit - mean,
        from: loaded[0].0.ts,
        to: loaded[loaded.len() - 1].0.ts,
        explanation: format!(
            "mean power factor {mean:.2} below {:.2} over {} readings ({:.1} h) with at least \
             {:.0} W",
            config.pf_limit,
            loaded.len(),
            covered as f64 / 3_600_000.0,
            config.pf_min_power_w
        ),
    });
}

fn frequency(m: &MeterWindow, config: &QualityConfig, out: &mut Vec<Finding>) {
    let nominal = config.nominal_frequency_hz;
    let band = nominal * config.frequency_tolerance;
    let floor = config.interruption_share * config.nominal_voltage_v;
    let judged = m.readings.iter().filter(|r| {
        // No supply: no frequency to judge (a dead meter reports 0 Hz).
        r.voltage_v.is_none_or(|v| v >= floor)
    });
    let outside: Vec<(&Reading, f64)> = judged
        .filter_map(|r| r.frequency_hz.map(|f| (r, f)))
        .filter(|(_, f)| f.is_finite() && *f > 0.0 && (f - nominal).abs() > band)
        .collect();
    let (Some(first), Some(last)) = (outside.first(), outside.last()) else {
        return;
    };
    let (worst_f, worst) = outside
        .iter()
        .map(|(_, f)| (*f, (f - nominal).abs()))
        .fold((nominal, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    out.push(Finding {
        meter_id: m.info.meter_id.clone(),
        kind: FindingKind::FrequencyExcursion,
        score: worst,
        from: first.0.ts,
        to: last.0.ts,
        explanation: format!(
            "{} readings outside {nominal:.0} Hz ± {band:.2} Hz (worst {worst_f:.2} Hz)",
            outside.len()
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::super::sampling::test_support::*;
    use super::*;
    use crate::anomaly::Rng;

    /// One consumer reading every 5 minutes for a day, voltage 230 V ± 2% noise, PF 0.95,
    /// 50 Hz ± 0.1 Hz: a healthy supply.
    fn healthy() -> FeederWindow {
        let mut rng = Rng::new(3);
        let mut readings = series("c-1", 288, |_| 0.05);
        for (i, r) in readings.iter_mut().enumerate() {
            r.ts = Timestamp::from_millis(T0 + (i as i64 + 1) * 300_000);
            r.voltage_v = Some(230.0 * (1.0 + rng.uniform(-0.02, 0.02)));
            r.frequency_hz = Some(50.0 + rng.uniform(-0.1, 0.1));
            r.power_factor = Some(0.95);
            r.power_w = Some(600.0);
        }
        FeederWindow {
            feeder: None,
            consumers: vec![consumer("c-1", readings)],
            from: Timestamp::from_millis(T0),
            to: Timestamp::from_millis(T0 + 86_400_000),
        }
    }

    fn readings(w: &mut FeederWindow) -> &mut Vec<Reading> {
        &mut w.consumers[0].readings
    }

    fn run(w: &FeederWindow) -> Vec<Finding> {
        detect(w, &QualityConfig::default())
    }

    #[test]
    fn a_healthy_supply_has_no_findings() {
        assert!(run(&healthy()).is_empty());
    }

    #[test]
    fn single_readings_below_the_limit_do_not_pull_a_ten_minute_mean_out() {
        let mut w = healthy();
        // One dip to 200 V per block: the block's mean stays near 220 V.
        for i in (0..288).step_by(2) {
            readings(&mut w)[i].voltage_v = Some(200.0);
        }
        assert!(run(&w).is_empty());
    }

    #[test]
    fn a_sustained_sag_is_counted_in_ten_minute_blocks_with_its_share() {
        let mut w = healthy();
        // 30 minutes at 190 V: three whole blocks.
        for r in &mut readings(&mut w)[120..126] {
            r.voltage_v = Some(190.0);
        }
        let f = run(&w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FindingKind::VoltageSag);
        assert!((f[0].score - 100.0 * 40.0 / 230.0).abs() < 1e-9);
        assert!(
            f[0].explanation.starts_with("3 of 144"),
            "{}",
            f[0].explanation
        );
        assert!(f[0].explanation.contains("2.1% of blocks"));
        assert_eq!(f[0].from.millis(), T0 + 121 * 300_000);
    }

    #[test]
    fn a_swell_is_reported_apart_from_a_sag() {
        let mut w = healthy();
        for r in &mut readings(&mut w)[10..12] {
            r.voltage_v = Some(260.0);
        }
        for r in &mut readings(&mut w)[200..202] {
            r.voltage_v = Some(195.0);
        }
        let kinds: Vec<FindingKind> = run(&w).iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![FindingKind::VoltageSag, FindingKind::VoltageSwell]
        );
    }

    #[test]
    fn an_interruption_is_not_a_sag_and_has_no_frequency() {
        let mut w = healthy();
        for r in &mut readings(&mut w)[50..80] {
            r.voltage_v = Some(0.0);
            r.frequency_hz = Some(0.0);
        }
        assert!(run(&w).is_empty());
    }

    #[test]
    fn the_tolerance_follows_the_nominal_voltage() {
        let mut w = healthy();
        for r in readings(&mut w) {
            r.voltage_v = Some(120.0);
        }
        assert_eq!(run(&w)[0].kind, FindingKind::VoltageSag);
        let us = QualityConfig::for_nominal(120.0).at_60_hz();
        for r in readings(&mut w) {
            r.frequency_hz = Some(60.0);
        }
        assert!(detect(&w, &us).is_empty());
    }

    #[test]
    fn a_low_power_factor_over_an_hour_of_load_is_reported() {
        let mut w = healthy();
        for r in readings(&mut w) {
            r.power_factor = Some(0.7);
        }
        let f = run(&w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FindingKind::LowPowerFactor);
        assert!((f[0].score - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_low_power_factor_at_standby_or_for_minutes_is_not() {
        let mut w = healthy();
        for (i, r) in readings(&mut w).iter_mut().enumerate() {
            r.power_factor = Some(if i < 10 { 0.3 } else { 0.5 });
            // Loaded only for the first 50 minutes; standby (40 W) after.
            if i >= 10 {
                r.power_w = Some(40.0);
            }
        }
        assert!(run(&w).is_empty());
    }

    #[test]
    fn a_negative_power_factor_counts_by_its_magnitude() {
        let mut w = healthy();
        for r in readings(&mut w) {
            r.power_factor = Some(-0.95);
        }
        assert!(run(&w).is_empty());
    }

    #[test]
    fn a_grid_frequency_excursion_is_one_finding_on_the_feeder_not_one_per_home() {
        let mut w = healthy();
        let mut second = w.consumers[0].clone();
        second.info.meter_id = crate::types::MeterId::parse("c-2").unwrap();
        w.consumers.push(second);
        let mut feeder_meter = feeder("f-1", w.consumers[0].readings.clone());
        for m in w.consumers.iter_mut().chain([&mut feeder_meter]) {
            m.readings[100].frequency_hz = Some(49.2);
        }
        w.feeder = Some(feeder_meter);
        let f = run(&w);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].meter_id.as_str(), f[0].kind),
            ("f-1", FindingKind::FrequencyExcursion)
        );
    }

    #[test]
    fn frequency_outside_one_percent_is_an_excursion_and_inside_is_not() {
        let mut w = healthy();
        readings(&mut w)[100].frequency_hz = Some(50.45);
        assert!(run(&w).is_empty());
        readings(&mut w)[101].frequency_hz = Some(49.3);
        readings(&mut w)[102].frequency_hz = Some(50.6);
        let f = run(&w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FindingKind::FrequencyExcursion);
        assert!((f[0].score - 0.7).abs() < 1e-9);
        assert!(f[0].explanation.starts_with("2 readings"));
    }
}
