//! `meterflow eval theft --sustained`: multi-day evidence accumulation
//! ([`meter_core::anomaly::sustained`]) against thefts that persist from an onset day on, on
//! real data.
//!
//! Each round gives every meter one theft episode: from a seeded onset day, for
//! [`EPISODE_DAYS`] days by default (or to the end of its data), one under-reporting pattern
//! every day.
//! The patterns go beyond h1–h6 on purpose (evaluators use others): a constant 30% under-report,
//! capping at a share of the day's peak, subtracting a constant, whole days of zeros, a gradual
//! reduction and a smaller neighbour's profile. Over the rounds every meter gets every pattern
//! once. Each round's fleet is scored as a daily scan scores its latest day (past references
//! only, [`References::Before`]) and accumulated per meter; a theft is *found within N days*
//! when the accumulation alarms on one of its first N days. An episode that leaves the readings
//! nearly as they were (under 5% of the energy changed, e.g. zeroing a vacant home) has nothing
//! to find: it is counted as unobservable and left out of the recall.
//!
//! False findings are counted on the file as it is (no injection): each time a meter's
//! accumulation goes into alarm is one finding (the scan keeps a persisting alarm as one open
//! finding), per 1,000 scored clean meter-days. The threshold is chosen on a seeded half of the
//! meters (the smallest meeting the target there) and reported on the other half, so the
//! reported rate is not the one the threshold was fitted to.
//!
//! The same episodes also measure `meterflow detect`, which scores each day against the days on
//! both sides of it: per-day ROC-AUC and PR-AUC of the episodes' days against every scored day
//! of the clean file, per pattern, as an outside evaluator with labelled multi-day thefts
//! would measure it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use meter_core::anomaly::metrics::{average_precision, roc_auc};
use meter_core::anomaly::sustained::{track, SustainedConfig};
use meter_core::anomaly::theft::{
    peer_shifts, score_fleet, score_fleet_with, score_meter_with, PeerShifts, References,
};
use meter_core::anomaly::{Attack, DayScore, ForestConfig, MeterDays, Rng, TheftConfig};
use serde_json::{json, Value};

/// Days a theft episode lasts by default (fewer where the meter's data ends first).
pub const EPISODE_DAYS: usize = 28;

/// What the evaluation runs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Rounds: one episode per meter each (12 give every meter every pattern once).
    pub rounds: usize,
    /// Seed of the injections and of the calibration half.
    pub seed: u64,
    /// The false findings per 1,000 clean meter-days the threshold is chosen for.
    pub per_1000: f64,
    /// Days each episode lasts.
    pub episode_days: usize,
    /// How `meterflow detect` scores days, for its per-day figures.
    pub detect: TheftConfig,
}

/// The days-since-onset at which recall is reported ("found within N days").
const WITHIN: [usize; 7] = [1, 2, 3, 7, 14, 21, 28];

/// The days-since-onset at which the share of episodes still in alarm is reported (day 1 = the
/// onset day): whether a finding, once raised, stays open while the theft goes on.
const IN_ALARM_ON: [usize; 4] = [7, 14, 21, 28];

/// A sustained under-reporting pattern, applied to every day of an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pattern {
    /// One of h1–h6, drawn afresh every day as the literature does.
    Literature(Attack),
    /// 70% of the truth: a constant 30% under-report.
    Scale70,
    /// Each interval capped at a share (0.3–0.7, per episode) of the day's own peak.
    Cap,
    /// A constant (0.2–0.5 of the meter's mean interval before the onset, per episode)
    /// subtracted from every interval, floored at 0.
    Subtract,
    /// Zeros all day.
    ZeroDays,
    /// A share falling linearly from 1 on the onset day to 0.4 after four weeks.
    Gradual,
    /// Another, smaller meter's same day (a neighbour's profile substituted).
    Neighbour,
}

impl Pattern {
    /// Every pattern evaluated.
    pub const ALL: [Self; 12] = [
        Self::Literature(Attack::H1),
        Self::Literature(Attack::H2),
        Self::Literature(Attack::H3),
        Self::Literature(Attack::H4),
        Self::Literature(Attack::H5),
        Self::Literature(Attack::H6),
        Self::Scale70,
        Self::Cap,
        Self::Subtract,
        Self::ZeroDays,
        Self::Gradual,
        Self::Neighbour,
    ];

