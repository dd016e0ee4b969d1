//! `BatchWriteItem` done right: at most 25 requests per call (DynamoDB rejects more, though moto
//! accepts them, so only this code keeps us honest), and `UnprocessedItems` retried with
//! exponential backoff until written or the attempts run out.
//!
//! The chunking and retry loop, [`write_chunked`], is generic over the call that sends one batch,
//! so it is tested without a network; [`write_all`] plugs in the real `BatchWriteItem`.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use aws_sdk_dynamodb::types::WriteRequest;
use aws_sdk_dynamodb::Client;
use meter_core::StoreError;

use crate::error::store_error;

/// The most requests DynamoDB accepts in one `BatchWriteItem`.
pub const MAX_BATCH_WRITE: usize = 25;

/// How often and how patiently unprocessed items are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Calls per chunk, the first included; then the write fails as unavailable.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base: Duration,
    /// Longest delay between two attempts.
    pub max: Duration,
}

impl Default for Backoff {
    /// 8 attempts, 50 ms doubling to at most 2 s: about 6 s in all, well inside a Lambda timeout.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (1 for the first), with "equal jitter": half fixed,
    /// half random, so throttled writers spread out instead of retrying in step.
    pub fn delay(&self, retry: u32) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max);
        let half = full / 2;
        let random = RandomState::new().hash_one(retry) % 1024;
        let millis = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(millis.saturating_mul(random) / 1024)
    }
}

/// Sends `requests` in chunks of at most [`MAX_BATCH_WRITE`] through `send`, which performs one
/// batch call and returns the requests the service left unprocessed; those are sent again after
/// a backoff delay. Fails with [`StoreError::Unavailable`] when a chunk still has unprocessed
/// requests after `backoff.max_attempts` calls, or with whatever `send` fails with.
pub async fn write_chunked<T, F, Fut>(
    requests: Vec<T>,
    backoff: &Backoff,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut rest = requests.into_iter().peekable();
    while rest.peek().is_some() {
        let mut pending: Vec<T> = rest.by_ref().take(MAX_BATCH_WRITE).collect();
        let mut attempt = 1;
        loop {
            let unprocessed = send(pending).await?;
            if unprocessed.is_empty() {
                break;
            }
            if attempt >= backoff.max_attempts {
                tracing::warn!(
                    unprocessed = unprocessed.len(),
                    attempts = attempt,
                    "batch write gave up on unprocessed items"
                );
                return Err(StoreError::Unavailable(
                    format!(
                        "{} batch-write requests still unprocessed after {attempt} attempts",
                        unprocessed.len()
                    )
                    .into(),
                ));
            }
            tracing::debug!(
                unprocessed = unprocessed.len(),
                attempt,
                "retrying unprocessed batch-write items"
            );
            tokio::time::sleep(backoff.delay(attempt)).await;
            attempt += 1;
            pending = unprocessed;
        }
    }
    Ok(())
}

/// Writes `requests` to `table` with `BatchWriteItem`, 25 at a time, retrying unprocessed items
/// with the default [`Backoff`].
pub async fn write_all(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    write_chunked(requests, &Backoff::default(), |chunk| async move {
        let out = client
            .batch_write_item()
            .request_items(table, chunk)
            .send()
            .await
            .map_err(|e| store_error("BatchWriteItem", table, e))?;
        Ok(out
            .unprocessed_items
            .and_then(|mut by_table| by_table.remove(table))
            .unwrap_or_default())
    })
    .await
}

/// Puts `records` into `table` with [`write_all`], each encoded by `encode` under its key
/// `key(record)`: one batch may not name a key twice, so of records with equal keys the last
/// wins, as it would if they came one call apart. `what` names the records in errors. Returns
/// how many items were written.
pub async fn put_all<'a, T, K: Ord>(
    client: &Client,
    table: &str,
    records: &'a [T],
    key: impl Fn(&'a T) -> K,
    encode: impl Fn(&T) -> Result<crate::item::Item, StoreError>,
    what: &str,
) -> Result<usize, StoreError> {
    let by_key = records
        .iter()
        .map(|r| Ok((key(r), encode(r)?)))
        .collect::<Result<std::collections::BTreeMap<K, _>, StoreError>>()?;
    let requests = by_key
        .into_values()
        .map(|item| {
            aws_sdk_dynamodb::types::PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
                .map_err(|e| crate::error::rejected(format!("building a {what} put request: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = requests.len();
    write_all(client, table, requests).await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn instant() -> Backoff {
        Backoff {
            max_attempts: 4,
            base: Duration::ZERO,
            max: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn no_call_carries_more_than_25_requests() {
        let calls = Mutex::new(Vec::new());
        write_chunked((0..60).collect::<Vec<u32>>(), &instant(), |chunk| {
            calls.lock().unwrap().push(chunk.len());
            async { Ok(Vec::new()) }
        })
        .await
        .unwrap();
        assert_eq!(calls.into_inner().unwrap(), vec![25, 25, 10]);
    }

    #[tokio::test]
    async fn unprocessed_requests_are_retried_until_written() {
        let calls = Mutex::new(Vec::new());
        write_chunked(
            (0..30).collect::<Vec<u32>>(),
            &instant(),
            |chunk: Vec<u32>| {
                let first = calls.lock().unwrap().is_empty();
                calls.lock().unwrap().push(chunk.clone());
                // The first call leaves its last three requests unprocessed.
                let unprocessed = if first {
                    chunk[22..].to_vec()
                } else {
                    Vec::new()
                };
                async move { Ok(unprocessed) }
            },
        )
        .await
        .unwrap();
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[1], vec![22, 23, 24]);
        assert_eq!(calls[2], (25..30).collect::<Vec<_>>());
        let mut written: Vec<u32> = calls.concat();
        written.sort_unstable();
        written.dedup();
        assert_eq!(written, (0..30).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn requests_never_processed_end_as_unavailable() {
        let mut calls = 0;
        let err = write_chunked(vec![1, 2, 3], &instant(), |chunk| {
            calls += 1;
            async move { Ok(chunk) }
        })
        .await
        .unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(calls, 4);
    }

    #[tokio::test]
    async fn a_failed_call_stops_the_write() {
        let mut calls = 0;
        let err = write_chunked((0..60).collect::<Vec<u32>>(), &instant(), |_| {
            calls += 1;
            async { Err(StoreError::Rejected("bad".into())) }
        })
        .await
        .unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(calls, 1);
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let b = Backoff::default();
        for retry in 1..40 {
            let d = b.delay(retry);
            let full = (b.base * 2u32.pow((retry - 1).min(16))).min(b.max);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
        }
    }
}
