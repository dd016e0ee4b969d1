#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Behaviour of the simulated fleet, checked in memory through the platform's own telemetry
//! parser: determinism and resumption, register and energy-balance physics, relay commands,
//! payload validity, and that every injection shows the signature it is meant to.

use std::collections::{BTreeMap, HashMap};

use meter_core::telemetry::parse_message;
use meter_core::{
    Limits, MessageContext, MeterKind, QuarantineReason, Reading, RelayState, Timestamp,
};
use meter_sim::{CommandError, FaultKind, FaultPlan, Fleet, FleetConfig, FleetState, Message};

const QUARTER_MS: i64 = 15 * 60 * 1000;
const DAY_MS: i64 = 24 * 3_600_000;

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-06-01T00:00:00Z").unwrap()
}

fn config(consumers: usize, feeders: usize, faults: FaultPlan) -> FleetConfig {
    FleetConfig {
        consumers,
        feeders,
        seed: 42,
        faults,
        ..FleetConfig::default()
    }
}

/// Advances one interval at a time, pairing each message with the time it was published.
fn run(fleet: &mut Fleet, until: Timestamp) -> Vec<(Timestamp, Message)> {
    let mut out = Vec::new();
    let mut now = fleet.clock().add_millis(QUARTER_MS);
    while now <= until {
        out.extend(fleet.advance(now).into_iter().map(|m| (now, m)));
        now = now.add_millis(QUARTER_MS);
    }
    out
}

/// Parses a message as the platform would on receipt at `received`.
fn parse(msg: &Message, received: Timestamp) -> Vec<Result<Reading, meter_core::QuarantineEntry>> {
    let ctx = MessageContext {
        topic: Some(&msg.topic),
        received: received.add_millis(1_000),
    };
    parse_message(&msg.payload, ctx, &Limits::default())
}

/// Every valid reading, per meter, in publish order.
fn readings_by_meter(msgs: &[(Timestamp, Message)]) -> BTreeMap<String, Vec<Reading>> {
    let mut out: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
    for (at, m) in msgs {
        for item in parse(m, *at) {
            let r = item.unwrap();
            out.entry(r.meter_id.to_string()).or_default().push(r);
        }
    }
    out
}

#[test]
fn the_same_seed_gives_the_same_bytes_however_advance_is_called() {
    let cfg = config(40, 2, FaultPlan::only(&FaultKind::ALL, 1.0));
    let until = start().add_millis(2 * DAY_MS);
    let mut stepwise = Fleet::new(cfg.clone(), start());
    let a: Vec<Message> = run(&mut stepwise, until)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    let mut at_once = Fleet::new(cfg.clone(), start());
    let b = at_once.advance(until);
    assert_eq!(a.len(), b.len());
    assert!(a == b, "one advance call differs from many");
    let mut other_seed = Fleet::new(FleetConfig { seed: 43, ..cfg }, start());
    assert_ne!(other_seed.advance(until), b);
}

#[test]
fn a_fleet_resumed_from_saved_state_continues_exactly() {
    let cfg = config(40, 2, FaultPlan::only(&FaultKind::ALL, 1.0));
    let mut uninterrupted = Fleet::new(cfg.clone(), start());
    let mut first = Fleet::new(cfg.clone(), start());
    let until = start().add_millis(3 * DAY_MS);
    let expected = uninterrupted.advance(until);

    // Stop at several points (including inside injection windows) and go on from saved JSON.
    let mut got = Vec::new();
    let mut fleet_state: FleetState;
    let mut cut = start().add_millis(5 * 3_600_000 + 7 * 60_000);
    got.extend(first.advance(cut));
    fleet_state = first.state();
    while cut < until {
        let json = serde_json::to_string(&fleet_state).unwrap();
        let restored: FleetState = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, fleet_state);
        let mut resumed = Fleet::resume(cfg.clone(), restored);
        cut = cut.add_millis(11 * 3_600_000).min(until);
        got.extend(resumed.advance(cut));
        fleet_state = resumed.state();
    }
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "resumed fleet diverged");
    assert_eq!(fleet_state, uninterrupted.state());
}

