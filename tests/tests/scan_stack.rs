//! The anomaly scan end to end on the local stack: a simulated fleet with injected tamper,
//! stuck-register and bypass faults publishes over MQTT at high speed, the scheduled scan runs
//! every few simulated hours (the same handler as the `anomaly-scan` Lambda, on SQLite), and the
//! injected faults must be stored as findings, announced once in the outbox, and never
//! duplicated by the scans that follow. A second fleet with injected outages, voltage sags and
//! swells is scanned after the fact, an hour after each ended: each must be found on its meter,
//! and no healthy meter may get a supply finding. A third fleet, on two feeders, has one consumer
//! bypassing its meter: the scan must raise a feeder loss on its feeder only, and name it as the
//! top suspect, within a short run (the feeder's rating gives the loss model; no calibration
//! days are needed). A fourth group of consumers publishes five weeks of readings over MQTT, one
//! of them reporting half its consumption for the last week: daily scans must open one
//! sustained-theft finding on it, and on no other, from about its onset, and keep it as that one
//! finding on the days after. A fifth, the simulator's own fleet with a long bypass (weeks of a
//! meter's whole load around it), run ahead and published over MQTT: daily scans must open one
//! sustained-theft finding on the thief, and on no other meter, within a week.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anomaly_scan::ScanSettings;
use meter_core::anomaly::{FindingKind, ScanConfig};
use meter_core::telemetry::encode_reading;
use meter_core::types::DAY_MS;
use meter_core::{Energy, MeterId, MeterInfo, MeterKind, Reading, RelayState, Timestamp};
use meter_local::stack::scan_job::{ScanJob, ScanSchedule};
use meter_local::stack::schedule::ScheduledJob;
use meter_local::stack::{Stack, StackConfig};
use meter_sim::{FaultKind, FleetConfig};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meterflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Scans every 6 simulated hours over 3 days of history, reporting the last day.
fn schedule() -> ScanSchedule {
    ScanSchedule {
        every: Duration::from_secs(6 * 3_600),
        shards: 2,
        settings: ScanSettings {
            scan: ScanConfig {
                history_days: 3,
                ..ScanConfig::default()
            },
            ..ScanSettings::default()
        },
    }
}

/// Where simulated time starts in [`start_fleet`]: 2026-11-26T14:00:00Z.
const FLEET_START_MS: i64 = 1_795_701_600_000;

/// Starts a stack in `dir` with 12 consumers split among `feeders` feeders at ten simulated
/// hours a wall second, `faults` injected (seeded by `seed`) and `scan` as its scan schedule;
/// returns it with the fleet's injections.
async fn start_fleet(
    dir: &std::path::Path,
    seed: u64,
    faults: &str,
    feeders: usize,
    scan: Option<ScanSchedule>,
) -> (Stack, Vec<meter_sim::Injection>) {
    let mut cfg = StackConfig::new(dir.to_path_buf());
    cfg.mqtt_addr = "127.0.0.1:0".parse().unwrap();
    cfg.http_addr = "127.0.0.1:0".parse().unwrap();
    cfg.speed = 36_000.0;
    cfg.publishers = 2;
    cfg.echo_outbox = false;
    cfg.forecast = None;
    cfg.scan = scan;
    // A fixed start: the simulated day's shape before an injection (what the feeder-loss
    // ranking learns each consumer's share from) must not depend on the hour the test runs.
    cfg.start = Some(Timestamp::from_millis(FLEET_START_MS));
    cfg.fleet = Some(FleetConfig {
        consumers: 12,
        feeders,
        seed,
        faults: faults.parse().unwrap(),
        ..FleetConfig::default()
    });
    let stack = Stack::start(cfg).await.unwrap();
    let injections = stack
        .fleet
        .as_ref()
        .unwrap()
        .lock()
        .unwrap()
        .injections()
        .to_vec();
    (stack, injections)
}

