//! Interval-energy files (smart-meter exports) read into clean per-meter series: the input side
//! of `meterflow import`, and of forecasting and detection work that needs real history.
//!
//! One streaming pass over CSV text. Every bad row is reported with its 1-based line number and a
//! typed reason ([`RowError`]), counted, and left out; parsing goes on, and the caller decides
//! what a bad row means. Nothing is dropped silently: duplicated (meter, time) pairs are counted
//! (the first in the file is kept, and those whose value differs are counted apart), and missing
//! intervals are counted per meter. Rows may arrive in any order; each series comes out sorted.
//!
//! Two [`Format`]s:
//! - [`Format::Sgsc`]: Ausgrid's Smart Grid Smart City export (`customer_id, reading_datetime,
//!   general_supply_kwh, ...`), with naive times in AEST without daylight saving (UTC+10).
//! - [`Format::Csv`]: the generic long form `meter_id,timestamp,kwh`, timestamps in RFC 3339 with
//!   an offset, or naive and read in a caller-given time zone.
//!
//! In both, a row's energy is that of the interval *ending* at its timestamp, the meter
//! convention the rest of meterflow uses. The interval is inferred per meter.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::str::FromStr;

use chrono::{LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::types::{Energy, InvalidEnergy, InvalidMeterId, MeterId, Timestamp};

/// The SGSC trial's meters keep Australian Eastern Standard Time all year: UTC+10, in seconds.
pub const SGSC_UTC_OFFSET_SECONDS: i64 = 10 * 3600;

/// How many bad rows are kept as examples; all of them are counted.
pub const MAX_BAD_ROW_EXAMPLES: usize = 100;

/// How often (in rows) the progress hook is called: often enough for a smooth bar, rarely enough
/// to cost nothing.
const PROGRESS_EVERY_ROWS: u64 = 16_384;

/// The SGSC export's interval, used for a meter whose own interval cannot be inferred.
const SGSC_INTERVAL_MS: i64 = 30 * 60 * 1000;

/// A supported file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Smart Grid Smart City: `customer_id, reading_datetime, general_supply_kwh, ...`; naive
    /// times at a fixed UTC+10 whatever time zone the caller gives.
    Sgsc,
    /// `meter_id,timestamp,kwh` with a header; RFC 3339 or naive timestamps.
    Csv,
}

impl Format {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sgsc => "sgsc",
            Self::Csv => "csv",
        }
    }

    /// The header names of the meter id, timestamp and energy columns.
    fn columns(self) -> [&'static str; 3] {
        match self {
            Self::Sgsc => ["customer_id", "reading_datetime", "general_supply_kwh"],
            Self::Csv => ["meter_id", "timestamp", "kwh"],
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not `sgsc` or `csv`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}: expected sgsc or csv")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sgsc" => Ok(Self::Sgsc),
            "csv" => Ok(Self::Csv),
            other => Err(UnknownFormat(other.to_owned())),
        }
    }
}

/// Why one row was left out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadRow {
    /// The row has another number of fields than the header.
    #[error("expected {expected} columns as in the header, found {found}")]
    ColumnCount {
        /// Columns in the header.
        expected: usize,
        /// Columns in this row.
        found: usize,
    },
    /// A field the parser reads is not UTF-8 text.
    #[error("column `{column}` is not UTF-8 text")]
    NotUtf8 {
        /// The column.
        column: &'static str,
    },
    /// The meter id is not a valid [`MeterId`].
    #[error("meter id {value:?} is invalid")]
    MeterId {
        /// The field as written.
        value: String,
        /// Why it is invalid.
        #[source]
        source: InvalidMeterId,
    },
    /// The energy field is not a number.
    #[error("`{column}` = {value:?} is not a number")]
    Number {
        /// The column.
        column: &'static str,
        /// The field as written.
        value: String,
        /// The parser's complaint.
        #[source]
        source: std::num::ParseFloatError,
    },
    /// NaN or infinite energy.
    #[error("`{column}` = {value:?} is not a finite number")]
    NotFinite {
        /// The column.
        column: &'static str,
        /// The field as written.
        value: String,
    },
    /// Negative interval energy: a consumption meter never measures less than nothing.
    #[error("`{column}` = {value} is negative")]
    Negative {
        /// The column.
        column: &'static str,
        /// The value.
        value: f64,
    },
    /// More energy than can be held exactly in milliwatt-hours.
    #[error("`{column}` = {value} kWh is too large")]
    TooLarge {
        /// The column.
        column: &'static str,
        /// The value.
        value: f64,
    },
    /// The timestamp is in no accepted form.
    #[error("timestamp {value:?} is not {expected}")]
    Timestamp {
        /// The field as written.
        value: String,
        /// The accepted forms.
        expected: &'static str,
    },
    /// A naive local time skipped by a daylight-saving change, so it names no instant.
    #[error("local time {value:?} does not exist in {tz} (a daylight-saving change skips it)")]
    NonexistentLocalTime {
        /// The field as written.
        value: String,
        /// The zone it was read in.
        tz: Tz,
    },
}

