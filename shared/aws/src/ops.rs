//! The few request shapes every adapter shares: a conditional put that reports a conflict
//! instead of failing, and a query that follows `LastEvaluatedKey` to the end.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use meter_core::StoreError;

use aws_sdk_dynamodb::Client;

use crate::error::store_error;
use crate::item::s;
use crate::item::Item;

/// What a conditional `PutItem` did.
#[derive(Debug)]
pub(crate) enum Put {
    /// The condition held and the item was written.
    Written,
    /// The condition failed; the stored item, if the request asked for it
    /// (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) and it exists.
    Refused(Option<Item>),
}

/// Interprets a conditional `PutItem`'s result: a failed condition is an answer, not an error.
pub(crate) fn put_result(
    table: &str,
    result: Result<PutItemOutput, SdkError<PutItemError, HttpResponse>>,
) -> Result<Put, StoreError> {
    match result {
        Ok(_) => Ok(Put::Written),
        Err(err) => match err.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(e)) => {
                Ok(Put::Refused(e.item().cloned()))
            }
            _ => Err(store_error("PutItem", table, err)),
        },
    }
}

/// Runs `query` page by page until it is exhausted or `limit` items have come back, and
/// decodes every item with the table's `decode`.
pub(crate) async fn query_pages<T>(
    table: &str,
    query: QueryFluentBuilder,
    limit: Option<usize>,
    decode: fn(&Item, &str) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query", table, e))?;
        items.extend(page.items.unwrap_or_default());
        if let Some(limit) = limit {
            if items.len() >= limit {
                items.truncate(limit);
                break;
            }
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    items.iter().map(|item| decode(item, table)).collect()
}

/// A query's `Limit`: DynamoDB wants 1..=i32::MAX.
pub(crate) fn page_limit(limit: usize) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX).max(1)
}

/// A strongly consistent Query for the items of partition `pk` whose sort key `sk` lies in
/// `lo..=hi`: the one access pattern every time-ordered table here shares.
pub(crate) fn query_sk_between(
    client: &Client,
    table: &str,
    pk_attr: &str,
    pk: &str,
    lo: String,
    hi: String,
) -> QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .consistent_read(true)
        .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
        .expression_attribute_names("#pk", pk_attr)
        .expression_attribute_names("#sk", "sk")
        .expression_attribute_values(":pk", s(pk))
        .expression_attribute_values(":lo", s(lo))
        .expression_attribute_values(":hi", s(hi))
}

/// A strongly consistent `GetItem` of the item with `key`; `None` if there is none.
pub(crate) async fn get_consistent<T>(
    client: &Client,
    table: &str,
    key: crate::item::Item,
    decode: fn(&Item, &str) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| store_error("GetItem", table, e))?;
    out.item
        .filter(|i| !i.is_empty())
        .map(|i| decode(&i, table))
        .transpose()
}
