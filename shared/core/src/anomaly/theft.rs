//! Pattern theft: scoring each meter-day for under-reporting against the meter's own history
//! and its peers, and the false-data-injection patterns h1–h6 of the literature (Jokar et al.
//! 2016, Zheng et al. 2018) that the evaluation injects.
//!
//! The score is not six formulas for six attacks. A tampered day looks wrong in a few general
//! ways, each measured as a robust z-score (median/MAD) against the same meter's days in a
//! window around it, so a meter is only compared with itself:
//! - `low_energy`: the day's kWh (log) below its usual level, less the same date's median
//!   shift over all meters (weather and holidays move everyone);
//! - `low_base`: the night base load (10th percentile of the intervals) below usual;
//! - `flat`: the coefficient of variation collapsed (a constant or rescaled-mean day);
//! - `rough`: interval-to-interval jumps far above usual relative to the level (per-interval
//!   random scaling);
//! - `shape`: the day's profile uncorrelated with the meter's usual profile;
//! - `reversed`: the profile fits the usual one better backwards than forwards;
//! - `zero_run`: a run of zero intervals longer than any in the reference days;
//! - `clipped`: more intervals than usual at the day's maximum, to the Wh (a capped meter: its
//!   top is cut flat at one value, which a real day's peak almost never repeats).
//!
//! Each component counts only in its suspicious direction (clipped at 0), and the day's score is
//! their root sum of squares: one strong sign or several moderate ones. Components are named so
//! a finding can say which sign it saw.

use chrono::NaiveDate;
use rustc_hash::FxHashMap;

use super::days::MeterDays;
use super::iforest::{ForestConfig, IsolationForest};
use super::rng::Rng;

/// The components of a day's theft score, in [`DayScore::components`] order.
pub const COMPONENTS: [&str; 8] = [
    "low_energy",
    "low_base",
    "flat",
    "rough",
    "shape",
    "reversed",
    "zero_run",
    "clipped",
];

/// Index of each component.
const LOW_ENERGY: usize = 0;
const LOW_BASE: usize = 1;
const FLAT: usize = 2;
const ROUGH: usize = 3;
const SHAPE: usize = 4;
const REVERSED: usize = 5;
const ZERO_RUN: usize = 6;
const CLIPPED: usize = 7;

/// `rough` does not count on a day whose energy is more than this many robust standard
/// deviations above the meter's usual (see [`score_meter`]).
const ROUGH_ENERGY_GATE: f64 = 3.0;

/// Days either side of a day whose longest zero run `zero_run` compares it with.
const ZERO_RUN_NEAR_DAYS: usize = 28;

/// The floor of `clipped`'s robust z-score, in intervals: a meter whose days always peak once
/// (MAD 0) scores 2 per extra interval at the maximum.
const CLIPPED_FLOOR: f64 = 0.5;

/// An interval at or below this many kWh counts as zero (meters report to 1 Wh).
const ZERO_KWH: f64 = 0.000_5;

/// A false-data-injection pattern: what a tampered meter reports instead of the day `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attack {
    /// α·x, one α ~ U[0.1, 0.8] for the day.
    H1,
    /// 0 inside a random window of at least 4 hours.
    H2,
    /// γ_t·x_t, a fresh γ_t ~ U[0.1, 0.8] per interval.
    H3,
    /// γ_t·mean(x).
    H4,
    /// mean(x) throughout.
    H5,
    /// The day reversed.
    H6,
}

impl Attack {
    /// All six, in order.
    pub const ALL: [Self; 6] = [Self::H1, Self::H2, Self::H3, Self::H4, Self::H5, Self::H6];