impl BadRow {
    /// A stable snake_case name for counting by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ColumnCount { .. } => "column_count",
            Self::NotUtf8 { .. } => "not_utf8",
            Self::MeterId { .. } => "bad_meter_id",
            Self::Number { .. } => "not_a_number",
            Self::NotFinite { .. } => "not_finite",
            Self::Negative { .. } => "negative",
            Self::TooLarge { .. } => "too_large",
            Self::Timestamp { .. } => "bad_timestamp",
            Self::NonexistentLocalTime { .. } => "nonexistent_local_time",
        }
    }
}

/// A bad row: where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}")]
pub struct RowError {
    /// 1-based line number in the input (the header is line 1).
    pub line: u64,
    /// Why the row was left out.
    #[source]
    pub reason: BadRow,
}

impl RowError {
    /// The line, the reason and the reason's own source on one line, for reports.
    pub fn describe(&self) -> String {
        let mut out = format!("line {}: {}", self.line, self.reason);
        let mut source = std::error::Error::source(&self.reason);
        while let Some(s) = source {
            out.push_str(": ");
            out.push_str(&s.to_string());
            source = s.source();
        }
        out
    }
}

/// Why the input as a whole could not be read. Bad rows never end up here.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    /// The underlying reader failed (I/O, or a corrupt compressed stream).
    #[error("reading the input failed at line {line}")]
    Read {
        /// The line being read.
        line: u64,
        /// The CSV reader's error, which holds the I/O error.
        #[source]
        source: csv::Error,
    },
    /// No header line.
    #[error("the input is empty; a header line is required")]
    Empty,
    /// The header lacks a column the format needs.
    #[error("the header has no `{column}` column for format {format} (found: {found})")]
    MissingColumn {
        /// The column.
        column: &'static str,
        /// The format asked for.
        format: Format,
        /// The header as read.
        found: String,
    },
}

/// How far parsing has got, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Data rows read (not counting the header).
    pub rows: u64,
    /// Bytes of (decompressed) input consumed.
    pub bytes: u64,
}

/// One meter's clean series.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSeries {
    /// The meter.
    pub meter_id: MeterId,
    /// The meter's interval in ms: its most common step between readings (the shorter on a
    /// tie). For a meter with a single reading, the file's most common interval, or for SGSC 30
    /// minutes; `None` when nothing says.
    pub interval_ms: Option<i64>,
    /// (end of interval, energy of the interval), sorted by time, one per timestamp.
    pub points: Vec<(Timestamp, Energy)>,
    /// Missing intervals: for each step longer than the interval, how many whole intervals fit
    /// in it beyond the one read.
    pub gaps: u64,
    /// Rows for an already seen timestamp of this meter (the first was kept).
    pub duplicates: u64,
    /// Of those, how many had a different value.
    pub conflicting_duplicates: u64,
}

impl MeterSeries {
    /// The start of the first interval (its end minus the interval), if both are known.
    pub fn first_start(&self) -> Option<Timestamp> {
        let (end, _) = self.points.first()?;
        Some(end.add_millis(-self.interval_ms?))
    }

    /// The series in kWh, for forecasting and statistics.
    pub fn kwh(&self) -> impl Iterator<Item = (Timestamp, f64)> + '_ {
        self.points.iter().map(|(t, e)| (*t, e.kwh()))
    }
}

