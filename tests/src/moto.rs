//! What every test against moto (the local AWS emulator `scripts/test` starts) needs: whether to
//! run at all, and table names no other case or run uses; and what the sharded functions' tests
//! share: the ingest tables and a shard queue ([`ShardedAws`]), a fleet's history in DynamoDB, and
//! the shard queue read back as Lambda's SQS poller would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether to skip: no moto configured (`AWS_ENDPOINT_URL` unset). Under `CI` that is a failure,
/// not a skip, so a broken test script cannot pass by skipping.
pub fn skip_without_moto() -> bool {
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        return false;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "AWS_ENDPOINT_URL is not set: tests against DynamoDB need moto in CI \
             (scripts/test starts it and sets the variable)"
        );
    }
    eprintln!("skipping: AWS_ENDPOINT_URL not set (run scripts/test)");
    true
}

/// A table-name prefix starting with `tag` that no other case or test run uses, so cases run in
/// parallel on one moto server.
pub fn unique_prefix(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{nanos}-{n}-", std::process::id())
}

/// The AWS side of a sharded function's test (forecast, anomaly-scan): SDK clients for moto, the
/// ingest tables under a fresh prefix, and an SQS queue for the coordinator's shard messages.
/// The function's own output table is the test's to create, with [`ShardedAws::prefix`].
pub struct ShardedAws {
    /// DynamoDB on moto.
    pub dynamo: aws_sdk_dynamodb::Client,
    /// SQS on moto.
    pub sqs: aws_sdk_sqs::Client,
    /// The prefix of every table and queue name this case made.
    pub prefix: String,
    /// The ingest tables (meters, readings, ...), created.
    pub tables: meter_aws::Tables,
    /// The shard queue's URL.
    pub queue_url: String,
}

impl ShardedAws {
    /// Creates the tables and the queue under a prefix starting with `tag`.
    ///
    /// # Panics
    /// When moto refuses a call: this is test set-up.
    pub async fn start(tag: &str) -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let prefix = unique_prefix(tag);
        let tables = meter_aws::Tables::with_prefix(&prefix);
        meter_aws::create_tables(&dynamo, &tables)
            .await
            .expect("create the ingest tables on moto");
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{prefix}shards"))
            .send()
            .await
            .expect("create the shard queue on moto")
            .queue_url
            .expect("moto returns the queue URL");
        Self {
            dynamo,
            sqs,
            prefix,
            tables,
            queue_url,
        }
    }
}

/// Registers each of `ids` as a UTC consumer and stores 14 days of quarter-hour readings for it
/// from `T0` (meter `i` a little busier than meter `i - 1`) through the DynamoDB ingest adapters:
/// the history the forecast tests forecast from (issue time `T0` + 14 days).
pub async fn seed_forecast_history(
    client: &aws_sdk_dynamodb::Client,
    tables: &meter_aws::Tables,
    ids: &[&str],
) {
    use crate::fixtures::{day_series, meter, QUARTER, T0};
    let ingest =
        meter_aws::dynamo_ports(client.clone(), tables, &meter_aws::Retention::default()).await;
    for (i, id) in ids.iter().enumerate() {
        ingest
            .registry
            .upsert(&meter_core::MeterInfo::new_consumer(
                meter(id),
                chrono_tz::Tz::UTC,
            ))
            .await
            .unwrap();
        ingest
            .readings
            .insert(&day_series(id, T0 + QUARTER, 5.0 * i as f64, 14 * 96))
            .await
            .unwrap();
    }
}

/// Receives `n` messages from the queue (polling a few times, as Lambda's SQS poller would),
/// as the SQS event records a function gets: `messageId` and `body`.
pub async fn receive_records(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    n: usize,
) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            records.push(serde_json::json!({
                "messageId": m.message_id.unwrap_or_default(),
                "body": m.body.unwrap_or_default(),
                "eventSource": "aws:sqs",
            }));
        }
        if records.len() >= n {
            break;
        }
    }
    records
}

/// Asserts that each of `ids` has a stored day-and-two forecast (192 quarter-hour points) issued
/// at `issued`, and returns them in order.
pub async fn assert_forecasts_stored(
    forecasts: &dyn meter_core::ports::ForecastStore,
    ids: &[&str],
    issued: meter_core::Timestamp,
) -> Vec<meter_core::forecast::stored::StoredForecast> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let fc = forecasts
            .get(&crate::fixtures::meter(id), issued)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no forecast for {id}"));
        assert_eq!(fc.points.len(), 192, "{id}");
        out.push(fc);
    }
    out
}
