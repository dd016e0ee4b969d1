//! Outages and restorations on one feeder window.
//!
//! A meter is *out* at the scan time when it has been silent for more than
//! [`OutageConfig::silent_intervals`] of its own intervals (no reading since), or when its
//! latest readings report no voltage (below [`OutageConfig::voltage_present_v`]). Then:
//!
//! - [`FindingKind::MeterOutage`]: a consumer is out while its feeder has supply: the feeder
//!   meter's latest reading is recent and shows voltage or, when the feeder meter itself is
//!   silent (a communication loss tells nothing about supply), another consumer under it is
//!   still live. That places the fault between the transformer and the consumer (service cable,
//!   fuse, the meter itself).
//! - [`FindingKind::FeederOutage`] (on the feeder's meter id): the feeder meter itself reports
//!   no voltage, or at least [`OutageConfig::feeder_share`] and at least
//!   [`OutageConfig::feeder_min_meters`] of its consumers are out. The consumers' own outages
//!   are then not reported one by one: the feeder explains them.
//! - [`FindingKind::Restoration`]: a meter that was out earlier in the window (a silence longer
//!   than the threshold between two readings, or readings without voltage) and is live at the
//!   scan time; the evidence window is the last such outage. On the feeder's meter id when the
//!   feeder was out (its meter without voltage, or the required share of its consumers out
//!   together) and is not any more; consumers that came back with it are then not restored one
//!   by one. For the feeder meter itself only readings without voltage count: a feeder meter's
//!   silence is a communication loss, not an outage.
//!
//! Consumers with no feeder (`window.feeder == None`) can only be judged against the scan time:
//! silent or without voltage, they are reported as [`FindingKind::MeterOutage`] with no
//! confirmation that supply is present nearby (the explanation says so), and no feeder outage
//! can be concluded for them. Silence before a meter's first reading in the window is not an
//! outage (the window may simply start there), and a meter with no reading at all is not judged:
//! it may never have reported. The scan therefore hands this detector the whole history window.
//!
//! Score: hours out (to the scan time for outages, to the restoring reading for restorations).

use super::finding::{FeederWindow, Finding, FindingKind, MeterWindow};
use super::sampling::{hours, interval_ms};
use crate::types::{Reading, Timestamp};

/// Outage settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutageConfig {
    /// A meter with no reading for more than this many of its intervals before the scan time
    /// is silent (4: an hour at 15 minutes; a message or two lost is not an outage).
    pub silent_intervals: i64,
    /// Voltage below which a reading shows no supply, V (half the nominal voltage: far below
    /// any sag a customer still has supply through, far above the 0 V a dead meter reports).
    pub voltage_present_v: f64,
    /// Share of a feeder's consumers that must be out for a feeder outage (0.5).
    pub feeder_share: f64,
    /// …and at least this many of them (3), so two silent homes on a small feeder are two
    /// meter outages, not a feeder outage.
    pub feeder_min_meters: usize,
    /// Interval assumed for a meter with fewer than two readings in the window, ms (15 min).
    pub default_interval_ms: i64,
}

impl OutageConfig {
    /// Defaults for a grid of `nominal_v` volts.
    pub fn for_nominal(nominal_v: f64) -> Self {
        Self {
            silent_intervals: 4,
            voltage_present_v: 0.5 * nominal_v,
            feeder_share: 0.5,
            feeder_min_meters: 3,
            default_interval_ms: 900_000,
        }
    }
}

impl Default for OutageConfig {
    /// Defaults for a 230 V grid.
    fn default() -> Self {
        Self::for_nominal(230.0)
    }
}

/// How a meter is out at the scan time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Out {
    /// End of the first interval without supply (or without a reading).
    since: Timestamp,
    /// Silent (rather than reporting no voltage).
    silent: bool,
}

/// One meter's readings up to the scan time, with its interval.
struct Meter<'a> {
    window: &'a MeterWindow,
    readings: &'a [Reading],
    interval_ms: i64,
}

impl<'a> Meter<'a> {
    fn new(window: &'a MeterWindow, to: Timestamp, config: &OutageConfig) -> Self {
        // A reading stamped after the scan time (a clock running ahead) is not evidence yet.
        let end = window.readings.partition_point(|r| r.ts <= to);
        let readings = &window.readings[..end];
        Self {
            window,
            readings,
            interval_ms: interval_ms(readings, config.default_interval_ms),
        }
    }

    fn silence_ms(&self, config: &OutageConfig) -> i64 {
        config.silent_intervals.saturating_mul(self.interval_ms)
    }

