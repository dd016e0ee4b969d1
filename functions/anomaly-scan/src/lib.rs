//! The `anomaly-scan` Lambda's handler: a scheduled coordinator event fans the fleet out into
//! shards, and each shard event scans the feeders of its shard and keeps the findings store up
//! to date.
//!
//! - `{"mode":"coordinator","shards":N}` (from the schedule) fixes the run's scan time (the
//!   current hour, unless `scan_at` is given) and hands one [`ShardJob`] per shard to the
//!   [`ShardDispatcher`] (an SQS queue in AWS, a direct call on the local stack). The job's
//!   message is the shard event, whose time field is `issued_at` (the name every shard job
//!   carries; this function reads it as `scan_at`).
//! - `{"mode":"shard","shard":i,"shards":N,"scan_at":...}` pages through the registry and keeps
//!   the *groups* with `shard_of(key, N) == i`: a feeder with every consumer under it (key: the
//!   feeder's id), so the energy balance sees the whole feeder; a consumer without a feeder on
//!   its own (key: its id). For each group it reads [`ScanSettings::scan`]'s history of
//!   readings, runs [`meter_core::anomaly::scan()`], and reconciles the findings with the open
//!   ones of those meters ([`meter_core::anomaly::reconcile()`]): a condition still present is
//!   updated, never duplicated; one gone is closed; a new one is opened.
//! - An SQS event (`{"Records":[...]}`) carries shard events as message bodies; a failed record
//!   is reported in `batchItemFailures`, so only it is retried (and, in the end, dead-lettered).
//!
//! Newly opened findings are the alerts function's input. In AWS they reach it through the
//! findings table's stream (an `INSERT` is a new finding: ids are deterministic, so a retried
//! shard rewrites the same items and never inserts twice); the shard report lists them too,
//! which is what the local stack prints and puts in its outbox.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use meter_core::anomaly::{reconcile, scan, FeederWindow, MeterWindow, ScanConfig, StoredFinding};
use meter_core::forecast::shard_of;
use meter_core::ports::{
    FindingStore, MeterRegistry, ReadingStore, ShardDispatcher, ShardJob, StoreError,
};
use meter_core::types::{DAY_MS, HOUR_MS};
use meter_core::{MeterId, MeterInfo, MeterKind, Timestamp};
use meter_shards::Dispatched;
use serde::{Deserialize, Serialize};

/// The most shards a run may have: each shard walks the whole registry.
pub const MAX_SHARDS: u32 = 10_000;

/// Meters asked of the registry per page.
const PAGE: usize = 500;

/// Groups scanned at once: the reads wait on the store, the scan on the CPU.
const CONCURRENCY: usize = 4;

/// Reads in flight within one group (its meters' readings, then their open findings).
const READS_PER_GROUP: usize = 8;

/// Why the configuration in the environment cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {var}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What a valid value looks like.
    pub reason: String,
}

/// How the function scans.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    /// The detectors' settings; `history_days` from `SCAN_HISTORY_DAYS` (default 35),
    /// `report_ms` from `SCAN_REPORT_HOURS` (default 24), and the voltage thresholds of the
    /// outage, power-quality and tamper checks from `NOMINAL_VOLTAGE_V` (default 230).
    pub scan: ScanConfig,
    /// Days a closed finding is kept (`FINDING_RETENTION_DAYS`, default 90; DynamoDB TTL).
    pub retention_days: u32,
}

impl Default for ScanSettings {
    fn default() -> Self {
        Self {
            scan: ScanConfig::default(),
            retention_days: 90,
        }
    }
}

