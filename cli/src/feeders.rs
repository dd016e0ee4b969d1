//! `meterflow eval theft --feeders K`: the feeder energy balance on synthetic feeders built
//! from real meters. Each trial shuffles the meters into K feeders; a feeder meter measures
//! its consumers' true consumption plus technical loss (a no-load term, an I²-proxy term whose
//! coefficient wanders ±10% from day to day, so the loss model is never exact) and ±0.2%
//! meter noise; consumer meters add ±0.5%. Half of the feeders, seeded, get thieves: a seeded
//! 5–30% of their consumers (at least one) start under-reporting on a random day with one of
//! the energy-reducing patterns h1–h4, fresh every day. The loss model is fitted on each
//! feeder's first 28 (clean) days; the CUSUM runs over everything.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use meter_core::anomaly::balance::{
    daily_balance, daily_totals, rank_suspects, CusumConfig, LossModel,
};
use meter_core::anomaly::{Attack, MeterDays, Rng};
use serde_json::{json, Value};

/// Days the loss model is fitted on (theft never starts before them plus a week).
const CALIBRATION_DAYS: usize = 28;

/// Fewest common days for a feeder to be evaluated.
const MIN_DAYS: usize = CALIBRATION_DAYS + 7 + 21;

/// Thefts at least this share of the feeder's energy are the ones the target is about.
const TARGET_SHARE: f64 = 0.05;

/// One feeder's outcome.
#[derive(Debug, Default)]
struct Outcome {
    /// Stolen share of the feeder's energy after onset (0: a clean feeder).
    share: f64,
    detected: bool,
    delay_days: Option<usize>,
    top_suspect_is_thief: Option<bool>,
    /// Days in alarm while no theft was going on, and days without theft.
    false_alarm_days: usize,
    clean_days: usize,
}

/// Runs `trials` shuffles of the meters into `k` feeders; returns the report.
pub fn evaluate(days: &[MeterDays], k: usize, trials: usize, seed: u64) -> Value {
    let complete: Vec<BTreeSet<NaiveDate>> = days
        .iter()
        .map(|m| {
            (0..m.len())
                .filter(|&i| {
                    let seen = m.day(i).iter().filter(|v| v.is_finite()).count();
                    seen * 10 >= m.slots * 9
                })
                .map(|i| m.dates[i])
                .collect()
        })
        .collect();
    let mut outcomes = Vec::new();
    let mut skipped = 0;
    for trial in 0..trials {
        let mut rng = Rng::derive(seed, 10_000 + trial as u64);
        let mut order: Vec<usize> = (0..days.len()).filter(|&m| days[m].slots == 48).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for f in 0..k {
            let members: Vec<usize> = order.iter().copied().skip(f).step_by(k).collect();
            match feeder(days, &complete, &members, &mut rng) {
                Some(o) => outcomes.push(o),
                None => skipped += 1,
            }
        }
    }
    summarise(&outcomes, k, trials, skipped)
}