#[test]
fn consecutive_advances_neither_repeat_nor_skip_an_interval() {
    let mut fleet = Fleet::new(config(3, 0, FaultPlan::none()), start());
    let mut seen = Vec::new();
    for minutes in [7, 15, 15, 44, 46, 46, 200] {
        let now = fleet.clock().add_millis(minutes * 60_000);
        for m in fleet.advance(now) {
            let r = parse(&m, now).remove(0).unwrap();
            if r.meter_id.as_str() == "c-00001" {
                seen.push(r.ts.millis());
            }
        }
    }
    assert!(!seen.is_empty());
    for w in seen.windows(2) {
        assert_eq!(w[1] - w[0], QUARTER_MS);
    }
}

#[test]
fn healthy_registers_only_move_forward_and_every_field_is_set() {
    let mut fleet = Fleet::new(config(100, 2, FaultPlan::none()), start());
    assert!(fleet.injections().is_empty());
    let msgs = run(&mut fleet, start().add_millis(3 * DAY_MS));
    let by_meter = readings_by_meter(&msgs);
    assert_eq!(by_meter.len(), 102);
    for (id, rs) in &by_meter {
        assert_eq!(rs.len(), 3 * 96, "{id}");
        for (k, w) in rs.windows(2).enumerate() {
            assert!(
                w[1].energy_import >= w[0].energy_import,
                "{id} register fell"
            );
            assert_eq!(w[1].seq, Some(k as u64 + 1));
            assert_eq!(w[1].ts.millis() - w[0].ts.millis(), QUARTER_MS);
        }
        for r in rs {
            assert!(r.power_w.is_some() && r.current_a.is_some() && r.frequency_hz.is_some());
            let v = r.voltage_v.unwrap();
            assert!((207.0..=253.0).contains(&v), "{id} voltage {v}");
            let pf = r.power_factor.unwrap();
            assert!((0.85..=0.99).contains(&pf), "{id} pf {pf}");
            assert_eq!(r.relay, Some(RelayState::Closed));
            assert_eq!(r.status.as_str(), "ok");
        }
    }
    // No healthy consumer exceeds its contracted load.
    let contracted: HashMap<String, f64> = fleet
        .registry()
        .into_iter()
        .map(|m| (m.meter_id.to_string(), m.contracted_kw.unwrap()))
        .collect();
    for (id, rs) in &by_meter {
        for r in rs {
            assert!(r.power_w.unwrap() <= contracted[id] * 1000.0, "{id}");
        }
    }
}

#[test]
fn feeders_measure_their_consumers_true_energy_plus_losses() {
    let cfg = config(
        60,
        3,
        FaultPlan::only(&[FaultKind::Bypass, FaultKind::H1], 0.2),
    );
    let mut fleet = Fleet::new(cfg, start());
    let registry = fleet.registry();
    let before = fleet.state();
    run(&mut fleet, start().add_millis(4 * DAY_MS));
    let after = fleet.state();
    for f in registry.iter().filter(|m| m.kind == MeterKind::Feeder) {
        let consumers: Vec<&str> = registry
            .iter()
            .filter(|m| m.feeder_id.as_ref() == Some(&f.meter_id))
            .map(|m| m.meter_id.as_str())
            .collect();
        assert_eq!(consumers.len(), 20);
        let consumers_true: f64 = consumers
            .iter()
            .map(|id| fleet.truth(id).unwrap().true_kwh)
            .sum();
        let consumers_reported: f64 = consumers
            .iter()
            .map(|id| {
                let i = after.meters.iter().position(|m| m.meter_id == *id).unwrap();
                (after.meters[i].register_mwh - before.meters[i].register_mwh) as f64 / 1e6
            })
            .sum();
        let t = fleet.truth(f.meter_id.as_str()).unwrap();
        let i = after
            .meters
            .iter()
            .position(|m| m.meter_id == f.meter_id.as_str())
            .unwrap();
        let feeder_delta =
            (after.meters[i].register_mwh - before.meters[i].register_mwh) as f64 / 1e6;
        assert!((feeder_delta - (consumers_true + t.losses_kwh)).abs() < 1e-6);
        let loss_share = t.losses_kwh / feeder_delta;
        assert!((0.005..0.08).contains(&loss_share), "losses {loss_share}");
        // Thieves under-report, so the feeder sees more than its consumers' bills add up to.
        assert!(feeder_delta > consumers_reported + t.losses_kwh);
    }
}

