//! `meterflow forecast` and `meterflow eval forecast`: the rolling-origin day-ahead backtest of
//! meter-core's forecasting on an interval-energy file (SGSC export or `meter_id,timestamp,kwh`
//! CSV), written out as forecasts or scored against what the meters measured.
//!
//! Both read the file with the same series parser as `meterflow import`, put each meter on its
//! own grid and replay, for each of its last N days, a forecast issued at local midnight from
//! the data before it only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{FixedOffset, TimeZone};
use chrono_tz::Tz;
use indicatif::{ProgressBar, ProgressStyle};
use meter_core::forecast::backtest::{backtest_meter, BacktestConfig, MeterBacktest, Scored};
use meter_core::forecast::{Grid, ModelKind, SelectConfig};
use meter_core::series::{self, Format, MeterSeries};
use meter_core::{MeterId, Timestamp};
use serde_json::json;

use crate::import::{FormatArg, Zones};

/// The interval file a command reads, shared by forecasting and detection.
#[derive(Debug, Clone, clap::Args)]
pub struct FileArgs {
    /// The file, plain or gzip-compressed; `-` for standard input.
    #[arg(long)]
    pub input: PathBuf,
    /// The file's layout.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// IANA time zone: for csv, how naive timestamps are read and where local midnight (and
    /// so a local day) is (default UTC); for sgsc, where local midnight is (default
    /// Australia/Brisbane, the trial's UTC+10 clock).
    #[arg(long)]
    pub timezone: Option<String>,
}

impl FileArgs {
    /// The file with its format's default zone.
    pub fn new(input: PathBuf, format: FormatArg) -> Self {
        Self {
            input,
            format,
            timezone: None,
        }
    }
}

/// What the backtest reads and how it forecasts, shared by `forecast` and `eval forecast`.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// How far each forecast reaches: a number with m, h or d (`24h`, `2d`, `90m`).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub horizon: Duration,
    /// Issue days: forecasts issued at local midnight on each of the last N days of each series.
    #[arg(long, default_value_t = 28)]
    pub backtest_days: usize,
    /// Days between model re-selections (1: every day).
    #[arg(long, default_value_t = 7)]
    pub reselect_every: usize,
    /// Backtest days each model re-selection scores the candidates on.
    #[arg(long, default_value_t = 14)]
    pub selection_days: usize,
    /// The models a re-selection chooses from, comma-separated (default: meter-core's
    /// `SelectConfig` candidates).
    #[arg(long, value_delimiter = ',', value_parser = parse_model)]
    pub candidates: Option<Vec<ModelKind>>,
}

/// `meterflow forecast` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ForecastArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Where the forecasts go (CSV); `-` for standard output.
    #[arg(long, default_value = "forecasts.csv")]
    pub output: PathBuf,
}

/// `meterflow eval forecast` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Print the scores as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Score only the selected model, not every model and baseline side by side (faster).
    #[arg(long, conflicts_with = "models")]
    pub selected_only: bool,
    /// The models scored side by side with the selected one, comma-separated (default: every
    /// model; `persistence7` is always added, for the comparison).
    #[arg(long, value_delimiter = ',', value_parser = parse_model)]
    pub models: Option<Vec<ModelKind>>,
}

impl EvalArgs {
    /// The models scored side by side.
    fn side_by_side(&self) -> Vec<ModelKind> {
        if self.selected_only {
            return Vec::new();
        }
        let mut models = self
            .models
            .clone()
            .unwrap_or_else(|| ModelKind::ALL.to_vec());
        if !models.contains(&ModelKind::Persistence7) {
            models.push(ModelKind::Persistence7);
        }
        models
    }
}

/// A model's name as [`ModelKind::as_str`] writes it.
fn parse_model(s: &str) -> Result<ModelKind, String> {
    ModelKind::parse(s.trim()).ok_or_else(|| {
        let names: Vec<&str> = ModelKind::ALL.iter().map(|m| m.as_str()).collect();
        format!("unknown model {s:?}: one of {}", names.join(", "))
    })
}