/// Counts over the whole input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportStats {
    /// Data rows read (not counting the header).
    pub rows: u64,
    /// Readings kept: rows minus bad rows minus duplicates.
    pub points: u64,
    /// Bad rows, all of them.
    pub bad_row_count: u64,
    /// Bad rows by [`BadRow::kind`].
    pub bad_rows_by_kind: BTreeMap<&'static str, u64>,
    /// The first [`MAX_BAD_ROW_EXAMPLES`] bad rows, in file order.
    pub bad_rows: Vec<RowError>,
    /// Rows for a (meter, timestamp) already seen.
    pub duplicates: u64,
    /// Of those, how many had a different value than the one kept.
    pub conflicting_duplicates: u64,
    /// Missing intervals over all meters.
    pub gaps: u64,
    /// Meters with at least one reading.
    pub meters: usize,
}

/// What [`read_series`] returns: one series per meter, sorted by meter id, and the counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportedSeries {
    /// The series, sorted by meter id.
    pub meters: Vec<MeterSeries>,
    /// Counts over the input.
    pub stats: ImportStats,
}

/// Reads a whole file. `tz` is the zone for naive timestamps in [`Format::Csv`]; SGSC ignores it
/// (its times are always UTC+10).
pub fn read_series<R: Read>(
    input: R,
    format: Format,
    tz: Tz,
) -> Result<ImportedSeries, SeriesError> {
    read_series_with_progress(input, format, tz, |_| {})
}

/// [`read_series`], calling `on_progress` every few thousand rows and once at the end.
pub fn read_series_with_progress<R: Read>(
    input: R,
    format: Format,
    tz: Tz,
    mut on_progress: impl FnMut(Progress),
) -> Result<ImportedSeries, SeriesError> {
    // Flexible: a row with the wrong number of fields is a bad row to report, not a stop.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader
        .byte_headers()
        .map_err(|source| SeriesError::Read { line: 1, source })?
        .clone();
    if header.is_empty() || (header.len() == 1 && header.get(0).is_some_and(<[u8]>::is_empty)) {
        return Err(SeriesError::Empty);
    }
    let columns = Columns::find(&header, format)?;
    let mut acc = Accumulator::new(format, tz, columns, header.len());
    let mut record = csv::ByteRecord::new();
    let mut stats = ImportStats::default();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(source) => {
                let line = reader.position().line();
                return Err(SeriesError::Read { line, source });
            }
        }
        stats.rows += 1;
        if let Err(reason) = acc.row(&record) {
            let line = record.position().map_or(0, csv::Position::line);
            stats.bad_row_count += 1;
            *stats.bad_rows_by_kind.entry(reason.kind()).or_default() += 1;
            if stats.bad_rows.len() < MAX_BAD_ROW_EXAMPLES {
                stats.bad_rows.push(RowError { line, reason });
            }
        }
        if stats.rows % PROGRESS_EVERY_ROWS == 0 {
            on_progress(Progress {
                rows: stats.rows,
                bytes: reader.position().byte(),
            });
        }
    }
    on_progress(Progress {
        rows: stats.rows,
        bytes: reader.position().byte(),
    });
    Ok(acc.finish(stats))
}

/// Where the three columns the parser reads sit in the header.
#[derive(Debug, Clone, Copy)]
struct Columns {
    meter: usize,
    ts: usize,
    kwh: usize,
    names: [&'static str; 3],
}

impl Columns {
    fn find(header: &csv::ByteRecord, format: Format) -> Result<Self, SeriesError> {
        let names = format.columns();
        let mut idx = [0usize; 3];
        for (slot, name) in idx.iter_mut().zip(names) {
            *slot = header
                .iter()
                // A UTF-8 byte-order mark may precede the first name.
                .position(|h| h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h) == name.as_bytes())
                .ok_or_else(|| SeriesError::MissingColumn {
                    column: name,
                    format,
                    found: header
                        .iter()
                        .map(String::from_utf8_lossy)
                        .collect::<Vec<_>>()
                        .join(","),
                })?;
        }
        Ok(Self {
            meter: idx[0],
            ts: idx[1],
            kwh: idx[2],
            names,
        })
    }
}

/// A parsed timestamp: one instant, or the two a repeated local hour gives.
enum LocalInstant {
    Exact(i64),
    Ambiguous { earliest: i64, latest: i64 },
}