#[test]
fn a_long_bypass_reports_nothing_for_weeks_while_its_feeder_sees_the_true_load() {
    let cfg = config(6, 1, FaultPlan::only(&[FaultKind::LongBypass], 0.01));
    let mut fleet = Fleet::new(cfg, start());
    assert_eq!(fleet.injections().len(), 1, "{:?}", fleet.injections());
    let inj = fleet.injections()[0].clone();
    assert_eq!(inj.kind, FaultKind::LongBypass);
    // After three weeks of history and more, for four to eight weeks.
    let days = |a: Timestamp, b: Timestamp| (b.millis() - a.millis()) as f64 / DAY_MS as f64;
    assert!((24.0..32.0).contains(&days(start(), inj.from)), "{inj:?}");
    assert!((28.0..56.0).contains(&days(inj.from, inj.to)), "{inj:?}");
    let registry = fleet.registry();
    let feeder = registry
        .iter()
        .find(|m| m.kind == MeterKind::Feeder)
        .unwrap()
        .meter_id
        .to_string();
    let consumers: Vec<String> = registry
        .iter()
        .filter(|m| m.kind == MeterKind::Consumer)
        .map(|m| m.meter_id.to_string())
        .collect();
    let thief = inj.meter_id.to_string();
    // (true, reported) energy of a meter so far, and the feeder's losses so far.
    let snapshot = |fleet: &Fleet| {
        let of = |id: &str| {
            let t = fleet.truth(id).unwrap();
            (t.true_kwh, t.register_kwh)
        };
        let consumers_true: f64 = consumers.iter().map(|c| of(c).0).sum();
        let losses = fleet.truth(&feeder).unwrap().losses_kwh;
        (of(&thief), of(&feeder).1, consumers_true, losses)
    };
    let mid = inj
        .from
        .add_millis((inj.to.millis() - inj.from.millis()) / 2);
    let after = inj.to.add_millis(2 * DAY_MS);
    let mut snaps = vec![snapshot(&fleet)];
    for t in [inj.from, mid, inj.to, after] {
        fleet.advance(t);
        snaps.push(snapshot(&fleet));
    }
    // The thief's share reported over each span: all of it before and after, nothing over
    // both halves of the injection.
    let share: Vec<f64> = snaps
        .windows(2)
        .map(|w| {
            let ((t0, r0), (t1, r1)) = (w[0].0, w[1].0);
            (r1 - r0) / (t1 - t0)
        })
        .collect();
    assert!((share[0] - 1.0).abs() < 1e-6, "{share:?}");
    assert_eq!((share[1], share[2]), (0.0, 0.0), "{share:?}");
    assert!((share[3] - 1.0).abs() < 1e-6, "{share:?}");
    // The feeder meter measures its consumers' true energy plus its losses throughout, so over
    // the injection it sees more than its consumers report.
    for w in snaps.windows(2) {
        let feeder_delta = w[1].1 - w[0].1;
        let truth = (w[1].2 - w[0].2) + (w[1].3 - w[0].3);
        assert!(
            (feeder_delta - truth).abs() < 1e-6 * truth.max(1.0),
            "{feeder_delta} {truth}"
        );
    }
    let stolen = (snaps[3].0 .0 - snaps[1].0 .0) - (snaps[3].0 .1 - snaps[1].0 .1);
    assert!(stolen > 0.0);
}

