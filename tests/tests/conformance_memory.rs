//! The conformance suite against the in-memory fakes: the fakes that unit tests lean on must
//! keep the same contract as the real adapters.

async fn make_ports() -> meter_core::Ports {
    meter_core::memory::memory_ports()
}

meterflow_tests::conformance_suite!(make_ports);

async fn make_forecasts() -> std::sync::Arc<dyn meter_core::ports::ForecastStore> {
    std::sync::Arc::new(meter_core::memory::MemoryForecastStore::new())
}

meterflow_tests::forecast_store_suite!(make_forecasts);

async fn make_findings() -> std::sync::Arc<dyn meter_core::ports::FindingStore> {
    std::sync::Arc::new(meter_core::memory::MemoryFindingStore::new())
}

meterflow_tests::finding_store_suite!(make_findings);

async fn make_pending() -> std::sync::Arc<dyn meter_core::ports::PendingAggregates> {
    std::sync::Arc::new(meter_core::memory::MemoryPendingAggregates::new())
}

meterflow_tests::pending_aggregates_suite!(make_pending);
