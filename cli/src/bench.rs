//! `meterflow bench ingest`: measures the ingest hot path and prints the figures as JSON.
//!
//! Three numbers, each over the same realistic payloads (every telemetry field set, RFC 3339
//! timestamps, quarter-hour readings from a fleet of meters):
//! - `domain_readings_per_s`: one core, in memory — parse, validate, derive the interval energy
//!   against the meter's previous register and its hour bucket, and build the stored record
//!   (inserted into the in-memory store).
//! - `sqlite_readings_per_s`: the same, persisted through `SqliteReadingStore` in batches, in a
//!   WAL-mode file.
//! - `sqlite_pipeline_readings_per_s`: the whole `Ingestor` over the SQLite adapters, with
//!   aggregate recomputation (hour, day, month) and instant events, in batches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use chrono_tz::Tz;
use meter_core::energy::{hour_bucket_of, interval_between, RegisterPolicy};
use meter_core::memory::MemoryReadingStore;
use meter_core::ports::ReadingStore;
use meter_core::telemetry::{parse_message, parse_message_into, MessageContext};
use meter_core::{
    Energy, Inbound, IngestConfig, Ingestor, Limits, MeterId, RegistryMode, Timestamp,
};
use serde::Serialize;

use crate::sim::Fleet;

/// Benchmark settings.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Simulated meters.
    #[arg(long, default_value_t = 1000)]
    pub meters: usize,
    /// Quarter-hour readings per meter.
    #[arg(long, default_value_t = 96)]
    pub readings_per_meter: usize,
    /// Messages per store call in the SQLite runs.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    readings: usize,
    meters: usize,
    payload_bytes_mean: f64,
    domain_readings_per_s: f64,
    domain_ns_per_reading: f64,
    parse_validate_ns: f64,
    derive_ns: f64,
    store_record_ns: f64,
    sqlite_readings_per_s: f64,
    sqlite_interleaved_readings_per_s: f64,
    sqlite_pipeline_readings_per_s: f64,
    sqlite_batch: usize,
    cores_used: usize,
}

