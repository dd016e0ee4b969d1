//! De-duplication of findings across scans: the stored form of a finding ([`StoredFinding`]) and
//! the pure decision ([`reconcile`]) of what one scan changes in the store.
//!
//! A condition that persists (a stuck register, a feeder losing energy) is *one* open finding
//! for as long as scans keep seeing it, not one per scan: each scan that sees it again updates
//! its `last_seen`, score and evidence window; the first scan that no longer sees it closes it,
//! except for the statistical kinds that stay open for a while unseen
//! ([`FindingKind::open_while_unseen_ms`]), so that one dip under a threshold is not a close
//! and a new alert.
//! Instant kinds ([`FindingKind::is_instant`]: a restoration) are one finding per evidence
//! window, however many scans report that window.
//!
//! Ids are deterministic: `{kind}:{opened_at}` (the scan time that opened it, 15-digit epoch
//! ms) for a persisting condition, `{kind}:{evidence start}` for an instant one. A retried scan
//! (same scan time, same readings) therefore writes the same items again, whether its first
//! attempt wrote all, some or none of them, and never opens a second finding.

use std::collections::BTreeMap;
use std::fmt;

use super::finding::{Finding, FindingKind};
use crate::types::{MeterId, Timestamp};

/// Whether a stored finding is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingStatus {
    /// The latest scan of the meter still saw it.
    Open,
    /// A later scan no longer saw it.
    Closed,
}

impl FindingStatus {
    /// The stable name (`open` / `closed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

impl fmt::Display for FindingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finding as the store keeps it: one per condition, across scans.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFinding {
    /// Unique within the meter, deterministic (see the module docs).
    pub id: String,
    /// The meter (for feeder-level kinds, the feeder's own meter).
    pub meter_id: MeterId,
    /// What was found.
    pub kind: FindingKind,
    /// Open or closed.
    pub status: FindingStatus,
    /// The scan time that opened it.
    pub opened_at: Timestamp,
    /// The latest scan time that saw it.
    pub last_seen: Timestamp,
    /// The scan time that closed it (`None` while open).
    pub closed_at: Option<Timestamp>,
    /// The latest score (unit named in the explanation).
    pub score: f64,
    /// Start of the evidence window seen so far.
    pub from: Timestamp,
    /// End of the evidence window seen so far.
    pub to: Timestamp,
    /// The latest one-line explanation.
    pub explanation: String,
}

impl StoredFinding {
    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        self.status == FindingStatus::Open
    }
}

/// The id a finding of `kind` opened by the scan at `opened_at` with evidence from `from` gets.
pub fn finding_id(kind: FindingKind, opened_at: Timestamp, from: Timestamp) -> String {
    // Instant kinds are keyed by their evidence, so every scan that sees the same window names
    // the same finding; conditions by the scan that opened them, so a condition that closes and
    // comes back later is a new finding rather than a rewrite of the closed one.
    let at = if kind.is_instant() { from } else { opened_at };
    format!("{}:{:015}", kind.as_str(), at.millis().max(0))
}

/// What one scan changes in the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconciled {
    /// New findings: the ones to announce (the alerts function's input).
    pub opened: Vec<StoredFinding>,
    /// Open findings seen again: `last_seen`, score, window and explanation refreshed.
    pub updated: Vec<StoredFinding>,
    /// Open findings no longer seen, now closed.
    pub closed: Vec<StoredFinding>,
}

impl Reconciled {
    /// Every finding to write, opened first.
    pub fn writes(&self) -> Vec<StoredFinding> {
        self.opened
            .iter()
            .chain(&self.updated)
            .chain(&self.closed)
            .cloned()
            .collect()
    }

    /// Whether the scan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.updated.is_empty() && self.closed.is_empty()
    }
}

/// How findings are matched across scans: a condition by meter and kind, an instant finding by
/// meter, kind and evidence start.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    meter: MeterId,
    kind: FindingKind,
    instant_from: Option<Timestamp>,
}

impl Key {
    fn of(meter: &MeterId, kind: FindingKind, from: Timestamp) -> Self {
        Self {
            meter: meter.clone(),
            kind,
            instant_from: kind.is_instant().then_some(from),
        }
    }
}

