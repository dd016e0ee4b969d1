//! `meterflow up`: the whole pipeline on this machine — embedded MQTT broker, the rule bridge
//! into the ingest handler, the SQLite store, a simulated fleet publishing over MQTT, the
//! schedulers, the alert outbox and `/health` + `/metrics` — with a live status line, until
//! Ctrl-C.

use std::io::IsTerminal as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meter_local::stack::forecast_job::ForecastSchedule;
use meter_local::stack::metrics::Snapshot;
use meter_local::stack::scan_job::ScanSchedule;
use meter_local::stack::{Stack, StackConfig};
use meter_sim::{FaultPlan, FleetConfig};

use crate::paths;

/// `up` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Simulated consumer meters (0: no simulator, only external meters).
    #[arg(long, default_value_t = 100)]
    pub meters: usize,
    /// Simulated feeder (distribution transformer) meters; consumers are split among them.
    #[arg(long, default_value_t = 4)]
    pub feeders: usize,
    /// Simulated seconds per wall-clock second (300: a simulated day in under five minutes,
    /// so injected faults show within minutes).
    #[arg(long, default_value_t = 300.0)]
    pub speed: f64,
    /// Seed for the fleet's load models and injected faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Injected faults and thefts: `default` (a small seeded share of meters, a weeks-long
    /// bypass among them), `none`, `all`, or a comma list such as
    /// `bypass,long-bypass,h1,outage,duplicate`.
    #[arg(long, default_value = "default")]
    pub faults: String,
    /// Minutes between a simulated meter's readings.
    #[arg(long, default_value_t = 15)]
    pub interval_minutes: u32,
    /// IANA time zone of the simulated meters.
    #[arg(long, default_value = "Australia/Sydney")]
    pub timezone: String,
    /// Where the SQLite store, the fleet state and the outbox live.
    #[arg(long, default_value_os_t = paths::default_data_dir())]
    pub data_dir: PathBuf,
    /// MQTT port (0: any free port).
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// HTTP port for /health and /metrics (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Address to listen on; 0.0.0.0 lets devices on the LAN publish.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// MQTT connections the simulated meters share.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Stop after this many wall-clock seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Shards of the scheduled forecast run (the same handler as the `forecast` Lambda, on the
    /// SQLite store); 0 runs no forecasts.
    #[arg(long, default_value_t = 4)]
    pub forecast_shards: u32,
    /// Simulated hours between forecast runs (24: daily, as the production schedule).
    #[arg(long, default_value_t = 24)]
    pub forecast_every_hours: u64,
    /// Shards of the scheduled anomaly scan (the same handler as the `anomaly-scan` Lambda, on
    /// the SQLite store; new findings go to the outbox); 0 runs no scans.
    #[arg(long, default_value_t = 2)]
    pub scan_shards: u32,
    /// Simulated hours between anomaly scans (6: at the default speed a scan every 72 s, so a
    /// newcomer sees the injected faults' findings within two minutes; production scans daily,
    /// and a persisting condition stays one finding however often it is scanned).
    #[arg(long, default_value_t = 6)]
    pub scan_every_hours: u64,
}

/// Builds the fleet configuration from the flags.
pub fn fleet_config(
    meters: usize,
    feeders: usize,
    seed: u64,
    faults: &str,
    interval_minutes: u32,
    timezone: &str,
) -> anyhow::Result<FleetConfig> {
    let faults: FaultPlan = faults
        .parse()
        .map_err(|e| anyhow::anyhow!("--faults {faults:?}: {e}"))?;
    let timezone = meter_core::registry::parse_timezone(timezone)
        .with_context(|| format!("--timezone {timezone:?} is not an IANA time zone"))?;
    anyhow::ensure!(
        (1..=1440).contains(&interval_minutes),
        "--interval-minutes must be between 1 and 1440"
    );
    Ok(FleetConfig {
        consumers: meters,
        feeders: feeders.min(meters),
        seed,
        interval_minutes,
        timezone,
        faults,
        ..FleetConfig::default()
    })
}

