//! The monthly AWS cost of running meterflow for a fleet: a pure model of prices × work.
//!
//! Prices are an input ([`Prices`], a dated table the operator edits; `meterflow cost` embeds
//! `infra/prices-us-east-1.toml`). The work per reading is **measured**, not guessed:
//! [`MEASURED`] holds the DynamoDB request units, requests and item sizes the ingest path sends
//! per reading through the real adapters, counted on moto by `tests/tests/cost_per_reading.rs`
//! (which fails when they drift from these constants). What is not measured is named as an
//! assumption in [`Scenario`] (DynamoDB latency seen from Lambda, log bytes per invocation,
//! notifications per meter) so `docs/cost.md` can show what each one weighs.
//!
//! The design choices the model exposes: Basic Ingest (no IoT messaging charge), batching
//! readings per message (one invocation, one aggregate refresh per meter and batch), how long
//! meters stay connected, TTL on raw readings (`reading_retention_days`), and aggregates as the
//! long-term record (a handful of small items per meter-month instead of every reading).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Minutes in the average month (730 hours), as AWS bills monthly quantities.
pub const MINUTES_PER_MONTH: f64 = 730.0 * 60.0;
/// Days in the average month.
pub const DAYS_PER_MONTH: f64 = 730.0 / 24.0;
/// A GB as AWS bills storage and log ingestion (2^30 bytes).
const GB: f64 = 1_073_741_824.0;
/// DynamoDB bills 100 bytes of index overhead per stored item.
const ITEM_OVERHEAD_BYTES: f64 = 100.0;
/// IoT Core meters messages and rule executions in 5 KB units.
const IOT_UNIT_BYTES: f64 = 5.0 * 1024.0;
/// One reading as a meter publishes it, every field set (the `meterflow bench ingest` payload).
pub const READING_PAYLOAD_BYTES: f64 = 232.0;

/// What ingest does per reading for one batching choice, measured on moto through the
/// `meter-aws` adapters (each figure per reading unless it says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IngestWork {
    /// Readings of one meter per message (1: one publish per reading).
    pub readings_per_message: f64,
    /// DynamoDB write request units (all tables).
    pub write_units_per_reading: f64,
    /// DynamoDB read request units, strongly consistent (all tables).
    pub read_units_per_reading: f64,
    /// DynamoDB requests per message (each one a round trip the invocation waits for).
    pub requests_per_message: f64,
    /// Items stored in the readings table (the reading and its seq guard).
    pub stored_items_per_reading: f64,
    /// Their bytes (attribute names and values, without the per-item overhead).
    pub stored_bytes_per_reading: f64,
    /// Bytes of one aggregate item (hour, day or month bucket).
    pub aggregate_item_bytes: f64,
}

/// The measured work for 1, 4 (hourly upload of 15-minute readings) and 96 (daily upload)
/// readings per message: a meter's 96 quarter-hour readings (192 for daily messages) with every
/// field and `seq` set, in order, measured 2026-11-26 by `tests/tests/cost_per_reading.rs`.
/// Per message and meter, ingest writes the readings and their seq guards, then refreshes the
/// hour, day and month buckets it touched: six strongly consistent queries (seven when a later
/// reading is already stored), then three version counter updates and three bucket puts. So
/// batching divides the refresh by the batch size and leaves 2 write units per reading
/// (reading + guard) as the floor.
pub const MEASURED: &[IngestWork] = &[
    IngestWork {
        readings_per_message: 1.0,
        write_units_per_reading: 8.0,
        read_units_per_reading: 6.01,
        requests_per_message: 14.01,
        stored_items_per_reading: 2.0,
        stored_bytes_per_reading: 248.0,
        aggregate_item_bytes: 84.4,
    },
    IngestWork {
        readings_per_message: 4.0,
        write_units_per_reading: 3.76,
        read_units_per_reading: 1.52,
        requests_per_message: 21.13,
        stored_items_per_reading: 2.0,
        stored_bytes_per_reading: 248.0,
        aggregate_item_bytes: 84.8,
    },
    IngestWork {
        readings_per_message: 96.0,
        write_units_per_reading: 2.32,
        read_units_per_reading: 0.12,
        requests_per_message: 230.5,
        stored_items_per_reading: 2.0,
        stored_bytes_per_reading: 248.4,
        aggregate_item_bytes: 87.3,
    },
];

