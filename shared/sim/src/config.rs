//! What to simulate: the fleet's size, seed, clock and grid, and which faults and thefts to inject
//! into how many consumers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The fleet to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Consumer meters (`c-00001`, ...).
    pub consumers: usize,
    /// Feeder meters (`f-001`, ...); 0 for none. Consumers are split evenly among them, in
    /// contiguous runs of ids.
    pub feeders: usize,
    /// The seed: the same seed gives the same fleet, readings and injections everywhere.
    pub seed: u64,
    /// Reading interval, minutes (default 15). 0 is treated as 1.
    pub interval_minutes: u32,
    /// Local time zone of the meters: load shapes follow local time, and seasons follow the
    /// zone's hemisphere.
    pub timezone: chrono_tz::Tz,
    /// Nominal phase voltage, V (default 230).
    pub nominal_voltage_v: f64,
    /// Faults and thefts to inject.
    pub faults: FaultPlan,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            consumers: 100,
            feeders: 2,
            seed: 1,
            interval_minutes: 15,
            timezone: chrono_tz::Australia::Sydney,
            nominal_voltage_v: 230.0,
            faults: FaultPlan::default(),
        }
    }
}

impl FleetConfig {
    /// The reading interval in milliseconds (at least one minute).
    pub fn interval_ms(&self) -> i64 {
        i64::from(self.interval_minutes.max(1)) * 60_000
    }
}

/// A kind of fault or theft injected into one consumer meter over a time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Part of the load bypasses the meter: it reports a fixed fraction (20–60%) of the true
    /// consumption; the feeder still sees all of it.
    Bypass,
    /// A bypass that stays: from 24 to 31 days into the run (once the meter has the history
    /// that multi-day theft evidence is judged against) for four to eight weeks, the whole load
    /// goes around the meter, which reports nothing; the feeder still sees all of it.
    /// [`FaultKind::Bypass`] lasts hours, too short for the `sustained_theft` detector, and a
    /// partial one (even 90%) hides in a simulated household's day-to-day spread (about ±50%).
    LongBypass,
    /// Theft h1: each day's readings scaled by one α drawn from [0.1, 0.8].
    H1,
    /// Theft h2: zero inside a random window of at least 4 hours each day.
    H2,
    /// Theft h3: every reading scaled by a fresh γ from [0.1, 0.8].
    H3,
    /// Theft h4: every reading is γ times the day's mean, γ fresh from [0.1, 0.8].
    H4,
    /// Theft h5: every reading is the day's mean.
    H5,
    /// Theft h6: the day's readings in reverse order.
    H6,
    /// The meter reports status `tamper` (cover opened, magnetic field).
    Tamper,
    /// The register stops moving while power is still measured.
    StuckRegister,
    /// The register wraps around its maximum (1,000,000 kWh) to near zero.
    Rollover,
    /// The meter is replaced: its register restarts near zero (the seq counter continues, so
    /// the platform does not take the new readings for duplicates).
    Replacement,
    /// Supply outage: silence, then on restore either a `voltage_v` 0 reading or plain resumption.
    Outage,
    /// Voltage sag: 15–20% below normal.
    Sag,
    /// Voltage swell: 15–20% above normal.
    Swell,
    /// Load above the contracted kW (10–50% over).
    Overload,
    /// The meter's clock is off by minutes to hours (either way; ahead by more than the
    /// platform's tolerance means `clock_skew` quarantine).
    ClockSkew,
    /// Messages published twice.
    Duplicate,
    /// Messages held back and published after later ones.
    OutOfOrder,
    /// Connectivity lost: readings buffered, then sent as one batch message.
    StoreAndForward,
}

impl FaultKind {
    /// Every kind, in declaration order.
    pub const ALL: [FaultKind; 20] = [
        FaultKind::Bypass,
        FaultKind::LongBypass,
        FaultKind::H1,
        FaultKind::H2,
        FaultKind::H3,
        FaultKind::H4,
        FaultKind::H5,
        FaultKind::H6,
        FaultKind::Tamper,
        FaultKind::StuckRegister,
        FaultKind::Rollover,
        FaultKind::Replacement,
        FaultKind::Outage,
        FaultKind::Sag,
        FaultKind::Swell,
        FaultKind::Overload,
        FaultKind::ClockSkew,
        FaultKind::Duplicate,
        FaultKind::OutOfOrder,
        FaultKind::StoreAndForward,
    ];

