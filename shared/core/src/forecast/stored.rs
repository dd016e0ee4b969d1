//! What the `forecast` function issues and keeps per meter, and the pure steps that get there
//! from stored readings: interval energy from the register, the meter's grid, the model (chosen
//! by backtest, or the last chosen one on a cheap day), the forecast, and its stored form.
//!
//! Sharding lives here too: [`shard_of`] is a stable hash of the meter id, so every run, every
//! machine and every Rust version puts a meter in the same shard for the same shard count.

use chrono_tz::Tz;

use super::grid::Grid;
use super::models::ModelKind;
use super::select::{select, Bands, SelectConfig, Selection};
use super::{forecast_meter, BillProjection, BillProjector, MeterForecast};
use crate::energy::{interval_between, IntervalKind, RegisterPolicy};
use crate::types::{Energy, MeterId, Reading, Timestamp, DAY_MS};

/// One stored forecast interval; energies in whole mWh, as everywhere else in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForecastPoint {
    /// End of the forecast interval.
    pub target: Timestamp,
    /// 10th percentile.
    pub p10: Energy,
    /// Point forecast.
    pub p50: Energy,
    /// 90th percentile.
    pub p90: Energy,
}

/// A meter's forecast as the [`crate::ports::ForecastStore`] keeps it: one per
/// `(meter_id, issued_at)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredForecast {
    /// The meter.
    pub meter_id: MeterId,
    /// The run's issue time; the forecast uses no reading after it.
    pub issued_at: Timestamp,
    /// The model that produced it.
    pub model: ModelKind,
    /// The next 48 hours at the meter's interval, with bands.
    pub points: Vec<ForecastPoint>,
    /// Energy of the 24 hours after the issue time.
    pub next_day: Energy,
    /// Measured energy from the start of the local month to the issue time.
    pub month_to_date: Energy,
    /// Forecast energy from the issue time to the end of the local month.
    pub rest_of_month: Energy,
    /// The projected month-end bill: always `None` until tariffs exist. The hook is
    /// [`BillProjector`]; the `forecast` function passes [`super::NoTariff`] today, and a
    /// tariff-aware projector (looking up [`crate::MeterInfo::tariff_id`]) fills this in.
    pub projected_bill: Option<BillProjection>,
    /// The model's P10/P90 offsets by slot of day (whole mWh), from its latest backtest: the
    /// next issues that keep the model reuse them instead of backtesting again. `None` in
    /// forecasts stored before they were kept.
    pub bands: Option<Bands>,
}

/// What a meter's latest forecast hands to the next issue on a day that keeps its model.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// The model to keep.
    pub model: ModelKind,
    /// Its bands, if the forecast kept them.
    pub bands: Option<Bands>,
}

impl Kept {
    /// The model and bands of a stored forecast.
    pub fn of(forecast: &StoredForecast) -> Self {
        Self {
            model: forecast.model,
            bands: forecast.bands.clone(),
        }
    }
}

impl From<ModelKind> for Kept {
    fn from(model: ModelKind) -> Self {
        Self { model, bands: None }
    }
}

/// Why a forecast could not be turned into its stored form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreFormError {
    /// A forecast value is not a storable energy (not finite, or absurdly large).
    #[error("forecast value {0} kWh cannot be stored")]
    Energy(f64),
}

fn energy(kwh: f64) -> Result<Energy, StoreFormError> {
    Energy::from_kwh(kwh.max(0.0)).map_err(|_| StoreFormError::Energy(kwh))
}

impl StoredForecast {
    /// The stored form of `meter`'s forecast.
    pub fn from_forecast(meter: MeterId, f: &MeterForecast) -> Result<Self, StoreFormError> {
        let points = f
            .steps
            .iter()
            .map(|s| {
                Ok(ForecastPoint {
                    target: s.target,
                    p10: energy(s.p10)?,
                    p50: energy(s.p50)?,
                    p90: energy(s.p90)?,
                })
            })
            .collect::<Result<Vec<_>, StoreFormError>>()?;
        Ok(Self {
            meter_id: meter,
            issued_at: f.issued_at,
            model: f.model,
            points,
            next_day: energy(f.next_day_kwh)?,
            month_to_date: energy(f.month_to_date_kwh)?,
            rest_of_month: energy(f.rest_of_month_kwh)?,
            projected_bill: f.bill.clone(),
            bands: None,
        })
    }
}

