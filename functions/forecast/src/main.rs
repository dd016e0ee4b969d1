//! Entry point of the `forecast` Lambda: reads configuration from the environment once, builds
//! the DynamoDB and SQS clients once, and serves invocations with [`forecast::handle`].

use std::sync::Arc;

use anyhow::Context as _;
use forecast::{ForecastConfig, Forecaster};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Honours the function's JSON log format and log level settings.
    lambda_runtime::tracing::init_default_subscriber();
    let lookup = |k: &str| std::env::var(k).ok();
    let config = ForecastConfig::from_lookup(lookup).context("reading forecast settings")?;
    let tables = meter_aws::ForecastTables::from_env().context("reading table names")?;
    let queue_url = meter_shards::shard_queue_url(lookup)
        .context("SHARD_QUEUE_URL is not set; it must be the shard queue's URL")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ports = meter_aws::forecast_ports(
        aws_sdk_dynamodb::Client::new(&sdk),
        &tables,
        config.retention_days,
    );
    let forecaster = Forecaster {
        registry: ports.registry,
        readings: ports.readings,
        forecasts: ports.forecasts,
        dispatcher: Arc::new(meter_aws::SqsShardDispatcher::new(
            aws_sdk_sqs::Client::new(&sdk),
            queue_url,
        )),
        config,
    };
    let forecaster = &forecaster;

    meter_shards::serve(|event, now| async move { forecast::handle(forecaster, &event, now).await })
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
