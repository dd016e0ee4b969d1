//! Self-validating domain types: a value of one of these types is valid by construction.
//!
//! Energy is held as an integer number of milliwatt-hours (1 mWh = 10⁻⁶ kWh). Integer sums are
//! associative, so an aggregate comes out bit-for-bit the same whatever order readings arrived in;
//! floating-point sums would not.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest meter id accepted. Long enough for serial numbers with a utility prefix, short enough
/// to keep DynamoDB keys and MQTT topics small.
pub const METER_ID_MAX_LEN: usize = 64;

/// Why a string is not a valid [`MeterId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMeterId {
    /// The id is empty.
    #[error("meter id is empty")]
    Empty,
    /// The id is longer than [`METER_ID_MAX_LEN`].
    #[error("meter id is longer than {METER_ID_MAX_LEN} characters")]
    TooLong,
    /// The id holds a character outside `A-Z a-z 0-9 . _ : -`.
    #[error("meter id contains {0:?}; only letters, digits and . _ : - are allowed")]
    BadCharacter(char),
}

/// A meter's identity: 1–64 characters from `A-Z a-z 0-9 . _ : -`.
///
/// The alphabet excludes `/`, `+`, `#` and `$` so an id is always one MQTT topic level and never a
/// wildcard, and excludes `#` so it can be joined into composite storage keys unambiguously.
/// Held as a `SmolStr`: ids of up to 23 bytes (nearly all) live inline, so the one every reading
/// carries costs no allocation, and a clone is a copy.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MeterId(smol_str::SmolStr);

impl MeterId {
    /// Validates `s` as a meter id.
    pub fn parse(s: &str) -> Result<Self, InvalidMeterId> {
        if s.is_empty() {
            return Err(InvalidMeterId::Empty);
        }
        if s.len() > METER_ID_MAX_LEN {
            return Err(InvalidMeterId::TooLong);
        }
        let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
        if !s.bytes().all(|b| allowed(&b)) {
            // Only on the error path: decode characters to name the offending one.
            let bad = s
                .chars()
                .find(|c| !c.is_ascii() || !allowed(&(*c as u8)))
                .unwrap_or('?');
            return Err(InvalidMeterId::BadCharacter(bad));
        }
        Ok(Self(smol_str::SmolStr::new(s)))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MeterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MeterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeterId({})", self.0)
    }
}

impl FromStr for MeterId {
    type Err = InvalidMeterId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for MeterId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MeterId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a number is not a valid energy value.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum InvalidEnergy {
    /// NaN or infinite.
    #[error("energy is not a finite number")]
    NotFinite,
    /// Below zero: a cumulative register never holds a negative value.
    #[error("energy {0} kWh is negative")]
    Negative(f64),
    /// Too large to hold in milliwatt-hours without losing precision.
    #[error("energy {0} kWh is too large")]
    TooLarge(f64),
}

/// An amount of energy, or a register value, in whole milliwatt-hours.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Energy(i64);

impl Energy {
    /// Zero energy.
    pub const ZERO: Energy = Energy(0);
    /// mWh in one kWh.
    pub const MWH_PER_KWH: f64 = 1_000_000.0;
    /// The largest kWh value that converts exactly (2⁵³ mWh).
    pub const MAX_KWH: f64 = 9_007_199_254.0;

    /// Converts a non-negative, finite kWh value, rounding to the nearest mWh.
    pub fn from_kwh(kwh: f64) -> Result<Self, InvalidEnergy> {
        if !kwh.is_finite() {
            return Err(InvalidEnergy::NotFinite);
        }
        if kwh < 0.0 {
            return Err(InvalidEnergy::Negative(kwh));
        }
        if kwh > Self::MAX_KWH {
            return Err(InvalidEnergy::TooLarge(kwh));
        }
        // In range and finite: the cast cannot saturate.
        Ok(Self((kwh * Self::MWH_PER_KWH).round() as i64))
    }

    /// Builds a value from milliwatt-hours (may be negative for deltas).
    pub const fn from_mwh(mwh: i64) -> Self {
        Self(mwh)
    }

    /// The value in milliwatt-hours.
    pub const fn mwh(self) -> i64 {
        self.0
    }

    /// The value in kWh, for display and reports.
    pub fn kwh(self) -> f64 {
        self.0 as f64 / Self::MWH_PER_KWH
    }
}

impl fmt::Debug for Energy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} kWh", self.kwh())
    }
}

/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// An instant, as milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

/// Why a string is not a valid timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 timestamp with an offset (for example 2026-11-22T10:15:00Z)")]
pub struct InvalidTimestamp(pub String);

impl Timestamp {
    /// Builds a timestamp from epoch milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Epoch milliseconds.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 timestamp (an offset is required, so the instant is unambiguous).
    pub fn parse_rfc3339(s: &str) -> Result<Self, InvalidTimestamp> {
        DateTime::parse_from_rfc3339(s)
            .map(|dt| Self(dt.timestamp_millis()))
            .map_err(|_| InvalidTimestamp(s.to_owned()))
    }

    /// The instant as a UTC date-time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// RFC 3339 in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// The timestamp moved by `ms` milliseconds (saturating).
    pub const fn add_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// What a meter measures: a consumer's supply, or a feeder (distribution transformer) total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MeterKind {
    /// A consumer's meter.
    #[default]
    Consumer,
    /// A feeder meter measuring every consumer under it plus technical losses.
    Feeder,
}

