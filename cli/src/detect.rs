//! `meterflow detect` and `meterflow eval theft`: meter-core's theft and anomaly scores of every
//! meter-day of an interval file (SGSC export or `meter_id,timestamp,kwh` CSV), written out, or
//! evaluated on real data with h1–h6 thefts injected into a seeded random share of its days.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use meter_core::anomaly::metrics::{average_precision, roc_auc};
use meter_core::anomaly::theft::{score_fleet, COMPONENTS, OFFLINE_WINDOW_DAYS};
use meter_core::anomaly::{Attack, DayScore, ForestConfig, MeterDays, Rng, TheftConfig};
use serde_json::{json, Value};

use crate::forecast::{create_output, read_input, FileArgs, InputFile};
use crate::import::FormatArg;

/// What the detectors read.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectInput {
    #[command(flatten)]
    pub file: FileArgs,
    /// Seed of the isolation forest (and of the injections in `eval theft`).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Reference days on each side of a scored day: long enough that a theft lasting weeks
    /// is not most of its own references (see docs/detection.md).
    #[arg(long, default_value_t = OFFLINE_WINDOW_DAYS)]
    pub window_days: usize,
}

impl DetectInput {
    /// The day-scoring settings these arguments give.
    pub fn theft_config(&self) -> TheftConfig {
        TheftConfig {
            window_days: self.window_days,
            ..TheftConfig::offline()
        }
    }
}

/// `meterflow detect` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub input: DetectInput,
    /// Where the scores go (CSV: meter_id,day,score,detector); `-` for standard output.
    #[arg(long, default_value = "scores.csv")]
    pub output: PathBuf,
}

/// `meterflow eval theft` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalTheftArgs {
    #[command(flatten)]
    pub input: DetectInput,
    /// Share of the complete meter-days that get a theft pattern (an equal share of each of
    /// h1–h6).
    #[arg(long, default_value_t = 0.1)]
    pub attack_share: f64,
    /// Also evaluate the feeder energy balance: shuffle the meters into this many synthetic
    /// feeders per trial, half of them with thieves.
    #[arg(long)]
    pub feeders: Option<usize>,
    /// Shuffles of the meters into feeders, for `--feeders`.
    #[arg(long, default_value_t = 20)]
    pub feeder_trials: usize,
    /// Print the scores as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also measure the scan's pattern-theft and consumption-anomaly thresholds on latest days
    /// (each date scored against the history window before it, as a daily scan does): false
    /// findings per 1,000 clean meter-days, the thresholds meeting `--target-per-1000`, and
    /// each attack's recall at the scan's thresholds.
    #[arg(long)]
    pub scan_thresholds: bool,
    /// The false findings per 1,000 clean meter-days `--scan-thresholds` calibrates for (the
    /// two kinds together; half each).
    #[arg(long, default_value_t = 1.0)]
    pub target_per_1000: f64,
    /// Multi-day accumulation against sustained thefts (one episode per meter per round, from
    /// an onset day on, for four weeks): recall by days since onset and false findings per
    /// 1,000 clean meter-days, reported beside the single-day figures. This many rounds (12
    /// gives every meter every pattern once; 0 leaves it out).
    #[arg(long, default_value_t = 12)]
    pub sustained_rounds: usize,
    /// Days each sustained theft lasts (fewer where a meter's data ends first).
    #[arg(long, default_value_t = crate::sustained_eval::EPISODE_DAYS)]
    pub sustained_episode_days: usize,
    /// Writes every day scored for `--sustained-rounds` to this CSV (round, meter, day, date,
    /// pattern, days since onset, components, pattern score, forest score, `detect` score,
    /// evidence, accumulated evidence).
    #[arg(long, hide = true)]
    pub dump_sustained: Option<PathBuf>,
    /// Overrides the accumulation's `hold_days` for `--sustained-rounds` (0: an alarm's days
    /// become references like any others, as before references were held).
    #[arg(long)]
    pub sustained_hold_days: Option<usize>,
    /// Overrides the accumulation's threshold reported as the scan's default.
    #[arg(long)]
    pub sustained_threshold: Option<f64>,
    /// Overrides the accumulated evidence from which a run's days are held.
    #[arg(long)]
    pub sustained_hold_from: Option<f64>,
    /// Overrides the accumulated evidence down to which a raised alarm holds.
    #[arg(long)]
    pub sustained_release: Option<f64>,
}

