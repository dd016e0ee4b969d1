//! Feeder energy balance: the energy a feeder (distribution-side) meter measured, less what its
//! consumer meters reported, less the modelled technical loss, is energy nobody paid for. A
//! sustained loss of a few percent is caught with a one-sided CUSUM on the daily unaccounted
//! share, which lets day-to-day noise (meter error, loss-model error) cancel out; when it fires,
//! the consumers are ranked by how much of the missing energy their own reported drop explains.
//!
//! Technical loss per interval = a no-load term (transformer core) + a term proportional to the
//! square of the current, for which the feeder's interval energy squared stands in (at a near
//! constant voltage, I ∝ P). Both come from the feeder's rating when the registry knows it
//! ([`RatedLoss`]: a physical model that needs no history, so a scan can judge the balance from
//! its first hour), are configured, or are fitted on a period known to be clean
//! ([`LossModel::fit`]).
//!
//! Two ways to accumulate: [`daily_balance`] (one step a day, what the offline evaluation runs)
//! and [`block_balance`] (one step a block of intervals, e.g. an hour, in the same units of
//! daily energy, so the alarm can rise within a day and a short history is enough).

/// Technical loss of one interval, from the feeder's energy in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossModel {
    /// kWh lost per interval whatever the load.
    pub no_load: f64,
    /// kWh lost per (kWh per interval)²: the I²R term.
    pub quadratic: f64,
}

impl LossModel {
    /// The modelled loss of an interval in which the feeder measured `feeder_kwh`.
    pub fn loss(&self, feeder_kwh: f64) -> f64 {
        self.no_load + self.quadratic * feeder_kwh * feeder_kwh
    }

    /// Least squares of `feeder − consumers` on `[1, feeder²]` over a clean period, both terms
    /// kept ≥ 0. `None` for fewer than two intervals or a degenerate load.
    pub fn fit(feeder: &[f64], consumers: &[f64]) -> Option<Self> {
        let n = feeder.len().min(consumers.len());
        if n < 2 {
            return None;
        }
        let (mut s1, mut sx, mut sxx, mut sy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (f, c) in feeder.iter().zip(consumers) {
            let x = f * f;
            let y = f - c;
            s1 += 1.0;
            sx += x;
            sxx += x * x;
            sy += y;
            sxy += x * y;
        }
        let det = s1 * sxx - sx * sx;
        if det.abs() <= f64::EPSILON * sxx * s1 {
            return None;
        }
        let quadratic = ((s1 * sxy - sx * sy) / det).max(0.0);
        let no_load = ((sy - quadratic * sx) / s1).max(0.0);
        Some(Self { no_load, quadratic })
    }
}

/// A physical loss model from a feeder's rating: the transformer's no-load (core) loss as a
/// share of its rating, plus a load loss (transformer copper and LV lines) proportional to the
/// square of the load, given as its share of the rating at full load. Typical distribution
/// transformers with their LV network: ~0.3% no-load, ~4% at full load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatedLoss {
    /// No-load loss, share of the rating (0.003).
    pub no_load_share: f64,
    /// Load loss at full rated load, share of the rating (0.04).
    pub full_load_share: f64,
    /// Power factor of the feeder's load, to turn measured kW into the kVA the rating is in
    /// (0.95).
    pub power_factor: f64,
}

impl Default for RatedLoss {
    fn default() -> Self {
        Self {
            no_load_share: 0.003,
            full_load_share: 0.04,
            power_factor: 0.95,
        }
    }
}

impl RatedLoss {
    /// The per-interval [`LossModel`] of a feeder rated `rating_kva` read every `interval_h`
    /// hours: loss kW = rating · (no-load share + full-load share · (P / (pf · rating))²),
    /// with P the power the feeder meter measures, times the interval. `None` for a rating or
    /// interval that is not positive and finite, or a power factor outside (0, 1].
    pub fn model(&self, rating_kva: f64, interval_h: f64) -> Option<LossModel> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !ok(rating_kva) || !ok(interval_h) || !ok(self.power_factor) || self.power_factor > 1.0 {
            return None;
        }
        let pf2 = self.power_factor * self.power_factor;
        Some(LossModel {
            no_load: rating_kva * self.no_load_share * interval_h,
            // (E / h)² / (pf² · rating²) · rating · full · h, with E the interval's kWh.
            quadratic: self.full_load_share / (interval_h * pf2 * rating_kva),
        })
    }
}

