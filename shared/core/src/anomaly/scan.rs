//! The anomaly scan of one feeder: every detector over a [`FeederWindow`], one list of
//! [`Finding`]s. The `anomaly-scan` function (and `meterflow up`) hands each feeder of its shard
//! here, whole, then de-duplicates the findings against the store
//! ([`super::reconcile::reconcile`]).
//!
//! The window handed to [`scan()`] is the meters' *history* (by default the last 35 days): the
//! VEE spike check compares each interval with the same slot over four weeks, pattern theft
//! scores a day against the days around it, the feeder balance accumulates its CUSUM hour by hour.
//! What a scan *reports* is only what is current: a finding whose evidence ended before the
//! last [`ScanConfig::report_ms`] is history, already reported by an earlier scan (or closed).
//!
//! Detectors are plain functions in [`DETECTORS`], each with the [`Scope`] it wants: the whole
//! history, or only the report window (what outage and power-quality checks look at): VEE,
//! tamper and relay checks, outages, power quality, feeder balance, pattern theft (single days)
//! and sustained theft (evidence accumulated over days). Adding one
//! is one line there (and its settings in [`ScanConfig`]).

use chrono_tz::Tz;

use super::balance::{block_balance, rank_block_suspects, CusumConfig, LossModel, RatedLoss};
use super::days::MeterDays;
use super::finding::{FeederWindow, Finding, FindingKind, MeterWindow};
use super::iforest::ForestConfig;
use super::outage::{self, OutageConfig};
use super::quality::{self, QualityConfig};
use super::sustained::{track_group, SustainedConfig};
use super::tamper::{self, TamperConfig};
use super::theft::{score_fleet, TheftConfig};
use super::vee::{self, IntervalReading, VeeConfig};
use crate::energy::{interval_between, local_midnight, IntervalKind, RegisterPolicy};
use crate::series::MeterSeries;
use crate::types::{Energy, Reading, Timestamp, DAY_MS, HOUR_MS};

/// How the feeder balance models technical losses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossPolicy {
    /// From the feeder's rating when the registry knows it (the feeder meter's `contracted_kw`,
    /// read as the transformer's rating in kVA): a physical model that needs no history;
    /// fitted as [`LossPolicy::Fit`] on a feeder without one.
    Rated {
        /// The model's shares of the rating.
        rated: RatedLoss,
        /// Days fitted on when the rating is unknown.
        calibration_days: usize,
    },
    /// Fitted ([`LossModel::fit`]) on the first days of the history, taken to be clean; with
    /// fewer days than that, no balance is judged.
    Fit {
        /// Days fitted on.
        calibration_days: usize,
    },
    /// A known model (from the utility's network data).
    Fixed(LossModel),
}

/// Scan settings.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Days of history each meter's readings are read for (default 35: four weeks of same-slot
    /// history for spikes plus a week to score against).
    pub history_days: u32,
    /// The report window, ms: findings whose evidence ended before `to − report_ms` are not
    /// reported (default one day, so a daily scan misses nothing and an hourly one re-sees
    /// each condition until it is gone).
    pub report_ms: i64,
    /// Pattern-theft scoring.
    pub theft: TheftConfig,
    /// The isolation forest over the theft components.
    pub forest: ForestConfig,
    /// A day scoring at least this is reported as pattern theft (robust-z units). The default,
    /// 42, is calibrated on clean real data (50 SGSC homes, every day scored as the scan's latest
    /// day) for at most half a false finding per 1,000 clean meter-days: see
    /// `docs/detection.md` (`meterflow eval theft --scan-thresholds`).
    pub pattern_min_score: f64,
    /// A day the forest scores at least this is reported as a consumption anomaly (0.5 is an
    /// average day). The default, 0.79, is calibrated as `pattern_min_score` is, for the other
    /// half of one false finding per 1,000 clean meter-days.
    pub anomaly_min_forest: f64,
    /// Sustained pattern theft: each consumer's daily evidence accumulated over days. Its
    /// [`SustainedConfig::history_days`] (35 at the defaults) is what `history_days` must cover
    /// for every day of the accumulation to have its full references.
    pub sustained: SustainedConfig,
    /// The feeder balance's CUSUM.
    pub cusum: CusumConfig,
    /// The feeder balance's technical-loss model.
    pub loss: LossPolicy,
    /// Consumers named as suspects when a feeder's balance alarms, at most.
    pub max_suspects: usize,
    /// A suspect must explain at least this share of the missing energy.
    pub min_suspect_share: f64,
    /// Meter and feeder outages, restorations.
    pub outage: OutageConfig,
    /// Power quality (EN 50160 voltage, power factor, frequency).
    pub quality: QualityConfig,
    /// Tamper flags, consumption with the relay open, zero while the feeder is loaded.
    pub tamper: TamperConfig,
}