/// This scan's findings of one key, merged: the union of their windows, the highest score and
/// its explanation.
fn merge(group: &[&Finding]) -> Option<Finding> {
    let best = group.iter().copied().max_by(|a, b| {
        a.score
            .total_cmp(&b.score)
            // Equal scores: the earlier window, so the choice does not depend on input order.
            .then_with(|| b.from.cmp(&a.from))
    })?;
    let mut merged = best.clone();
    merged.from = group.iter().map(|f| f.from).min().unwrap_or(best.from);
    merged.to = group.iter().map(|f| f.to).max().unwrap_or(best.to);
    if group.len() > 1 {
        merged.explanation = format!(
            "{} ({} such findings in this scan)",
            best.explanation,
            group.len()
        );
    }
    Some(merged)
}

/// Decides what the scan at `now` changes, given `open` (the open findings of every meter the
/// scan covered, and only those) and `found` (everything its detectors reported for them).
///
/// - a key (meter + kind; for instant kinds also the evidence start) found and already open:
///   the open finding is updated (`last_seen = now`, the latest score and explanation, the
///   union of the windows), never duplicated;
/// - found and not open: opened, with a deterministic id ([`finding_id`]);
/// - open and not found: closed at `now`, unless its kind stays open unseen
///   ([`FindingKind::open_while_unseen_ms`]) and it was last seen less than that long ago: then
///   it is left as it is (nothing written), and a scan that sees it again updates it.
///
/// Should the store hold two open findings of one key (a race between two scans), the earliest
/// is kept and the others are closed. The output is sorted by meter and id, whatever the input
/// order.
pub fn reconcile(open: &[StoredFinding], found: &[Finding], now: Timestamp) -> Reconciled {
    let mut groups: BTreeMap<Key, Vec<&Finding>> = BTreeMap::new();
    for f in found {
        groups
            .entry(Key::of(&f.meter_id, f.kind, f.from))
            .or_default()
            .push(f);
    }
    let mut stored: BTreeMap<Key, Vec<&StoredFinding>> = BTreeMap::new();
    for s in open.iter().filter(|s| s.is_open()) {
        stored
            .entry(Key::of(&s.meter_id, s.kind, s.from))
            .or_default()
            .push(s);
    }
    let mut out = Reconciled::default();
    let close = |s: &StoredFinding| StoredFinding {
        status: FindingStatus::Closed,
        closed_at: Some(now),
        ..s.clone()
    };
    for (key, group) in &groups {
        let Some(f) = merge(group) else { continue };
        match stored.remove(key) {
            Some(mut existing) => {
                existing.sort_by(|a, b| a.opened_at.cmp(&b.opened_at).then(a.id.cmp(&b.id)));
                let keep = existing[0];
                out.updated.push(StoredFinding {
                    last_seen: now.max(keep.last_seen),
                    score: f.score,
                    from: keep.from.min(f.from),
                    to: keep.to.max(f.to),
                    explanation: f.explanation,
                    ..keep.clone()
                });
                out.closed.extend(existing[1..].iter().map(|s| close(s)));
            }
            None => out.opened.push(StoredFinding {
                id: finding_id(f.kind, now, f.from),
                meter_id: f.meter_id,
                kind: f.kind,
                status: FindingStatus::Open,
                opened_at: now,
                last_seen: now,
                closed_at: None,
                score: f.score,
                from: f.from,
                to: f.to,
                explanation: f.explanation,
            }),
        }
    }
    out.closed.extend(
        stored
            .into_values()
            .flatten()
            .filter(|s| now.millis() - s.last_seen.millis() >= s.kind.open_while_unseen_ms())
            .map(close),
    );
    for list in [&mut out.opened, &mut out.updated, &mut out.closed] {
        list.sort_by(|a, b| (&a.meter_id, &a.id).cmp(&(&b.meter_id, &b.id)));
    }
    out
}

