//! Detection: consumption anomalies and electricity theft on per-meter-day data. Pure
//! computation: no I/O, no async.
//!
//! - [`iforest`]: an isolation forest (scikit-learn's algorithm, a faster layout).
//! - [`rng`]: the seeded generator everything random here draws from.

pub mod iforest;
pub mod rng;

pub use iforest::{Contamination, ForestConfig, ForestError, IsolationForest};
pub use rng::Rng;