impl ScanConfig {
    /// The defaults, with every voltage threshold taken from a grid of `nominal_v` volts.
    pub fn for_nominal(nominal_v: f64) -> Self {
        Self {
            outage: OutageConfig::for_nominal(nominal_v),
            quality: QualityConfig::for_nominal(nominal_v),
            tamper: TamperConfig::for_nominal(nominal_v),
            ..Self::default()
        }
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            history_days: 35,
            report_ms: DAY_MS,
            theft: TheftConfig::default(),
            forest: ForestConfig::default(),
            pattern_min_score: 42.0,
            anomaly_min_forest: 0.79,
            sustained: SustainedConfig::default(),
            cusum: CusumConfig::default(),
            loss: LossPolicy::Rated {
                rated: RatedLoss::default(),
                calibration_days: 7,
            },
            max_suspects: 3,
            min_suspect_share: 0.3,
            outage: OutageConfig::default(),
            quality: QualityConfig::default(),
            tamper: TamperConfig::default(),
        }
    }
}

/// What part of the window a detector sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole history window.
    History,
    /// Only the report window (readings after `to − report_ms`).
    Window,
}

/// A detector's signature: the feeder window it is given, the scan's settings.
pub type DetectorFn = fn(&FeederWindow, &ScanConfig) -> Vec<Finding>;

/// One detector of the scan.
#[derive(Debug, Clone, Copy)]
pub struct Detector {
    /// A short name for logs.
    pub name: &'static str,
    /// What it is given.
    pub scope: Scope,
    /// The check.
    pub run: DetectorFn,
}

/// Every detector the scan runs, in order.
pub const DETECTORS: &[Detector] = &[
    Detector {
        name: "vee",
        scope: Scope::History,
        run: vee_findings,
    },
    Detector {
        name: "tamper",
        // The zero-while-the-feeder-is-loaded check compares with the meter's own history.
        scope: Scope::History,
        run: |w, c| tamper::detect(w, &c.tamper),
    },
    Detector {
        name: "outage",
        // The whole history, so a meter silent for longer than the report window still shows
        // its last reading, and one that never reported is told apart from one that stopped.
        scope: Scope::History,
        run: |w, c| outage::detect(w, &c.outage),
    },
    Detector {
        name: "quality",
        scope: Scope::Window,
        run: |w, c| quality::detect(w, &c.quality),
    },
    Detector {
        name: "feeder_balance",
        scope: Scope::History,
        run: feeder_balance,
    },
    Detector {
        name: "pattern_theft",
        scope: Scope::History,
        run: pattern_theft,
    },
    Detector {
        name: "sustained_theft",
        scope: Scope::History,
        run: sustained_theft,
    },
];

/// Runs every detector of [`DETECTORS`] over `history` (the meters' readings over the history
/// window) and returns the current findings, sorted by meter, kind and window.
pub fn scan(history: &FeederWindow, config: &ScanConfig) -> Vec<Finding> {
    scan_with(DETECTORS, history, config)
}

/// [`scan()`] with another list of detectors.
pub fn scan_with(
    detectors: &[Detector],
    history: &FeederWindow,
    config: &ScanConfig,
) -> Vec<Finding> {
    let report_from = history.to.add_millis(-config.report_ms.max(0));
    let recent = restrict(history, report_from);
    let mut out: Vec<Finding> = Vec::new();
    for d in detectors {
        let window = match d.scope {
            Scope::History => history,
            Scope::Window => &recent,
        };
        let found = (d.run)(window, config);
        tracing::trace!(detector = d.name, findings = found.len(), "detector ran");
        out.extend(found.into_iter().filter(|f| f.to > report_from));
    }
    out.sort_by(|a, b| {
        (&a.meter_id, a.kind, a.from, a.to).cmp(&(&b.meter_id, b.kind, b.from, b.to))
    });
    out
}

/// The window cut to readings after `from`.
pub fn restrict(window: &FeederWindow, from: Timestamp) -> FeederWindow {
    let cut = |m: &MeterWindow| MeterWindow {
        info: m.info.clone(),
        readings: m.readings.iter().filter(|r| r.ts > from).cloned().collect(),
    };
    FeederWindow {
        feeder: window.feeder.as_ref().map(cut),
        consumers: window.consumers.iter().map(cut).collect(),
        from: from.max(window.from),
        to: window.to,
    }
}

/// Every meter of the window, the feeder first.
fn meters(window: &FeederWindow) -> impl Iterator<Item = &MeterWindow> {
    window.feeder.iter().chain(&window.consumers)
}

/// The most common step between readings (the smaller on a tie).
fn interval_of(readings: &[Reading]) -> Option<i64> {
    let mut steps: Vec<i64> = readings
        .windows(2)
        .map(|w| w[1].ts.millis() - w[0].ts.millis())
        .filter(|s| *s > 0)
        .collect();
    steps.sort_unstable();
    let mut best: Option<(i64, usize)> = None;
    for run in steps.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(_, n)| run.len() > n) {
            best = Some((run[0], run.len()));
        }
    }
    best.map(|(v, _)| v)
}