#[test]
fn bypass_and_h1_consumers_under_report_while_their_feeder_does_not() {
    let cfg = config(
        40,
        2,
        FaultPlan::only(&[FaultKind::Bypass, FaultKind::H1], 0.25),
    );
    let mut fleet = Fleet::new(cfg, start());
    let injected: Vec<(String, FaultKind)> = fleet
        .injections()
        .iter()
        .map(|i| (i.meter_id.to_string(), i.kind))
        .collect();
    assert_eq!(injected.len(), 10);
    let until = start().add_millis(6 * DAY_MS);
    let by_meter = readings_by_meter(&run(&mut fleet, until));
    // The true energy, from the same model run with no injection: the same seed gives the same
    // consumption.
    let mut clean = Fleet::new(config(40, 2, FaultPlan::none()), start());
    let clean_rs = readings_by_meter(&run(&mut clean, until));
    for inj in fleet.injections() {
        let rs = &by_meter[inj.meter_id.as_str()];
        let at = |t: Timestamp| {
            rs.iter()
                .find(|r| r.ts == t)
                .map(|r| r.energy_import.kwh())
                .unwrap()
        };
        let reported = at(inj.to) - at(inj.from);
        assert!(reported > 0.0);
        let crs = &clean_rs[inj.meter_id.as_str()];
        let clean_at = |t: Timestamp| {
            crs.iter()
                .find(|r| r.ts == t)
                .map(|r| r.energy_import.kwh())
                .unwrap()
        };
        let truth = clean_at(inj.to) - clean_at(inj.from);
        let ratio = reported / truth;
        let (lo, hi) = match inj.kind {
            FaultKind::Bypass => (0.2, 0.6),
            _ => (0.1, 0.8),
        };
        assert!(
            ratio > lo - 0.01 && ratio < hi + 0.01,
            "{} {}: reported {reported:.3} of {truth:.3} kWh",
            inj.meter_id,
            inj.kind
        );
    }
    for f in ["f-001", "f-002"] {
        let t = fleet.truth(f).unwrap();
        assert!(t.true_kwh > 0.0 && t.losses_kwh > 0.0);
    }
}