/// The measured work for `readings_per_message`, if that batching was measured.
pub fn measured(readings_per_message: u32) -> Option<IngestWork> {
    MEASURED
        .iter()
        .find(|w| w.readings_per_message == f64::from(readings_per_message))
        .copied()
}

/// Public on-demand prices in USD for one region, as of `date`. Every field is a price as AWS
/// publishes it, so the file can be checked line by line against the pricing pages.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// When the prices were taken (they change: re-check before relying on a figure).
    pub date: String,
    /// The region they are for.
    pub region: String,
    /// IoT Core connectivity, per million connection-minutes.
    pub iot_connectivity_per_million_minutes: f64,
    /// IoT Core messaging, per million 5 KB messages (first billion a month).
    pub iot_messages_per_million: f64,
    /// IoT Core rules engine, per million rules triggered (5 KB units).
    pub iot_rules_triggered_per_million: f64,
    /// IoT Core rules engine, per million actions executed.
    pub iot_actions_per_million: f64,
    /// Lambda, per million requests.
    pub lambda_requests_per_million: f64,
    /// Lambda on arm64, per GB-second.
    pub lambda_arm64_per_gb_second: f64,
    /// DynamoDB on-demand, per million write request units.
    pub dynamodb_write_units_per_million: f64,
    /// DynamoDB on-demand, per million read request units.
    pub dynamodb_read_units_per_million: f64,
    /// DynamoDB Standard table class storage, per GB-month.
    pub dynamodb_storage_per_gb_month: f64,
    /// DynamoDB point-in-time recovery (continuous backups), per GB-month.
    pub dynamodb_pitr_per_gb_month: f64,
    /// SNS, per million publishes.
    pub sns_publishes_per_million: f64,
    /// SNS SMS to US numbers, per message (carrier fees included as an average).
    pub sns_sms_per_message: f64,
    /// CloudWatch Logs standard ingestion, per GB.
    pub logs_ingest_per_gb: f64,
    /// CloudWatch Logs storage, per GB-month.
    pub logs_storage_per_gb_month: f64,
    /// CloudWatch standard alarm, per alarm metric per month.
    pub cloudwatch_alarm_metric_per_month: f64,
    /// CloudWatch custom metric (the metric filters' metrics), per metric per month.
    pub cloudwatch_custom_metric_per_month: f64,
    /// KMS customer managed key, per key per month.
    pub kms_key_per_month: f64,
}

/// How long a meter's MQTT connection is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Always connected (keep-alive pings are free, the minutes are not).
    Persistent,
    /// Connects, publishes and disconnects: one billed minute per message.
    PerMessage,
}

