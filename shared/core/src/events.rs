//! Instant events: conditions visible in a single reading (or a reading and its predecessor) that
//! ingest raises at once for the alerts function, without waiting for a scheduled scan.
//!
//! An event's id is derived from the meter, the reading time and the kind, so raising it again
//! (a redelivered message, a retried invocation) is a no-op in every store.

use std::fmt;

use crate::energy::{interval_between, IntervalKind, RegisterPolicy};
use crate::registry::MeterInfo;
use crate::types::{MeterId, MeterStatus, Reading, RelayState, Timestamp};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Voltage below the nominal band (but not zero).
    VoltageLow,
    /// Voltage above the nominal band.
    VoltageHigh,
    /// Voltage zero: no supply at the meter.
    NoVoltage,
    /// Active power above the contracted load.
    OverContractedLoad,
    /// The meter reports tampering.
    Tamper,
    /// The meter reports a fault.
    Fault,
    /// The relay opened since the previous reading.
    RelayOpened,
    /// The relay closed since the previous reading.
    RelayClosed,
    /// The register went down without wrapping: meter reset or replaced.
    RegisterReset,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 9] = [
        Self::VoltageLow,
        Self::VoltageHigh,
        Self::NoVoltage,
        Self::OverContractedLoad,
        Self::Tamper,
        Self::Fault,
        Self::RelayOpened,
        Self::RelayClosed,
        Self::RegisterReset,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VoltageLow => "voltage_low",
            Self::VoltageHigh => "voltage_high",
            Self::NoVoltage => "no_voltage",
            Self::OverContractedLoad => "over_contracted_load",
            Self::Tamper => "tamper",
            Self::Fault => "fault",
            Self::RelayOpened => "relay_opened",
            Self::RelayClosed => "relay_closed",
            Self::RegisterReset => "register_reset",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event about one meter at one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterEvent {
    /// The meter.
    pub meter_id: MeterId,
    /// The reading's time.
    pub ts: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The measured value that triggered it (V, W), if any.
    pub value: Option<f64>,
    /// One line for a person.
    pub detail: String,
}

impl MeterEvent {
    /// The deterministic id within the meter: `{ts ms, 15 digits}#{kind}`, so keys sort by time.
    pub fn key(&self) -> String {
        format!("{:015}#{}", self.ts.millis(), self.kind)
    }
}

/// Thresholds for instant events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPolicy {
    /// Nominal voltage, V.
    pub nominal_voltage_v: f64,
    /// Allowed deviation from nominal, as a fraction (EN 50160: ±10%).
    pub voltage_tolerance: f64,
}

impl Default for EventPolicy {
    fn default() -> Self {
        Self {
            nominal_voltage_v: 230.0,
            voltage_tolerance: 0.10,
        }
    }
}