/// One meter's rows while the file is read.
#[derive(Default)]
struct Raw {
    points: Vec<(Timestamp, Energy)>,
    /// Earlier readings of ambiguous local times, so a second one takes the later instant.
    ambiguous_taken: HashSet<i64>,
}

struct Accumulator {
    format: Format,
    tz: Tz,
    columns: Columns,
    width: usize,
    index: HashMap<MeterId, usize>,
    meters: Vec<(MeterId, Raw)>,
    /// The last row's meter id bytes and slot: files are usually grouped by meter, so most rows
    /// skip both validation and the hash lookup.
    last: Option<(Vec<u8>, usize)>,
}

impl Accumulator {
    fn new(format: Format, tz: Tz, columns: Columns, width: usize) -> Self {
        Self {
            format,
            tz,
            columns,
            width,
            index: HashMap::new(),
            meters: Vec::new(),
            last: None,
        }
    }

    fn row(&mut self, record: &csv::ByteRecord) -> Result<(), BadRow> {
        if record.len() != self.width {
            return Err(BadRow::ColumnCount {
                expected: self.width,
                found: record.len(),
            });
        }
        let [meter_col, ts_col, kwh_col] = self.columns.names;
        let field = |i: usize, column: &'static str| -> Result<&str, BadRow> {
            std::str::from_utf8(record.get(i).unwrap_or_default())
                .map_err(|_| BadRow::NotUtf8 { column })
        };
        let id_bytes = record.get(self.columns.meter).unwrap_or_default();
        let cached = match &self.last {
            Some((bytes, slot)) if bytes.as_slice() == id_bytes => Some(*slot),
            _ => None,
        };
        let meter = match cached {
            Some(slot) => MeterRef::Slot(slot),
            None => {
                let s = field(self.columns.meter, meter_col)?;
                MeterRef::New(MeterId::parse(s).map_err(|source| BadRow::MeterId {
                    value: s.to_owned(),
                    source,
                })?)
            }
        };
        let instant = self.parse_ts(field(self.columns.ts, ts_col)?)?;
        let energy = parse_kwh(kwh_col, field(self.columns.kwh, kwh_col)?)?;

