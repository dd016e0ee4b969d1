//! `meterflow eval vee`: meter-core's history-based bad-data checks on real interval data with
//! seeded faults injected. The file has energy only, so each meter's readings are completed as
//! a healthy meter would send them: the register is the running sum, mean power the interval's
//! energy over its length, voltage 230 V. Then, per meter and seeded, a few faults of each kind
//! are planted in disjoint windows: the register freezing for 2–12 hours while the load (and so
//! the reported power) carries on, 12–48 hours of zero energy and power with voltage present,
//! and single negative intervals; with `--plant-spikes`, also single intervals raised by 2–10 kWh
//! (per half-hour; 4–20 kW on top of the load, beyond what a home's supply carries). A planted
//! fault counts as found when a finding of its kind overlaps it; a finding away from every
//! planted fault is counted per clean interval (on real data some are true: a home empty for
//! days, a real spike).
//!
//! A frozen register or a zero run planted where the home used nothing at all leaves the
//! readings exactly as they were: there is no fault to find, and no check could tell. Such
//! plants are counted as `unobservable`, apart from `planted`, and left out of the recall.

use std::collections::BTreeMap;

use meter_core::anomaly::vee::{check, IntervalReading, VeeConfig, VeeKind};
use meter_core::anomaly::Rng;
use meter_core::series::MeterSeries;
use serde_json::json;

use crate::forecast::{read_input, FileArgs};

/// `meterflow eval vee` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalVeeArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Faults of each kind planted per meter.
    #[arg(long, default_value_t = 5)]
    pub faults_per_meter: usize,
    /// Seed of the planted faults.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Also plant single-interval spikes (2–10 kWh per half-hour on top of the load).
    #[arg(long)]
    pub plant_spikes: bool,
    /// Override the spike check's `spike_over_peak` (0 turns the peak test off, as before it
    /// existed).
    #[arg(long)]
    pub spike_over_peak: Option<f64>,
    /// Override the spike check's `spike_peak_skips_flagged`.
    #[arg(long)]
    pub spike_peak_skips_flagged: Option<bool>,
    /// Also list every planted fault that was missed (meter, kind, window, the true energy in
    /// it), to see why.
    #[arg(long)]
    pub list_missed: bool,
}

/// Counts for one kind of fault.
#[derive(Debug, Default)]
struct Tally {
    planted: usize,
    /// Planted where the home used nothing: the readings did not change.
    unobservable: usize,
    found: usize,
    false_findings: usize,
    /// Meter-days (local) holding at least one of those findings.
    false_days: std::collections::BTreeSet<(usize, chrono::NaiveDate)>,
}

/// A healthy meter's readings for a series.
fn readings(m: &MeterSeries, interval_ms: i64) -> Vec<IntervalReading> {
    let hours = interval_ms as f64 / 3_600_000.0;
    let mut register = 0.0;
    m.kwh()
        .map(|(end, kwh)| {
            register += kwh;
            IntervalReading {
                end,
                kwh,
                register_kwh: Some(register),
                mean_power_kw: Some(kwh / hours),
                voltage_v: Some(230.0),
            }
        })
        .collect()
}

