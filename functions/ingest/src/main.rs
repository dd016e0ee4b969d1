//! Entry point of the `ingest` Lambda: reads configuration from the environment once, builds the
//! DynamoDB client once, and serves invocations with [`ingest::handle`].

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use lambda_runtime::{service_fn, LambdaEvent};
use meter_core::{IngestConfig, Ingestor, Timestamp};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Honours the function's JSON log format and log level settings.
    lambda_runtime::tracing::init_default_subscriber();
    let lookup = |k: &str| std::env::var(k).ok();
    let config = IngestConfig::from_lookup(lookup).context("reading ingest settings")?;
    let tables = meter_aws::Tables::from_env().context("reading table names")?;
    let retention = meter_aws::Retention::from_env().context("reading retention settings")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let ingestor = Ingestor::new(
        meter_aws::dynamo_ports(client, &tables, &retention).await,
        config,
    );
    let ingestor = &ingestor;

    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default();
            ingest::handle(ingestor, &event.payload, Timestamp::from_millis(now)).await
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
