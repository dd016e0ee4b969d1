//! `meter-aws`: meterflow's ports on DynamoDB, through the official `aws-sdk-dynamodb` crate.
//!
//! Each port has one adapter over one table: [`DynamoReadingStore`] (readings),
//! [`DynamoMeterRegistry`] (meters), [`DynamoQuarantineStore`] (quarantine),
//! [`DynamoAggregateStore`] (aggregates), [`DynamoEventStore`] (events) and
//! [`DynamoForecastStore`] (forecasts, the `forecast` function's own table) and
//! [`DynamoFindingStore`] (findings, the `anomaly-scan` function's own). Keys, attributes
//! and every access pattern are described in `docs/data-model.md`; no request path scans.
//!
//! A Lambda builds its ports once at cold start with [`ports_from_env`]: it loads the SDK's
//! default configuration (credentials, region and `AWS_ENDPOINT_URL`, which is how tests point
//! the SDK at moto), reads the table names ([`Tables`]) and retention ([`Retention`]) from the
//! environment, and hands out one shared client. Tests and local stacks create the tables with
//! [`create_tables`].
//!
//! Every write is idempotent, as the ports require: first-writer-wins items (readings, seq
//! guards, events, registrations) use `attribute_not_exists` conditions, aggregates only replace
//! lower versions, and quarantine entries overwrite themselves. SDK errors become
//! [`meter_core::StoreError`]s that keep the SDK error as their source: throttling, 5xx,
//! timeouts and network failures are `Unavailable` (retry the invocation), the rest `Rejected`.

mod aggregates;
pub mod batch;
mod config;
mod error;
mod events;
mod findings;
mod forecasts;
mod item;
mod ops;
mod quarantine;
mod readings;
mod registry;
#[cfg(feature = "sqs")]
mod sqs;
mod tables;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use meter_core::ports::{FindingStore, ForecastStore, MeterRegistry, ReadingStore};
use meter_core::Ports;

pub use aggregates::{DynamoAggregateStore, VERSION_SK};
pub use config::{ConfigError, ForecastTables, Retention, ScanTables, Tables};
pub use events::DynamoEventStore;
pub use findings::{DynamoFindingStore, OPEN_INDEX};
pub use forecasts::DynamoForecastStore;
pub use quarantine::{quarantine_sk, DynamoQuarantineStore};
pub use readings::{reading_sk, seq_guard_sk, DynamoReadingStore};
pub use registry::{DynamoMeterRegistry, BY_FEEDER_INDEX};
#[cfg(feature = "sqs")]
pub use sqs::SqsShardDispatcher;
pub use tables::{create_findings_table, create_forecast_table, create_tables, TTL_ATTRIBUTE};

/// A DynamoDB client from the SDK's default configuration chain (environment, profile, IMDS or
/// the Lambda role; `AWS_ENDPOINT_URL` redirects it to moto or DynamoDB Local).
pub async fn client_from_env() -> Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&config)
}

/// All five adapters over `tables`, sharing `client` (cheap to clone: one connection pool).
pub async fn dynamo_ports(client: Client, tables: &Tables, retention: &Retention) -> Ports {
    Ports {
        readings: Arc::new(DynamoReadingStore::new(
            client.clone(),
            &tables.readings,
            retention,
        )),
        registry: Arc::new(DynamoMeterRegistry::new(client.clone(), &tables.meters)),
        quarantine: Arc::new(DynamoQuarantineStore::new(
            client.clone(),
            &tables.quarantine,
            retention,
        )),
        aggregates: Arc::new(DynamoAggregateStore::new(
            client.clone(),
            &tables.aggregates,
        )),
        events: Arc::new(DynamoEventStore::new(client, &tables.events, retention)),
    }
}

/// What the `forecast` function stores through: the registry and readings ingest writes (read
/// only) and its own forecasts table.
pub struct ForecastPorts {
    /// The meter registry, paged through by the shards.
    pub registry: Arc<dyn MeterRegistry>,
    /// Raw readings: each meter's history.
    pub readings: Arc<dyn ReadingStore>,
    /// Issued forecasts.
    pub forecasts: Arc<dyn ForecastStore>,
}

/// The forecast function's adapters over `tables`, sharing `client`; forecasts expire
/// `forecast_retention_days` after their issue.
pub fn forecast_ports(
    client: Client,
    tables: &ForecastTables,
    forecast_retention_days: u32,
) -> ForecastPorts {
    ForecastPorts {
        registry: Arc::new(DynamoMeterRegistry::new(client.clone(), &tables.meters)),
        // Retention only stamps what the store writes; the forecast function only reads.
        readings: Arc::new(DynamoReadingStore::new(
            client.clone(),
            &tables.readings,
            &Retention::default(),
        )),
        forecasts: Arc::new(DynamoForecastStore::new(
            client,
            &tables.forecasts,
            forecast_retention_days,
        )),
    }
}

/// What the `anomaly-scan` function stores through: the registry and readings ingest writes
/// (read only) and its own findings table.
pub struct ScanPorts {
    /// The meter registry, paged through by the shards.
    pub registry: Arc<dyn MeterRegistry>,
    /// Raw readings: each meter's history.
    pub readings: Arc<dyn ReadingStore>,
    /// Findings, open and closed.
    pub findings: Arc<dyn FindingStore>,
}

/// The anomaly-scan function's adapters over `tables`, sharing `client`; closed findings
/// expire `finding_retention_days` after they closed.
pub fn scan_ports(client: Client, tables: &ScanTables, finding_retention_days: u32) -> ScanPorts {
    ScanPorts {
        registry: Arc::new(DynamoMeterRegistry::new(client.clone(), &tables.meters)),
        // Retention only stamps what the store writes; the scan only reads readings.
        readings: Arc::new(DynamoReadingStore::new(
            client.clone(),
            &tables.readings,
            &Retention::default(),
        )),
        findings: Arc::new(DynamoFindingStore::new(
            client,
            &tables.findings,
            finding_retention_days,
        )),
    }
}

/// The ports a Lambda needs, configured entirely from its environment: table names
/// ([`Tables::from_env`]), retention ([`Retention::from_env`]) and the SDK's defaults.
pub async fn ports_from_env() -> Result<Ports, ConfigError> {
    let tables = Tables::from_env()?;
    let retention = Retention::from_env()?;
    Ok(dynamo_ports(client_from_env().await, &tables, &retention).await)
}
