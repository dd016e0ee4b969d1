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

/// The same suite with every reading call in a transaction of its own opened with
/// `SqliteDb::begin`, as the rule bridge makes them: there the store trusts what it knows of the
/// main table per meter and skips it where it cannot hold an answer. Rows also move at every
/// write, so both tables hold readings.
mod in_the_bridges_transactions {
    use std::sync::Arc;

    use async_trait::async_trait;
    use meter_core::ports::{InsertOutcome, ReadingStore, StoreError};
    use meter_core::{MeterId, Reading, Timestamp};
    use meter_local::SqliteDb;

    /// A reading store whose every call runs inside `begin` and `commit`.
    struct InTransactions {
        db: Arc<SqliteDb>,
        inner: Arc<dyn ReadingStore>,
    }

    impl InTransactions {
        async fn run<T>(
            &self,
            call: impl std::future::Future<Output = Result<T, StoreError>>,
        ) -> Result<T, StoreError> {
            self.db.begin()?;
            match call.await {
                Ok(out) => self.db.commit().map(|()| out),
                Err(e) => {
                    self.db.rollback()?;
                    Err(e)
                }
            }
        }
    }

    #[async_trait]
    impl ReadingStore for InTransactions {
        async fn insert(&self, readings: &[Reading]) -> Result<Vec<InsertOutcome>, StoreError> {
            self.run(self.inner.insert(readings)).await
        }

        async fn range(
            &self,
            meter: &MeterId,
            from: Timestamp,
            to: Timestamp,
        ) -> Result<Vec<Reading>, StoreError> {
            self.run(self.inner.range(meter, from, to)).await
        }

        async fn before(
            &self,
            meter: &MeterId,
            ts: Timestamp,
        ) -> Result<Option<Reading>, StoreError> {
            self.run(self.inner.before(meter, ts)).await
        }

        async fn after(
            &self,
            meter: &MeterId,
            ts: Timestamp,
        ) -> Result<Option<Reading>, StoreError> {
            self.run(self.inner.after(meter, ts)).await
        }

        async fn range_with_previous(
            &self,
            meter: &MeterId,
            from: Timestamp,
            to: Timestamp,
        ) -> Result<Vec<Reading>, StoreError> {
            self.run(self.inner.range_with_previous(meter, from, to))
                .await
        }
    }

    async fn make_ports() -> meter_core::Ports {
        let db = Arc::new(
            SqliteDb::in_memory()
                .expect("open an in-memory SQLite database")
                .with_hot_limits(meter_local::HotLimits {
                    readings: 1,
                    ..meter_local::HotLimits::default()
                }),
        );
        let mut ports = meter_local::sqlite_ports(db.clone());
        ports.readings = Arc::new(InTransactions {
            db,
            inner: ports.readings,
        });
        ports
    }

    meterflow_tests::conformance_suite!(make_ports);
}

async fn make_pending() -> Arc<dyn meter_core::ports::PendingAggregates> {
    let db = meter_local::SqliteDb::in_memory().expect("open an in-memory SQLite database");
    Arc::new(meter_local::SqlitePendingAggregates::new(Arc::new(db)))
}

meterflow_tests::pending_aggregates_suite!(make_pending);