        // Only a fully valid row creates a meter, so a meter seen only in bad rows is not one.
        let slot = match meter {
            MeterRef::Slot(slot) => slot,
            MeterRef::New(id) => {
                let next = self.meters.len();
                let slot = *self.index.entry(id.clone()).or_insert(next);
                if slot == next {
                    self.meters.push((id, Raw::default()));
                }
                self.last = Some((id_bytes.to_vec(), slot));
                slot
            }
        };
        let Some((_, raw)) = self.meters.get_mut(slot) else {
            return Ok(()); // unreachable: slots index `meters`
        };
        let ts = match instant {
            LocalInstant::Exact(ms) => ms,
            // A repeated hour at the end of daylight saving: files list it twice, earlier
            // instant first, so the first reading of a time takes the earlier instant and a
            // second the later one.
            LocalInstant::Ambiguous { earliest, latest } => {
                if raw.ambiguous_taken.insert(earliest) {
                    earliest
                } else {
                    latest
                }
            }
        };
        raw.points.push((Timestamp::from_millis(ts), energy));
        Ok(())
    }

    fn parse_ts(&self, s: &str) -> Result<LocalInstant, BadRow> {
        match self.format {
            Format::Sgsc => match parse_naive(s) {
                Some(naive) => Ok(LocalInstant::Exact(
                    naive.and_utc().timestamp_millis() - SGSC_UTC_OFFSET_SECONDS * 1000,
                )),
                None => Err(BadRow::Timestamp {
                    value: s.to_owned(),
                    expected: "YYYY-MM-DD HH:MM[:SS]",
                }),
            },
            Format::Csv => {
                if let Some(naive) = parse_naive(s) {
                    return match self.tz.from_local_datetime(&naive) {
                        LocalResult::Single(t) => Ok(LocalInstant::Exact(t.timestamp_millis())),
                        LocalResult::Ambiguous(a, b) => Ok(LocalInstant::Ambiguous {
                            earliest: a.timestamp_millis().min(b.timestamp_millis()),
                            latest: a.timestamp_millis().max(b.timestamp_millis()),
                        }),
                        LocalResult::None => Err(BadRow::NonexistentLocalTime {
                            value: s.to_owned(),
                            tz: self.tz,
                        }),
                    };
                }
                Timestamp::parse_rfc3339(s)
                    .map(|t| LocalInstant::Exact(t.millis()))
                    .map_err(|_| BadRow::Timestamp {
                        value: s.to_owned(),
                        expected: "RFC 3339 with an offset, or YYYY-MM-DD[ T]HH:MM[:SS]",
                    })
            }
        }
    }

    fn finish(self, mut stats: ImportStats) -> ImportedSeries {
        let mut meters: Vec<MeterSeries> = Vec::with_capacity(self.meters.len());
        let mut all_steps: HashMap<i64, u64> = HashMap::new();
        for (meter_id, raw) in self.meters {
            let mut points = raw.points;
            // Stable: among equal timestamps the file's order survives, so the first is kept.
            points.sort_by_key(|p| p.0);
            let mut kept: Vec<(Timestamp, Energy)> = Vec::with_capacity(points.len());
            let (mut duplicates, mut conflicting) = (0u64, 0u64);
            for p in points {
                match kept.last() {
                    Some(last) if last.0 == p.0 => {
                        duplicates += 1;
                        if last.1 != p.1 {
                            conflicting += 1;
                        }
                    }
                    _ => kept.push(p),
                }
            }
            let mut steps: HashMap<i64, u64> = HashMap::new();
            for w in kept.windows(2) {
                if let [a, b] = w {
                    *steps.entry(b.0.millis() - a.0.millis()).or_default() += 1;
                }
            }
            for (step, n) in &steps {
                *all_steps.entry(*step).or_default() += n;
            }
            meters.push(MeterSeries {
                meter_id,
                interval_ms: most_common(&steps),
                points: kept,
                gaps: 0,
                duplicates,
                conflicting_duplicates: conflicting,
            });
        }
        let fallback = most_common(&all_steps).or(match self.format {
            Format::Sgsc => Some(SGSC_INTERVAL_MS),
            Format::Csv => None,
        });
        meters.sort_by(|a, b| a.meter_id.cmp(&b.meter_id));
        for m in &mut meters {
            m.interval_ms = m.interval_ms.or(fallback);
            if let Some(interval) = m.interval_ms {
                m.gaps = m
                    .points
                    .windows(2)
                    .filter_map(|w| match w {
                        [a, b] => Some(b.0.millis() - a.0.millis()),
                        _ => None,
                    })
                    .filter(|step| *step > interval)
                    .map(|step| (step / interval - 1) as u64)
                    .sum();
            }
            stats.duplicates += m.duplicates;
            stats.conflicting_duplicates += m.conflicting_duplicates;
            stats.gaps += m.gaps;
            stats.points += m.points.len() as u64;
        }
        stats.meters = meters.len();
        ImportedSeries { meters, stats }
    }
}

enum MeterRef {
    Slot(usize),
    New(MeterId),
}

/// The most frequent step, the shorter on a tie (a meter with as many 15- as 30-minute steps is
/// a 15-minute meter with gaps, not the reverse).
fn most_common(steps: &HashMap<i64, u64>) -> Option<i64> {
    steps
        .iter()
        .filter(|(step, _)| **step > 0)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(step, _)| *step)
}

fn parse_kwh(column: &'static str, s: &str) -> Result<Energy, BadRow> {
    let value: f64 = s.parse().map_err(|source| BadRow::Number {
        column,
        value: s.to_owned(),
        source,
    })?;
    Energy::from_kwh(value).map_err(|e| match e {
        InvalidEnergy::NotFinite => BadRow::NotFinite {
            column,
            value: s.to_owned(),
        },
        InvalidEnergy::Negative(value) => BadRow::Negative { column, value },
        InvalidEnergy::TooLarge(value) => BadRow::TooLarge { column, value },
    })
}

