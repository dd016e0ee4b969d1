//! Per-meter consumption forecasts: models, per-meter model choice, calibrated bands, and the
//! rolling-origin backtest that scores them. Pure computation: no I/O, no async.
//!
//! The flow: a meter's history goes on a regular [`grid::Grid`]; [`select::select`] backtests
//! the candidate [`models`] on that meter's own past and picks one (short histories fall back to
//! seasonal naive, then the 7-day persistence ensemble), with P10/P90 bands from the backtest's
//! residuals; [`forecast_meter`] then issues the forecast: the next hours at the meter's
//! interval with bands, the next day's and the rest of the month's energy, and a month-end bill
//! once a [`BillProjector`] knows the tariff. [`backtest`] replays all this day by day over a
//! series' last days for evaluation; [`stored`] is what the `forecast` function issues from
//! stored readings and keeps, and how it shards the fleet.

pub mod backtest;
pub mod direct;
pub mod grid;
pub mod models;
pub mod ridge;
pub mod select;
pub mod stored;
#[cfg(test)]
mod tests;

use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;

pub use grid::{Calendar, Grid, Seasons};
pub use models::{point_forecast, ModelError, ModelKind};
pub use select::{select, Bands, SelectConfig, Selection};
pub use stored::{shard_of, ForecastPoint, IssueConfig, IssueError, Kept, StoredForecast};

use crate::types::Timestamp;

/// One forecast interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// End of the interval.
    pub target: Timestamp,
    /// 10th percentile, kWh.
    pub p10: f64,
    /// The point forecast, kWh (the model's mean forecast; the band is around it).
    pub p50: f64,
    /// 90th percentile, kWh.
    pub p90: f64,
}

/// A projected bill for the current month.
#[derive(Debug, Clone, PartialEq)]
pub struct BillProjection {
    /// The amount, in the tariff's currency.
    pub amount: f64,
    /// ISO 4217 code.
    pub currency: String,
}

/// What a month-end bill projection is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonthToEnd<'a> {
    /// Energy measured since the start of the local month, kWh.
    pub month_to_date_kwh: f64,
    /// Forecast for each interval from the issue time to the end of the month.
    pub rest_of_month: &'a [(Timestamp, f64)],
}

/// The hook for the month-end bill: a tariff turns energy into money. Until tariffs exist,
/// [`NoTariff`] projects nothing.
pub trait BillProjector {
    /// The projected bill, or `None` when no tariff applies.
    fn project(&self, month: MonthToEnd<'_>) -> Option<BillProjection>;
}

/// No tariff known: no bill projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTariff;

impl BillProjector for NoTariff {
    fn project(&self, _month: MonthToEnd<'_>) -> Option<BillProjection> {
        None
    }
}

/// A meter's forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterForecast {
    /// Issue time: the end of the last interval used.
    pub issued_at: Timestamp,
    /// The model that produced it (the selected one, or a fallback if it failed).
    pub model: ModelKind,
    /// The next `horizon` intervals.
    pub steps: Vec<Step>,
    /// Energy of the first 24 hours after the issue time (the next local day when issued at
    /// midnight), kWh.
    pub next_day_kwh: f64,
    /// Measured energy from the start of the local month to the issue time, kWh.
    pub month_to_date_kwh: f64,
    /// Forecast energy from the issue time to the end of the local month, kWh.
    pub rest_of_month_kwh: f64,
    /// The month-end bill, when a tariff is known.
    pub bill: Option<BillProjection>,
}

/// The models tried, in order, when the selected one fails to fit.
const RESCUE: [ModelKind; 3] = [
    ModelKind::Persistence7,
    ModelKind::SeasonalNaiveDay,
    ModelKind::LastValue,
];

