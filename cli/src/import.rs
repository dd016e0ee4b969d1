//! `meterflow import`: real interval-energy files (an SGSC export, or a generic
//! `meter_id,timestamp,kwh` CSV, plain or gzip, or stdin) loaded into the local SQLite store as
//! meter readings, through the same `Ingestor` the Lambda runs, so validation, deduplication and
//! the hourly, daily and monthly aggregates apply exactly as to live telemetry.
//!
//! Meters report cumulative registers, files hold interval energy: each meter's register is built
//! as a running sum that starts at 0 kWh at the start of its first interval. Importing the same
//! file again stores nothing new.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono_tz::Tz;
use indicatif::{ProgressBar, ProgressStyle};
use meter_core::series::{self, Format, ImportStats, ImportedSeries, MeterSeries};
use meter_core::telemetry::{encode_reading, MessageContext};
use meter_core::{
    Energy, Inbound, IngestConfig, IngestReport, Ingestor, MeterId, MeterInfo, Ports, Reading,
    RegistryMode, Timestamp,
};

/// Readings per `Ingestor::ingest` call: one SQLite transaction and one aggregate refresh each.
/// Large enough that the per-call refresh costs little per reading, small enough to keep a
/// call's memory and its progress step small.
const BATCH: usize = 2_000;

/// Received time = the reading's own time plus this: the store wants a receive time, and
/// historical data has none, so it is taken as delivered promptly.
const RECEIVE_DELAY_MS: i64 = 1_000;

/// How many bad rows the summary lists by line.
const BAD_ROWS_SHOWN: usize = 5;

/// The file layouts `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Smart Grid Smart City export: customer_id, reading_datetime, general_supply_kwh, ...;
    /// times in AEST (UTC+10, no daylight saving).
    Sgsc,
    /// meter_id,timestamp,kwh with a header; RFC 3339 times, or naive ones in --timezone.
    Csv,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Sgsc => Format::Sgsc,
            FormatArg::Csv => Format::Csv,
        }
    }
}

/// Import settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The file's layout.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// IANA time zone. For csv: how naive timestamps are read, and the meters' zone for local
    /// hours and days (default UTC). For sgsc: only the meters' zone (default
    /// Australia/Brisbane); its timestamps are always UTC+10.
    #[arg(long)]
    pub timezone: Option<String>,
    /// Where the SQLite store lives: by default the one `meterflow up` serves.
    #[arg(long, default_value_os_t = crate::paths::default_data_dir())]
    pub data_dir: PathBuf,
    /// The file, plain or gzip-compressed; `-` for standard input.
    pub file: PathBuf,
}

/// The zone naive timestamps are read in and the zone meters are registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zones {
    /// For naive `csv` timestamps (SGSC ignores it).
    pub parse: Tz,
    /// Given to the meters this import registers.
    pub register: Tz,
}

impl Zones {
    /// The zones for a format and an optional `--timezone`.
    pub fn for_format(format: Format, timezone: Option<&str>) -> anyhow::Result<Self> {
        let given = timezone
            .map(|name| {
                meter_core::registry::parse_timezone(name)
                    .with_context(|| format!("unknown time zone {name:?} (want an IANA name)"))
            })
            .transpose()?;
        Ok(match format {
            // Brisbane is UTC+10 all year, exactly the clock the trial's meters kept.
            Format::Sgsc => Self {
                parse: Tz::UTC,
                register: given.unwrap_or(chrono_tz::Australia::Brisbane),
            },
            Format::Csv => {
                let tz = given.unwrap_or(Tz::UTC);
                Self {
                    parse: tz,
                    register: tz,
                }
            }
        })
    }
}

/// The progress bars an import drives; hidden ones in tests.
pub struct Bars {
    /// Parsing: file bytes when the size is known, else a spinner; the message counts rows.
    pub parse: ProgressBar,
    /// Storing: readings offered to ingest.
    pub store: ProgressBar,
}

impl Bars {
    /// Bars that draw nothing.
    #[cfg(test)]
    pub fn hidden() -> Self {
        Self {
            parse: ProgressBar::hidden(),
            store: ProgressBar::hidden(),
        }
    }
}

