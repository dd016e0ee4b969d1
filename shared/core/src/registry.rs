//! The meter registry's record: what the platform knows about a meter besides its readings.

use chrono_tz::Tz;

use crate::ports::StoreError;
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

/// Whether `info` may be registered, given the registry's record of the feeder it names
/// (`feeder`, looked up by `info.feeder_id`; ignored when it names none): the feeder must be
/// registered, and as a feeder meter. Every [`crate::ports::MeterRegistry`] adapter calls it
/// before writing, so a consumer never ends up under a feeder the scan cannot find.
///
/// Meters are never deleted from the registry, so an adapter may look the feeder up and then
/// write without a transaction: a feeder found registered stays registered.
pub fn check_feeder(info: &MeterInfo, feeder: Option<&MeterInfo>) -> Result<(), StoreError> {
    match (&info.feeder_id, feeder) {
        (None, _) => Ok(()),
        (Some(_), Some(f)) if f.kind == MeterKind::Feeder => Ok(()),
        (Some(id), _) => Err(StoreError::UnregisteredFeeder {
            meter: info.meter_id.clone(),
            feeder: id.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(id: &str, kind: MeterKind, feeder: Option<&str>) -> MeterInfo {
        MeterInfo {
            kind,
            feeder_id: feeder.map(|f| MeterId::parse(f).unwrap()),
            ..MeterInfo::new_consumer(MeterId::parse(id).unwrap(), chrono_tz::Tz::UTC)
        }
    }

    #[test]
    fn a_consumer_may_name_only_a_registered_feeder_meter() {
        let feeder = meter("f-1", MeterKind::Feeder, None);
        let other = meter("c-9", MeterKind::Consumer, None);
        let c = meter("c-1", MeterKind::Consumer, Some("f-1"));
        assert!(check_feeder(&c, Some(&feeder)).is_ok());
        assert!(check_feeder(&meter("c-2", MeterKind::Consumer, None), None).is_ok());
        for found in [None, Some(&other)] {
            let err = check_feeder(&c, found).unwrap_err();
            assert!(
                matches!(&err, StoreError::UnregisteredFeeder { meter, feeder }
                    if meter.as_str() == "c-1" && feeder.as_str() == "f-1"),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains("c-1") && message.contains("f-1"),
                "{message}"
            );
        }
    }
}
