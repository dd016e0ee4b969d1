//! `meter-shards`: what the sharded scheduled functions (`forecast`, `anomaly-scan`) share.
//!
//! Both take the same three kinds of event: a coordinator event from the schedule, a shard event,
//! and an SQS event whose records carry shard events (Lambda's `ReportBatchItemFailures`). This
//! crate holds the parts that do not depend on what a shard does: the run time an event names
//! ([`RunTime`]), the shard-count check, reading an SQS event's records and reporting the failed
//! ones ([`each_record`], [`ItemFailure`]), and logging a failure's whole cause chain. It knows
//! nothing of AWS clients: the records are plain JSON, so the local stack runs the same code.
//! [`dispatch`] is the whole invocation: SQS records one by one, or the event directly, with
//! the shared [`HandlerError`]. With the `lambda` feature, [`serve`] is the runtime loop both
//! functions' `main` hand their handler to.

use std::future::Future;

use meter_core::ports::StoreError;
use meter_core::types::HOUR_MS;
use meter_core::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Why an invocation of a sharded function failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is not one this function understands; retrying it cannot help.
    #[error("bad event: {0}")]
    BadEvent(String),
    /// A store or the queue failed; `is_retryable` says whether a retry may help.
    #[error("the run failed; the invocation will be retried")]
    Store(#[from] StoreError),
}

impl HandlerError {
    /// Whether retrying the invocation may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::BadEvent(_) => false,
            Self::Store(e) => e.is_retryable(),
        }
    }
}

#[cfg(feature = "lambda")]
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match &e {
            HandlerError::BadEvent(_) => "BadEvent",
            HandlerError::Store(s) if s.is_retryable() => "StoreUnavailable",
            HandlerError::Store(_) => "StoreRejected",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// What [`dispatch`] did with an invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Dispatched<R> {
    /// An SQS event: the records that failed (empty when all succeeded).
    Batch(Vec<ItemFailure>),
    /// A coordinator or shard event, handled directly: its answer.
    Direct(R),
}

/// Parses a function's own event of type `E` from JSON text.
pub fn parse<E: DeserializeOwned>(text: &str) -> Result<E, HandlerError> {
    serde_json::from_str(text).map_err(|e| HandlerError::BadEvent(e.to_string()))
}

/// Handles one invocation of a sharded function: an SQS event's records one by one (a
/// coordinator event on the shard queue is refused, since it would fan out again on every
/// delivery), anything else directly; `run` handles one event's JSON text. Every failure is
/// logged with its cause chain as `what`.
pub async fn dispatch<E, R, Fut>(
    event: &serde_json::Value,
    is_coordinator: impl Fn(&E) -> bool,
    run: impl Fn(String) -> Fut,
    what: &'static str,
) -> Result<Dispatched<R>, HandlerError>
where
    E: DeserializeOwned,
    Fut: Future<Output = Result<R, HandlerError>>,
{
    let log = |e: &HandlerError| log_failure(e, e.is_retryable(), what);
    if !is_sqs_event(event) {
        return run(event.to_string())
            .await
            .map(Dispatched::Direct)
            .inspect_err(log);
    }
    let failures = each_record(event, |body| {
        let refused = match parse::<E>(&body) {
            Ok(e) if is_coordinator(&e) => Some(HandlerError::BadEvent(
                "a coordinator event on the shard queue".into(),
            )),
            _ => None,
        };
        let outcome = refused.map(Err);
        let run = &run;
        async move {
            let outcome = match outcome {
                Some(refused) => refused,
                None => run(body).await.map(drop),
            };
            outcome.inspect_err(log)
        }
    })
    .await
    .map_err(HandlerError::BadEvent)?;
    Ok(Dispatched::Batch(failures))
}

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

/// The shard queue's URL from `SHARD_QUEUE_URL` (read through `lookup`), or `None` when it is
/// unset or blank: the coordinator of either function needs it to fan out.
pub fn shard_queue_url(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    lookup("SHARD_QUEUE_URL").filter(|v| !v.trim().is_empty())
}

/// Serves Lambda invocations until the runtime stops: each event's payload goes to `handler`
/// with the wall clock's time, its response back to Lambda, and a [`HandlerError`] becomes the
/// runtime's diagnostic (`BadEvent`, `StoreUnavailable`, `StoreRejected`).
#[cfg(feature = "lambda")]
pub async fn serve<R, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(serde_json::Value, Timestamp) -> Fut,
    Fut: Future<Output = Result<R, HandlerError>>,
    R: Serialize,
{
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default();
            handler(event.payload, Timestamp::from_millis(now))
        },
    ))
    .await
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

    #[derive(serde::Deserialize)]
    #[serde(tag = "mode", rename_all = "snake_case")]
    enum Ev {
        Coordinator,
        Shard,
    }

    #[tokio::test]
    async fn a_coordinator_event_on_the_shard_queue_fails_alone_and_direct_events_answer() {
        let is_coordinator = |e: &Ev| matches!(e, Ev::Coordinator);
        let run = |text: String| async move {
            match parse::<Ev>(&text)? {
                Ev::Coordinator => Ok("fanned out"),
                Ev::Shard => Ok("one shard"),
            }
        };
        let direct = serde_json::json!({"mode": "coordinator"});
        assert_eq!(
            dispatch(&direct, is_coordinator, run, "test")
                .await
                .unwrap(),
            Dispatched::Direct("fanned out")
        );
        let sqs = serde_json::json!({"Records": [
            {"messageId": "a", "body": "{\"mode\":\"shard\"}"},
            {"messageId": "b", "body": "{\"mode\":\"coordinator\"}"},
            {"messageId": "c", "body": "not json"},
        ]});
        let Dispatched::Batch(failed) = dispatch(&sqs, is_coordinator, run, "test").await.unwrap()
        else {
            panic!("an SQS event is answered with its failed records");
        };
        let ids: Vec<&str> = failed.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        let bad = serde_json::json!({"mode": "sideways"});
        assert!(matches!(
            dispatch(&bad, is_coordinator, run, "test").await,
            Err(HandlerError::BadEvent(_))
        ));
    }

    #[test]
    fn the_shard_queue_url_must_be_set_and_not_blank() {
        let env = |value: Option<&'static str>| {
            move |k: &str| {
                (k == "SHARD_QUEUE_URL")
                    .then_some(value)
                    .flatten()
                    .map(String::from)
            }
        };
        assert_eq!(
            shard_queue_url(env(Some("https://q/1"))).as_deref(),
            Some("https://q/1")
        );
        assert_eq!(shard_queue_url(env(Some("  "))), None);
        assert_eq!(shard_queue_url(env(None)), None);
    }
}