#[test]
fn an_open_relay_means_zero_consumption_until_it_closes() {
    let mut fleet = Fleet::new(config(4, 1, FaultPlan::none()), start());
    fleet.advance(start().add_millis(DAY_MS));
    let out = fleet.command("c-00002", br#"{"relay":"open"}"#).unwrap();
    assert_eq!(out.relay, RelayState::Open);
    assert!(out.changed);
    assert!(
        !fleet
            .command("c-00002", br#"{"relay":"open"}"#)
            .unwrap()
            .changed
    );
    let true_before = fleet.truth("c-00002").unwrap().true_kwh;
    let now = start().add_millis(2 * DAY_MS);
    let msgs: Vec<(Timestamp, Message)> =
        fleet.advance(now).into_iter().map(|m| (now, m)).collect();
    let rs = &readings_by_meter(&msgs)["c-00002"];
    assert_eq!(rs.len(), 96);
    for r in rs {
        assert_eq!(r.relay, Some(RelayState::Open));
        assert_eq!(r.power_w, Some(0.0));
        assert_eq!(r.current_a, Some(0.0));
        assert_eq!(r.energy_import, rs[0].energy_import);
        assert!(r.voltage_v.unwrap() > 200.0, "supply side still measured");
    }
    assert_eq!(fleet.truth("c-00002").unwrap().true_kwh, true_before);
    fleet.command("c-00002", br#"{"relay":"closed"}"#).unwrap();
    let now = start().add_millis(3 * DAY_MS);
    let later: Vec<(Timestamp, Message)> =
        fleet.advance(now).into_iter().map(|m| (now, m)).collect();
    let rs = &readings_by_meter(&later)["c-00002"];
    assert!(rs.last().unwrap().energy_import > rs[0].energy_import);
    assert_eq!(rs[0].relay, Some(RelayState::Closed));
}

#[test]
fn bad_commands_get_typed_errors() {
    let mut fleet = Fleet::new(config(4, 1, FaultPlan::none()), start());
    assert!(matches!(
        fleet.command("c-00099", br#"{"relay":"open"}"#),
        Err(CommandError::UnknownMeter(_))
    ));
    assert!(matches!(
        fleet.command("nope", br#"{"relay":"open"}"#),
        Err(CommandError::UnknownMeter(_))
    ));
    for bad in [&b"not json"[..], br#"{"relay":"ajar"}"#, br#"{"other":1}"#] {
        assert!(matches!(
            fleet.command("c-00001", bad),
            Err(CommandError::InvalidPayload(_))
        ));
    }
    assert!(matches!(
        fleet.command("f-001", br#"{"relay":"open"}"#),
        Err(CommandError::NoRelay(_))
    ));
}

#[test]
fn the_registry_names_consumers_under_their_feeders() {
    let fleet = Fleet::new(config(10, 3, FaultPlan::none()), start());
    let reg = fleet.registry();
    assert_eq!(reg.len(), 13);
    // Feeders first: a consumer is registered after the feeder it names.
    assert_eq!(reg[0].meter_id.as_str(), "f-001");
    assert_eq!(reg[2].meter_id.as_str(), "f-003");
    assert!(reg[..3].iter().all(|m| m.kind == MeterKind::Feeder));
    assert_eq!(reg[3].meter_id.as_str(), "c-00001");
    assert_eq!(reg[3].kind, MeterKind::Consumer);
    let under = |f: &str| {
        reg.iter()
            .filter(|m| m.feeder_id.as_ref().map(|x| x.as_str()) == Some(f))
            .count()
    };
    assert_eq!((under("f-001"), under("f-002"), under("f-003")), (3, 3, 4));
    assert!(reg.iter().all(|m| m.contracted_kw.unwrap() > 0.0));
    let no_feeders = Fleet::new(config(5, 0, FaultPlan::none()), start()).registry();
    assert!(no_feeders.iter().all(|m| m.feeder_id.is_none()));
}

#[test]
fn the_default_plan_shows_several_kinds_in_a_small_fleet() {
    let fleet = Fleet::new(config(20, 1, FaultPlan::default()), start());
    let kinds: Vec<FaultKind> = fleet.injections().iter().map(|i| i.kind).collect();
    assert_eq!(kinds.len(), 5);
    let mut unique = kinds.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5);
    for i in fleet.injections() {
        assert!(i.from > start() && i.to > i.from);
    }
    let big = Fleet::new(config(400, 4, FaultPlan::default()), start());
    for k in FaultKind::ALL {
        assert!(big.injections().iter().any(|i| i.kind == k), "{k} missing");
    }
}

#[test]
fn household_load_matches_the_calibration_on_average() {
    let mut fleet = Fleet::new(config(200, 0, FaultPlan::none()), start());
    let days = 7;
    let msgs = fleet.advance(start().add_millis(days * DAY_MS));
    let registry = fleet.registry();
    let households: Vec<&str> = registry
        .iter()
        .filter(|m| m.tariff_id.as_deref() == Some("household"))
        .map(|m| m.meter_id.as_str())
        .collect();
    assert!(households.len() > 160 && households.len() < 196);
    let daily: Vec<f64> = households
        .iter()
        .map(|id| fleet.truth(id).unwrap().true_kwh / days as f64)
        .collect();
    let ln: Vec<f64> = daily.iter().map(|d| d.ln()).collect();
    let mu = ln.iter().sum::<f64>() / ln.len() as f64;
    // June is winter in Sydney (factor ≈ 1.22), so the median household uses more than e^2.32.
    let expected = meter_sim::calibration::HOUSEHOLD_DAILY_KWH_LN_MU + 1.22_f64.ln();
    assert!(
        (mu - expected).abs() < 0.15,
        "ln mean daily {mu:.3}, expected {expected:.3}"
    );

    // Evening peak above the small hours: 19:00 vs 04:00 local (UTC+10 in June).
    let mut by_hour = [0.0; 24];
    // A sample of consumers is enough, and parsing is the slow part of this test.
    for m in msgs.iter().filter(|m| m.meter_id.as_str() < "c-00060") {
        let r = parse(m, start().add_millis(days * DAY_MS))
            .remove(0)
            .unwrap();
        if r.meter_id.as_str().starts_with("c-") {
            let local_hour = ((r.ts.millis() / 3_600_000) + 10) % 24;
            by_hour[local_hour as usize] += r.power_w.unwrap();
        }
    }
    assert!(by_hour[19] > 1.8 * by_hour[4], "{by_hour:?}");
}

/// Every injection at once: payloads validate except clock skew ahead, and each kind shows.
#[test]
fn every_injection_shows_its_signature_and_only_clock_skew_is_quarantined() {
    let cfg = config(76, 4, FaultPlan::only(&FaultKind::ALL, 1.0));
    let mut fleet = Fleet::new(cfg, start());
    let until = start().add_millis(5 * DAY_MS);
    let contracted: HashMap<String, f64> = fleet
        .registry()
        .into_iter()
        .map(|m| (m.meter_id.to_string(), m.contracted_kw.unwrap()))
        .collect();
    let kind_of: HashMap<String, FaultKind> = fleet
        .injections()
        .iter()
        .map(|i| (i.meter_id.to_string(), i.kind))
        .collect();
    assert_eq!(kind_of.len(), 76);

    let mut online_min = usize::MAX;
    let mut msgs = Vec::new();
    let mut now = fleet.clock().add_millis(QUARTER_MS);
    while now <= until {
        msgs.extend(fleet.advance(now).into_iter().map(|m| (now, m)));
        online_min = online_min.min(fleet.meters_online());
        now = now.add_millis(QUARTER_MS);
    }
    assert!(
        online_min < 80,
        "outages and store-and-forward take meters offline"
    );

    let mut per_meter: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
    let mut raw: BTreeMap<String, Vec<&[u8]>> = BTreeMap::new();
    let mut quarantined: Vec<String> = Vec::new();
    for (at, m) in &msgs {
        raw.entry(m.meter_id.to_string())
            .or_default()
            .push(&m.payload);
        for item in parse(m, *at) {
            match item {
                Ok(r) => per_meter.entry(r.meter_id.to_string()).or_default().push(r),
                Err(q) => {
                    assert_eq!(q.reason, QuarantineReason::ClockSkew, "{q:?}");
                    quarantined.push(q.meter_key.clone());
                }
            }
        }
    }
    for id in &quarantined {
        assert_eq!(kind_of[id], FaultKind::ClockSkew, "{id} quarantined");
    }

    let mut shown: BTreeMap<FaultKind, usize> = BTreeMap::new();
    for (id, kind) in &kind_of {
        let rs = per_meter.get(id).cloned().unwrap_or_default();
        let pairs = || rs.windows(2).map(|w| (&w[0], &w[1]));
        let kwh = |r: &Reading| r.energy_import.kwh();
        let nominal = 230.0;
        let shows = match kind {
            FaultKind::Tamper => rs.iter().any(|r| r.status.as_str() == "tamper"),
            FaultKind::StuckRegister => {
                pairs()
                    .filter(|(a, b)| kwh(a) == kwh(b) && b.power_w.unwrap() > 0.0)
                    .count()
                    >= 4
            }
            FaultKind::Rollover => pairs().any(|(a, b)| kwh(a) >= 950_000.0 && kwh(b) <= 50_000.0),
            FaultKind::Replacement => pairs().any(|(a, b)| kwh(b) < 5.0 && kwh(a) > 100.0),
            FaultKind::Outage => {
                pairs().any(|(a, b)| b.ts.millis() - a.ts.millis() > QUARTER_MS)
                    || rs.iter().any(|r| r.voltage_v == Some(0.0))
            }
            FaultKind::Sag => rs.iter().any(|r| r.voltage_v.unwrap() < 0.86 * nominal),
            FaultKind::Swell => rs.iter().any(|r| r.voltage_v.unwrap() > 1.14 * nominal),
            FaultKind::Overload => rs
                .iter()
                .any(|r| r.power_w.unwrap() > contracted[id] * 1000.0),
            FaultKind::ClockSkew => {
                quarantined.contains(id) || rs.iter().any(|r| r.ts.millis() % QUARTER_MS != 0)
            }
            FaultKind::Duplicate => raw[id].windows(2).any(|w| w[0] == w[1]),
            FaultKind::OutOfOrder => pairs().any(|(a, b)| b.ts < a.ts),
            FaultKind::StoreAndForward => raw[id]
                .iter()
                .any(|p| std::str::from_utf8(p).unwrap().contains("\"readings\"")),
            // Thefts are checked against the truth in their own tests; here: they still report.
            _ => rs.len() >= 4 * 96,
        };
        assert!(shows, "{id} ({kind}) does not show its injection");
        *shown.entry(*kind).or_default() += 1;
        if !matches!(
            kind,
            FaultKind::Rollover
                | FaultKind::Replacement
                | FaultKind::ClockSkew
                | FaultKind::OutOfOrder
        ) {
            for (a, b) in pairs() {
                assert!(
                    b.energy_import >= a.energy_import,
                    "{id} ({kind}) register fell"
                );
            }
        }
    }
    assert_eq!(shown.len(), FaultKind::ALL.len());
}

/// Runs a fleet and checks that every payload parses and validates, apart from clock skew ahead.
fn assert_all_valid_but_clock_skew(cfg: FleetConfig, from: Timestamp, days: i64) -> usize {
    let step = cfg.interval_ms();
    let mut fleet = Fleet::new(cfg, from);
    let skewed: Vec<String> = fleet
        .injections()
        .iter()
        .filter(|i| i.kind == FaultKind::ClockSkew)
        .map(|i| i.meter_id.to_string())
        .collect();
    let mut n = 0;
    let mut now = fleet.clock().add_millis(step);
    while now <= from.add_millis(days * DAY_MS) {
        for m in fleet.advance(now) {
            for item in parse(&m, now) {
                n += 1;
                if let Err(q) = item {
                    assert_eq!(q.reason, QuarantineReason::ClockSkew, "{q:?}");
                    assert!(skewed.contains(&q.meter_key), "{q:?}");
                }
            }
        }
        now = now.add_millis(step);
    }
    n
}

#[test]
fn northern_fleets_with_five_minute_intervals_validate_too() {
    let cfg = FleetConfig {
        interval_minutes: 5,
        timezone: chrono_tz::Europe::London,
        nominal_voltage_v: 230.0,
        ..config(38, 2, FaultPlan::only(&FaultKind::ALL, 1.0))
    };
    let n = assert_all_valid_but_clock_skew(cfg, start(), 2);
    assert!(n > 40 * 2 * 288 * 9 / 10);
}

#[test]
fn theft_days_follow_local_days_across_a_daylight_saving_change() {
    // Sydney moves to daylight time on Sunday 2026-10-04: that local day has 23 hours.
    let cfg = config(
        24,
        1,
        FaultPlan::only(
            &[
                FaultKind::H1,
                FaultKind::H2,
                FaultKind::H3,
                FaultKind::H4,
                FaultKind::H5,
                FaultKind::H6,
            ],
            1.0,
        ),
    );
    let from = Timestamp::parse_rfc3339("2026-10-02T14:00:00Z").unwrap();
    let fleet = Fleet::new(cfg.clone(), from);
    for i in fleet.injections() {
        // Windows start at local midnight (14:00Z before the change, 13:00Z after it).
        let utc_hour = (i.from.millis() / 3_600_000) % 24;
        assert!(utc_hour == 14 || utc_hour == 13, "{i:?}");
    }
    let spans: Vec<i64> = fleet
        .injections()
        .iter()
        .map(|i| (i.to.millis() - i.from.millis()) / 3_600_000)
        .collect();
    assert!(
        spans.iter().any(|h| h % 24 == 23),
        "no window covers the 23-hour day: {spans:?}"
    );
    let n = assert_all_valid_but_clock_skew(cfg, from, 5);
    assert!(n >= 25 * 5 * 96 - 25);
}