/// `24h`, `2d`, `90m`, `3600s`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit: use m, h or d (e.g. 24h)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} does not start with a whole number"))?;
    let secs = match unit {
        "s" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        other => return Err(format!("unknown unit {other:?} in {s:?}: use s, m, h or d")),
    };
    if secs == 0 {
        return Err(format!("{s:?} must be longer than 0"));
    }
    Ok(Duration::from_secs(secs))
}

/// How the input wrote its timestamps, to write ours the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clock {
    /// Naive local times at a fixed offset (SGSC: UTC+10).
    NaiveFixed(FixedOffset),
    /// Naive local times in a zone.
    NaiveZone(Tz),
    /// RFC 3339 with the zone's offset (`Z` for UTC).
    Rfc3339(Tz),
}

impl Clock {
    /// Formats an instant in this clock.
    pub fn format(self, t: Timestamp) -> String {
        let ms = t.millis();
        let naive = "%Y-%m-%d %H:%M:%S";
        match self {
            Self::NaiveFixed(off) => off
                .timestamp_millis_opt(ms)
                .single()
                .map(|d| d.format(naive).to_string()),
            Self::NaiveZone(tz) => tz
                .timestamp_millis_opt(ms)
                .single()
                .map(|d| d.format(naive).to_string()),
            Self::Rfc3339(tz) => tz
                .timestamp_millis_opt(ms)
                .single()
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        }
        .unwrap_or_else(|| t.to_string())
    }
}

/// The clock of a csv file: naive if its first timestamp has no offset, else RFC 3339.
fn sniff_csv_clock(head: &[u8], tz: Tz) -> Clock {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let column = lines.next().and_then(|h| {
        h.split(',')
            .position(|c| c.trim().trim_start_matches('\u{feff}') == "timestamp")
    });
    let first = column.and_then(|c| lines.next()?.split(',').nth(c).map(str::trim));
    match first {
        Some(ts) if ts.len() > 19 || ts.ends_with('Z') || ts.ends_with('z') => Clock::Rfc3339(tz),
        _ => Clock::NaiveZone(tz),
    }
}

/// The parsed input: meters on their grids, and the clock to write times in.
pub struct Loaded {
    /// Meters with a usable grid (interval known and dividing a day).
    pub grids: Vec<(MeterId, Grid)>,
    /// Meters left out, and why.
    pub skipped: Vec<(MeterId, &'static str)>,
    /// How to write timestamps.
    pub clock: Clock,
    /// Parse time.
    pub parse_time: Duration,
    /// Bad rows, duplicates and gaps in the file.
    pub stats: series::ImportStats,
}

/// An interval file read into per-meter series, with the clock its times were written in.
pub struct InputFile {
    /// The series, sorted by meter id.
    pub meters: Vec<MeterSeries>,
    /// Bad rows, duplicates and gaps in the file.
    pub stats: series::ImportStats,
    /// How to write timestamps.
    pub clock: Clock,
    /// The meters' zone: where local midnight is.
    pub zone: Tz,
    /// Parse time.
    pub parse_time: Duration,
}

/// Reads an interval file (plain, gzip or `-`) with a progress spinner; shared by forecasting
/// and detection.
pub fn read_input(file: &FileArgs) -> anyhow::Result<InputFile> {
    let started = Instant::now();
    let input = &file.input;
    let format = Format::from(file.format);
    let zones = Zones::for_format(format, file.timezone.as_deref())?;
    let bar = ProgressBar::new_spinner();
    let reader = crate::import::open_input(input, &bar)?;
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let clock = match format {
        Format::Sgsc => {
            let off = FixedOffset::east_opt(series::SGSC_UTC_OFFSET_SECONDS as i32)
                .context("the SGSC offset")?;
            Clock::NaiveFixed(off)
        }
        Format::Csv => sniff_csv_clock(reader.fill_buf()?, zones.parse),
    };
    let parsed =
        series::read_series_with_progress(&mut reader as &mut dyn Read, format, zones.parse, |p| {
            bar.set_message(format!("{} rows", p.rows));
        })
        .with_context(|| format!("reading {}", input.display()))?;
    bar.finish_and_clear();
    Ok(InputFile {
        meters: parsed.meters,
        stats: parsed.stats,
        clock,
        zone: zones.register,
        parse_time: started.elapsed(),
    })
}

/// Reads and grids the input, with a progress bar.
pub fn load(args: &InputArgs) -> anyhow::Result<Loaded> {
    let read = read_input(&args.file)?;
    let mut grids = Vec::new();
    let mut skipped = Vec::new();
    for m in read.meters {
        match grid_of(&m, read.zone) {
            Ok(g) => grids.push((m.meter_id, g)),
            Err(why) => skipped.push((m.meter_id, why)),
        }
    }
    Ok(Loaded {
        grids,
        skipped,
        clock: read.clock,
        parse_time: read.parse_time,
        stats: read.stats,
    })
}

/// A meter's grid, or why it has none.
fn grid_of(m: &MeterSeries, tz: Tz) -> Result<Grid, &'static str> {
    let interval = m.interval_ms.ok_or("interval unknown")?;
    let points: Vec<(Timestamp, f64)> = m.kwh().collect();
    Grid::from_points(&points, interval, tz).ok_or("interval does not divide a day")
}