/// A meter's intervals as the VEE checks take them, and its interval. An interval is the
/// register's move between two readings one interval apart (raw: a register going backwards is
/// negative, which is what the checks look for; a rollover is measured across the wrap);
/// a longer step is left out, so the checks see it as a gap.
pub fn intervals(readings: &[Reading]) -> (Vec<IntervalReading>, Option<i64>) {
    let Some(interval) = interval_of(readings) else {
        return (Vec::new(), None);
    };
    let policy = RegisterPolicy::default();
    let mut out = Vec::with_capacity(readings.len());
    for w in readings.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let step = b.ts.millis() - a.ts.millis();
        // Up to one and a half intervals: a late clock is not a gap.
        if step <= 0 || 2 * step > 3 * interval {
            continue;
        }
        let i = interval_between((a.ts, a.energy_import), (b.ts, b.energy_import), &policy);
        let kwh = match i.kind {
            IntervalKind::Rollover => i.energy.kwh(),
            _ => b.energy_import.kwh() - a.energy_import.kwh(),
        };
        out.push(IntervalReading {
            end: b.ts,
            kwh,
            register_kwh: Some(b.energy_import.kwh()),
            mean_power_kw: b.power_w.map(|w| w / 1000.0),
            voltage_v: b.voltage_v,
        });
    }
    (out, Some(interval))
}

/// A meter's measured interval energy as a series (negative intervals left out: they are bad
/// data, reported by VEE, not consumption).
fn series(m: &MeterWindow) -> Option<MeterSeries> {
    let (iv, interval) = intervals(&m.readings);
    let points = iv
        .iter()
        .filter_map(|r| Energy::from_kwh(r.kwh).ok().map(|e| (r.end, e)))
        .collect();
    Some(MeterSeries {
        meter_id: m.info.meter_id.clone(),
        interval_ms: Some(interval?),
        points,
        gaps: 0,
        duplicates: 0,
        conflicting_duplicates: 0,
    })
}

/// The VEE checks ([`vee::check`]) on every meter's own history.
pub fn vee_findings(window: &FeederWindow, _config: &ScanConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in meters(window) {
        let (iv, Some(interval)) = intervals(&m.readings) else {
            continue;
        };
        let cfg = VeeConfig::for_interval(interval);
        out.extend(
            vee::check(&iv, &cfg)
                .into_iter()
                .map(|f| Finding::from_vee(m.info.meter_id.clone(), f)),
        );
    }
    out
}

/// The local day `i` of `days` as an evidence window: the end of its first interval to the end
/// of its last.
fn day_window(days: &MeterDays, i: usize, tz: Tz) -> (Timestamp, Timestamp) {
    let start = local_midnight(&tz, days.dates[i]);
    let end = days
        .dates
        .get(i)
        .and_then(|d| d.succ_opt())
        .map_or(start.add_millis(DAY_MS), |next| local_midnight(&tz, next));
    let interval = DAY_MS / days.slots.max(1) as i64;
    (start.add_millis(interval), end)
}

/// Pattern theft and consumption anomalies: every consumer-day scored against the consumer's
/// own history and its feeder peers ([`score_fleet`]); complete days at or above the
/// thresholds are reported.
pub fn pattern_theft(window: &FeederWindow, config: &ScanConfig) -> Vec<Finding> {
    let mut meters: Vec<(MeterDays, Tz)> = Vec::new();
    for m in &window.consumers {
        let tz = m.info.timezone;
        if let Some(days) = series(m).and_then(|s| MeterDays::from_series(&s, tz)) {
            if days.len() > config.theft.min_reference_days {
                meters.push((days, tz));
            }
        }
    }
    if meters.is_empty() {
        return Vec::new();
    }
    let days: Vec<MeterDays> = meters.iter().map(|(d, _)| d.clone()).collect();
    let scored = score_fleet(&days, &config.theft, &config.forest);
    let mut out = Vec::new();
    for ((days, tz), scores) in meters.iter().zip(scored) {
        for s in scores {
            // Today is not over: a partial day would look like a drop in consumption.
            let (from, to) = day_window(days, s.day, *tz);
            if to > window.to || !days.is_complete(s.day) {
                continue;
            }
            if s.score >= config.pattern_min_score {
                out.push(Finding {
                    meter_id: days.meter_id.clone(),
                    kind: FindingKind::PatternTheft,
                    score: s.score,
                    from,
                    to,
                    explanation: format!(
                        "{} looks under-reported: score {:.1} against the meter's own days \
                         (strongest sign: {})",
                        s.date,
                        s.score,
                        s.strongest()
                    ),
                });
            }
            if s.forest >= config.anomaly_min_forest {
                out.push(Finding {
                    meter_id: days.meter_id.clone(),
                    kind: FindingKind::ConsumptionAnomaly,
                    score: s.forest,
                    from,
                    to,
                    explanation: format!(
                        "{} is unusual among the feeder's meter-days: isolation score {:.2}",
                        s.date, s.forest
                    ),
                });
            }
        }
    }
    out
}