impl ScanSettings {
    /// Reads `SCAN_HISTORY_DAYS`, `SCAN_REPORT_HOURS`, `FINDING_RETENTION_DAYS` and
    /// `NOMINAL_VOLTAGE_V` through
    /// `lookup`; unset keeps the default, a set value must be a whole number in range.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        // A whole number from 1 to `max`, or the default when unset or blank.
        let var = |var: &'static str, default: u32, max: u32| match lookup(var) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(default),
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError {
                    var,
                    value: v,
                    reason: format!("expected a whole number from 1 to {max}"),
                }),
            },
        };
        let default_hours = u32::try_from(d.scan.report_ms / HOUR_MS).unwrap_or(24);
        let history_days = var("SCAN_HISTORY_DAYS", d.scan.history_days, 400)?;
        let report_hours = var("SCAN_REPORT_HOURS", default_hours, 744)?;
        let retention_days = var("FINDING_RETENTION_DAYS", d.retention_days, 3_650)?;
        let nominal_v = match lookup("NOMINAL_VOLTAGE_V") {
            None => 230.0,
            Some(v) if v.trim().is_empty() => 230.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(n) if (50.0..=1_000.0).contains(&n) => n,
                _ => {
                    return Err(ConfigError {
                        var: "NOMINAL_VOLTAGE_V",
                        value: v,
                        reason: "expected a voltage from 50 to 1000".to_string(),
                    })
                }
            },
        };
        Ok(Self {
            scan: ScanConfig {
                history_days,
                report_ms: i64::from(report_hours) * HOUR_MS,
                ..ScanConfig::for_nominal(nominal_v)
            },
            retention_days,
        })
    }
}

/// What the handler works with, built once per cold start.
pub struct Scanner {
    /// The registry, paged through by each shard.
    pub registry: Arc<dyn MeterRegistry>,
    /// Raw readings: each meter's history.
    pub readings: Arc<dyn ReadingStore>,
    /// Where findings are kept.
    pub findings: Arc<dyn FindingStore>,
    /// The coordinator's fan-out.
    pub dispatcher: Arc<dyn ShardDispatcher>,
    /// Settings.
    pub settings: ScanSettings,
}

/// One SQS record the function could not handle, for a partial batch response.
pub use meter_shards::ItemFailure;
/// A run time in an event: RFC 3339 (`"2026-11-22T14:00:00Z"`) or epoch milliseconds.
pub use meter_shards::RunTime as ScanTime;

/// The function's own events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScanEvent {
    /// Fan the run out into `shards` shard jobs.
    Coordinator {
        /// How many shards.
        shards: u32,
        /// The run's scan time; default: the current hour.
        #[serde(default, alias = "issued_at")]
        scan_at: Option<ScanTime>,
    },
    /// Scan the groups of one shard.
    Shard {
        /// This shard, `0..shards`.
        shard: u32,
        /// How many shards the run has.
        shards: u32,
        /// The run's scan time; default: the current hour. Shard jobs carry it as `issued_at`.
        #[serde(default, alias = "issued_at")]
        scan_at: Option<ScanTime>,
    },
}

/// A newly opened finding, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Opened {
    /// The meter.
    pub meter_id: String,
    /// The finding's id.
    pub id: String,
    /// Its kind's stable name.
    pub kind: String,
    /// Its score.
    pub score: f64,
    /// One line for a person.
    pub explanation: String,
}

impl From<&StoredFinding> for Opened {
    fn from(f: &StoredFinding) -> Self {
        Self {
            meter_id: f.meter_id.to_string(),
            id: f.id.clone(),
            kind: f.kind.to_string(),
            score: f.score,
            explanation: f.explanation.clone(),
        }
    }
}

/// What a shard did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShardReport {
    /// The shard.
    pub shard: u32,
    /// Of how many.
    pub shards: u32,
    /// The run's scan time (RFC 3339).
    pub scan_at: String,
    /// Groups (feeders, and consumers without one) scanned.
    pub groups: usize,
    /// Meters scanned.
    pub meters: usize,
    /// Findings the detectors reported (before de-duplication).
    pub found: usize,
    /// Findings opened, by kind.
    pub opened_by_kind: BTreeMap<String, usize>,
    /// Open findings seen again and updated.
    pub updated: usize,
    /// Open findings no longer seen, closed.
    pub closed: usize,
    /// The findings this shard opened: what the alerts function is told about.
    pub opened: Vec<Opened>,
}

