//! End to end through the local stack: the embedded broker, the rule bridge, the ingest handler
//! and SQLite, with a simulated fleet publishing and a real MQTT client (rumqttc) sending good,
//! duplicated, out-of-order and bad messages; then a restart on the same data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meter_core::aggregate::Period;
use meter_core::{MeterId, RelayState, Timestamp};
use meter_local::stack::forecast_job::ForecastSchedule;
use meter_local::stack::{Stack, StackConfig};
use meter_sim::{FaultPlan, FleetConfig};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const HOUR: i64 = 3_600_000;
const QUARTER: i64 = 900_000;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meterflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(dir: &Path) -> StackConfig {
    let mut cfg = StackConfig::new(dir.to_path_buf());
    cfg.mqtt_addr = "127.0.0.1:0".parse().unwrap();
    cfg.http_addr = "127.0.0.1:0".parse().unwrap();
    // A quarter hour of simulated time every 0.25 s.
    cfg.speed = 3_600.0;
    cfg.publishers = 2;
    cfg.echo_outbox = false;
    cfg.fleet = Some(FleetConfig {
        consumers: 6,
        feeders: 1,
        seed: 11,
        faults: FaultPlan::none(),
        ..FleetConfig::default()
    });
    cfg
}

/// Publishes each (topic, payload) at QoS 1 and waits until the broker acknowledged them all.
async fn publish_all(addr: std::net::SocketAddr, messages: &[(String, Vec<u8>)]) {
    let mut opts = MqttOptions::new("e2e-test-client", addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    for (topic, payload) in messages {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
    }
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked < messages.len() {
        assert!(
            Instant::now() < deadline,
            "broker acknowledged only {acked}"
        );
        if let Ok(Event::Incoming(Packet::PubAck(_))) = eventloop.poll().await {
            acked += 1;
        }
    }
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
}

fn reading(id: &str, seq: u64, ts: i64, kwh: f64) -> Vec<u8> {
    let ts = Timestamp::from_millis(ts).to_rfc3339();
    format!(
        r#"{{"v":1,"meter_id":"{id}","seq":{seq},"ts":"{ts}","energy_import_kwh":{kwh},"power_w":1000,"voltage_v":231.5,"status":"ok","relay":"closed"}}"#
    )
    .into_bytes()
}

/// Waits until the stack has accounted for `n` more readings than `base`.
async fn wait_accounted(stack: &Stack, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while stack.metrics.snapshot().accounted() < target {
        assert!(
            Instant::now() < deadline,
            "only {:?} accounted, wanted {target}",
            stack.metrics.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_meter_and_the_simulated_fleet_flow_through_mqtt_into_sqlite() {
    let dir = temp_dir("e2e");
    let stack = Stack::start(config(&dir)).await.unwrap();

    // Let the fleet publish for a while first.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // An external meter, two hours behind the simulated clock, publishing an hour of readings
    // out of order, with a redelivery and five kinds of bad message.
    let id = "ext-1";
    let topic = format!("meters/{id}/telemetry");
    let now = stack.clock.now().millis();
    let base = now - now.rem_euclid(HOUR) - 2 * HOUR;
    let good: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            reading(
                id,
                100 + i as u64,
                base + i * QUARTER,
                100.0 + 0.25 * i as f64,
            )
        })
        .collect();
    let order = [0usize, 2, 1, 4, 3];
    let mut messages: Vec<(String, Vec<u8>)> = order
        .iter()
        .map(|&i| (topic.clone(), good[i].clone()))
        .collect();
    messages.push((topic.clone(), good[2].clone())); // redelivered
    let bad: [&[u8]; 5] = [
        br#"{"v":1,"ts":"#,
        br#"{"v":2,"ts":"2025-01-01T00:00:00Z","energy_import_kwh":1}"#,
        br#"{"v":1,"meter_id":"ext-2","ts":"2025-01-01T00:00:00Z","energy_import_kwh":1}"#,
        br#"{"v":1,"ts":"2025-01-01T00:00:00Z"}"#,
        b"\x00\x01binary",
    ];
    for b in bad {
        messages.push((topic.clone(), b.to_vec()));
    }
    let before = stack.metrics.snapshot();
    publish_all(stack.mqtt_addr, &messages).await;
    // The fleet keeps publishing, so wait for at least our messages on top of what was there.
    wait_accounted(&stack, before.accounted() + messages.len() as u64).await;

    // /metrics and /health answer on the HTTP listener.
    let metrics_text = http_get(stack.http_addr, "/metrics").await;
    assert!(metrics_text.contains(r#"meterflow_readings_total{outcome="stored"}"#));
    assert!(metrics_text.contains(r#"meterflow_quarantined_total{reason="malformed_json"}"#));
    assert!(metrics_text.contains("meterflow_ingest_latency_seconds_bucket"));
    assert!(http_get(stack.http_addr, "/health")
        .await
        .contains(r#""status":"ok""#));

    // A relay command reaches the simulated meter through the broker.
    let consumer = stack
        .fleet
        .as_ref()
        .unwrap()
        .lock()
        .unwrap()
        .registry()
        .into_iter()
        .find(|m| m.kind == meter_core::MeterKind::Consumer)
        .unwrap()
        .meter_id;
    stack
        .send_command(consumer.as_str(), br#"{"relay":"open"}"#)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let ports = stack.ports.clone();
    let report = stack.shutdown().await.unwrap();

    // Nothing lost: every message the fleet published was acknowledged and accounted for, and
    // ours on top.
    assert!(report.fleet.published > 0);
    assert_eq!(report.fleet.acked, report.fleet.published);
    let ing = &report.ingested;
    assert_eq!(
        ing.stored + ing.duplicates + ing.quarantined,
        report.fleet.published + messages.len() as u64,
        "{ing:?}"
    );

    // The external meter: five readings stored once, in time order, one duplicate, and each
    // bad message quarantined under its own reason.
    let meter = MeterId::parse(id).unwrap();
    let stored = ports
        .readings
        .range(
            &meter,
            Timestamp::from_millis(base),
            Timestamp::from_millis(base + HOUR),
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 5);
    assert!(stored.windows(2).all(|w| w[0].ts < w[1].ts));
    let quarantined = ports.quarantine.for_meter(id, 50).await.unwrap();
    let mut reasons: Vec<&str> = quarantined.iter().map(|q| q.reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "malformed_json",
            "malformed_json",
            "meter_id_mismatch",
            "schema_violation",
            "unsupported_version"
        ]
    );
    assert!(ing.duplicates >= 1);

    // The hour's aggregate is exactly the register's movement: 1.000 kWh from 4 intervals.
    let hour = Period::Hour(Timestamp::from_millis(base));
    let aggs = ports.aggregates.range(&meter, hour, hour).await.unwrap();
    assert_eq!(aggs.len(), 1);
    assert!((aggs[0].measured.kwh() - 1.0).abs() < 1e-9, "{:?}", aggs[0]);

    // The simulated consumer obeyed the relay command: its latest reading shows the relay open.
    let latest = ports
        .readings
        .before(&consumer, Timestamp::from_millis(i64::MAX / 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.relay, Some(RelayState::Open));
    assert_eq!(latest.power_w, Some(0.0));

    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_the_fleet_with_nothing_lost_or_repeated() {
    let dir = temp_dir("restart");
    let stack = Stack::start(config(&dir)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ports = stack.ports.clone();
    let first = stack.shutdown().await.unwrap();
    assert!(first.ingested.stored > 0);
    let meters: Vec<MeterId> = ports
        .registry
        .by_feeder(&feeder_of(&ports).await)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.meter_id)
        .collect();
    let counts_before = count_readings(&ports, &meters).await;
    drop(ports);

    // Same flags, same data directory: the fleet resumes where it stopped.
    let stack = Stack::start(config(&dir)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ports = stack.ports.clone();
    let second = stack.shutdown().await.unwrap();
    assert_eq!(second.fleet.acked, second.fleet.published);
    let ing = &second.ingested;
    assert_eq!(
        ing.stored + ing.duplicates + ing.quarantined,
        second.fleet.published
    );
    // Resumed, not restarted: nothing the first run published comes again.
    assert_eq!(ing.duplicates, 0, "{ing:?}");
    assert_eq!(ing.quarantined, 0, "{ing:?}");

    let counts_after = count_readings(&ports, &meters).await;
    for (before, after) in counts_before.iter().zip(&counts_after) {
        assert!(after > before, "{counts_before:?} -> {counts_after:?}");
    }
    // Registers only moved forward across the restart: no register-reset events.
    for m in &meters {
        let events = ports
            .events
            .for_meter(
                m,
                Timestamp::from_millis(0),
                Timestamp::from_millis(i64::MAX / 2),
            )
            .await
            .unwrap();
        assert!(
            events
                .iter()
                .all(|e| !format!("{:?}", e.kind).contains("Reset")),
            "{events:?}"
        );
    }

    // A different fleet on the same directory is refused with a clear error.
    let mut other = config(&dir);
    if let Some(f) = other.fleet.as_mut() {
        f.seed = 12;
    }
    let err = match Stack::start(other).await {
        Ok(_) => panic!("a different fleet was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("another fleet"), "{err}");

    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_forecast_run_stores_a_forecast_for_every_simulated_meter() {
    let dir = temp_dir("forecast");
    let mut cfg = config(&dir);
    // Hourly instead of daily, so a few wall seconds at 3600x see several runs; the first
    // finds at most a reading or two per meter, the later ones enough for a forecast.
    cfg.forecast = Some(ForecastSchedule {
        every: Duration::from_secs(3_600),
        shards: 3,
        ..ForecastSchedule::default()
    });
    let stack = Stack::start(cfg).await.unwrap();
    let meters: Vec<MeterId> = stack
        .ports
        .registry
        .list(None, 100)
        .await
        .unwrap()
        .meters
        .into_iter()
        .map(|m| m.meter_id)
        .collect();
    assert_eq!(meters.len(), 7, "6 consumers and a feeder");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missing = meters.clone();
    while !missing.is_empty() {
        assert!(Instant::now() < deadline, "no forecast yet for {missing:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut still = Vec::new();
        for m in missing {
            if stack.forecasts.latest(&m).await.unwrap().is_none() {
                still.push(m);
            }
        }
        missing = still;
    }
    let now = stack.clock.now();
    let fc = stack.forecasts.latest(&meters[0]).await.unwrap().unwrap();
    assert!(fc.issued_at <= now, "issued on simulated time");
    assert_eq!(
        fc.issued_at.millis() % HOUR,
        0,
        "at the top of a simulated hour"
    );
    assert_eq!(fc.points.len(), 192, "48 hours of quarter hours");
    assert_eq!(fc.points[0].target, fc.issued_at.add_millis(QUARTER));
    stack.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn feeder_of(ports: &meter_core::ingest::Ports) -> MeterId {
    // The fleet's feeder ids are f-001, ...; the consumers name it.
    let probe = MeterId::parse("c-00001").unwrap();
    ports
        .registry
        .get(&probe)
        .await
        .unwrap()
        .and_then(|m| m.feeder_id)
        .expect("simulated consumers sit under a feeder")
}

async fn count_readings(ports: &meter_core::ingest::Ports, meters: &[MeterId]) -> Vec<usize> {
    let mut out = Vec::new();
    for m in meters {
        let n = ports
            .readings
            .range(
                m,
                Timestamp::from_millis(0),
                Timestamp::from_millis(i64::MAX / 2),
            )
            .await
            .unwrap()
            .len();
        out.push(n);
    }
    out
}

/// A minimal HTTP/1.1 GET (the test needs no HTTP client crate for two requests).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}