/// Runs the stack until Ctrl-C (or `--seconds`).
pub async fn run(args: &UpArgs) -> anyhow::Result<()> {
    let mut cfg = StackConfig::new(args.data_dir.clone());
    cfg.mqtt_addr = SocketAddr::new(args.bind, args.mqtt_port);
    cfg.http_addr = SocketAddr::new(args.bind, args.http_port);
    cfg.speed = args.speed;
    cfg.publishers = args.publishers;
    anyhow::ensure!(
        args.forecast_shards <= forecast::MAX_SHARDS && args.forecast_every_hours >= 1,
        "--forecast-shards must be at most {} and --forecast-every-hours at least 1",
        forecast::MAX_SHARDS
    );
    cfg.forecast = (args.forecast_shards > 0).then(|| ForecastSchedule {
        every: Duration::from_secs(args.forecast_every_hours * 3_600),
        shards: args.forecast_shards,
        ..ForecastSchedule::default()
    });
    anyhow::ensure!(
        args.scan_shards <= anomaly_scan::MAX_SHARDS && args.scan_every_hours >= 1,
        "--scan-shards must be at most {} and --scan-every-hours at least 1",
        anomaly_scan::MAX_SHARDS
    );
    cfg.scan = (args.scan_shards > 0).then(|| ScanSchedule {
        every: Duration::from_secs(args.scan_every_hours * 3_600),
        shards: args.scan_shards,
        ..ScanSchedule::default()
    });
    if args.meters > 0 {
        cfg.fleet = Some(fleet_config(
            args.meters,
            args.feeders,
            args.seed,
            &args.faults,
            args.interval_minutes,
            &args.timezone,
        )?);
    }
    let stack = Stack::start(cfg)
        .await
        .context("starting the local stack")?;
    let http = stack.http_addr;
    say!("meterflow is up");
    say!("  data       {}", args.data_dir.display());
    say!(
        "  mqtt       mqtt://{}  (publish to meters/<id>/telemetry)",
        stack.mqtt_addr
    );
    say!("  health     http://{http}/health");
    say!("  metrics    http://{http}/metrics");
    say!("  outbox     {}", stack.outbox.path().display());
    if args.meters > 0 {
        say!(
            "  fleet      {} consumers, {} feeders, {}x speed, faults: {}",
            args.meters,
            args.feeders.min(args.meters),
            args.speed,
            args.faults
        );
    }
    if args.forecast_shards > 0 {
        say!(
            "  forecast   every {} simulated hours, {} shards (METERFLOW_LOG=info shows each run)",
            args.forecast_every_hours,
            args.forecast_shards
        );
    }
    if args.scan_shards > 0 {
        say!(
            "  scan       every {} simulated hours, {} shards; new findings go to the outbox",
            args.scan_every_hours,
            args.scan_shards
        );
    }
    say!("Ctrl-C stops cleanly; `meterflow up` again resumes with the same data.");

    let status = Status::new();
    let started = Instant::now();
    // Simulated meters publish in bursts (all at the end of each interval), so the rate is
    // taken over the last 10 s rather than the last tick.
    let mut window: std::collections::VecDeque<(Instant, u64)> = std::collections::VecDeque::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {
                let snap = stack.metrics.snapshot();
                window.push_back((Instant::now(), snap.accounted()));
                while window.len() > 2
                    && window.front().is_some_and(|(t, _)| t.elapsed() > Duration::from_secs(10))
                {
                    window.pop_front();
                }
                let rate = match (window.front(), window.back()) {
                    (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                        (n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64()
                    }
                    _ => 0.0,
                };
                status.show(&snap, rate);
                if args.seconds.is_some_and(|s| started.elapsed() >= Duration::from_secs(s)) {
                    break;
                }
            }
        }
    }
    status.finish();
    say!("stopping: letting the broker acknowledge and the bridge store what is in flight...");
    let report = stack.shutdown().await.context("stopping the local stack")?;
    say!(
        "stopped. published {} (acknowledged {}); this run stored {}, duplicates {}, quarantined {}, events {}",
        report.fleet.published,
        report.fleet.acked,
        report.ingested.stored,
        report.ingested.duplicates,
        report.ingested.quarantined,
        report.ingested.events
    );
    for (reason, n) in &report.ingested.quarantined_by_reason {
        say!("  quarantined {reason}: {n}");
    }
    Ok(())
}

/// The live status line: a spinner on a terminal, a plain line every 10 s otherwise.
struct Status {
    bar: Option<indicatif::ProgressBar>,
    last_plain: std::cell::Cell<Instant>,
}

impl Status {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            last_plain: std::cell::Cell::new(Instant::now()),
        }
    }

    fn show(&self, s: &Snapshot, rate: f64) {
        let line = status_line(s, rate);
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None if self.last_plain.get().elapsed() >= Duration::from_secs(10) => {
                eprintln!("{line}");
                self.last_plain.set(Instant::now());
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One line: simulated time, meters online, readings/s, and the outcome counters.
pub fn status_line(s: &Snapshot, rate: f64) -> String {
    let t = s.sim_time.to_datetime().format("%Y-%m-%d %H:%M");
    format!(
        "sim {t} | {} meters online | {rate:.0} readings/s | stored {} | duplicates {} | quarantined {} | events {}",
        s.meters_online, s.stored, s.duplicates, s.quarantined, s.events
    )
}