impl EventPolicy {
    /// Events visible in `r` alone, or in `r` and the meter's previous reading `prev`.
    pub fn detect(
        &self,
        meter: &MeterInfo,
        registers: &RegisterPolicy,
        r: &Reading,
        prev: Option<&Reading>,
    ) -> Vec<MeterEvent> {
        let mut out = Vec::new();
        let mut push = |kind, value, detail: String| {
            out.push(MeterEvent {
                meter_id: r.meter_id.clone(),
                ts: r.ts,
                kind,
                value,
                detail,
            })
        };
        if let Some(v) = r.voltage_v {
            let lo = self.nominal_voltage_v * (1.0 - self.voltage_tolerance);
            let hi = self.nominal_voltage_v * (1.0 + self.voltage_tolerance);
            if v == 0.0 {
                push(
                    EventKind::NoVoltage,
                    Some(v),
                    "no voltage at the meter".into(),
                );
            } else if v < lo {
                push(
                    EventKind::VoltageLow,
                    Some(v),
                    format!("voltage {v:.1} V is below {lo:.1} V"),
                );
            } else if v > hi {
                push(
                    EventKind::VoltageHigh,
                    Some(v),
                    format!("voltage {v:.1} V is above {hi:.1} V"),
                );
            }
        }
        if let (Some(p), Some(kw)) = (r.power_w, meter.contracted_kw) {
            if p > kw * 1000.0 {
                push(
                    EventKind::OverContractedLoad,
                    Some(p),
                    format!(
                        "power {:.2} kW exceeds the contracted {kw:.2} kW",
                        p / 1000.0
                    ),
                );
            }
        }
        match r.status {
            MeterStatus::Tamper => push(EventKind::Tamper, None, "meter reports tampering".into()),
            MeterStatus::Fault => push(EventKind::Fault, None, "meter reports a fault".into()),
            _ => {}
        }
        if let (Some(now), Some(before)) = (r.relay, prev.and_then(|p| p.relay)) {
            match (before, now) {
                (RelayState::Closed, RelayState::Open) => {
                    push(EventKind::RelayOpened, None, "relay opened".into())
                }
                (RelayState::Open, RelayState::Closed) => {
                    push(EventKind::RelayClosed, None, "relay closed".into())
                }
                _ => {}
            }
        }
        if let Some(p) = prev {
            let interval =
                interval_between((p.ts, p.energy_import), (r.ts, r.energy_import), registers);
            if interval.kind == IntervalKind::Reset {
                push(
                    EventKind::RegisterReset,
                    Some(r.energy_import.kwh()),
                    format!(
                        "register fell from {} kWh to {} kWh: meter reset or replaced",
                        p.energy_import.kwh(),
                        r.energy_import.kwh()
                    ),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Energy, MeterId};

    fn meter() -> MeterInfo {
        MeterInfo {
            contracted_kw: Some(5.0),
            ..MeterInfo::new_consumer(MeterId::parse("m-1").unwrap(), chrono_tz::Tz::UTC)
        }
    }

    fn reading(ts: i64, kwh: f64) -> Reading {
        Reading {
            meter_id: MeterId::parse("m-1").unwrap(),
            ts: Timestamp::from_millis(ts),
            seq: None,
            received: Timestamp::from_millis(ts),
            energy_import: Energy::from_kwh(kwh).unwrap(),
            energy_export: None,
            power_w: Some(1_000.0),
            voltage_v: Some(230.0),
            current_a: None,
            power_factor: None,
            frequency_hz: None,
            status: MeterStatus::Ok,
            relay: Some(RelayState::Closed),
        }
    }

    fn kinds(r: &Reading, prev: Option<&Reading>) -> Vec<EventKind> {
        EventPolicy::default()
            .detect(&meter(), &RegisterPolicy::default(), r, prev)
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    #[test]
    fn a_normal_reading_raises_nothing() {
        let prev = reading(0, 10.0);
        assert!(kinds(&reading(900_000, 10.2), Some(&prev)).is_empty());
    }

    #[test]
    fn voltage_outside_ten_percent_of_nominal_is_raised_and_zero_is_no_voltage() {
        for (v, want) in [
            (206.0, vec![EventKind::VoltageLow]),
            (254.0, vec![EventKind::VoltageHigh]),
            (0.0, vec![EventKind::NoVoltage]),
            (208.0, vec![]),
            (252.0, vec![]),
        ] {
            let mut r = reading(0, 1.0);
            r.voltage_v = Some(v);
            assert_eq!(kinds(&r, None), want, "{v} V");
        }
    }

    #[test]
    fn power_above_the_contracted_load_is_raised() {
        let mut r = reading(0, 1.0);
        r.power_w = Some(5_500.0);
        assert_eq!(kinds(&r, None), vec![EventKind::OverContractedLoad]);
        r.power_w = Some(4_900.0);
        assert!(kinds(&r, None).is_empty());
    }

    #[test]
    fn tamper_and_fault_statuses_are_raised() {
        let mut r = reading(0, 1.0);
        r.status = MeterStatus::Tamper;
        assert_eq!(kinds(&r, None), vec![EventKind::Tamper]);
        r.status = MeterStatus::Fault;
        assert_eq!(kinds(&r, None), vec![EventKind::Fault]);
    }

    #[test]
    fn relay_changes_are_raised_against_the_previous_reading() {
        let closed = reading(0, 1.0);
        let mut open = reading(900_000, 1.0);
        open.relay = Some(RelayState::Open);
        assert_eq!(kinds(&open, Some(&closed)), vec![EventKind::RelayOpened]);
        let mut again = reading(1_800_000, 1.0);
        again.relay = Some(RelayState::Closed);
        assert_eq!(kinds(&again, Some(&open)), vec![EventKind::RelayClosed]);
        assert!(
            kinds(&open, None).is_empty(),
            "no previous reading, no change"
        );
    }

    #[test]
    fn a_register_reset_is_raised_but_a_rollover_is_not() {
        let prev = reading(0, 5_000.0);
        assert_eq!(
            kinds(&reading(900_000, 2.0), Some(&prev)),
            vec![EventKind::RegisterReset]
        );
        let near_max = reading(0, 999_999.0);
        assert!(kinds(&reading(900_000, 0.5), Some(&near_max)).is_empty());
    }

    #[test]
    fn event_keys_sort_by_time_and_names_round_trip() {
        let mut e = EventPolicy::default().detect(
            &meter(),
            &RegisterPolicy::default(),
            &{
                let mut r = reading(1_000, 1.0);
                r.status = MeterStatus::Tamper;
                r
            },
            None,
        );
        let a = e.remove(0);
        assert_eq!(a.key(), "000000000001000#tamper");
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}