    /// `h1` … `h6`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::H1 => "h1",
            Self::H2 => "h2",
            Self::H3 => "h3",
            Self::H4 => "h4",
            Self::H5 => "h5",
            Self::H6 => "h6",
        }
    }

    /// Replaces a complete day's values with what the tampered meter would report.
    pub fn inject(self, day: &mut [f64], rng: &mut Rng) {
        let n = day.len();
        let mean = day.iter().sum::<f64>() / n.max(1) as f64;
        match self {
            Self::H1 => {
                let alpha = rng.uniform(0.1, 0.8);
                day.iter_mut().for_each(|v| *v *= alpha);
            }
            Self::H2 => {
                // At least 4 hours of the day's slots (n/6), at most the whole day.
                let min = n.div_ceil(6).max(1);
                let len = min + rng.below(n - min + 1);
                let start = rng.below(n - len + 1);
                day[start..start + len].fill(0.0);
            }
            Self::H3 => day.iter_mut().for_each(|v| *v *= rng.uniform(0.1, 0.8)),
            Self::H4 => day
                .iter_mut()
                .for_each(|v| *v = rng.uniform(0.1, 0.8) * mean),
            Self::H5 => day.fill(mean),
            Self::H6 => day.reverse(),
        }
    }
}

/// Reference days on each side of a day that `meterflow detect` scores (the whole series known,
/// [`TheftConfig::offline`]). A theft that lasts weeks fills a ±28-day window with its own days,
/// and then its days look usual: on the shared SGSC data, the days of 28-day thefts of 12
/// patterns scored a per-day ROC-AUC of 0.72 against clean days with 28 days either side and
/// 0.85 with 84, those of 56-day thefts 0.48 and 0.78, while single stolen days (h1–h6) scored
/// 0.918 either way (docs/detection.md). 120 days gained 0.004–0.04 on the thefts and lost
/// 0.005 on single days.
pub const OFFLINE_WINDOW_DAYS: usize = 84;

/// Scoring settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TheftConfig {
    /// Reference days on each side of the scored day.
    pub window_days: usize,
    /// Fewer reference days than this: the day is not scored.
    pub min_reference_days: usize,
    /// A day with less than this share of its intervals measured is not scored.
    pub min_observed: f64,
    /// Fewest meters on a date for the peer correction of `low_energy`.
    pub min_peers: usize,
}

impl TheftConfig {
    /// The settings for scoring a whole series at once (`meterflow detect`): the defaults with
    /// [`OFFLINE_WINDOW_DAYS`] reference days on each side. The scan keeps the default window:
    /// it sees only the days before its latest one.
    pub fn offline() -> Self {
        Self {
            window_days: OFFLINE_WINDOW_DAYS,
            ..Self::default()
        }
    }
}

impl Default for TheftConfig {
    fn default() -> Self {
        Self {
            window_days: 28,
            min_reference_days: 7,
            min_observed: 0.5,
            min_peers: 5,
        }
    }
}

/// One scored meter-day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayScore {
    /// Index of the day in its [`MeterDays`].
    pub day: usize,
    /// Its local date.
    pub date: NaiveDate,
    /// Signed robust z-scores, positive = suspicious, in [`COMPONENTS`] order.
    pub components: [f64; COMPONENTS.len()],
    /// The pattern score (see [`combine`]); higher = more suspicious.
    pub pattern: f64,
    /// The isolation forest's score of the components (0 until [`score_fleet`] sets it).
    pub forest: f64,
    /// The day's final score: the pattern score, raised where the forest finds the day
    /// unusual among all meter-days ([`final_score`]).
    pub score: f64,
}

impl DayScore {
    /// The component that contributes most to the score.
    pub fn strongest(&self) -> &'static str {
        let mut best = 0;
        for k in 1..COMPONENTS.len() {
            if self.components[k] > self.components[best] {
                best = k;
            }
        }
        COMPONENTS[best]
    }
}

/// The root sum of squares of the components' suspicious sides.
pub fn combine(components: &[f64; COMPONENTS.len()]) -> f64 {
    components
        .iter()
        .map(|c| c.max(0.0).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// What one day looks like, before comparing it with its references.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    log_kwh: f64,
    log_base: f64,
    cv: f64,
    rough: f64,
    corr: f64,
    reversed_gain: f64,
    zero_run: f64,
    top_ties: f64,
}

/// Which of a meter's days a day is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum References {
    /// Up to [`TheftConfig::window_days`] days on each side: the offline view, where the days
    /// after a day are known too.
    #[default]
    Around,
    /// Up to [`TheftConfig::window_days`] days before it only: what a daily scan sees of its
    /// latest day. A day's score then never changes as later days arrive, so scores of
    /// consecutive days can be accumulated ([`super::sustained`]) and an offline evaluation of
    /// the accumulation is what a daily scan would have reported.
    Before,
}