/// CUSUM settings, in shares of the feeder's daily energy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CusumConfig {
    /// Unaccounted share tolerated per day (the CUSUM's reference value k): half the smallest
    /// theft worth catching (5%), well above the day-to-day noise of a calibrated balance.
    pub slack: f64,
    /// Accumulated excess that raises the alarm (h).
    pub threshold: f64,
}

impl Default for CusumConfig {
    fn default() -> Self {
        Self {
            slack: 0.02,
            threshold: 0.08,
        }
    }
}

/// One day of a feeder's balance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalanceDay {
    /// (feeder − consumers − modelled loss) / feeder, for the day.
    pub unaccounted: f64,
    /// The CUSUM statistic after this day.
    pub cusum: f64,
    /// Whether the CUSUM is above its threshold (one open condition while it stays there).
    pub alarm: bool,
    /// The first day of the current excursion (the last day the CUSUM was 0, plus one): the
    /// estimated start of the theft.
    pub onset: usize,
}

/// The daily balance of a feeder: `feeder` and `consumers` (the sum of its consumer meters)
/// per interval, `slots` intervals a day, whole days only.
pub fn daily_balance(
    feeder: &[f64],
    consumers: &[f64],
    slots: usize,
    loss: &LossModel,
    cusum: &CusumConfig,
) -> Vec<BalanceDay> {
    let mut s = 0.0f64;
    let mut onset = 0;
    feeder
        .chunks_exact(slots)
        .zip(consumers.chunks_exact(slots))
        .enumerate()
        .map(|(d, (f, c))| {
            let total: f64 = f.iter().sum();
            let missing: f64 = f
                .iter()
                .zip(c)
                .map(|(fi, ci)| fi - ci - loss.loss(*fi))
                .sum();
            let unaccounted = if total > 0.0 { missing / total } else { 0.0 };
            if s == 0.0 {
                onset = d;
            }
            s = (s + unaccounted - cusum.slack).max(0.0);
            BalanceDay {
                unaccounted,
                cusum: s,
                alarm: s > cusum.threshold,
                onset,
            }
        })
        .collect()
}

/// One block (a run of consecutive intervals) of a feeder's balance, from [`block_balance`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalanceBlock {
    /// Feeder energy measured in the block's usable intervals, kWh.
    pub feeder_kwh: f64,
    /// Feeder − consumers − modelled loss over them, kWh.
    pub missing_kwh: f64,
    /// Usable intervals in the block (both sides reported).
    pub intervals: usize,
    /// The CUSUM statistic after this block, in shares of a day's feeder energy.
    pub cusum: f64,
    /// Whether the CUSUM is above its threshold.
    pub alarm: bool,
    /// The first block of the current excursion (the last block the CUSUM was 0, plus one).
    pub onset: usize,
}

