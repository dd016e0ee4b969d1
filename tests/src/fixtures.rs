//! Builders for readings and messages used across the integration tests.

use meter_core::telemetry::encode_reading;
use meter_core::{Energy, MeterId, MeterStatus, QuarantineReason, Reading, RelayState, Timestamp};

/// 2026-03-01T00:00:00Z: a fixed, recent-enough start for generated series.
pub const T0: i64 = 1_772_323_200_000;
/// Fifteen minutes in ms.
pub const QUARTER: i64 = 15 * 60 * 1000;

pub fn meter(id: &str) -> MeterId {
    MeterId::parse(id).unwrap()
}

/// A reading with every optional field set, received one minute after it was taken.
pub fn reading(id: &str, ts_ms: i64, kwh: f64) -> Reading {
    Reading {
        meter_id: meter(id),
        ts: Timestamp::from_millis(ts_ms),
        seq: None,
        received: Timestamp::from_millis(ts_ms + 60_000),
        energy_import: Energy::from_kwh(kwh).unwrap(),
        energy_export: Some(Energy::from_kwh(kwh / 10.0).unwrap()),
        power_w: Some(812.5),
        voltage_v: Some(231.4),
        current_a: Some(3.6),
        power_factor: Some(0.97),
        frequency_hz: Some(50.02),
        status: MeterStatus::Ok,
        relay: Some(RelayState::Closed),
    }
}

/// A reading with only the required fields.
pub fn bare_reading(id: &str, ts_ms: i64, kwh: f64) -> Reading {
    Reading {
        energy_export: None,
        power_w: None,
        voltage_v: None,
        current_a: None,
        power_factor: None,
        frequency_hz: None,
        relay: None,
        ..reading(id, ts_ms, kwh)
    }
}

/// A day of quarter-hour readings with a realistic load shape and a steadily rising register.
pub fn day_series(id: &str, start_ms: i64, start_kwh: f64, n: usize) -> Vec<Reading> {
    let mut kwh = start_kwh;
    (0..n)
        .map(|i| {
            let hour = (i / 4) % 24;
            // Night base load, morning and evening peaks: kWh per quarter hour.
            let q = match hour {
                0..=5 => 0.05,
                6..=8 => 0.35,
                17..=21 => 0.55,
                _ => 0.15,
            } + (i % 7) as f64 * 0.011;
            kwh += q;
            let mut r = reading(
                id,
                start_ms + i as i64 * QUARTER,
                (kwh * 1000.0).round() / 1000.0,
            );
            r.seq = Some(1000 + i as u64);
            r
        })
        .collect()
}

/// An MQTT payload carrying one reading, as a meter would publish it.
pub fn payload(r: &Reading) -> Vec<u8> {
    encode_reading(r).into_bytes()
}

/// A store-and-forward payload carrying several readings of one meter.
pub fn batch_payload(rs: &[Reading]) -> Vec<u8> {
    let items: Vec<serde_json::Value> = rs
        .iter()
        .map(|r| serde_json::from_str(&encode_reading(r)).unwrap())
        .collect();
    serde_json::json!({ "v": 1, "readings": items })
        .to_string()
        .into_bytes()
}

/// The MQTT topic of a meter's telemetry.
pub fn topic(id: &str) -> String {
    format!("meters/{id}/telemetry")
}

/// What the handler must do with a sample event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This many readings stored.
    Stored(u64),
    /// Already stored: a redelivery.
    Duplicate,
    /// Quarantined, for this reason.
    Quarantined(QuarantineReason),
}

/// Every sample event and its outcome, in an order that makes `duplicate.json` a duplicate.
pub const FIXTURES: &[(&str, Outcome)] = &[
    ("valid_single.json", Outcome::Stored(1)),
    ("duplicate.json", Outcome::Duplicate),
    ("valid_batch.json", Outcome::Stored(4)),
    (
        "malformed_json.json",
        Outcome::Quarantined(QuarantineReason::MalformedJson),
    ),
    (
        "schema_violation.json",
        Outcome::Quarantined(QuarantineReason::SchemaViolation),
    ),
    (
        "missing_field.json",
        Outcome::Quarantined(QuarantineReason::SchemaViolation),
    ),
    (
        "unsupported_version.json",
        Outcome::Quarantined(QuarantineReason::UnsupportedVersion),
    ),
    (
        "meter_id_mismatch.json",
        Outcome::Quarantined(QuarantineReason::MeterIdMismatch),
    ),
    (
        "unknown_meter.json",
        Outcome::Quarantined(QuarantineReason::UnknownMeter),
    ),
    (
        "non_finite_number.json",
        Outcome::Quarantined(QuarantineReason::NonFiniteNumber),
    ),
    (
        "value_out_of_range.json",
        Outcome::Quarantined(QuarantineReason::ValueOutOfRange),
    ),
    (
        "clock_skew.json",
        Outcome::Quarantined(QuarantineReason::ClockSkew),
    ),
    (
        "too_old.json",
        Outcome::Quarantined(QuarantineReason::TooOld),
    ),
    (
        "payload_too_large.json",
        Outcome::Quarantined(QuarantineReason::PayloadTooLarge),
    ),
];

/// The sample events that must be quarantined, with their reason names.
pub fn rejection_fixtures() -> impl Iterator<Item = (&'static str, &'static str)> {
    FIXTURES.iter().filter_map(|(file, o)| match o {
        Outcome::Quarantined(r) => Some((*file, r.as_str())),
        _ => None,
    })
}