/// What the coordinator did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoordinatorReport {
    /// The run's scan time (RFC 3339).
    pub scan_at: String,
    /// Shard jobs handed to the dispatcher.
    pub dispatched: u32,
}

/// An invocation's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// For a coordinator event.
    Coordinator(CoordinatorReport),
    /// For a shard event.
    Shard(ShardReport),
    /// For an SQS event: the records to retry (Lambda's `ReportBatchItemFailures`).
    Batch {
        /// Failed records; empty when all succeeded.
        #[serde(rename = "batchItemFailures")]
        batch_item_failures: Vec<ItemFailure>,
    },
}

/// Why an invocation failed.
pub use meter_shards::HandlerError;

/// Handles one invocation at wall (or simulated) time `now`.
pub async fn handle(
    s: &Scanner,
    event: &serde_json::Value,
    now: Timestamp,
) -> Result<Response, HandlerError> {
    let outcome = meter_shards::dispatch(
        event,
        |e: &ScanEvent| matches!(e, ScanEvent::Coordinator { .. }),
        |text| async move { handle_event(s, &text, now).await },
        "anomaly scan failed",
    )
    .await?;
    Ok(match outcome {
        Dispatched::Batch(failures) => Response::Batch {
            batch_item_failures: failures,
        },
        Dispatched::Direct(response) => response,
    })
}

/// The run's scan time: the event's, or the hour `now` falls in (so every re-run of the same
/// scheduled run within the hour writes the same findings). A scan of the future would close
/// every open finding (nothing seen yet) and open them again later: more than an hour ahead is
/// refused.
fn scan_time(given: Option<ScanTime>, now: Timestamp) -> Result<Timestamp, HandlerError> {
    meter_shards::run_time(given, now, HOUR_MS, "scan_at").map_err(HandlerError::BadEvent)
}

fn check_shards(shards: u32) -> Result<(), HandlerError> {
    meter_shards::check_shards(shards, MAX_SHARDS).map_err(HandlerError::BadEvent)
}

async fn handle_event(s: &Scanner, text: &str, now: Timestamp) -> Result<Response, HandlerError> {
    match meter_shards::parse::<ScanEvent>(text)? {
        ScanEvent::Coordinator { shards, scan_at } => {
            check_shards(shards)?;
            let scan_at = scan_time(scan_at, now)?;
            let jobs: Vec<ShardJob> = (0..shards)
                .map(|shard| ShardJob {
                    shard,
                    shards,
                    issued_at: scan_at,
                })
                .collect();
            s.dispatcher.dispatch(&jobs).await?;
            tracing::info!(shards, %scan_at, "anomaly scan fanned out");
            Ok(Response::Coordinator(CoordinatorReport {
                scan_at: scan_at.to_rfc3339(),
                dispatched: shards,
            }))
        }
        ScanEvent::Shard {
            shard,
            shards,
            scan_at,
        } => {
            check_shards(shards)?;
            if shard >= shards {
                return Err(HandlerError::BadEvent(format!(
                    "shard {shard} is not below shards {shards}"
                )));
            }
            let job = ShardJob {
                shard,
                shards,
                issued_at: scan_time(scan_at, now)?,
            };
            Ok(Response::Shard(run_shard(s, job).await?))
        }
    }
}

/// A feeder and its consumers, or a consumer without a feeder: what one scan sees whole.
#[derive(Debug, Default)]
struct Group {
    feeder: Option<MeterInfo>,
    consumers: Vec<MeterInfo>,
}

/// The group a meter belongs to: its feeder's id for a consumer under one, else its own.
fn group_key(m: &MeterInfo) -> &MeterId {
    match (m.kind, &m.feeder_id) {
        (MeterKind::Consumer, Some(feeder)) => feeder,
        _ => &m.meter_id,
    }
}

/// What one group's scan changed.
#[derive(Default)]
struct GroupOutcome {
    meters: usize,
    found: usize,
    opened: Vec<StoredFinding>,
    updated: usize,
    closed: usize,
}