/// The fleet and the choices being priced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Meters in the fleet.
    pub meters: u64,
    /// Minutes between two readings of a meter.
    pub interval_minutes: f64,
    /// Readings per message, and the work measured for that batching.
    pub work: IngestWork,
    /// Publish through Basic Ingest (`$aws/rules/...`): no messaging charge.
    pub basic_ingest: bool,
    /// How long meters stay connected.
    pub connection: Connection,
    /// Days raw readings are kept before TTL deletes them (free deletes).
    pub reading_retention_days: f64,
    /// Months of aggregates stored (they are kept forever: this is the age of the deployment).
    pub aggregate_months: f64,
    /// Lambda memory, MB (the template's `MemorySize`).
    pub lambda_memory_mb: f64,
    /// Assumption: milliseconds one DynamoDB request takes as seen from Lambda in the same
    /// region. Every request of a message is counted as if sent one after another (an upper
    /// bound: the adapters overlap some).
    pub dynamodb_ms_per_request: f64,
    /// Domain time per reading, microseconds (parse, validate, derive: `meterflow bench ingest`,
    /// `sqlite_pipeline_readings_per_s` gives about 8.5 µs with storage included).
    pub domain_us_per_reading: f64,
    /// Assumption: CloudWatch Logs bytes per invocation (the platform's start and report
    /// records and the "ingest batch done" line, JSON).
    pub log_bytes_per_invocation: f64,
    /// Assumption: SMS alerts per meter per month (the alerts function is a later issue).
    pub sms_per_meter_month: f64,
    /// Days of readings the daily forecast run reads per meter (`FORECAST_HISTORY_DAYS`; 0:
    /// no forecast run).
    pub forecast_history_days: f64,
    /// Days of readings the daily anomaly scan reads per meter (`SCAN_HISTORY_DAYS`; 0: no
    /// scan).
    pub scan_history_days: f64,
    /// Measured: CPU milliseconds of one meter's daily forecast at half-hourly readings
    /// (`meterflow bench forecast-run`, 2026-11-26: ~450 meters/s on the six days a week that
    /// keep the model, ~135 on its re-selection day); scaled by the interval's slots per day.
    pub forecast_ms_per_meter: f64,
    /// Measured: milliseconds of one meter's daily scan at half-hourly readings over 35 days
    /// (`meterflow scan` on the shared SGSC file, 2026-11-26: 0.15 s for 50 meters, reads
    /// included); scaled by slots per day and history days.
    pub scan_ms_per_meter: f64,
    /// Memory of the forecast and anomaly-scan functions, MB (the template's `MemorySize`).
    pub scheduled_memory_mb: f64,
    /// Meters whose history a shard reads at once (the functions' read concurrency): the
    /// DynamoDB waits of one meter overlap with the others'.
    pub scheduled_read_concurrency: f64,
    /// Assumption: bytes of one reading item as a history query reads it (the readings
    /// table's item without its seq guard).
    pub history_bytes_per_reading: f64,
    /// Days forecasts are kept (`FORECAST_RETENTION_DAYS`).
    pub forecast_retention_days: f64,
}

impl Scenario {
    /// The defaults `meterflow cost` starts from: 15-minute reads, one reading per message,
    /// direct publish, persistent connections, 400 days of raw readings, one year of aggregates.
    pub fn new(meters: u64, interval_minutes: f64, work: IngestWork) -> Self {
        Self {
            meters,
            interval_minutes,
            work,
            basic_ingest: false,
            connection: Connection::Persistent,
            reading_retention_days: 400.0,
            aggregate_months: 12.0,
            lambda_memory_mb: 256.0,
            dynamodb_ms_per_request: 6.0,
            domain_us_per_reading: 8.5,
            log_bytes_per_invocation: 800.0,
            sms_per_meter_month: 0.01,
            forecast_history_days: 60.0,
            scan_history_days: 35.0,
            forecast_ms_per_meter: 3.0,
            scan_ms_per_meter: 3.0,
            scheduled_memory_mb: 1769.0,
            scheduled_read_concurrency: 8.0,
            history_bytes_per_reading: 230.0,
            forecast_retention_days: 90.0,
        }
    }
}

