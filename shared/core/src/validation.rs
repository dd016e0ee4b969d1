//! Validation (the first "V" of VEE): the named reasons a reading is quarantined, the configurable
//! physical limits, and the checks that turn a wire reading into a [`Reading`].

use std::fmt;

use crate::types::{Energy, Reading, Timestamp, DAY_MS};

/// IoT Core's largest MQTT message: 128 KiB. Anything bigger cannot have come through AWS and is
/// refused before parsing, so a local broker without that limit cannot be used to exhaust memory.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// Why a message or reading was quarantined. Each has a stable snake_case name used in storage,
/// logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuarantineReason {
    /// The payload is not JSON.
    MalformedJson,
    /// JSON, but a field is missing or has the wrong type.
    SchemaViolation,
    /// `v` is not a version this platform understands.
    UnsupportedVersion,
    /// The payload's `meter_id` differs from the topic's.
    MeterIdMismatch,
    /// The meter is not in the registry and the registry is enforced.
    UnknownMeter,
    /// NaN, Infinity or a number too large for a 64-bit float.
    NonFiniteNumber,
    /// A negative or physically impossible value (see [`Limits`]).
    ValueOutOfRange,
    /// The timestamp is further in the future than the clock-skew tolerance.
    ClockSkew,
    /// The timestamp is older than raw-reading retention.
    TooOld,
    /// The message is larger than IoT Core's 128 KiB limit.
    PayloadTooLarge,
}

impl QuarantineReason {
    /// Every reason, for metrics and documentation.
    pub const ALL: [QuarantineReason; 10] = [
        Self::MalformedJson,
        Self::SchemaViolation,
        Self::UnsupportedVersion,
        Self::MeterIdMismatch,
        Self::UnknownMeter,
        Self::NonFiniteNumber,
        Self::ValueOutOfRange,
        Self::ClockSkew,
        Self::TooOld,
        Self::PayloadTooLarge,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::SchemaViolation => "schema_violation",
            Self::UnsupportedVersion => "unsupported_version",
            Self::MeterIdMismatch => "meter_id_mismatch",
            Self::UnknownMeter => "unknown_meter",
            Self::NonFiniteNumber => "non_finite_number",
            Self::ValueOutOfRange => "value_out_of_range",
            Self::ClockSkew => "clock_skew",
            Self::TooOld => "too_old",
            Self::PayloadTooLarge => "payload_too_large",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason plus a human-readable detail (which field, which value, which limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The named reason.
    pub reason: QuarantineReason,
    /// What exactly was wrong, for the operator reading the quarantine.
    pub detail: String,
}

impl Rejection {
    /// Builds a rejection.
    pub fn new(reason: QuarantineReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// Physical limits and time windows. Defaults suit LV consumer and feeder meters on a 230 V grid;
/// every value is configurable (see the ingest function's environment variables).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest plausible register value, kWh; also the register's wrap-around point.
    pub register_max_kwh: f64,
    /// Largest plausible |active power|, W (a 1 MVA feeder fits).
    pub max_power_w: f64,
    /// Largest plausible RMS voltage, V.
    pub max_voltage_v: f64,
    /// Largest plausible RMS current, A.
    pub max_current_a: f64,
    /// Plausible grid frequency range, Hz (0 is accepted: a meter without supply reports 0).
    pub frequency_hz: (f64, f64),
    /// How far ahead of the receive time a meter clock may be, ms.
    pub clock_skew_tolerance_ms: i64,
    /// How long raw readings are kept, ms; older readings are refused.
    pub retention_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            register_max_kwh: 1_000_000.0,
            max_power_w: 2_000_000.0,
            max_voltage_v: 1_000.0,
            max_current_a: 5_000.0,
            frequency_hz: (40.0, 70.0),
            clock_skew_tolerance_ms: 5 * 60 * 1000,
            retention_ms: 400 * DAY_MS,
        }
    }
}

impl Limits {
    /// The register maximum in mWh.
    pub fn register_max(&self) -> Energy {
        Energy::from_kwh(self.register_max_kwh).unwrap_or(Energy::from_mwh(i64::MAX / 4))
    }

