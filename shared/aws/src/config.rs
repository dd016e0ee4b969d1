//! Where the adapters store things and for how long: table names and retention, read from the
//! environment the SAM template sets on each function.

/// Seconds in a day, for turning retention days into a TTL.
const DAY_SECS: i64 = 86_400;

/// Why the environment does not describe a usable configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("environment variable {0} is not set; it must name a DynamoDB table")]
    Missing(&'static str),
    /// A variable is set but its value cannot be used.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What a valid value looks like.
        reason: &'static str,
    },
}

/// A table name that must be set (and not blank).
fn required(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    get(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// The five DynamoDB table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// Raw readings and their seq guards (`READINGS_TABLE`).
    pub readings: String,
    /// The meter registry (`METERS_TABLE`).
    pub meters: String,
    /// Quarantined messages and readings (`QUARANTINE_TABLE`).
    pub quarantine: String,
    /// Hourly, daily and monthly aggregates and the per-meter version counter
    /// (`AGGREGATES_TABLE`).
    pub aggregates: String,
    /// Instant events, streamed to the alerts function (`EVENTS_TABLE`).
    pub events: String,
}

impl Tables {
    /// Reads `READINGS_TABLE`, `METERS_TABLE`, `QUARANTINE_TABLE`, `AGGREGATES_TABLE` and
    /// `EVENTS_TABLE`; the error names the first one missing.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`Tables::from_env`], reading variables through `get` (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| required(&get, name);
        Ok(Self {
            readings: var("READINGS_TABLE")?,
            meters: var("METERS_TABLE")?,
            quarantine: var("QUARANTINE_TABLE")?,
            aggregates: var("AGGREGATES_TABLE")?,
            events: var("EVENTS_TABLE")?,
        })
    }

    /// Tables named `{prefix}readings`, `{prefix}meters`, ...: isolated sets for tests.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            readings: format!("{prefix}readings"),
            meters: format!("{prefix}meters"),
            quarantine: format!("{prefix}quarantine"),
            aggregates: format!("{prefix}aggregates"),
            events: format!("{prefix}events"),
        }
    }
}

/// The tables the `forecast` function uses: it reads the registry and readings that ingest
/// writes, and writes its own forecasts table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForecastTables {
    /// The meter registry (`METERS_TABLE`), paged through by the shards.
    pub meters: String,
    /// Raw readings (`READINGS_TABLE`), each meter's history.
    pub readings: String,
    /// Issued forecasts (`FORECASTS_TABLE`).
    pub forecasts: String,
}

impl ForecastTables {
    /// Reads `METERS_TABLE`, `READINGS_TABLE` and `FORECASTS_TABLE`; the error names the first
    /// one missing.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`ForecastTables::from_env`], reading variables through `get` (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| required(&get, name);
        Ok(Self {
            meters: var("METERS_TABLE")?,
            readings: var("READINGS_TABLE")?,
            forecasts: var("FORECASTS_TABLE")?,
        })
    }
}

/// The tables the `anomaly-scan` function uses: it reads the registry and readings that ingest
/// writes, and writes its own findings table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanTables {
    /// The meter registry (`METERS_TABLE`), paged through by the shards.
    pub meters: String,
    /// Raw readings (`READINGS_TABLE`), each meter's history.
    pub readings: String,
    /// Findings (`FINDINGS_TABLE`).
    pub findings: String,
}

impl ScanTables {
    /// Reads `METERS_TABLE`, `READINGS_TABLE` and `FINDINGS_TABLE`; the error names the first
    /// one missing.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`ScanTables::from_env`], reading variables through `get` (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| required(&get, name);
        Ok(Self {
            meters: var("METERS_TABLE")?,
            readings: var("READINGS_TABLE")?,
            findings: var("FINDINGS_TABLE")?,
        })
    }
}