/// The balance of a feeder block by block: `feeder` and `consumers` (the sum of its consumer
/// meters) per interval, NaN where an interval is not usable on either side (missing data is
/// not missing energy), `block` intervals a step, `per_day` intervals a day.
///
/// Each block adds `(missing − slack · feeder) / day` to the CUSUM, where `day` is the mean
/// daily feeder energy over the usable intervals: over a whole day the increments add up to the
/// day's unaccounted share less the slack, the quantity [`daily_balance`] accumulates, so the
/// same [`CusumConfig`] means the same thing; but the alarm can rise in the block the evidence
/// becomes enough, and partial days count. Empty when nothing is usable.
pub fn block_balance(
    feeder: &[f64],
    consumers: &[f64],
    block: usize,
    per_day: usize,
    loss: &LossModel,
    cusum: &CusumConfig,
) -> Vec<BalanceBlock> {
    let block = block.max(1);
    let usable = |f: &f64, c: &f64| f.is_finite() && c.is_finite();
    let (sum, n) = feeder
        .iter()
        .zip(consumers)
        .filter(|(f, c)| usable(f, c))
        .fold((0.0, 0usize), |(s, n), (f, _)| (s + f, n + 1));
    let day = sum / n.max(1) as f64 * per_day as f64;
    if n == 0 || day <= 0.0 {
        return Vec::new();
    }
    let mut s = 0.0f64;
    let mut onset = 0;
    feeder
        .chunks(block)
        .zip(consumers.chunks(block))
        .enumerate()
        .map(|(b, (f, c))| {
            let (mut feeder_kwh, mut missing_kwh, mut intervals) = (0.0, 0.0, 0);
            for (fi, ci) in f.iter().zip(c).filter(|(f, c)| usable(f, c)) {
                feeder_kwh += fi;
                missing_kwh += fi - ci - loss.loss(*fi);
                intervals += 1;
            }
            if s == 0.0 {
                onset = b;
            }
            s = (s + (missing_kwh - cusum.slack * feeder_kwh) / day).max(0.0);
            BalanceBlock {
                feeder_kwh,
                missing_kwh,
                intervals,
                cusum: s,
                alarm: s > cusum.threshold,
                onset,
            }
        })
        .collect()
}

/// Ranks a feeder's consumers as suspects once its block balance has alarmed, by how much of
/// the missing energy their own change explains. `consumers[j][b]` is consumer `j`'s reported
/// kWh in block `b`, `truth[b]` the energy the feeder delivered to consumers in it (feeder −
/// modelled loss), both over usable intervals only; blocks `b` and `b + per_day` are the same
/// time of day.
///
/// Over the `reference` blocks before `onset`, each consumer's share of the delivered energy is
/// learnt per time of day (or over the whole reference where a time of day was not seen); from
/// `onset` to `now`, its expected energy is that share of what was delivered, and its drop is
/// expected − reported. With a clean reference the drops add up to the missing energy, so a
/// consumer's score is the share of it that it explains (capped at 1), plus a tie-break of
/// 10⁻³ · drop. Returns (consumer, score), most suspicious first; empty without a reference.
pub fn rank_block_suspects(
    consumers: &[Vec<f64>],
    truth: &[f64],
    per_day: usize,
    onset: usize,
    now: usize,
    reference: usize,
) -> Vec<(usize, f64)> {
    let per_day = per_day.max(1);
    let end = (now + 1).min(truth.len());
    let start = onset.min(end);
    let ref_from = start.saturating_sub(reference);
    if ref_from == start {
        return Vec::new();
    }
    let at = |v: &[f64], b: usize| v.get(b).copied().unwrap_or(0.0);
    // Delivered energy in the reference, per time of day and overall.
    let mut t_slot = vec![0.0; per_day];
    for b in ref_from..start {
        t_slot[b % per_day] += at(truth, b);
    }
    let t_ref: f64 = t_slot.iter().sum();
    if t_ref <= 0.0 {
        return Vec::new();
    }
    let reported_after: f64 = (start..end)
        .map(|b| consumers.iter().map(|c| at(c, b)).sum::<f64>())
        .sum();
    let delivered_after: f64 = (start..end).map(|b| at(truth, b)).sum();
    let missing = delivered_after - reported_after;
    let mut ranked: Vec<(usize, f64)> = consumers
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let mut c_slot = vec![0.0; per_day];
            for b in ref_from..start {
                c_slot[b % per_day] += at(c, b);
            }
            let overall = c_slot.iter().sum::<f64>() / t_ref;
            let expected: f64 = (start..end)
                .map(|b| {
                    let k = b % per_day;
                    let share = if t_slot[k] > 0.0 {
                        c_slot[k] / t_slot[k]
                    } else {
                        overall
                    };
                    share * at(truth, b)
                })
                .sum();
            let reported: f64 = (start..end).map(|b| at(c, b)).sum();
            (j, suspect_score((expected - reported).max(0.0), missing))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
}

