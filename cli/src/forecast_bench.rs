//! `meterflow bench forecast`: how fast meter-core forecasts, on real data. Each meter of the
//! input (by default the shared SGSC file) is cut to its last ~60 days before a local midnight;
//! then, on one thread, every meter's model is re-selected by backtest, and every meter's daily
//! forecast (48 h with bands, next-day and rest-of-month energy) is issued with its selected
//! model. Prints JSON: both rates, and where the time goes (one fit of each model, and the
//! ridge fit by hand vs smartcore's `RidgeRegression`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use meter_core::forecast::{
    forecast_meter, point_forecast, ridge, select, Grid, ModelKind, NoTariff, SelectConfig,
    Selection,
};
use serde_json::json;

use crate::forecast::{load, FileArgs, InputArgs};
use crate::import::FormatArg;

/// Benchmark settings.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchForecastArgs {
    /// The interval file (default: the shared SGSC file beside the repository).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Its layout.
    #[arg(long, value_enum, default_value = "sgsc")]
    pub format: FormatArg,
    /// Days of history per meter.
    #[arg(long, default_value_t = 60)]
    pub history_days: usize,
    /// Seconds each daily-forecast measurement runs at least (repeating over the meters).
    #[arg(long, default_value_t = 3.0)]
    pub min_seconds: f64,
    /// Print JSON (the only output today; kept for symmetry with the other benches).
    #[arg(long)]
    pub json: bool,
}

/// Calls `f` over all items until `min` has passed; returns calls per second.
fn rate<T>(items: &[T], min: Duration, mut f: impl FnMut(&T)) -> f64 {
    let started = Instant::now();
    let mut calls = 0u64;
    loop {
        for it in items {
            f(it);
        }
        calls += items.len() as u64;
        if started.elapsed() >= min {
            break;
        }
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

/// Runs the benchmark.
pub fn run(args: &BenchForecastArgs) -> anyhow::Result<()> {
    let input = args
        .input
        .clone()
        .unwrap_or_else(crate::forecast::shared_sgsc_path);
    let loaded = load(&InputArgs {
        file: FileArgs::new(input, args.format),
        horizon: Duration::from_secs(86_400),
        backtest_days: 0,
        reselect_every: 7,
        selection_days: 14,
        candidates: None,
    })?;
    let tz = match args.format {
        FormatArg::Sgsc => chrono_tz::Australia::Brisbane,
        FormatArg::Csv => chrono_tz::Tz::UTC,
    };
    // Each meter's last `history_days` before its last local midnight.
    let windows: Vec<Grid> = loaded
        .grids
        .iter()
        .filter_map(|(_, g)| {
            let day = g.calendar.seasons.day;
            let issue = *g.midnight_issues(args.history_days * day, 0).last()?;
            Some(g.window(issue - args.history_days * day, issue))
        })
        .collect();
    anyhow::ensure!(
        !windows.is_empty(),
        "no meter has {} days of history",
        args.history_days
    );
    let min = Duration::from_secs_f64(args.min_seconds);
    let cfg = SelectConfig::default();

    // Re-selection: once over all meters (it is the slow part).
    let started = Instant::now();
    let selections: Vec<Selection> = windows
        .iter()
        .map(|g| select(&g.values, &g.calendar, &cfg))
        .collect();
    let select_s = started.elapsed().as_secs_f64();
    let mut picked: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &selections {
        *picked.entry(s.model.as_str()).or_default() += 1;
    }

    let pairs: Vec<(&Grid, &Selection)> = windows.iter().zip(&selections).collect();
    let daily = |model: Option<ModelKind>| {
        rate(&pairs, min, |(g, sel)| {
            let forced;
            let sel = match model {
                Some(m) => {
                    forced = Selection {
                        model: m,
                        ..(*sel).clone()
                    };
                    &forced
                }
                None => *sel,
            };
            let day = g.calendar.seasons.day;
            let _ = forecast_meter(g, g.values.len(), sel, 2 * day, tz, &NoTariff);
        })
    };
    let selected_rate = daily(None);
    let mut by_model = BTreeMap::new();
    for m in [
        ModelKind::SeasonalNaiveDay,
        ModelKind::Persistence7,
        ModelKind::Ridge,
        ModelKind::DirectRidge,
        ModelKind::RidgeDirect,
        ModelKind::RidgeDirectSmooth,
        ModelKind::MstlEts,
    ] {
        by_model.insert(m.as_str(), daily(Some(m)));
    }

    // One day-ahead fit + forecast of each model, in µs.
    let mut fit_us = BTreeMap::new();
    for m in ModelKind::ALL {
        let per_s = rate(&windows, min / 4, |g| {
            let day = g.calendar.seasons.day;
            let _ = point_forecast(m, &g.values, &g.calendar, day);
        });
        fit_us.insert(m.as_str(), 1e6 / per_s);
    }
    let own = rate(&windows, min / 4, |g| {
        let _ = ridge::fit(&g.values, &g.calendar);
    });
    let smartcore = rate(&windows, min / 4, |g| {
        let _ = ridge::fit_smartcore(&g.values, &g.calendar);
    });

    let meters = windows.len();
    let report = json!({
        "meters": meters,
        "history_days": args.history_days,
        "threads": 1,
        "daily_forecast": {
            "meters_per_s": selected_rate,
            "us_per_meter": 1e6 / selected_rate,
            "horizon_hours": 48,
            "meters_per_s_if_every_meter_used": by_model,
        },
        "reselection": {
            "meters_per_s": meters as f64 / select_s,
            "ms_per_meter": select_s * 1e3 / meters as f64,
            "backtest_days": cfg.origins,
            "candidates": cfg.candidates.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "selected": picked,
        },
        "day_ahead_fit_and_forecast_us": fit_us,
        "ridge_solver": {
            "normal_equations_us": 1e6 / own,
            "smartcore_ridge_us": 1e6 / smartcore,
        },
    });
    say!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