/// The backtest settings for a meter's interval.
fn config(args: &InputArgs, grid: &Grid, side_by_side: &[ModelKind]) -> BacktestConfig {
    let interval = grid.calendar.interval_ms;
    let horizon_ms = i64::try_from(args.horizon.as_millis()).unwrap_or(i64::MAX);
    let horizon = usize::try_from(horizon_ms / interval).unwrap_or(1).max(1);
    BacktestConfig {
        days: args.backtest_days,
        horizon,
        reselect_every: args.reselect_every,
        select: SelectConfig {
            origins: args.selection_days,
            also_calibrate: side_by_side.to_vec(),
            candidates: config_candidates(args),
            ..SelectConfig::default()
        },
        side_by_side: side_by_side.to_vec(),
    }
}

fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "backtest [{bar:30}] {pos}/{len} meters, {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Runs the backtest over every meter, with a progress bar.
fn backtest_all(
    loaded: &Loaded,
    args: &InputArgs,
    side_by_side: &[ModelKind],
) -> Vec<MeterBacktest> {
    let bar = bar(loaded.grids.len() as u64);
    let out = loaded
        .grids
        .iter()
        .map(|(id, g)| {
            bar.set_message(id.to_string());
            let bt = backtest_meter(g, &config(args, g, side_by_side));
            bar.inc(1);
            bt
        })
        .collect();
    bar.finish_and_clear();
    out
}

/// A buffered CSV output: the file at `path`, or standard output for `-`.
pub fn create_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    Ok(if path.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Box::new(std::io::BufWriter::new(file))
    })
}

/// Runs `meterflow forecast`.
pub fn run_forecast(args: &ForecastArgs) -> anyhow::Result<()> {
    let loaded = load(&args.input)?;
    let started = Instant::now();
    let results = backtest_all(&loaded, &args.input, &[]);
    let elapsed = started.elapsed();
    let mut out = create_output(&args.output)?;
    let rows = write_forecasts(&mut out, &loaded, &results)?;
    out.flush()?;
    drop(out);
    let issues: usize = results.iter().map(|r| r.forecasts.len()).sum();
    eprintln!(
        "{} meters, {issues} forecasts, {rows} rows in {:.1} s (+{:.1} s parsing){}",
        loaded.grids.len(),
        elapsed.as_secs_f64(),
        loaded.parse_time.as_secs_f64(),
        if args.output.as_os_str() == "-" {
            String::new()
        } else {
            format!(" -> {}", args.output.display())
        }
    );
    report_skipped(&loaded);
    Ok(())
}