/// Scans the groups of `job`'s shard and reconciles their findings.
pub async fn run_shard(s: &Scanner, job: ShardJob) -> Result<ShardReport, StoreError> {
    // The whole shard's groups first: a feeder's consumers may be on any page of the registry.
    let mut groups: BTreeMap<MeterId, Group> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = s.registry.list(after.as_ref(), PAGE).await?;
        for m in page.meters {
            let key = group_key(&m).clone();
            if shard_of(&key, job.shards) != job.shard {
                continue;
            }
            let g = groups.entry(key).or_default();
            match m.kind {
                MeterKind::Feeder => g.feeder = Some(m),
                MeterKind::Consumer => g.consumers.push(m),
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut report = ShardReport {
        shard: job.shard,
        shards: job.shards,
        scan_at: job.issued_at.to_rfc3339(),
        groups: groups.len(),
        ..ShardReport::default()
    };
    let outcomes: Vec<Result<GroupOutcome, StoreError>> = stream::iter(groups.into_values())
        .map(|g| scan_group(s, g, job.issued_at))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut opened = Vec::new();
    for o in outcomes {
        let o = o?;
        report.meters += o.meters;
        report.found += o.found;
        report.updated += o.updated;
        report.closed += o.closed;
        opened.extend(o.opened);
    }
    opened.sort_by(|a, b| (&a.meter_id, &a.id).cmp(&(&b.meter_id, &b.id)));
    for f in &opened {
        *report.opened_by_kind.entry(f.kind.to_string()).or_default() += 1;
        tracing::info!(
            meter_id = %f.meter_id,
            finding_id = %f.id,
            kind = %f.kind,
            score = f.score,
            explanation = %f.explanation,
            "finding opened"
        );
    }
    report.opened = opened.iter().map(Opened::from).collect();
    tracing::info!(
        shard = report.shard,
        shards = report.shards,
        groups = report.groups,
        meters = report.meters,
        found = report.found,
        opened = report.opened.len(),
        updated = report.updated,
        closed = report.closed,
        "anomaly scan shard done"
    );
    Ok(report)
}

async fn window_of(
    s: &Scanner,
    info: MeterInfo,
    from: Timestamp,
    to: Timestamp,
) -> Result<MeterWindow, StoreError> {
    // `range` is inclusive; the window is `from < ts <= to`.
    let readings = s
        .readings
        .range(&info.meter_id, from.add_millis(1), to)
        .await?;
    Ok(MeterWindow { info, readings })
}

async fn scan_group(s: &Scanner, g: Group, at: Timestamp) -> Result<GroupOutcome, StoreError> {
    let from = at.add_millis(-i64::from(s.settings.scan.history_days) * DAY_MS);
    let feeder = match g.feeder {
        Some(info) => Some(window_of(s, info, from, at).await?),
        None => None,
    };
    // A feeder may have hundreds of consumers: their reads overlap, in registry order.
    let consumers: Vec<MeterWindow> = stream::iter(g.consumers)
        .map(|info| window_of(s, info, from, at))
        .buffered(READS_PER_GROUP)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let window = FeederWindow {
        feeder,
        consumers,
        from,
        to: at,
    };
    let ids: Vec<MeterId> = window
        .feeder
        .iter()
        .chain(&window.consumers)
        .map(|m| m.info.meter_id.clone())
        .collect();
    let found = scan(&window, &s.settings.scan);
    let open: Vec<StoredFinding> = stream::iter(ids.clone())
        .map(|id| {
            let findings = Arc::clone(&s.findings);
            async move { findings.open_for_meter(&id).await }
        })
        .buffered(READS_PER_GROUP)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let r = reconcile(&open, &found, at);
    s.findings.put(&r.writes()).await?;
    Ok(GroupOutcome {
        meters: ids.len(),
        found: found.len(),
        updated: r.updated.len(),
        closed: r.closed.len(),
        opened: r.opened,
    })
}
