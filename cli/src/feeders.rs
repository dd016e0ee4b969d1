//! `meterflow eval theft --feeders K`: the feeder energy balance on synthetic feeders built
//! from real meters. Each trial shuffles the meters into K feeders; a feeder meter measures
//! its consumers' true consumption plus technical loss (a no-load term, an I²-proxy term whose
//! coefficient wanders ±10% from day to day, so the loss model is never exact) and ±0.2%
//! meter noise; consumer meters add ±0.5%. Half of the feeders, seeded, get thieves: a seeded
//! 5–30% of their consumers (at least one) start under-reporting on a random day with one of
//! the energy-reducing patterns h1–h4, fresh every day.
//!
//! Each feeder is judged twice, on the same consumers and thieves:
//! - *daily, fitted*: the loss model is fitted on the feeder's first 28 (clean) days and the
//!   daily CUSUM ([`daily_balance`]) runs over everything;
//! - *hourly, rated* (what the scan runs on a feeder whose rating the registry knows): the
//!   feeder gets a rating (1.3 × its peak half-hourly demand in kVA at power factor 0.95, rounded
//!   up to 5 kVA), its meter measures the true load plus the losses [`RatedLoss::default`]
//!   models for that rating, the load-loss term wandering ±10% from day to day, and ±0.2% noise;
//!   the scan's hourly CUSUM ([`block_balance`]) runs from the first hour with no calibration,
//!   and at the first alarm the consumers are ranked as the scan ranks them
//!   ([`rank_block_suspects`]).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use meter_core::anomaly::balance::{
    block_balance, daily_balance, daily_totals, rank_block_suspects, rank_suspects, CusumConfig,
    LossModel, RatedLoss,
};
use meter_core::anomaly::{Attack, MeterDays, Rng};
use serde_json::{json, Value};

/// Days the loss model is fitted on (theft never starts before them plus a week).
const CALIBRATION_DAYS: usize = 28;

/// Fewest common days for a feeder to be evaluated.
const MIN_DAYS: usize = CALIBRATION_DAYS + 7 + 21;

/// Thefts at least this share of the feeder's energy are the ones the target is about.
const TARGET_SHARE: f64 = 0.05;

/// Intervals a day (the evaluation uses half-hourly meters).
const SLOTS: usize = 48;

/// Intervals an hour: the hourly balance's block.
const BLOCK: usize = 2;

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
    /// The same feeder, rated, judged hour by hour.
    hourly: Hourly,
}

