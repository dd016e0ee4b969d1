//! Creating the five tables, for tests and local stacks; production tables come from the SAM
//! template (`infra/`), which declares the same keys, index, stream and TTL (see
//! `docs/data-model.md`).

use std::time::Duration;

use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use meter_core::StoreError;

use crate::config::Tables;
use crate::error::store_error;
use crate::registry::BY_FEEDER_INDEX;

/// The TTL attribute (epoch seconds) on readings, seq guards, quarantine entries and events.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// How long [`create_tables`] waits for a new table to become active.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// One table's shape.
struct Spec<'a> {
    name: &'a str,
    pk: &'static str,
    sk: Option<&'static str>,
    by_feeder_index: bool,
    stream: bool,
    ttl: bool,
}

/// Creates the five tables (on-demand billing, the `by_feeder` index on meters, a `NEW_IMAGE`
/// stream on events, TTL on `expires_at` where items expire), waits until they are active, and
/// enables TTL. Tables that already exist are left as they are, so calling it twice is harmless.
pub async fn create_tables(client: &Client, tables: &Tables) -> Result<(), StoreError> {
    let specs = [
        Spec {
            name: &tables.readings,
            pk: "meter_id",
            sk: Some("sk"),
            by_feeder_index: false,
            stream: false,
            ttl: true,
        },
        Spec {
            name: &tables.meters,
            pk: "meter_id",
            sk: None,
            by_feeder_index: true,
            stream: false,
            ttl: false,
        },
        Spec {
            name: &tables.quarantine,
            pk: "meter_key",
            sk: Some("sk"),
            by_feeder_index: false,
            stream: false,
            ttl: true,
        },
        Spec {
            name: &tables.aggregates,
            pk: "meter_id",
            sk: Some("sk"),
            by_feeder_index: false,
            stream: false,
            ttl: false,
        },
        Spec {
            name: &tables.events,
            pk: "meter_id",
            sk: Some("sk"),
            by_feeder_index: false,
            stream: true,
            ttl: true,
        },
    ];
    for spec in &specs {
        create(client, spec).await?;
    }
    for spec in &specs {
        wait_active(client, spec.name).await?;
        if spec.ttl {
            enable_ttl(client, spec.name).await?;
        }
    }
    Ok(())
}

/// Creates the forecasts table (`FORECASTS_TABLE`: the `forecast` function's own, so not among
/// the five ingest uses) with TTL on `expires_at`, and waits until it is active. Harmless if it
/// exists.
pub async fn create_forecast_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let spec = Spec {
        name,
        pk: "meter_id",
        sk: Some("sk"),
        by_feeder_index: false,
        stream: false,
        ttl: true,
    };
    create(client, &spec).await?;
    wait_active(client, name).await?;
    enable_ttl(client, name).await
}

/// Creates the findings table (`FINDINGS_TABLE`: the `anomaly-scan` function's own) with the
/// sparse [`crate::OPEN_INDEX`] of open findings, a `NEW_AND_OLD_IMAGES` stream (the alerts
/// function's feed) and TTL on `expires_at` (closed findings), and waits until it is active.
/// Harmless if it exists.
pub async fn create_findings_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let index = GlobalSecondaryIndex::builder()
        .index_name(crate::OPEN_INDEX)
        .key_schema(key("open", KeyType::Hash)?)
        .key_schema(key("open_key", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(invalid)?;
    let req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("meter_id")?)
        .attribute_definitions(string_attribute("sk")?)
        .attribute_definitions(string_attribute("open")?)
        .attribute_definitions(string_attribute("open_key")?)
        .key_schema(key("meter_id", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(invalid)?,
        );
    match req.send().await {
        Ok(_) => tracing::info!(table = name, "table created"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::debug!(table = name, "table already exists");
        }
        Err(e) => return Err(store_error("CreateTable", name, e)),
    }
    wait_active(client, name).await?;
    enable_ttl(client, name).await
}

fn invalid(e: BuildError) -> StoreError {
    StoreError::Rejected(Box::new(e))
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(invalid)
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(invalid)
}

async fn create(client: &Client, spec: &Spec<'_>) -> Result<(), StoreError> {
    let mut req = client
        .create_table()
        .table_name(spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(spec.pk)?)
        .key_schema(key(spec.pk, KeyType::Hash)?);
    if let Some(sk) = spec.sk {
        req = req
            .attribute_definitions(string_attribute(sk)?)
            .key_schema(key(sk, KeyType::Range)?);
    }
    if spec.by_feeder_index {
        let index = GlobalSecondaryIndex::builder()
            .index_name(BY_FEEDER_INDEX)
            .key_schema(key("feeder_id", KeyType::Hash)?)
            .key_schema(key("meter_id", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(invalid)?;
        req = req
            .attribute_definitions(string_attribute("feeder_id")?)
            .global_secondary_indexes(index);
    }
    if spec.stream {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(invalid)?,
        );
    }
    match req.send().await {
        Ok(_) => {
            tracing::info!(table = spec.name, "table created");
            Ok(())
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::debug!(table = spec.name, "table already exists");
            Ok(())
        }
        Err(e) => Err(store_error("CreateTable", spec.name, e)),
    }
}

async fn wait_active(client: &Client, table: &str) -> Result<(), StoreError> {
    let started = tokio::time::Instant::now();
    loop {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| store_error("DescribeTable", table, e))?;
        let status = out.table.and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            return Err(StoreError::Unavailable(
                format!("table {table} is not active after {ACTIVE_TIMEOUT:?}").into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn enable_ttl(client: &Client, table: &str) -> Result<(), StoreError> {
    let current = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| store_error("DescribeTimeToLive", table, e))?;
    let status = current
        .time_to_live_description
        .and_then(|d| d.time_to_live_status);
    // Enabling twice is a ValidationException, so only enable what is off.
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(invalid)?,
        )
        .send()
        .await
        .map_err(|e| store_error("UpdateTimeToLive", table, e))?;
    Ok(())
}
