//! The simulator's `mqtts://` path (what `meterflow simulate --broker mqtts://... --cert --key
//! --ca` uses against AWS IoT Core) against a real TLS broker that, like IoT Core, demands a
//! client certificate signed by its CA: rumqttd with rustls and client-certificate
//! verification, on 127.0.0.1, with a throwaway CA made by rcgen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meter_core::Timestamp;
use meter_local::stack::broker::free_port;
use meter_local::stack::clock::SimClock;
use meter_local::stack::metrics::StackMetrics;
use meter_local::stack::publisher::{FleetRunner, MqttTarget, TlsFiles};
use meter_sim::{FaultPlan, Fleet, FleetConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rumqttd::{Broker, Config, ConnectionSettings, Notification, RouterConfig, ServerSettings};

/// PEM files of one test PKI: a CA, the broker's certificate, a device certificate it signed,
/// and a device certificate from a different CA.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    device: TlsFiles,
    rogue: TlsFiles,
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate for `names` signed by `issuer`: (certificate PEM, key PEM).
fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, names: &[&str], cn: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let root = ca("meterflow test CA");
    let other = ca("someone else's CA");
    let ca_path = write(dir, "ca.pem", &root.pem());
    let (server_cert, server_key) = leaf(&root, &["127.0.0.1", "localhost"], "broker");
    let (device_cert, device_key) = leaf(&root, &[], "meterflow-sim");
    let (rogue_cert, rogue_key) = leaf(&other, &[], "meterflow-sim");
    Pki {
        server_cert: write(dir, "server.pem", &server_cert),
        server_key: write(dir, "server.key", &server_key),
        device: TlsFiles {
            ca: ca_path.clone(),
            cert: write(dir, "device.pem", &device_cert),
            key: write(dir, "device.key", &device_key),
        },
        // Trusts the broker (our CA) but presents a certificate the broker never issued.
        rogue: TlsFiles {
            ca: ca_path.clone(),
            cert: write(dir, "rogue.pem", &rogue_cert),
            key: write(dir, "rogue.key", &rogue_key),
        },
        ca: ca_path,
    }
}

/// Starts rumqttd with one TLS listener that requires a client certificate from `pki`'s CA, and
/// returns its port and a local link subscribed to all telemetry.
fn tls_broker(pki: &Pki) -> (u16, rumqttd::local::LinkRx) {
    let port = free_port().unwrap();
    let server = ServerSettings {
        name: "tls".into(),
        listen: ([127, 0, 0, 1], port).into(),
        tls: Some(rumqttd::TlsConfig::Rustls {
            capath: Some(pki.ca.display().to_string()),
            certpath: pki.server_cert.display().to_string(),
            keypath: pki.server_key.display().to_string(),
        }),
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: 256 * 1024,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 100,
            max_outgoing_packet_count: 1_000,
            max_segment_size: 1024 * 1024,
            max_segment_count: 4,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    };
    let mut broker = Broker::new(config);
    let (mut tx, rx) = broker.link("observer").unwrap();
    tx.subscribe("meters/+/telemetry").unwrap();
    std::thread::spawn(move || {
        if let Err(e) = broker.start() {
            eprintln!("TLS broker stopped: {e}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS broker did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (port, rx)
}

/// A fleet of `consumers` meters publishing to the TLS broker with `tls` until stopped.
fn runner(consumers: usize) -> (FleetRunner, Arc<AtomicBool>) {
    let start = Timestamp::from_millis(1_763_769_600_000);
    let cfg = FleetConfig {
        consumers,
        feeders: 1,
        seed: 5,
        faults: FaultPlan::none(),
        ..FleetConfig::default()
    };
    let stopping = Arc::new(AtomicBool::new(false));
    let runner = FleetRunner {
        identity: meter_local::stack::publisher::fleet_identity(&cfg),
        fleet: Arc::new(Mutex::new(Fleet::new(cfg, start))),
        // A quarter hour of simulated time every 0.25 s.
        clock: SimClock::new(start, 3_600.0),
        metrics: Arc::new(StackMetrics::new()),
        stopping: stopping.clone(),
        state_path: None,
        tick: Duration::from_millis(20),
        push_spread: Duration::ZERO,
    };
    (runner, stopping)
}

fn target(port: u16, tls: TlsFiles) -> MqttTarget {
    MqttTarget {
        host: "127.0.0.1".into(),
        port,
        tls: Some(tls),
        client_prefix: "meterflow-sim".into(),
        connections: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_publishes_over_mutual_tls_to_a_broker_that_checks_its_certificate() {
    let dir = std::env::temp_dir().join(format!("meterflow-mqtts-ok-{}", std::process::id()));
    let pki = pki(&dir);
    let (port, mut rx) = tls_broker(&pki);
    let (runner, stopping) = runner(5);
    let fleet = tokio::spawn(runner.run(target(port, pki.device)));

    // Every meter (5 consumers and the feeder) is heard through the TLS listener.
    let mut meters = HashSet::new();
    let mut messages = 0_u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while meters.len() < 6 && Instant::now() < deadline {
        if let Ok(Ok(Some(Notification::Forward(f)))) =
            tokio::time::timeout(Duration::from_millis(500), rx.next()).await
        {
            let topic = String::from_utf8_lossy(&f.publish.topic).into_owned();
            let body: serde_json::Value = serde_json::from_slice(&f.publish.payload).unwrap();
            assert!(body["energy_import_kwh"].is_number(), "{body}");
            meters.insert(topic);
            messages += 1;
        }
    }
    stopping.store(true, Ordering::Relaxed);
    let summary = fleet.await.unwrap().unwrap();
    assert_eq!(meters.len(), 6, "telemetry heard from {meters:?}");
    assert!(summary.published >= messages, "{summary:?} vs {messages}");
    assert_eq!(summary.acked, summary.published, "{summary:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_certificate_from_another_ca_is_refused_and_nothing_is_delivered() {
    let dir = std::env::temp_dir().join(format!("meterflow-mqtts-rogue-{}", std::process::id()));
    let pki = pki(&dir);
    let (port, mut rx) = tls_broker(&pki);
    let (runner, stopping) = runner(2);
    let fleet = tokio::spawn(runner.run(target(port, pki.rogue)));

    // However long the fleet tries, the broker forwards nothing from it.
    let delivered = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match rx.next().await {
                Ok(Some(Notification::Forward(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    stopping.store(true, Ordering::Relaxed);
    assert!(!delivered, "a message got through with a rogue certificate");
    // The fleet gives up cleanly: nothing it published was acknowledged.
    if let Ok(Ok(Ok(summary))) = tokio::time::timeout(Duration::from_secs(20), fleet).await {
        assert_eq!(summary.acked, 0, "{summary:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
