//! [`QuarantineStore`] on the quarantine table: one partition per meter key (a meter id or
//! `_unknown`), sorted by receive time then entry id, so the newest entries are one reverse query
//! away. Entries are written with `BatchWriteItem`: their ids are deterministic, so a redelivered
//! message overwrites its own entries with identical items.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use meter_core::ports::QuarantineStore;
use meter_core::{QuarantineEntry, QuarantineReason, StoreError, Timestamp};

use crate::batch::put_all;
use crate::config::{expires_at, Retention};
use crate::error::rejected;
use crate::item::{check_key_ms, ms_key, n, s, Fields, Item};
use crate::ops::{page_limit, query_pages};

/// The partition key attribute.
const PK: &str = "meter_key";

/// The sort key of an entry: receive time (15 digits), `#`, entry id.
pub fn quarantine_sk(received: Timestamp, id: &str) -> String {
    format!("{}#{id}", ms_key(received.millis()))
}

/// Quarantine in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoQuarantineStore {
    client: Client,
    table: String,
    retention_days: u32,
}

impl DynamoQuarantineStore {
    /// An adapter on `table`; entries expire `retention.quarantine_days` after receipt.
    pub fn new(client: Client, table: impl Into<String>, retention: &Retention) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days: retention.quarantine_days,
        }
    }
}

/// An entry as an item, expiring `retention_days` after receipt.
fn encode(e: &QuarantineEntry, retention_days: u32) -> Result<Item, StoreError> {
    check_key_ms("quarantine entry", e.received.millis())?;
    if e.meter_key.is_empty() {
        return Err(rejected("quarantine entry has an empty meter key".into()));
    }
    let mut item = HashMap::from([
        (PK.to_owned(), s(e.meter_key.as_str())),
        ("sk".to_owned(), s(quarantine_sk(e.received, &e.id))),
        ("reason".to_owned(), s(e.reason.as_str())),
        ("detail".to_owned(), s(e.detail.as_str())),
        ("raw".to_owned(), s(e.raw.as_str())),
        ("received_ms".to_owned(), n(e.received.millis())),
        (
            "expires_at".to_owned(),
            n(expires_at(e.received.millis(), retention_days)),
        ),
    ]);
    if let Some(i) = e.index {
        item.insert("idx".into(), n(i));
    }
    Ok(item)
}

#[async_trait]
impl QuarantineStore for DynamoQuarantineStore {
    async fn put(&self, entries: &[QuarantineEntry]) -> Result<(), StoreError> {
        // The same id means the same entry, so keeping the last of a key loses nothing.
        let count = put_all(
            &self.client,
            &self.table,
            entries,
            |e| (e.meter_key.as_str(), quarantine_sk(e.received, &e.id)),
            |e| encode(e, self.retention_days),
            "quarantine",
        )
        .await?;
        tracing::info!(table = %self.table, entries = count, "quarantine entries stored");
        Ok(())
    }

    async fn for_meter(
        &self,
        meter_key: &str,
        limit: usize,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        if limit == 0 || meter_key.is_empty() {
            return Ok(Vec::new());
        }
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(meter_key))
            .scan_index_forward(false)
            .limit(page_limit(limit));
        query_pages(&self.table, q, Some(limit), decode).await
    }
}

fn decode(item: &Item, table: &str) -> Result<QuarantineEntry, StoreError> {
    let f = Fields::new(item, table);
    let id = f
        .s("sk")?
        .split_once('#')
        .map(|(_, id)| id.to_owned())
        .ok_or_else(|| StoreError::Corrupt(format!("table {table}: sort key without an id")))?;
    Ok(QuarantineEntry {
        id,
        meter_key: f.s(PK)?.to_owned(),
        received: Timestamp::from_millis(f.n("received_ms")?),
        reason: f.parsed("reason", "a quarantine reason", QuarantineReason::parse)?,
        detail: f.s("detail")?.to_owned(),
        raw: f.s("raw")?.to_owned(),
        index: f.opt_n("idx")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_through_its_item() {
        let e = QuarantineEntry {
            id: "abc#def".into(),
            meter_key: "_unknown".into(),
            received: Timestamp::from_millis(1_700_000_000_000),
            reason: QuarantineReason::MalformedJson,
            detail: "line 1".into(),
            raw: "{not json".into(),
            index: Some(3),
        };
        let item = encode(&e, Retention::default().quarantine_days).unwrap();
        assert_eq!(item.get("sk"), Some(&s("001700000000000#abc#def")));
        assert_eq!(
            item.get("expires_at"),
            Some(&n(1_700_000_000 + 90 * 86_400))
        );
        assert_eq!(decode(&item, "q").unwrap(), e);
    }
}
