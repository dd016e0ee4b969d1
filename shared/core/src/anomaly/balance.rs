//! Feeder energy balance: the energy a feeder (distribution-side) meter measured, less what its
//! consumer meters reported, less the modelled technical loss, is energy nobody paid for. A
//! sustained loss of a few percent is caught with a one-sided CUSUM on the daily unaccounted
//! share, which lets day-to-day noise (meter error, loss-model error) cancel out; when it fires,
//! the consumers are ranked by how much of the missing energy their own reported drop explains.
//!
//! Technical loss per interval = a no-load term (transformer core) + a term proportional to the
//! square of the current, for which the feeder's interval energy squared stands in (at a near
//! constant voltage, I ∝ P). Both are configurable, or fitted on a period known to be clean
//! ([`LossModel::fit`]).

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
            let drop = (before - after).max(0.0);
            let explained = if missing_per_day > 0.0 {
                (drop / missing_per_day).min(1.0)
            } else {
                0.0
            };
            (j, explained + 1e-3 * drop)
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