    /// Whether the meter is out at `to`; `silence_counts` is false for a feeder meter.
    fn out_at(&self, to: Timestamp, config: &OutageConfig, silence_counts: bool) -> Option<Out> {
        let r = self.readings;
        let silence = self.silence_ms(config);
        // A meter with no reading in the window is not judged: it may never have reported (a
        // meter just registered, a stack just started), and silence means stopping. The scan
        // hands this detector the whole history window, so a meter that stopped within it
        // still has its last reading here.
        let last = r.last()?;
        let silent = silence_counts && to.millis() - last.ts.millis() > silence;
        // The trailing run of readings without voltage, and a silence just before it (a meter
        // that reports 0 V on coming back online was out since it fell silent).
        let first_dead = r.len() - r.iter().rev().take_while(|x| !live(x, config)).count();
        if first_dead < r.len() {
            let since = match first_dead.checked_sub(1).map(|p| &r[p]) {
                Some(before)
                    if silence_counts
                        && r[first_dead].ts.millis() - before.ts.millis() > silence =>
                {
                    before.ts.add_millis(self.interval_ms)
                }
                _ => r[first_dead].ts,
            };
            return Some(Out { since, silent });
        }
        silent.then(|| Out {
            since: last.ts.add_millis(self.interval_ms),
            silent: true,
        })
    }

    /// The outages that ended in the window, in time order: (end of the first interval without
    /// supply, the reading that showed supply again).
    fn restored(&self, config: &OutageConfig, silence_counts: bool) -> Vec<(Timestamp, Timestamp)> {
        let silence = self.silence_ms(config);
        let mut start: Option<Timestamp> = None;
        let mut out = Vec::new();
        for (i, x) in self.readings.iter().enumerate() {
            if let (None, Some(prev)) = (start, i.checked_sub(1).map(|p| &self.readings[p])) {
                if silence_counts && x.ts.millis() - prev.ts.millis() > silence {
                    start = Some(prev.ts.add_millis(self.interval_ms));
                }
            }
            if live(x, config) {
                if let Some(s) = start.take() {
                    out.push((s, x.ts));
                }
            } else if start.is_none() {
                start = Some(x.ts);
            }
        }
        out
    }
}

/// The spans in which at least `required` of the consumers were out, from their outages
/// (start, end), in time order. Outages still open are passed with an end at the end of time,
/// so a span still open ends there too.
fn feeder_wide(
    episodes: &[(Timestamp, Timestamp)],
    required: usize,
) -> Vec<(Timestamp, Timestamp)> {
    // +1 where an outage starts, −1 where it ends; at equal times ends first, so an outage
    // ending as another starts is not counted twice.
    let mut events: Vec<(Timestamp, i32)> = episodes
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    events.sort_unstable();
    let (mut count, mut start, mut spans) = (0i32, None, Vec::new());
    for (t, d) in events {
        count += d;
        let wide = count >= 0 && count as usize >= required;
        match (start, wide) {
            (None, true) => start = Some(t),
            (Some(s), false) => {
                spans.push((s, t));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, Timestamp::from_millis(i64::MAX)));
    }
    spans
}

/// A reading shows supply: voltage present, or not measured (a meter that reports no voltage
/// is judged by its silence alone).
fn live(r: &Reading, config: &OutageConfig) -> bool {
    r.voltage_v.is_none_or(|v| v >= config.voltage_present_v)
}

fn finding(
    meter: &MeterWindow,
    kind: FindingKind,
    from: Timestamp,
    to: Timestamp,
    explanation: String,
) -> Finding {
    Finding {
        meter_id: meter.info.meter_id.clone(),
        kind,
        score: hours(to.millis() - from.millis()).max(0.0),
        from,
        to,
        explanation,
    }
}

fn what(out: &Out) -> &'static str {
    if out.silent {
        "silent"
    } else {
        "without voltage"
    }
}