/// The shard of `meter` among `shards` (0 for `shards` 0 or 1): FNV-1a (64 bit) of the id's
/// bytes, modulo the count. FNV is written out here rather than taken from `std`'s hasher,
/// whose output may change between Rust releases and would move meters between shards.
pub fn shard_of(meter: &MeterId, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in meter.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The remainder is below `shards`, a u32.
    (h % u64::from(shards)) as u32
}

/// A meter's interval energy from its readings (sorted by time): `(interval end, kWh)` of every
/// measured interval (rollovers included), and the meter's interval, its most common step
/// (`None` with fewer than two readings). Gaps and resets are left out: the grid fills them from
/// the past, and a reset's zero is not consumption.
pub fn interval_energy(
    readings: &[Reading],
    policy: &RegisterPolicy,
) -> (Vec<(Timestamp, f64)>, Option<i64>) {
    let mut points = Vec::with_capacity(readings.len());
    let mut steps: Vec<i64> = Vec::with_capacity(readings.len());
    for w in readings.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let step = b.ts.millis() - a.ts.millis();
        if step <= 0 {
            continue;
        }
        steps.push(step);
        let i = interval_between((a.ts, a.energy_import), (b.ts, b.energy_import), policy);
        if matches!(i.kind, IntervalKind::Measured | IntervalKind::Rollover) {
            points.push((b.ts, i.energy.kwh()));
        }
    }
    (points, most_common(&mut steps))
}

/// The most common value (the smaller on a tie).
fn most_common(values: &mut [i64]) -> Option<i64> {
    values.sort_unstable();
    let mut best: Option<(i64, usize)> = None;
    for run in values.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(_, n)| run.len() > n) {
            best = Some((run[0], run.len()));
        }
    }
    best.map(|(v, _)| v)
}

/// How a meter's forecast is issued.
#[derive(Debug, Clone)]
pub struct IssueConfig {
    /// The forecast horizon (48 h).
    pub horizon_ms: i64,
    /// How the model is chosen on a re-selection day.
    pub select: SelectConfig,
    /// Every meter is re-selected once in this many days, on its own day (spread by
    /// [`shard_of`]); in between, the model of its latest forecast is kept with the bands that
    /// forecast stored, so no backtest runs at all (a forecast without stored bands costs one
    /// candidate's backtest instead of all of them).
    pub reselect_every_days: u32,
    /// A meter whose latest reading is older than this at the issue time is not forecast.
    pub max_silence_ms: i64,
}

impl Default for IssueConfig {
    fn default() -> Self {
        Self {
            horizon_ms: 2 * DAY_MS,
            select: SelectConfig::default(),
            reselect_every_days: 7,
            max_silence_ms: 7 * DAY_MS,
        }
    }
}

