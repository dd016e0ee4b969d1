//! The meter registry's record: what the platform knows about a meter besides its readings.

use chrono_tz::Tz;

use crate::types::{MeterId, MeterKind};

/// A registered meter.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterInfo {
    /// The meter's id.
    pub meter_id: MeterId,
    /// Consumer or feeder.
    pub kind: MeterKind,
    /// The feeder (distribution transformer) meter this consumer sits under.
    pub feeder_id: Option<MeterId>,
    /// Contracted (sanctioned) load, kW; readings above it raise an event.
    pub contracted_kw: Option<f64>,
    /// Free-text location (address, pole number, coordinates).
    pub location: Option<String>,
    /// Tariff the consumer is billed on.
    pub tariff_id: Option<String>,
    /// Time zone for local hours, days and months (IANA name).
    pub timezone: Tz,
}

impl MeterInfo {
    /// A consumer meter with nothing else known, as auto-registration creates it.
    pub fn new_consumer(meter_id: MeterId, timezone: Tz) -> Self {
        Self {
            meter_id,
            kind: MeterKind::Consumer,
            feeder_id: None,
            contracted_kw: None,
            location: None,
            tariff_id: None,
            timezone,
        }
    }
}

/// Parses an IANA time-zone name (`Australia/Sydney`, `UTC`).
pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.parse().ok()
}
