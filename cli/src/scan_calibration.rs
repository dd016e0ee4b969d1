//! `meterflow eval theft --scan-thresholds`: the scan's pattern-theft and consumption-anomaly
//! thresholds against a false-finding rate. The scan scores each consumer's *latest* complete
//! day against the days before it only (its history window), so that is what is measured here:
//! for every date of the file, every meter's days in the history window ending that date are
//! scored together as one feeder's (`score_fleet`, as `meter_core::anomaly::scan::pattern_theft`
//! does), and each meter's score of that date is kept, if the day is complete.
//!
//! On the clean file this gives the distribution of latest-day scores a healthy fleet produces:
//! the false findings per 1,000 meter-days at the scan's thresholds, and the thresholds that
//! meet a target rate (the empirical quantile). On the file with h1–h6 injected it gives the
//! recall of each attack at the scan's thresholds.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use meter_core::anomaly::theft::score_fleet;
use meter_core::anomaly::{Attack, DayScore, ForestConfig, MeterDays, ScanConfig, TheftConfig};
use serde_json::{json, Value};

/// Per meter, per day: the attack injected into it, if any.
pub type Injected = Vec<Vec<Option<Attack>>>;

/// One scored latest day: meter, day index, its score and forest score.
#[derive(Debug, Clone, Copy)]
struct Latest {
    meter: usize,
    day: usize,
    score: f64,
    forest: f64,
}

/// The days of `m` dated in `(end − history, end]` and the index of `end` in `m`, or `None`
/// when there are not more than `min_days` of them (the scan leaves such a meter out) or `end`
/// is not one of them.
fn window(
    m: &MeterDays,
    end: NaiveDate,
    history: i64,
    min_days: usize,
) -> Option<(MeterDays, usize)> {
    let start = end - chrono::Duration::days(history);
    let lo = m.dates.partition_point(|d| *d <= start);
    let hi = m.dates.partition_point(|d| *d <= end);
    if hi == 0 || m.dates[hi - 1] != end || hi - lo <= min_days {
        return None;
    }
    Some((
        MeterDays {
            meter_id: m.meter_id.clone(),
            slots: m.slots,
            dates: m.dates[lo..hi].to_vec(),
            values: m.values[lo * m.slots..hi * m.slots].to_vec(),
        },
        hi - 1,
    ))
}

/// Every meter's latest-day score on every date, as a daily scan with `history` days of
/// history would see it.
fn latest_days(
    days: &[MeterDays],
    history: i64,
    theft: &TheftConfig,
    forest: &ForestConfig,
) -> Vec<Latest> {
    let mut dates: Vec<NaiveDate> = days.iter().flat_map(|m| m.dates.iter().copied()).collect();
    dates.sort_unstable();
    dates.dedup();
    let mut out = Vec::new();
    for end in dates {
        let (windows, which): (Vec<MeterDays>, Vec<(usize, usize)>) = days
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let (w, day) = window(m, end, history, theft.min_reference_days)?;
                Some((w, (i, day)))
            })
            .unzip();
        if windows.is_empty() {
            continue;
        }
        let scored = score_fleet(&windows, theft, forest);
        for ((w, (meter, day)), scores) in windows.iter().zip(&which).zip(scored) {
            let last = w.len() - 1;
            if !w.is_complete(last) {
                continue;
            }
            if let Some(s) = scores.iter().find(|s: &&DayScore| s.day == last) {
                out.push(Latest {
                    meter: *meter,
                    day: *day,
                    score: s.score,
                    forest: s.forest,
                });
            }
        }
    }
    out
}

/// The smallest threshold (on a grid of `step`) at which at most `per_1000` of `scores` in a
/// thousand are at or above it.
fn threshold_for(scores: &[f64], per_1000: f64, step: f64) -> f64 {
    let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (per_1000 / 1000.0 * sorted.len() as f64).floor() as usize;
    // Above the (allowed + 1)-th highest score, at most `allowed` remain.
    let Some(&cut) = sorted.get(allowed) else {
        return 0.0;
    };
    ((cut / step).floor() + 1.0) * step
}

/// Findings per 1,000 meter-days at the thresholds.
fn rate(rows: &[&Latest], pattern: f64, forest: f64) -> Value {
    let n = rows.len().max(1) as f64;
    let p = rows.iter().filter(|r| r.score >= pattern).count();
    let f = rows.iter().filter(|r| r.forest >= forest).count();
    let either = rows
        .iter()
        .filter(|r| r.score >= pattern || r.forest >= forest)
        .count();
    json!({
        "pattern_theft_per_1000": 1000.0 * p as f64 / n,
        "consumption_anomaly_per_1000": 1000.0 * f as f64 / n,
        "either_per_1000": 1000.0 * either as f64 / n,
        "pattern_theft": p,
        "consumption_anomaly": f,
    })
}

