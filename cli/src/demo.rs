//! `meterflow demo`: the ingest pipeline end to end on this machine, with no cloud: a simulated
//! fleet's day of readings, some of them redelivered, reordered or broken on purpose, through the
//! same `Ingestor` the Lambda runs, into the SQLite store. Run it twice: the second run adds
//! nothing and changes no total.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use meter_core::aggregate::Period;
use meter_core::telemetry::MessageContext;
use meter_core::{Inbound, IngestConfig, IngestReport, Ingestor, RegistryMode, Timestamp};

use crate::sim::{batch_json, topic, Fleet, SplitMix};

/// Demo settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Simulated meters.
    #[arg(long, default_value_t = 20)]
    pub meters: usize,
    /// Hours of quarter-hour readings, ending now.
    #[arg(long, default_value_t = 24)]
    pub hours: usize,
    /// Where the SQLite store lives.
    #[arg(long, default_value = "meterflow-data")]
    pub data_dir: PathBuf,
    /// Seed for the fleet and the injected faults.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let db_path = args.data_dir.join("meterflow.db");
    let db = Arc::new(meter_local::SqliteDb::open(&db_path)?);
    let ports = meter_local::sqlite_ports(db);
    let ingestor = Ingestor::new(
        ports.clone(),
        IngestConfig {
            registry_mode: RegistryMode::AutoRegister,
            ..IngestConfig::default()
        },
    );
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    // Align to the hour so a rerun within the hour replays exactly the same readings.
    let end = now_ms - now_ms.rem_euclid(3_600_000);
    let quarters = args.hours * 4;
    let start = Timestamp::from_millis(end - quarters as i64 * 15 * 60_000 + 15 * 60_000);
    let received = Timestamp::from_millis(now_ms);
    let fleet = Fleet::new(args.meters, args.seed);
    let per_meter = fleet.readings(start, quarters);

    let mut rng = SplitMix::new(args.seed);
    let mut messages: Vec<(String, Vec<u8>)> = Vec::new();
    for (m, rs) in per_meter.iter().enumerate() {
        let Some(first) = rs.first() else { continue };
        let t = topic(&first.meter_id);
        if m == 0 {
            // Store-and-forward after an outage: the whole day at once, newest first.
            let mut rev = rs.clone();
            rev.reverse();
            for chunk in rev.chunks(16) {
                messages.push((t.clone(), batch_json(chunk).into_bytes()));
            }
            continue;
        }
        for r in rs {
            let p = meter_core::telemetry::encode_reading(r).into_bytes();
            if rng.unit() < 0.05 {
                messages.push((t.clone(), p.clone())); // at-least-once redelivery
            }
            messages.push((t.clone(), p));
        }
    }
    let bad_topic = topic(&per_meter[per_meter.len().saturating_sub(1)][0].meter_id);
    for bad in [
        "E=1234.5kWh;P=420W".to_owned(),
        r#"{"v":1,"ts":"2026-01-01T00:00:00Z","energy_import_kwh":NaN}"#.to_owned(),
        format!(r#"{{"v":1,"ts":{},"energy_import_kwh":-4}}"#, end),
        format!(
            r#"{{"v":1,"ts":{},"energy_import_kwh":5}}"#,
            now_ms + 3_600_000
        ),
        format!(r#"{{"v":2,"ts":{},"energy_import_kwh":5}}"#, end),
    ] {
        messages.push((bad_topic.clone(), bad.into_bytes()));
    }

    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut report = IngestReport::default();
    for chunk in messages.chunks(500) {
        let msgs: Vec<Inbound<'_>> = chunk
            .iter()
            .map(|(t, p)| Inbound {
                payload: p,
                ctx: MessageContext {
                    topic: Some(t),
                    received,
                },
            })
            .collect();
        report.merge(&rt.block_on(ingestor.ingest(&msgs))?);
    }

    say!("store: {}", db_path.display());
    say!(
        "{} messages: {} stored, {} duplicates, {} quarantined, {} instant events",
        messages.len(),
        report.stored,
        report.duplicates,
        report.quarantined,
        report.events
    );
    for (reason, n) in &report.quarantined_by_reason {
        say!("  quarantined {n:>3} × {reason}");
    }
    say!("\nenergy per meter (first 5), from the stored hourly and daily aggregates:");
    say!(
        "  {:<10} {:>12} {:>12} {:>8}",
        "meter",
        "day",
        "kWh",
        "est. kWh"
    );
    for id in fleet.ids().take(5) {
        let from = Period::Day(start.to_datetime().date_naive());
        let to = Period::Day(received.to_datetime().date_naive());
        for a in rt.block_on(ports.aggregates.range(id, from, to))? {
            say!(
                "  {:<10} {:>12} {:>12.3} {:>8.3}",
                id.as_str(),
                a.period.to_string(),
                a.measured.kwh(),
                a.estimated.kwh()
            );
        }
    }
    say!(
        "\nRun the same command again: every reading comes back as a duplicate and no total moves."
    );
    Ok(())
}