/// Every meter of the file cut into local days; meters whose interval is unknown or does not
/// divide a day are reported and left out.
fn meter_days(file: &InputFile) -> Vec<MeterDays> {
    file.meters
        .iter()
        .filter_map(|m| {
            let days = MeterDays::from_series(m, file.zone);
            if days.is_none() {
                eprintln!(
                    "skipped meter {}: interval unknown or not a divisor of a day",
                    m.meter_id
                );
            }
            days
        })
        .collect()
}

fn forest_config(seed: u64) -> ForestConfig {
    ForestConfig {
        seed,
        ..ForestConfig::default()
    }
}

/// Runs `meterflow detect`.
pub fn run_detect(args: &DetectArgs) -> anyhow::Result<()> {
    let file = read_input(&args.input.file)?;
    let days = meter_days(&file);
    let started = Instant::now();
    let config = args.input.theft_config();
    let scored = score_fleet(&days, &config, &forest_config(args.input.seed));
    let elapsed = started.elapsed();
    let mut out = create_output(&args.output)?;
    writeln!(out, "meter_id,day,score,detector")?;
    let mut rows = 0u64;
    for (m, scores) in days.iter().zip(&scored) {
        for d in scores {
            writeln!(
                out,
                "{},{},{:.4},{}",
                m.meter_id,
                d.date,
                d.score,
                detector(d)
            )?;
            rows += 1;
        }
    }
    out.flush()?;
    let total: usize = days.iter().map(MeterDays::len).sum();
    eprintln!(
        "{} meters, {rows} of {total} meter-days scored in {:.1} s (+{:.1} s parsing); days with \
         under half their intervals or under {} reference days around them are not scored",
        days.len(),
        elapsed.as_secs_f64(),
        file.parse_time.as_secs_f64(),
        config.min_reference_days,
    );
    Ok(())
}

/// The detector column: the pattern component that saw most, or the isolation forest when it
/// added more than the pattern score itself.
fn detector(d: &DayScore) -> &'static str {
    if d.score - d.pattern > d.pattern {
        "iforest"
    } else {
        d.strongest()
    }
}

/// Which days got which attack: per meter, per day.
type Injected = crate::scan_calibration::Injected;

/// Injects h1–h6 into a seeded random `share` of the complete days, in equal shares.
fn inject(days: &mut [MeterDays], share: f64, seed: u64) -> Injected {
    days.iter_mut()
        .enumerate()
        .map(|(m, meter)| {
            let mut rng = Rng::derive(seed, m as u64);
            (0..meter.len())
                .map(|i| {
                    if !meter.is_complete(i) || rng.unit() >= share {
                        return None;
                    }
                    let attack = Attack::ALL[rng.below(Attack::ALL.len())];
                    attack.inject(meter.day_mut(i), &mut rng);
                    Some(attack)
                })
                .collect()
        })
        .collect()
}

/// ROC-AUC and PR-AUC of `score` for each attack (against all clean days) and overall.
fn aucs(scored: &[Vec<DayScore>], injected: &Injected, score: impl Fn(&DayScore) -> f64) -> Value {
    let mut rows: Vec<(f64, Option<Attack>)> = Vec::new();
    for (m, days) in scored.iter().enumerate() {
        for d in days {
            rows.push((score(d), injected[m][d.day]));
        }
    }
    let pick = |keep: &dyn Fn(Option<Attack>) -> bool| {
        let (s, l): (Vec<f64>, Vec<bool>) = rows
            .iter()
            .filter(|(_, a)| keep(*a))
            .map(|(s, a)| (*s, a.is_some()))
            .unzip();
        json!({
            "roc_auc": roc_auc(&s, &l),
            "pr_auc": average_precision(&s, &l),
            "positives": l.iter().filter(|&&x| x).count(),
        })
    };
    let mut by_attack = BTreeMap::new();
    for a in Attack::ALL {
        by_attack.insert(a.as_str(), pick(&|x| x.is_none() || x == Some(a)));
    }
    json!({"overall": pick(&|_| true), "by_attack": by_attack})
}