/// Runs the calibration: `clean` is the file as it is, `attacked` with `injected` thefts.
pub fn evaluate(
    clean: &[MeterDays],
    attacked: &[MeterDays],
    injected: &Injected,
    forest: &ForestConfig,
    per_1000: f64,
) -> Value {
    let scan = ScanConfig::default();
    let history = i64::from(scan.history_days);
    let theft = scan.theft;
    let base = latest_days(clean, history, &theft, forest);
    let all: Vec<&Latest> = base.iter().collect();
    let scores: Vec<f64> = base.iter().map(|r| r.score).collect();
    let forests: Vec<f64> = base.iter().map(|r| r.forest).collect();
    // Half the target each, so the two kinds together stay within it.
    let pattern_at = threshold_for(&scores, per_1000 / 2.0, 0.5);
    let forest_at = threshold_for(&forests, per_1000 / 2.0, 0.01);
    let hits = latest_days(attacked, history, &theft, forest);
    let clean_rows: Vec<&Latest> = hits
        .iter()
        .filter(|r| injected[r.meter][r.day].is_none())
        .collect();
    // Recall and false findings at other rates, for the trade-off.
    let curve: Vec<Value> = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
        .iter()
        .map(|&t| {
            let (p, f) = (
                threshold_for(&scores, t / 2.0, 0.5),
                threshold_for(&forests, t / 2.0, 0.01),
            );
            json!({
                "target_per_1000": t,
                "pattern_min_score": p,
                "anomaly_min_forest": f,
                "clean_file_either_per_1000": rate(&all, p, f)["either_per_1000"],
                "recall_overall": recall(&hits, injected, p, f)["overall"],
            })
        })
        .collect();
    // The scan's own thresholds.
    let at = (scan.pattern_min_score, scan.anomaly_min_forest);
    json!({
        "history_days": history,
        "target_per_1000_clean_meter_days": per_1000,
        "clean_latest_days": base.len(),
        "scan_thresholds": {
            "pattern_min_score": scan.pattern_min_score,
            "anomaly_min_forest": scan.anomaly_min_forest,
        },
        "clean_file_at_scan_thresholds": rate(&all, at.0, at.1),
        "thresholds_for_target": {
            "pattern_min_score": pattern_at,
            "anomaly_min_forest": forest_at,
            "clean_file_at_them": rate(&all, pattern_at, forest_at),
            "recall_at_them": recall(&hits, injected, pattern_at, forest_at),
        },
        "curve": curve,
        "attacked_file": {
            "latest_days": hits.len(),
            "clean_days_at_scan_thresholds": rate(&clean_rows, at.0, at.1),
            "recall_at_scan_thresholds": recall(&hits, injected, at.0, at.1),
        },
    })
}

/// Each attack's recall among the attacked latest days, by a `pattern_theft` finding alone and
/// by either finding, at the thresholds.
fn recall(hits: &[Latest], injected: &Injected, pattern: f64, forest: f64) -> Value {
    let mut by_attack: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for r in hits {
        if let Some(a) = injected[r.meter][r.day] {
            let e = by_attack.entry(a.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(r.score >= pattern);
            e.2 += usize::from(r.score >= pattern || r.forest >= forest);
        }
    }
    let row = |(n, p, e): (usize, usize, usize)| {
        let share = |k: usize| k as f64 / n.max(1) as f64;
        json!({"days": n, "pattern_theft": share(p), "either": share(e)})
    };
    let total = by_attack
        .values()
        .fold((0, 0, 0), |t, v| (t.0 + v.0, t.1 + v.1, t.2 + v.2));
    let by: BTreeMap<&str, Value> = by_attack.iter().map(|(a, v)| (*a, row(*v))).collect();
    json!({"by_attack": by, "overall": row(total)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_for_a_rate_leaves_at_most_that_many_scores_at_or_above_it() {
        let scores: Vec<f64> = (0..10_000).map(|i| f64::from(i) / 100.0).collect();
        // 1 in 1,000 of 10,000: 10 may remain, the highest being 99.90..=99.99.
        let t = threshold_for(&scores, 1.0, 0.5);
        let above = scores.iter().filter(|s| **s >= t).count();
        assert!(above <= 10, "{t}: {above}");
        assert_eq!(t, 100.0);
        let t = threshold_for(&scores, 10.0, 0.01);
        assert!(scores.iter().filter(|s| **s >= t).count() <= 100, "{t}");
        assert!((t - 99.0).abs() < 1e-9, "{t}");
    }

    #[test]
    fn a_window_keeps_the_history_days_ending_on_the_date_and_needs_enough_of_them() {
        let d0 = NaiveDate::from_ymd_opt(2013, 1, 1).unwrap();
        let m = MeterDays {
            meter_id: meter_core::MeterId::parse("m").unwrap(),
            slots: 2,
            dates: (0..20).map(|i| d0 + chrono::Duration::days(i)).collect(),
            values: (0..40).map(f64::from).collect(),
        };
        let (w, last) = window(&m, d0 + chrono::Duration::days(15), 10, 7).unwrap();
        assert_eq!(w.len(), 10);
        assert_eq!(last, 15);
        assert_eq!(w.dates[0], d0 + chrono::Duration::days(6));
        assert_eq!(w.day(9), &[30.0, 31.0]);
        assert!(window(&m, d0 + chrono::Duration::days(5), 10, 7).is_none());
        assert!(window(&m, d0 + chrono::Duration::days(30), 10, 7).is_none());
    }
}
