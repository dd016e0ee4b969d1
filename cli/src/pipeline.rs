//! `meterflow bench pipeline`: the local stack end to end under load. Simulated meters publish
//! over MQTT (QoS 1) through the embedded broker into the rule bridge, the ingest handler and
//! SQLite; the benchmark prints one JSON object with what was published and what became of it,
//! the sustained rate, and publish-to-stored latency.
//!
//! Latency is measured from the moment a reading was due to be pushed (its timestamp on the
//! simulated clock plus its meter's push delay, mapped back to wall time) to the commit of the
//! batch that stored it, so it includes the simulator's own tick and is an upper bound on
//! broker + bridge + ingest + SQLite time.
//!
//! The stack starts its fleet one interval back, so every meter's first reading is due at
//! once (a newcomer's `meterflow up` comes alive immediately). That start-up burst is not the
//! sustained load being measured: readings due in the first `--warmup` seconds are left out of
//! the latency percentiles and reported on their own (`startup_latency_max_ms`); they still
//! count in every total and in `lost`.
//!
//! Stopping the fleet ends a run the same way in reverse: the publisher sends everything still
//! waiting for its push delay at once (up to an interval's readings of every meter, so that its
//! saved state never claims an unsent reading), a burst the steady load never makes. Readings
//! due after the benchmark asked the stack to stop are therefore left out of the percentiles
//! too, and reported as `shutdown_readings` and `shutdown_latency_max_ms`; they also count in
//! every total and in `lost`.
//!
//! How the offered load arrives is set by `--push-spread`: each meter pushes its reading a
//! stable, meter-specific delay after its interval ends, spread over that much simulated time.
//! The default spreads the pushes over the whole interval, a steady stream at `--rate` (what a
//! head-end that randomises upload slots sees); `--push-spread 5m` is what `meterflow up` does,
//! bursts three times the average rate followed by silence.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meter_core::Timestamp;
use meter_local::stack::clock::SimClock;
use meter_local::stack::publisher::publish_delay;
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
    /// Simulated time over which the meters' pushes for one interval are spread (default: the
    /// whole 15-minute interval, a steady stream; `5m` gives the bursts `meterflow up` makes).
    #[arg(long, value_parser = crate::forecast::parse_duration)]
    pub push_spread: Option<Duration>,
    /// Seconds at the start whose readings (the fleet's start-up burst) are left out of the
    /// latency percentiles.
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// Injected faults (`none` measures the clean path).
    #[arg(long, default_value = "none")]
    pub faults: String,
    /// Simulated time of day (UTC, `HH:MM`, today) the fleet starts at, or `now`. The default
    /// keeps the daily forecast and scan, which run at simulated midnight, out of a 20 s run at
    /// 20,000 /s (10 simulated hours), so runs at any hour measure the same thing; `18:00`
    /// puts them in the middle of it.
    #[arg(long, default_value = "00:15")]
    pub sim_start: String,
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
    let push_spread = args
        .push_spread
        .unwrap_or(Duration::from_secs(u64::from(INTERVAL_MINUTES) * 60));
    cfg.push_spread = push_spread;
    cfg.start = sim_start(&args.sim_start, meter_local::stack::clock::wall_now())?;
    cfg.fleet = Some(fleet_config(
        args.meters,
        0,
        7,
        &args.faults,
        INTERVAL_MINUTES,
        "UTC",
    )?);
    // Steady-state latencies, those of the start-up burst and those of the shutdown flush.
    let latencies = Arc::new(Mutex::new((
        Vec::<f64>::with_capacity(1 << 20),
        Vec::<f64>::new(),
        Vec::<f64>::new(),
    )));
    // The simulated clock, when the steady state starts, and when it ends (the stop request).
    type Window = (SimClock, Instant, Option<Instant>);
    let clock_cell: Arc<Mutex<Option<Window>>> = Arc::new(Mutex::new(None));
    {
        let latencies = latencies.clone();
        let clock_cell = clock_cell.clone();
        cfg.observer = Some(Arc::new(move |parts, stored_at| {
            let Some((clock, steady_from, steady_until)) = clock_cell.lock().ok().and_then(|c| *c)
            else {
                return;
            };
            let Ok(mut l) = latencies.lock() else {
                return;
            };
            for (topic, payload) in parts {
                let (Some(meter), Some(ts)) = (
                    meter_core::telemetry::meter_id_from_topic(topic),
                    first_ts(payload),
                ) else {
                    continue;
                };
                let due = clock.wall_instant_of(ts) + publish_delay(meter, push_spread, &clock);
                let ms = stored_at.saturating_duration_since(due).as_secs_f64() * 1_000.0;
                match phase_of(due, steady_from, steady_until) {
                    Phase::Startup => l.1.push(ms),
                    Phase::Steady => l.0.push(ms),
                    Phase::Shutdown => l.2.push(ms),
                }
            }
        }));
    }
    let stack = Stack::start(cfg)
        .await
        .context("starting the local stack")?;
    if let Ok(mut c) = clock_cell.lock() {
        let warmup = Duration::from_secs_f64(args.warmup.clamp(0.0, args.seconds as f64));
        *c = Some((stack.clock, Instant::now() + warmup, None));
    }
    if !args.json {
        eprintln!(
            "{} meters at {:.0}x speed ({:.0} readings/s offered) for {} s...",
            args.meters, speed, args.rate, args.seconds
        );
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    if let Ok(mut c) = clock_cell.lock() {
        if let Some(window) = c.as_mut() {
            window.2 = Some(Instant::now());
        }
    }
    let report = stack.shutdown().await.context("stopping the local stack")?;
    let elapsed = started.elapsed().as_secs_f64();

    let (mut l, startup, flushed) = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_by(f64::total_cmp);
    let startup_max = startup.iter().copied().fold(0.0, f64::max);
    let flushed_max = flushed.iter().copied().fold(0.0, f64::max);
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
        "push_spread_s": push_spread.as_secs(),
        "sim_start": args.sim_start,
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
        "latency_samples": l.len(),
        "warmup_s": args.warmup,
        "startup_readings": startup.len(),
        "startup_latency_max_ms": (startup_max * 100.0).round() / 100.0,
        "shutdown_readings": flushed.len(),
        "shutdown_latency_max_ms": (flushed_max * 100.0).round() / 100.0,
        "peak_rss_mb": peak_rss_mb(),
    });
    say!("{out}");
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Which part of a run a reading belongs to, by when it was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Due before the warm-up ended: the fleet's start-up burst.
    Startup,
    /// The sustained load the percentiles measure.
    Steady,
    /// Due after the stop request: sent early, all at once, by the fleet's shutdown flush.
    Shutdown,
}