/// Writes `meter_id,issued_at,target_ts,p10,p50,p90,model` rows; returns how many.
pub fn write_forecasts(
    out: &mut dyn Write,
    loaded: &Loaded,
    results: &[MeterBacktest],
) -> anyhow::Result<u64> {
    writeln!(out, "meter_id,issued_at,target_ts,p10,p50,p90,model")?;
    let mut rows = 0;
    for ((id, g), bt) in loaded.grids.iter().zip(results) {
        for f in &bt.forecasts {
            // Issued at the start of the first forecast interval: the end of the last one used.
            let issued = loaded
                .clock
                .format(g.end_of(f.issue).add_millis(-g.calendar.interval_ms));
            for (j, (p10, p50, p90)) in f.steps.iter().enumerate() {
                writeln!(
                    out,
                    "{id},{issued},{},{p10:.4},{p50:.4},{p90:.4},{}",
                    loaded.clock.format(g.end_of(f.issue + j)),
                    f.model
                )?;
                rows += 1;
            }
        }
    }
    Ok(rows)
}

fn report_skipped(loaded: &Loaded) {
    for (id, why) in &loaded.skipped {
        eprintln!("skipped meter {id}: {why}");
    }
    let s = &loaded.stats;
    if s.bad_row_count + s.duplicates + s.gaps > 0 {
        eprintln!(
            "input: {} bad rows, {} duplicates (first kept), {} missing intervals (filled from \
             the past for the models' lags, never scored)",
            s.bad_row_count, s.duplicates, s.gaps
        );
    }
}

/// Per-forecaster figures over all meters.
#[derive(Debug, Clone, Default)]
struct Summary {
    nrmse: Vec<f64>,
    mase: Vec<f64>,
    pooled: meter_core::forecast::backtest::Score,
}

impl Summary {
    fn mean(v: &[f64]) -> Option<f64> {
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "nrmse": Self::mean(&self.nrmse),
            "mase": Self::mean(&self.mase),
            "coverage_p10_p90": self.pooled.coverage(),
            "nrmse_pooled": self.pooled.nrmse(),
            "meters": self.nrmse.len(),
        })
    }
}

/// The candidates a re-selection chooses from.
fn config_candidates(args: &InputArgs) -> Vec<ModelKind> {
    args.candidates
        .clone()
        .unwrap_or_else(|| SelectConfig::default().candidates)
}