/// How long DynamoDB keeps what expires: each such item carries an `expires_at` TTL attribute
/// (epoch seconds) computed from its own time, so rewriting it yields the same item.
/// Aggregates never expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days a reading (and its seq guard) is kept after its timestamp (`READING_RETENTION_DAYS`,
    /// default 400: a year plus a billing dispute window).
    pub reading_days: u32,
    /// Days a quarantine entry is kept after it was received (`QUARANTINE_RETENTION_DAYS`,
    /// default 90).
    pub quarantine_days: u32,
    /// Days an event is kept after its reading's timestamp (`EVENT_RETENTION_DAYS`, default
    /// 400).
    pub event_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            reading_days: 400,
            quarantine_days: 90,
            event_days: 400,
        }
    }
}

impl Retention {
    /// Reads `READING_RETENTION_DAYS`, `QUARANTINE_RETENTION_DAYS` and `EVENT_RETENTION_DAYS`;
    /// an unset variable keeps its default, a set one must be a whole number of days ≥ 1.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`Retention::from_env`], reading variables through `get` (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let days = |var: &'static str, default: u32| match get(var) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(default),
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(ConfigError::Invalid {
                    var,
                    value: v,
                    reason: "expected a whole number of days, at least 1",
                }),
            },
        };
        Ok(Self {
            reading_days: days("READING_RETENTION_DAYS", d.reading_days)?,
            quarantine_days: days("QUARANTINE_RETENTION_DAYS", d.quarantine_days)?,
            event_days: days("EVENT_RETENTION_DAYS", d.event_days)?,
        })
    }
}

/// The TTL value for something stamped `at_ms` (epoch ms) and kept `days` days: epoch seconds.
pub(crate) fn expires_at(at_ms: i64, days: u32) -> i64 {
    at_ms
        .div_euclid(1000)
        .saturating_add(i64::from(days) * DAY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn tables_come_from_the_environment_and_name_the_missing_variable() {
        let all = [
            ("READINGS_TABLE", "r"),
            ("METERS_TABLE", "m"),
            ("QUARANTINE_TABLE", "q"),
            ("AGGREGATES_TABLE", "a"),
            ("EVENTS_TABLE", "e"),
        ];
        let t = Tables::from_lookup(env(&all)).unwrap();
        assert_eq!((t.readings.as_str(), t.events.as_str()), ("r", "e"));
        let err = Tables::from_lookup(env(&all[..3])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("AGGREGATES_TABLE"));
        assert!(err.to_string().contains("AGGREGATES_TABLE"));
    }

    #[test]
    fn the_forecast_tables_come_from_the_environment_too() {
        let all = [
            ("METERS_TABLE", "m"),
            ("READINGS_TABLE", "r"),
            ("FORECASTS_TABLE", "f"),
        ];
        let t = ForecastTables::from_lookup(env(&all)).unwrap();
        assert_eq!(t.forecasts, "f");
        let err = ForecastTables::from_lookup(env(&all[..2])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("FORECASTS_TABLE"));
    }

    #[test]
    fn the_scan_tables_come_from_the_environment_too() {
        let all = [
            ("METERS_TABLE", "m"),
            ("READINGS_TABLE", "r"),
            ("FINDINGS_TABLE", "x"),
        ];
        assert_eq!(ScanTables::from_lookup(env(&all)).unwrap().findings, "x");
        let err = ScanTables::from_lookup(env(&all[..2])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("FINDINGS_TABLE"));
    }

    #[test]
    fn retention_defaults_and_rejects_nonsense() {
        assert_eq!(
            Retention::from_lookup(env(&[])).unwrap(),
            Retention::default()
        );
        let r = Retention::from_lookup(env(&[("QUARANTINE_RETENTION_DAYS", "30")])).unwrap();
        assert_eq!(
            (r.reading_days, r.quarantine_days, r.event_days),
            (400, 30, 400)
        );
        for bad in ["0", "-1", "ten", "1.5"] {
            let err = Retention::from_lookup(env(&[("EVENT_RETENTION_DAYS", bad)])).unwrap_err();
            assert!(err.to_string().contains("EVENT_RETENTION_DAYS"), "{bad}");
        }
    }

    #[test]
    fn expiry_is_epoch_seconds_after_the_item_time() {
        assert_eq!(expires_at(1_700_000_000_999, 1), 1_700_000_000 + 86_400);
        assert_eq!(Tables::with_prefix("t1-").meters, "t1-meters");
    }
}