/// Outages of the feeder and its consumers at the scan time `window.to`, and restorations
/// within the window.
pub fn detect(window: &FeederWindow, config: &OutageConfig) -> Vec<Finding> {
    let to = window.to;
    let consumers: Vec<Meter> = window
        .consumers
        .iter()
        .map(|m| Meter::new(m, to, config))
        .collect();
    let outs: Vec<Option<Out>> = consumers
        .iter()
        .map(|m| m.out_at(to, config, true))
        .collect();
    let mut out = Vec::new();
    let restored: Vec<Vec<(Timestamp, Timestamp)>> =
        consumers.iter().map(|m| m.restored(config, true)).collect();
    let n = consumers.len();
    let required = ((config.feeder_share * n as f64).ceil() as usize)
        .max(config.feeder_min_meters)
        .max(1);
    // Feeder-wide outages seen in the consumers (only where there is a feeder to report on).
    let wide = if window.feeder.is_some() {
        let mut episodes: Vec<(Timestamp, Timestamp)> =
            restored.iter().flatten().copied().collect();
        episodes.extend(
            outs.iter()
                .flatten()
                .map(|o| (o.since, Timestamp::from_millis(i64::MAX))),
        );
        feeder_wide(&episodes, required)
    } else {
        Vec::new()
    };
    for ((m, o), episodes) in consumers.iter().zip(&outs).zip(&restored) {
        let Some(&(s, back)) = episodes.last().filter(|_| o.is_none()) else {
            continue;
        };
        // A consumer back with the rest of its feeder: the feeder's restoration says it.
        if wide.iter().any(|&(ws, we)| s < we && ws < back) {
            continue;
        }
        out.push(finding(
            m.window,
            FindingKind::Restoration,
            s,
            back,
            format!(
                "supply back at {back} after {:.1} h out (from {s})",
                hours(back.millis() - s.millis())
            ),
        ));
    }
    let Some(feeder_window) = &window.feeder else {
        for (m, o) in consumers.iter().zip(&outs) {
            if let Some(o) = o {
                out.push(finding(
                    m.window,
                    FindingKind::MeterOutage,
                    o.since,
                    to,
                    format!(
                        "{} since {}; the meter has no feeder, so supply nearby is unconfirmed \
                         (may be a wider outage)",
                        what(o),
                        o.since
                    ),
                ));
            }
        }
        return out;
    };
    let feeder = Meter::new(feeder_window, to, config);
    let feeder_out = feeder.out_at(to, config, false);
    let mut since: Vec<Timestamp> = outs.iter().flatten().map(|o| o.since).collect();
    since.sort_unstable();
    // The outage of the feeder dates from when the required number of consumers were out.
    let by_share = (since.len() >= required).then(|| since[required - 1]);
    if feeder_out.is_none() && by_share.is_none() {
        // The feeder's last outage that is over: its meter without voltage, or most of its
        // consumers out together, whichever ended last.
        let by_voltage = feeder.restored(config, false).last().copied();
        let by_consumers = wide.last().copied().filter(|&(_, e)| e <= to);
        let last = match (by_voltage, by_consumers) {
            (Some(a), Some(b)) => Some(if b.1 > a.1 { b } else { a }),
            (a, b) => a.or(b),
        };
        if let Some((s, back)) = last {
            let how = if by_consumers == Some((s, back)) {
                "consumers"
            } else {
                "feeder voltage"
            };
            out.push(finding(
                feeder_window,
                FindingKind::Restoration,
                s,
                back,
                format!(
                    "{how} back at {back} after {:.1} h of feeder outage (from {s})",
                    hours(back.millis() - s.millis())
                ),
            ));
        }
    }
    if feeder_out.is_some() || by_share.is_some() {
        let start = match (feeder_out.map(|o| o.since), by_share) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => to,
        };
        let voltage = if feeder_out.is_some() {
            "feeder meter without voltage; "
        } else {
            ""
        };
        out.push(finding(
            feeder_window,
            FindingKind::FeederOutage,
            start,
            to,
            format!(
                "{voltage}{} of {n} consumers silent or without voltage, since {start}",
                since.len()
            ),
        ));
        return out;
    }
    let feeder_recent = feeder
        .readings
        .last()
        .is_some_and(|r| to.millis() - r.ts.millis() <= feeder.silence_ms(config));
    let supply = if feeder_recent {
        "feeder meter shows voltage".to_owned()
    } else {
        // The feeder meter is silent: a consumer still live shows the feeder has supply.
        match outs.iter().filter(|o| o.is_none()).count() {
            0 => return out,
            live => format!("feeder meter silent but {live} of {n} consumers live"),
        }
    };
    for (m, o) in consumers.iter().zip(&outs) {
        if let Some(o) = o {
            out.push(finding(
                m.window,
                FindingKind::MeterOutage,
                o.since,
                to,
                format!(
                    "{} since {} while feeder {} has supply ({supply}): fault between \
                     transformer and consumer",
                    what(o),
                    o.since,
                    feeder_window.info.meter_id
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sampling::test_support::*;
    use super::*;

    /// A feeder with `n` consumers, all reading every quarter-hour for `len` intervals.
    fn healthy(n: usize, len: usize) -> FeederWindow {
        FeederWindow {
            feeder: Some(feeder("f-1", series("f-1", len, |_| 5.0))),
            consumers: (0..n)
                .map(|k| consumer(&format!("c-{k}"), series(&format!("c-{k}"), len, |_| 0.2)))
                .collect(),
            from: at(0),
            to: at(len as i64),
        }
    }

    fn kinds_of(findings: &[Finding]) -> Vec<(String, FindingKind)> {
        findings
            .iter()
            .map(|f| (f.meter_id.to_string(), f.kind))
            .collect()
    }

    fn run(w: &FeederWindow) -> Vec<Finding> {
        detect(w, &OutageConfig::default())
    }

    #[test]
    fn a_healthy_feeder_has_no_findings() {
        assert!(run(&healthy(10, 96)).is_empty());
    }

    #[test]
    fn a_few_lost_messages_are_not_an_outage() {
        let mut w = healthy(10, 96);
        // Three readings lost mid-window, and the last three before the scan not in yet.
        w.consumers[2].readings.drain(40..43);
        w.consumers[3].readings.truncate(93);
        assert!(run(&w).is_empty());
    }

    #[test]
    fn a_silent_consumer_under_a_live_feeder_is_a_meter_outage() {
        let mut w = healthy(10, 96);
        // Silent for the last two hours.
        w.consumers[4].readings.truncate(88);
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("c-4".into(), FindingKind::MeterOutage)]);
        assert_eq!(f[0].from, at(89));
        assert_eq!(f[0].to, at(96));
        assert!((f[0].score - 1.75).abs() < 1e-9);
        assert!(f[0].explanation.contains("silent"));
    }

    #[test]
    fn a_consumer_at_zero_volts_under_a_live_feeder_is_a_meter_outage() {
        let mut w = healthy(10, 96);
        for r in &mut w.consumers[1].readings[90..] {
            r.voltage_v = Some(0.0);
        }
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("c-1".into(), FindingKind::MeterOutage)]);
        assert_eq!(f[0].from, at(91));
        assert!(f[0].explanation.contains("without voltage"));
    }

    #[test]
    fn a_deep_sag_is_not_an_outage() {
        let mut w = healthy(10, 96);
        for r in &mut w.consumers[1].readings[90..] {
            r.voltage_v = Some(185.0);
        }
        assert!(run(&w).is_empty());
    }

    #[test]
    fn most_of_a_feeder_silent_is_one_feeder_outage_not_many_meter_outages() {
        let mut w = healthy(10, 96);
        for (k, c) in w.consumers.iter_mut().enumerate().take(6) {
            c.readings.truncate(80 + k);
        }
        let f = run(&w);
        assert_eq!(
            kinds_of(&f),
            vec![("f-1".into(), FindingKind::FeederOutage)]
        );
        // The fifth consumer to go silent (the required half of ten) fell silent after 84.
        assert_eq!(f[0].from, at(85));
        assert!(f[0].explanation.contains("6 of 10"));
    }

    #[test]
    fn two_silent_homes_on_a_small_feeder_are_meter_outages() {
        let mut w = healthy(4, 96);
        w.consumers[0].readings.truncate(80);
        w.consumers[1].readings.truncate(80);
        let kinds: Vec<FindingKind> = run(&w).iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![FindingKind::MeterOutage, FindingKind::MeterOutage]
        );
    }

    #[test]
    fn the_feeder_meter_at_zero_volts_is_a_feeder_outage() {
        let mut w = healthy(10, 96);
        if let Some(f) = &mut w.feeder {
            for r in &mut f.readings[92..] {
                r.voltage_v = Some(0.0);
            }
        }
        let f = run(&w);
        assert_eq!(
            kinds_of(&f),
            vec![("f-1".into(), FindingKind::FeederOutage)]
        );
        assert_eq!(f[0].from, at(93));
    }

    #[test]
    fn a_silent_feeder_meter_alone_is_not_an_outage() {
        let mut w = healthy(10, 96);
        if let Some(f) = &mut w.feeder {
            f.readings.truncate(50);
        }
        assert!(run(&w).is_empty());
    }

    #[test]
    fn with_the_feeder_meter_silent_live_neighbours_confirm_supply() {
        let mut w = healthy(10, 96);
        if let Some(f) = &mut w.feeder {
            f.readings.truncate(50);
        }
        w.consumers[7].readings.truncate(60);
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("c-7".into(), FindingKind::MeterOutage)]);
        assert!(f[0].explanation.contains("9 of 10 consumers live"));
    }

    #[test]
    fn a_meter_back_after_silence_is_a_restoration_with_the_outage_window() {
        let mut w = healthy(10, 96);
        // Out from the interval ending at 41 to the one ending at 60, back since.
        w.consumers[3].readings.drain(40..59);
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("c-3".into(), FindingKind::Restoration)]);
        assert_eq!((f[0].from, f[0].to), (at(41), at(60)));
        assert!((f[0].score - 4.75).abs() < 1e-9);
    }

    #[test]
    fn a_meter_reporting_zero_volts_on_its_way_back_is_restored_from_its_silence() {
        let mut w = healthy(10, 96);
        w.consumers[3].readings.drain(40..59);
        w.consumers[3].readings[40].voltage_v = Some(0.0);
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("c-3".into(), FindingKind::Restoration)]);
        assert_eq!((f[0].from, f[0].to), (at(41), at(61)));
    }

    #[test]
    fn a_meter_still_at_zero_volts_after_its_silence_is_out_since_the_silence() {
        let mut w = healthy(10, 96);
        w.consumers[3].readings.drain(80..95);
        w.consumers[3].readings[80].voltage_v = Some(0.0);
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("c-3".into(), FindingKind::MeterOutage)]);
        assert_eq!(f[0].from, at(81));
    }

    #[test]
    fn a_feeder_wide_outage_that_is_over_is_one_feeder_restoration() {
        let mut w = healthy(10, 96);
        // Six of ten consumers silent together for a few hours mid-window, one of them from
        // earlier and back later.
        for (k, c) in w.consumers.iter_mut().enumerate().take(6) {
            let (a, b) = if k == 0 { (30, 70) } else { (40, 60) };
            c.readings.drain(a..b);
        }
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("f-1".into(), FindingKind::Restoration)]);
        // Wide from the fifth consumer out (all five at 41) to the second back (at 61): below
        // half again.
        assert_eq!((f[0].from, f[0].to), (at(41), at(61)));
        assert!(f[0].explanation.starts_with("consumers back"));
    }

    #[test]
    fn a_consumer_out_alone_before_a_feeder_outage_keeps_its_own_restoration() {
        let mut w = healthy(10, 96);
        for c in w.consumers.iter_mut().take(6) {
            c.readings.drain(40..60);
        }
        w.consumers[8].readings.drain(5..20);
        let mut f = run(&w);
        f.sort_by(|a, b| a.meter_id.cmp(&b.meter_id));
        assert_eq!(
            kinds_of(&f),
            vec![
                ("c-8".into(), FindingKind::Restoration),
                ("f-1".into(), FindingKind::Restoration)
            ]
        );
    }

    #[test]
    fn the_feeder_meter_back_from_zero_volts_is_a_feeder_restoration() {
        let mut w = healthy(10, 96);
        if let Some(f) = &mut w.feeder {
            for r in &mut f.readings[30..38] {
                r.voltage_v = Some(0.0);
            }
        }
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("f-1".into(), FindingKind::Restoration)]);
        assert_eq!((f[0].from, f[0].to), (at(31), at(39)));
    }

    #[test]
    fn consumers_without_a_feeder_are_judged_against_the_scan_time_only() {
        let mut w = healthy(3, 96);
        w.feeder = None;
        for c in &mut w.consumers {
            c.readings.truncate(70);
        }
        let f = run(&w);
        assert_eq!(f.len(), 3);
        assert!(f
            .iter()
            .all(|f| f.kind == FindingKind::MeterOutage && f.explanation.contains("unconfirmed")));
    }

    #[test]
    fn readings_stamped_after_the_scan_time_are_ignored() {
        let mut w = healthy(10, 96);
        w.to = at(90);
        w.consumers[5].readings.truncate(80);
        let mut late = w.consumers[5].readings[79].clone();
        late.ts = at(200);
        w.consumers[5].readings.push(late);
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("c-5".into(), FindingKind::MeterOutage)]);
    }

    #[test]
    fn a_meter_that_never_reported_is_not_judged_but_one_that_stopped_long_ago_is() {
        // No reading at all: a meter just registered, or a stack just started. Not an outage.
        let mut w = healthy(10, 96);
        w.consumers[9].readings.clear();
        assert!(run(&w).is_empty(), "{:?}", kinds_of(&run(&w)));
        // Readings that stop early in a long window: out since the interval after the last.
        let mut w = healthy(10, 96);
        w.consumers[9].readings.truncate(10);
        let f = run(&w);
        assert_eq!(kinds_of(&f), vec![("c-9".into(), FindingKind::MeterOutage)]);
        assert_eq!(f[0].from, at(11));
    }
}