/// Scores every day of a meter with enough data and enough references around it, against its
/// own history only ([`apply_peers`] then corrects for what all meters did that day).
pub fn score_meter(days: &MeterDays, config: &TheftConfig) -> Vec<DayScore> {
    score_meter_with(days, config, References::Around)
}

/// [`score_meter`] against the given [`References`].
pub fn score_meter_with(days: &MeterDays, config: &TheftConfig, mode: References) -> Vec<DayScore> {
    let n = days.len();
    let slots = days.slots;
    let (usable, filled) = prepare(days, config);
    let usable = &usable;
    let references = |i: usize| {
        let lo = i.saturating_sub(config.window_days);
        let hi = match mode {
            References::Around => (i + config.window_days + 1).min(n),
            References::Before => i,
        };
        (lo..hi).filter(move |&j| j != i && usable[j])
    };
    let mut stats = vec![Stats::default(); n];
    let mut profiles_ok = vec![false; n];
    for i in (0..n).filter(|&i| usable[i]) {
        let refs: Vec<usize> = references(i).collect();
        if refs.len() < config.min_reference_days {
            continue;
        }
        let profile = slot_medians_of(&filled, &refs, slots);
        stats[i] = day_stats(&filled[i], &profile);
        profiles_ok[i] = true;
    }
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    for i in (0..n).filter(|&i| profiles_ok[i]) {
        let refs: Vec<usize> = references(i).filter(|&j| profiles_ok[j]).collect();
        if refs.len() < config.min_reference_days {
            continue;
        }
        out.push(day_score(days, &stats, i, &refs, &mut scratch));
    }
    out
}

/// Which days have enough of their intervals measured to be scored (or to be references), and
/// every day with its missing intervals filled with the meter's median at that slot, so a gap
/// is neither a zero run nor a drop in energy.
fn prepare(days: &MeterDays, config: &TheftConfig) -> (Vec<bool>, Vec<Vec<f64>>) {
    let n = days.len();
    let slots = days.slots;
    let usable: Vec<bool> = (0..n)
        .map(|i| {
            let seen = days.day(i).iter().filter(|v| v.is_finite()).count();
            seen as f64 >= config.min_observed * slots as f64
        })
        .collect();
    let overall = slot_medians(days, (0..n).filter(|&i| usable[i]));
    let filled: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            days.day(i)
                .iter()
                .zip(&overall)
                .map(|(v, m)| if v.is_finite() { *v } else { *m })
                .collect()
        })
        .collect();
    (usable, filled)
}

