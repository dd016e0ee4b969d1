//! The conformance suite against the SQLite adapters (the local stack's store), each case on its
//! own in-memory database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

async fn make_ports() -> meter_core::Ports {
    let db = meter_local::SqliteDb::in_memory().expect("open an in-memory SQLite database");
    meter_local::sqlite_ports(Arc::new(db))
}

meterflow_tests::conformance_suite!(make_ports);

async fn make_forecasts() -> Arc<dyn meter_core::ports::ForecastStore> {
    let db = meter_local::SqliteDb::in_memory().expect("open an in-memory SQLite database");
    Arc::new(meter_local::SqliteForecastStore::new(Arc::new(db)))
}

meterflow_tests::forecast_store_suite!(make_forecasts);

async fn make_findings() -> Arc<dyn meter_core::ports::FindingStore> {
    let db = meter_local::SqliteDb::in_memory().expect("open an in-memory SQLite database");
    Arc::new(meter_local::SqliteFindingStore::new(Arc::new(db)))
}

meterflow_tests::finding_store_suite!(make_findings);