    /// Checks a parsed reading against the limits and the receive time. Returns the first
    /// violation found.
    pub fn check(&self, r: &Reading) -> Result<(), Rejection> {
        let received = r.received.millis();
        if r.ts.millis() > received.saturating_add(self.clock_skew_tolerance_ms) {
            return Err(Rejection::new(
                QuarantineReason::ClockSkew,
                format!(
                    "ts {} is {} s ahead of the receive time {} (tolerance {} s)",
                    r.ts,
                    (r.ts.millis() - received) / 1000,
                    r.received,
                    self.clock_skew_tolerance_ms / 1000
                ),
            ));
        }
        if r.ts.millis() < received.saturating_sub(self.retention_ms) {
            return Err(Rejection::new(
                QuarantineReason::TooOld,
                format!(
                    "ts {} is older than the {}-day retention",
                    r.ts,
                    self.retention_ms / DAY_MS
                ),
            ));
        }
        if r.energy_import > self.register_max() {
            return Err(out_of_range(
                "energy_import_kwh",
                r.energy_import.kwh(),
                self.register_max_kwh,
            ));
        }
        if let Some(e) = r.energy_export {
            if e > self.register_max() {
                return Err(out_of_range(
                    "energy_export_kwh",
                    e.kwh(),
                    self.register_max_kwh,
                ));
            }
        }
        check_abs("power_w", r.power_w, self.max_power_w)?;
        check_range("voltage_v", r.voltage_v, 0.0, self.max_voltage_v)?;
        check_range("current_a", r.current_a, 0.0, self.max_current_a)?;
        check_range("power_factor", r.power_factor, -1.0, 1.0)?;
        if let Some(f) = r.frequency_hz {
            if f != 0.0 {
                check_range(
                    "frequency_hz",
                    Some(f),
                    self.frequency_hz.0,
                    self.frequency_hz.1,
                )?;
            }
        }
        Ok(())
    }
}

fn out_of_range(field: &str, value: f64, limit: f64) -> Rejection {
    Rejection::new(
        QuarantineReason::ValueOutOfRange,
        format!("{field} = {value} exceeds the limit {limit}"),
    )
}

fn check_abs(field: &str, value: Option<f64>, max: f64) -> Result<(), Rejection> {
    match value {
        Some(v) if v.abs() > max => Err(out_of_range(field, v, max)),
        _ => Ok(()),
    }
}

fn check_range(field: &str, value: Option<f64>, lo: f64, hi: f64) -> Result<(), Rejection> {
    match value {
        Some(v) if v < lo || v > hi => Err(Rejection::new(
            QuarantineReason::ValueOutOfRange,
            format!("{field} = {v} is outside {lo}..={hi}"),
        )),
        _ => Ok(()),
    }
}

/// Whether a received time is plausible at all (guards against a broken `received_ms`).
pub fn is_plausible_receive_time(t: Timestamp) -> bool {
    // 2000-01-01 .. 2200-01-01
    (946_684_800_000..7_258_118_400_000).contains(&t.millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{MeterId, MeterStatus};

    fn reading() -> Reading {
        Reading {
            meter_id: MeterId::parse("m1").unwrap(),
            ts: Timestamp::from_millis(1_700_000_000_000),
            seq: None,
            received: Timestamp::from_millis(1_700_000_000_000),
            energy_import: Energy::from_mwh(1_000_000),
            energy_export: None,
            power_w: Some(500.0),
            voltage_v: Some(230.0),
            current_a: Some(2.2),
            power_factor: Some(0.98),
            frequency_hz: Some(50.0),
            status: MeterStatus::Ok,
            relay: None,
        }
    }

    #[test]
    fn a_normal_reading_passes() {
        assert_eq!(Limits::default().check(&reading()), Ok(()));
    }

    #[test]
    fn each_impossible_value_names_its_field() {
        let limits = Limits::default();
        type Mutation = fn(&mut Reading);
        let cases: [(&str, Mutation); 6] = [
            ("power_w", |r| r.power_w = Some(3e6)),
            ("voltage_v", |r| r.voltage_v = Some(-1.0)),
            ("current_a", |r| r.current_a = Some(1e5)),
            ("power_factor", |r| r.power_factor = Some(1.5)),
            ("frequency_hz", |r| r.frequency_hz = Some(5.0)),
            ("energy_import_kwh", |r| {
                r.energy_import = Energy::from_mwh(i64::MAX / 2)
            }),
        ];
        for (field, mutate) in cases {
            let mut r = reading();
            mutate(&mut r);
            let err = limits.check(&r).err();
            assert_eq!(
                err.as_ref().map(|e| e.reason),
                Some(QuarantineReason::ValueOutOfRange)
            );
            assert!(err.is_some_and(|e| e.detail.contains(field)), "{field}");
        }
    }

    #[test]
    fn a_future_timestamp_beyond_tolerance_is_clock_skew() {
        let mut r = reading();
        r.ts = r.ts.add_millis(6 * 60 * 1000);
        assert_eq!(
            Limits::default().check(&r).map_err(|e| e.reason),
            Err(QuarantineReason::ClockSkew)
        );
        r.ts = r.received.add_millis(4 * 60 * 1000);
        assert_eq!(Limits::default().check(&r), Ok(()));
    }

    #[test]
    fn a_timestamp_older_than_retention_is_too_old() {
        let mut r = reading();
        r.ts = r.ts.add_millis(-401 * DAY_MS);
        assert_eq!(
            Limits::default().check(&r).map_err(|e| e.reason),
            Err(QuarantineReason::TooOld)
        );
    }

    #[test]
    fn reason_names_round_trip() {
        for r in QuarantineReason::ALL {
            assert_eq!(QuarantineReason::parse(r.as_str()), Some(r));
        }
    }
}
