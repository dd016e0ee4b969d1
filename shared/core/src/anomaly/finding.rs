//! The common shape of what every detector reports: a [`Finding`] about one meter (or one
//! feeder, by its meter id) of one [`FindingKind`], with a score, the evidence window and one
//! line for a person. The scan stores findings and de-duplicates them by `(meter, kind)`, so a
//! condition that persists across scans stays one open finding.

use std::fmt;

use crate::registry::MeterInfo;
use crate::types::{MeterId, Reading, Timestamp};

/// What a finding is about. The stable names are part of the stored data and the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// An interval far above its slot's history (suspect, for review; never auto-edited).
    Spike,
    /// The register stood still while power flowed.
    StuckRegister,
    /// Zero consumption for hours with voltage present.
    ZeroRun,
    /// A negative interval or a register going backwards.
    NegativeInterval,
    /// Missing intervals.
    Gap,
    /// Interval energy and mean power disagree.
    PowerMismatch,
    /// A meter-day unlike the meter's own history and its peers (isolation forest).
    ConsumptionAnomaly,
    /// A consumer's own series looks like false data (h1–h6-style under-reporting).
    PatternTheft,
    /// A consumer's own days have looked under-reported for several days in a row: evidence
    /// accumulated over days ([`super::sustained`]).
    SustainedTheft,
    /// A feeder's energy balance shows a sustained non-technical loss (on the feeder meter).
    FeederLoss,
    /// A consumer ranked as a suspect for its feeder's loss.
    LossSuspect,
    /// The meter reports tampering.
    Tamper,
    /// Consumption recorded while the relay is open.
    ConsumptionWhileRelayOpen,
    /// Zero consumption while the meter's feeder is loaded.
    ZeroWhileFeederLoaded,
    /// The meter is silent or at zero voltage while its feeder has supply: a fault between
    /// transformer and consumer.
    MeterOutage,
    /// Most of a feeder's meters are silent or without voltage (on the feeder meter).
    FeederOutage,
    /// Supply came back after an outage.
    Restoration,
    /// 10-minute mean voltage below nominal − 10% (EN 50160).
    VoltageSag,
    /// 10-minute mean voltage above nominal + 10% (EN 50160).
    VoltageSwell,
    /// Power factor persistently below the limit.
    LowPowerFactor,
    /// Frequency outside its band.
    FrequencyExcursion,
}

impl FindingKind {
    /// Every kind.
    pub const ALL: [FindingKind; 21] = [
        Self::Spike,
        Self::StuckRegister,
        Self::ZeroRun,
        Self::NegativeInterval,
        Self::Gap,
        Self::PowerMismatch,
        Self::ConsumptionAnomaly,
        Self::PatternTheft,
        Self::SustainedTheft,
        Self::FeederLoss,
        Self::LossSuspect,
        Self::Tamper,
        Self::ConsumptionWhileRelayOpen,
        Self::ZeroWhileFeederLoaded,
        Self::MeterOutage,
        Self::FeederOutage,
        Self::Restoration,
        Self::VoltageSag,
        Self::VoltageSwell,
        Self::LowPowerFactor,
        Self::FrequencyExcursion,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spike => "spike",
            Self::StuckRegister => "stuck_register",
            Self::ZeroRun => "zero_run",
            Self::NegativeInterval => "negative_interval",
            Self::Gap => "gap",
            Self::PowerMismatch => "power_mismatch",
            Self::ConsumptionAnomaly => "consumption_anomaly",
            Self::PatternTheft => "pattern_theft",
            Self::SustainedTheft => "sustained_theft",
            Self::FeederLoss => "feeder_loss",
            Self::LossSuspect => "loss_suspect",
            Self::Tamper => "tamper",
            Self::ConsumptionWhileRelayOpen => "consumption_while_relay_open",
            Self::ZeroWhileFeederLoaded => "zero_while_feeder_loaded",
            Self::MeterOutage => "meter_outage",
            Self::FeederOutage => "feeder_outage",
            Self::Restoration => "restoration",
            Self::VoltageSag => "voltage_sag",
            Self::VoltageSwell => "voltage_swell",
            Self::LowPowerFactor => "low_power_factor",
            Self::FrequencyExcursion => "frequency_excursion",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A one-shot event rather than a condition that stays open while it persists.
    pub fn is_instant(self) -> bool {
        matches!(self, Self::Restoration)
    }

    /// How long (ms) an open finding of this kind stays open while scans no longer see it
    /// (see [`super::reconcile::reconcile`]). A sustained theft is a statistical signal that
    /// can dip under its threshold for a scan or two and come back: on 638 daily scans of the
    /// shared SGSC file, closing at the first scan without it opened 39 sustained thefts, 8 of
    /// them the same home again within a week (a new alert each time); with 3 days, 31.
    /// Physical states (an outage, a stuck register, a tamper flag) close at the first scan that
    /// no longer sees them.
    pub fn open_while_unseen_ms(self) -> i64 {
        match self {
            Self::SustainedTheft => 3 * 86_400_000,
            _ => 0,
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<super::vee::VeeKind> for FindingKind {
    fn from(kind: super::vee::VeeKind) -> Self {
        use super::vee::VeeKind;
        match kind {
            VeeKind::Spike => Self::Spike,
            VeeKind::StuckRegister => Self::StuckRegister,
            VeeKind::ZeroRun => Self::ZeroRun,
            VeeKind::Negative => Self::NegativeInterval,
            VeeKind::Gap => Self::Gap,
            VeeKind::PowerMismatch => Self::PowerMismatch,
        }
    }
}

/// One detector's report about one meter.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The meter (for feeder-level kinds, the feeder's own meter).
    pub meter_id: MeterId,
    /// What was found.
    pub kind: FindingKind,
    /// Strength; higher is more certain or more severe. Its unit depends on the kind and is
    /// named in the explanation.
    pub score: f64,
    /// Start of the evidence window (end of its first interval).
    pub from: Timestamp,
    /// End of the evidence window (end of its last interval).
    pub to: Timestamp,
    /// One line for a person.
    pub explanation: String,
}

impl Finding {
    /// Converts a VEE check's finding about `meter_id`.
    pub fn from_vee(meter_id: MeterId, finding: super::vee::Finding) -> Self {
        Self {
            meter_id,
            kind: finding.kind.into(),
            score: finding.score,
            from: finding.from,
            to: finding.to,
            explanation: finding.explanation,
        }
    }
}

/// One meter's readings over a scan window, as the detectors take them.
#[derive(Debug, Clone)]
pub struct MeterWindow {
    /// What the registry knows of the meter.
    pub info: MeterInfo,
    /// Its stored readings in the window, sorted by time, one per timestamp.
    pub readings: Vec<Reading>,
}

/// A feeder and the consumers under it over one scan window: the unit a scan shard hands to
/// every detector, so feeder-level checks (energy balance, outages) see the whole feeder.
#[derive(Debug, Clone)]
pub struct FeederWindow {
    /// The feeder's own meter; `None` for the group of consumers with no feeder.
    pub feeder: Option<MeterWindow>,
    /// The consumer meters under it.
    pub consumers: Vec<MeterWindow>,
    /// Start of the window (exclusive: readings with `ts > from`).
    pub from: Timestamp,
    /// The scan time: end of the window (inclusive).
    pub to: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_stable_name() {
        for kind in FindingKind::ALL {
            assert_eq!(FindingKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FindingKind::parse("nonsense"), None);
    }

    #[test]
    fn stable_names_are_unique() {
        let mut names: Vec<_> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FindingKind::ALL.len());
    }
}