/// Runs `meterflow eval vee`.
pub fn run(args: &EvalVeeArgs) -> anyhow::Result<()> {
    let file = read_input(&args.file)?;
    let mut tallies: BTreeMap<VeeKind, Tally> = BTreeMap::new();
    let mut clean_intervals = 0usize;
    let mut meter_days = 0usize;
    let mut missed: Vec<serde_json::Value> = Vec::new();
    for (n, m) in file.meters.iter().enumerate() {
        let Some(interval) = m.interval_ms else {
            continue;
        };
        let mut r = readings(m, interval);
        let per_hour = (3_600_000 / interval).max(1) as usize;
        let mut rng = Rng::derive(args.seed, n as u64);
        let mut planted: Vec<(VeeKind, usize, usize)> = Vec::new();
        // The true energy in each planted window, for the list of misses.
        let mut true_kwh: Vec<f64> = Vec::new();
        let mut taken = vec![false; r.len()];
        let mut plans = vec![
            (VeeKind::StuckRegister, 2 * per_hour, 12 * per_hour),
            (VeeKind::ZeroRun, 12 * per_hour, 48 * per_hour),
            (VeeKind::Negative, 1, 1),
        ];
        // Last, so the other plants are drawn exactly as without spikes.
        if args.plant_spikes {
            plans.push((VeeKind::Spike, 1, 1));
        }
        let hours = interval as f64 / 3_600_000.0;
        for (kind, min, max) in plans {
            for _ in 0..args.faults_per_meter {
                let len = min + rng.below(max - min + 1);
                if r.len() <= len + 2 {
                    continue;
                }
                let start = 1 + rng.below(r.len() - len - 1);
                // A margin of a day keeps faults apart, so each finding has one cause.
                let lo = start.saturating_sub(48);
                let hi = (start + len + 48).min(r.len());
                if taken[lo..hi].iter().any(|&t| t) {
                    continue;
                }
                taken[lo..hi].fill(true);
                true_kwh.push(r[start..start + len].iter().map(|x| x.kwh).sum());
                // Drawn for spikes only, so the other plants' draws are as without them.
                let spike_kwh = if kind == VeeKind::Spike {
                    rng.uniform(2.0, 10.0) * hours / 0.5
                } else {
                    0.0
                };
                plant(&mut r, kind, start, len, (spike_kwh, hours));
                planted.push((kind, start, start + len - 1));
            }
        }
        clean_intervals += taken.iter().filter(|&&t| !t).count();
        let mut config = VeeConfig::for_interval(interval);
        if let Some(k) = args.spike_over_peak {
            config.spike_over_peak = k;
        }
        if let Some(skip) = args.spike_peak_skips_flagged {
            config.spike_peak_skips_flagged = skip;
        }
        let findings = check(&r, &config);
        let index = |t: meter_core::Timestamp| r.partition_point(|x| x.end < t);
        // The local day of an interval ending at `t` (its end belongs to the day it closes).
        let local_day = |t: meter_core::Timestamp| {
            t.add_millis(-1)
                .to_datetime()
                .with_timezone(&file.zone)
                .date_naive()
        };
        meter_days += r
            .iter()
            .map(|x| local_day(x.end))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        for (&(kind, s, e), &kwh) in planted.iter().zip(&true_kwh) {
            let tally = tallies.entry(kind).or_default();
            if kwh == 0.0 && matches!(kind, VeeKind::StuckRegister | VeeKind::ZeroRun) {
                tally.unobservable += 1;
                continue;
            }
            tally.planted += 1;
            let hit = findings.iter().any(|f| {
                f.kind == kind && index(f.from) <= e && index(f.to) >= s.saturating_sub(1)
            });
            tally.found += usize::from(hit);
            if !hit && args.list_missed {
                missed.push(json!({
                    "meter": m.meter_id.as_str(),
                    "kind": kind.as_str(),
                    "from": r[s].end.to_rfc3339(),
                    "intervals": e - s + 1,
                    "true_kwh": kwh,
                }));
            }
        }
        for f in &findings {
            let (a, b) = (index(f.from), index(f.to));
            // A planted fault can trip other checks too (a frozen register under load is also
            // energy disagreeing with power): those are not false positives either.
            let near_planted = planted.iter().any(|&(_, s, e)| a <= e + 1 && b + 1 >= s);
            if !near_planted {
                let tally = tallies.entry(f.kind).or_default();
                tally.false_findings += 1;
                tally.false_days.insert((n, local_day(f.from)));
            }
        }
    }
    let by_kind: BTreeMap<&str, serde_json::Value> = tallies
        .iter()
        .map(|(k, t)| {
            (
                k.as_str(),
                json!({
                    "planted": t.planted,
                    "unobservable": t.unobservable,
                    "found": t.found,
                    "recall": (t.planted > 0).then(|| t.found as f64 / t.planted as f64),
                    "other_findings": t.false_findings,
                    "other_findings_per_clean_interval": t.false_findings as f64 / clean_intervals.max(1) as f64,
                    "meter_days_with_other_findings": t.false_days.len(),
                    "share_of_meter_days": t.false_days.len() as f64 / meter_days.max(1) as f64,
                }),
            )
        })
        .collect();
    let report = json!({
        "input": args.file.input.display().to_string(),
        "meters": file.meters.len(),
        "clean_intervals": clean_intervals,
        "meter_days": meter_days,
        "seed": args.seed,
        "by_kind": by_kind,
    });
    let report = if args.list_missed {
        let mut report = report;
        report["missed"] = serde_json::Value::Array(missed);
        report
    } else {
        report
    };
    say!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Plants one fault in `r[start..start + len]`; a spike adds `spike.0` kWh to an interval of
/// `spike.1` hours.
fn plant(r: &mut [IntervalReading], kind: VeeKind, start: usize, len: usize, spike: (f64, f64)) {
    match kind {
        VeeKind::StuckRegister => {
            // The register freezes; the load carries on, so power is still reported, and the
            // energy derived from the register is 0. When the register wakes up it jumps by
            // what it missed, so the readings after the window are unchanged.
            let frozen = r[start - 1].register_kwh;
            for x in &mut r[start..start + len] {
                x.register_kwh = frozen;
                x.kwh = 0.0;
            }
        }
        VeeKind::ZeroRun => {
            for x in &mut r[start..start + len] {
                x.kwh = 0.0;
                x.mean_power_kw = Some(0.0);
            }
            let frozen = r[start - 1].register_kwh;
            for x in &mut r[start..start + len] {
                x.register_kwh = frozen;
            }
        }
        VeeKind::Spike => {
            // The meter counted it: the register carries the extra energy from here on, and
            // the power agrees, so only the spike check can object.
            let (spike_kwh, hours) = spike;
            r[start].kwh += spike_kwh;
            r[start].mean_power_kw = r[start].mean_power_kw.map(|p| p + spike_kwh / hours);
            for x in &mut r[start..] {
                x.register_kwh = x.register_kwh.map(|v| v + spike_kwh);
            }
        }
        _ => {
            r[start].kwh = -r[start].kwh.abs().max(0.1);
            r[start].mean_power_kw = None;
        }
    }
}