/// Monthly quantities behind the bill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Readings per month.
    pub readings: f64,
    /// MQTT messages (= rule executions = Lambda invocations) per month.
    pub messages: f64,
    /// IoT connection-minutes per month.
    pub connection_minutes: f64,
    /// 5 KB units per message.
    pub iot_units_per_message: f64,
    /// Lambda billed milliseconds per invocation.
    pub lambda_ms_per_invocation: f64,
    /// Lambda GB-seconds per month.
    pub lambda_gb_seconds: f64,
    /// DynamoDB write request units per month.
    pub write_units: f64,
    /// DynamoDB read request units per month.
    pub read_units: f64,
    /// DynamoDB table storage at steady state, GB.
    pub dynamodb_gb: f64,
    /// CloudWatch Logs ingested per month, GB.
    pub log_gb: f64,
    /// Read request units of the daily forecast and scan runs per month (history queries and
    /// the latest forecast).
    pub scheduled_read_units: f64,
    /// Write request units of the forecast run per month.
    pub scheduled_write_units: f64,
    /// Lambda GB-seconds of the forecast and scan runs per month.
    pub scheduled_gb_seconds: f64,
    /// Forecast table storage at steady state, GB.
    pub forecast_gb: f64,
}

/// The model's answer: USD per month by service, total and per meter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// The prices' date and region.
    pub prices_date: String,
    /// The prices' region.
    pub region: String,
    /// What was priced.
    pub scenario: Scenario,
    /// The quantities.
    pub usage: Usage,
    /// USD per month, by service line.
    pub by_service: BTreeMap<String, f64>,
    /// USD per month in total.
    pub usd_per_month: f64,
    /// USD per meter per month.
    pub usd_per_meter_month: f64,
}

