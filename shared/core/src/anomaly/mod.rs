//! Detection: consumption anomalies and electricity theft on per-meter-day data. Pure
//! computation: no I/O, no async.
//!
//! - [`balance`]: feeder energy balance (technical-loss model, CUSUM, suspect ranking).
//! - [`days`]: a meter's intervals cut into local days, the unit scored.
//! - [`finding`]: the common shape of every detector's report.
//! - [`iforest`]: an isolation forest (scikit-learn's algorithm, a faster layout).
//! - [`metrics`]: tie-aware ROC-AUC and PR-AUC for evaluations.
//! - [`mod@reconcile`]: findings as stored, and de-duplication across scans.
//! - [`rng`]: the seeded generator everything random here draws from.
//! - [`mod@scan`]: the anomaly scan of one feeder: every detector, one list of findings.
//! - [`theft`]: pattern theft scores of meter-days, and the h1–h6 injections.
//! - [`vee`]: history-based bad-data checks (spikes, stuck registers, zero runs, negative
//!   values, gaps, power vs energy).

pub mod balance;
pub mod days;
pub mod finding;
pub mod iforest;
pub mod metrics;
pub mod reconcile;
pub mod rng;
pub mod scan;
pub mod theft;
pub mod vee;

pub use days::MeterDays;
pub use finding::{FeederWindow, Finding, FindingKind, MeterWindow};
pub use iforest::{Contamination, ForestConfig, ForestError, IsolationForest};
pub use reconcile::{reconcile, FindingStatus, Reconciled, StoredFinding};
pub use rng::Rng;
pub use scan::{scan, ScanConfig};
pub use theft::{Attack, DayScore, TheftConfig};