impl MeterKind {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            MeterKind::Consumer => "consumer",
            MeterKind::Feeder => "feeder",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "consumer" => Some(Self::Consumer),
            "feeder" => Some(Self::Feeder),
            _ => None,
        }
    }
}

/// The meter's self-reported status.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum MeterStatus {
    /// Working normally.
    #[default]
    Ok,
    /// The meter detected tampering (cover open, magnetic field, bypass).
    Tamper,
    /// The meter reports an internal fault.
    Fault,
    /// Any other status word a meter sends; kept as sent (lower-case token).
    Other(Box<str>),
}

impl MeterStatus {
    /// Parses a status word. Unknown words are kept, so new firmware never loses readings.
    pub fn parse(s: &str) -> Self {
        match s {
            "ok" => Self::Ok,
            "tamper" => Self::Tamper,
            "fault" => Self::Fault,
            other => Self::Other(other.into()),
        }
    }

    /// The wire and storage name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ok => "ok",
            Self::Tamper => "tamper",
            Self::Fault => "fault",
            Self::Other(s) => s,
        }
    }
}

/// The state of the meter's load-disconnect relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayState {
    /// Supply connected.
    Closed,
    /// Supply disconnected.
    Open,
}

impl RelayState {
    /// Parses `closed` or `open`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "closed" => Some(Self::Closed),
            "open" => Some(Self::Open),
            _ => None,
        }
    }

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
        }
    }
}

/// One validated reading, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The meter that took it.
    pub meter_id: MeterId,
    /// The meter's clock at the end of the measured interval.
    pub ts: Timestamp,
    /// The meter's own message counter, if it sends one.
    pub seq: Option<u64>,
    /// When the platform received it (IoT Core's `timestamp()`).
    pub received: Timestamp,
    /// Cumulative import register (OBIS 1.8.0).
    pub energy_import: Energy,
    /// Cumulative export register (OBIS 2.8.0), for meters with generation.
    pub energy_export: Option<Energy>,
    /// Active power, W.
    pub power_w: Option<f64>,
    /// RMS voltage, V.
    pub voltage_v: Option<f64>,
    /// RMS current, A.
    pub current_a: Option<f64>,
    /// Power factor, −1..1.
    pub power_factor: Option<f64>,
    /// Grid frequency, Hz.
    pub frequency_hz: Option<f64>,
    /// Self-reported status.
    pub status: MeterStatus,
    /// Load relay state, if the meter has one.
    pub relay: Option<RelayState>,
}

impl Reading {
    /// A reading of the import register alone, status `ok`, nothing else measured: what an
    /// imported interval file or a test series carries.
    pub fn register_only(
        meter_id: MeterId,
        ts: Timestamp,
        received: Timestamp,
        energy_import: Energy,
    ) -> Self {
        Self {
            meter_id,
            ts,
            seq: None,
            received,
            energy_import,
            energy_export: None,
            power_w: None,
            voltage_v: None,
            current_a: None,
            power_factor: None,
            frequency_hz: None,
            status: MeterStatus::Ok,
            relay: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_id_accepts_serials_with_prefixes() {
        for ok in ["M-0001", "utility:abc.123", "a", &"x".repeat(64)] {
            assert!(MeterId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn meter_id_rejects_empty_long_and_topic_characters() {
        assert_eq!(MeterId::parse(""), Err(InvalidMeterId::Empty));
        assert_eq!(
            MeterId::parse(&"x".repeat(65)),
            Err(InvalidMeterId::TooLong)
        );
        for (bad, c) in [
            ("a/b", '/'),
            ("a+", '+'),
            ("#", '#'),
            ("a b", ' '),
            ("$x", '$'),
        ] {
            assert_eq!(MeterId::parse(bad), Err(InvalidMeterId::BadCharacter(c)));
        }
    }

    #[test]
    fn energy_rounds_kwh_to_whole_milliwatt_hours() {
        assert_eq!(
            Energy::from_kwh(1.234_567_4).map(Energy::mwh),
            Ok(1_234_567)
        );
        assert_eq!(Energy::from_kwh(0.0).map(Energy::mwh), Ok(0));
        assert_eq!(Energy::from_kwh(12.5).map(Energy::kwh), Ok(12.5));
    }

    #[test]
    fn energy_rejects_negative_non_finite_and_huge_values() {
        assert_eq!(Energy::from_kwh(-0.1), Err(InvalidEnergy::Negative(-0.1)));
        assert_eq!(Energy::from_kwh(f64::NAN), Err(InvalidEnergy::NotFinite));
        assert_eq!(
            Energy::from_kwh(f64::INFINITY),
            Err(InvalidEnergy::NotFinite)
        );
        assert!(matches!(
            Energy::from_kwh(1e12),
            Err(InvalidEnergy::TooLarge(_))
        ));
    }

    #[test]
    fn timestamps_parse_rfc3339_with_offsets_and_print_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-22T10:15:00+10:00").ok();
        assert_eq!(
            t.map(Timestamp::to_rfc3339).as_deref(),
            Some("2026-11-22T00:15:00.000Z")
        );
        assert!(Timestamp::parse_rfc3339("2026-11-22 10:15").is_err());
        assert!(Timestamp::parse_rfc3339("2026-11-22T10:15:00").is_err());
    }

    #[test]
    fn status_keeps_unknown_words() {
        assert_eq!(MeterStatus::parse("tamper"), MeterStatus::Tamper);
        assert_eq!(MeterStatus::parse("low_battery").as_str(), "low_battery");
    }
}