/// `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DDTHH:MM[:SS]`, by hand: a million rows through chrono's
/// format-string parser cost several times more, and the strict layout rejects look-alikes.
fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if !(b.len() == 16 || b.len() == 19) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let sep_ok = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b' ' | b'T'))
        && b.get(13) == Some(&b':')
        && (b.len() == 16 || b.get(16) == Some(&b':'));
    if !sep_ok {
        return None;
    }
    let year = i32::try_from(num(0, 4)?).ok()?;
    let second = if b.len() == 19 { num(17, 19)? } else { 0 };
    NaiveDate::from_ymd_opt(year, num(5, 7)?, num(8, 10)?)?.and_hms_opt(
        num(11, 13)?,
        num(14, 16)?,
        second,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn kwh(v: f64) -> Energy {
        Energy::from_kwh(v).unwrap()
    }

    fn csv(text: &str) -> ImportedSeries {
        read_series(text.as_bytes(), Format::Csv, Tz::UTC).unwrap()
    }

    fn meter<'a>(s: &'a ImportedSeries, id: &str) -> &'a MeterSeries {
        s.meters.iter().find(|m| m.meter_id.as_str() == id).unwrap()
    }

    #[test]
    fn sgsc_times_are_fixed_utc_plus_ten_without_daylight_saving() {
        let text = "customer_id,reading_datetime,general_supply_kwh,controlled_load_kwh,\
                    gross_generation_kwh,net_generation_kwh,other_kwh\n\
                    10006414,2012-02-10 08:00:00,0.141,0,0,0,0\n\
                    10006414,2012-02-10 08:30:00,0.088,0,0,0,0\n\
                    10006414,2012-07-10 08:30:00,0.5,0,0,0,0\n";
        // Tz is ignored for SGSC: Sydney would shift the February time by an hour (daylight
        // saving), which the trial's meters never applied.
        let s = read_series(text.as_bytes(), Format::Sgsc, chrono_tz::Australia::Sydney).unwrap();
        let m = meter(&s, "10006414");
        assert_eq!(m.points[0], (ts("2012-02-09T22:00:00Z"), kwh(0.141)));
        assert_eq!(m.points[1], (ts("2012-02-09T22:30:00Z"), kwh(0.088)));
        assert_eq!(m.points[2].0, ts("2012-07-09T22:30:00Z"));
        assert_eq!(m.interval_ms, Some(30 * MIN));
        assert_eq!(m.first_start(), Some(ts("2012-02-09T21:30:00Z")));
    }

    #[test]
    fn each_kind_of_bad_row_is_reported_with_its_line_and_parsing_goes_on() {
        let text = "meter_id,timestamp,kwh\n\
                    m1,2026-01-01T00:30:00Z,0.5\n\
                    m1,2026-01-01T01:00:00Z\n\
                    m1,2026-01-01T01:30:00Z,abc\n\
                    m1,2026-01-01T02:00:00Z,NaN\n\
                    m1,2026-01-01T02:30:00Z,inf\n\
                    m1,2026-01-01T03:00:00Z,-0.2\n\
                    m1,yesterday,0.1\n\
                    bad id,2026-01-01T03:30:00Z,0.1\n\
                    m1,2026-01-01T04:00:00Z,1e12\n\
                    m1,2026-01-01T04:30:00Z,0.25\n";
        let s = csv(text);
        let got: Vec<(u64, &str)> = s
            .stats
            .bad_rows
            .iter()
            .map(|e| (e.line, e.reason.kind()))
            .collect();
        assert_eq!(
            got,
            [
                (3, "column_count"),
                (4, "not_a_number"),
                (5, "not_finite"),
                (6, "not_finite"),
                (7, "negative"),
                (8, "bad_timestamp"),
                (9, "bad_meter_id"),
                (10, "too_large"),
            ]
        );
        assert_eq!(s.stats.rows, 10);
        assert_eq!(s.stats.bad_row_count, 8);
        assert_eq!(s.stats.bad_rows_by_kind.get("not_finite"), Some(&2));
        assert_eq!(s.stats.points, 2);
        assert_eq!(s.stats.meters, 1);
        let described = s.stats.bad_rows[6].describe();
        assert!(
            described.starts_with("line 9: meter id \"bad id\""),
            "{described}"
        );
        assert!(described.contains("' '"), "{described}");
    }

    #[test]
    fn a_local_time_skipped_by_daylight_saving_is_a_bad_row() {
        let text = "meter_id,timestamp,kwh\nm1,2026-03-29 01:30,0.1\nm1,2026-03-29 03:00,0.1\n";
        let s = read_series(text.as_bytes(), Format::Csv, chrono_tz::Europe::London).unwrap();
        assert_eq!(s.stats.bad_rows.len(), 1);
        assert_eq!(s.stats.bad_rows[0].line, 2);
        assert_eq!(s.stats.bad_rows[0].reason.kind(), "nonexistent_local_time");
        assert_eq!(meter(&s, "m1").points[0].0, ts("2026-03-29T02:00:00Z"));
    }

    #[test]
    fn a_repeated_local_hour_takes_the_earlier_instant_first_and_the_later_second() {
        let text = "meter_id,timestamp,kwh\n\
                    m1,2026-10-25T01:30,0.1\n\
                    m1,2026-10-25T01:30,0.2\n";
        let s = read_series(text.as_bytes(), Format::Csv, chrono_tz::Europe::London).unwrap();
        let m = meter(&s, "m1");
        assert_eq!(
            m.points,
            [
                (ts("2026-10-25T00:30:00Z"), kwh(0.1)),
                (ts("2026-10-25T01:30:00Z"), kwh(0.2))
            ]
        );
        assert_eq!(s.stats.duplicates, 0);
    }

    #[test]
    fn naive_csv_times_are_read_in_the_given_zone_and_offsets_are_honoured() {
        let text = "meter_id,timestamp,kwh\n\
                    m1,2026-07-01 12:00,0.1\n\
                    m1,2026-07-01T12:15:00,0.1\n\
                    m1,2026-07-01T12:30:00+02:00,0.1\n";
        let s = read_series(text.as_bytes(), Format::Csv, chrono_tz::Europe::Berlin).unwrap();
        let got: Vec<Timestamp> = meter(&s, "m1").points.iter().map(|p| p.0).collect();
        assert_eq!(
            got,
            [
                ts("2026-07-01T10:00:00Z"),
                ts("2026-07-01T10:15:00Z"),
                ts("2026-07-01T10:30:00Z")
            ]
        );
    }

    #[test]
    fn duplicates_are_counted_and_the_first_in_the_file_is_kept() {
        let text = "meter_id,timestamp,kwh\n\
                    m1,2026-01-01T00:30:00Z,0.5\n\
                    m1,2026-01-01T01:00:00Z,0.7\n\
                    m1,2026-01-01T00:30:00Z,0.5\n\
                    m1,2026-01-01T00:30:00Z,0.9\n\
                    m2,2026-01-01T00:30:00Z,0.9\n";
        let s = csv(text);
        let m1 = meter(&s, "m1");
        assert_eq!(m1.points[0], (ts("2026-01-01T00:30:00Z"), kwh(0.5)));
        assert_eq!((m1.duplicates, m1.conflicting_duplicates), (2, 1));
        assert_eq!((s.stats.duplicates, s.stats.conflicting_duplicates), (2, 1));
        assert_eq!(s.stats.points, 3);
        assert_eq!(s.stats.bad_row_count, 0);
    }

    #[test]
    fn unsorted_rows_come_out_sorted_per_meter() {
        let text = "meter_id,timestamp,kwh\n\
                    b,2026-01-01T01:00:00Z,2\n\
                    a,2026-01-01T01:00:00Z,0.2\n\
                    b,2026-01-01T00:30:00Z,1\n\
                    a,2026-01-01T00:30:00Z,0.1\n\
                    a,2026-01-01T01:30:00Z,0.3\n";
        let s = csv(text);
        let ids: Vec<&str> = s.meters.iter().map(|m| m.meter_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let a: Vec<f64> = meter(&s, "a").kwh().map(|p| p.1).collect();
        assert_eq!(a, [0.1, 0.2, 0.3]);
        assert_eq!(meter(&s, "b").points[0].1, kwh(1.0));
    }

    #[test]
    fn fifteen_and_thirty_minute_meters_share_a_file() {
        let mut text = String::from("meter_id,timestamp,kwh\n");
        for i in 1..=8 {
            text.push_str(&format!(
                "q,2026-01-01T{:02}:{:02}:00Z,0.1\n",
                i / 4,
                i % 4 * 15
            ));
        }
        for i in 1..=4 {
            text.push_str(&format!(
                "h,2026-01-01T{:02}:{:02}:00Z,0.2\n",
                i / 2,
                i % 2 * 30
            ));
        }
        let s = csv(&text);
        assert_eq!(meter(&s, "q").interval_ms, Some(15 * MIN));
        assert_eq!(meter(&s, "h").interval_ms, Some(30 * MIN));
        assert_eq!(s.stats.gaps, 0);
    }

    #[test]
    fn missing_intervals_are_counted_per_meter() {
        let text = "meter_id,timestamp,kwh\n\
                    m1,2026-01-01T00:30:00Z,1\n\
                    m1,2026-01-01T01:00:00Z,1\n\
                    m1,2026-01-01T01:30:00Z,1\n\
                    m1,2026-01-01T03:00:00Z,1\n\
                    m1,2026-01-01T03:30:00Z,1\n\
                    m1,2026-01-01T04:30:00Z,1\n\
                    m2,2026-01-01T00:30:00Z,1\n\
                    m2,2026-01-01T01:00:00Z,1\n";
        let s = csv(text);
        assert_eq!(meter(&s, "m1").gaps, 3);
        assert_eq!(meter(&s, "m1").interval_ms, Some(30 * MIN));
        assert_eq!(meter(&s, "m2").gaps, 0);
        assert_eq!(s.stats.gaps, 3);
    }

    #[test]
    fn a_meter_with_one_reading_takes_the_files_interval() {
        let text = "meter_id,timestamp,kwh\n\
                    m1,2026-01-01T00:15:00Z,1\n\
                    m1,2026-01-01T00:30:00Z,1\n\
                    solo,2026-01-01T00:30:00Z,1\n";
        let s = csv(text);
        assert_eq!(meter(&s, "solo").interval_ms, Some(15 * MIN));
        let alone = csv("meter_id,timestamp,kwh\nsolo,2026-01-01T00:30:00Z,1\n");
        assert_eq!(alone.meters[0].interval_ms, None);
        assert_eq!(alone.meters[0].first_start(), None);
    }

    #[test]
    fn columns_are_found_by_name_and_a_missing_one_stops_the_read() {
        let s = csv("kwh,note,timestamp,meter_id\n0.5,x,2026-01-01T00:30:00Z,m1\n");
        assert_eq!(s.meters[0].points[0].1, kwh(0.5));
        let err = read_series("meter,timestamp,kwh\n".as_bytes(), Format::Csv, Tz::UTC);
        assert!(matches!(
            err,
            Err(SeriesError::MissingColumn {
                column: "meter_id",
                ..
            })
        ));
        let err = read_series("".as_bytes(), Format::Sgsc, Tz::UTC);
        assert!(matches!(err, Err(SeriesError::Empty)));
    }

    #[test]
    fn bad_row_examples_are_capped_but_all_are_counted() {
        let mut text = String::from("meter_id,timestamp,kwh\n");
        for _ in 0..MAX_BAD_ROW_EXAMPLES + 50 {
            text.push_str("m1,never,1\n");
        }
        let s = csv(&text);
        assert_eq!(s.stats.bad_row_count, MAX_BAD_ROW_EXAMPLES as u64 + 50);
        assert_eq!(s.stats.bad_rows.len(), MAX_BAD_ROW_EXAMPLES);
        assert_eq!(s.stats.bad_rows[0].line, 2);
        assert!(s.meters.is_empty());
    }

    #[test]
    fn progress_is_reported_in_rows_and_bytes_at_the_end() {
        let text = "meter_id,timestamp,kwh\nm1,2026-01-01T00:30:00Z,1\n";
        let mut last = None;
        read_series_with_progress(text.as_bytes(), Format::Csv, Tz::UTC, |p| last = Some(p))
            .unwrap();
        assert_eq!(
            last,
            Some(Progress {
                rows: 1,
                bytes: text.len() as u64
            })
        );
    }

    #[test]
    fn strict_naive_times_reject_look_alikes() {
        assert!(parse_naive("2026-01-01 00:30").is_some());
        assert!(parse_naive("2026-01-01T00:30:59").is_some());
        for bad in [
            "2026-1-01 00:30",
            "2026-01-01 24:00",
            "2026-02-30 00:00",
            "2026/01/01 00:30",
            "2026-01-01 00:30:",
            "+026-01-01 00:30",
        ] {
            assert!(parse_naive(bad).is_none(), "{bad}");
        }
    }
}
