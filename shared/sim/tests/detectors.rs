#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The simulator's injected outages, voltage faults, tamper flags and h2 thefts found by
//! meter-core's scan detectors on the readings the platform would store, and the healthy meters
//! of the same fleet (with the simulator's voltage, frequency and power-factor noise) left alone.

use std::collections::{BTreeMap, BTreeSet};

use meter_core::anomaly::{
    outage, quality, tamper, FeederWindow, Finding, FindingKind, MeterWindow,
};
use meter_core::registry::MeterInfo;
use meter_core::telemetry::parse_message;
use meter_core::{Limits, MessageContext, MeterKind, Reading, Timestamp};
use meter_sim::{FaultKind, FaultPlan, Fleet, FleetConfig, Injection};

const QUARTER_MS: i64 = 15 * 60 * 1000;
const DAY_MS: i64 = 24 * 3_600_000;

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-06-01T00:00:00Z").unwrap()
}

/// A fleet run for `days`, its readings per meter (sorted, one per timestamp) and registry.
struct Run {
    registry: Vec<MeterInfo>,
    injections: Vec<Injection>,
    readings: BTreeMap<String, Vec<Reading>>,
    until: Timestamp,
}

fn simulate(kinds: &[FaultKind], share: f64, days: i64) -> Run {
    let cfg = FleetConfig {
        consumers: 40,
        feeders: 2,
        seed: 42,
        faults: FaultPlan::only(kinds, share),
        ..FleetConfig::default()
    };
    let mut fleet = Fleet::new(cfg, start());
    let until = start().add_millis(days * DAY_MS);
    let mut readings: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
    let mut now = start().add_millis(QUARTER_MS);
    while now <= until {
        for msg in fleet.advance(now) {
            let ctx = MessageContext {
                topic: Some(&msg.topic),
                received: now.add_millis(1_000),
            };
            for r in parse_message(&msg.payload, ctx, &Limits::default()) {
                let r = r.unwrap();
                readings.entry(r.meter_id.to_string()).or_default().push(r);
            }
        }
        now = now.add_millis(QUARTER_MS);
    }
    for r in readings.values_mut() {
        r.sort_by_key(|r| r.ts);
        r.dedup_by_key(|r| r.ts);
    }
    Run {
        registry: fleet.registry(),
        injections: fleet.injections().to_vec(),
        readings,
        until,
    }
}

impl Run {
    /// Every feeder's window of readings with `from < ts ≤ to`.
    fn windows(&self, from: Timestamp, to: Timestamp) -> Vec<FeederWindow> {
        let window = |info: &MeterInfo| MeterWindow {
            info: info.clone(),
            readings: self
                .readings
                .get(info.meter_id.as_str())
                .map(|r| {
                    r.iter()
                        .filter(|r| r.ts > from && r.ts <= to)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
        };
        self.registry
            .iter()
            .filter(|m| m.kind == MeterKind::Feeder)
            .map(|f| FeederWindow {
                feeder: Some(window(f)),
                consumers: self
                    .registry
                    .iter()
                    .filter(|c| c.feeder_id.as_ref() == Some(&f.meter_id))
                    .map(window)
                    .collect(),
                from,
                to,
            })
            .collect()
    }

    fn injected(&self, kind: FaultKind) -> Vec<&Injection> {
        self.injections.iter().filter(|i| i.kind == kind).collect()
    }

    /// Every finding of `detect` over the whole run, as (meter, kind).
    fn findings(
        &self,
        detect: impl Fn(&FeederWindow) -> Vec<Finding>,
    ) -> BTreeSet<(String, FindingKind)> {
        self.windows(start(), self.until)
            .iter()
            .flat_map(&detect)
            .map(|f| (f.meter_id.to_string(), f.kind))
            .collect()
    }
}

fn meters(injections: &[&Injection], kind: FindingKind) -> BTreeSet<(String, FindingKind)> {
    injections
        .iter()
        .map(|i| (i.meter_id.to_string(), kind))
        .collect()
}

#[test]
fn injected_sags_and_swells_are_found_and_healthy_meters_have_no_quality_findings() {
    let run = simulate(&[FaultKind::Sag, FaultKind::Swell], 0.25, 2);
    let found = run.findings(|w| quality::detect(w, &quality::QualityConfig::default()));
    let mut want = meters(&run.injected(FaultKind::Sag), FindingKind::VoltageSag);
    want.extend(meters(
        &run.injected(FaultKind::Swell),
        FindingKind::VoltageSwell,
    ));
    assert_eq!(want.len(), 10);
    assert_eq!(found, want);
}

#[test]
fn injected_outages_are_meter_outages_while_they_last_and_restorations_after() {
    let run = simulate(&[FaultKind::Outage], 0.25, 2);
    let config = outage::OutageConfig::default();
    let outages = run.injected(FaultKind::Outage);
    assert_eq!(outages.len(), 10);
    // After the run every outage is over: one restoration each, nothing else.
    let after = run.findings(|w| outage::detect(w, &config));
    assert_eq!(after, meters(&outages, FindingKind::Restoration));
    // Scanned during an outage (its last silent interval), the meter is out and its feeder
    // has supply.
    let mut judged = 0;
    for i in &outages {
        let scan = i.to.add_millis(-QUARTER_MS);
        if scan.millis() - i.from.millis() <= (config.silent_intervals + 1) * QUARTER_MS {
            continue; // too short to be told from a few lost messages
        }
        let during: Vec<(String, FindingKind)> = run
            .windows(start(), scan)
            .iter()
            .flat_map(|w| outage::detect(w, &config))
            .filter(|f| f.kind != FindingKind::Restoration)
            .map(|f| (f.meter_id.to_string(), f.kind))
            .collect();
        assert!(
            during.contains(&(i.meter_id.to_string(), FindingKind::MeterOutage)),
            "{i:?}: {during:?}"
        );
        assert!(during.iter().all(|(_, k)| *k == FindingKind::MeterOutage));
        judged += 1;
    }
    assert!(
        judged >= 5,
        "only {judged} outages long enough to scan during"
    );
}

#[test]
fn injected_tamper_flags_are_found_and_nothing_else_is_a_tamper_sign() {
    let run = simulate(&[FaultKind::Tamper], 0.25, 3);
    let found = run.findings(|w| tamper::detect(w, &tamper::TamperConfig::default()));
    assert_eq!(
        found,
        meters(&run.injected(FaultKind::Tamper), FindingKind::Tamper)
    );
}

#[test]
fn h2_zero_windows_show_as_zero_while_the_feeder_is_loaded_on_those_meters_only_over_a_week() {
    let run = simulate(&[FaultKind::H2], 0.25, 7);
    let found = run.findings(|w| tamper::detect(w, &tamper::TamperConfig::default()));
    let thieves = meters(
        &run.injected(FaultKind::H2),
        FindingKind::ZeroWhileFeederLoaded,
    );
    assert_eq!(thieves.len(), 10);
    assert_eq!(found, thieves);
}