/// Runs the benchmark and prints the report.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let fleet = Fleet::new(args.meters, 42);
    let start = Timestamp::from_millis(1_772_323_200_000);
    let payloads = fleet.payloads(start, args.readings_per_meter);
    let received = start.add_millis(args.readings_per_meter as i64 * 15 * 60_000 + 60_000);
    let topics: Vec<String> = payloads.iter().map(|(t, _)| t.clone()).collect();
    let n = payloads.len();
    let limits = Limits::default();
    let policy = RegisterPolicy::default();
    let ctx = |i: usize| MessageContext {
        topic: Some(&topics[i]),
        received,
    };

    // Stage 1 alone: parse + validate.
    let rounds = (2_000_000 / n.max(1)).clamp(1, 20);
    let t = Instant::now();
    let mut parsed = Vec::with_capacity(n);
    let mut items = Vec::with_capacity(4);
    for round in 0..rounds {
        parsed.clear();
        for (i, (_, p)) in payloads.iter().enumerate() {
            parse_message_into(p, ctx(i), &limits, &mut items);
            parsed.extend(items.drain(..).flatten());
        }
        std::hint::black_box(round);
    }
    let parse_ns = t.elapsed().as_nanos() as f64 / (rounds * n) as f64;
    anyhow::ensure!(parsed.len() == n, "benchmark payloads failed validation");

    // Stage 2 alone: interval energy against the previous register, and its hour bucket.
    let tz = Tz::UTC;
    let t = Instant::now();
    let mut acc = 0i64;
    for _ in 0..rounds {
        let mut last: HashMap<&MeterId, (Timestamp, Energy)> = HashMap::with_capacity(args.meters);
        for r in &parsed {
            if let Some(prev) = last.insert(&r.meter_id, (r.ts, r.energy_import)) {
                let iv = interval_between(prev, (r.ts, r.energy_import), &policy);
                acc = acc.wrapping_add(iv.energy.mwh() ^ hour_bucket_of(&tz, iv.end).millis());
            }
        }
    }
    std::hint::black_box(acc);
    let derive_ns = t.elapsed().as_nanos() as f64 / (rounds * n) as f64;

    // Stage 3 alone: the stored record, in the in-memory store.
    let t = Instant::now();
    for _ in 0..rounds {
        let store = MemoryReadingStore::new();
        for r in &parsed {
            store.insert_one(r.clone())?;
        }
        std::hint::black_box(store.len());
    }
    let store_ns = t.elapsed().as_nanos() as f64 / (rounds * n) as f64;

    // All three together, end to end, one core. (Freeing the stores is not timed.)
    let mut elapsed = std::time::Duration::ZERO;
    for _ in 0..rounds {
        let store = MemoryReadingStore::new();
        let mut last: HashMap<MeterId, (Timestamp, Energy)> = HashMap::with_capacity(args.meters);
        let mut items = Vec::with_capacity(4);
        let t = Instant::now();
        for (i, (_, p)) in payloads.iter().enumerate() {
            parse_message_into(p, ctx(i), &limits, &mut items);
            for r in items.drain(..).flatten() {
                let now = (r.ts, r.energy_import);
                let prev = match last.get_mut(&r.meter_id) {
                    Some(slot) => Some(std::mem::replace(slot, now)),
                    None => last.insert(r.meter_id.clone(), now),
                };
                if let Some(prev) = prev {
                    let iv = interval_between(prev, now, &policy);
                    acc = acc.wrapping_add(iv.energy.mwh() ^ hour_bucket_of(&tz, iv.end).millis());
                }
                store.insert_one(r)?;
            }
        }
        elapsed += t.elapsed();
        std::hint::black_box(store.len());
    }
    std::hint::black_box(acc);
    let domain_ns = elapsed.as_nanos() as f64 / (rounds * n) as f64;

    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let dir = std::env::temp_dir().join(format!("meterflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    // SQLite, readings only: parse + validate + batched insert, in two arrival orders.
    let grouped = fleet.payloads_by_meter(start, args.readings_per_meter);
    let sqlite_rate =
        sqlite_insert_rate(&rt, &dir.join("grouped.db"), &grouped, received, args.batch)?;
    let sqlite_interleaved_rate = sqlite_insert_rate(
        &rt,
        &dir.join("interleaved.db"),
        &payloads,
        received,
        args.batch,
    )?;

    // SQLite, the whole ingest pipeline with aggregates and events.
    let db = Arc::new(meter_local::SqliteDb::open(&dir.join("pipeline.db"))?);
    let ingestor = Ingestor::new(
        meter_local::sqlite_ports(db),
        IngestConfig {
            registry_mode: RegistryMode::AutoRegister,
            ..IngestConfig::default()
        },
    );
    // Meters send their day as store-and-forward batches here, so a store call carries many
    // readings of each meter, as the local bridge's batching does.
    let batched = fleet.batch_payloads(start, args.readings_per_meter, 24);
    let t = Instant::now();
    for chunk in batched.chunks((args.batch / 24).max(1)) {
        let msgs: Vec<Inbound<'_>> = chunk
            .iter()
            .map(|(topic, p)| Inbound {
                payload: p,
                ctx: MessageContext {
                    topic: Some(topic),
                    received,
                },
            })
            .collect();
        let report = rt.block_on(ingestor.ingest(&msgs))?;
        anyhow::ensure!(
            report.quarantined == 0,
            "benchmark readings were quarantined: {report:?}"
        );
    }
    let pipeline_rate = n as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);

    let report = Report {
        readings: n,
        meters: args.meters,
        payload_bytes_mean: payloads.iter().map(|(_, p)| p.len()).sum::<usize>() as f64 / n as f64,
        domain_readings_per_s: 1e9 / domain_ns,
        domain_ns_per_reading: domain_ns,
        parse_validate_ns: parse_ns,
        derive_ns,
        store_record_ns: store_ns,
        sqlite_readings_per_s: sqlite_rate,
        sqlite_interleaved_readings_per_s: sqlite_interleaved_rate,
        sqlite_pipeline_readings_per_s: pipeline_rate,
        sqlite_batch: args.batch,
        cores_used: 1,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("readings                 {}", report.readings);
        println!("payload bytes (mean)     {:.0}", report.payload_bytes_mean);
        println!("domain path              {:>12.0} readings/s  ({:.0} ns: parse+validate {:.0}, derive {:.0}, record {:.0})",
            report.domain_readings_per_s, domain_ns, parse_ns, derive_ns, store_ns);
        println!(
            "SQLite readings          {:>12.0} readings/s  (batches of {})",
            sqlite_rate, args.batch
        );
        println!(
            "SQLite full pipeline     {:>12.0} readings/s",
            pipeline_rate
        );
    }
    Ok(())
}

/// Parses and inserts `payloads` into a fresh SQLite file through `SqliteReadingStore`, in
/// transactions of `batch` messages; returns readings per second.
fn sqlite_insert_rate(
    rt: &tokio::runtime::Runtime,
    path: &std::path::Path,
    payloads: &[(String, Vec<u8>)],
    received: Timestamp,
    batch: usize,
) -> anyhow::Result<f64> {
    let limits = Limits::default();
    let store = meter_local::SqliteReadingStore::new(Arc::new(meter_local::SqliteDb::open(path)?));
    let t = Instant::now();
    let mut n = 0usize;
    for chunk in payloads.chunks(batch.max(1)) {
        let mut readings = Vec::with_capacity(chunk.len());
        for (topic, p) in chunk {
            let ctx = MessageContext {
                topic: Some(topic),
                received,
            };
            readings.extend(parse_message(p, ctx, &limits).into_iter().flatten());
        }
        n += readings.len();
        rt.block_on(store.insert(&readings))?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}