/// Runs `meterflow eval theft`.
pub fn run_eval(args: &EvalTheftArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.attack_share > 0.0 && args.attack_share < 1.0,
        "--attack-share must be between 0 and 1"
    );
    let file = read_input(&args.input.file)?;
    let mut days = meter_days(&file);
    let feeders = args.feeders.map(|k| {
        let started = Instant::now();
        let mut report =
            crate::feeders::evaluate(&days, k.max(1), args.feeder_trials, args.input.seed);
        report["wall_s"] = json!(started.elapsed().as_secs_f64());
        report
    });
    let sustained = if args.sustained_rounds > 0 {
        let started = Instant::now();
        let mut report = crate::sustained_eval::evaluate(
            &days,
            &crate::sustained_eval::Settings {
                rounds: args.sustained_rounds,
                seed: args.input.seed,
                per_1000: args.target_per_1000,
                episode_days: args.sustained_episode_days,
                detect: args.input.theft_config(),
            },
            &forest_config(args.input.seed),
            args.dump_sustained.as_deref(),
            {
                let d = meter_core::anomaly::sustained::SustainedConfig::default();
                meter_core::anomaly::sustained::SustainedConfig {
                    hold_days: args.sustained_hold_days.unwrap_or(d.hold_days),
                    threshold: args.sustained_threshold.unwrap_or(d.threshold),
                    hold_from: args.sustained_hold_from.unwrap_or(d.hold_from),
                    release: args.sustained_release.unwrap_or(d.release),
                    ..d
                }
            },
        )?;
        report["wall_s"] = json!(started.elapsed().as_secs_f64());
        Some(report)
    } else {
        None
    };
    let clean = args.scan_thresholds.then(|| days.clone());
    let injected = inject(&mut days, args.attack_share, args.input.seed);
    let scan_thresholds = clean.map(|clean| {
        let started = Instant::now();
        let mut report = crate::scan_calibration::evaluate(
            &clean,
            &days,
            &injected,
            &forest_config(args.input.seed),
            args.target_per_1000,
        );
        report["wall_s"] = json!(started.elapsed().as_secs_f64());
        report
    });
    let started = Instant::now();
    let scored = score_fleet(
        &days,
        &args.input.theft_config(),
        &forest_config(args.input.seed),
    );
    let wall = started.elapsed().as_secs_f64();
    let final_ = aucs(&scored, &injected, |d| d.score);
    let mut detectors = BTreeMap::new();
    detectors.insert(
        "pattern".to_owned(),
        aucs(&scored, &injected, |d| d.pattern),
    );
    detectors.insert("iforest".to_owned(), aucs(&scored, &injected, |d| d.forest));
    for (k, name) in COMPONENTS.iter().enumerate() {
        detectors.insert(
            (*name).to_owned(),
            aucs(&scored, &injected, |d| d.components[k]),
        );
    }
    let meter_days: usize = scored.iter().map(Vec::len).sum();
    let attacked: usize = injected.iter().flatten().filter(|a| a.is_some()).count();
    let report = json!({
        "input": args.input.file.input.display().to_string(),
        "meters": days.len(),
        "meter_days_scored": meter_days,
        "attacked_days": attacked,
        "attack_share": args.attack_share,
        "seed": args.input.seed,
        "overall": final_["overall"],
        "by_attack": final_["by_attack"],
        "by_detector": detectors,
        "feeders": feeders,
        "scan_thresholds": scan_thresholds,
        "sustained": sustained,
        "wall_s": wall,
        "parse_s": file.parse_time.as_secs_f64(),
    });
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    say!(
        "{meter_days} meter-days of {} meters scored in {wall:.1} s; {attacked} attacked",
        days.len()
    );
    say!("{:<12} {:>8} {:>8}", "attack", "ROC-AUC", "PR-AUC");
    let row = |name: &str, v: &Value| -> anyhow::Result<()> {
        say!(
            "{:<12} {:>8.3} {:>8.3}",
            name,
            v["roc_auc"].as_f64().unwrap_or(f64::NAN),
            v["pr_auc"].as_f64().unwrap_or(f64::NAN)
        );
        Ok(())
    };
    for a in Attack::ALL {
        row(a.as_str(), &final_["by_attack"][a.as_str()])?;
    }
    row("overall", &final_["overall"])?;
    if let Some(t) = &scan_thresholds {
        say!("scan thresholds: {}", serde_json::to_string_pretty(t)?);
    }
    if let Some(s) = &sustained {
        let at = &s["at_scan_default"];
        let false_ = &at["false_findings_per_1000_clean_meter_days"];
        say!(
            "sustained thefts (accumulated evidence, threshold {}): false findings per 1,000 clean \
             meter-days {:.2} (held-out half {:.2}); found within N days of onset:",
            at["threshold"],
            false_["all"].as_f64().unwrap_or(f64::NAN),
            false_["held_out_half"].as_f64().unwrap_or(f64::NAN),
        );
        say!(
            "{:<34} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "episodes",
            "n",
            "1",
            "2",
            "3",
            "7",
            "14",
            "28"
        );
        for key in [
            "recall_held_out_meters",
            "recall_under_reporting_held_out",
            "recall_all_meters",
        ] {
            let r = &at[key];
            let pct = |n: u32| 100.0 * r[format!("within_{n}_days")].as_f64().unwrap_or(f64::NAN);
            say!(
                "{:<34} {:>8} {:>6.1}% {:>6.1}% {:>6.1}% {:>6.1}% {:>6.1}% {:>6.1}%",
                key.trim_start_matches("recall_"),
                r["episodes"].as_u64().unwrap_or(0),
                pct(1),
                pct(2),
                pct(3),
                pct(7),
                pct(14),
                pct(28)
            );
        }
    }
    if let Some(f) = &feeders {
        say!(
            "feeder energy balance: {}",
            serde_json::to_string_pretty(f)?
        );
    }
    Ok(())
}