/// Day `i` scored against the reference days `refs` (whose stats are known).
fn day_score(
    days: &MeterDays,
    stats: &[Stats],
    i: usize,
    refs: &[usize],
    scratch: &mut Vec<f64>,
) -> DayScore {
    let mut z = |get: fn(&Stats) -> f64, floor: f64| {
        scratch.clear();
        scratch.extend(refs.iter().map(|&j| get(&stats[j])));
        robust_z(get(&stats[i]), scratch, floor)
    };
    let mut c = [0.0; COMPONENTS.len()];
    c[LOW_ENERGY] = -z(|s| s.log_kwh, 0.05);
    c[LOW_BASE] = -z(|s| s.log_base, 0.05);
    c[FLAT] = -z(|s| s.cv, 0.05);
    c[ROUGH] = z(|s| s.rough, 0.05);
    // Roughness is measured relative to the day's level, so after weeks of an empty home
    // (references near zero, their spread tiny) an ordinary day looks extremely rough; but
    // a day using clearly more than usual is not under-reported by per-interval scaling,
    // which always lowers the day's energy.
    if c[LOW_ENERGY] < -ROUGH_ENERGY_GATE {
        c[ROUGH] = c[ROUGH].min(0.0);
    }
    c[SHAPE] = -z(|s| s.corr, 0.03);
    c[REVERSED] = z(|s| s.reversed_gain, 0.03);
    // Zero runs: hours beyond the longest run in the references within
    // ZERO_RUN_NEAR_DAYS of the day (all of them if none is), two points an hour (a 4-hour
    // window on a meter that never reads zero scores 8). The longest run is an extreme: over
    // the offline window's 168 days it is far longer than over a month's.
    let longest = |near_only: bool| {
        refs.iter()
            .filter(|&&j| !near_only || j.abs_diff(i) <= ZERO_RUN_NEAR_DAYS)
            .map(|&j| stats[j].zero_run)
            .reduce(f64::max)
    };
    let longest_ref = longest(true).or_else(|| longest(false)).unwrap_or(0.0);
    c[ZERO_RUN] = 2.0 * (stats[i].zero_run - longest_ref) * 24.0 / days.slots as f64;
    c[CLIPPED] = z(|s| s.top_ties, CLIPPED_FLOOR);
    DayScore {
        day: i,
        date: days.dates[i],
        components: c,
        pattern: combine(&c),
        forest: 0.0,
        score: combine(&c),
    }
}

/// A meter's days scored one at a time, in day order, each against reference days the caller
/// picks among the days before it: how [`super::sustained::track`] leaves the days of an open
/// alarm out of later days' references. Given the days `[i − window_days, i)` as day `i`'s
/// references, it scores exactly as [`score_meter_with`] with [`References::Before`].
pub struct DayScorer<'a> {
    days: &'a MeterDays,
    config: TheftConfig,
    usable: Vec<bool>,
    filled: Vec<Vec<f64>>,
    stats: Vec<Stats>,
    profiles_ok: Vec<bool>,
    scratch: Vec<f64>,
}

impl<'a> DayScorer<'a> {
    /// A scorer of `days` with `config` (`window_days` is the caller's business here).
    pub fn new(days: &'a MeterDays, config: &TheftConfig) -> Self {
        let (usable, filled) = prepare(days, config);
        let n = days.len();
        Self {
            days,
            config: *config,
            usable,
            filled,
            stats: vec![Stats::default(); n],
            profiles_ok: vec![false; n],
            scratch: Vec::new(),
        }
    }

    /// Scores day `i` against the days of `refs` before it that are usable (and, for the
    /// z-scores, were themselves given references); `None` when fewer than
    /// [`TheftConfig::min_reference_days`] remain, or the day is too incomplete. Every day
    /// named in `refs` must have been offered to `score` before (in day order).
    pub fn score(&mut self, i: usize, refs: &[usize]) -> Option<DayScore> {
        if !self.usable.get(i).copied().unwrap_or(false) {
            return None;
        }
        let min = self.config.min_reference_days;
        let mut refs: Vec<usize> = refs
            .iter()
            .copied()
            .filter(|&j| j < i && self.usable[j])
            .collect();
        if refs.len() < min {
            return None;
        }
        let profile = slot_medians_of(&self.filled, &refs, self.days.slots);
        self.stats[i] = day_stats(&self.filled[i], &profile);
        self.profiles_ok[i] = true;
        refs.retain(|&j| self.profiles_ok[j]);
        if refs.len() < min {
            return None;
        }
        Some(day_score(
            self.days,
            &self.stats,
            i,
            &refs,
            &mut self.scratch,
        ))
    }
}

/// Corrects `low_energy` for what every meter did on the same date (weather, holidays): the
/// date's median `low_energy` over the meters is subtracted where at least `min_peers` meters
/// were scored that day ([`peer_shifts`], [`apply_shift`]). Then re-combines the scores.
pub fn apply_peers(meters: &mut [Vec<DayScore>], min_peers: usize) {
    let shift = peer_shifts(meters, min_peers);
    for d in meters.iter_mut().flatten() {
        if let Some(s) = shift.get(&d.date) {
            apply_shift(d, *s);
        }
    }
}