/// Prices `scenario` at `prices`.
pub fn estimate(prices: &Prices, scenario: &Scenario) -> Estimate {
    let s = scenario;
    let w = &s.work;
    let meters = s.meters as f64;
    let readings = meters * MINUTES_PER_MONTH / s.interval_minutes;
    let messages = readings / w.readings_per_message;
    let message_bytes = w.readings_per_message * READING_PAYLOAD_BYTES + 64.0;
    let iot_units = (message_bytes / IOT_UNIT_BYTES).ceil().max(1.0);
    let connection_minutes = match s.connection {
        Connection::Persistent => meters * MINUTES_PER_MONTH,
        Connection::PerMessage => messages,
    };
    let lambda_ms = (w.requests_per_message * s.dynamodb_ms_per_request
        + w.readings_per_message * s.domain_us_per_reading / 1000.0)
        .ceil()
        .max(1.0);
    let lambda_gb_seconds = messages * lambda_ms / 1000.0 * s.lambda_memory_mb / 1024.0;
    let write_units = readings * w.write_units_per_reading;
    let read_units = readings * w.read_units_per_reading;
    // Steady state: TTL deletes each reading `reading_retention_days` after its time.
    let readings_kept = meters * s.reading_retention_days * 24.0 * 60.0 / s.interval_minutes;
    let reading_bytes = readings_kept
        * (w.stored_bytes_per_reading + w.stored_items_per_reading * ITEM_OVERHEAD_BYTES);
    // Per meter-month: an hour bucket per hour, a day bucket per day, one month bucket.
    let aggregate_items = meters * s.aggregate_months * (730.0 + DAYS_PER_MONTH + 1.0);
    let aggregate_bytes = aggregate_items * (w.aggregate_item_bytes + ITEM_OVERHEAD_BYTES);
    let dynamodb_gb = (reading_bytes + aggregate_bytes) / GB;
    let log_gb = messages * s.log_bytes_per_invocation / GB;
    let sms = meters * s.sms_per_meter_month;
    let runs = scheduled_runs(s);

    let per_million = |count: f64, price: f64| count / 1e6 * price;
    let p = prices;
    let mut by_service = BTreeMap::new();
    let mut line = |name: &str, usd: f64| {
        by_service.insert(name.to_owned(), usd);
    };
    line(
        "iot_connectivity",
        per_million(connection_minutes, p.iot_connectivity_per_million_minutes),
    );
    line(
        "iot_messaging",
        if s.basic_ingest {
            0.0
        } else {
            per_million(messages * iot_units, p.iot_messages_per_million)
        },
    );
    line(
        "iot_rules_and_actions",
        per_million(messages * iot_units, p.iot_rules_triggered_per_million)
            + per_million(messages, p.iot_actions_per_million),
    );
    line(
        "lambda_requests",
        per_million(messages, p.lambda_requests_per_million),
    );
    line(
        "lambda_duration",
        lambda_gb_seconds * p.lambda_arm64_per_gb_second,
    );
    line(
        "dynamodb_writes",
        per_million(write_units, p.dynamodb_write_units_per_million),
    );
    line(
        "dynamodb_reads",
        per_million(read_units, p.dynamodb_read_units_per_million),
    );
    line(
        "dynamodb_storage",
        dynamodb_gb * p.dynamodb_storage_per_gb_month,
    );
    line("dynamodb_pitr", dynamodb_gb * p.dynamodb_pitr_per_gb_month);
    line(
        "sns",
        sms * p.sns_sms_per_message + per_million(sms, p.sns_publishes_per_million),
    );
    // Kept 30 days (the template's retention): about one month of ingestion is stored.
    line(
        "cloudwatch_logs",
        log_gb * (p.logs_ingest_per_gb + p.logs_storage_per_gb_month),
    );
    // The template's alarms: four on one metric, the quarantine rate on two; two custom
    // metrics from the log metric filters; the alarm topic's key.
    line(
        "cloudwatch_alarms_and_metrics",
        6.0 * p.cloudwatch_alarm_metric_per_month + 2.0 * p.cloudwatch_custom_metric_per_month,
    );
    line("kms", p.kms_key_per_month);
    let run_cost = |r: &RunWork| {
        r.gb_seconds * p.lambda_arm64_per_gb_second
            + per_million(r.read_units, p.dynamodb_read_units_per_million)
            + per_million(r.write_units, p.dynamodb_write_units_per_million)
            + per_million(r.invocations, p.lambda_requests_per_million)
    };
    line("forecast_run", run_cost(&runs.forecast));
    line("anomaly_scan_run", run_cost(&runs.scan));
    line(
        "forecast_storage",
        runs.forecast_gb * (p.dynamodb_storage_per_gb_month + p.dynamodb_pitr_per_gb_month),
    );

    let usd_per_month: f64 = by_service.values().sum();
    Estimate {
        prices_date: p.date.clone(),
        region: p.region.clone(),
        scenario: s.clone(),
        usage: Usage {
            readings,
            messages,
            connection_minutes,
            iot_units_per_message: iot_units,
            lambda_ms_per_invocation: lambda_ms,
            lambda_gb_seconds,
            write_units,
            read_units,
            dynamodb_gb,
            log_gb,
            scheduled_read_units: runs.forecast.read_units + runs.scan.read_units,
            scheduled_write_units: runs.forecast.write_units + runs.scan.write_units,
            scheduled_gb_seconds: runs.forecast.gb_seconds + runs.scan.gb_seconds,
            forecast_gb: runs.forecast_gb,
        },
        by_service,
        usd_per_month,
        usd_per_meter_month: if meters > 0.0 {
            usd_per_month / meters
        } else {
            0.0
        },
    }
}

/// One scheduled run's monthly work.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct RunWork {
    read_units: f64,
    write_units: f64,
    gb_seconds: f64,
    invocations: f64,
}

/// The daily forecast run and anomaly scan, per month.
struct Runs {
    forecast: RunWork,
    scan: RunWork,
    forecast_gb: f64,
}