/// A suspect's score from the drop of its reported energy against the missing energy: the
/// share of the missing energy it explains (capped at 1), plus a small tie-break by the drop.
fn suspect_score(drop: f64, missing: f64) -> f64 {
    let explained = if missing > 0.0 {
        (drop / missing).min(1.0)
    } else {
        0.0
    };
    explained + 1e-3 * drop
}

/// Daily totals of an interval series of `slots` intervals a day (whole days only): the input
/// [`rank_suspects`] wants per consumer.
pub fn daily_totals(series: &[f64], slots: usize) -> Vec<f64> {
    series.chunks_exact(slots).map(|d| d.iter().sum()).collect()
}

/// Ranks a feeder's consumers as suspects once its balance has alarmed: for each, the drop of
/// its mean reported daily kWh over `[onset, now]` against its mean over the `reference` days
/// before `onset`, scored by the share of the missing energy it explains (capped at 1) plus a
/// small tie-break by the drop itself. `daily[j]` is consumer `j`'s daily kWh; returns
/// (consumer, score), most suspicious first.
pub fn rank_suspects(
    daily: &[Vec<f64>],
    onset: usize,
    now: usize,
    reference: usize,
    missing_per_day: f64,
) -> Vec<(usize, f64)> {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut ranked: Vec<(usize, f64)> = daily
        .iter()
        .enumerate()
        .map(|(j, d)| {
            let end = (now + 1).min(d.len());
            let start = onset.min(end);
            let before = mean(&d[start.saturating_sub(reference)..start]);
            let after = mean(&d[start..end]);
            (j, suspect_score((before - after).max(0.0), missing_per_day))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::rng::Rng;

    const SLOTS: usize = 48;

    /// `consumers` meters over `days` days (±20% noise per interval), the feeder their sum plus
    /// the given losses and ±0.2% meter noise; from `theft_from`, consumer 3 reports only
    /// `1 − theft` of its load.
    fn feeder(days: usize, theft_from: usize, theft: f64) -> (Vec<f64>, Vec<Vec<f64>>) {
        let mut rng = Rng::new(4);
        let loss = LossModel {
            no_load: 0.05,
            quadratic: 0.002,
        };
        let mut reported = vec![Vec::new(); 10];
        let mut feeder = Vec::new();
        for d in 0..days {
            for k in 0..SLOTS {
                let shape = 0.3 + (-((k as f64 / 2.0 - 19.0) / 2.5f64).powi(2)).exp();
                let mut sum = 0.0;
                for (j, r) in reported.iter_mut().enumerate() {
                    let x = shape * (1.0 + j as f64 * 0.1) * rng.uniform(0.8, 1.2);
                    sum += x;
                    let stolen = if j == 3 && d >= theft_from {
                        theft
                    } else {
                        0.0
                    };
                    r.push(x * (1.0 - stolen));
                }
                feeder.push((sum + loss.loss(sum)) * (1.0 + 0.002 * rng.normal()));
            }
        }
        (feeder, reported)
    }

    fn sum_of(reported: &[Vec<f64>]) -> Vec<f64> {
        (0..reported[0].len())
            .map(|t| reported.iter().map(|r| r[t]).sum())
            .collect()
    }

    /// As [`feeder`], on a feeder rated 40 kVA whose losses are exactly [`RatedLoss`]'s, with
    /// no meter noise; the thief is consumer 9 (~13% of the load), from hour `theft_from` on.
    fn rated_feeder(days: usize, theft_from: usize, theft: f64) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (mut rng, loss) = (Rng::new(5), rated());
        let mut reported = vec![Vec::new(); 10];
        let mut feeder = Vec::new();
        for t in 0..days * SLOTS {
            let k = t % SLOTS;
            let shape = 0.3 + (-((k as f64 / 2.0 - 19.0) / 2.5f64).powi(2)).exp();
            let mut sum = 0.0;
            for (j, r) in reported.iter_mut().enumerate() {
                let x = shape * (1.0 + j as f64 * 0.1) * rng.uniform(0.8, 1.2);
                sum += x;
                let stolen = if j == 9 && t / 2 >= theft_from {
                    theft
                } else {
                    0.0
                };
                r.push(x * (1.0 - stolen));
            }
            // The meter measures the load plus the loss its own energy implies.
            let mut e = sum;
            for _ in 0..8 {
                e = sum + loss.loss(e);
            }
            feeder.push(e);
        }
        (feeder, reported)
    }

    /// [`RatedLoss::default`] on 40 kVA, half-hourly.
    fn rated() -> LossModel {
        RatedLoss::default().model(40.0, 0.5).unwrap()
    }

    #[test]
    fn a_rated_loss_model_loses_its_no_load_share_idle_and_four_percent_more_at_full_load() {
        let m = RatedLoss::default().model(100.0, 0.5).unwrap();
        // 0.3 kW for half an hour.
        assert!((m.loss(0.0) - 0.15).abs() < 1e-12, "{m:?}");
        // Full load: 95 kW at power factor 0.95 is 100 kVA; 4 kW of load loss for half an hour.
        assert!((m.loss(47.5) - 0.15 - 2.0).abs() < 1e-9, "{m:?}");
        // Half load: a quarter of that.
        assert!((m.loss(23.75) - 0.15 - 0.5).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn a_rating_or_interval_that_is_not_positive_gives_no_rated_model() {
        let r = RatedLoss::default();
        assert_eq!(r.model(0.0, 0.5), None);
        assert_eq!(r.model(f64::NAN, 0.5), None);
        assert_eq!(r.model(40.0, 0.0), None);
        let bad_pf = RatedLoss {
            power_factor: 1.5,
            ..r
        };
        assert_eq!(bad_pf.model(40.0, 0.5), None);
    }

    #[test]
    fn with_a_rated_model_a_clean_feeder_never_alarms_from_its_first_hour() {
        let (f, r) = rated_feeder(20, usize::MAX, 0.0);
        let blocks = block_balance(&f, &sum_of(&r), 2, SLOTS, &rated(), &CusumConfig::default());
        assert_eq!(blocks.len(), 20 * 24);
        assert!(blocks.iter().all(|b| !b.alarm && b.cusum == 0.0));
        assert!(blocks
            .iter()
            .all(|b| b.missing_kwh.abs() < 1e-6 * b.feeder_kwh));
    }

    #[test]
    fn with_a_rated_model_a_theft_from_hour_30_alarms_within_36_hours_and_its_thief_ranks_first() {
        // Consumer 9 reports 40% of its load from hour 30: ~8% of the feeder's energy, 6% a day
        // over the slack, so the 8% threshold is crossed after about 32 hours.
        let (f, r) = rated_feeder(4, 30, 0.6);
        let c = sum_of(&r);
        let blocks = block_balance(&f, &c, 2, SLOTS, &rated(), &CusumConfig::default());
        assert!(
            blocks[..30].iter().all(|b| !b.alarm),
            "alarm before the theft"
        );
        let first = blocks.iter().position(|b| b.alarm).unwrap();
        assert!((30..30 + 36).contains(&first), "alarm at hour {first}");
        assert_eq!(blocks[first].onset, 30);
        let per_block = |v: &[f64]| -> Vec<f64> { v.chunks(2).map(|b| b.iter().sum()).collect() };
        let consumers: Vec<Vec<f64>> = r.iter().map(|m| per_block(m)).collect();
        let truth: Vec<f64> =
            per_block(&f.iter().map(|e| e - rated().loss(*e)).collect::<Vec<_>>());
        let ranked = rank_block_suspects(&consumers, &truth, 24, 30, first, 7 * 24);
        assert_eq!(ranked[0].0, 9, "{ranked:?}");
        assert!(
            ranked[0].1 > 0.8,
            "the thief explains most of it: {ranked:?}"
        );
        assert!(ranked[1].1 < 0.3, "nobody else does: {ranked:?}");
    }

    #[test]
    fn intervals_one_side_did_not_report_are_neither_energy_nor_loss() {
        let (mut f, r) = rated_feeder(5, usize::MAX, 0.0);
        let mut c = sum_of(&r);
        // A day with the consumers silent, and one with the feeder silent.
        for v in &mut c[SLOTS..2 * SLOTS] {
            *v = f64::NAN;
        }
        for v in &mut f[3 * SLOTS..4 * SLOTS] {
            *v = f64::NAN;
        }
        let blocks = block_balance(&f, &c, 2, SLOTS, &rated(), &CusumConfig::default());
        assert!(blocks.iter().all(|b| !b.alarm && b.cusum == 0.0));
        assert!(blocks[24..48].iter().all(|b| b.intervals == 0));
    }

    #[test]
    fn block_increments_over_a_day_add_up_to_the_daily_unaccounted_share_less_the_slack() {
        let (f, r) = rated_feeder(6, 0, 0.6);
        let c = sum_of(&r);
        let cfg = CusumConfig {
            slack: 0.02,
            threshold: f64::INFINITY,
        };
        let blocks = block_balance(&f, &c, 2, SLOTS, &rated(), &cfg);
        let days = daily_balance(&f, &c, SLOTS, &rated(), &cfg);
        let day_kwh = f.iter().sum::<f64>() / 6.0;
        // Steady theft from the start: the CUSUM never touches 0, so it is a plain sum.
        for d in 1..=6 {
            let expected: f64 = days[..d]
                .iter()
                .zip(f.chunks(SLOTS))
                .map(|(b, fd)| (b.unaccounted - 0.02) * fd.iter().sum::<f64>() / day_kwh)
                .sum();
            let got = blocks[d * 24 - 1].cusum;
            assert!(
                (got - expected).abs() < 1e-9,
                "day {d}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn the_loss_model_is_recovered_from_a_clean_period() {
        let (f, r) = feeder(28, usize::MAX, 0.0);
        let fit = LossModel::fit(&f, &sum_of(&r)).unwrap();
        assert!((fit.no_load - 0.05).abs() < 0.02, "{fit:?}");
        assert!((fit.quadratic - 0.002).abs() < 0.0005, "{fit:?}");
    }

    #[test]
    fn a_sustained_small_theft_alarms_within_days_and_the_thief_ranks_first() {
        // Consumer 3 is ~10% of the feeder's load; stealing half of it is ~6%.
        let (f, r) = feeder(80, 50, 0.5);
        let c = sum_of(&r);
        let loss = LossModel::fit(&f[..28 * SLOTS], &c[..28 * SLOTS]).unwrap();
        let days = daily_balance(&f, &c, SLOTS, &loss, &CusumConfig::default());
        assert!(
            days[..50].iter().all(|d| !d.alarm),
            "false alarm before the theft"
        );
        let first = days.iter().position(|d| d.alarm).unwrap();
        assert!((50..=55).contains(&first), "alarm on day {first}");
        let onset = days[first].onset;
        assert!((49..=51).contains(&onset), "onset {onset}");
        let daily: Vec<Vec<f64>> = r.iter().map(|m| daily_totals(m, SLOTS)).collect();
        let feeder_day: f64 = f[first * SLOTS..(first + 1) * SLOTS].iter().sum();
        let missing = days[first].unaccounted * feeder_day;
        let ranked = rank_suspects(&daily, onset, first, 14, missing);
        assert_eq!(ranked[0].0, 3);
    }

    #[test]
    fn meter_noise_and_load_swings_alone_never_alarm() {
        let (f, r) = feeder(120, usize::MAX, 0.0);
        let c = sum_of(&r);
        let loss = LossModel::fit(&f[..28 * SLOTS], &c[..28 * SLOTS]).unwrap();
        let days = daily_balance(&f, &c, SLOTS, &loss, &CusumConfig::default());
        assert!(days.iter().all(|d| !d.alarm));
        assert!(days.iter().all(|d| d.unaccounted.abs() < 0.01));
    }
}