/// The `sgsc_days` dataset of `meterflow bench anomaly`: the signed theft components of every
/// scored meter-day of `input` (SGSC), with 10% of days attacked, labelled by attack.
pub fn bench_dataset(input: &Path, seed: u64) -> anyhow::Result<crate::anomaly_bench::Dataset> {
    let file = read_input(&FileArgs::new(input.to_path_buf(), FormatArg::Sgsc))?;
    let mut days = meter_days(&file);
    let injected = inject(&mut days, 0.1, seed);
    let config = TheftConfig::default();
    let mut scored: Vec<Vec<DayScore>> = days
        .iter()
        .map(|m| meter_core::anomaly::theft::score_meter(m, &config))
        .collect();
    meter_core::anomaly::theft::apply_peers(&mut scored, config.min_peers);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for (m, ds) in scored.iter().enumerate() {
        for d in ds {
            rows.extend(d.components.iter().map(|&c| c as f32));
            labels.push(injected[m][d.day].is_some());
        }
    }
    Ok(crate::anomaly_bench::Dataset {
        name: "sgsc_days",
        rows,
        features: COMPONENTS.len(),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 days of a half-hourly household-like meter in naive Berlin time, with day 20
    /// (2026-02-21 local) reported at 10%.
    fn one_meter_csv() -> String {
        let mut text = String::from("meter_id,timestamp,kwh\n");
        let mut rng = Rng::new(9);
        for day in 1..=30u32 {
            for k in 1..=48u32 {
                let (d, h, m) = if k == 48 {
                    (day + 1, 0, 0)
                } else {
                    (day, k / 2, (k % 2) * 30)
                };
                let (month, d) = if d > 28 { (3, d - 28) } else { (2, d) };
                let hour = f64::from(k) / 2.0;
                let shape = 0.2 + (-((hour - 19.0) / 2.0f64).powi(2)).exp();
                let theft = if day == 21 && k < 48 { 0.1 } else { 1.0 };
                let kwh = shape * rng.uniform(0.8, 1.2) * theft;
                text.push_str(&format!(
                    "m1,2026-{month:02}-{d:02} {h:02}:{m:02},{kwh:.4}\n"
                ));
            }
        }
        text
    }

    #[test]
    fn detect_writes_one_row_per_scored_local_day_and_the_theft_day_scores_highest() {
        let path =
            std::env::temp_dir().join(format!("meterflow-detect-{}.csv", std::process::id()));
        std::fs::write(&path, one_meter_csv()).unwrap();
        let out = path.with_extension("scores.csv");
        let args = DetectArgs {
            input: DetectInput {
                window_days: OFFLINE_WINDOW_DAYS,
                file: FileArgs {
                    timezone: Some("Europe/Berlin".to_owned()),
                    ..FileArgs::new(path.clone(), FormatArg::Csv)
                },
                seed: 1,
            },
            output: out.clone(),
        };
        run_detect(&args).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&out);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("meter_id,day,score,detector"));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert!(rows.len() >= 25, "{}", rows.len());
        let top = rows
            .iter()
            .max_by(|a, b| {
                a[2].parse::<f64>()
                    .unwrap()
                    .total_cmp(&b[2].parse().unwrap())
            })
            .unwrap();
        assert_eq!(top[0], "m1");
        assert_eq!(top[1], "2026-02-21");
        assert_ne!(top[3], "");
    }
}