/// What the daily forecast run and anomaly scan cost in requests and Lambda time: each reads
/// every meter's history window once a day with strongly consistent queries (1 MB pages, one
/// read unit per 4 KB), waits for them alongside `scheduled_read_concurrency` other meters, and
/// computes; the forecast run also reads the meter's latest forecast and writes one item (48 h
/// of points and the bands by slot of day). Shards each page through the registry too, about
/// 150 bytes a meter per shard: at 1M meters and 100 shards 0.5 USD a day, left out here.
fn scheduled_runs(s: &Scenario) -> Runs {
    let meters = s.meters as f64;
    let slots_per_day = 24.0 * 60.0 / s.interval_minutes;
    // The measured milliseconds are for half-hourly meters (48 slots a day).
    let slot_scale = slots_per_day / 48.0;
    let history = |days: f64| -> (f64, f64) {
        let bytes = days * slots_per_day * s.history_bytes_per_reading;
        let read_units = (bytes / 4096.0).ceil();
        let pages = (bytes / (1024.0 * 1024.0)).ceil();
        (read_units, pages)
    };
    let run = |days: f64, cpu_ms: f64, extra_reads: f64, writes: f64, extra_requests: f64| {
        if days <= 0.0 {
            return RunWork::default();
        }
        let (read_units, pages) = history(days);
        let wait_ms = (pages + extra_requests) * s.dynamodb_ms_per_request
            / s.scheduled_read_concurrency.max(1.0);
        let per_day = meters;
        RunWork {
            read_units: per_day * (read_units + extra_reads) * DAYS_PER_MONTH,
            write_units: per_day * writes * DAYS_PER_MONTH,
            gb_seconds: per_day * (cpu_ms + wait_ms) / 1000.0 * s.scheduled_memory_mb / 1024.0
                * DAYS_PER_MONTH,
            // One invocation a day per shard of 10,000 meters.
            invocations: meters / 10_000.0 * DAYS_PER_MONTH,
        }
    };
    // A forecast item: 48 h of [target, p10, p50, p90] (~28 bytes a point), the bands (~13
    // bytes a slot of day) and ~300 bytes of the rest.
    let forecast_bytes = 2.0 * slots_per_day * 28.0 + slots_per_day * 13.0 + 300.0;
    let forecast_writes = (forecast_bytes / 1024.0).ceil();
    let latest_reads = (forecast_bytes / 4096.0).ceil();
    let forecast = run(
        s.forecast_history_days,
        s.forecast_ms_per_meter * slot_scale,
        latest_reads,
        forecast_writes,
        2.0,
    );
    let scan = run(
        s.scan_history_days,
        s.scan_ms_per_meter * slot_scale * s.scan_history_days / 35.0,
        0.0,
        0.0,
        1.0,
    );
    let forecast_gb = if s.forecast_history_days > 0.0 {
        meters * s.forecast_retention_days * (forecast_bytes + ITEM_OVERHEAD_BYTES) / GB
    } else {
        0.0
    };
    Runs {
        forecast,
        scan,
        forecast_gb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round prices, so expected figures can be worked out by hand.
    fn prices() -> Prices {
        Prices {
            date: "test".into(),
            region: "test-1".into(),
            iot_connectivity_per_million_minutes: 0.1,
            iot_messages_per_million: 1.0,
            iot_rules_triggered_per_million: 0.2,
            iot_actions_per_million: 0.1,
            lambda_requests_per_million: 0.2,
            lambda_arm64_per_gb_second: 0.00001,
            dynamodb_write_units_per_million: 1.0,
            dynamodb_read_units_per_million: 0.1,
            dynamodb_storage_per_gb_month: 0.25,
            dynamodb_pitr_per_gb_month: 0.2,
            sns_publishes_per_million: 0.5,
            sns_sms_per_message: 0.01,
            logs_ingest_per_gb: 0.5,
            logs_storage_per_gb_month: 0.03,
            cloudwatch_alarm_metric_per_month: 0.1,
            cloudwatch_custom_metric_per_month: 0.3,
            kms_key_per_month: 1.0,
        }
    }

    fn work() -> IngestWork {
        IngestWork {
            readings_per_message: 1.0,
            write_units_per_reading: 6.0,
            read_units_per_reading: 5.0,
            requests_per_message: 10.0,
            stored_items_per_reading: 2.0,
            stored_bytes_per_reading: 300.0,
            aggregate_item_bytes: 80.0,
        }
    }

    #[test]
    fn known_inputs_give_known_outputs() {
        // 1,000 meters every 15 minutes: 2,920 readings per meter-month, 2,920,000 in all.
        let s = Scenario::new(1000, 15.0, work());
        let e = estimate(&prices(), &s);
        assert_eq!(e.usage.readings, 2_920_000.0);
        assert_eq!(e.usage.messages, 2_920_000.0);
        let close = |name: &str, want: f64| {
            let got = e.by_service[name];
            assert!((got - want).abs() < 1e-9, "{name}: {got} != {want}");
        };
        // 1,000 × 43,800 minutes at 0.1 per million.
        close("iot_connectivity", 4.38);
        // One 5 KB unit per message at 1.0 per million.
        close("iot_messaging", 2.92);
        // Rule (0.2) + action (0.1) per message.
        close("iot_rules_and_actions", 2.92 * 0.3);
        close("lambda_requests", 0.584);
        // 10 requests × 6 ms + 8.5 µs → 61 ms billed; × 0.25 GB × 2.92M × 1e-5.
        close("lambda_duration", 2_920_000.0 * 0.061 * 0.25 * 0.00001);
        close("dynamodb_writes", 17.52);
        close("dynamodb_reads", 1.46);
        close("kms", 1.0);
        close("cloudwatch_alarms_and_metrics", 1.2);
        // Storage: 400 days × 96 readings × 1,000 meters × (300 + 200) bytes, plus 12 months
        // of (730 + 30.42 + 1) aggregate items of 180 bytes.
        let bytes =
            400.0 * 96.0 * 1000.0 * 500.0 + 1000.0 * 12.0 * (730.0 + DAYS_PER_MONTH + 1.0) * 180.0;
        close("dynamodb_storage", bytes / GB * 0.25);
        close("dynamodb_pitr", bytes / GB * 0.2);
        let sum: f64 = e.by_service.values().sum();
        assert!((e.usd_per_month - sum).abs() < 1e-9);
        assert!((e.usd_per_meter_month - sum / 1000.0).abs() < 1e-12);
    }

    #[test]
    fn the_daily_runs_read_each_meters_history_window_once_a_day() {
        // 1,000 quarter-hour meters: 60 days × 96 readings × 230 bytes = 1,324,800 bytes,
        // 324 read units and 2 pages a meter; its forecast item 6,924 bytes: 7 write units,
        // and 2 read units for the latest forecast.
        let s = Scenario::new(1000, 15.0, work());
        let e = estimate(&prices(), &s);
        let scan_units = (35.0f64 * 96.0 * 230.0 / 4096.0).ceil();
        let want_reads = 1000.0 * DAYS_PER_MONTH * (324.0 + 2.0 + scan_units);
        assert!((e.usage.scheduled_read_units - want_reads).abs() < 1e-6);
        assert!((e.usage.scheduled_write_units - 7_000.0 * DAYS_PER_MONTH).abs() < 1e-6);
        // Forecast: 3 ms × 2 (96 slots, not 48) + (2 pages + 2 requests) × 6 ms / 8 = 9 ms.
        let forecast_gbs = 1000.0 * 0.009 * 1769.0 / 1024.0 * DAYS_PER_MONTH;
        let forecast_usd = forecast_gbs * 0.00001
            + 1000.0 * DAYS_PER_MONTH * 326.0 / 1e6 * 0.1
            + 7_000.0 * DAYS_PER_MONTH / 1e6 * 1.0
            + 0.1 * DAYS_PER_MONTH / 1e6 * 0.2;
        let got = e.by_service["forecast_run"];
        assert!((got - forecast_usd).abs() < 1e-9, "{got} != {forecast_usd}");
        assert!(e.by_service["anomaly_scan_run"] > 0.0);
        assert!(e.by_service["forecast_storage"] > 0.0);
    }

    #[test]
    fn a_fleet_without_forecasts_or_scans_pays_nothing_for_them() {
        let mut s = Scenario::new(1000, 15.0, work());
        s.forecast_history_days = 0.0;
        s.scan_history_days = 0.0;
        let e = estimate(&prices(), &s);
        for line in ["forecast_run", "anomaly_scan_run", "forecast_storage"] {
            assert_eq!(e.by_service[line], 0.0, "{line}");
        }
    }

    #[test]
    fn the_variable_cost_scales_linearly_with_the_fleet() {
        let p = prices();
        let at = |meters| estimate(&p, &Scenario::new(meters, 15.0, work()));
        let (small, big) = (at(10_000), at(1_000_000));
        let fixed = small.by_service["kms"] + small.by_service["cloudwatch_alarms_and_metrics"];
        let variable = |e: &Estimate| e.usd_per_month - fixed;
        let ratio = variable(&big) / variable(&small);
        assert!((ratio - 100.0).abs() < 1e-6, "{ratio}");
        for (name, v) in &big.by_service {
            if !matches!(name.as_str(), "kms" | "cloudwatch_alarms_and_metrics") {
                assert!((v / small.by_service[name] - 100.0).abs() < 1e-6, "{name}");
            }
        }
    }

    #[test]
    fn basic_ingest_removes_the_messaging_charge_and_nothing_else() {
        let p = prices();
        let mut s = Scenario::new(10_000, 15.0, work());
        let direct = estimate(&p, &s);
        s.basic_ingest = true;
        let basic = estimate(&p, &s);
        assert!(direct.by_service["iot_messaging"] > 0.0);
        assert_eq!(basic.by_service["iot_messaging"], 0.0);
        let saved = direct.usd_per_month - basic.usd_per_month;
        assert!((saved - direct.by_service["iot_messaging"]).abs() < 1e-9);
    }

    #[test]
    fn batching_readings_cuts_messages_and_invocations_by_the_batch_size() {
        let p = prices();
        let one = estimate(&p, &Scenario::new(10_000, 15.0, work()));
        let four = estimate(
            &p,
            &Scenario::new(
                10_000,
                15.0,
                IngestWork {
                    readings_per_message: 4.0,
                    ..work()
                },
            ),
        );
        assert_eq!(one.usage.messages, 4.0 * four.usage.messages);
        let ratio = one.by_service["lambda_requests"] / four.by_service["lambda_requests"];
        assert!((ratio - 4.0).abs() < 1e-9);
    }

    #[test]
    fn connecting_per_message_bills_a_minute_per_message_instead_of_the_whole_month() {
        let p = prices();
        let mut s = Scenario::new(1_000, 15.0, work());
        s.connection = Connection::PerMessage;
        let e = estimate(&p, &s);
        assert_eq!(e.usage.connection_minutes, e.usage.messages);
        assert!(e.by_service["iot_connectivity"] < 4.38 / 10.0);
    }

    #[test]
    fn shorter_raw_retention_only_lowers_storage() {
        let p = prices();
        let mut s = Scenario::new(1_000, 15.0, work());
        let long = estimate(&p, &s);
        s.reading_retention_days = 90.0;
        let short = estimate(&p, &s);
        assert!(short.by_service["dynamodb_storage"] < long.by_service["dynamodb_storage"]);
        assert_eq!(
            short.by_service["dynamodb_writes"],
            long.by_service["dynamodb_writes"]
        );
    }

    #[test]
    fn the_measured_write_units_fall_as_batches_grow_but_never_below_reading_and_guard() {
        for pair in MEASURED.windows(2) {
            assert!(pair[0].readings_per_message < pair[1].readings_per_message);
            assert!(pair[1].write_units_per_reading < pair[0].write_units_per_reading);
        }
        assert!(MEASURED.iter().all(|w| w.write_units_per_reading >= 2.0));
    }

    #[test]
    fn every_measured_batching_can_be_looked_up() {
        for w in MEASURED {
            assert_eq!(measured(w.readings_per_message as u32), Some(*w));
        }
        assert_eq!(measured(7), None);
    }
}