/// What storing the series did.
#[derive(Debug, Clone, Default)]
pub struct StoreSummary {
    /// Readings offered to ingest.
    pub offered: u64,
    /// Of those, readings at an interval's start: one before each meter's first interval and
    /// one after each gap, so every interval's energy lands in its own interval.
    pub interval_starts: u64,
    /// Meters whose readings were offered.
    pub meters: usize,
    /// What ingest did: stored, duplicates, quarantined by reason.
    pub report: IngestReport,
    /// Meters left out because their interval is unknown (a single reading in a file with no
    /// other meter to take the interval from).
    pub skipped: Vec<MeterId>,
    /// Meters already registered with another zone; their aggregates keep that zone.
    pub zone_kept: Vec<(MeterId, Tz)>,
}

/// The result of one import.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the file held.
    pub stats: ImportStats,
    /// First and last interval end over all meters.
    pub span: Option<(Timestamp, Timestamp)>,
    /// Meters by interval length in minutes.
    pub intervals: std::collections::BTreeMap<i64, usize>,
    /// Meters with at least one missing interval, and the one with the most (id, missing).
    pub gappy_meters: (usize, Option<(MeterId, u64)>),
    /// What was stored.
    pub store: StoreSummary,
    /// Time spent reading and parsing.
    pub parse_time: Duration,
    /// Time spent storing.
    pub store_time: Duration,
}

impl Outcome {
    /// Whether anything from the file is now in the store (new or already there).
    pub fn imported_anything(&self) -> bool {
        self.store.report.stored + self.store.report.duplicates > 0
    }
}

/// Runs the command.
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let format = Format::from(args.format);
    let zones = Zones::for_format(format, args.timezone.as_deref())?;
    let bars = Bars {
        parse: ProgressBar::new_spinner(),
        store: ProgressBar::new(0),
    };
    let input = open_input(&args.file, &bars.parse)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let db_path = args.data_dir.join("meterflow.db");
    let db = Arc::new(meter_local::SqliteDb::open(&db_path)?);
    let outcome = import_reader(input, format, zones, db, &bars)
        .with_context(|| format!("importing {}", args.file.display()))?;
    say!("store: {}", db_path.display());
    print_summary(&outcome)?;
    if !outcome.imported_anything() {
        anyhow::bail!("nothing could be imported from {}", args.file.display());
    }
    Ok(())
}

/// Opens a file or stdin (`-`), un-gzipping when the first bytes are gzip's magic number. A
/// file's progress is counted in its own (compressed) bytes, which is what its size is in.
pub(crate) fn open_input(path: &Path, bar: &ProgressBar) -> anyhow::Result<Box<dyn Read>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        bar.set_style(spinner_style());
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        bar.set_length(len);
        bar.set_style(file_style());
        Box::new(bar.wrap_read(file))
    };
    let mut buffered = BufReader::with_capacity(256 * 1024, raw);
    let head = buffered
        .fill_buf()
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: `cat a.gz b.gz` and parallel gzip tools produce several members.
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    })
}