fn phase_of(due: Instant, steady_from: Instant, steady_until: Option<Instant>) -> Phase {
    if due < steady_from {
        Phase::Startup
    } else if steady_until.is_some_and(|until| due >= until) {
        Phase::Shutdown
    } else {
        Phase::Steady
    }
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

/// `--sim-start`: `now` (`None`), or `HH:MM` UTC on the day of `now`.
fn sim_start(
    arg: &str,
    now: meter_core::Timestamp,
) -> anyhow::Result<Option<meter_core::Timestamp>> {
    if arg == "now" {
        return Ok(None);
    }
    let parsed = arg
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
        .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m));
    let Some((h, m)) = parsed else {
        anyhow::bail!("--sim-start must be HH:MM (UTC) or now, not {arg:?}");
    };
    const DAY_MS: i64 = 86_400_000;
    let midnight = now.millis().div_euclid(DAY_MS) * DAY_MS;
    Ok(Some(meter_core::Timestamp::from_millis(
        midnight + (h * 60 + m) * 60_000,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_due_in_the_warm_up_or_after_the_stop_request_are_kept_out_of_the_steady_state() {
        let t0 = Instant::now();
        let from = t0 + Duration::from_secs(3);
        let until = t0 + Duration::from_secs(20);
        assert_eq!(phase_of(t0, from, None), Phase::Startup);
        assert_eq!(phase_of(from, from, None), Phase::Steady);
        // Before the stop request nothing is a shutdown reading, however late.
        assert_eq!(
            phase_of(t0 + Duration::from_secs(30), from, None),
            Phase::Steady
        );
        assert_eq!(
            phase_of(until - Duration::from_millis(1), from, Some(until)),
            Phase::Steady
        );
        assert_eq!(phase_of(until, from, Some(until)), Phase::Shutdown);
        assert_eq!(
            phase_of(until + Duration::from_millis(400), from, Some(until)),
            Phase::Shutdown
        );
    }

    #[test]
    fn the_simulated_start_is_that_time_of_day_on_todays_date_or_now() {
        let now = meter_core::Timestamp::from_millis(1_763_799_300_000); // 2025-11-22T08:15Z
        let at = |s: &str| {
            sim_start(s, now)
                .unwrap()
                .map(meter_core::Timestamp::millis)
        };
        assert_eq!(at("00:15"), Some(1_763_770_500_000));
        assert_eq!(at("18:00"), Some(1_763_834_400_000));
        assert_eq!(at("now"), None);
        for bad in ["24:00", "7", "ab:cd", "12:60"] {
            assert!(sim_start(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_timestamp_is_found_in_either_form() {
        let a = first_ts(br#"{"v":1,"ts":"2025-11-22T08:15:00Z","energy_import_kwh":1}"#);
        assert_eq!(a.map(Timestamp::millis), Some(1_763_799_300_000));
        let b = first_ts(br#"{"v":1,"ts": 1763799300000}"#);
        assert_eq!(b.map(Timestamp::millis), Some(1_763_799_300_000));
        assert_eq!(first_ts(b"garbage"), None);
    }
}