/// Sustained pattern theft: every consumer-day over by the scan time scored against the
/// consumer's *previous* days only and its feeder peers, the days' evidence accumulated
/// ([`track_group`]); while the accumulation alarms on the consumer's latest day, one
/// [`FindingKind::SustainedTheft`] whose evidence window runs from the estimated onset to that
/// day. Each scan re-reports the same condition with the same onset, so the store keeps it as
/// one open finding ([`super::reconcile`]) until the evidence fades.
pub fn sustained_theft(window: &FeederWindow, config: &ScanConfig) -> Vec<Finding> {
    let cfg = &config.sustained;
    let theft = cfg.theft();
    let mut meters: Vec<MeterDays> = Vec::new();
    let mut zones: Vec<Tz> = Vec::new();
    for m in &window.consumers {
        let tz = m.info.timezone;
        if let Some(mut days) = series(m).and_then(|s| MeterDays::from_series(&s, tz)) {
            // Today is not over: a partial day would look like a drop in consumption.
            while !days.is_empty() && day_window(&days, days.len() - 1, tz).1 > window.to {
                days.dates.pop();
                days.values.truncate(days.dates.len() * days.slots);
            }
            if days.len() > theft.min_reference_days {
                meters.push(days);
                zones.push(tz);
            }
        }
    }
    let tracked = track_group(&meters, cfg);
    let mut out = Vec::new();
    for ((days, tz), t) in meters.iter().zip(&zones).zip(&tracked) {
        let (Some(last), Some(latest)) = (t.accumulated.last(), t.scores.last()) else {
            continue;
        };
        if !last.alarm || latest.day + 1 != days.len() {
            continue;
        }
        let onset = days.dates.binary_search(&last.onset).unwrap_or(latest.day);
        let (from, _) = day_window(days, onset, *tz);
        let (_, to) = day_window(days, latest.day, *tz);
        out.push(Finding {
            meter_id: days.meter_id.clone(),
            kind: FindingKind::SustainedTheft,
            score: last.cusum,
            from,
            to,
            explanation: format!(
                "looks under-reported for {} days since {}: evidence {:.1} accumulated against \
                 the meter's own previous days (alarm at {:.1}); {} scored {:.1} (strongest \
                 sign: {})",
                last.run_days,
                last.onset,
                last.cusum,
                cfg.threshold,
                latest.date,
                latest.pattern,
                latest.strongest()
            ),
        });
    }
    out
}

