//! `meterflow scan` and `meterflow findings`: the anomaly scan once over the local store (the
//! same handler as the `anomaly-scan` Lambda and the `up` job, on SQLite), and the findings it
//! keeps. Useful after `meterflow import`, whose data is years old: `--at` scans as of any time.

use std::path::PathBuf;
use std::sync::Arc;

use anomaly_scan::{Response, ScanSettings, Scanner};
use anyhow::Context as _;
use meter_core::anomaly::{ScanConfig, StoredFinding};
use meter_core::memory::MemoryShardDispatcher;
use meter_core::ports::{FindingCursor, FindingStore};
use meter_core::types::HOUR_MS;
use meter_core::{MeterId, Timestamp};

/// `meterflow scan` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// The store (`meterflow up` and `meterflow import` use the same default).
    #[arg(long, default_value_os_t = crate::paths::default_data_dir())]
    pub data_dir: PathBuf,
    /// Scan as of this time (RFC 3339); default: now.
    #[arg(long)]
    pub at: Option<String>,
    /// Shards (run one after another; the result does not depend on it).
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Days of history read per meter.
    #[arg(long, default_value_t = 35)]
    pub history_days: u32,
    /// Hours back from the scan time whose findings are reported.
    #[arg(long, default_value_t = 24)]
    pub report_hours: u32,
}

/// `meterflow findings` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct FindingsArgs {
    /// The store.
    #[arg(long, default_value_os_t = crate::paths::default_data_dir())]
    pub data_dir: PathBuf,
    /// Only this meter's findings, closed ones included.
    #[arg(long)]
    pub meter: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn open_db(dir: &std::path::Path) -> anyhow::Result<Arc<meter_local::SqliteDb>> {
    let path = dir.join("meterflow.db");
    anyhow::ensure!(
        path.exists(),
        "no store at {} (run `meterflow up` or `meterflow import` first, or pass --data-dir)",
        path.display()
    );
    Ok(Arc::new(meter_local::SqliteDb::open(&path)?))
}

/// Runs `meterflow scan`.
pub async fn run_scan(args: &ScanArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=anomaly_scan::MAX_SHARDS).contains(&args.shards),
        "--shards must be 1 to {}",
        anomaly_scan::MAX_SHARDS
    );
    anyhow::ensure!(
        args.history_days >= 1 && args.report_hours >= 1,
        "--history-days and --report-hours must be at least 1"
    );
    let at = match &args.at {
        Some(s) => Timestamp::parse_rfc3339(s).with_context(|| format!("--at {s:?}"))?,
        None => Timestamp::from_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default(),
        ),
    };
    let db = open_db(&args.data_dir)?;
    let ports = meter_local::sqlite_ports(db.clone());
    let dispatcher = Arc::new(MemoryShardDispatcher::new());
    let scanner = Scanner {
        registry: ports.registry,
        readings: ports.readings,
        findings: Arc::new(meter_local::SqliteFindingStore::new(db)),
        dispatcher: dispatcher.clone(),
        settings: ScanSettings {
            scan: ScanConfig {
                history_days: args.history_days,
                report_ms: i64::from(args.report_hours) * HOUR_MS,
                ..ScanConfig::default()
            },
            ..ScanSettings::default()
        },
    };
    let coordinator = serde_json::json!({
        "mode": "coordinator", "shards": args.shards, "scan_at": at.millis()
    });
    anomaly_scan::handle(&scanner, &coordinator, at).await?;
    let (mut meters, mut updated, mut closed, mut opened) = (0, 0, 0, Vec::new());
    for job in dispatcher.take() {
        let event: serde_json::Value = serde_json::from_str(&job.to_event_json())?;
        if let Response::Shard(r) = anomaly_scan::handle(&scanner, &event, at).await? {
            meters += r.meters;
            updated += r.updated;
            closed += r.closed;
            opened.extend(r.opened);
        }
    }
    say!(
        "scanned {meters} meters as of {at}: {} opened, {updated} still open, {closed} closed",
        opened.len()
    );
    for o in &opened {
        say!("  + {:<24} {:<28} {}", o.meter_id, o.kind, o.explanation);
    }
    Ok(())
}

fn line(f: &StoredFinding) -> String {
    format!(
        "{:<24} {:<28} {:<6} {:>9.2}  {} .. {}  {}",
        f.meter_id.as_str(),
        f.kind.as_str(),
        f.status.as_str(),
        f.score,
        f.from.to_rfc3339(),
        f.to.to_rfc3339(),
        f.explanation
    )
}

fn json(f: &StoredFinding) -> serde_json::Value {
    serde_json::json!({
        "meter_id": f.meter_id.as_str(),
        "id": f.id,
        "kind": f.kind.as_str(),
        "status": f.status.as_str(),
        "opened_at": f.opened_at.to_rfc3339(),
        "last_seen": f.last_seen.to_rfc3339(),
        "closed_at": f.closed_at.map(Timestamp::to_rfc3339),
        "score": f.score,
        "from": f.from.to_rfc3339(),
        "to": f.to.to_rfc3339(),
        "explanation": f.explanation,
    })
}

/// Runs `meterflow findings`: the fleet's open findings, or one meter's findings.
pub async fn run_findings(args: &FindingsArgs) -> anyhow::Result<()> {
    let store = meter_local::SqliteFindingStore::new(open_db(&args.data_dir)?);
    let mut all = Vec::new();
    match &args.meter {
        Some(m) => {
            let id = MeterId::parse(m).with_context(|| format!("--meter {m:?}"))?;
            all = store.for_meter(&id).await?;
        }
        None => {
            let mut after: Option<FindingCursor> = None;
            loop {
                let page = store.open_page(after.as_ref(), 500).await?;
                all.extend(page.findings);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    for f in &all {
        if args.json {
            say!("{}", json(f));
        } else {
            say!("{}", line(f));
        }
    }
    if !args.json {
        say!("{} findings", all.len());
    }
    Ok(())
}