/// Applies a [`Reconciled`] to a set of open findings: what the open set is after the scan's
/// writes (for tests and for callers that keep the open set in memory).
pub fn apply(open: &[StoredFinding], r: &Reconciled) -> Vec<StoredFinding> {
    let mut by_id: BTreeMap<(MeterId, String), StoredFinding> = open
        .iter()
        .map(|s| ((s.meter_id.clone(), s.id.clone()), s.clone()))
        .collect();
    for s in r.writes() {
        by_id.insert((s.meter_id.clone(), s.id.clone()), s);
    }
    by_id.into_values().filter(StoredFinding::is_open).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn meter(id: &str) -> MeterId {
        MeterId::parse(id).unwrap()
    }

    fn at(h: i64) -> Timestamp {
        Timestamp::from_millis(1_764_000_000_000 + h * HOUR)
    }

    fn found(id: &str, kind: FindingKind, from: i64, to: i64, score: f64) -> Finding {
        Finding {
            meter_id: meter(id),
            kind,
            score,
            from: at(from),
            to: at(to),
            explanation: format!("{kind} seen, score {score}"),
        }
    }

    #[test]
    fn a_new_condition_opens_one_finding_with_a_deterministic_id() {
        let r = reconcile(
            &[],
            &[found("m-1", FindingKind::StuckRegister, 1, 3, 8.0)],
            at(4),
        );
        assert_eq!((r.opened.len(), r.updated.len(), r.closed.len()), (1, 0, 0));
        let f = &r.opened[0];
        assert_eq!(f.id, format!("stuck_register:{:015}", at(4).millis()));
        assert_eq!(
            (f.status, f.opened_at, f.last_seen),
            (FindingStatus::Open, at(4), at(4))
        );
        assert_eq!(
            (f.from, f.to, f.score, f.closed_at),
            (at(1), at(3), 8.0, None)
        );
    }

    #[test]
    fn no_finding_is_duplicated_across_consecutive_scans_of_the_same_condition() {
        let mut open = Vec::new();
        let mut announced = Vec::new();
        // The register stays stuck from hour 1 on; each hourly scan sees the run grow.
        for scan in 4..10 {
            let r = reconcile(
                &open,
                &[found(
                    "m-1",
                    FindingKind::StuckRegister,
                    1,
                    scan - 1,
                    scan as f64,
                )],
                at(scan),
            );
            announced.extend(r.opened.clone());
            open = apply(&open, &r);
            assert_eq!(open.len(), 1, "scan at hour {scan}");
        }
        assert_eq!(announced.len(), 1, "one finding opened, not one per scan");
        let f = &open[0];
        assert_eq!((f.opened_at, f.last_seen), (at(4), at(9)));
        assert_eq!((f.from, f.to, f.score), (at(1), at(8), 9.0));
    }

    #[test]
    fn a_condition_no_longer_seen_is_closed_and_a_recurrence_is_a_new_finding() {
        let first = reconcile(&[], &[found("m-1", FindingKind::Tamper, 0, 1, 2.0)], at(2));
        let open = apply(&[], &first);
        let gone = reconcile(&open, &[], at(3));
        assert_eq!((gone.opened.len(), gone.updated.len()), (0, 0));
        assert_eq!(gone.closed.len(), 1);
        assert_eq!(gone.closed[0].id, first.opened[0].id);
        assert_eq!(gone.closed[0].status, FindingStatus::Closed);
        assert_eq!(gone.closed[0].closed_at, Some(at(3)));
        assert!(apply(&open, &gone).is_empty());
        let again = reconcile(&[], &[found("m-1", FindingKind::Tamper, 4, 5, 1.0)], at(6));
        assert_eq!(again.opened.len(), 1);
        assert_ne!(again.opened[0].id, first.opened[0].id);
    }

    #[test]
    fn a_sustained_theft_unseen_for_a_day_stays_open_and_its_return_is_the_same_finding() {
        const DAY: i64 = 24;
        let theft = |scan: i64| found("m-1", FindingKind::SustainedTheft, 0, scan - 1, 30.0);
        let first = reconcile(&[], &[theft(DAY)], at(DAY));
        let mut open = apply(&[], &first);
        // Under the threshold for two daily scans: nothing written, still open.
        for scan in [2 * DAY, 3 * DAY] {
            let dip = reconcile(&open, &[], at(scan));
            assert!(dip.is_empty(), "scan at day {}: {dip:?}", scan / DAY);
            open = apply(&open, &dip);
        }
        let back = reconcile(&open, &[theft(4 * DAY)], at(4 * DAY));
        assert_eq!((back.opened.len(), back.updated.len()), (0, 1));
        assert_eq!(back.updated[0].id, first.opened[0].id);
        open = apply(&open, &back);
        // Unseen for three days since: closed.
        let quiet = reconcile(&open, &[], at(6 * DAY));
        assert!(quiet.closed.is_empty());
        let gone = reconcile(&open, &[], at(7 * DAY));
        assert_eq!(gone.closed.len(), 1);
        assert_eq!(gone.closed[0].closed_at, Some(at(7 * DAY)));
    }

    #[test]
    fn retrying_a_scan_writes_the_same_findings_whatever_the_first_attempt_stored() {
        let before = apply(
            &[],
            &reconcile(
                &[],
                &[found("m-1", FindingKind::ZeroRun, 0, 2, 12.0)],
                at(3),
            ),
        );
        let this_scan = [
            found("m-1", FindingKind::ZeroRun, 0, 4, 14.0),
            found("m-2", FindingKind::Tamper, 3, 4, 1.0),
        ];
        let first = reconcile(&before, &this_scan, at(5));
        // The retry sees nothing written, or all of it: the same state either way.
        let after_first = apply(&before, &first);
        let retry_clean = reconcile(&before, &this_scan, at(5));
        let retry_after = reconcile(&after_first, &this_scan, at(5));
        assert_eq!(retry_clean, first);
        assert_eq!(apply(&after_first, &retry_after), after_first);
        assert!(retry_after.opened.is_empty(), "nothing opened twice");
        // Half written (only m-2's new finding landed): still converges.
        let half: Vec<StoredFinding> = before
            .iter()
            .cloned()
            .chain(first.opened.iter().cloned())
            .collect();
        assert_eq!(
            apply(&half, &reconcile(&half, &this_scan, at(5))),
            after_first
        );
    }

    #[test]
    fn several_findings_of_one_kind_in_a_scan_merge_into_one() {
        let r = reconcile(
            &[],
            &[
                found("m-1", FindingKind::Spike, 5, 5, 9.0),
                found("m-1", FindingKind::Spike, 1, 1, 20.0),
                found("m-1", FindingKind::Spike, 3, 3, 11.0),
                found("m-2", FindingKind::Spike, 2, 2, 9.5),
            ],
            at(6),
        );
        assert_eq!(r.opened.len(), 2);
        let m1 = &r.opened[0];
        assert_eq!(m1.meter_id, meter("m-1"));
        assert_eq!((m1.from, m1.to, m1.score), (at(1), at(5), 20.0));
        assert!(
            m1.explanation.contains("3 such findings"),
            "{}",
            m1.explanation
        );
    }

    #[test]
    fn instant_findings_open_once_per_evidence_window() {
        let restored = |from, to| found("m-1", FindingKind::Restoration, from, to, 1.0);
        let first = reconcile(&[], &[restored(2, 3)], at(4));
        let open = apply(&[], &first);
        assert_eq!(
            first.opened[0].id,
            format!("restoration:{:015}", at(2).millis())
        );
        // The same restoration seen by the next scans: updated, not reopened; a second one
        // (another window) is a finding of its own.
        let next = reconcile(&open, &[restored(2, 3), restored(6, 7)], at(8));
        assert_eq!(next.updated.len(), 1);
        assert_eq!(next.opened.len(), 1);
        assert_eq!(next.opened[0].from, at(6));
        assert!(next.closed.is_empty());
    }

    #[test]
    fn open_findings_of_other_kinds_and_meters_are_judged_separately() {
        let open = apply(
            &[],
            &reconcile(
                &[],
                &[
                    found("m-1", FindingKind::Tamper, 0, 1, 1.0),
                    found("m-1", FindingKind::Gap, 0, 1, 4.0),
                    found("m-2", FindingKind::Gap, 0, 1, 4.0),
                ],
                at(2),
            ),
        );
        let r = reconcile(&open, &[found("m-1", FindingKind::Gap, 2, 3, 5.0)], at(4));
        assert_eq!(r.opened.len(), 0);
        assert_eq!(r.updated.len(), 1);
        assert_eq!(
            (r.updated[0].meter_id.as_str(), r.updated[0].kind),
            ("m-1", FindingKind::Gap)
        );
        let closed: Vec<(&str, FindingKind)> = r
            .closed
            .iter()
            .map(|s| (s.meter_id.as_str(), s.kind))
            .collect();
        assert_eq!(
            closed,
            vec![("m-1", FindingKind::Tamper), ("m-2", FindingKind::Gap)]
        );
    }

    #[test]
    fn two_open_findings_of_one_condition_collapse_into_the_earliest() {
        let a = reconcile(&[], &[found("m-1", FindingKind::Tamper, 0, 1, 1.0)], at(2));
        let b = reconcile(&[], &[found("m-1", FindingKind::Tamper, 0, 1, 1.0)], at(3));
        let both: Vec<StoredFinding> = a.opened.iter().chain(&b.opened).cloned().collect();
        let r = reconcile(
            &both,
            &[found("m-1", FindingKind::Tamper, 0, 4, 2.0)],
            at(5),
        );
        assert_eq!(r.updated.len(), 1);
        assert_eq!(r.updated[0].opened_at, at(2));
        assert_eq!(r.closed.len(), 1);
        assert_eq!(r.closed[0].opened_at, at(3));
    }

    #[test]
    fn status_names_round_trip() {
        for s in [FindingStatus::Open, FindingStatus::Closed] {
            assert_eq!(FindingStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(FindingStatus::parse("ajar"), None);
    }
}