/// The feeder energy balance: the feeder meter's energy against the sum of its consumers' and
/// the modelled technical loss, hour by hour with a CUSUM in shares of a day's energy
/// ([`block_balance`]). While the alarm holds on the latest hour, the feeder gets a
/// [`FindingKind::FeederLoss`] and the consumers whose own change explains most of the missing
/// energy ([`rank_block_suspects`]) a [`FindingKind::LossSuspect`].
///
/// The loss model comes from [`ScanConfig::loss`]: with a rated feeder it is known from the first
/// interval, so a theft is caught in a short history; a fitted one needs its calibration days
/// first.
pub fn feeder_balance(window: &FeederWindow, config: &ScanConfig) -> Vec<Finding> {
    let Some(feeder) = &window.feeder else {
        return Vec::new();
    };
    let tz = feeder.info.timezone;
    let Some(fdays) = series(feeder).and_then(|s| MeterDays::from_series(&s, tz)) else {
        return Vec::new();
    };
    let slots = fdays.slots;
    let consumers: Vec<MeterDays> = window
        .consumers
        .iter()
        .filter_map(|m| series(m).and_then(|s| MeterDays::from_series(&s, tz)))
        .filter(|d| d.slots == slots)
        .collect();
    if consumers.is_empty() {
        return Vec::new();
    }
    let interval = DAY_MS / slots as i64;
    // Hours where the interval divides one, else single intervals.
    let block = if slots % 24 == 0 { slots / 24 } else { 1 };
    // Interval by interval over the feeder's days: its energy, its consumers' sum (NaN where
    // the feeder or any consumer did not report: missing data is not missing energy), each
    // consumer's own, and the interval's end.
    let n = fdays.len() * slots;
    let mut f = Vec::with_capacity(n);
    let mut c = Vec::with_capacity(n);
    let mut own: Vec<Vec<f64>> = vec![Vec::with_capacity(n); consumers.len()];
    let mut ends = Vec::with_capacity(n);
    for (i, date) in fdays.dates.iter().enumerate() {
        let rows: Vec<Option<&[f64]>> = consumers
            .iter()
            .map(|d| d.dates.binary_search(date).ok().map(|j| d.day(j)))
            .collect();
        let midnight = local_midnight(&tz, *date);
        for (k, fv) in fdays.day(i).iter().enumerate() {
            let end = midnight.add_millis((k as i64 + 1) * interval);
            let cv: Option<f64> = rows
                .iter()
                .map(|r| r.map(|day| day[k]).filter(|v| v.is_finite()))
                .sum();
            let usable = fv.is_finite() && cv.is_some() && end <= window.to;
            f.push(if usable { *fv } else { f64::NAN });
            c.push(if usable {
                cv.unwrap_or(f64::NAN)
            } else {
                f64::NAN
            });
            for (j, r) in rows.iter().enumerate() {
                let v = r.map_or(f64::NAN, |day| day[k]);
                own[j].push(if usable { v } else { f64::NAN });
            }
            ends.push(end);
        }
    }
    let loss = match config.loss {
        LossPolicy::Fixed(m) => Some(m),
        LossPolicy::Rated {
            rated,
            calibration_days,
        } => feeder
            .info
            .contracted_kw
            .and_then(|kva| rated.model(kva, interval as f64 / HOUR_MS as f64))
            .or_else(|| fit_loss(&f, &c, slots, calibration_days)),
        LossPolicy::Fit { calibration_days } => fit_loss(&f, &c, slots, calibration_days),
    };
    let Some(loss) = loss else {
        return Vec::new();
    };
    let balance = block_balance(&f, &c, block, slots, &loss, &config.cusum);
    // The latest block with data: the scan's present (later ones are not over, or not stored).
    let Some(now) = balance.iter().rposition(|b| b.intervals > 0) else {
        return Vec::new();
    };
    let last = balance[now];
    if !last.alarm {
        return Vec::new();
    }
    let per_block = |v: &[f64]| -> Vec<f64> {
        v.chunks(block)
            .map(|b| b.iter().filter(|x| x.is_finite()).sum())
            .collect()
    };
    let truth = per_block(&f.iter().map(|e| e - loss.loss(*e)).collect::<Vec<f64>>());
    let blocks_per_day = slots / block;
    let span = &balance[last.onset..=now];
    let missing: f64 = span.iter().map(|b| b.missing_kwh).sum();
    let hours_with_data = span.iter().filter(|b| b.intervals > 0).count().max(1);
    let missing_per_day = missing / hours_with_data as f64 * blocks_per_day as f64;
    // Blocks are whole (a day is a whole number of them), so both ends exist.
    let end_of = |i: usize| ends.get(i).copied().unwrap_or(window.to);
    let from = end_of(last.onset * block);
    let to = end_of((now + 1) * block - 1).min(window.to);
    let mut out = vec![Finding {
        meter_id: feeder.info.meter_id.clone(),
        kind: FindingKind::FeederLoss,
        score: last.cusum,
        from,
        to,
        explanation: format!(
            "feeder energy unaccounted for since {}: {:.1} kWh a day beyond modelled losses \
             (CUSUM {:.2})",
            from.add_millis(-interval),
            missing_per_day,
            last.cusum
        ),
    }];
    let reference = config.theft.min_reference_days * blocks_per_day;
    let own_blocks: Vec<Vec<f64>> = own.iter().map(|v| per_block(v)).collect();
    for (j, score) in rank_block_suspects(
        &own_blocks,
        &truth,
        blocks_per_day,
        last.onset,
        now,
        reference,
    )
    .into_iter()
    .take(config.max_suspects)
    .filter(|(_, s)| *s >= config.min_suspect_share)
    {
        out.push(Finding {
            meter_id: consumers[j].meter_id.clone(),
            kind: FindingKind::LossSuspect,
            score,
            from,
            to,
            explanation: format!(
                "its reported drop explains {:.0}% of the energy missing on feeder {}",
                100.0 * score.min(1.0),
                feeder.info.meter_id
            ),
        });
    }
    out
}

