//! Entry point of the `anomaly-scan` Lambda: reads configuration from the environment once,
//! builds the DynamoDB and SQS clients once, and serves invocations with
//! [`anomaly_scan::handle`].

use std::sync::Arc;

use anomaly_scan::{ScanSettings, Scanner};
use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Honours the function's JSON log format and log level settings.
    lambda_runtime::tracing::init_default_subscriber();
    let lookup = |k: &str| std::env::var(k).ok();
    let settings = ScanSettings::from_lookup(lookup).context("reading anomaly-scan settings")?;
    let tables = meter_aws::ScanTables::from_env().context("reading table names")?;
    let queue_url = meter_shards::shard_queue_url(lookup)
        .context("SHARD_QUEUE_URL is not set; it must be the shard queue's URL")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ports = meter_aws::scan_ports(
        aws_sdk_dynamodb::Client::new(&sdk),
        &tables,
        settings.retention_days,
    );
    let scanner = Scanner {
        registry: ports.registry,
        readings: ports.readings,
        findings: ports.findings,
        dispatcher: Arc::new(meter_aws::SqsShardDispatcher::new(
            aws_sdk_sqs::Client::new(&sdk),
            queue_url,
        )),
        settings,
    };
    let scanner = &scanner;

    meter_shards::serve(
        |event, now| async move { anomaly_scan::handle(scanner, &event, now).await },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
