//! The conformance suite against the SQLite adapters (the local stack's store), each case on its
//! own in-memory database: once with the default hot-table limits (a small case's rows stay in
//! the hot tables) and once moving every row on at each write (`HotLimits::none`), so reads,
//! duplicate checks and roll-ups are held to the same promises across both tables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

async fn make_ports() -> meter_core::Ports {
    let db = meter_local::SqliteDb::in_memory().expect("open an in-memory SQLite database");
    meter_local::sqlite_ports(Arc::new(db))
}

meterflow_tests::conformance_suite!(make_ports);

/// The same suite with every reading and aggregate moved out of the hot tables at each write.
mod moved_on_every_write {
    use std::sync::Arc;

    async fn make_ports() -> meter_core::Ports {
        let db = meter_local::SqliteDb::in_memory()
            .expect("open an in-memory SQLite database")
            .with_hot_limits(meter_local::HotLimits::none());
        meter_local::sqlite_ports(Arc::new(db))
    }

    meterflow_tests::conformance_suite!(make_ports);
}

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
