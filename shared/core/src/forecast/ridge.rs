//! Lag/calendar ridge regression, fitted per meter on its recent history and forecast
//! recursively (each step's forecast feeds the next step's short lags).
//!
//! Features of slot `t`: an intercept; lags 1 and 2; the same slot a day earlier, its mean over
//! the last 7 days and over the last 4 weeks (fewer in a shorter history), each smoothed over
//! time of day (the slot and [`SMOOTH_SLOTS`] either side); the mean of the last day (the
//! household's current level); three daily harmonics (sin and cos) of the time of day; a
//! weekend flag; and the smoothed same slot averaged over the last [`DAY_TYPE_DAYS`] days of
//! the same kind (weekday or weekend) as the forecast day. That last term lifted the selection
//! from 5.16% to 5.24% better than persistence7 on three held-out windows, ahead on each
//! (docs/forecasting.md, run 9).
//!
//! Why smoothed seasonal terms: a household's spikes (a kettle, an oven, a pump) come a little
//! earlier or later from one day to the next, so last week's exact slot carries the spike's
//! time as noise. Averaging the neighbouring slots forecasts the expected level around that
//! time instead. With the raw day, week and 2-week lags, the raw 7-day and 4-week means and the
//! slots either side of yesterday's as features (run 6), the selection scored 4.4% better than
//! persistence7 on three held-out windows; with these smoothed terms in their place, 5.0%
//! (docs/forecasting.md, run 7).
//!
//! The rows are weighted by age, halving every [`HALF_LIFE_DAYS`] days, so the fit follows a
//! household's current habits; the window is still up to [`TRAIN_DAYS`] days for the weekly
//! terms' sake.
//!
//! The level term and the penalty of 0.1 were chosen on the shared SGSC data with the last 28
//! days of every meter held out (docs/forecasting.md, run 5), the half-life likewise (run 6),
//! the smoothed terms on three such held-out windows (run 7), then scored on those 28 days.
//!
//! The normal equations are solved here (accumulate `XᵀX` and `Xᵀy` in one pass, Cholesky on a
//! 15×15 matrix) rather than with smartcore's `RidgeRegression`: that builds the dense design
//! matrix and goes through generic matrix code; `meterflow bench forecast` measures both on the
//! same data (`ridge_solver` in its JSON), and this fit is several times faster, which matters
//! for the daily forecast's budget of 1 ms per meter.

use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::ridge_regression::{RidgeRegression, RidgeRegressionParameters};

use super::grid::Calendar;
use super::models::{ModelError, ModelKind};

/// Number of features, the intercept included.
pub const FEATURES: usize = 15;

/// Slots either side of a seasonal lag that its smoothed value averages (2: an hour and a half
/// for half-hourly meters, the slot in the middle).
pub const SMOOTH_SLOTS: usize = 2;

/// Days of the same kind (weekday or weekend) the day-type term averages: a weekend's last 4
/// reach back two weeks, a weekday's under one.
pub const DAY_TYPE_DAYS: usize = 4;

/// Days of history the fit uses at most: 16 weeks scored 0.8 points of NRMSE better than 8 on
/// the shared SGSC data (docs/forecasting.md) and still follows a household's seasons.
pub const TRAIN_DAYS: usize = 112;

/// The shortest history the model fits on: a week for the weekly lag plus a week of rows.
pub const MIN_HISTORY_DAYS: usize = 14;

/// Ridge penalty, relative to each feature's own `XᵀX` diagonal (so it does not depend on the
/// features' scales); the intercept is not penalised.
pub const LAMBDA: f64 = 0.1;

/// Half-life of the rows' weights in the fit, in days: the last day's rows count fully, those
/// 10 days earlier half, 20 days a quarter. A household's habits drift and sometimes jump (a
/// house left empty, a new occupant); with equal weights over 16 weeks the ridge model kept
/// forecasting the old level for weeks. Chosen on held-out days (docs/forecasting.md, run 6):
/// 7–14 days scored best, 28 and more clearly worse.
pub const HALF_LIFE_DAYS: f64 = 10.0;

/// The mean of `y[c - SMOOTH_SLOTS..=c + SMOOTH_SLOTS]`, cut to the slots from 0 and before
/// `t` (`c < t`): with a few slots a day (hourly or coarser meters) the window would otherwise
/// reach the slot being forecast.
fn smoothed(y: &[f64], c: usize, t: usize) -> f64 {
    let window = &y[c.saturating_sub(SMOOTH_SLOTS)..(c + SMOOTH_SLOTS + 1).min(t)];
    window.iter().sum::<f64>() / window.len() as f64
}

