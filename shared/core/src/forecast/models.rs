//! The forecasting models: baselines and the real models, each a pure function from a history
//! (the grid's values before the issue time) to a point forecast of the next `horizon` slots.
//!
//! - Baselines: last value, seasonal naive (1 day, 1 week), the 7-day persistence ensemble
//!   (mean of the same slot over the last 7 days), and the original design's straight line
//!   `Y = b0 + b1·t` through the last day (smartcore's `LinearRegression`).
//! - MSTL (daily + weekly seasons) with AutoETS on the deseasonalised remainder, from the
//!   `augurs` crates, fitted on the last [`MSTL_TRAIN_DAYS`] days.
//! - A lag/calendar ridge regression, see [`ridge`](super::ridge).
//! - A direct day-ahead ridge regression, see [`direct`](super::direct) (on its own it lost to
//!   the recursive one on held-out days), and the persistence ensemble smoothed over time of
//!   day, a baseline that shows what the smoothing alone is worth.
//! - Combinations: the plain mean of the ridge model and one or two others (see
//!   [`ModelKind::components`]). A household's day ahead is mostly noise, and models that err
//!   differently (the ridge model follows the last hours, persistence the week's shape, the
//!   direct model is fitted on the day-ahead error itself) average out part of it: on three
//!   held-out windows of the shared SGSC data, choosing among these means as well lifted the
//!   selection from 5.06% to 5.20% better than persistence7 on average, and on each window
//!   (docs/forecasting.md, run 8). Equal weights, not weights fitted per meter: a combination
//!   stays a fixed model with a name, which the forecast function stores and keeps between
//!   re-selections.
//!
//! Every forecast is clamped at 0 kWh: a consumption meter never measures less.

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::{LinearRegression, LinearRegressionParameters};

use super::grid::Calendar;
use super::{direct, ridge};

/// Days of history MSTL is fitted on: four weekly cycles are enough for STL's weekly season,
/// and its cost grows with the length.
pub const MSTL_TRAIN_DAYS: usize = 28;

/// A forecasting model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelKind {
    /// The last value, repeated.
    LastValue,
    /// The same slot one day earlier.
    SeasonalNaiveDay,
    /// The same slot one week earlier.
    SeasonalNaiveWeek,
    /// Mean of the same slot over the last 7 days (fewer when the history is shorter).
    Persistence7,
    /// The 7-day persistence ensemble smoothed over time of day: the mean of the same slot and
    /// the [`SMOOTH_SLOTS`] either side of it over the last 7 days.
    Persistence7Smooth,
    /// The original design: a straight line through the last day, extrapolated.
    LinearTrend,
    /// MSTL (daily + weekly) with AutoETS on the remainder.
    MstlEts,
    /// Ridge regression on lags and calendar terms, forecast recursively.
    Ridge,
    /// The mean of the ridge and 7-day persistence forecasts. Their errors are far from
    /// perfectly correlated (ridge follows the last hours, persistence the week's shape), so
    /// the average beats either on noisy household series.
    RidgeBlend,
    /// Direct day-ahead ridge regression: every slot of the next day from data available at
    /// the issue time, see [`direct`](super::direct).
    DirectRidge,
    /// The mean of the ridge and direct ridge forecasts.
    RidgeDirect,
    /// The mean of the ridge and smoothed 7-day persistence forecasts.
    RidgeSmooth,
    /// The mean of the ridge, direct ridge and smoothed 7-day persistence forecasts.
    RidgeDirectSmooth,
}

impl ModelKind {
    /// Every model, baselines first.
    pub const ALL: [ModelKind; 13] = [
        Self::LastValue,
        Self::SeasonalNaiveDay,
        Self::SeasonalNaiveWeek,
        Self::Persistence7,
        Self::Persistence7Smooth,
        Self::LinearTrend,
        Self::MstlEts,
        Self::Ridge,
        Self::RidgeBlend,
        Self::DirectRidge,
        Self::RidgeDirect,
        Self::RidgeSmooth,
        Self::RidgeDirectSmooth,
    ];