/// Runs `meterflow eval forecast`.
pub fn run_eval(args: &EvalArgs) -> anyhow::Result<()> {
    let loaded = load(&args.input)?;
    let started = Instant::now();
    let results = backtest_all(&loaded, &args.input, &args.side_by_side());
    let wall = started.elapsed().as_secs_f64();
    report_skipped(&loaded);

    let mut by: BTreeMap<Scored, Summary> = BTreeMap::new();
    let mut selected: BTreeMap<ModelKind, u64> = BTreeMap::new();
    let mut per_meter = Vec::new();
    for ((id, _), bt) in loaded.grids.iter().zip(&results) {
        // A meter counts for the per-meter means only if every forecaster could be scored on
        // it, so all columns average over the same meters.
        let complete = bt.scores.values().all(|s| s.nrmse().is_some()) && !bt.scores.is_empty();
        for (k, score) in &bt.scores {
            let entry = by.entry(*k).or_default();
            merge(&mut entry.pooled, score);
            if complete {
                if let Some(n) = score.nrmse() {
                    entry.nrmse.push(n);
                }
                if let (Some(mae), Some(scale)) = (score.mae(), bt.naive_mae) {
                    entry.mase.push(mae / scale);
                }
            }
        }
        for (m, n) in &bt.selected {
            *selected.entry(*m).or_default() += n;
        }
        let get = |k: Scored| bt.scores.get(&k).and_then(|s| s.nrmse());
        per_meter.push(json!({
            "meter_id": id.as_str(),
            "nrmse": get(Scored::Selected),
            "nrmse_persistence7": get(Scored::Model(ModelKind::Persistence7)),
            "mase": bt.scores.get(&Scored::Selected).and_then(|s| Some(s.mae()? / bt.naive_mae?)),
            "coverage_p10_p90": bt.scores.get(&Scored::Selected).and_then(|s| s.coverage()),
            "selected": bt.selected.iter().map(|(m, n)| (m.as_str(), *n)).collect::<BTreeMap<_, _>>(),
        }));
    }
    let sel = by.get(&Scored::Selected).cloned().unwrap_or_default();
    let model_nrmse = |m: ModelKind| {
        by.get(&Scored::Model(m))
            .and_then(|s| Summary::mean(&s.nrmse))
    };
    let nrmse = Summary::mean(&sel.nrmse);
    let p7 = model_nrmse(ModelKind::Persistence7);
    let trend = model_nrmse(ModelKind::LinearTrend);
    let meters = loaded.grids.len();
    let forecasts: usize = results.iter().map(|r| r.forecasts.len()).sum();
    let report = json!({
        "input": args.input.file.input.display().to_string(),
        "format": Format::from(args.input.file.format).as_str(),
        "meters": meters,
        "issue_days": args.input.backtest_days,
        "forecasts": forecasts,
        "horizon_hours": args.input.horizon.as_secs_f64() / 3600.0,
        "reselect_every_days": args.input.reselect_every,
        "selection_days": args.input.selection_days,
        "candidates": config_candidates(&args.input).iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "overall": {
            "nrmse": nrmse,
            "nrmse_persistence7": p7,
            "nrmse_linear_trend": trend,
            "improvement_vs_persistence7_pct": nrmse.zip(p7).map(|(a, b)| (1.0 - a / b) * 100.0),
            "mase": Summary::mean(&sel.mase),
            "coverage_p10_p90": sel.pooled.coverage(),
            "meters_per_s": meters as f64 / wall,
            "wall_s": wall,
            "parse_s": loaded.parse_time.as_secs_f64(),
        },
        "by_model": by.iter().map(|(k, s)| (k.as_str(), s.json())).collect::<BTreeMap<_, _>>(),
        "selected_models": selected.iter().map(|(m, n)| (m.as_str(), *n)).collect::<BTreeMap<_, _>>(),
        "per_meter": per_meter,
    });
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    say!(
        "{meters} meters, {forecasts} day-ahead forecasts in {wall:.1} s ({:.1} meters/s, every model side by side)",
        meters as f64 / wall
    );
    say!(
        "{:<20} {:>8} {:>8} {:>10}",
        "model",
        "NRMSE",
        "MASE",
        "P10-P90"
    );
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));
    let num = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    for (k, s) in &by {
        say!(
            "{:<20} {:>8} {:>8} {:>10}",
            k.as_str(),
            pct(Summary::mean(&s.nrmse)),
            num(Summary::mean(&s.mase)),
            pct(s.pooled.coverage())
        );
    }
    let picks: Vec<String> = selected.iter().map(|(m, n)| format!("{m} {n}")).collect();
    say!("selected (issue days): {}", picks.join(", "));
    Ok(())
}

fn merge(
    into: &mut meter_core::forecast::backtest::Score,
    s: &meter_core::forecast::backtest::Score,
) {
    into.n += s.n;
    into.sse += s.sse;
    into.sae += s.sae;
    into.sum_actual += s.sum_actual;
    into.covered += s.covered;
}

