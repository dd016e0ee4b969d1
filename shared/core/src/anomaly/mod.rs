//! Detection: consumption anomalies, electricity theft, bad data, outages and power quality.
//! Pure computation: no I/O, no async.
//!
//! - [`balance`]: feeder energy balance (technical-loss model, CUSUM, suspect ranking).
//! - [`days`]: a meter's intervals cut into local days, the unit scored.
//! - [`finding`]: the common shape of every detector's report.
//! - [`iforest`]: an isolation forest (scikit-learn's algorithm, a faster layout).
//! - [`metrics`]: tie-aware ROC-AUC and PR-AUC for evaluations.
//! - [`outage`]: meter and feeder outages against the feeder's supply, and restorations.
//! - [`quality`]: power quality after EN 50160 (10-minute voltage sags and swells, low power
//!   factor, frequency excursions).
//! - [`mod@reconcile`]: findings as stored, and de-duplication across scans.
//! - [`rng`]: the seeded generator everything random here draws from.
//! - [`mod@scan`]: the anomaly scan of one feeder: every detector, one list of findings.
//! - [`sustained`]: a meter's daily theft evidence accumulated over consecutive days (sustained
//!   under-reporting).
//! - [`tamper`]: tamper status, consumption while the relay is open, zero consumption while
//!   the feeder is loaded.
//! - [`theft`]: pattern theft scores of meter-days, and the h1–h6 injections.
//! - [`vee`]: history-based bad-data checks (spikes, stuck registers, zero runs, negative
//!   values, gaps, power vs energy).

pub mod balance;
pub mod days;
pub mod finding;
pub mod iforest;
pub mod metrics;
pub mod outage;
pub mod quality;
pub mod reconcile;
pub mod rng;
mod sampling;
pub mod scan;
pub mod sustained;
pub mod tamper;
pub mod theft;
pub mod vee;

pub use days::MeterDays;
pub use finding::{FeederWindow, Finding, FindingKind, MeterWindow};
pub use iforest::{Contamination, ForestConfig, ForestError, IsolationForest};
pub use reconcile::{reconcile, FindingStatus, Reconciled, StoredFinding};
pub use rng::Rng;
pub use scan::{scan, ScanConfig};
pub use theft::{Attack, DayScore, TheftConfig};