/// The features of slot `t` from the values before it (`y[..t]`, forecasts included);
/// `day_sum` is the sum of `y[t - day..t]`, kept by the caller as `t` advances.
fn features(y: &[f64], t: usize, day_sum: f64, cal: &Calendar, out: &mut [f64; FEATURES]) {
    let day = cal.seasons.day;
    // The same slot, smoothed, 1 to 7 days back: the day lag, the 7-day mean, the 4-week mean
    // and the day-type mean share them, so each is read once.
    let mut back = [0.0f64; 7];
    for (k, b) in back.iter_mut().enumerate() {
        *b = smoothed(y, t - (k + 1) * day, t);
    }
    let at = |k: usize| {
        if k <= 7 {
            back[k - 1]
        } else {
            smoothed(y, t - k * day, t)
        }
    };
    let p7 = back.iter().sum::<f64>() / 7.0;
    let weeks = (t / (7 * day)).clamp(1, 4);
    let p28 = (1..=weeks).map(|w| at(7 * w)).sum::<f64>() / weeks as f64;
    // The smoothed same slot on the last DAY_TYPE_DAYS days of the same kind (weekday or
    // weekend) within four weeks: a weekend's morning comes later than a weekday's, which the
    // weekend flag alone (a shift of the whole day) cannot say.
    let dow = cal.day_of_week(t);
    let weekend = dow >= 5;
    let (mut same, mut found) = (0.0, 0usize);
    for k in 1..=28usize {
        if found == DAY_TYPE_DAYS || k * day > t {
            break;
        }
        if ((dow + 28 - k) % 7 >= 5) == weekend {
            same += at(k);
            found += 1;
        }
    }
    let same_type = if found > 0 { same / found as f64 } else { p7 };
    let tod = cal.slot_of_day(t) as f64 / day as f64 * std::f64::consts::TAU;
    let (s1, c1) = tod.sin_cos();
    let (s2, c2) = (2.0 * tod).sin_cos();
    let (s3, c3) = (3.0 * tod).sin_cos();
    *out = [
        1.0,
        y[t - 1],
        y[t - 2],
        back[0],
        p7,
        p28,
        day_sum / day as f64,
        s1,
        c1,
        s2,
        c2,
        s3,
        c3,
        if weekend { 1.0 } else { 0.0 },
        same_type,
    ];
}

/// The first training row for a history of `n` slots.
fn first_row(n: usize, day: usize) -> usize {
    (7 * day).max(n.saturating_sub(TRAIN_DAYS * day))
}

/// Fits the coefficients on `hist` by the normal equations.
pub fn fit(hist: &[f64], cal: &Calendar) -> Result<[f64; FEATURES], ModelError> {
    fit_with(hist, cal, LAMBDA, HALF_LIFE_DAYS)
}

/// [`fit`] with penalty `lambda` and rows weighted by age: a row `half_life_days` before the
/// last one counts half as much (0: every row the same).
// Index loops read as the textbook formulas; iterator chains over two matrices would not.
#[allow(clippy::needless_range_loop)]
pub fn fit_with(
    hist: &[f64],
    cal: &Calendar,
    lambda: f64,
    half_life_days: f64,
) -> Result<[f64; FEATURES], ModelError> {
    let day = cal.seasons.day;
    let n = hist.len();
    let mut xtx = [[0.0f64; FEATURES]; FEATURES];
    let mut xty = [0.0f64; FEATURES];
    let mut x = [0.0f64; FEATURES];
    let first = first_row(n, day);
    let mut day_sum: f64 = hist[first.saturating_sub(day).min(n)..first.min(n)]
        .iter()
        .sum();
    // Row weights halve every `half_life_days` back from the last row, which weighs 1.
    let decay = if half_life_days > 0.0 {
        0.5f64.powf(1.0 / (half_life_days * day as f64))
    } else {
        1.0
    };
    let mut w = decay.powi(i32::try_from(n - first).unwrap_or(i32::MAX));
    for t in first..n {
        features(hist, t, day_sum, cal, &mut x);
        let yt = hist[t];
        day_sum += yt - hist[t - day];
        w /= decay;
        for i in 0..FEATURES {
            let xi = x[i] * w;
            xty[i] += xi * yt;
            for j in i..FEATURES {
                xtx[i][j] += xi * x[j];
            }
        }
    }
    solve_ridge(xtx, xty, lambda, ModelKind::Ridge)
}

/// Solves ridge normal equations of which only the upper triangle of `xtx` was accumulated:
/// mirrors it, adds the penalty `lambda` relative to each diagonal (not to the intercept, the
/// first feature) and solves.
pub(crate) fn solve_ridge<const N: usize>(
    mut xtx: [[f64; N]; N],
    xty: [f64; N],
    lambda: f64,
    model: ModelKind,
) -> Result<[f64; N], ModelError> {
    // Index loops: mirroring a triangle reads one row while writing another.
    #[allow(clippy::needless_range_loop)]
    for i in 0..N {
        for j in 0..i {
            xtx[i][j] = xtx[j][i];
        }
    }
    for (i, row) in xtx.iter_mut().enumerate().skip(1) {
        // A feature that never varies from 0 (a flat history) still gets a positive diagonal.
        row[i] += lambda * row[i] + 1e-9;
    }
    solve_spd(xtx, xty).ok_or(ModelError::Fit {
        model,
        reason: "the normal equations are singular".to_owned(),
    })
}

