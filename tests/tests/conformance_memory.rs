//! The conformance suite against the in-memory fakes: the fakes that unit tests lean on must
//! keep the same contract as the real adapters.

async fn make_ports() -> meter_core::Ports {
    meter_core::memory::memory_ports()
}

meterflow_tests::conformance_suite!(make_ports);