/// Why no forecast could be issued for a meter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IssueError {
    /// Fewer than two readings before the issue time, or an interval that does not divide a day.
    #[error("not enough regular history before the issue time")]
    NoHistory,
    /// The meter has been silent for too long for a forecast to mean anything.
    #[error("no reading since {last}")]
    Silent {
        /// Its latest measured interval's end.
        last: Timestamp,
    },
    /// Every model failed.
    #[error(transparent)]
    Model(#[from] super::ModelError),
    /// The forecast could not be stored.
    #[error(transparent)]
    StoreForm(#[from] StoreFormError),
}

/// Whether `meter`'s model is re-selected by full backtest for an issue at `issued_at`: on one
/// day in every `every` (its own day), or always when `every` is 0 or 1.
pub fn is_reselection_day(meter: &MeterId, issued_at: Timestamp, every: u32) -> bool {
    if every <= 1 {
        return true;
    }
    let day = issued_at.millis().div_euclid(DAY_MS);
    // rem_euclid of a positive modulus is in 0..every.
    day.rem_euclid(i64::from(every)) as u32 == shard_of(meter, every)
}

/// Issues `meter`'s forecast at `issued_at` from `readings` (sorted, all at or before
/// `issued_at`; later ones are ignored so that no forecast ever sees them). `previous` is the
/// model (and bands) of the meter's latest stored forecast, kept unless today is its
/// re-selection day or it is not one of the candidates (a short history's fallback).
pub fn issue(
    meter: &MeterId,
    tz: Tz,
    readings: &[Reading],
    issued_at: Timestamp,
    previous: Option<Kept>,
    cfg: &IssueConfig,
    bill: &dyn BillProjector,
) -> Result<StoredForecast, IssueError> {
    let upto = readings.partition_point(|r| r.ts <= issued_at);
    let (points, interval) = interval_energy(&readings[..upto], &RegisterPolicy::default());
    let interval = interval.ok_or(IssueError::NoHistory)?;
    let (first, last) = match (points.first(), points.last()) {
        (Some(f), Some(l)) => (f.0, l.0),
        _ => return Err(IssueError::NoHistory),
    };
    if issued_at.millis() - last.millis() > cfg.max_silence_ms {
        return Err(IssueError::Silent { last });
    }
    // The grid runs to the last slot of the meter's phase that ends by the issue time, so a
    // meter whose latest readings are late is still forecast from the issue time on: a NaN
    // point there makes the grid fill the missing slots from the past, like any other gap.
    let mut points = points;
    let last_slot = first.add_millis((issued_at.millis() - first.millis()) / interval * interval);
    if last_slot > last {
        points.push((last_slot, f64::NAN));
    }
    let grid = Grid::from_points(&points, interval, tz).ok_or(IssueError::NoHistory)?;
    let issue = grid.values.len();
    // A model kept from a short history's fallback (not a candidate) is never kept: the meter
    // may have outgrown it, so it is re-selected until a candidate wins.
    let kept = previous.filter(|k| {
        cfg.select.candidates.contains(&k.model)
            && !is_reselection_day(meter, issued_at, cfg.reselect_every_days)
    });
    let horizon = usize::try_from(cfg.horizon_ms / interval)
        .unwrap_or(1)
        .max(1);
    let day = grid.calendar.seasons.day;
    // A kept model with its stored bands needs no backtest: it is fitted once, for the
    // forecast itself. Bands of another interval, or a model that cannot forecast this history
    // any more, go through the backtest below instead.
    if let Some(Kept {
        model,
        bands: Some(bands),
    }) = &kept
    {
        if bands.lo.len() == day && bands.hi.len() == day {
            let selection = Selection {
                model: *model,
                bands: bands.clone(),
                candidates: Vec::new(),
                fallback: None,
                origins: 0,
            };
            if let Ok(f) = forecast_meter(&grid, issue, &selection, horizon, tz, bill) {
                return stored_form(meter, &f, issued_at, &selection);
            }
        }
    }
    let select_cfg = match &kept {
        Some(k) => SelectConfig {
            candidates: vec![k.model],
            ..cfg.select.clone()
        },
        None => cfg.select.clone(),
    };
    let selection = select(&grid.values, &grid.calendar, &select_cfg);
    let f = forecast_meter(&grid, issue, &selection, horizon, tz, bill)?;
    stored_form(meter, &f, issued_at, &selection)
}

/// The stored form of a forecast issued at `issued_at`, with the bands it was issued with.
fn stored_form(
    meter: &MeterId,
    f: &MeterForecast,
    issued_at: Timestamp,
    selection: &Selection,
) -> Result<StoredForecast, IssueError> {
    let mut stored = StoredForecast::from_forecast(meter.clone(), f)?;
    stored.bands = Some(selection.bands_of(f.model).quantized());
    // Keyed by the run's issue time, not the meter's phase, so re-running the same issue
    // replaces the same forecast whatever arrived in between.
    stored.issued_at = issued_at;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::forecast::NoTariff;
    use crate::types::HOUR_MS;

    const HALF_HOUR: i64 = HOUR_MS / 2;
    /// 2026-11-01T00:00:00Z.
    const T0: i64 = 1_761_955_200_000;

    fn meter(id: &str) -> MeterId {
        MeterId::parse(id).unwrap()
    }

    /// Half-hourly readings of a register growing by a daily pattern plus seeded noise.
    fn readings(days: i64, seed: u64) -> Vec<Reading> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut register = 1_000.0;
        (0..days * 48)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let noise = (state >> 33) as f64 / (1u64 << 31) as f64;
                let slot = (i % 48) as f64;
                register += 0.3 + 0.2 * (slot / 48.0 * std::f64::consts::TAU).sin() + 0.2 * noise;
                let ts = Timestamp::from_millis(T0 + i * HALF_HOUR);
                Reading::register_only(meter("m-1"), ts, ts, Energy::from_kwh(register).unwrap())
            })
            .collect()
    }

    #[test]
    fn every_meter_falls_in_exactly_one_shard_and_no_shard_is_starved() {
        let meters: Vec<MeterId> = (0..2_000).map(|i| meter(&format!("m-{i:05}"))).collect();
        for shards in 1..=64u32 {
            let mut counts = vec![0usize; shards as usize];
            for m in &meters {
                let s = shard_of(m, shards);
                assert!(s < shards);
                assert_eq!(s, shard_of(m, shards), "stable");
                counts[s as usize] += 1;
            }
            assert_eq!(counts.iter().sum::<usize>(), meters.len());
            let fair = meters.len() / shards as usize;
            assert!(
                counts.iter().all(|&c| c * 2 > fair),
                "{shards} shards: {counts:?}"
            );
        }
        // Pinned values: a change here would move every meter to another shard.
        assert_eq!(shard_of(&meter("meter-0001"), 100), 82);
    }

    #[test]
    fn an_issued_forecast_never_uses_readings_after_the_issue_time() {
        for seed in 0..3u64 {
            let all = readings(30, seed);
            let issued_at = Timestamp::from_millis(T0 + (24 + seed as i64) * 86_400_000);
            let cfg = IssueConfig::default();
            let a = issue(
                &meter("m-1"),
                Tz::UTC,
                &all,
                issued_at,
                None,
                &cfg,
                &NoTariff,
            )
            .unwrap();
            let mut changed = all.clone();
            for r in changed.iter_mut().filter(|r| r.ts > issued_at) {
                r.energy_import = Energy::from_mwh(r.energy_import.mwh() * 3);
            }
            let b = issue(
                &meter("m-1"),
                Tz::UTC,
                &changed,
                issued_at,
                None,
                &cfg,
                &NoTariff,
            )
            .unwrap();
            assert_eq!(a, b, "seed {seed}");
            assert_eq!(a.issued_at, issued_at);
            assert_eq!(a.points.len(), 96);
            assert_eq!(a.points[0].target, issued_at.add_millis(HALF_HOUR));
            assert!(a.points.iter().all(|p| p.p10 <= p.p50 && p.p50 <= p.p90));
        }
    }

    #[test]
    fn a_meter_whose_last_readings_are_late_is_still_forecast_from_the_issue_time() {
        let all = readings(30, 1);
        let issued_at = Timestamp::from_millis(T0 + 25 * 86_400_000);
        // The last six hours before the issue never arrived.
        let late: Vec<Reading> = all
            .iter()
            .filter(|r| r.ts.millis() <= issued_at.millis() - 6 * HOUR_MS)
            .cloned()
            .collect();
        let f = issue(
            &meter("m-1"),
            Tz::UTC,
            &late,
            issued_at,
            None,
            &IssueConfig::default(),
            &NoTariff,
        )
        .unwrap();
        assert_eq!(f.issued_at, issued_at);
        assert_eq!(f.points[0].target, issued_at.add_millis(HALF_HOUR));
    }

    #[test]
    fn a_silent_or_empty_meter_gets_no_forecast() {
        let all = readings(30, 2);
        let cfg = IssueConfig::default();
        let long_after = Timestamp::from_millis(T0 + 60 * 86_400_000);
        assert!(matches!(
            issue(
                &meter("m-1"),
                Tz::UTC,
                &all,
                long_after,
                None,
                &cfg,
                &NoTariff
            ),
            Err(IssueError::Silent { .. })
        ));
        assert_eq!(
            issue(
                &meter("m-1"),
                Tz::UTC,
                &all[..1],
                all[0].ts,
                None,
                &cfg,
                &NoTariff
            ),
            Err(IssueError::NoHistory)
        );
    }

    #[test]
    fn between_reselection_days_the_previous_model_is_kept() {
        let all = readings(30, 3);
        let cfg = IssueConfig::default();
        let m = meter("m-1");
        let days: Vec<Timestamp> = (20..27)
            .map(|d| Timestamp::from_millis(T0 + d * 86_400_000))
            .collect();
        let reselect: Vec<bool> = days
            .iter()
            .map(|&t| is_reselection_day(&m, t, cfg.reselect_every_days))
            .collect();
        assert_eq!(reselect.iter().filter(|&&r| r).count(), 1, "once a week");
        let quiet = days[reselect.iter().position(|r| !r).unwrap()];
        let kept = issue(
            &m,
            Tz::UTC,
            &all,
            quiet,
            Some(ModelKind::Persistence7.into()),
            &cfg,
            &NoTariff,
        )
        .unwrap();
        assert_eq!(kept.model, ModelKind::Persistence7);
        // A fallback model is not kept: the meter has outgrown it.
        let regrown = issue(
            &m,
            Tz::UTC,
            &all,
            quiet,
            Some(ModelKind::LastValue.into()),
            &cfg,
            &NoTariff,
        )
        .unwrap();
        assert_ne!(regrown.model, ModelKind::LastValue);
    }

    #[test]
    fn a_kept_model_reuses_its_stored_bands_and_ones_of_another_interval_are_recalibrated() {
        let all = readings(40, 3);
        let cfg = IssueConfig::default();
        let m = meter("m-1");
        let days: Vec<Timestamp> = (30..37)
            .map(|d| Timestamp::from_millis(T0 + d * 86_400_000))
            .collect();
        let quiet = *days
            .iter()
            .find(|&&t| !is_reselection_day(&m, t, cfg.reselect_every_days))
            .unwrap();
        let chosen = issue(&m, Tz::UTC, &all, quiet, None, &cfg, &NoTariff).unwrap();
        let bands = chosen
            .bands
            .clone()
            .expect("an issued forecast keeps its bands");
        assert_eq!(bands.lo.len(), 48);
        assert_eq!(bands, bands.quantized(), "stored bands are whole mWh");

        // Kept with bands unlike any backtest's: they are used as they are.
        let planted = Bands::from_mwh(&[-1_000; 48], &[2_000; 48]);
        let kept = Kept {
            model: chosen.model,
            bands: Some(planted.clone()),
        };
        let reused = issue(&m, Tz::UTC, &all, quiet, Some(kept), &cfg, &NoTariff).unwrap();
        assert_eq!(reused.model, chosen.model);
        assert_eq!(reused.bands, Some(planted));
        assert_eq!(reused.points.len(), chosen.points.len());
        for (a, b) in reused.points.iter().zip(&chosen.points) {
            assert_eq!(a.p50, b.p50, "the same model gives the same point forecast");
        }
        let p = &reused.points[0];
        assert!(p.p90.mwh() - p.p50.mwh() <= 2_000 && p.p50.mwh() - p.p10.mwh() <= 1_000);

        // Bands of another interval (96 quarter-hour slots) are recalibrated by backtest.
        let other = Kept {
            model: chosen.model,
            bands: Some(Bands::from_mwh(&[-1_000; 96], &[2_000; 96])),
        };
        let recalibrated = issue(&m, Tz::UTC, &all, quiet, Some(other), &cfg, &NoTariff).unwrap();
        assert_eq!(recalibrated.bands.as_ref().map(|b| b.lo.len()), Some(48));
        assert_ne!(
            recalibrated.bands,
            Some(Bands::from_mwh(&[-1_000; 48], &[2_000; 48]))
        );
    }
}
