//! The `ingest` Lambda's handler: the IoT rule's output in, an [`IngestReport`] out.
//!
//! The handler only translates: it splits the event into messages and hands them to
//! [`Ingestor::ingest`], which decides everything. Bad input never fails the invocation (it is
//! quarantined); a storage failure does, so Lambda's asynchronous retries and the on-failure
//! destination take over, and the retry is safe because every write is idempotent.

use meter_core::telemetry::{MessageContext, ParsedItem};
use meter_core::{Inbound, IngestReport, Ingestor, Timestamp};
use serde_json::value::RawValue;

/// Why an invocation failed. Only storage failures end here.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The store failed; Lambda should retry the invocation.
    #[error("ingest failed; the invocation will be retried")]
    Ingest(#[from] meter_core::ingest::IngestError),
}

/// Handles one invocation. The event is the IoT rule's output for one message, or a JSON array
/// of such outputs (when a batching source sits in front). `now` is used as the receive time only
/// when the event carries no `received_ms`.
pub async fn handle(
    ingestor: &Ingestor,
    event: &RawValue,
    now: Timestamp,
) -> Result<IngestReport, HandlerError> {
    handle_parsed(ingestor, &parse(ingestor, event, now)).await
}

/// The first half of [`handle`]: splits the event into messages and parses them, touching no
/// store. The local rule bridge runs it on a thread of its own, ahead of the one that stores.
pub fn parse(ingestor: &Ingestor, event: &RawValue, now: Timestamp) -> Vec<ParsedItem> {
    let text = event.get();
    let parts: Vec<&RawValue> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).unwrap_or_else(|_| vec![event])
    } else {
        vec![event]
    };
    let messages: Vec<Inbound<'_>> = parts
        .iter()
        .map(|p| Inbound {
            payload: p.get().as_bytes(),
            ctx: MessageContext {
                topic: None,
                received: now,
            },
        })
        .collect();
    ingestor.parse(&messages)
}

/// The second half of [`handle`]: stores what [`parse`] gave. Retrying it with the same items
/// is safe, as every write is idempotent.
pub async fn handle_parsed(
    ingestor: &Ingestor,
    items: &[ParsedItem],
) -> Result<IngestReport, HandlerError> {
    ingestor.ingest_parsed(items).await.map_err(|e| {
        // The full cause chain goes to the log; the runtime reports only the error type.
        let chain: Vec<String> =
            std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |err| {
                err.source()
            })
            .map(ToString::to_string)
            .collect();
        tracing::error!(retryable = e.is_retryable(), error = %chain.join(": "), "ingest failed");
        HandlerError::Ingest(e)
    })
}

#[cfg(feature = "lambda")]
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let HandlerError::Ingest(inner) = &e;
        lambda_runtime::Diagnostic {
            error_type: if inner.is_retryable() {
                "StoreUnavailable".into()
            } else {
                "StoreRejected".into()
            },
            error_message: e.to_string(),
        }
    }
}