    /// The kebab-case name (`bypass`, `h1`, `store-and-forward`).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Bypass => "bypass",
            FaultKind::LongBypass => "long-bypass",
            FaultKind::H1 => "h1",
            FaultKind::H2 => "h2",
            FaultKind::H3 => "h3",
            FaultKind::H4 => "h4",
            FaultKind::H5 => "h5",
            FaultKind::H6 => "h6",
            FaultKind::Tamper => "tamper",
            FaultKind::StuckRegister => "stuck-register",
            FaultKind::Rollover => "rollover",
            FaultKind::Replacement => "replacement",
            FaultKind::Outage => "outage",
            FaultKind::Sag => "sag",
            FaultKind::Swell => "swell",
            FaultKind::Overload => "overload",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::Duplicate => "duplicate",
            FaultKind::OutOfOrder => "out-of-order",
            FaultKind::StoreAndForward => "store-and-forward",
        }
    }

    /// Whether this kind manipulates the reported energy (a theft the feeder balance can reveal).
    pub fn is_theft(self) -> bool {
        matches!(
            self,
            FaultKind::Bypass
                | FaultKind::LongBypass
                | FaultKind::H1
                | FaultKind::H2
                | FaultKind::H3
                | FaultKind::H4
                | FaultKind::H5
                | FaultKind::H6
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a fault kind or plan could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    /// A name that is not a fault kind.
    #[error("unknown fault kind {0:?}; expected one of: {names}", names = kind_names())]
    UnknownKind(String),
    /// The `@share` suffix is not a number in 0..=1.
    #[error("fault share {0:?} is not a number between 0 and 1")]
    BadShare(String),
}

fn kind_names() -> String {
    FaultKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for FaultKind {
    type Err = FaultParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        FaultKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| FaultParseError::UnknownKind(s.to_owned()))
    }
}

/// Which faults to inject into how many consumers. Each injected consumer gets exactly one kind,
/// over one seeded window; feeders are never injected.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    kinds: Vec<FaultKind>,
    share: f64,
    /// Meters to inject at least, when the fleet allows, however small the share.
    floor: Floor,
}

/// How the number of injected consumers is kept up in small fleets.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Floor {
    /// Each listed kind at least once, fleet allowing.
    EachKind,
    /// The default plan: a few visible kinds in a small fleet (a quarter of it, up to 5), and a
    /// tenth of a mid-sized fleet (up to one of each kind).
    Visible,
}

/// The share of consumers the default plan and a plain list inject.
pub const DEFAULT_FAULT_SHARE: f64 = 0.07;

impl Default for FaultPlan {
    /// About 7% of consumers, at least 5 in a fleet of 20 or more, with the most visible kinds
    /// (bypass, long bypass, h1, tamper, outage, overload) first so a small fleet shows them;
    /// every kind appears once the fleet has about 200 consumers.
    fn default() -> Self {
        let visible = [
            FaultKind::Bypass,
            FaultKind::LongBypass,
            FaultKind::H1,
            FaultKind::Tamper,
            FaultKind::Outage,
            FaultKind::Overload,
        ];
        let mut kinds = visible.to_vec();
        kinds.extend(FaultKind::ALL.iter().filter(|k| !visible.contains(k)));
        Self {
            kinds,
            share: DEFAULT_FAULT_SHARE,
            floor: Floor::Visible,
        }
    }
}

impl FaultPlan {
    /// No injections: every meter healthy.
    pub fn none() -> Self {
        Self {
            kinds: Vec::new(),
            share: 0.0,
            floor: Floor::EachKind,
        }
    }

    /// Inject only `kinds`, into `share` (0..=1) of the consumers, round-robin over the kinds,
    /// and at least once each when the fleet has enough consumers.
    pub fn only(kinds: &[FaultKind], share: f64) -> Self {
        let mut unique: Vec<FaultKind> = Vec::with_capacity(kinds.len());
        for k in kinds {
            if !unique.contains(k) {
                unique.push(*k);
            }
        }
        Self {
            kinds: unique,
            share: if share.is_finite() {
                share.clamp(0.0, 1.0)
            } else {
                0.0
            },
            floor: Floor::EachKind,
        }
    }

    /// The kinds, in the order they are handed out.
    pub fn kinds(&self) -> &[FaultKind] {
        &self.kinds
    }

    /// The share of consumers injected (before the small-fleet floor).
    pub fn share(&self) -> f64 {
        self.share
    }