fn file_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "parsing [{bar:30}] {bytes}/{total_bytes} {msg} ({elapsed}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} parsing {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn store_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "storing [{bar:30}] {human_pos}/{human_len} readings, meter {msg} ({per_sec:0}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Parses `input` and stores it into `db`: the whole import but for opening the input and
/// printing. Fails only if the input cannot be read or the store fails.
pub fn import_reader(
    input: impl Read,
    format: Format,
    zones: Zones,
    db: Arc<meter_local::SqliteDb>,
    bars: &Bars,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let parsed = series::read_series_with_progress(input, format, zones.parse, |p| {
        bars.parse.set_message(format!("{} rows", p.rows));
    })?;
    bars.parse.finish_and_clear();
    let parse_time = started.elapsed();

    let started = Instant::now();
    let ports = meter_local::sqlite_ports(db);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    bars.store.set_style(store_style());
    let store = rt.block_on(store_series(&ports, &parsed, zones.register, &bars.store))?;
    bars.store.finish_and_clear();

    let span = parsed
        .meters
        .iter()
        .filter_map(|m| Some((m.points.first()?.0, m.points.last()?.0)))
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
    let mut intervals = std::collections::BTreeMap::new();
    for m in &parsed.meters {
        if let Some(ms) = m.interval_ms {
            *intervals.entry(ms / 60_000).or_default() += 1;
        }
    }
    let gappy = parsed.meters.iter().filter(|m| m.gaps > 0);
    let gappy_meters = (
        gappy.clone().count(),
        gappy
            .max_by_key(|m| m.gaps)
            .map(|m| (m.meter_id.clone(), m.gaps)),
    );
    Ok(Outcome {
        gappy_meters,
        stats: parsed.stats,
        span,
        intervals,
        store,
        parse_time,
        store_time: started.elapsed(),
    })
}

/// Registers every meter and feeds its readings to ingest, meter by meter, `BATCH` at a time,
/// advancing `bar` by readings offered.
pub async fn store_series(
    ports: &Ports,
    parsed: &ImportedSeries,
    tz: Tz,
    bar: &ProgressBar,
) -> anyhow::Result<StoreSummary> {
    let mut config = IngestConfig {
        // Every meter is registered below with the right zone, so nothing is auto-registered
        // in the wrong one.
        registry_mode: RegistryMode::Enforce,
        default_timezone: tz,
        ..IngestConfig::default()
    };
    // The data is years old: raw-reading retention would refuse all of it.
    config.limits.retention_ms = i64::MAX;
    let ingestor = Ingestor::new(ports.clone(), config);
    let mut summary = StoreSummary::default();

    // Registers first, for all meters, so the bar knows the total before the first batch.
    let mut plans: Vec<(&MeterSeries, Vec<(Timestamp, Energy)>)> = Vec::new();
    for m in &parsed.meters {
        let Some(first_start) = m.first_start() else {
            summary.skipped.push(m.meter_id.clone());
            continue;
        };
        let info = ports
            .registry
            .register_if_absent(&MeterInfo::new_consumer(m.meter_id.clone(), tz))
            .await?;
        if info.timezone != tz {
            summary.zone_kept.push((m.meter_id.clone(), info.timezone));
        }
        // Continue a register already in the store (an earlier file of the same meter ending
        // where this one starts); a re-import finds its own zero at the first start.
        let base = ports
            .readings
            .before(&m.meter_id, first_start.add_millis(1))
            .await?
            .map_or(Energy::ZERO, |r| r.energy_import);
        plans.push((m, registers(m, base)));
    }
    let total: u64 = plans.iter().map(|(_, r)| r.len() as u64).sum();
    summary.offered = total;
    summary.meters = plans.len();
    let ends: u64 = plans.iter().map(|(m, _)| m.points.len() as u64).sum();
    summary.interval_starts = total.saturating_sub(ends);
    bar.set_length(total);

    for (m, points) in &plans {
        let topic = format!("meters/{}/telemetry", m.meter_id);
        for chunk in points.chunks(BATCH) {
            let payloads: Vec<(Timestamp, String)> = chunk
                .iter()
                .map(|(ts, register)| {
                    let received = ts.add_millis(RECEIVE_DELAY_MS);
                    let r = Reading::register_only(m.meter_id.clone(), *ts, received, *register);
                    (received, encode_reading(&r))
                })
                .collect();
            let messages: Vec<Inbound<'_>> = payloads
                .iter()
                .map(|(received, payload)| Inbound {
                    payload: payload.as_bytes(),
                    ctx: MessageContext {
                        topic: Some(&topic),
                        received: *received,
                    },
                })
                .collect();
            let report = ingestor
                .ingest(&messages)
                .await
                .with_context(|| format!("storing readings of meter {}", m.meter_id))?;
            summary.report.merge(&report);
            bar.set_message(m.meter_id.to_string());
            bar.inc(chunk.len() as u64);
        }
    }
    Ok(summary)
}

/// Cumulative register readings for a meter's interval energy, starting from `base` at the start
/// of its first interval. A reading is added at an interval's start whenever no reading ends
/// there (the first interval, and after a gap), so each interval's energy is attributed to that
/// interval and not spread over the gap before it; the gap itself gets no energy.
pub fn registers(m: &MeterSeries, base: Energy) -> Vec<(Timestamp, Energy)> {
    let Some(interval) = m.interval_ms else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(m.points.len() + 1);
    let mut register = base.mwh();
    let mut prev_end: Option<Timestamp> = None;
    for (end, energy) in &m.points {
        let start = end.add_millis(-interval);
        if prev_end.is_none_or(|p| p < start) {
            out.push((start, Energy::from_mwh(register)));
        }
        register += energy.mwh();
        out.push((*end, Energy::from_mwh(register)));
        prev_end = Some(*end);
    }
    out
}

fn print_summary(o: &Outcome) -> anyhow::Result<()> {
    let s = &o.stats;
    let intervals: Vec<String> = o
        .intervals
        .iter()
        .map(|(min, n)| format!("{n} × {min} min"))
        .collect();
    say!(
        "read {} rows in {:.1} s: {} meters ({}), {} readings{}",
        s.rows,
        o.parse_time.as_secs_f64(),
        s.meters,
        if intervals.is_empty() {
            "interval unknown".to_owned()
        } else {
            intervals.join(", ")
        },
        s.points,
        o.span
            .map(|(a, b)| format!(", {a} .. {b}"))
            .unwrap_or_default()
    );
    say!(
        "  duplicates in the file: {} (the first kept; {} with a different value)",
        s.duplicates,
        s.conflicting_duplicates
    );
    match &o.gappy_meters {
        (n, Some((worst, missing))) => say!(
            "  gaps: {} missing intervals in {n} meters (most: {worst}, {missing})",
            s.gaps
        ),
        _ => say!("  gaps: none"),
    }
    say!("  bad rows: {}", s.bad_row_count);
    for (kind, n) in &s.bad_rows_by_kind {
        say!("    {n:>8} × {kind}");
    }
    for e in s.bad_rows.iter().take(BAD_ROWS_SHOWN) {
        say!("    {}", e.describe());
    }
    if s.bad_row_count > BAD_ROWS_SHOWN as u64 {
        say!("    ...");
    }
    let st = &o.store;
    say!(
        "stored in {:.1} s: {} readings offered for {} meters ({} interval ends, {} interval starts)",
        o.store_time.as_secs_f64(),
        st.offered,
        st.meters,
        st.offered - st.interval_starts,
        st.interval_starts
    );
    say!(
        "  {} stored, {} already stored, {} quarantined",
        st.report.stored,
        st.report.duplicates,
        st.report.quarantined
    );
    for (reason, n) in &st.report.quarantined_by_reason {
        say!("    {n:>8} × {reason}");
    }
    for id in &st.skipped {
        say!("  skipped meter {id}: a single reading, and no interval to take from the file");
    }
    for (id, tz) in &st.zone_kept {
        say!("  meter {id} was already registered in {tz}; its aggregates stay in that zone");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meter_core::aggregate::Period;

    fn temp_store(name: &str) -> (PathBuf, Arc<meter_local::SqliteDb>) {
        let dir =
            std::env::temp_dir().join(format!("meterflow-import-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = Arc::new(meter_local::SqliteDb::open(&dir.join("meterflow.db")).unwrap());
        (dir, db)
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    const SMALL: &str = "meter_id,timestamp,kwh\n\
        m1,2026-01-10 00:30,0.5\n\
        m1,2026-01-10 01:00,0.25\n\
        m1,2026-01-10 01:00,0.75\n\
        m1,2026-01-10 01:30,oops\n\
        m1,2026-01-10 02:30,1.0\n\
        m2,2026-01-10T00:15:00Z,0.1\n\
        m2,2026-01-10T00:30:00Z,0.2\n\
        m2,2026-01-10T00:45:00Z\n\
        bad/id,2026-01-10T00:30:00Z,1\n";

    #[test]
    fn a_small_csv_lands_as_registers_and_a_second_import_stores_nothing() {
        let (dir, db) = temp_store("small");
        let zones = Zones::for_format(Format::Csv, Some("Europe/Amsterdam")).unwrap();
        let first = import_reader(
            SMALL.as_bytes(),
            Format::Csv,
            zones,
            db.clone(),
            &Bars::hidden(),
        )
        .unwrap();
        let s = &first.stats;
        assert_eq!((s.rows, s.meters, s.points), (9, 2, 5));
        assert_eq!((s.duplicates, s.conflicting_duplicates), (1, 1));
        let bad: Vec<(u64, &str)> = s
            .bad_rows
            .iter()
            .map(|e| (e.line, e.reason.kind()))
            .collect();
        assert_eq!(
            bad,
            [
                (5, "not_a_number"),
                (9, "column_count"),
                (10, "bad_meter_id")
            ]
        );
        assert_eq!(s.gaps, 2);
        // m1: start + 3 ends + a start after its gap; m2: start + 2 ends.
        assert_eq!(first.store.offered, 8);
        assert_eq!(first.store.interval_starts, 3);
        assert_eq!(first.store.report.stored, 8);
        assert_eq!(first.store.report.quarantined, 0);

        let ports = meter_local::sqlite_ports(db.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let m1 = MeterId::parse("m1").unwrap();
        let stored: Vec<(Timestamp, f64)> = rt
            .block_on(ports.readings.range(
                &m1,
                Timestamp::from_millis(0),
                ts("2100-01-01T00:00:00Z"),
            ))
            .unwrap()
            .iter()
            .map(|r| (r.ts, r.energy_import.kwh()))
            .collect();
        // Naive times in Amsterdam (UTC+1 in January); the first of the duplicates kept; the
        // register starts at 0 at the first interval's start, and again before 01:30 UTC
        // after the gap, with nothing added across the gap.
        assert_eq!(
            stored,
            [
                (ts("2026-01-09T23:00:00Z"), 0.0),
                (ts("2026-01-09T23:30:00Z"), 0.5),
                (ts("2026-01-10T00:00:00Z"), 0.75),
                (ts("2026-01-10T01:00:00Z"), 0.75),
                (ts("2026-01-10T01:30:00Z"), 1.75),
            ]
        );
        let info = rt.block_on(ports.registry.get(&m1)).unwrap().unwrap();
        assert_eq!(info.timezone, chrono_tz::Europe::Amsterdam);
        let day = ts("2026-01-10T12:00:00Z").to_datetime().date_naive();
        let days = rt
            .block_on(
                ports
                    .aggregates
                    .range(&m1, Period::Day(day), Period::Day(day)),
            )
            .unwrap();
        // Every interval's energy, the first one's too, is in the local day's total.
        assert_eq!(days.iter().map(|a| a.total().kwh()).sum::<f64>(), 1.75);

        let again =
            import_reader(SMALL.as_bytes(), Format::Csv, zones, db, &Bars::hidden()).unwrap();
        assert_eq!(again.store.report.stored, 0);
        assert_eq!(again.store.report.duplicates, 8);
        assert!(again.imported_anything());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_of_only_bad_rows_imports_nothing() {
        let (dir, db) = temp_store("bad");
        let zones = Zones::for_format(Format::Csv, None).unwrap();
        let text = "meter_id,timestamp,kwh\nm1,never,1\n";
        let o = import_reader(text.as_bytes(), Format::Csv, zones, db, &Bars::hidden()).unwrap();
        assert_eq!(o.stats.bad_row_count, 1);
        assert!(!o.imported_anything());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_first_twenty_thousand_rows_of_the_shared_sgsc_file_import_and_reimport_cleanly() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/sgsc50_halfhourly.csv.gz");
        let Ok(file) = std::fs::File::open(&path) else {
            println!("skipped: {} is absent", path.display());
            return;
        };
        let mut lines = BufReader::new(flate2::read::MultiGzDecoder::new(file)).lines();
        let mut head = String::new();
        for line in lines.by_ref().take(20_001) {
            head.push_str(&line.unwrap());
            head.push('\n');
        }
        let (dir, db) = temp_store("sgsc");
        let zones = Zones::for_format(Format::Sgsc, None).unwrap();
        let o = import_reader(
            head.as_bytes(),
            Format::Sgsc,
            zones,
            db.clone(),
            &Bars::hidden(),
        )
        .unwrap();
        assert_eq!(o.stats.rows, 20_000);
        assert_eq!(o.stats.bad_row_count, 0);
        assert_eq!(o.intervals.get(&30), Some(&o.stats.meters));
        assert_eq!(o.store.report.quarantined, 0, "{:?}", o.store.report);
        assert_eq!(o.store.report.stored, o.store.offered);
        assert_eq!(o.store.offered, o.stats.points + o.store.interval_starts);

        let ports = meter_local::sqlite_ports(db.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first = MeterId::parse("10006414").unwrap();
        let early = rt
            .block_on(ports.readings.range(
                &first,
                ts("2012-02-09T21:30:00Z"),
                ts("2012-02-09T22:30:00Z"),
            ))
            .unwrap();
        let got: Vec<(Timestamp, i64)> = early
            .iter()
            .map(|r| (r.ts, r.energy_import.mwh()))
            .collect();
        // 2012-02-10 08:00 AEST closes the first interval: 0.141 kWh after 0 at 07:30.
        assert_eq!(
            got,
            [
                (ts("2012-02-09T21:30:00Z"), 0),
                (ts("2012-02-09T22:00:00Z"), 141_000),
                (ts("2012-02-09T22:30:00Z"), 229_000),
            ]
        );
        let info = rt.block_on(ports.registry.get(&first)).unwrap().unwrap();
        assert_eq!(info.timezone, chrono_tz::Australia::Brisbane);

        let again =
            import_reader(head.as_bytes(), Format::Sgsc, zones, db, &Bars::hidden()).unwrap();
        assert_eq!(again.store.report.stored, 0);
        assert_eq!(again.store.report.duplicates, o.store.offered);
        let _ = std::fs::remove_dir_all(dir);
    }
}