/// Per date, the shift [`apply_peers`] subtracts from `low_energy`.
pub type PeerShifts = FxHashMap<NaiveDate, f64>;

/// Per date, the median `low_energy` of the meters scored that day, where there are at least
/// `min_peers` of them: what everyone's consumption did that day.
pub fn peer_shifts(meters: &[Vec<DayScore>], min_peers: usize) -> PeerShifts {
    let mut by_date: FxHashMap<NaiveDate, Vec<f64>> = FxHashMap::default();
    for d in meters.iter().flatten() {
        by_date
            .entry(d.date)
            .or_default()
            .push(d.components[LOW_ENERGY]);
    }
    by_date
        .into_iter()
        .filter(|(_, v)| v.len() >= min_peers)
        .map(|(date, mut v)| (date, median(&mut v)))
        .collect()
}

/// Subtracts a date's [`peer_shifts`] from a day's `low_energy` and re-combines its score.
pub fn apply_shift(d: &mut DayScore, shift: f64) {
    d.components[LOW_ENERGY] -= shift;
    d.pattern = combine(&d.components);
    d.score = d.pattern;
}

/// How much the forest's score adds: scores above 0.5 (isolated faster than average) raise the
/// pattern score in proportion.
pub const FOREST_WEIGHT: f64 = 10.0;

/// The final score of a day from its pattern and forest scores.
pub fn final_score(pattern: f64, forest: f64) -> f64 {
    pattern + FOREST_WEIGHT * (forest - 0.5).max(0.0)
}

/// Scores every meter-day of a fleet: each meter against its own history ([`score_meter`]),
/// corrected by its peers ([`apply_peers`]), then an isolation forest over all days' signed
/// components finds the days unusual among everyone's, and [`final_score`] combines both.
pub fn score_fleet(
    meters: &[MeterDays],
    config: &TheftConfig,
    forest: &ForestConfig,
) -> Vec<Vec<DayScore>> {
    score_fleet_with(meters, config, forest, References::Around)
}

/// [`score_fleet`] against the given [`References`].
pub fn score_fleet_with(
    meters: &[MeterDays],
    config: &TheftConfig,
    forest: &ForestConfig,
    mode: References,
) -> Vec<Vec<DayScore>> {
    let mut scored: Vec<Vec<DayScore>> = meters
        .iter()
        .map(|m| score_meter_with(m, config, mode))
        .collect();
    apply_peers(&mut scored, config.min_peers);
    let rows: Vec<f32> = scored
        .iter()
        .flatten()
        .flat_map(|d| d.components.iter().map(|&c| c as f32))
        .collect();
    if let Ok(model) = IsolationForest::fit(&rows, COMPONENTS.len(), forest) {
        if let Ok(scores) = model.score(&rows) {
            for (d, s) in scored.iter_mut().flatten().zip(scores) {
                d.forest = s;
                d.score = final_score(d.pattern, s);
            }
        }
    }
    scored
}