/// Forecasts `horizon` slots with coefficients `beta`, feeding forecasts back as lags.
pub fn predict(hist: &[f64], cal: &Calendar, beta: &[f64; FEATURES], horizon: usize) -> Vec<f64> {
    let n = hist.len();
    let mut y = Vec::with_capacity(n + horizon);
    // Only the last four weeks are read by the lags.
    let day = cal.seasons.day;
    let keep = n.saturating_sub(28 * day);
    y.extend_from_slice(&hist[keep..]);
    let shifted = Calendar {
        first_start_local_ms: cal.first_start_local_ms + keep as i64 * cal.interval_ms,
        ..*cal
    };
    let mut x = [0.0f64; FEATURES];
    let mut day_sum: f64 = y[y.len().saturating_sub(day)..].iter().sum();
    for _ in 0..horizon {
        let t = y.len();
        features(&y, t, day_sum, &shifted, &mut x);
        let v: f64 = x.iter().zip(beta).map(|(a, b)| a * b).sum();
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        y.push(v);
        day_sum += v - y[t - day];
    }
    y.split_off(n - keep)
}

/// Fit and predict. A forecast that rises above every value of the fit's window means the
/// fitted recursion is unstable: a history whose recent weeks are nearly flat (an empty house)
/// leaves the short lags' coefficients free, and the first reading off that level then grows
/// step after step. The fit is redone with equal row weights, whose longer past pins them down.
pub fn forecast(hist: &[f64], cal: &Calendar, horizon: usize) -> Result<Vec<f64>, ModelError> {
    let beta = fit(hist, cal)?;
    let out = predict(hist, cal, &beta, horizon);
    let ceiling = hist[first_row(hist.len(), cal.seasons.day).min(hist.len())..]
        .iter()
        .copied()
        .fold(0.0, f64::max);
    if out.iter().all(|v| *v <= ceiling) {
        return Ok(out);
    }
    let beta = fit_with(hist, cal, LAMBDA, 0.0)?;
    Ok(predict(hist, cal, &beta, horizon))
}

/// The same fit through smartcore's `RidgeRegression` (Cholesky), for the benchmark that
/// justifies solving by hand. Its penalty is a plain `alpha`, so coefficients differ slightly.
pub fn fit_smartcore(hist: &[f64], cal: &Calendar) -> Result<Vec<f64>, ModelError> {
    let day = cal.seasons.day;
    let n = hist.len();
    let rows = first_row(n, day)..n;
    let mut data = Vec::with_capacity(rows.len() * (FEATURES - 1));
    let mut x = [0.0f64; FEATURES];
    let mut day_sum: f64 = hist[rows.start.saturating_sub(day).min(n)..rows.start.min(n)]
        .iter()
        .sum();
    for t in rows.clone() {
        features(hist, t, day_sum, cal, &mut x);
        data.extend_from_slice(&x[1..]);
        day_sum += hist[t] - hist[t - day];
    }
    let fail = |e: smartcore::error::Failed| ModelError::Fit {
        model: ModelKind::Ridge,
        reason: e.to_string(),
    };
    let m = DenseMatrix::new(rows.len(), FEATURES - 1, data, false).map_err(fail)?;
    let y = hist[rows].to_vec();
    let params = RidgeRegressionParameters::default()
        .with_alpha(LAMBDA)
        .with_normalize(false);
    let fitted = RidgeRegression::fit(&m, &y, params).map_err(fail)?;
    let mut beta = vec![*fitted.intercept()];
    beta.extend(fitted.coefficients().iterator(0).copied());
    Ok(beta)
}

/// Solves `a · x = b` for a symmetric positive-definite `a` by Cholesky; `None` if it is not.
/// Generic over the size: the recursive and the direct ridge models have their own.
#[allow(clippy::needless_range_loop)]
pub(crate) fn solve_spd<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> Option<[f64; N]> {
    for j in 0..N {
        let mut d = a[j][j];
        for k in 0..j {
            d -= a[j][k] * a[j][k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j][j] = d;
        for i in j + 1..N {
            let mut s = a[i][j];
            for k in 0..j {
                s -= a[i][k] * a[j][k];
            }
            a[i][j] = s / d;
        }
    }
    for i in 0..N {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i][k] * b[k];
        }
        b[i] = s / a[i][i];
    }
    for i in (0..N).rev() {
        let mut s = b[i];
        for k in i + 1..N {
            s -= a[k][i] * b[k];
        }
        b[i] = s / a[i][i];
    }
    Some(b)
}
