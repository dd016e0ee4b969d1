//! Direct day-ahead ridge regression: each slot of the next day is forecast from data available
//! at the issue time only, not from the model's own forecasts of the hours before it.
//!
//! The recursive [`ridge`](super::ridge) model is fitted on one-step-ahead errors and then run
//! 48 steps on its own output; this one is fitted on exactly what is scored, the error of a
//! forecast issued up to a day earlier. Training rows are the day after each of the last
//! [`TRAIN_DAYS`] origins at the time of day (so a run at any hour learns from origins
//! at that hour), each row's features computed from the data before its origin.
//!
//! Features of target slot `t` for an origin `o` (`o <= t < o + day`): an intercept; the mean
//! over the last 7 days of the same slot and the [`SMOOTH_SLOTS`] either side (those before
//! `o`); the last day's and the last week's mean level; the last value before the origin and
//! the last two hours' mean, both fading with the lead time, and the fade itself; three daily
//! harmonics of the target's time of day; and a weekend flag.
//!
//! Chosen on three held-out windows of the shared SGSC data (docs/forecasting.md, run 7): the
//! raw same-slot values 1 to 7 days earlier, their 4-week mean, the 2-week lag and the mean of
//! the same kind of day (weekday or weekend) as features scored worse than the smoothed mean
//! alone (3.7% instead of 4.2% better than persistence7 on average), and fitting the deviation
//! from persistence7 (a ridge shrunk toward it rather than toward zero) worse in both cases
//! (3.5%; 0.4%). Even so the model stays behind the recursive ridge with the same smoothing
//! (4.2% against 4.6%, each on its own), so it is not a selection candidate on its own; its
//! means with the recursive one (`ridge_direct`, `ridge_direct_smooth`) are (run 8): its errors
//! differ enough from the recursive model's that the mean beats both.
//!
//! Longer horizons repeat the day-ahead step from the end of each forecast day, the forecasts
//! standing in for the data (what a month-end projection needs; only the first day is scored).

use super::grid::Calendar;
use super::models::{ModelError, ModelKind};
use super::ridge::solve_ridge;

/// Number of features, the intercept included.
pub const FEATURES: usize = 14;

/// The shortest history (days) the model fits on: a week for the lags plus a week of origins.
pub const MIN_HISTORY_DAYS: usize = 14;

/// Origins (days) fitted on at most, as for the recursive ridge model.
pub const TRAIN_DAYS: usize = 112;

/// Ridge penalty relative to each feature's `XᵀX` diagonal; the intercept is not penalised.
/// 0.01 and 1 scored worse on the held-out windows.
pub const LAMBDA: f64 = 0.1;

/// Rows' weights halve every this many days back (5 and 20 scored worse).
pub const HALF_LIFE_DAYS: f64 = 10.0;

/// Lead time (slots) over which the last values' influence fades by `1/e`: two hours for
/// half-hourly meters, how long a household's current activity tells something.
pub const FADE_SLOTS: f64 = 4.0;

/// Slots either side of the same slot that the smoothed 7-day mean takes in.
pub const SMOOTH_SLOTS: usize = 2;

/// Fitted coefficients.
pub type Beta = [f64; FEATURES];

/// What the features of one origin share.
struct Origin {
    o: usize,
    day_mean: f64,
    week_mean: f64,
    last: f64,
    last_2h: f64,
}

impl Origin {
    /// The origin `o` of `y` (`o >= 7` days).
    fn new(y: &[f64], o: usize, day: usize) -> Self {
        let two_hours = (day / 12).max(1);
        Self {
            o,
            day_mean: y[o - day..o].iter().sum::<f64>() / day as f64,
            week_mean: y[o - 7 * day..o].iter().sum::<f64>() / (7 * day) as f64,
            last: y[o - 1],
            last_2h: y[o - two_hours..o].iter().sum::<f64>() / two_hours as f64,
        }
    }
}

