//! `meterflow bench pipeline`: the local stack end to end under load. Simulated meters publish
//! over MQTT (QoS 1) through the embedded broker into the rule bridge, the ingest handler and
//! SQLite; the benchmark prints one JSON object with what was published and what became of it,
//! the sustained rate, and publish-to-stored latency.
//!
//! Latency is measured from the moment a reading was due to be pushed (its timestamp on the
//! simulated clock plus its meter's push delay, mapped back to wall time) to the commit of the
//! batch that stored it, so it includes the simulator's own tick and is an upper bound on
//! broker + bridge + ingest + SQLite time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meter_core::Timestamp;
use meter_local::stack::clock::SimClock;
use meter_local::stack::publisher::{publish_delay, DEFAULT_PUSH_SPREAD};
use meter_local::stack::{Stack, StackConfig};

use crate::up::fleet_config;

/// `bench pipeline` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelineArgs {
    /// Simulated consumer meters.
    #[arg(long, default_value_t = 10_000)]
    pub meters: usize,
    /// Seconds of publishing (the drain afterwards is included in the rate).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Offered load, readings per second (sets the simulated speed).
    #[arg(long, default_value_t = 25_000.0)]
    pub rate: f64,
    /// MQTT connections the meters share.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Injected faults (`none` measures the clean path).
    #[arg(long, default_value = "none")]
    pub faults: String,
    /// Store directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print only the JSON object.
    #[arg(long)]
    pub json: bool,
}

const INTERVAL_MINUTES: u32 = 15;

/// Runs the benchmark.
pub async fn run(args: &PipelineArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.meters > 0, "--meters must be at least 1");
    let (dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("meterflow-bench-pipeline-{}", std::process::id())),
            true,
        ),
    };
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let interval_s = f64::from(INTERVAL_MINUTES) * 60.0;
    let speed = args.rate * interval_s / args.meters as f64;
    let mut cfg = StackConfig::new(dir.clone());
    cfg.mqtt_addr = "127.0.0.1:0".parse()?;
    cfg.http_addr = "127.0.0.1:0".parse()?;
    cfg.speed = speed;
    cfg.publishers = args.publishers;
    cfg.echo_outbox = false;
    // A short tick keeps the simulator's own delay out of the latency figures.
    cfg.tick = Duration::from_millis(5);
    cfg.fleet = Some(fleet_config(
        args.meters,
        0,
        7,
        &args.faults,
        INTERVAL_MINUTES,
        "UTC",
    )?);
    let latencies = Arc::new(Mutex::new(Vec::<f64>::with_capacity(1 << 20)));
    let clock_cell: Arc<Mutex<Option<SimClock>>> = Arc::new(Mutex::new(None));
    {
        let latencies = latencies.clone();
        let clock_cell = clock_cell.clone();
        cfg.observer = Some(Arc::new(move |parts, stored_at| {
            let Some(clock) = clock_cell.lock().ok().and_then(|c| *c) else {
                return;
            };
            let mut out: Vec<f64> = parts
                .iter()
                .filter_map(|(topic, payload)| {
                    let meter = meter_core::telemetry::meter_id_from_topic(topic)?;
                    let due = clock.wall_instant_of(first_ts(payload)?)
                        + publish_delay(meter, DEFAULT_PUSH_SPREAD, &clock);
                    Some(stored_at.saturating_duration_since(due).as_secs_f64() * 1_000.0)
                })
                .collect();
            if let Ok(mut l) = latencies.lock() {
                l.append(&mut out);
            }
        }));
    }
    let stack = Stack::start(cfg)
        .await
        .context("starting the local stack")?;
    if let Ok(mut c) = clock_cell.lock() {
        *c = Some(stack.clock);
    }
    if !args.json {
        eprintln!(
            "{} meters at {:.0}x speed ({:.0} readings/s offered) for {} s...",
            args.meters, speed, args.rate, args.seconds
        );
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let report = stack.shutdown().await.context("stopping the local stack")?;
    let elapsed = started.elapsed().as_secs_f64();

    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if l.is_empty() {
            return 0.0;
        }
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        (l[i.min(l.len() - 1)] * 100.0).round() / 100.0
    };
    let ing = &report.ingested;
    let published = report.fleet.published;
    let accounted = ing.stored + ing.duplicates + ing.quarantined;
    let out = serde_json::json!({
        "meters": args.meters,
        "seconds": args.seconds,
        "speed": (speed * 10.0).round() / 10.0,
        "offered_readings_per_s": args.rate,
        "published": published,
        "acked": report.fleet.acked,
        "stored": ing.stored,
        "duplicates": ing.duplicates,
        "quarantined": ing.quarantined,
        "lost": published as i64 - accounted as i64,
        "readings_per_s": (ing.stored as f64 / elapsed).round(),
        "latency_p50_ms": pct(0.50),
        "latency_p99_ms": pct(0.99),
        "latency_max_ms": pct(1.0),
        "peak_rss_mb": peak_rss_mb(),
    });
    say!("{out}");
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// The first `"ts"` of a telemetry payload (RFC 3339 or epoch ms), found without a full parse so
/// the observer stays cheap on the bridge's thread.
fn first_ts(payload: &[u8]) -> Option<Timestamp> {
    let text = std::str::from_utf8(payload).ok()?;
    let at = text.find("\"ts\":")? + 5;
    let rest = text[at..].trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        Timestamp::parse_rfc3339(&s[..s.find('"')?]).ok()
    } else {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok().map(Timestamp::from_millis)
    }
}

/// Peak resident memory (VmHWM) of this process in MiB; 0 where /proc is not available.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_timestamp_is_found_in_either_form() {
        let a = first_ts(br#"{"v":1,"ts":"2025-11-22T08:15:00Z","energy_import_kwh":1}"#);
        assert_eq!(a.map(Timestamp::millis), Some(1_763_799_300_000));
        let b = first_ts(br#"{"v":1,"ts": 1763799300000}"#);
        assert_eq!(b.map(Timestamp::millis), Some(1_763_799_300_000));
        assert_eq!(first_ts(b"garbage"), None);
    }
}
