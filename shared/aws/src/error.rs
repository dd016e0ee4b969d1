//! Turning SDK errors into [`StoreError`]s: throttling, 5xx, timeouts and dispatch failures are
//! [`StoreError::Unavailable`] (retrying later can help), everything else is
//! [`StoreError::Rejected`]. The SDK error is kept whole as the source, so the log shows the
//! service's error code and message.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use meter_core::StoreError;

/// Error codes DynamoDB uses for "slow down" or "try again": the request itself was fine.
const RETRYABLE_CODES: [&str; 9] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "ReplicatedWriteConflictException",
];

/// Whether a failed call may succeed if made again later.
pub(crate) fn is_retryable<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(ctx) => {
            is_retryable_response(ctx.raw().status().as_u16(), ctx.err().code())
        }
        _ => false,
    }
}

/// Whether an error response (HTTP status and DynamoDB error code) says "try again later".
fn is_retryable_response(status: u16, code: Option<&str>) -> bool {
    (500..600).contains(&status) || code.is_some_and(|c| RETRYABLE_CODES.contains(&c))
}

/// Classifies and logs a failed call of `operation` on `table` (or queue), keeping the error as
/// source. The SDKs share their error plumbing, so this serves DynamoDB and SQS alike.
pub(crate) fn store_error<E>(
    operation: &'static str,
    table: &str,
    err: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = is_retryable(&err);
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or("-");
    tracing::warn!(
        operation,
        table,
        code,
        retryable,
        error = %DisplayErrorContext(&err),
        "AWS call failed"
    );
    if retryable {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Rejected(Box::new(err))
    }
}

/// A request the adapter refuses before sending it (a value DynamoDB cannot hold).
pub(crate) fn rejected(message: String) -> StoreError {
    StoreError::Rejected(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        assert!(is_retryable_response(
            400,
            Some("ProvisionedThroughputExceededException")
        ));
        assert!(is_retryable_response(400, Some("ThrottlingException")));
        assert!(is_retryable_response(500, Some("InternalServerError")));
        assert!(is_retryable_response(503, None));
    }

    #[test]
    fn validation_and_missing_tables_are_not_retryable() {
        assert!(!is_retryable_response(400, Some("ValidationException")));
        assert!(!is_retryable_response(
            400,
            Some("ResourceNotFoundException")
        ));
        assert!(!is_retryable_response(
            400,
            Some("ConditionalCheckFailedException")
        ));
        assert!(!is_retryable_response(403, None));
    }

    #[test]
    fn timeouts_are_unavailable_and_keep_their_source() {
        let timeout: SdkError<PutItemError, HttpResponse> =
            SdkError::timeout_error("took too long");
        let err = store_error("PutItem", "t", timeout);
        assert!(err.is_retryable());
        let source = std::error::Error::source(&err).unwrap();
        assert!(DisplayErrorContext(source)
            .to_string()
            .contains("took too long"));
        let construction: SdkError<PutItemError, HttpResponse> =
            SdkError::construction_failure("bad input");
        assert!(matches!(
            store_error("PutItem", "t", construction),
            StoreError::Rejected(_)
        ));
    }
}