/// A rated feeder's outcome on the hourly balance.
#[derive(Debug, Default)]
struct Hourly {
    rating_kva: f64,
    detected: bool,
    delay_hours: Option<usize>,
    top_suspect_is_thief: Option<bool>,
    /// Days with an alarmed hour while no theft was going on, and days without theft.
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
    let slots = SLOTS;
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
    let (rating_kva, rated_feeder) = rated(&total, rng)?;
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
    let hourly = judge_hourly(
        &rated_feeder,
        &consumers,
        &reported,
        rating_kva,
        has_theft.then_some(onset),
        &thieves,
    )?;
    let cal = CALIBRATION_DAYS * slots;
    let loss = LossModel::fit(&feeder[..cal], &consumers[..cal])?;
    let balance = daily_balance(&feeder, &consumers, slots, &loss, &CusumConfig::default());
    let after: f64 = feeder[onset * slots..]
        .iter()
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let mut out = Outcome {
        share: if has_theft { stolen / after } else { 0.0 },
        hourly,
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

/// The feeder's rating and what its meter measures when rated so: `total` (the true load per
/// interval) plus the losses [`RatedLoss::default`] models for that rating, the load-loss term
/// off by a daily ±10% (no real feeder follows its model exactly), ±0.2% meter noise.
fn rated(total: &[f64], rng: &mut Rng) -> Option<(f64, Vec<f64>)> {
    let interval_h = 24.0 / SLOTS as f64;
    let nominal = RatedLoss::default();
    let peak_kw = total.iter().fold(0.0, |m: f64, x| m.max(*x)) / interval_h;
    let rating_kva = ((1.3 * peak_kw / nominal.power_factor) / 5.0)
        .ceil()
        .max(1.0)
        * 5.0;
    let mut out = Vec::with_capacity(total.len());
    for day in total.chunks_exact(SLOTS) {
        let wandering = RatedLoss {
            full_load_share: nominal.full_load_share * (1.0 + 0.1 * rng.normal()),
            ..nominal
        };
        let model = wandering.model(rating_kva, interval_h)?;
        for &x in day {
            // The meter measures the load plus the losses, which depend on what it measures: a
            // few fixed-point steps (the loss is a few percent, so they converge at once).
            let metered = (0..8).fold(x, |e, _| x + model.loss(e));
            out.push(metered * (1.0 + 0.002 * rng.normal()));
        }
    }
    Some((rating_kva, out))
}

/// The scan's hourly balance on a rated feeder: `feeder` as metered, `consumers` their reported
/// sum, `reported` each one's, per interval; thieves from day `onset` (`None`: a clean feeder).
fn judge_hourly(
    feeder: &[f64],
    consumers: &[f64],
    reported: &[Vec<f64>],
    rating_kva: f64,
    onset: Option<usize>,
    thieves: &[usize],
) -> Option<Hourly> {
    let interval_h = 24.0 / SLOTS as f64;
    let loss = RatedLoss::default().model(rating_kva, interval_h)?;
    let balance = block_balance(
        feeder,
        consumers,
        BLOCK,
        SLOTS,
        &loss,
        &CusumConfig::default(),
    );
    let per_day = SLOTS / BLOCK;
    let mut out = Hourly {
        rating_kva,
        ..Hourly::default()
    };
    for (d, hours) in balance.chunks(per_day).enumerate() {
        if onset.is_none_or(|o| d < o) {
            out.clean_days += 1;
            out.false_alarm_days += usize::from(hours.iter().any(|b| b.alarm));
        }
    }
    let Some(onset) = onset else {
        return Some(out);
    };
    let start = onset * per_day;
    let Some(first) = (start..balance.len()).find(|&b| balance[b].alarm) else {
        return Some(out);
    };
    out.detected = true;
    out.delay_hours = Some(first - start);
    let per_block = |v: &[f64]| -> Vec<f64> { v.chunks(BLOCK).map(|b| b.iter().sum()).collect() };
    let truth = per_block(
        &feeder
            .iter()
            .map(|e| e - loss.loss(*e))
            .collect::<Vec<f64>>(),
    );
    let own: Vec<Vec<f64>> = reported.iter().map(|r| per_block(r)).collect();
    let ranked = rank_block_suspects(
        &own,
        &truth,
        per_day,
        balance[first].onset,
        first,
        7 * per_day,
    );
    out.top_suspect_is_thief = ranked.first().map(|(j, _)| thieves.contains(j));
    Some(out)
}

/// The feeders with theft, and those whose theft is at least [`TARGET_SHARE`] of their energy.
fn theft_sets(outcomes: &[Outcome]) -> (Vec<&Outcome>, Vec<&Outcome>) {
    let theft: Vec<&Outcome> = outcomes.iter().filter(|o| o.share > 0.0).collect();
    let big = theft
        .iter()
        .copied()
        .filter(|o| o.share >= TARGET_SHARE)
        .collect();
    (theft, big)
}

/// The share of `set` for which `found` holds (`None` for an empty set).
fn recall(set: &[&Outcome], found: impl Fn(&Outcome) -> bool) -> Option<f64> {
    (!set.is_empty()).then(|| set.iter().filter(|o| found(o)).count() as f64 / set.len() as f64)
}

fn summarise(outcomes: &[Outcome], k: usize, trials: usize, skipped: usize) -> Value {
    let (theft, big) = theft_sets(outcomes);
    let recall = |set: &[&Outcome]| recall(set, |o| o.detected);
    let mut delays: Vec<usize> = big.iter().filter_map(|o| o.delay_days).collect();
    delays.sort_unstable();
    let clean_days: usize = outcomes.iter().map(|o| o.clean_days).sum();
    let false_days: usize = outcomes.iter().map(|o| o.false_alarm_days).sum();
    let clean_feeders: Vec<&Outcome> = outcomes.iter().filter(|o| o.share == 0.0).collect();
    let suspects: Vec<bool> = theft
        .iter()
        .filter_map(|o| o.top_suspect_is_thief)
        .collect();
    let hourly = summarise_hourly(outcomes);
    json!({
        "hourly_rated": hourly,
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

/// The hourly rated balance's figures, as [`summarise`] gives the daily ones.
fn summarise_hourly(outcomes: &[Outcome]) -> Value {
    let (theft, big) = theft_sets(outcomes);
    let recall = |set: &[&Outcome]| recall(set, |o| o.hourly.detected);
    let mut delays: Vec<usize> = big.iter().filter_map(|o| o.hourly.delay_hours).collect();
    delays.sort_unstable();
    let clean_days: usize = outcomes.iter().map(|o| o.hourly.clean_days).sum();
    let false_days: usize = outcomes.iter().map(|o| o.hourly.false_alarm_days).sum();
    let clean_feeders: Vec<&Outcome> = outcomes.iter().filter(|o| o.share == 0.0).collect();
    let suspects: Vec<bool> = theft
        .iter()
        .filter_map(|o| o.hourly.top_suspect_is_thief)
        .collect();
    let ratings: Vec<f64> = outcomes.iter().map(|o| o.hourly.rating_kva).collect();
    json!({
        "loss_model": "RatedLoss::default() from the feeder's rating; CUSUM hour by hour from the first hour",
        "rating_kva": {
            "min": ratings.iter().copied().fold(f64::INFINITY, f64::min),
            "max": ratings.iter().copied().fold(0.0, f64::max),
        },
        "recall_theft_ge_5pct": recall(&big),
        "recall_all_thefts": recall(&theft),
        "false_alarm_rate_feeder_days": (clean_days > 0).then(|| false_days as f64 / clean_days as f64),
        "false_alarm_feeder_days": false_days,
        "clean_feeder_days": clean_days,
        "clean_feeders_that_ever_alarmed": clean_feeders.iter().filter(|o| o.hourly.false_alarm_days > 0).count(),
        "detection_delay_hours_median": delays.get(delays.len() / 2),
        "detection_delay_hours_p90": delays.get(delays.len() * 9 / 10),
        "detection_delay_hours_max": delays.last(),
        "top_suspect_is_a_thief": (!suspects.is_empty())
            .then(|| suspects.iter().filter(|&&b| b).count() as f64 / suspects.len() as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `meters` half-hourly household-like meters over `days` days, ±15% a day, ±20% an interval.
    fn fleet(meters: usize, days: usize) -> Vec<MeterDays> {
        let start = NaiveDate::from_ymd_opt(2013, 1, 1).unwrap();
        (0..meters)
            .map(|m| {
                let mut rng = Rng::new(m as u64);
                let size = rng.uniform(0.5, 1.5);
                let mut values = Vec::with_capacity(days * SLOTS);
                for _ in 0..days {
                    let level = size * rng.uniform(0.85, 1.15);
                    for k in 0..SLOTS {
                        let h = k as f64 / 2.0;
                        let shape = 0.15 + (-((h - 19.0) / 2.0f64).powi(2)).exp();
                        values.push(level * shape * rng.uniform(0.8, 1.2));
                    }
                }
                MeterDays {
                    meter_id: meter_core::MeterId::parse(&format!("m{m}")).unwrap(),
                    slots: SLOTS,
                    dates: (0..days)
                        .map(|i| start + chrono::Days::new(i as u64))
                        .collect(),
                    values,
                }
            })
            .collect()
    }

    #[test]
    fn rated_feeders_are_judged_hour_by_hour_and_their_thefts_found_without_false_alarms() {
        let report = evaluate(&fleet(12, 100), 2, 6, 3);
        let hourly = &report["hourly_rated"];
        assert_eq!(report["feeders_evaluated"], 12, "{report}");
        assert!(
            report["feeders_with_theft"].as_u64().unwrap() > 0,
            "{report}"
        );
        assert_eq!(hourly["recall_theft_ge_5pct"], 1.0, "{hourly}");
        assert_eq!(hourly["false_alarm_feeder_days"], 0, "{hourly}");
        assert!(
            hourly["clean_feeder_days"].as_u64().unwrap() > 500,
            "{hourly}"
        );
        // Found within days, in hours: the hourly path, not the daily one, was measured.
        let delay = hourly["detection_delay_hours_max"].as_u64().unwrap();
        assert!(delay < 7 * 24, "{hourly}");
        let rating = hourly["rating_kva"]["min"].as_f64().unwrap();
        assert!(rating >= 5.0 && rating % 5.0 == 0.0, "{hourly}");
    }

    #[test]
    fn a_rated_feeder_meters_its_load_plus_the_rated_models_losses() {
        let total = vec![1.0; SLOTS * 3];
        let (rating, metered) = rated(&total, &mut Rng::new(1)).unwrap();
        // 2 kW peak → 1.3 · 2 / 0.95 = 2.7 kVA → 5 kVA.
        assert_eq!(rating, 5.0);
        let model = RatedLoss::default().model(rating, 0.5).unwrap();
        let expected = 1.0 + model.loss(1.0 + model.loss(1.0));
        for m in metered {
            assert!((m / expected - 1.0).abs() < 0.02, "{m} vs {expected}");
        }
    }
}