fn day_stats(x: &[f64], profile: &[f64]) -> Stats {
    let n = x.len() as f64;
    let kwh: f64 = x.iter().sum();
    let mean = kwh / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let rough = x.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (n - 1.0).max(1.0);
    let mut sorted = x.to_vec();
    let base = quantile(&mut sorted, 0.1);
    let mut run = 0usize;
    let mut longest = 0usize;
    for v in x {
        run = if *v <= ZERO_KWH { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let corr = pearson(x.iter().copied(), profile);
    let reversed = pearson(x.iter().rev().copied(), profile);
    // Small offsets keep logs and ratios finite on an all-zero day, which then scores as very
    // low, very flat: what it is.
    Stats {
        log_kwh: (kwh + 0.01).ln(),
        log_base: (base + 0.005).ln(),
        // Logs: a collapse towards 0 (a constant day) is then many MADs away, not a few.
        cv: (var.sqrt() / (mean + 1e-3) + 0.01).ln(),
        rough: (rough / (mean + 1e-3) + 0.01).ln(),
        corr,
        reversed_gain: reversed - corr,
        zero_run: longest as f64,
        top_ties: top_ties(x) as f64,
    }
}

/// How many intervals of the day are at its maximum, to within half a Wh (meters report to
/// 1 Wh); 0 on a day with nothing above zero. On the shared SGSC data 96.5% of complete days
/// have exactly one and 0.4% three or more, while capping a day at half its own peak leaves
/// three or more on three days in four (docs/detection.md).
fn top_ties(x: &[f64]) -> usize {
    let max = x.iter().copied().fold(0.0, f64::max);
    if max <= ZERO_KWH {
        return 0;
    }
    x.iter().filter(|v| **v >= max - ZERO_KWH).count()
}

/// Pearson correlation; 0 when either side is constant.
fn pearson(x: impl Iterator<Item = f64> + Clone, y: &[f64]) -> f64 {
    let n = y.len() as f64;
    let mx = x.clone().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx <= 1e-18 || syy <= 1e-18 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// (v − median) / (1.4826·MAD + floor) over `refs` (reordered).
fn robust_z(v: f64, refs: &mut [f64], floor: f64) -> f64 {
    let med = median(refs);
    for r in refs.iter_mut() {
        *r = (*r - med).abs();
    }
    let mad = median(refs);
    (v - med) / (1.4826 * mad + floor)
}

fn median(v: &mut [f64]) -> f64 {
    quantile(v, 0.5)
}

/// The `q` quantile (nearest rank) of `v`, reordering it; NaN for none.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    *v.select_nth_unstable_by(k, f64::total_cmp).1
}

/// Per-slot medians over the given days' measured values (0 where none).
fn slot_medians(days: &MeterDays, which: impl Iterator<Item = usize> + Clone) -> Vec<f64> {
    let mut column = Vec::new();
    (0..days.slots)
        .map(|k| {
            column.clear();
            column.extend(
                which
                    .clone()
                    .map(|i| days.day(i)[k])
                    .filter(|v| v.is_finite()),
            );
            if column.is_empty() {
                0.0
            } else {
                median(&mut column)
            }
        })
        .collect()
}

/// Per-slot medians over the given (filled) days.
fn slot_medians_of(filled: &[Vec<f64>], which: &[usize], slots: usize) -> Vec<f64> {
    let mut column = Vec::with_capacity(which.len());
    (0..slots)
        .map(|k| {
            column.clear();
            column.extend(which.iter().map(|&i| filled[i][k]));
            median(&mut column)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::types::MeterId;

    /// `days` half-hourly days of a household: low nights, a morning and an evening peak, and
    /// ±20% noise per interval and ±15% per day.
    fn household(days: usize, seed: u64) -> MeterDays {
        let mut rng = Rng::new(seed);
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let mut values = Vec::new();
        for _ in 0..days {
            let level = rng.uniform(0.85, 1.15);
            for k in 0..48 {
                let h = k as f64 / 2.0;
                let shape = 0.15
                    + 0.5 * (-((h - 7.5) / 1.5f64).powi(2)).exp()
                    + 1.0 * (-((h - 19.0) / 2.0f64).powi(2)).exp();
                values.push(level * shape * rng.uniform(0.8, 1.2));
            }
        }
        MeterDays {
            meter_id: MeterId::parse("m1").unwrap(),
            slots: 48,
            dates: (0..days)
                .map(|i| start + chrono::Days::new(i as u64))
                .collect(),
            values,
        }
    }

    /// How many of the other days score at least as high as day `i`.
    fn rank_of(scores: &[DayScore], i: usize) -> usize {
        let s = scores.iter().find(|d| d.day == i).unwrap().score;
        scores.iter().filter(|d| d.day != i && d.score >= s).count()
    }

    #[test]
    fn every_injected_pattern_makes_its_day_the_most_suspicious_of_the_meter() {
        for (n, attack) in Attack::ALL.into_iter().enumerate() {
            let mut days = household(60, 1);
            let mut rng = Rng::new(n as u64);
            if attack == Attack::H1 {
                // α near 0.8 is within a household's own day-to-day spread; 0.4 is not.
                days.day_mut(30).iter_mut().for_each(|v| *v *= 0.4);
            } else {
                attack.inject(days.day_mut(30), &mut rng);
            }
            let scores = score_meter(&days, &TheftConfig::default());
            assert_eq!(rank_of(&scores, 30), 0, "{}", attack.as_str());
        }
    }

    /// Caps every interval of `day` at `share` of the day's own peak.
    pub(crate) fn cap_at(day: &mut [f64], share: f64) {
        let cap = share * day.iter().copied().fold(0.0, f64::max);
        day.iter_mut().for_each(|v| *v = v.min(cap));
    }

    #[test]
    fn a_day_capped_below_its_peak_is_the_most_suspicious_of_the_meter_and_says_clipped() {
        for share in [0.4, 0.6] {
            let mut days = household(60, 1);
            cap_at(days.day_mut(30), share);
            let scores = score_meter(&days, &TheftConfig::default());
            assert_eq!(rank_of(&scores, 30), 0, "capped at {share}");
            let capped = scores.iter().find(|d| d.day == 30).unwrap();
            assert_eq!(capped.strongest(), "clipped", "{capped:?}");
            // An ordinary day peaks once: nothing to see.
            assert!(scores
                .iter()
                .filter(|d| d.day != 30)
                .all(|d| d.components[CLIPPED] <= 0.0));
        }
    }

    #[test]
    fn a_month_long_halving_stands_out_against_the_offline_window_and_not_against_28_days() {
        let mut days = household(240, 6);
        for d in 100..128 {
            days.day_mut(d).iter_mut().for_each(|v| *v *= 0.5);
        }
        // The median score of the stolen days, and the 95th percentile of the clean ones.
        let figures = |config: &TheftConfig| {
            let scores = score_meter(&days, config);
            let mut stolen: Vec<f64> = scores
                .iter()
                .filter(|d| (100..128).contains(&d.day))
                .map(|d| d.score)
                .collect();
            let mut clean: Vec<f64> = scores
                .iter()
                .filter(|d| !(100..128).contains(&d.day))
                .map(|d| d.score)
                .collect();
            (median(&mut stolen), quantile(&mut clean, 0.95))
        };
        // Against ±84 days most references are from before and after the theft: the stolen
        // days score far above the clean ones (5.1 against 1.4 here).
        let (stolen, clean) = figures(&TheftConfig::offline());
        assert!(stolen > 3.0 * clean, "offline: {stolen} vs {clean}");
        // Against ±28 days a stolen day mid-theft has mostly stolen days as references: it
        // barely stands out (1.9 against 1.6).
        let (stolen, clean) = figures(&TheftConfig::default());
        assert!(stolen < 2.0 * clean, "28 days: {stolen} vs {clean}");
    }

    #[test]
    fn a_zero_window_is_compared_with_the_zero_runs_of_its_month_not_of_the_whole_window() {
        let mut days = household(240, 8);
        // An 8-hour outage two months earlier, then a 5-hour zero window (h2-like).
        days.day_mut(60)[10..26].fill(0.0);
        days.day_mut(120)[30..40].fill(0.0);
        let scores = score_meter(&days, &TheftConfig::offline());
        let window = scores.iter().find(|d| d.day == 120).unwrap();
        // Five hours beyond none, two points an hour.
        assert!(
            (window.components[ZERO_RUN] - 10.0).abs() < 1e-9,
            "{window:?}"
        );
        let outage = scores.iter().find(|d| d.day == 60).unwrap();
        assert!(
            (outage.components[ZERO_RUN] - 16.0).abs() < 1e-9,
            "{outage:?}"
        );
    }

    #[test]
    fn ties_at_the_maximum_are_counted_to_the_wh() {
        assert_eq!(top_ties(&[0.1, 0.5, 0.5, 0.2]), 2);
        assert_eq!(top_ties(&[0.1, 0.5, 0.4996, 0.2]), 2);
        assert_eq!(top_ties(&[0.1, 0.5, 0.499, 0.2]), 1);
        assert_eq!(top_ties(&[0.0, 0.0, 0.0002]), 0);
    }

    #[test]
    fn a_normal_day_after_weeks_of_an_empty_home_is_not_rough() {
        // 40 days of a home nearly empty (a fridge: 1% of its load, flat), then its usual days.
        let mut days = household(50, 3);
        for d in 0..40 {
            days.day_mut(d)
                .iter_mut()
                .for_each(|v| *v = 0.01 + 0.0005 * (*v).min(1.0));
        }
        let scores = score_meter(&days, &TheftConfig::default());
        let back = scores.iter().find(|d| d.day == 40).unwrap();
        assert!(back.components[LOW_ENERGY] < -ROUGH_ENERGY_GATE, "{back:?}");
        assert!(back.components[ROUGH] <= 0.0, "{back:?}");
        assert!(back.score < 3.0, "{back:?}");
        // An h3 day on an ordinary meter still counts as rough.
        let mut days = household(60, 1);
        Attack::H3.inject(days.day_mut(30), &mut Rng::new(4));
        let scores = score_meter(&days, &TheftConfig::default());
        let h3 = scores.iter().find(|d| d.day == 30).unwrap();
        assert!(h3.components[ROUGH] > 3.0, "{h3:?}");
    }

    #[test]
    fn the_injections_do_what_the_literature_says() {
        let days = household(1, 2);
        let x = days.day(0).to_vec();
        let mean = x.iter().sum::<f64>() / 48.0;
        let mut rng = Rng::new(5);
        let mut apply = |a: Attack| {
            let mut d = x.clone();
            a.inject(&mut d, &mut rng);
            d
        };
        let h1 = apply(Attack::H1);
        let alpha = h1[0] / x[0];
        assert!((0.1..0.8).contains(&alpha));
        assert!(h1.iter().zip(&x).all(|(a, b)| (a / b - alpha).abs() < 1e-9));
        let h2 = apply(Attack::H2);
        assert!(h2.iter().filter(|v| **v == 0.0).count() >= 8);
        let h3 = apply(Attack::H3);
        assert!(h3
            .iter()
            .zip(&x)
            .all(|(a, b)| (0.1..0.8).contains(&(a / b))));
        let h4 = apply(Attack::H4);
        assert!(h4.iter().all(|v| (0.1 * mean..0.8 * mean).contains(v)));
        assert!(apply(Attack::H5).iter().all(|v| (v - mean).abs() < 1e-12));
        let h6 = apply(Attack::H6);
        assert_eq!(h6[0], x[47]);
        assert_eq!(h6[47], x[0]);
    }

    #[test]
    fn a_drop_every_meter_shares_on_a_date_is_not_counted_as_theft() {
        let mut fleet: Vec<MeterDays> = (0..6).map(|s| household(60, 10 + s)).collect();
        for m in &mut fleet {
            m.day_mut(30).iter_mut().for_each(|v| *v *= 0.5);
        }
        let mut scored: Vec<Vec<DayScore>> = fleet
            .iter()
            .map(|m| score_meter(m, &TheftConfig::default()))
            .collect();
        let before = scored[0].iter().find(|d| d.day == 30).unwrap().components[LOW_ENERGY];
        apply_peers(&mut scored, 5);
        let after = scored[0].iter().find(|d| d.day == 30).unwrap().components[LOW_ENERGY];
        assert!(before > 3.0, "{before}");
        assert!(after.abs() < 1.0, "{after}");
    }

    #[test]
    fn fleet_scores_are_reproducible_with_a_seed() {
        let fleet: Vec<MeterDays> = (0..3).map(|s| household(30, s)).collect();
        let config = ForestConfig {
            seed: 3,
            ..ForestConfig::default()
        };
        let a = score_fleet(&fleet, &TheftConfig::default(), &config);
        let b = score_fleet(&fleet, &TheftConfig::default(), &config);
        assert_eq!(a, b);
        assert!(a
            .iter()
            .flatten()
            .all(|d| d.forest > 0.0 && d.score >= d.pattern));
    }
}