    /// Whether the plan injects nothing.
    pub fn is_none(&self) -> bool {
        self.kinds.is_empty() || self.share <= 0.0
    }

    /// How many of `consumers` get an injection.
    pub fn count(&self, consumers: usize) -> usize {
        if self.is_none() || consumers == 0 {
            return 0;
        }
        let by_share = (self.share * consumers as f64).round() as usize;
        let floor = match self.floor {
            Floor::EachKind => self.kinds.len(),
            Floor::Visible => (consumers / 10).max((consumers / 4).min(5)),
        }
        .min(self.kinds.len());
        by_share.max(floor).min(consumers)
    }
}

impl FromStr for FaultPlan {
    type Err = FaultParseError;

    /// `none`, `default`, `all`, or a comma-separated list of kinds (`bypass,h1,outage`), each
    /// optionally followed by `@share` (`bypass,h1@0.2`; the default share is 7%).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (list, share) = match s.rsplit_once('@') {
            Some((list, share)) => {
                let parsed: f64 = share
                    .trim()
                    .parse()
                    .map_err(|_| FaultParseError::BadShare(share.to_owned()))?;
                if !(0.0..=1.0).contains(&parsed) {
                    return Err(FaultParseError::BadShare(share.to_owned()));
                }
                (list.trim(), Some(parsed))
            }
            None => (s, None),
        };
        let mut plan = match list.to_ascii_lowercase().as_str() {
            "" | "none" => return Ok(Self::none()),
            "default" => Self::default(),
            "all" => Self::only(&FaultKind::ALL, DEFAULT_FAULT_SHARE),
            _ => {
                let kinds = list
                    .split(',')
                    .filter(|k| !k.trim().is_empty())
                    .map(FaultKind::from_str)
                    .collect::<Result<Vec<_>, _>>()?;
                Self::only(&kinds, DEFAULT_FAULT_SHARE)
            }
        };
        if let Some(share) = share {
            plan.share = share;
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for k in FaultKind::ALL {
            assert_eq!(k.as_str().parse::<FaultKind>(), Ok(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(
            "Store-And-Forward".parse::<FaultKind>(),
            Ok(FaultKind::StoreAndForward)
        );
    }

    #[test]
    fn plans_parse_none_default_and_lists() {
        assert!("none".parse::<FaultPlan>().unwrap().is_none());
        assert_eq!(
            "default".parse::<FaultPlan>().unwrap(),
            FaultPlan::default()
        );
        let p: FaultPlan = " bypass, h1 ,outage".parse().unwrap();
        assert_eq!(
            p.kinds(),
            &[FaultKind::Bypass, FaultKind::H1, FaultKind::Outage]
        );
        assert_eq!(p.share(), DEFAULT_FAULT_SHARE);
        let p: FaultPlan = "h2,h3@0.5".parse().unwrap();
        assert_eq!(p.share(), 0.5);
        assert_eq!("all".parse::<FaultPlan>().unwrap().kinds().len(), 20);
    }

    #[test]
    fn plans_reject_unknown_kinds_and_bad_shares() {
        assert_eq!(
            "bypass,h7".parse::<FaultPlan>(),
            Err(FaultParseError::UnknownKind("h7".into()))
        );
        assert!(matches!(
            "h1@1.5".parse::<FaultPlan>(),
            Err(FaultParseError::BadShare(_))
        ));
        assert!(matches!(
            "h1@x".parse::<FaultPlan>(),
            Err(FaultParseError::BadShare(_))
        ));
    }

    #[test]
    fn default_plan_injects_a_few_in_small_fleets_and_a_share_in_large_ones() {
        let p = FaultPlan::default();
        assert_eq!(p.count(0), 0);
        assert_eq!(p.count(4), 1);
        assert_eq!(p.count(20), 5);
        assert_eq!(p.count(100), 10);
        assert_eq!(p.count(200), 20);
        assert_eq!(p.count(10_000), 700);
        assert_eq!(FaultPlan::none().count(1000), 0);
    }

    #[test]
    fn a_listed_plan_injects_each_kind_at_least_once() {
        let p = FaultPlan::only(&[FaultKind::H1, FaultKind::H2, FaultKind::H1], 0.01);
        assert_eq!(p.kinds().len(), 2);
        assert_eq!(p.count(20), 2);
        assert_eq!(p.count(1), 1);
        assert_eq!(FaultPlan::only(&[FaultKind::Bypass], 1.0).count(30), 30);
    }
}
