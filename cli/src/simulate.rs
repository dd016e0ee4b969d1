//! `meterflow simulate`: the simulated fleet publishing to any MQTT broker — a local mosquitto,
//! another machine's `meterflow up`, or AWS IoT Core over `mqtts://` with a device certificate.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meter_local::stack::clock::{wall_now, SimClock};
use meter_local::stack::metrics::StackMetrics;
use meter_local::stack::publisher::{self, FleetRunner, MqttTarget, TlsFiles};
use meter_sim::Fleet;

use crate::up::fleet_config;

/// `simulate` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The broker: `mqtt://HOST:PORT`, or `mqtts://HOST:PORT` (AWS IoT Core: port 8883, with
    /// --cert, --key and --ca).
    #[arg(long)]
    pub broker: String,
    /// Client certificate (PEM) for mqtts.
    #[arg(long, requires_all = ["key", "ca"])]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM) for mqtts.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// CA certificate (PEM) that signed the broker's (AmazonRootCA1.pem for IoT Core).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// MQTT client id prefix; connections are `<prefix>-0`, `<prefix>-1`, ... (with AWS IoT
    /// Core, the policy must allow these client ids).
    #[arg(long, default_value = "meterflow-sim")]
    pub client_id: String,
    /// MQTT connections the meters share.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Simulated consumer meters.
    #[arg(long, default_value_t = 20)]
    pub meters: usize,
    /// Simulated feeder meters.
    #[arg(long, default_value_t = 1)]
    pub feeders: usize,
    /// Simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Injected faults: `default`, `none`, or a comma list.
    #[arg(long, default_value = "none")]
    pub faults: String,
    /// Minutes between readings.
    #[arg(long, default_value_t = 15)]
    pub interval_minutes: u32,
    /// IANA time zone of the meters.
    #[arg(long, default_value = "Australia/Sydney")]
    pub timezone: String,
    /// Keep the fleet's state (registers, clock) in this file and resume from it.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Stop after this many wall-clock seconds (default: until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
}

/// Splits `mqtt://host:port` / `mqtts://host:port` into (tls, host, port).
pub fn parse_broker(url: &str) -> anyhow::Result<(bool, String, u16)> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        anyhow::bail!("--broker {url:?}: expected mqtt://HOST:PORT or mqtts://HOST:PORT");
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .with_context(|| format!("--broker {url:?}: bad port {p:?}"))?,
        ),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    anyhow::ensure!(!host.is_empty(), "--broker {url:?}: no host");
    Ok((tls, host.to_string(), port))
}

/// Publishes until Ctrl-C or `--seconds`.
pub async fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let (tls, host, port) = parse_broker(&args.broker)?;
    let tls_files = match (tls, &args.cert, &args.key, &args.ca) {
        (true, Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        (true, ..) => anyhow::bail!("mqtts:// needs --cert, --key and --ca"),
        (false, ..) => None,
    };
    let cfg = fleet_config(
        args.meters,
        args.feeders,
        args.seed,
        &args.faults,
        args.interval_minutes,
        &args.timezone,
    )?;
    let identity = publisher::fleet_identity(&cfg);
    let (fleet, start) = match &args.state {
        Some(path) => publisher::open_fleet(cfg, path, wall_now())?,
        None => (Fleet::new(cfg, wall_now()), wall_now()),
    };
    let metrics = Arc::new(StackMetrics::new());
    let stopping = Arc::new(AtomicBool::new(false));
    let runner = FleetRunner {
        fleet: Arc::new(Mutex::new(fleet)),
        identity,
        clock: SimClock::new(start, args.speed),
        metrics: metrics.clone(),
        stopping: stopping.clone(),
        state_path: args.state.clone(),
        tick: Duration::from_millis(100),
        push_spread: publisher::DEFAULT_PUSH_SPREAD,
    };
    let task = tokio::spawn(runner.run(MqttTarget {
        host: host.clone(),
        port,
        tls: tls_files,
        client_prefix: args.client_id.clone(),
        connections: args.connections,
    }));
    say!(
        "publishing {} meters to {}:{port} at {}x speed; Ctrl-C stops",
        args.meters + args.feeders.min(args.meters),
        host,
        args.speed
    );
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {
                let s = metrics.snapshot();
                eprintln!("sim {} | published {}", s.sim_time.to_rfc3339(), s.published);
                if args.seconds.is_some_and(|s| started.elapsed() >= Duration::from_secs(s)) {
                    break;
                }
            }
        }
    }
    stopping.store(true, Ordering::Relaxed);
    let summary = task.await.context("simulator task")??;
    say!(
        "published {} messages, {} acknowledged by the broker",
        summary.published,
        summary.acked
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_give_scheme_host_and_port() {
        assert_eq!(
            parse_broker("mqtt://127.0.0.1:1884").unwrap(),
            (false, "127.0.0.1".into(), 1884)
        );
        assert_eq!(
            parse_broker("mqtts://abc-ats.iot.eu-west-1.amazonaws.com").unwrap(),
            (true, "abc-ats.iot.eu-west-1.amazonaws.com".into(), 8883)
        );
        assert!(parse_broker("http://x:1").is_err());
        assert!(parse_broker("mqtt://:1883").is_err());
        assert!(parse_broker("mqtt://h:notaport").is_err());
    }
}
