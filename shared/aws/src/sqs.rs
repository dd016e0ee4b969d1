//! [`ShardDispatcher`] on SQS: the forecast coordinator sends one message per shard to the
//! shard queue, whose event source mapping invokes the `forecast` function with them. The body
//! of each message is the shard event itself ([`ShardJob::to_event_json`]), so a message moved
//! to the dead-letter queue can be redriven or invoked by hand as it is.

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use meter_core::ports::{ShardDispatcher, ShardJob};
use meter_core::StoreError;

use crate::error::{rejected, store_error};

/// SQS takes at most 10 messages per `SendMessageBatch`.
const BATCH: usize = 10;

/// Shard jobs as messages on an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsShardDispatcher {
    client: Client,
    queue_url: String,
}

impl SqsShardDispatcher {
    /// A dispatcher sending to `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl ShardDispatcher for SqsShardDispatcher {
    async fn dispatch(&self, jobs: &[ShardJob]) -> Result<(), StoreError> {
        for chunk in jobs.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("s{i}"))
                        .message_body(job.to_event_json())
                        .build()
                        .map_err(|e| rejected(format!("building a shard message: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| store_error("SendMessageBatch", &self.queue_url, e))?;
            // A partly failed batch fails the coordinator, whose retry sends every shard again:
            // shards are idempotent, so a repeat costs time, never a duplicate forecast.
            if let Some(failed) = out.failed.first() {
                let e = format!(
                    "{} of {} shard messages refused ({}: {})",
                    out.failed.len(),
                    chunk.len(),
                    failed.code,
                    failed.message.as_deref().unwrap_or("-")
                );
                return Err(if failed.sender_fault {
                    rejected(e)
                } else {
                    StoreError::Unavailable(e.into())
                });
            }
        }
        tracing::info!(queue = %self.queue_url, shards = jobs.len(), "shard jobs sent");
        Ok(())
    }
}