/// The shared SGSC file, relative to the repository root, for tests and the benchmark.
pub fn shared_sgsc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/sgsc50_halfhourly.csv.gz")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("meterflow-forecast-{name}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn args(input: PathBuf, format: FormatArg, days: usize) -> InputArgs {
        InputArgs {
            file: FileArgs::new(input, format),
            horizon: Duration::from_secs(86_400),
            backtest_days: days,
            reselect_every: 7,
            selection_days: 14,
            candidates: None,
        }
    }

    /// 25 days of a daily sine for a half-hourly and a 15-minute meter, naive UTC times.
    fn two_meters_csv() -> String {
        let mut text = String::from("meter_id,timestamp,kwh\n");
        let start = Timestamp::parse_rfc3339("2026-02-01T00:00:00Z").unwrap();
        for (id, step_min) in [("half", 30i64), ("quarter", 15)] {
            let per_day = 24 * 60 / step_min;
            for i in 1..=25 * per_day {
                let t = start.add_millis(i * step_min * 60_000);
                let x = (i as f64 / per_day as f64) * std::f64::consts::TAU;
                let when = Clock::NaiveZone(Tz::UTC).format(t);
                text.push_str(&format!("{id},{when},{:.4}\n", 1.0 + 0.5 * x.sin()));
            }
        }
        text
    }

    #[test]
    fn horizons_are_read_with_their_unit_and_nonsense_is_refused() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        for bad in ["24", "h", "0h", "3w", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forecasts_are_issued_at_local_midnight_in_the_inputs_own_clock() {
        let path = temp_file("two", &two_meters_csv());
        let a = args(path.clone(), FormatArg::Csv, 2);
        let loaded = load(&a).unwrap();
        assert_eq!(loaded.clock, Clock::NaiveZone(Tz::UTC));
        let results = backtest_all(&loaded, &a, &[]);
        let mut out = Vec::new();
        let rows = write_forecasts(&mut out, &loaded, &results).unwrap();
        // Two issue days each: 48 half-hours and 96 quarter-hours ahead.
        assert_eq!(rows, 2 * 48 + 2 * 96);
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("meter_id,issued_at,target_ts,p10,p50,p90,model")
        );
        let first: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
        // The last full day is 2026-02-25; the day before it was the first issue day. The
        // first target is the end of the first interval after midnight.
        assert_eq!(first[0], "half");
        assert_eq!(first[1], "2026-02-24 00:00:00");
        assert_eq!(first[2], "2026-02-24 00:30:00");
        let p: Vec<f64> = first[3..6].iter().map(|v| v.parse().unwrap()).collect();
        assert!(p[0] <= p[1] && p[1] <= p[2], "{p:?}");
        assert!(ModelKind::parse(first[6]).is_some(), "{}", first[6]);
        let quarter: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("quarter,"))
            .unwrap()
            .split(',')
            .collect();
        assert_eq!(quarter[2], "2026-02-24 00:15:00");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn rfc3339_input_gets_rfc3339_output() {
        let head = b"meter_id,timestamp,kwh\nm1,2026-02-01T00:30:00Z,1\n";
        let clock = sniff_csv_clock(head, Tz::UTC);
        assert_eq!(clock, Clock::Rfc3339(Tz::UTC));
        let t = Timestamp::parse_rfc3339("2026-02-01T00:30:00Z").unwrap();
        assert_eq!(clock.format(t), "2026-02-01T00:30:00Z");
        let berlin = sniff_csv_clock(head, chrono_tz::Europe::Berlin);
        assert_eq!(berlin.format(t), "2026-02-01T01:30:00+01:00");
    }

    #[test]
    fn the_first_shared_sgsc_meter_backtests_in_aest_at_midnight() {
        let path = shared_sgsc_path();
        let Ok(file) = std::fs::File::open(&path) else {
            println!("skipped: {} is absent", path.display());
            return;
        };
        // The first meter only (its rows come first), to stay fast in a debug build.
        let mut text = String::new();
        for line in BufReader::new(flate2::read::MultiGzDecoder::new(file))
            .lines()
            .take(20_001)
        {
            let line = line.unwrap();
            if text.is_empty() || line.starts_with("10006414,") {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let tmp = temp_file("sgsc", &text);
        let a = args(tmp.clone(), FormatArg::Sgsc, 1);
        let loaded = load(&a).unwrap();
        assert_eq!(loaded.grids.len(), 1);
        let results = backtest_all(&loaded, &a, &[]);
        let mut out = Vec::new();
        assert_eq!(write_forecasts(&mut out, &loaded, &results).unwrap(), 48);
        let text = String::from_utf8(out).unwrap();
        let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
        assert!(row[1].ends_with(" 00:00:00"), "{row:?}");
        assert!(row[2].ends_with(" 00:30:00"), "{row:?}");
        let _ = std::fs::remove_file(tmp);
    }
}