    /// A short name for the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Literature(a) => a.as_str(),
            Self::Scale70 => "scale70",
            Self::Cap => "cap",
            Self::Subtract => "subtract",
            Self::ZeroDays => "zero_days",
            Self::Gradual => "gradual",
            Self::Neighbour => "neighbour",
        }
    }

    /// Whether the pattern lowers the energy reported (h5 and h6 move it in time only).
    pub fn under_reports(self) -> bool {
        !matches!(
            self,
            Self::Literature(Attack::H5) | Self::Literature(Attack::H6)
        )
    }
}

/// One injected episode.
#[derive(Debug, Clone, Copy)]
struct Episode {
    meter: usize,
    pattern: Pattern,
    /// Index of the onset day in the meter's days.
    onset: usize,
    /// One past the last attacked day.
    end: usize,
    /// Whether the reported days differ from the truth by at least [`OBSERVABLE`] of its
    /// energy, interval by interval (zeroing a vacant home's meter changes nothing).
    observable: bool,
}

/// The least change, as a share of the truth's energy over the episode (Σ|reported − true| /
/// Σ true), for an episode to count: below it there is nothing to find.
const OBSERVABLE: f64 = 0.05;

/// Injects one episode of `pattern` into `meter` (index `m` of `fleet`, the clean file); the
/// onset is drawn so that the meter has `lead` days before it. `None` when the meter is too
/// short.
fn inject(
    fleet: &[MeterDays],
    m: usize,
    target: &mut MeterDays,
    pattern: Pattern,
    (lead, episode_days): (usize, usize),
    rng: &mut Rng,
) -> Option<Episode> {
    let n = target.len();
    if n < lead + 7 {
        return None;
    }
    let onset = lead + rng.below(n - lead - 7 + 1);
    let end = (onset + episode_days).min(n);
    let slots = target.slots;
    // Per-episode parameters.
    let share = rng.uniform(0.3, 0.7);
    let before: Vec<f64> = (onset.saturating_sub(28)..onset)
        .flat_map(|i| target.day(i).iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    let mean_interval = before.iter().sum::<f64>() / before.len().max(1) as f64;
    let constant = rng.uniform(0.2, 0.5) * mean_interval;
    // The neighbour: the meter with the next lower mean consumption, if any.
    let mean_of = |d: &MeterDays| {
        let v: Vec<f64> = d.values.iter().copied().filter(|v| v.is_finite()).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let own = mean_of(&fleet[m]);
    let neighbour = (0..fleet.len())
        .filter(|&j| j != m && fleet[j].slots == slots && mean_of(&fleet[j]) < own)
        .max_by(|&a, &b| mean_of(&fleet[a]).total_cmp(&mean_of(&fleet[b])));
    for i in onset..end {
        let date = target.dates[i];
        let progress = (i - onset) as f64 / episode_days.max(1) as f64;
        let day = target.day_mut(i);
        match pattern {
            Pattern::Literature(a) => {
                // Missing intervals stay missing; the pattern is applied to the rest.
                let mut filled: Vec<f64> = day
                    .iter()
                    .map(|v| if v.is_finite() { *v } else { 0.0 })
                    .collect();
                a.inject(&mut filled, rng);
                for (v, f) in day.iter_mut().zip(filled) {
                    if v.is_finite() {
                        *v = f;
                    }
                }
            }
            Pattern::Scale70 => day.iter_mut().for_each(|v| *v *= 0.7),
            Pattern::Cap => {
                let peak = day
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .fold(0.0, f64::max);
                day.iter_mut().for_each(|v| *v = v.min(share * peak));
            }
            Pattern::Subtract => day.iter_mut().for_each(|v| *v = (*v - constant).max(0.0)),
            Pattern::ZeroDays => day.iter_mut().for_each(|v| {
                if v.is_finite() {
                    *v = 0.0;
                }
            }),
            Pattern::Gradual => {
                let kept = 1.0 - 0.6 * progress;
                day.iter_mut().for_each(|v| *v *= kept);
            }
            Pattern::Neighbour => {
                let other = neighbour.and_then(|j| {
                    let d = &fleet[j];
                    d.dates.binary_search(&date).ok().map(|k| d.day(k))
                });
                match other {
                    Some(o) => day.iter_mut().zip(o).for_each(|(v, w)| {
                        if v.is_finite() {
                            *v = if w.is_finite() { *w } else { 0.0 };
                        }
                    }),
                    // No smaller neighbour that day: half the truth, which is what it would
                    // roughly be.
                    None => day.iter_mut().for_each(|v| *v *= 0.5),
                }
            }
        }
    }
    let (mut changed, mut truth) = (0.0, 0.0);
    for i in onset..end {
        for (r, t) in target.day(i).iter().zip(fleet[m].day(i)) {
            if r.is_finite() && t.is_finite() {
                changed += (r - t).abs();
                truth += t;
            }
        }
    }
    Some(Episode {
        meter: m,
        pattern,
        onset,
        end,
        observable: changed > OBSERVABLE * truth && truth > 0.0,
    })
}

/// Scores a fleet as the daily scan scores its latest days.
fn score(
    fleet: &[MeterDays],
    config: &SustainedConfig,
    forest: &ForestConfig,
) -> Vec<Vec<DayScore>> {
    score_fleet_with(fleet, &config.theft(), forest, References::Before)
}

/// Writes every scored day of a round to `out` (for exploring the evidence offline): its
/// scan-style scores, then the score `meterflow detect` gives it (days on both sides as
/// references) and the accumulation's evidence and `S_t` on it (NaN where not scored).
fn dump(
    out: &mut dyn Write,
    round: usize,
    fleet: &[MeterDays],
    (config, detect): (&SustainedConfig, &TheftConfig),
    forest: &ForestConfig,
    episodes: &[Option<Episode>],
) -> std::io::Result<()> {
    let scored = score(fleet, config, forest);
    let around = score_fleet(fleet, detect, forest);
    let shifts = shifts(fleet, config);
    for (m, days) in scored.iter().enumerate() {
        let ep = episodes.get(m).copied().flatten();
        let detect: BTreeMap<usize, f64> = around[m].iter().map(|d| (d.day, d.score)).collect();
        let acc: BTreeMap<usize, (f64, f64)> = track(&fleet[m], &shifts, config)
            .accumulated
            .iter()
            .map(|a| (a.day, (a.evidence, a.cusum)))
            .collect();
        for d in days {
            let (pattern, since) = match ep {
                Some(e) if (e.onset..e.end).contains(&d.day) => {
                    (e.pattern.as_str(), (d.day - e.onset) as i64)
                }
                Some(e) if d.day >= e.end => ("after", -2),
                _ => ("clean", -1),
            };
            write!(out, "{round},{m},{},{},{pattern},{since}", d.day, d.date)?;
            for c in d.components {
                write!(out, ",{c:.4}")?;
            }
            let (evidence, cusum) = acc.get(&d.day).copied().unwrap_or((f64::NAN, f64::NAN));
            writeln!(
                out,
                ",{:.4},{:.4},{:.4},{evidence:.4},{cusum:.4}",
                d.pattern,
                d.forest,
                detect.get(&d.day).copied().unwrap_or(f64::NAN)
            )?;
        }
    }
    Ok(())
}

/// The peer correction of a fleet's dates, from its days scored the plain way (as
/// [`meter_core::anomaly::sustained::track_group`] takes it).
fn shifts(fleet: &[MeterDays], config: &SustainedConfig) -> PeerShifts {
    let theft = config.theft();
    let plain: Vec<Vec<DayScore>> = fleet
        .iter()
        .map(|m| score_meter_with(m, &theft, References::Before))
        .collect();
    peer_shifts(&plain, theft.min_peers)
}

/// Per meter, the day index and whether its accumulation alarmed, for every scored day.
fn alarms(
    fleet: &[MeterDays],
    shifts: &PeerShifts,
    config: &SustainedConfig,
) -> Vec<Vec<(usize, bool)>> {
    fleet
        .iter()
        .map(|days| {
            track(days, shifts, config)
                .accumulated
                .iter()
                .map(|a| (a.day, a.alarm))
                .collect()
        })
        .collect()
}

/// Clean findings: how many times each meter's accumulation went into alarm, and its scored
/// days.
fn clean_findings(alarms: &[Vec<(usize, bool)>]) -> Vec<(usize, usize)> {
    alarms
        .iter()
        .map(|days| {
            let mut opened = 0;
            let mut was = false;
            for &(_, on) in days {
                opened += usize::from(on && !was);
                was = on;
            }
            (opened, days.len())
        })
        .collect()
}

/// Per-day ROC-AUC and PR-AUC of `meterflow detect`'s scores (settings `detect`): the days of
/// every round's observable episodes against every scored day of the clean file, per pattern
/// and overall.
fn detect_day_aucs(
    clean: &[MeterDays],
    rounds: &[Round],
    detect: &TheftConfig,
    forest: &ForestConfig,
) -> Value {
    let negatives: Vec<f64> = score_fleet(clean, detect, forest)
        .iter()
        .flatten()
        .map(|d| d.score)
        .collect();
    let mut positives: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for r in rounds {
        let scored = score_fleet(&r.fleet, detect, forest);
        for e in r.episodes.iter().flatten().filter(|e| e.observable) {
            positives.entry(e.pattern.as_str()).or_default().extend(
                scored[e.meter]
                    .iter()
                    .filter(|d| (e.onset..e.end).contains(&d.day))
                    .map(|d| d.score),
            );
        }
    }
    let aucs = |pos: &[f64]| {
        let scores: Vec<f64> = pos.iter().chain(&negatives).copied().collect();
        let labels: Vec<bool> = (0..scores.len()).map(|i| i < pos.len()).collect();
        json!({
            "roc_auc": roc_auc(&scores, &labels),
            "pr_auc": average_precision(&scores, &labels),
            "days": pos.len(),
        })
    };
    let all: Vec<f64> = positives.values().flatten().copied().collect();
    let by_pattern: BTreeMap<&str, Value> = positives.iter().map(|(p, v)| (*p, aucs(v))).collect();
    json!({
        "window_days": detect.window_days,
        "clean_days": negatives.len(),
        "overall": aucs(&all),
        "by_pattern": by_pattern,
    })
}

/// One round: its fleet (episodes injected), the peer correction of its dates, its episodes.
struct Round {
    fleet: Vec<MeterDays>,
    shifts: PeerShifts,
    episodes: Vec<Option<Episode>>,
}

/// Runs the evaluation at the accumulation settings `config` (its threshold is the one
/// reported as the scan's default; another is chosen on the calibration half from a grid);
/// `dump_to` writes every scored day for exploration.
pub fn evaluate(
    clean: &[MeterDays],
    settings: &Settings,
    forest: &ForestConfig,
    dump_to: Option<&Path>,
    config: SustainedConfig,
) -> anyhow::Result<Value> {
    let Settings {
        rounds,
        seed,
        per_1000,
        episode_days,
        ..
    } = *settings;
    let mut dump_file = match dump_to {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    if let Some(f) = dump_file.as_mut() {
        dump(f, 0, clean, (&config, &settings.detect), forest, &[])?;
    }
    let base_shifts = shifts(clean, &config);
    // The calibration half of the meters (seeded), the rest held out.
    let mut order: Vec<usize> = (0..clean.len()).collect();
    let mut rng = Rng::derive(seed, 77_000);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let calibration: Vec<bool> = {
        let mut c = vec![false; clean.len()];
        for &m in &order[..order.len() / 2] {
            c[m] = true;
        }
        c
    };
    let lead = config.reference_days + config.min_reference_days();
    let mut round_data = Vec::new();
    for round in 0..rounds {
        let mut fleet = clean.to_vec();
        let mut rng = Rng::derive(seed, 78_000 + round as u64);
        let episodes: Vec<Option<Episode>> = (0..fleet.len())
            .map(|m| {
                let pattern = Pattern::ALL[(m + round) % Pattern::ALL.len()];
                inject(
                    clean,
                    m,
                    &mut fleet[m],
                    pattern,
                    (lead, episode_days),
                    &mut rng,
                )
            })
            .collect();
        if let Some(f) = dump_file.as_mut() {
            dump(
                f,
                round + 1,
                &fleet,
                (&config, &settings.detect),
                forest,
                &episodes,
            )?;
        }
        let shifts = shifts(&fleet, &config);
        round_data.push(Round {
            fleet,
            shifts,
            episodes,
        });
    }
    if let Some(mut f) = dump_file {
        f.flush()?;
    }
    // Clean findings per meter at a setting: (openings, scored days).
    let clean_findings_at =
        |cfg: &SustainedConfig| clean_findings(&alarms(clean, &base_shifts, cfg));
    let rate = |per_meter: &[(usize, usize)], keep: &dyn Fn(usize) -> bool| {
        let (opened, days) = per_meter
            .iter()
            .enumerate()
            .filter(|(m, _)| keep(*m))
            .fold((0, 0), |t, (_, v)| (t.0 + v.0, t.1 + v.1));
        (opened, days, 1000.0 * opened as f64 / days.max(1) as f64)
    };
    // Threshold: the smallest on a grid meeting the target on the calibration half.
    let thresholds: Vec<f64> = (4..=80).map(|t| f64::from(t) * 0.5).collect();
    let chosen = thresholds
        .iter()
        .map(|&t| SustainedConfig {
            threshold: t,
            ..config
        })
        .find(|c| rate(&clean_findings_at(c), &|m| calibration[m]).2 <= per_1000)
        .unwrap_or(config);
    let report_at = |cfg: &SustainedConfig| -> Value {
        let mut episodes: Vec<(Episode, Vec<(usize, bool)>)> = Vec::new();
        for r in &round_data {
            let al = alarms(&r.fleet, &r.shifts, cfg);
            for e in r.episodes.iter().flatten() {
                episodes.push((*e, al[e.meter].clone()));
            }
        }
        let recall = |keep: &dyn Fn(&Episode) -> bool| -> Value {
            let set: Vec<&(Episode, Vec<(usize, bool)>)> = episodes
                .iter()
                .filter(|(e, _)| e.observable && keep(e))
                .collect();
            let mut within = serde_json::Map::new();
            for n in WITHIN {
                let found = set
                    .iter()
                    .filter(|(e, al)| {
                        al.iter()
                            .any(|&(d, on)| on && d >= e.onset && d < (e.onset + n).min(e.end))
                    })
                    .count();
                within.insert(
                    format!("within_{n}_days"),
                    json!(found as f64 / set.len().max(1) as f64),
                );
            }
            // Of the episodes that last to day N, the share in alarm on it (an unscored day
            // counts as not in alarm).
            for n in IN_ALARM_ON {
                let lasting: Vec<_> = set.iter().filter(|(e, _)| e.onset + n <= e.end).collect();
                let on = lasting
                    .iter()
                    .filter(|(e, al)| al.iter().any(|&(d, on)| on && d == e.onset + n - 1))
                    .count();
                within.insert(
                    format!("in_alarm_on_day_{n}"),
                    json!(on as f64 / lasting.len().max(1) as f64),
                );
            }
            within.insert("episodes".into(), json!(set.len()));
            within.insert(
                "unobservable_left_out".into(),
                json!(episodes
                    .iter()
                    .filter(|(e, _)| !e.observable && keep(e))
                    .count()),
            );
            Value::Object(within)
        };
        let mut by_pattern = BTreeMap::new();
        for p in Pattern::ALL {
            by_pattern.insert(p.as_str(), recall(&|e: &Episode| e.pattern == p));
        }
        let per_meter = clean_findings_at(cfg);
        let (cal_opened, cal_days, cal_rate) = rate(&per_meter, &|m| calibration[m]);
        let (held_opened, held_days, held_rate) = rate(&per_meter, &|m| !calibration[m]);
        let (all_opened, all_days, all_rate) = rate(&per_meter, &|_| true);
        json!({
            "threshold": cfg.threshold,
            "false_findings_per_1000_clean_meter_days": {
                "calibration_half": cal_rate,
                "held_out_half": held_rate,
                "all": all_rate,
                "findings": {"calibration_half": cal_opened, "held_out_half": held_opened, "all": all_opened},
                "clean_meter_days": {"calibration_half": cal_days, "held_out_half": held_days, "all": all_days},
            },
            "recall_held_out_meters": recall(&|e: &Episode| !calibration[e.meter]),
            "recall_all_meters": recall(&|_| true),
            "recall_under_reporting_held_out": recall(&|e: &Episode| {
                !calibration[e.meter] && e.pattern.under_reports()
            }),
            "recall_by_pattern_all_meters": by_pattern,
        })
    };
    let at_default = report_at(&config);
    let at_chosen = report_at(&chosen);
    let curve: Vec<Value> = [8.0, 12.0, 16.0, 20.0, 25.0, 30.0]
        .iter()
        .map(|&t| {
            let cfg = SustainedConfig {
                threshold: t,
                ..config
            };
            let r = report_at(&cfg);
            json!({
                "threshold": t,
                "false_per_1000_all": r["false_findings_per_1000_clean_meter_days"]["all"],
                "recall_within_3_days": r["recall_all_meters"]["within_3_days"],
                "recall_within_7_days": r["recall_all_meters"]["within_7_days"],
            })
        })
        .collect();
    Ok(json!({
        "rounds": rounds,
        "episode_days": episode_days,
        "detect_day_auc": detect_day_aucs(clean, &round_data, &settings.detect, forest),
        "patterns": Pattern::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "config": {
            "reference_days": config.reference_days,
            "window_days": config.window_days,
            "allowance": config.allowance,
            "cap": config.cap,
            "threshold": config.threshold,
            "hold_days": config.hold_days,
            "hold_from": config.hold_from,
            "release": config.release,
        },
        "target_per_1000_clean_meter_days": per_1000,
        "calibration_meters": calibration.iter().filter(|c| **c).count(),
        "held_out_meters": calibration.iter().filter(|c| !**c).count(),
        "at_scan_default": at_default,
        "at_threshold_chosen_on_calibration_half": at_chosen,
        "curve": curve,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn meter(id: &str, days: usize, level: f64) -> MeterDays {
        let start = NaiveDate::from_ymd_opt(2013, 1, 1).unwrap();
        let mut rng = Rng::new(id.len() as u64);
        MeterDays {
            meter_id: meter_core::MeterId::parse(id).unwrap(),
            slots: 48,
            dates: (0..days)
                .map(|i| start + chrono::Days::new(i as u64))
                .collect(),
            values: (0..days * 48)
                .map(|k| level * (0.2 + f64::from((k % 48 > 34) as u8)) * rng.uniform(0.8, 1.2))
                .collect(),
        }
    }

    #[test]
    fn every_pattern_changes_the_days_of_its_episode_only_and_under_reporting_ones_lower_them() {
        let fleet = vec![meter("big", 80, 1.0), meter("small", 80, 0.5)];
        for pattern in Pattern::ALL {
            let mut target = fleet[0].clone();
            let e = inject(
                &fleet,
                0,
                &mut target,
                pattern,
                (28, EPISODE_DAYS),
                &mut Rng::new(1),
            )
            .unwrap();
            assert!(e.onset >= 28 && e.end <= 80 && e.end > e.onset, "{e:?}");
            let kwh = |d: &MeterDays, i: usize| d.day(i).iter().sum::<f64>();
            for i in 0..80 {
                let (before, after) = (kwh(&fleet[0], i), kwh(&target, i));
                if !(e.onset..e.end).contains(&i) {
                    assert_eq!(before, after, "{} day {i}", pattern.as_str());
                } else if pattern.under_reports() && i > e.onset {
                    assert!(after < before, "{} day {i}", pattern.as_str());
                }
            }
        }
    }

    #[test]
    fn detects_day_scores_of_month_long_thefts_rank_higher_with_the_offline_window() {
        // Homes whose days vary ±30% (on top of ±20% an interval), as real ones do.
        let mut rng = Rng::new(5);
        let clean: Vec<MeterDays> = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"]
            .iter()
            .enumerate()
            .map(|(k, id)| {
                let mut m = meter(id, 200, 0.5 + 0.2 * k as f64);
                for d in 0..m.len() {
                    let level = rng.uniform(0.7, 1.3);
                    m.day_mut(d).iter_mut().for_each(|v| *v *= level);
                }
                m
            })
            .collect();
        let mut fleet = clean.clone();
        let episodes: Vec<Option<Episode>> = (0..fleet.len())
            .map(|m| {
                let days = (28, EPISODE_DAYS);
                inject(&clean, m, &mut fleet[m], Pattern::Scale70, days, &mut rng)
            })
            .collect();
        let rounds = [Round {
            fleet,
            shifts: PeerShifts::default(),
            episodes,
        }];
        let auc_with = |window_days: usize| {
            let detect = TheftConfig {
                window_days,
                ..TheftConfig::offline()
            };
            let aucs = detect_day_aucs(&clean, &rounds, &detect, &ForestConfig::default());
            assert_eq!(aucs["window_days"], window_days);
            assert!(aucs["overall"]["days"].as_u64().unwrap() > 100, "{aucs}");
            aucs["by_pattern"]["scale70"]["roc_auc"].as_f64().unwrap()
        };
        let offline = auc_with(meter_core::anomaly::theft::OFFLINE_WINDOW_DAYS);
        let narrow = auc_with(28);
        // 0.74 against 0.63: a 30% cut hides in ±30% days either way, but against ±28 days
        // the theft's own days are most of its references.
        assert!(offline > narrow + 0.05, "{offline} vs {narrow}");
    }

    #[test]
    fn a_meter_alarming_twice_is_two_findings_and_a_persisting_alarm_one() {
        let alarms = vec![
            vec![(0, false), (1, true), (2, true), (3, true), (4, false)],
            vec![(0, true), (1, false), (2, true)],
        ];
        assert_eq!(clean_findings(&alarms), vec![(1, 5), (2, 3)]);
    }
}