/// The features of target slot `t` (`org.o <= t < org.o + day`) from `y[..org.o]` only.
fn features(y: &[f64], t: usize, org: &Origin, cal: &Calendar, out: &mut Beta) {
    let day = cal.seasons.day;
    let (mut sum, mut count) = (0.0, 0usize);
    for d in 1..=7 {
        let c = t - d * day;
        // The window's end is cut at the origin: the last slots of the day after it would
        // otherwise reach past it.
        let end = (c + SMOOTH_SLOTS + 1).min(org.o);
        for v in &y[c.saturating_sub(SMOOTH_SLOTS)..end] {
            sum += v;
            count += 1;
        }
    }
    let fade = (-((t - org.o) as f64) / FADE_SLOTS).exp();
    let tod = cal.slot_of_day(t) as f64 / day as f64 * std::f64::consts::TAU;
    let (s1, c1) = tod.sin_cos();
    let (s2, c2) = (2.0 * tod).sin_cos();
    let (s3, c3) = (3.0 * tod).sin_cos();
    *out = [
        1.0,
        sum / count.max(1) as f64,
        org.day_mean,
        org.week_mean,
        org.last * fade,
        org.last_2h * fade,
        fade,
        s1,
        c1,
        s2,
        c2,
        s3,
        c3,
        if cal.is_weekend(t) { 1.0 } else { 0.0 },
    ];
}

/// The features of target slot `t` for a forecast issued at slot `o` (`o <= t < o + day`,
/// `o >= 7` days), for tests that check they read nothing from `o` on.
pub fn features_at(y: &[f64], t: usize, o: usize, cal: &Calendar) -> Beta {
    let mut x = [0.0; FEATURES];
    features(y, t, &Origin::new(y, o, cal.seasons.day), cal, &mut x);
    x
}

/// Fits the coefficients on the days after the origins before `hist.len()` at its time of day.
// Index loops read as the textbook formulas.
#[allow(clippy::needless_range_loop)]
pub fn fit(hist: &[f64], cal: &Calendar) -> Result<Beta, ModelError> {
    let day = cal.seasons.day;
    let n = hist.len();
    let needed = MIN_HISTORY_DAYS * day;
    if n < needed {
        return Err(ModelError::TooShort {
            model: ModelKind::DirectRidge,
            needed,
            got: n,
        });
    }
    let mut xtx = [[0.0f64; FEATURES]; FEATURES];
    let mut xty = [0.0f64; FEATURES];
    let mut x = [0.0f64; FEATURES];
    let decay = 0.5f64.powf(1.0 / HALF_LIFE_DAYS);
    let mut w = 1.0;
    // Origin `n - j·day` for j = 1, 2, ...: its day ends at or before `n`, its week starts at
    // or after 0.
    let mut j = 1;
    while j <= TRAIN_DAYS && n >= (j + 7) * day {
        let o = n - j * day;
        let org = Origin::new(hist, o, day);
        for t in o..o + day {
            features(hist, t, &org, cal, &mut x);
            for i in 0..FEATURES {
                let xi = x[i] * w;
                xty[i] += xi * hist[t];
                for k in i..FEATURES {
                    xtx[i][k] += xi * x[k];
                }
            }
        }
        w *= decay;
        j += 1;
    }
    solve_ridge(xtx, xty, LAMBDA, ModelKind::DirectRidge)
}

/// Forecasts `horizon` slots after `hist` with `beta`, one day at a time from the end of the
/// previous forecast day. Values are clamped to `[0, ceiling]`, `ceiling` the largest value of
/// the fit's window: repeated for a month, a day-ahead model whose level weights sum above one
/// would otherwise grow day after day.
pub fn predict(hist: &[f64], cal: &Calendar, beta: &Beta, horizon: usize) -> Vec<f64> {
    let day = cal.seasons.day;
    let n = hist.len();
    // Only the last week and a few slots are read by the features.
    let keep = n.saturating_sub(8 * day);
    let ceiling = hist[n.saturating_sub(TRAIN_DAYS * day)..]
        .iter()
        .copied()
        .fold(0.0, f64::max);
    let mut y = Vec::with_capacity(n - keep + horizon + day);
    y.extend_from_slice(&hist[keep..]);
    let shifted = Calendar {
        first_start_local_ms: cal.first_start_local_ms + keep as i64 * cal.interval_ms,
        ..*cal
    };
    let mut x = [0.0f64; FEATURES];
    let end = n - keep + horizon;
    while y.len() < end {
        let org = Origin::new(&y, y.len(), day);
        for t in org.o..org.o + day {
            features(&y, t, &org, &shifted, &mut x);
            let v: f64 = x.iter().zip(beta).map(|(a, b)| a * b).sum();
            y.push(if v.is_finite() {
                v.clamp(0.0, ceiling)
            } else {
                0.0
            });
        }
    }
    y.truncate(end);
    y.split_off(n - keep)
}

/// Fit and predict.
pub fn forecast(hist: &[f64], cal: &Calendar, horizon: usize) -> Result<Vec<f64>, ModelError> {
    let beta = fit(hist, cal)?;
    Ok(predict(hist, cal, &beta, horizon))
}