/// The first injection of `kind`.
fn injected(injections: &[meter_sim::Injection], kind: FaultKind) -> meter_sim::Injection {
    injections
        .iter()
        .find(|i| i.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} injected: {injections:?}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scan_stores_the_injected_faults_once_and_a_second_scan_does_not_duplicate_them() {
    let dir = temp_dir("scan-e2e");
    let (stack, injections) = start_fleet(
        &dir,
        7,
        "tamper,stuck-register,bypass@0.25",
        1,
        Some(schedule()),
    )
    .await;
    let of = |kind| injected(&injections, kind);
    let (tamper, stuck) = (of(FaultKind::Tamper), of(FaultKind::StuckRegister));
    // Run until both faults have been on for a while (to the end of the first to end, and at
    // least 3 hours after the later start), so several scans have seen them.
    let both_on = tamper.from.max(stuck.from).add_millis(3 * 3_600_000);
    let until = tamper.to.min(stuck.to).max(both_on);
    while stack.clock.now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let findings = stack.findings.clone();
    let metrics = stack.metrics.clone();
    let outbox = stack.outbox.clone();
    let registry = stack.ports.registry.clone();
    let readings = stack.ports.readings.clone();
    stack.shutdown().await.unwrap();

    // Scans ran while the fleet published; on a busy machine ingest may lag behind simulated
    // time, so what they saw is not fixed. What is: every finding they opened was announced
    // exactly once, and a condition never has two open findings.
    let announced = outbox.read_all().unwrap();
    let mut by_subject: BTreeMap<String, usize> = BTreeMap::new();
    for m in &announced {
        assert_eq!((m.channel.as_str(), m.to.as_str()), ("finding", "alerts"));
        *by_subject.entry(m.subject.clone()).or_default() += 1;
    }
    for (meter, kind) in [
        (&tamper.meter_id, FindingKind::Tamper),
        (&stuck.meter_id, FindingKind::StuckRegister),
    ] {
        let stored = findings.for_meter(meter).await.unwrap();
        let of_kind = stored.iter().filter(|f| f.kind == kind).count();
        let subject = format!("{kind} on {meter}");
        assert_eq!(
            by_subject.get(&subject).copied().unwrap_or(0),
            of_kind,
            "{subject}: {stored:#?}"
        );
    }

    // Two more scans on the stored data: the first brings the findings up to date, the second
    // (a retry, or the next scan of an unchanged condition) opens nothing and announces nothing.
    let job = ScanJob::new(
        registry,
        readings,
        findings.clone(),
        outbox.clone(),
        schedule(),
    )
    .with_metrics(metrics.clone());
    // At `until`, not the (load-dependent) instant the stack stopped: both faults are current.
    let at = until;
    job.run(at).await.unwrap();
    let ids = |m: &MeterId| {
        let findings = findings.clone();
        let m = m.clone();
        async move {
            findings
                .for_meter(&m)
                .await
                .unwrap()
                .into_iter()
                .map(|f| (f.id, f.status))
                .collect::<Vec<_>>()
        }
    };
    // Everything the fleet sent is stored now: the injected faults are open findings.
    for (meter, kind) in [
        (&tamper.meter_id, FindingKind::Tamper),
        (&stuck.meter_id, FindingKind::StuckRegister),
    ] {
        let open = findings.open_for_meter(meter).await.unwrap();
        assert_eq!(
            open.iter().filter(|f| f.kind == kind).count(),
            1,
            "{kind} on {meter} at {at}: {open:#?}\n{injections:#?}"
        );
    }
    let before = (ids(&tamper.meter_id).await, ids(&stuck.meter_id).await);
    let sent = outbox.read_all().unwrap().len();
    let summary = job.run(at).await.unwrap();
    assert!(summary.contains(": 0 findings opened"), "{summary}");
    assert_eq!(outbox.read_all().unwrap().len(), sent);
    assert_eq!(
        (ids(&tamper.meter_id).await, ids(&stuck.meter_id).await),
        before
    );
    // `/metrics` counted every announced finding, by kind.
    let counted: f64 = metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("meterflow_findings_opened_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted as usize, outbox.read_all().unwrap().len());
    assert!(metrics
        .encode()
        .contains(r#"meterflow_findings_opened_total{kind="tamper"}"#));
    let open = findings.open_page(None, 1_000).await.unwrap().findings;
    let mut keys: Vec<(MeterId, FindingKind)> =
        open.iter().map(|f| (f.meter_id.clone(), f.kind)).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        n,
        "one open finding per meter and kind: {open:#?}"
    );
    drop(job);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scan_finds_the_injected_outages_sags_and_swells_of_a_short_up_run() {
    let dir = temp_dir("scan-e2e-supply");
    // Scanned below, at chosen instants, once everything is stored.
    let (stack, injections) = start_fleet(&dir, 11, "outage,sag,swell", 1, None).await;
    let of = |kind| injected(&injections, kind);
    let (outage, sag, swell) = (
        of(FaultKind::Outage),
        of(FaultKind::Sag),
        of(FaultKind::Swell),
    );
    // Two hours past the last injection's end, so each is over and its aftermath stored.
    let until = [&outage, &sag, &swell]
        .iter()
        .map(|i| i.to)
        .max()
        .unwrap()
        .add_millis(2 * 3_600_000);
    while stack.clock.now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let findings = stack.findings.clone();
    let metrics = stack.metrics.clone();
    let outbox = stack.outbox.clone();
    let registry = stack.ports.registry.clone();
    let readings = stack.ports.readings.clone();
    stack.shutdown().await.unwrap();

    let job = ScanJob::new(registry, readings, findings.clone(), outbox, schedule())
        .with_metrics(metrics);
    // Each condition scanned an hour after it ended (inside the one-day report window): a sag
    // or swell is a finding of its own kind; an outage is reported at its restoration (the
    // scan sees the silence, or the zero-voltage reading, and the supply back after it).
    for (injection, kinds) in [
        (&sag, &[FindingKind::VoltageSag][..]),
        (&swell, &[FindingKind::VoltageSwell][..]),
        (
            &outage,
            &[FindingKind::Restoration, FindingKind::MeterOutage][..],
        ),
    ] {
        job.run(injection.to.add_millis(3_600_000)).await.unwrap();
        let stored = findings.for_meter(&injection.meter_id).await.unwrap();
        assert!(
            stored.iter().any(|f| kinds.contains(&f.kind)),
            "{:?} on {} ({} to {}): expected one of {kinds:?}, found {stored:#?}",
            injection.kind,
            injection.meter_id,
            injection.from,
            injection.to
        );
    }
    // Meters with nothing injected have no supply findings.
    let injected: Vec<&MeterId> = injections.iter().map(|i| &i.meter_id).collect();
    let open = findings.open_page(None, 1_000).await.unwrap().findings;
    for f in &open {
        let supply = matches!(
            f.kind,
            FindingKind::VoltageSag
                | FindingKind::VoltageSwell
                | FindingKind::MeterOutage
                | FindingKind::Restoration
        );
        assert!(
            !supply || injected.contains(&&f.meter_id),
            "a supply finding on a healthy meter: {f:#?}"
        );
    }
    drop(job);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_bypassing_its_meter_is_found_as_the_top_suspect_of_its_feeder_only() {
    let dir = temp_dir("scan-e2e-bypass");
    // Seed 3: the bypass (one consumer of the twelve, six to a feeder) starts 8 hours into the
    // run and lasts 65 hours, about 9% of its feeder's energy; the scan runs at its end, on
    // what the stack stored.
    let (stack, injections) = start_fleet(&dir, 3, "bypass", 2, None).await;
    let bypass = injected(&injections, FaultKind::Bypass);
    assert_eq!(injections.len(), 1, "{injections:#?}");
    let registry = stack.ports.registry.clone();
    let feeder_of = registry
        .get(&bypass.meter_id)
        .await
        .unwrap()
        .and_then(|m| m.feeder_id)
        .expect("the thief sits under a feeder");
    let until = bypass.to;
    while stack.clock.now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let findings = stack.findings.clone();
    let metrics = stack.metrics.clone();
    let outbox = stack.outbox.clone();
    let readings = stack.ports.readings.clone();
    stack.shutdown().await.unwrap();

    let job = ScanJob::new(registry, readings, findings.clone(), outbox, schedule())
        .with_metrics(metrics);
    job.run(until).await.unwrap();
    let open = findings.open_page(None, 1_000).await.unwrap().findings;
    let losses: Vec<&MeterId> = open
        .iter()
        .filter(|f| f.kind == FindingKind::FeederLoss)
        .map(|f| &f.meter_id)
        .collect();
    assert_eq!(
        losses,
        vec![&feeder_of],
        "a feeder loss on the thief's feeder and no other, bypass {} to {} on {}: {open:#?}",
        bypass.from,
        bypass.to,
        bypass.meter_id
    );
    let mut suspects: Vec<(&MeterId, f64)> = open
        .iter()
        .filter(|f| f.kind == FindingKind::LossSuspect)
        .map(|f| (&f.meter_id, f.score))
        .collect();
    suspects.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(
        suspects.first().map(|s| s.0),
        Some(&bypass.meter_id),
        "the thief is the top suspect: {open:#?}"
    );
    drop(job);
    let _ = std::fs::remove_dir_all(&dir);
}

const QUARTER: i64 = 900_000;

/// A uniform draw in [0, 1) fixed by `key` (SplitMix64's finalizer).
fn unit(key: u64) -> f64 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
}

/// Household `j`'s true energy in quarter `slot` of day `day`, kWh: a night base, a morning and
/// an evening peak, the day's level ±5% and each quarter ±10% around it.
fn household_kwh(j: u64, day: i64, slot: i64) -> f64 {
    let h = slot as f64 / 4.0;
    let shape = 0.05
        + 0.08 * (-((h - 7.5) / 1.5f64).powi(2)).exp()
        + 0.2 * (-((h - 19.0) / 2.5f64).powi(2)).exp();
    let key = (j << 40) ^ ((day as u64) << 8);
    let level = 1.0 + 0.1 * (unit(key) - 0.5);
    let quarter = 1.0 + 0.2 * (unit(key ^ ((slot as u64 + 1) << 20)) - 0.5);
    shape * level * quarter * (1.0 + 0.15 * j as f64)
}

/// One telemetry v1 batch message per local (UTC) day of `days` days from `t0` for `meter`,
/// which reports `kept(day)` of household `j`'s true consumption (register, and power with it,
/// as a partial bypass shows it).
fn daily_batches(
    meter: &MeterId,
    j: u64,
    t0: i64,
    days: i64,
    kept: impl Fn(i64) -> f64,
) -> Vec<(String, Vec<u8>)> {
    let topic = format!("meters/{meter}/telemetry");
    let mut register = 1_000.0 + 100.0 * j as f64;
    let reading = |k: i64, register: f64, kwh: f64| {
        let ts = Timestamp::from_millis(t0 + k * QUARTER);
        let mut r =
            Reading::register_only(meter.clone(), ts, ts, Energy::from_kwh(register).unwrap());
        r.seq = Some(k as u64);
        r.power_w = Some((kwh * 4_000.0 * 10.0).round() / 10.0);
        let volts = 230.0 + 4.0 * (unit(j ^ ((k as u64) << 16)) - 0.5);
        r.voltage_v = Some((volts * 10.0).round() / 10.0);
        r.relay = Some(RelayState::Closed);
        encode_reading(&r)
    };
    (0..days)
        .map(|d| {
            let mut elements = Vec::with_capacity(97);
            if d == 0 {
                elements.push(reading(0, register, 0.1));
            }
            for slot in 0..96 {
                let kwh = household_kwh(j, d, slot) * kept(d);
                register += kwh;
                elements.push(reading(d * 96 + slot + 1, register, kwh));
            }
            let body = format!(
                r#"{{"v":1,"meter_id":"{meter}","readings":[{}]}}"#,
                elements.join(",")
            );
            (topic.clone(), body.into_bytes())
        })
        .collect()
}

/// What the scans of a stopped stack need.
struct Stopped {
    findings: std::sync::Arc<dyn meter_core::ports::FindingStore>,
    metrics: std::sync::Arc<meter_local::stack::metrics::StackMetrics>,
    outbox: std::sync::Arc<meter_local::stack::outbox::Outbox>,
    registry: std::sync::Arc<dyn meter_core::ports::MeterRegistry>,
    readings: std::sync::Arc<dyn meter_core::ports::ReadingStore>,
}

impl Stopped {
    /// The scan job with the production schedule (35 days of history) over these stores.
    fn production_scan(&self) -> ScanJob {
        ScanJob::new(
            self.registry.clone(),
            self.readings.clone(),
            self.findings.clone(),
            self.outbox.clone(),
            ScanSchedule::default(),
        )
        .with_metrics(self.metrics.clone())
    }
}

/// The meter's sustained-theft findings.
async fn sustained_thefts(
    findings: &dyn meter_core::ports::FindingStore,
    meter: MeterId,
) -> Vec<meter_core::anomaly::reconcile::StoredFinding> {
    findings
        .for_meter(&meter)
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.kind == FindingKind::SustainedTheft)
        .collect()
}

/// Publishes `messages` over MQTT, waits until all `expected` readings are stored (none
/// quarantined), and stops the stack.
async fn publish_then_stop(stack: Stack, messages: &[(String, Vec<u8>)], expected: u64) -> Stopped {
    let started = Instant::now();
    publish_all(stack.mqtt_addr, messages).await;
    while stack.metrics.snapshot().accounted() < expected {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {:?} of {expected} readings accounted",
            stack.metrics.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ingested = stack.metrics.snapshot();
    assert_eq!(
        (ingested.stored, ingested.quarantined),
        (expected, 0),
        "{ingested:?}"
    );
    let findings = stack.findings.clone();
    let metrics = stack.metrics.clone();
    let outbox = stack.outbox.clone();
    let registry = stack.ports.registry.clone();
    let readings = stack.ports.readings.clone();
    stack.shutdown().await.unwrap();
    Stopped {
        findings,
        metrics,
        outbox,
        registry,
        readings,
    }
}

/// Publishes each (topic, payload) at QoS 1 and waits until the broker acknowledged them all.
async fn publish_all(addr: std::net::SocketAddr, messages: &[(String, Vec<u8>)]) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new("scan-e2e-publisher", addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let sender = {
        let messages = messages.to_vec();
        tokio::spawn(async move {
            for (topic, payload) in messages {
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
            }
            client
        })
    };
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked < messages.len() {
        assert!(
            Instant::now() < deadline,
            "broker acknowledged only {acked} of {}",
            messages.len()
        );
        if let Ok(Event::Incoming(Packet::PubAck(_))) = eventloop.poll().await {
            acked += 1;
        }
    }
    let client = sender.await.unwrap();
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reporting_half_its_consumption_for_days_is_one_sustained_theft_from_its_onset()
{
    let dir = temp_dir("scan-e2e-sustained");
    let stack = start_bare(&dir).await;

    // A steady series built here (the simulator's long bypass is the next test) and published
    // as a meter would. Six households under one feeder (its meter registered but silent, so no
    // energy balance: only their own series speak), 35 days of readings ending at least four
    // days before now; the third reports half of its consumption from day 28 on.
    const DAYS: i64 = 35;
    const ONSET: i64 = 28;
    let now = stack.clock.now().millis();
    let t0 = now - now.rem_euclid(DAY_MS) - (DAYS + 4) * DAY_MS;
    let ids: Vec<MeterId> = (0..6)
        .map(|j| MeterId::parse(&format!("sus-c-{j}")).unwrap())
        .collect();
    let thief = ids[2].clone();
    let feeder = MeterId::parse("sus-f-1").unwrap();
    // The registry refuses consumers under a feeder it does not know: the feeder first.
    stack
        .ports
        .registry
        .upsert(&MeterInfo {
            kind: MeterKind::Feeder,
            ..MeterInfo::new_consumer(feeder.clone(), chrono_tz::Tz::UTC)
        })
        .await
        .unwrap();
    let mut messages = Vec::new();
    for (j, id) in ids.iter().enumerate() {
        let mut info = MeterInfo::new_consumer(id.clone(), chrono_tz::Tz::UTC);
        info.feeder_id = Some(feeder.clone());
        stack.ports.registry.upsert(&info).await.unwrap();
        let stealing = *id == thief;
        messages.extend(daily_batches(id, j as u64, t0, DAYS, |d| {
            if stealing && d >= ONSET {
                0.5
            } else {
                1.0
            }
        }));
    }
    let expected = ids.len() as u64 * (DAYS as u64 * 96 + 1);
    let stopped = publish_then_stop(stack, &messages, expected).await;
    // The production schedule's settings: 35 days of history, the last day reported.
    let job = stopped.production_scan();
    let Stopped {
        findings, outbox, ..
    } = stopped;
    let end_of = |day: i64| Timestamp::from_millis(t0 + (day + 1) * DAY_MS);
    let sustained = |meter: &MeterId| sustained_thefts(findings.as_ref(), meter.clone());
    // A daily scan after each day from the last clean one to a week into the theft.
    let mut first_open = None;
    let mut first_id = None;
    for day in ONSET - 1..DAYS {
        job.run(end_of(day)).await.unwrap();
        let stored = sustained(&thief).await;
        assert!(stored.len() <= 1, "day {day}: {stored:#?}");
        if let Some(f) = stored.first() {
            assert!(f.is_open(), "day {day}: {f:#?}");
            first_open.get_or_insert(day);
            let id = first_id.get_or_insert_with(|| f.id.clone()).clone();
            assert_eq!(id, f.id, "day {day}: the same finding, not a new one");
            assert_eq!(f.to, end_of(day), "day {day}: updated to the latest day");
        }
    }
    let opened_on = first_open.expect("the theft was found within a week");
    // Not on the first day of the theft (no single day is enough), and within a week of it.
    assert!(
        (ONSET + 1..ONSET + 7).contains(&opened_on),
        "opened after day {opened_on}"
    );
    let stored = sustained(&thief).await;
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let f = &stored[0];
    assert_eq!(f.opened_at, end_of(opened_on));
    // The evidence window starts at the onset (the end of its first quarter), give or take a day.
    let onset = t0 + ONSET * DAY_MS + QUARTER;
    assert!(
        (f.from.millis() - onset).abs() <= DAY_MS,
        "evidence from {} for an onset at {}: {f:#?}",
        f.from,
        Timestamp::from_millis(onset)
    );
    assert!(f.explanation.contains("under-reported"), "{f:#?}");
    // No healthy household has a sustained-theft finding, and the thief's was announced once.
    for id in ids.iter().filter(|id| **id != thief) {
        let stored = sustained(id).await;
        assert!(stored.is_empty(), "{id}: {stored:#?}");
    }
    let announced: Vec<String> = outbox
        .read_all()
        .unwrap()
        .into_iter()
        .map(|m| m.subject)
        .filter(|s| s.starts_with("sustained_theft"))
        .collect();
    assert_eq!(announced, vec![format!("sustained_theft on {thief}")]);
    drop(job);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts a stack in `dir` with no fleet and no scheduled jobs: the test publishes and scans.
async fn start_bare(dir: &std::path::Path) -> Stack {
    let mut cfg = StackConfig::new(dir.to_path_buf());
    cfg.mqtt_addr = "127.0.0.1:0".parse().unwrap();
    cfg.http_addr = "127.0.0.1:0".parse().unwrap();
    cfg.echo_outbox = false;
    cfg.forecast = None;
    cfg.scan = None;
    Stack::start(cfg).await.unwrap()
}

/// The seed of the long-bypass test's fleet (see there).
const LONG_BYPASS_SEED: u64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_long_bypass_is_one_sustained_theft_on_the_thief_only_within_a_week() {
    let dir = temp_dir("scan-e2e-long-bypass");
    let stack = start_bare(&dir).await;

    // The simulator itself, run ahead of the stack rather than in real time (weeks of simulated
    // time would take minutes even at the stack's top speed): six consumers under one feeder
    // meter, one of them with its whole load around the meter for weeks from 24–31 days in,
    // started far enough back that a week of the theft lies before now.
    let now = stack.clock.now().millis();
    let t0 = now - now.rem_euclid(DAY_MS) - 42 * DAY_MS;
    let mut fleet = meter_sim::Fleet::new(
        FleetConfig {
            consumers: 6,
            feeders: 1,
            seed: LONG_BYPASS_SEED,
            timezone: chrono_tz::Tz::UTC,
            faults: meter_sim::FaultPlan::only(&[FaultKind::LongBypass], 0.01),
            ..FleetConfig::default()
        },
        Timestamp::from_millis(t0),
    );
    let bypass = injected(fleet.injections(), FaultKind::LongBypass);
    let onset_day = (bypass.from.millis() - t0).div_euclid(DAY_MS);
    let last_day = onset_day + 8;
    assert!(t0 + (last_day + 1) * DAY_MS < now, "{bypass:?}");
    // Registered as `up` registers its fleet: feeders first.
    for info in fleet.registry() {
        stack.ports.registry.upsert(&info).await.unwrap();
    }
    // What the meters publish up to the end of the last scanned day, re-sent as one batch per
    // meter and day (as a meter catching up would) to keep the test fast.
    let until = Timestamp::from_millis(t0 + (last_day + 1) * DAY_MS);
    let mut by_meter_day: BTreeMap<(MeterId, i64), Vec<String>> = BTreeMap::new();
    let mut expected = 0u64;
    for msg in fleet.advance(until) {
        let ctx = meter_core::MessageContext {
            topic: Some(&msg.topic),
            received: until.add_millis(60_000),
        };
        let limits = meter_core::Limits::default();
        for r in meter_core::telemetry::parse_message(&msg.payload, ctx, &limits) {
            let r = r.unwrap();
            let day = (r.ts.millis() - 1 - t0).div_euclid(DAY_MS);
            by_meter_day
                .entry((r.meter_id.clone(), day))
                .or_default()
                .push(encode_reading(&r));
            expected += 1;
        }
    }
    let messages: Vec<(String, Vec<u8>)> = by_meter_day
        .into_iter()
        .map(|((meter, _), elements)| {
            let body = format!(
                r#"{{"v":1,"meter_id":"{meter}","readings":[{}]}}"#,
                elements.join(",")
            );
            (format!("meters/{meter}/telemetry"), body.into_bytes())
        })
        .collect();
    let stopped = publish_then_stop(stack, &messages, expected).await;
    // Daily scans with the production settings, from the day before the onset to a week after.
    let job = stopped.production_scan();
    let Stopped {
        findings,
        outbox,
        registry,
        ..
    } = stopped;
    let end_of = |day: i64| Timestamp::from_millis(t0 + (day + 1) * DAY_MS);
    let sustained = |meter: MeterId| sustained_thefts(findings.as_ref(), meter);
    let mut opened_on = None;
    for day in onset_day - 1..=last_day {
        job.run(end_of(day)).await.unwrap();
        let stored = sustained(bypass.meter_id.clone()).await;
        assert!(stored.len() <= 1, "day {day}: {stored:#?}");
        if !stored.is_empty() {
            opened_on.get_or_insert(day);
        }
    }
    let opened_on = opened_on.unwrap_or_else(|| {
        panic!(
            "no sustained theft on {} within a week of its bypass from {}",
            bypass.meter_id, bypass.from
        )
    });
    // Not before the bypass began, and within a week of its first whole day.
    assert!(
        (onset_day + 1..=onset_day + 8).contains(&opened_on),
        "opened after day {opened_on}, bypass from day {onset_day}"
    );
    let stored = sustained(bypass.meter_id.clone()).await;
    assert!(stored[0].is_open(), "{stored:#?}");
    // The evidence starts within a day of the bypass.
    assert!(
        (stored[0].from.millis() - bypass.from.millis()).abs() <= DAY_MS + DAY_MS / 2,
        "evidence from {} for a bypass from {}",
        stored[0].from,
        bypass.from
    );
    for info in registry.list(None, 100).await.unwrap().meters {
        if info.meter_id != bypass.meter_id {
            let stored = sustained(info.meter_id.clone()).await;
            assert!(stored.is_empty(), "{}: {stored:#?}", info.meter_id);
        }
    }
    let announced: Vec<String> = outbox
        .read_all()
        .unwrap()
        .into_iter()
        .map(|m| m.subject)
        .filter(|s| s.starts_with("sustained_theft"))
        .collect();
    assert_eq!(
        announced,
        vec![format!("sustained_theft on {}", bypass.meter_id)]
    );
    drop(job);
    let _ = std::fs::remove_dir_all(&dir);
}
