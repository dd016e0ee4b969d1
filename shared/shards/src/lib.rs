//! `meter-shards`: what the sharded scheduled functions (`forecast`, `anomaly-scan`) share.
//!
//! Both take the same three kinds of event: a coordinator event from the schedule, a shard event,
//! and an SQS event whose records carry shard events (Lambda's `ReportBatchItemFailures`). This
//! crate holds the parts that do not depend on what a shard does: the run time an event names
//! ([`RunTime`]), the shard-count check, reading an SQS event's records and reporting the failed
//! ones ([`each_record`], [`ItemFailure`]), and logging a failure's whole cause chain. It knows
//! nothing of AWS clients: the records are plain JSON, so the local stack runs the same code.

use std::future::Future;

use meter_core::types::HOUR_MS;
use meter_core::Timestamp;
use serde::{Deserialize, Serialize};

/// A run time in an event: RFC 3339 (`"2026-11-22T14:00:00Z"`) or epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RunTime {
    /// Epoch milliseconds.
    Millis(i64),
    /// RFC 3339 with an offset.
    Rfc3339(String),
}

/// The run's time: the event's (`given`, its field named `field` in errors), or the hour `now`
/// falls in, so every re-run of one scheduled run within the hour writes the same keys. A time
/// before 1970 or more than `max_ahead_ms` after `now` is refused.
pub fn run_time(
    given: Option<RunTime>,
    now: Timestamp,
    max_ahead_ms: i64,
    field: &str,
) -> Result<Timestamp, String> {
    let t = match given {
        None => Timestamp::from_millis(now.millis().div_euclid(HOUR_MS) * HOUR_MS),
        Some(RunTime::Millis(ms)) => Timestamp::from_millis(ms),
        Some(RunTime::Rfc3339(s)) => Timestamp::parse_rfc3339(&s).map_err(|e| e.to_string())?,
    };
    if t.millis() < 0 || t.millis() > now.millis().saturating_add(max_ahead_ms) {
        return Err(format!(
            "{field} {t} is before 1970 or more than {} h after now ({now})",
            max_ahead_ms / HOUR_MS
        ));
    }
    Ok(t)
}

/// Checks that a run has 1 to `max` shards.
pub fn check_shards(shards: u32, max: u32) -> Result<(), String> {
    if (1..=max).contains(&shards) {
        Ok(())
    } else {
        Err(format!("shards must be 1 to {max}, not {shards}"))
    }
}

/// One SQS record the function could not handle, for a partial batch response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    /// The record's `messageId`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// An SQS event's records, as much of them as the functions read.
#[derive(Deserialize)]
struct SqsEvent {
    #[serde(rename = "Records")]
    records: Vec<SqsRecord>,
}

#[derive(Deserialize)]
struct SqsRecord {
    #[serde(rename = "messageId")]
    message_id: String,
    body: String,
}

/// Whether `event` is an SQS event (it has `Records`).
pub fn is_sqs_event(event: &serde_json::Value) -> bool {
    event.get("Records").is_some()
}

/// Runs `run` on each record's body of the SQS event `event`, one after the other, and returns
/// the records it failed on (to be retried, and in the end dead-lettered, alone). An event that
/// is not a well-formed SQS event is an error.
pub async fn each_record<E, Fut>(
    event: &serde_json::Value,
    mut run: impl FnMut(String) -> Fut,
) -> Result<Vec<ItemFailure>, String>
where
    Fut: Future<Output = Result<(), E>>,
{
    let sqs: SqsEvent =
        serde_json::from_value(event.clone()).map_err(|e| format!("not an SQS event: {e}"))?;
    let mut failures = Vec::new();
    for record in sqs.records {
        if run(record.body).await.is_err() {
            failures.push(ItemFailure {
                item_identifier: record.message_id,
            });
        }
    }
    Ok(failures)
}

/// Logs `e` with its whole cause chain (the runtime reports only the error type) as `what`.
pub fn log_failure(e: &(dyn std::error::Error + 'static), retryable: bool, what: &'static str) {
    let chain: Vec<String> = std::iter::successors(Some(e), |err| err.source())
        .map(ToString::to_string)
        .collect();
    tracing::error!(retryable, error = %chain.join(": "), "{what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_800_000_000;

    #[test]
    fn a_missing_run_time_is_the_hour_now_falls_in() {
        let t = run_time(None, Timestamp::from_millis(NOW), HOUR_MS, "scan_at").unwrap();
        assert_eq!(t.millis(), NOW.div_euclid(HOUR_MS) * HOUR_MS);
    }

    #[test]
    fn a_run_time_too_far_ahead_or_before_1970_is_refused_by_name() {
        let now = Timestamp::from_millis(NOW);
        let ahead = Some(RunTime::Millis(NOW + 2 * HOUR_MS));
        let err = run_time(ahead, now, HOUR_MS, "scan_at").unwrap_err();
        assert!(err.starts_with("scan_at "), "{err}");
        assert!(run_time(Some(RunTime::Millis(-1)), now, HOUR_MS, "x").is_err());
        let text = Some(RunTime::Rfc3339("2025-11-22T08:00:00Z".into()));
        assert_eq!(
            run_time(text, now, HOUR_MS, "x").unwrap().millis(),
            1_763_798_400_000
        );
        assert!(run_time(Some(RunTime::Rfc3339("soon".into())), now, HOUR_MS, "x").is_err());
    }

    #[test]
    fn shard_counts_outside_one_to_the_maximum_are_refused() {
        assert!(check_shards(1, 10).is_ok());
        assert!(check_shards(10, 10).is_ok());
        assert!(check_shards(0, 10).is_err());
        assert!(check_shards(11, 10).is_err());
    }

    #[tokio::test]
    async fn only_the_records_that_failed_are_reported() {
        let event = serde_json::json!({"Records": [
            {"messageId": "a", "body": "ok"},
            {"messageId": "b", "body": "fail"},
            {"messageId": "c", "body": "ok"},
        ]});
        let failures = each_record(&event, |body| async move {
            if body == "ok" {
                Ok(())
            } else {
                Err(())
            }
        })
        .await
        .unwrap();
        assert_eq!(
            failures,
            vec![ItemFailure {
                item_identifier: "b".into()
            }]
        );
        let bad = serde_json::json!({"Records": "nope"});
        let outcome = each_record(&bad, |_| async { Ok::<(), ()>(()) }).await;
        assert!(outcome.unwrap_err().starts_with("not an SQS event"));
    }
}