/// Point forecast with `model`, or with the first of the simpler models that can forecast.
pub fn point_forecast_or_rescue(
    model: ModelKind,
    hist: &[f64],
    cal: &Calendar,
    horizon: usize,
) -> Result<(ModelKind, Vec<f64>), ModelError> {
    let mut last_err = None;
    for m in std::iter::once(model).chain(RESCUE) {
        match point_forecast(m, hist, cal, horizon) {
            Ok(f) => return Ok((m, f)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or(ModelError::TooShort {
        model,
        needed: 1,
        got: 0,
    }))
}

/// The band of a point forecast `p` for slot `i`: `(p10, p50, p90)`, never below 0.
pub fn band(bands: &Bands, cal: &Calendar, i: usize, p: f64) -> (f64, f64, f64) {
    let s = cal.slot_of_day(i);
    let lo = bands.lo.get(s).copied().unwrap_or(0.0);
    let hi = bands.hi.get(s).copied().unwrap_or(0.0);
    ((p + lo).max(0.0), p.max(0.0), (p + hi).max(0.0))
}

/// The start of the local month after the one `t` falls in.
fn next_month_start(t: Timestamp, tz: Tz) -> Option<Timestamp> {
    let local = tz.timestamp_millis_opt(t.millis()).single()?.date_naive();
    let (y, m) = if local.month() == 12 {
        (local.year() + 1, 1)
    } else {
        (local.year(), local.month() + 1)
    };
    let midnight = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
    let instant = tz.from_local_datetime(&midnight).earliest()?;
    Some(Timestamp::from_millis(instant.timestamp_millis()))
}

/// The start of the local month `t` falls in (`t` itself if it is that start).
fn month_start(t: Timestamp, tz: Tz) -> Option<Timestamp> {
    let local = tz.timestamp_millis_opt(t.millis()).single()?.date_naive();
    let midnight = NaiveDate::from_ymd_opt(local.year(), local.month(), 1)?.and_hms_opt(0, 0, 0)?;
    let instant = tz.from_local_datetime(&midnight).earliest()?;
    Some(Timestamp::from_millis(instant.timestamp_millis()))
}

/// The forecast of `grid`'s meter issued after slot `issue - 1` (history `values[..issue]`),
/// with `selection`'s model and bands, `horizon` slots ahead. `tz` is the meter's zone for the
/// month's bounds.
pub fn forecast_meter(
    grid: &Grid,
    issue: usize,
    selection: &Selection,
    horizon: usize,
    tz: Tz,
    bill: &dyn BillProjector,
) -> Result<MeterForecast, ModelError> {
    let cal = &grid.calendar;
    let interval = cal.interval_ms;
    let issue = issue.min(grid.values.len());
    let hist = &grid.values[..issue];
    let issued_at = grid.first_end.add_millis((issue as i64 - 1) * interval);
    // Month bounds, in slots from the issue time. A month of a 15-minute meter is ~3,000
    // slots: forecast that far once and cut the horizon from it.
    let to_month_end = next_month_start(issued_at, tz)
        .map(|end| usize::try_from((end.millis() - issued_at.millis()) / interval).unwrap_or(0))
        .unwrap_or(0);
    let since_month_start = month_start(issued_at, tz)
        .map(|start| usize::try_from((issued_at.millis() - start.millis()) / interval).unwrap_or(0))
        .unwrap_or(0);
    let day = cal.seasons.day;
    let len = horizon.max(to_month_end).max(day);
    let (model, points) = point_forecast_or_rescue(selection.model, hist, cal, len)?;
    let bands = selection.bands_of(model);
    let steps = (0..horizon)
        .map(|k| {
            let (p10, p50, p90) = band(bands, cal, issue + k, points[k]);
            Step {
                target: grid.end_of(issue + k),
                p10,
                p50,
                p90,
            }
        })
        .collect();
    let rest: Vec<(Timestamp, f64)> = (0..to_month_end)
        .map(|k| (grid.end_of(issue + k), points[k]))
        .collect();
    let month_to_date_kwh: f64 = hist[issue.saturating_sub(since_month_start)..].iter().sum();
    let rest_of_month_kwh = rest.iter().map(|p| p.1).sum();
    Ok(MeterForecast {
        issued_at,
        model,
        steps,
        next_day_kwh: points[..day].iter().sum(),
        month_to_date_kwh,
        rest_of_month_kwh,
        bill: bill.project(MonthToEnd {
            month_to_date_kwh,
            rest_of_month: &rest,
        }),
    })
}