    /// A stable snake_case name for files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LastValue => "last_value",
            Self::SeasonalNaiveDay => "seasonal_naive_1d",
            Self::SeasonalNaiveWeek => "seasonal_naive_1w",
            Self::Persistence7 => "persistence7",
            Self::Persistence7Smooth => "persistence7_smooth",
            Self::LinearTrend => "linear_trend",
            Self::MstlEts => "mstl_ets",
            Self::Ridge => "ridge",
            Self::RidgeBlend => "ridge_blend",
            Self::DirectRidge => "direct_ridge",
            Self::RidgeDirect => "ridge_direct",
            Self::RidgeSmooth => "ridge_smooth",
            Self::RidgeDirectSmooth => "ridge_direct_smooth",
        }
    }

    /// The models a combination averages (with equal weights); `None` for a model of its own.
    pub fn components(self) -> Option<&'static [ModelKind]> {
        match self {
            Self::RidgeBlend => Some(&[Self::Ridge, Self::Persistence7]),
            Self::RidgeDirect => Some(&[Self::Ridge, Self::DirectRidge]),
            Self::RidgeSmooth => Some(&[Self::Ridge, Self::Persistence7Smooth]),
            Self::RidgeDirectSmooth => {
                Some(&[Self::Ridge, Self::DirectRidge, Self::Persistence7Smooth])
            }
            _ => None,
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The shortest history (in slots) the model needs, for `day` slots per day.
    pub fn min_history(self, day: usize) -> usize {
        if let Some(parts) = self.components() {
            return parts.iter().map(|m| m.min_history(day)).max().unwrap_or(1);
        }
        match self {
            Self::LastValue => 1,
            Self::SeasonalNaiveDay | Self::Persistence7 | Self::Persistence7Smooth => day,
            Self::LinearTrend => 2,
            Self::SeasonalNaiveWeek => 7 * day,
            Self::MstlEts => 14 * day,
            Self::Ridge => ridge::MIN_HISTORY_DAYS * day,
            Self::DirectRidge => direct::MIN_HISTORY_DAYS * day,
            // Combinations are answered above.
            Self::RidgeBlend | Self::RidgeDirect | Self::RidgeSmooth | Self::RidgeDirectSmooth => {
                ridge::MIN_HISTORY_DAYS * day
            }
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a model could not forecast.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// Less history than the model needs.
    #[error("{model} needs {needed} slots of history, got {got}")]
    TooShort {
        /// The model.
        model: ModelKind,
        /// Slots it needs.
        needed: usize,
        /// Slots given.
        got: usize,
    },
    /// The fit itself failed (a library's complaint, kept as text since its error types vary).
    #[error("{model} failed to fit: {reason}")]
    Fit {
        /// The model.
        model: ModelKind,
        /// The library's message.
        reason: String,
    },
}

/// Point forecast of `horizon` slots after `hist` with `model`. `cal` is the calendar of the
/// grid `hist` starts at.
pub fn point_forecast(
    model: ModelKind,
    hist: &[f64],
    cal: &Calendar,
    horizon: usize,
) -> Result<Vec<f64>, ModelError> {
    let day = cal.seasons.day;
    let needed = model.min_history(day);
    if hist.len() < needed {
        return Err(ModelError::TooShort {
            model,
            needed,
            got: hist.len(),
        });
    }
    let mut out = match model {
        ModelKind::LastValue => vec![hist[hist.len() - 1]; horizon],
        ModelKind::SeasonalNaiveDay => seasonal_naive(hist, day, horizon),
        ModelKind::SeasonalNaiveWeek => seasonal_naive(hist, 7 * day, horizon),
        ModelKind::Persistence7 => persistence(hist, day, 7, horizon),
        ModelKind::Persistence7Smooth => persistence_smooth(hist, day, 7, SMOOTH_SLOTS, horizon),
        ModelKind::LinearTrend => linear_trend(hist, day, horizon)?,
        ModelKind::MstlEts => mstl_ets(hist, day, horizon)?,
        ModelKind::Ridge => ridge::forecast(hist, cal, horizon)?,
        ModelKind::DirectRidge => direct::forecast(hist, cal, horizon)?,
        ModelKind::RidgeBlend
        | ModelKind::RidgeDirect
        | ModelKind::RidgeSmooth
        | ModelKind::RidgeDirectSmooth => {
            let parts = model.components().unwrap_or_default();
            let forecasts = parts
                .iter()
                .map(|&m| point_forecast(m, hist, cal, horizon))
                .collect::<Result<Vec<_>, _>>()?;
            mean_of(&forecasts, horizon)
        }
    };
    for v in &mut out {
        *v = clamp(*v);
    }
    Ok(out)
}

/// A forecast value as issued: at least 0 kWh, and 0 if it is not a number.
fn clamp(v: f64) -> f64 {
    if v.is_finite() {
        v.max(0.0)
    } else {
        0.0
    }
}

/// The slot-by-slot mean of several forecasts of `horizon` slots.
fn mean_of(forecasts: &[Vec<f64>], horizon: usize) -> Vec<f64> {
    let k = forecasts.len().max(1) as f64;
    (0..horizon)
        .map(|j| forecasts.iter().map(|f| f[j]).sum::<f64>() / k)
        .collect()
}

/// [`point_forecast`] of several models at once, in `models`' order: each model is fitted once
/// however many of the combinations take it in (a model selection backtests them all at every
/// origin, and the ridge fits are nearly all of its time).
pub fn point_forecasts(
    models: &[ModelKind],
    hist: &[f64],
    cal: &Calendar,
    horizon: usize,
) -> Vec<Result<Vec<f64>, ModelError>> {
    let mut own: Vec<(ModelKind, Result<Vec<f64>, ModelError>)> = Vec::new();
    let mut of = |m: ModelKind| -> Result<Vec<f64>, ModelError> {
        if let Some((_, f)) = own.iter().find(|(k, _)| *k == m) {
            return f.clone();
        }
        let f = point_forecast(m, hist, cal, horizon);
        own.push((m, f.clone()));
        f
    };
    models
        .iter()
        .map(|&m| match m.components() {
            None => of(m),
            Some(parts) => {
                let forecasts = parts
                    .iter()
                    .map(|&p| of(p))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(mean_of(&forecasts, horizon)
                    .into_iter()
                    .map(clamp)
                    .collect())
            }
        })
        .collect()
}

/// `y[n + k - period]`, repeating the last period for horizons longer than it.
fn seasonal_naive(hist: &[f64], period: usize, horizon: usize) -> Vec<f64> {
    let last = &hist[hist.len() - period..];
    (0..horizon).map(|k| last[k % period]).collect()
}

/// Mean of the same slot over the last `days` days (as many as the history holds).
pub(crate) fn persistence(hist: &[f64], day: usize, days: usize, horizon: usize) -> Vec<f64> {
    let n = hist.len();
    let days = days.min(n / day).max(1);
    (0..horizon)
        .map(|k| {
            let slot = k % day;
            let sum: f64 = (1..=days).map(|j| hist[n - j * day + slot]).sum();
            sum / days as f64
        })
        .collect()
}

/// Slots either side of the same slot that [`ModelKind::Persistence7Smooth`] averages.
pub const SMOOTH_SLOTS: usize = 2;

/// Mean of the same slot and `window` slots either side over the last `days` days (as many as
/// the history holds), from the history only, repeated daily. A household's spikes (a kettle,
/// an oven) come a little earlier or later each day: averaging over the neighbouring slots
/// forecasts their expected level instead of last week's exact times.
pub(crate) fn persistence_smooth(
    hist: &[f64],
    day: usize,
    days: usize,
    window: usize,
    horizon: usize,
) -> Vec<f64> {
    let n = hist.len();
    let days = days.min(n / day).max(1);
    let first: Vec<f64> = (0..day.min(horizon.max(1)))
        .map(|slot| {
            let (mut sum, mut count) = (0.0, 0usize);
            for j in 1..=days {
                let c = n + slot - j * day;
                for i in c.saturating_sub(window)..=c + window {
                    if let Some(v) = hist.get(i) {
                        sum += v;
                        count += 1;
                    }
                }
            }
            sum / count.max(1) as f64
        })
        .collect();
    (0..horizon).map(|k| first[k % first.len()]).collect()
}

/// Least squares line through the last day (or all of a shorter history), extrapolated.
fn linear_trend(hist: &[f64], day: usize, horizon: usize) -> Result<Vec<f64>, ModelError> {
    let recent = &hist[hist.len().saturating_sub(day)..];
    let fail = |e: smartcore::error::Failed| ModelError::Fit {
        model: ModelKind::LinearTrend,
        reason: e.to_string(),
    };
    let x = DenseMatrix::new(
        recent.len(),
        1,
        (0..recent.len()).map(|t| t as f64).collect(),
        true,
    )
    .map_err(fail)?;
    let fit = LinearRegression::fit(&x, &recent.to_vec(), LinearRegressionParameters::default())
        .map_err(fail)?;
    let future = DenseMatrix::new(
        horizon,
        1,
        (recent.len()..recent.len() + horizon)
            .map(|t| t as f64)
            .collect(),
        true,
    )
    .map_err(fail)?;
    fit.predict(&future).map_err(fail)
}

/// MSTL with daily and weekly seasons, AutoETS (no seasonality) on trend + remainder.
fn mstl_ets(hist: &[f64], day: usize, horizon: usize) -> Result<Vec<f64>, ModelError> {
    let train = &hist[hist.len().saturating_sub(MSTL_TRAIN_DAYS * day)..];
    let model = MSTLModel::new(
        vec![day, 7 * day],
        AutoETS::non_seasonal().into_trend_model(),
    );
    let fail = |reason: String| ModelError::Fit {
        model: ModelKind::MstlEts,
        reason,
    };
    let fitted = model.fit(train).map_err(|e| fail(e.to_string()))?;
    let forecast = fitted
        .predict(horizon, None)
        .map_err(|e| fail(e.to_string()))?;
    Ok(forecast.point)
}
