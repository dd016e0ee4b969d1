//! The rolling-origin evaluation: day-ahead forecasts issued at local midnight on each of a
//! series' last days, each from the data before its issue time only, scored against what the
//! meter then measured.
//!
//! The model is re-selected every [`BacktestConfig::reselect_every`] days (as a daily job with a
//! weekly re-selection would) and, in between, the selected model is refitted on each day's
//! history. Every model can be run side by side on the same days for comparison.

use std::collections::BTreeMap;

use super::grid::{Calendar, Grid};
use super::models::{point_forecast, ModelKind};
use super::select::{select, Bands, SelectConfig, Selection};
use super::{band, point_forecast_or_rescue};

/// How the backtest runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestConfig {
    /// Issue days: the last this many local midnights with a full horizon after them.
    pub days: usize,
    /// Slots forecast at each issue.
    pub horizon: usize,
    /// Days between re-selections (1: every day).
    pub reselect_every: usize,
    /// How models are chosen.
    pub select: SelectConfig,
    /// Models also forecast and scored on their own, side by side with the selected one
    /// (empty: the selected model only).
    pub side_by_side: Vec<ModelKind>,
}

/// What a forecast is scored as: the selected model, or one model on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scored {
    /// Whatever was selected for each meter and day.
    Selected,
    /// One model everywhere.
    Model(ModelKind),
}

impl Scored {
    /// `selected` or the model's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Selected => "selected",
            Self::Model(m) => m.as_str(),
        }
    }
}

/// Running error sums of one forecaster on one meter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Score {
    /// Scored slots.
    pub n: u64,
    /// Sum of squared errors.
    pub sse: f64,
    /// Sum of absolute errors.
    pub sae: f64,
    /// Sum of actual values.
    pub sum_actual: f64,
    /// Actuals inside [P10, P90].
    pub covered: u64,
}

impl Score {
    /// Adds one slot.
    pub fn add(&mut self, actual: f64, p10: f64, p50: f64, p90: f64) {
        let e = actual - p50;
        self.n += 1;
        self.sse += e * e;
        self.sae += e.abs();
        self.sum_actual += actual;
        if (p10..=p90).contains(&actual) {
            self.covered += 1;
        }
    }

    /// RMSE over the mean actual; `None` without data or with a zero mean.
    pub fn nrmse(&self) -> Option<f64> {
        let mean = self.sum_actual / self.n as f64;
        (self.n > 0 && mean > 0.0).then(|| (self.sse / self.n as f64).sqrt() / mean)
    }

    /// Mean absolute error.
    pub fn mae(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sae / self.n as f64)
    }

    /// Share of actuals inside [P10, P90].
    pub fn coverage(&self) -> Option<f64> {
        (self.n > 0).then(|| self.covered as f64 / self.n as f64)
    }
}

/// One forecast of one issue.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedForecast {
    /// Grid slot of the first forecast interval (history = `values[..issue]`).
    pub issue: usize,
    /// The model used.
    pub model: ModelKind,
    /// `(p10, p50, p90)` per slot from `issue`.
    pub steps: Vec<(f64, f64, f64)>,
}

/// One meter's backtest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeterBacktest {
    /// The selected model's forecasts, one per issue day.
    pub forecasts: Vec<IssuedForecast>,
    /// Scores by forecaster.
    pub scores: BTreeMap<Scored, Score>,
    /// In-sample MAE of the 1-day seasonal naive forecast on the measured history before the
    /// first issue: the MASE scale.
    pub naive_mae: Option<f64>,
    /// How often each model was selected (issue days).
    pub selected: BTreeMap<ModelKind, u64>,
}

/// In-sample one-day seasonal naive MAE over measured pairs of `values[..end]`.
fn naive_mae(grid: &Grid, end: usize) -> Option<f64> {
    let day = grid.calendar.seasons.day;
    let (mut sum, mut n) = (0.0, 0u64);
    for t in day..end.min(grid.values.len()) {
        if grid.observed[t] && grid.observed[t - day] {
            sum += (grid.values[t] - grid.values[t - day]).abs();
            n += 1;
        }
    }
    (n > 0 && sum > 0.0).then(|| sum / n as f64)
}

/// Runs the backtest on one meter.
pub fn backtest_meter(grid: &Grid, cfg: &BacktestConfig) -> MeterBacktest {
    let cal = &grid.calendar;
    let day = cal.seasons.day;
    let issues = grid.midnight_issues(day, cfg.horizon);
    let issues = &issues[issues.len().saturating_sub(cfg.days)..];
    let mut out = MeterBacktest {
        naive_mae: issues.first().and_then(|i| naive_mae(grid, *i)),
        ..MeterBacktest::default()
    };
    let mut selection: Option<Selection> = None;
    for (k, &issue) in issues.iter().enumerate() {
        let hist = &grid.values[..issue];
        if k % cfg.reselect_every.max(1) == 0 || selection.is_none() {
            selection = Some(select(hist, cal, &cfg.select));
        }
        let Some(sel) = &selection else { continue };
        let Ok((model, points)) = point_forecast_or_rescue(sel.model, hist, cal, cfg.horizon)
        else {
            continue;
        };
        *out.selected.entry(model).or_default() += 1;
        let steps = banded(&points, sel.bands_of(model), cal, issue);
        score(
            grid,
            issue,
            &steps,
            out.scores.entry(Scored::Selected).or_default(),
        );
        for &m in &cfg.side_by_side {
            let Ok(points) = point_forecast(m, hist, cal, cfg.horizon) else {
                continue;
            };
            let steps = banded(&points, sel.bands_of(m), cal, issue);
            score(
                grid,
                issue,
                &steps,
                out.scores.entry(Scored::Model(m)).or_default(),
            );
        }
        out.forecasts.push(IssuedForecast {
            issue,
            model,
            steps,
        });
    }
    out
}

/// `(p10, p50, p90)` of each point of a forecast issued at slot `issue`.
fn banded(points: &[f64], bands: &Bands, cal: &Calendar, issue: usize) -> Vec<(f64, f64, f64)> {
    points
        .iter()
        .enumerate()
        .map(|(j, p)| band(bands, cal, issue + j, *p))
        .collect()
}

/// Scores the measured slots of a forecast.
fn score(grid: &Grid, issue: usize, steps: &[(f64, f64, f64)], into: &mut Score) {
    for (j, (p10, p50, p90)) in steps.iter().enumerate() {
        let t = issue + j;
        if grid.observed.get(t) == Some(&true) {
            into.add(grid.values[t], *p10, *p50, *p90);
        }
    }
}
