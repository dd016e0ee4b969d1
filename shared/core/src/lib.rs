//! `meter-core`: meterflow's domain, free of AWS, Lambda, HTTP and async runtimes.
//!
//! The flow of a reading: [`telemetry`] parses a meter's message and [`validation`] checks it;
//! [`ingest::Ingestor`] stores it through the [`ports`], quarantining what it refuses; [`energy`]
//! derives interval energy from the cumulative register and [`aggregate`] rolls it into hourly,
//! daily and monthly buckets; [`events`] raises instant events for the alerts function.
//! Offline and scheduled analysis of stored history: [`forecast`] (per-meter consumption
//! forecasts) and [`anomaly`] (theft, consumption anomalies, feeder energy balance, bad data).
//!
//! Adapters live elsewhere: `meter-local` (SQLite) and `meter-aws` (DynamoDB) implement the
//! ports; [`memory`] holds in-memory fakes for tests and benchmarks.

pub mod aggregate;
pub mod anomaly;
pub mod cost;
pub mod energy;
pub mod events;
mod fastpath;
pub mod forecast;
pub mod ingest;
pub mod memory;
pub mod ports;
pub mod registry;
pub mod series;
pub mod telemetry;
pub mod types;
pub mod validation;

pub use aggregate::{Aggregate, Granularity, Period};
pub use events::{EventKind, MeterEvent};
pub use ingest::{Inbound, IngestConfig, IngestReport, Ingestor, PendingPass, Ports, RegistryMode};
pub use ports::{InsertOutcome, StoreError};
pub use registry::MeterInfo;
pub use telemetry::{MessageContext, QuarantineEntry};
pub use types::{Energy, MeterId, MeterKind, MeterStatus, Reading, RelayState, Timestamp};
pub use validation::{Limits, QuarantineReason};
