//! `meter-sim`: a pure, synchronous, deterministic simulator of smart electricity meters, for the
//! local stack (`meterflow up`), `meterflow simulate`, benchmarks, and tests of the detectors.
//!
//! A [`Fleet`] of consumer meters (households and about 10% small businesses) and optional feeder
//! meters advances on a simulated clock. Each interval it produces the telemetry v1 messages the
//! meters would publish on `meters/{id}/telemetry`:
//!
//! - **Load** follows a daily and weekly shape, seasons, day-to-day variation, noise and appliance
//!   spikes [calibrated](calibration) on 50 real Australian households; seasons flip for
//!   northern-hemisphere time zones.
//! - **Grid quantities**: voltage around nominal (feeder drift, time of day, drop under load,
//!   per-meter noise), power factor 0.85–0.99 rising with load, current = P / (V·pf), one grid
//!   frequency around 50 Hz.
//! - **Feeder meters** measure the sum of their consumers' *true* consumption plus technical
//!   losses (a no-load term and a term in current squared), so thefts show in the energy balance.
//! - **Injections** ([`FaultKind`]): bypass (for hours, or for weeks with the whole load around
//!   the meter: the long bypass) and the literature's theft patterns h1–h6, tamper,
//!   stuck register, rollover, replacement, outage, sag, swell, overload, clock skew, duplicate,
//!   out-of-order and store-and-forward delivery, each over a seeded window, with ground truth in
//!   [`Fleet::injections`].
//!
//! Determinism: the random numbers are SplitMix64 keyed by (seed, meter, interval, purpose), so
//! the same seed gives the same bytes on every platform, however [`Fleet::advance`] is called,
//! and a fleet resumed from [`Fleet::state`] continues exactly as if it had never stopped.
//!
//! Readings that the platform quarantines on purpose: a [`FaultKind::ClockSkew`] meter whose
//! clock runs ahead stamps readings 10 minutes to 6 hours in the future, beyond the platform's
//! 5-minute tolerance, so they are quarantined as `clock_skew` (a meter running behind is
//! accepted). Everything else validates against `Limits::default()` as long as a feeder's peak
//! stays under the 2 MW `power_w` limit: keep to about 1,000 consumers per feeder. A feeder's
//! `current_a` is per phase (a balanced three-phase transformer); a consumer's is single-phase.

pub mod calibration;
mod config;
mod fleet;
mod load;
mod plan;
mod rng;

pub use config::{FaultKind, FaultParseError, FaultPlan, FleetConfig, DEFAULT_FAULT_SHARE};
pub use fleet::{
    CommandError, CommandOutcome, Fleet, FleetState, HeldMessage, Message, MeterState, MeterTruth,
    REGISTER_MAX_MWH,
};
pub use plan::Injection;