/// Builds, attacks and checks one feeder; `None` when it has too few days on which at least
/// half its meters have 90% of their intervals.
fn feeder(
    days: &[MeterDays],
    complete: &[BTreeSet<NaiveDate>],
    members: &[usize],
    rng: &mut Rng,
) -> Option<Outcome> {
    // A feeder's days are those on which at least half of its meters have data; a meter
    // without data on a day is a consumer not connected that day (it consumes nothing, on the
    // feeder as on its own meter), as when premises are empty or meters are swapped.
    let all: BTreeSet<NaiveDate> = members
        .iter()
        .flat_map(|&m| complete[m].iter().copied())
        .collect();
    let common: Vec<NaiveDate> = all
        .into_iter()
        .filter(|d| {
            2 * members.iter().filter(|&&m| complete[m].contains(d)).count() >= members.len()
        })
        .collect();
    if common.len() < MIN_DAYS {
        return None;
    }
    let slots = 48;
    let n = common.len();
    // True consumption per member, day after day on the common dates.
    let truth: Vec<Vec<f64>> =
        members
            .iter()
            .map(|&m| {
                let meter = &days[m];
                let mut v = Vec::with_capacity(n * slots);
                for d in &common {
                    match meter.dates.binary_search(d) {
                        // A missing interval (at most a tenth of the day) consumed nothing in this
                        // synthetic world: feeder and consumer agree on it.
                        Ok(i) if complete[m].contains(d) => v.extend(
                            meter
                                .day(i)
                                .iter()
                                .map(|x| if x.is_finite() { *x } else { 0.0 }),
                        ),
                        _ => v.extend(std::iter::repeat_n(0.0, slots)),
                    }
                }
                v
            })
            .collect();
    let total: Vec<f64> = (0..n * slots)
        .map(|t| truth.iter().map(|x| x[t]).sum())
        .collect();
    let mean = total.iter().sum::<f64>() / total.len() as f64;
    // Losses of about 1% no-load and 3% I²R at the mean load.
    let true_loss = LossModel {
        no_load: 0.01 * mean,
        quadratic: 0.03 / mean.max(1e-9),
    };
    let mut feeder = Vec::with_capacity(n * slots);
    for day in total.chunks_exact(slots) {
        let wander = 1.0 + 0.1 * rng.normal();
        for &x in day {
            let loss = true_loss.no_load + true_loss.quadratic * wander * x * x;
            feeder.push((x + loss) * (1.0 + 0.002 * rng.normal()));
        }
    }
    // Thieves.
    let has_theft = rng.unit() < 0.5;
    let onset = CALIBRATION_DAYS + 7 + rng.below(n - MIN_DAYS + 14);
    let mut thieves = Vec::new();
    if has_theft {
        let count = ((rng.uniform(0.05, 0.3) * members.len() as f64).round() as usize).max(1);
        let mut pool: Vec<usize> = (0..members.len()).collect();
        for _ in 0..count {
            thieves.push(pool.swap_remove(rng.below(pool.len())));
        }
    }
    let mut reported: Vec<Vec<f64>> = truth.clone();
    let mut stolen = 0.0;
    for &j in &thieves {
        let attack = [Attack::H1, Attack::H2, Attack::H3, Attack::H4][rng.below(4)];
        for d in onset..n {
            let day = &mut reported[j][d * slots..(d + 1) * slots];
            let before: f64 = day.iter().sum();
            attack.inject(day, rng);
            stolen += before - day.iter().sum::<f64>();
        }
    }
    for r in &mut reported {
        for v in r.iter_mut() {
            *v *= 1.0 + 0.005 * rng.normal();
        }
    }
    let consumers: Vec<f64> = (0..n * slots)
        .map(|t| reported.iter().map(|x| x[t]).sum())
        .collect();
    let cal = CALIBRATION_DAYS * slots;
    let loss = LossModel::fit(&feeder[..cal], &consumers[..cal])?;
    let balance = daily_balance(&feeder, &consumers, slots, &loss, &CusumConfig::default());
    let after: f64 = feeder[onset * slots..]
        .iter()
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let mut out = Outcome {
        share: if has_theft { stolen / after } else { 0.0 },
        ..Outcome::default()
    };
    for (d, b) in balance.iter().enumerate().skip(CALIBRATION_DAYS) {
        let theft_on = has_theft && d >= onset;
        if !theft_on {
            out.clean_days += 1;
            out.false_alarm_days += usize::from(b.alarm);
        }
    }
    if has_theft {
        if let Some(first) = (onset..n).find(|&d| balance[d].alarm) {
            out.detected = true;
            out.delay_days = Some(first - onset);
            let daily: Vec<Vec<f64>> = reported.iter().map(|r| daily_totals(r, slots)).collect();
            let feeder_day: f64 = feeder[first * slots..(first + 1) * slots].iter().sum();
            let missing = balance[first].unaccounted * feeder_day;
            let ranked = rank_suspects(&daily, balance[first].onset, first, 14, missing);
            out.top_suspect_is_thief = ranked.first().map(|(j, _)| thieves.contains(j));
        }
    }
    Some(out)
}

fn summarise(outcomes: &[Outcome], k: usize, trials: usize, skipped: usize) -> Value {
    let theft: Vec<&Outcome> = outcomes.iter().filter(|o| o.share > 0.0).collect();
    let big: Vec<&Outcome> = theft
        .iter()
        .copied()
        .filter(|o| o.share >= TARGET_SHARE)
        .collect();
    let recall = |set: &[&Outcome]| {
        (!set.is_empty())
            .then(|| set.iter().filter(|o| o.detected).count() as f64 / set.len() as f64)
    };
    let mut delays: Vec<usize> = big.iter().filter_map(|o| o.delay_days).collect();
    delays.sort_unstable();
    let clean_days: usize = outcomes.iter().map(|o| o.clean_days).sum();
    let false_days: usize = outcomes.iter().map(|o| o.false_alarm_days).sum();
    let clean_feeders: Vec<&Outcome> = outcomes.iter().filter(|o| o.share == 0.0).collect();
    let suspects: Vec<bool> = theft
        .iter()
        .filter_map(|o| o.top_suspect_is_thief)
        .collect();
    json!({
        "feeders_per_trial": k,
        "trials": trials,
        "feeders_evaluated": outcomes.len(),
        "feeders_skipped_too_few_common_days": skipped,
        "feeders_with_theft": theft.len(),
        "feeders_with_theft_ge_5pct": big.len(),
        "recall_theft_ge_5pct": recall(&big),
        "recall_all_thefts": recall(&theft),
        "false_alarm_rate_feeder_days": (clean_days > 0).then(|| false_days as f64 / clean_days as f64),
        "clean_feeders_that_ever_alarmed": clean_feeders.iter().filter(|o| o.false_alarm_days > 0).count(),
        "clean_feeders": clean_feeders.len(),
        "detection_delay_days_median": delays.get(delays.len() / 2),
        "detection_delay_days_p90": delays.get(delays.len() * 9 / 10),
        "detection_delay_days_max": delays.last(),
        "top_suspect_is_a_thief": (!suspects.is_empty())
            .then(|| suspects.iter().filter(|&&b| b).count() as f64 / suspects.len() as f64),
        "theft_share_of_feeder_energy": {
            "min": theft.iter().map(|o| o.share).fold(f64::INFINITY, f64::min),
            "max": theft.iter().map(|o| o.share).fold(0.0, f64::max),
        },
    })
}