/// A loss model fitted ([`LossModel::fit`]) on the usable intervals of the first
/// `calibration_days` days, taken to be clean; `None` before the history is longer than that.
fn fit_loss(f: &[f64], c: &[f64], slots: usize, calibration_days: usize) -> Option<LossModel> {
    let n = calibration_days * slots;
    if f.len() <= n {
        return None;
    }
    let (cf, cc): (Vec<f64>, Vec<f64>) = f[..n]
        .iter()
        .zip(&c[..n])
        .filter(|(f, c)| f.is_finite() && c.is_finite())
        .map(|(f, c)| (*f, *c))
        .unzip();
    LossModel::fit(&cf, &cc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MeterInfo;
    use crate::types::{MeterId, MeterKind, MeterStatus};

    const QUARTER: i64 = 900_000;
    /// 2025-11-03T00:00Z.
    const T0: i64 = 1_762_128_000_000;

    fn info(id: &str, kind: MeterKind, feeder: Option<&str>) -> MeterInfo {
        let mut i = MeterInfo::new_consumer(MeterId::parse(id).unwrap(), Tz::UTC);
        i.kind = kind;
        i.feeder_id = feeder.map(|f| MeterId::parse(f).unwrap());
        i
    }

    /// `days` days of quarter-hour readings whose interval energy is `kwh(day, slot)`.
    fn readings(id: &str, days: i64, kwh: impl Fn(i64, i64) -> f64) -> Vec<Reading> {
        let meter = MeterId::parse(id).unwrap();
        let mut register = 1_000.0;
        (0..=days * 96)
            .map(|k| {
                let ts = Timestamp::from_millis(T0 + k * QUARTER);
                if k > 0 {
                    register += kwh((k - 1) / 96, (k - 1) % 96);
                }
                let mut r = Reading::register_only(
                    meter.clone(),
                    ts,
                    ts,
                    Energy::from_kwh(register).unwrap(),
                );
                let e = if k > 0 {
                    kwh((k - 1) / 96, (k - 1) % 96)
                } else {
                    0.1
                };
                r.power_w = Some(e * 4_000.0);
                r.voltage_v = Some(230.0);
                r
            })
            .collect()
    }

    /// A household-like day: a night base and an evening peak, a little different each day.
    fn load(seed: i64) -> impl Fn(i64, i64) -> f64 {
        move |d, s| {
            let h = s as f64 / 4.0;
            let wobble = 1.0 + 0.05 * (((d * 7 + s * 3 + seed * 11) % 13) as f64 / 13.0 - 0.5);
            (0.05 + 0.2 * (-((h - 19.0) / 2.5f64).powi(2)).exp())
                * wobble
                * (1.0 + seed as f64 * 0.1)
        }
    }

    fn window(feeder: Option<MeterWindow>, consumers: Vec<MeterWindow>, days: i64) -> FeederWindow {
        FeederWindow {
            feeder,
            consumers,
            from: Timestamp::from_millis(T0 - 1),
            to: Timestamp::from_millis(T0 + days * DAY_MS),
        }
    }

    fn kinds(found: &[Finding]) -> Vec<(&str, FindingKind)> {
        found
            .iter()
            .map(|f| (f.meter_id.as_str(), f.kind))
            .collect()
    }

    #[test]
    fn a_clean_feeder_has_no_findings() {
        let consumers: Vec<MeterWindow> = (0..6)
            .map(|j| MeterWindow {
                info: info(&format!("c-{j}"), MeterKind::Consumer, Some("f-1")),
                readings: readings(&format!("c-{j}"), 14, load(j)),
            })
            .collect();
        let total = move |d, s| (0..6).map(|j| load(j)(d, s)).sum::<f64>() * 1.02 + 0.01;
        let feeder = MeterWindow {
            info: info("f-1", MeterKind::Feeder, None),
            readings: readings("f-1", 14, total),
        };
        let found = scan(&window(Some(feeder), consumers, 14), &ScanConfig::default());
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_stuck_register_and_tamper_flags_in_the_report_window_are_found() {
        let mut stuck = readings("c-1", 10, load(1));
        // The last 3 hours: the register stands still while 1 kW is reported.
        let n = stuck.len();
        let frozen = stuck[n - 13].energy_import;
        for r in &mut stuck[n - 12..] {
            r.energy_import = frozen;
            r.power_w = Some(1_000.0);
        }
        let mut tampered = readings("c-2", 10, load(2));
        for r in tampered.iter_mut().rev().take(4) {
            r.status = MeterStatus::Tamper;
        }
        let w = window(
            None,
            vec![
                MeterWindow {
                    info: info("c-1", MeterKind::Consumer, None),
                    readings: stuck,
                },
                MeterWindow {
                    info: info("c-2", MeterKind::Consumer, None),
                    readings: tampered,
                },
            ],
            10,
        );
        let cfg = ScanConfig {
            // Three hours of nothing also make c-1's day odd; this test is about the flags.
            pattern_min_score: f64::INFINITY,
            anomaly_min_forest: f64::INFINITY,
            ..ScanConfig::default()
        };
        let found = scan(&w, &cfg);
        let mut seen = kinds(&found);
        seen.dedup();
        // The standstill is also energy disagreeing with power, interval by interval.
        assert_eq!(
            seen,
            vec![
                ("c-1", FindingKind::StuckRegister),
                ("c-1", FindingKind::PowerMismatch),
                ("c-2", FindingKind::Tamper)
            ],
            "{found:?}"
        );
        assert_eq!(found[0].to, w.to);
        let tamper = found.last().unwrap();
        assert_eq!(tamper.score, 4.0);
    }

    #[test]
    fn a_fault_that_ended_before_the_report_window_is_not_reported_again() {
        let mut tampered = readings("c-2", 10, load(2));
        // Tamper flags on day 3 only: a week before the scan.
        for r in &mut tampered[3 * 96..3 * 96 + 4] {
            r.status = MeterStatus::Tamper;
        }
        let w = window(
            None,
            vec![MeterWindow {
                info: info("c-2", MeterKind::Consumer, None),
                readings: tampered,
            }],
            10,
        );
        assert!(scan(&w, &ScanConfig::default()).is_empty());
    }

    #[test]
    fn a_consumer_bypassing_its_meter_raises_a_feeder_loss_and_is_named_as_suspect() {
        // c-3 reports 40% of its load from day 9 on; the feeder sees all of it.
        let thief = |d: i64, s: i64| load(3)(d, s) * if d >= 9 { 0.4 } else { 1.0 };
        let consumers: Vec<MeterWindow> = (0..6)
            .map(|j| {
                let id = format!("c-{j}");
                let r = if j == 3 {
                    readings(&id, 16, thief)
                } else {
                    readings(&id, 16, load(j))
                };
                MeterWindow {
                    info: info(&id, MeterKind::Consumer, Some("f-1")),
                    readings: r,
                }
            })
            .collect();
        let total = move |d, s| (0..6).map(|j| load(j)(d, s)).sum::<f64>() * 1.02 + 0.01;
        let feeder = MeterWindow {
            info: info("f-1", MeterKind::Feeder, None),
            readings: readings("f-1", 16, total),
        };
        let cfg = ScanConfig {
            // Pattern theft would (rightly) flag c-3's drop too; this test is about the balance.
            pattern_min_score: f64::INFINITY,
            anomaly_min_forest: f64::INFINITY,
            ..ScanConfig::default()
        };
        let found = scan(&window(Some(feeder), consumers, 16), &cfg);
        assert_eq!(
            kinds(&found),
            vec![
                ("c-3", FindingKind::LossSuspect),
                ("f-1", FindingKind::FeederLoss)
            ],
            "{found:?}"
        );
        let loss = &found[1];
        assert_eq!(
            loss.from.millis(),
            T0 + 9 * DAY_MS + QUARTER,
            "onset on day 9"
        );
    }

    #[test]
    fn a_consumer_reporting_nothing_all_its_latest_day_is_a_pattern_theft_at_the_defaults() {
        let consumers: Vec<MeterWindow> = (0..6)
            .map(|j| {
                let id = format!("c-{j}");
                let r = if j == 2 {
                    readings(&id, 10, |d, s| if d == 9 { 0.0 } else { load(2)(d, s) })
                } else {
                    readings(&id, 10, load(j))
                };
                MeterWindow {
                    info: info(&id, MeterKind::Consumer, None),
                    readings: r,
                }
            })
            .collect();
        let found = scan(&window(None, consumers, 10), &ScanConfig::default());
        let theft: Vec<&str> = found
            .iter()
            .filter(|f| {
                matches!(
                    f.kind,
                    FindingKind::PatternTheft | FindingKind::ConsumptionAnomaly
                )
            })
            .map(|f| f.meter_id.as_str())
            .collect();
        assert!(theft.contains(&"c-2"), "{found:?}");
        assert!(theft.iter().all(|m| *m == "c-2"), "{found:?}");
        assert!(
            found
                .iter()
                .any(|f| f.kind == FindingKind::PatternTheft && f.score >= 42.0),
            "{found:?}"
        );
    }

    /// Six consumers (`c-0`..`c-5`, `thief` reporting only `kept` of its load from hour
    /// `from_hour`) under feeder `f-1` rated 25 kVA, whose meter measures their true load plus
    /// exactly the losses [`RatedLoss::default`] models, over `days` days.
    fn rated_feeder(days: i64, thief: Option<i64>, from_hour: i64, kept: f64) -> FeederWindow {
        let consumers: Vec<MeterWindow> = (0..6)
            .map(|j| {
                let id = format!("c-{j}");
                let reported = move |d: i64, s: i64| {
                    let stolen = thief == Some(j) && d * 24 + s / 4 >= from_hour;
                    load(j)(d, s) * if stolen { kept } else { 1.0 }
                };
                MeterWindow {
                    info: info(&id, MeterKind::Consumer, Some("f-1")),
                    readings: readings(&id, days, reported),
                }
            })
            .collect();
        let model = RatedLoss::default().model(25.0, 0.25).unwrap();
        let metered = move |d, s| {
            let load: f64 = (0..6).map(|j| load(j)(d, s)).sum();
            (0..8).fold(load, |e, _| load + model.loss(e))
        };
        let mut feeder_info = info("f-1", MeterKind::Feeder, None);
        feeder_info.contracted_kw = Some(25.0);
        let feeder = MeterWindow {
            info: feeder_info,
            readings: readings("f-1", days, metered),
        };
        window(Some(feeder), consumers, days)
    }

    #[test]
    fn a_rated_feeder_with_a_day_of_history_and_no_theft_has_no_findings() {
        let found = scan(&rated_feeder(1, None, 0, 1.0), &ScanConfig::default());
        assert!(found.is_empty(), "{found:?}");
        let found = scan(&rated_feeder(3, None, 0, 1.0), &ScanConfig::default());
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_bypass_starting_in_the_first_day_of_a_rated_feeder_is_found_the_next_day_with_its_thief() {
        // c-4 (~18% of the load) reports 40% of it from hour 16: ~11% of the feeder's energy.
        let w = rated_feeder(2, Some(4), 16, 0.4);
        let found = scan(&w, &ScanConfig::default());
        assert_eq!(
            kinds(&found),
            vec![
                ("c-4", FindingKind::LossSuspect),
                ("f-1", FindingKind::FeederLoss)
            ],
            "{found:?}"
        );
        assert_eq!(
            found[1].from.millis(),
            T0 + 16 * 3_600_000 + QUARTER,
            "onset"
        );
        assert_eq!(found[1].to, w.to);
        assert!(found[0].score > 0.8, "{found:?}");
    }

    #[test]
    fn without_a_rating_a_short_history_judges_no_balance() {
        let mut w = rated_feeder(2, Some(4), 16, 0.4);
        if let Some(f) = w.feeder.as_mut() {
            f.info.contracted_kw = None;
        }
        assert!(feeder_balance(&w, &ScanConfig::default()).is_empty());
    }

    /// Six consumers without a feeder meter over `days` days; `c-2` reports `kept` of its load
    /// from day `onset` on.
    fn one_thief(days: i64, onset: i64, kept: f64) -> FeederWindow {
        let consumers: Vec<MeterWindow> = (0..6)
            .map(|j| {
                let id = format!("c-{j}");
                let reported = move |d: i64, s: i64| {
                    load(j)(d, s) * if j == 2 && d >= onset { kept } else { 1.0 }
                };
                MeterWindow {
                    info: info(&id, MeterKind::Consumer, None),
                    readings: readings(&id, days, reported),
                }
            })
            .collect();
        window(None, consumers, days)
    }

    /// Single-day findings off: these tests are about the accumulation.
    fn sustained_only() -> ScanConfig {
        ScanConfig {
            pattern_min_score: f64::INFINITY,
            anomaly_min_forest: f64::INFINITY,
            ..ScanConfig::default()
        }
    }

    #[test]
    fn a_consumer_under_reporting_day_after_day_is_a_sustained_theft_from_its_onset() {
        let found = scan(&one_thief(34, 28, 0.4), &sustained_only());
        assert_eq!(
            kinds(&found),
            vec![("c-2", FindingKind::SustainedTheft)],
            "{found:?}"
        );
        let f = &found[0];
        assert_eq!(
            f.from.millis(),
            T0 + 28 * DAY_MS + QUARTER,
            "onset on day 28"
        );
        assert_eq!(f.to.millis(), T0 + 34 * DAY_MS);
        assert!(
            f.explanation.contains("under-reported"),
            "{}",
            f.explanation
        );
        // Nothing before enough days of evidence, nothing on a clean fleet.
        assert!(scan(&one_thief(29, 28, 0.4), &sustained_only()).is_empty());
        assert!(scan(&one_thief(34, 99, 1.0), &sustained_only()).is_empty());
    }

    #[test]
    fn persisting_sustained_theft_is_one_open_finding_across_daily_scans() {
        let mut open: Vec<crate::anomaly::StoredFinding> = Vec::new();
        let mut opened = 0;
        for days in 31..=35 {
            let w = one_thief(days, 28, 0.4);
            let found: Vec<Finding> = scan(&w, &sustained_only())
                .into_iter()
                .filter(|f| f.kind == FindingKind::SustainedTheft)
                .collect();
            assert_eq!(found.len(), 1, "day {days}: {found:?}");
            let r = crate::anomaly::reconcile(&open, &found, w.to);
            opened += r.opened.len();
            open = crate::anomaly::reconcile::apply(&open, &r);
        }
        assert_eq!(opened, 1);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].from.millis(), T0 + 28 * DAY_MS + QUARTER);
    }

    #[test]
    fn intervals_leave_gaps_out_and_keep_a_register_going_backwards() {
        let mut r = readings("c-1", 1, |_, _| 0.25);
        r.remove(10);
        r[20].energy_import = Energy::from_kwh(900.0).unwrap();
        let (iv, interval) = intervals(&r);
        assert_eq!(interval, Some(QUARTER));
        assert_eq!(iv.len(), r.len() - 2, "the step over the gap is left out");
        assert!(iv.iter().any(|i| i.kwh < -50.0));
    }
}
