//! [`FindingStore`] on the findings table (the `anomaly-scan` function's own): one partition per
//! meter, sort key the finding id, so a meter's findings are one strongly consistent query.
//! Closed findings carry an `expires_at` TTL (closed time + retention), so a meter's partition
//! holds its open findings and the recently closed ones only.
//!
//! The fleet's open findings are the sparse global secondary index [`OPEN_INDEX`]: an open
//! finding carries `open = "open"` and `open_key = "{meter_id}#{id}"` (`#` is not allowed in a
//! meter id, and sorts below every character that is, so the key orders by meter, then id);
//! closing a finding rewrites it without them, which takes it out of the index. Paging the
//! fleet's open findings reads open ones only, however many have been closed.
//!
//! The table's stream (`NEW_AND_OLD_IMAGES`) is how findings reach the alerts function: an
//! `INSERT` is a newly opened finding (an id is new exactly once, however often a scan is
//! retried), a `MODIFY` from `open` to `closed` a condition that ended.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use meter_core::anomaly::{FindingKind, FindingStatus, StoredFinding};
use meter_core::ports::{FindingCursor, FindingPage, FindingStore};
use meter_core::{MeterId, StoreError, Timestamp};

use crate::batch::put_all;
use crate::config::expires_at;
use crate::item::{f, n, s, Fields, Item};
use crate::ops::{page_limit, query_pages};

/// The partition key attribute.
const PK: &str = "meter_id";
/// The sparse index of open findings.
pub const OPEN_INDEX: &str = "open_findings";
/// The index's partition key attribute, and its one value.
const OPEN: &str = "open";

/// Findings in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoFindingStore {
    client: Client,
    table: String,
    retention_days: u32,
}

impl DynamoFindingStore {
    /// An adapter on `table`; closed findings expire `retention_days` after they closed.
    pub fn new(client: Client, table: impl Into<String>, retention_days: u32) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days,
        }
    }
}

/// The index sort key of an open finding.
fn open_key(meter: &str, id: &str) -> String {
    format!("{meter}#{id}")
}

fn encode(x: &StoredFinding, retention_days: u32) -> Result<Item, StoreError> {
    let mut item = HashMap::from([
        (PK.to_owned(), s(x.meter_id.as_str())),
        ("sk".to_owned(), s(x.id.as_str())),
        ("kind".to_owned(), s(x.kind.as_str())),
        ("status".to_owned(), s(x.status.as_str())),
        ("opened_at".to_owned(), n(x.opened_at.millis())),
        ("last_seen".to_owned(), n(x.last_seen.millis())),
        ("score".to_owned(), f("score", x.score)?),
        ("ev_from".to_owned(), n(x.from.millis())),
        ("ev_to".to_owned(), n(x.to.millis())),
        ("explanation".to_owned(), s(x.explanation.as_str())),
    ]);
    if let Some(closed) = x.closed_at {
        item.insert("closed_at".into(), n(closed.millis()));
    }
    match x.status {
        FindingStatus::Open => {
            item.insert(OPEN.into(), s(OPEN));
            item.insert("open_key".into(), s(open_key(x.meter_id.as_str(), &x.id)));
        }
        FindingStatus::Closed => {
            let closed = x.closed_at.unwrap_or(x.last_seen);
            item.insert(
                "expires_at".into(),
                n(expires_at(closed.millis(), retention_days)),
            );
        }
    }
    Ok(item)
}

fn decode(item: &Item, table: &str) -> Result<StoredFinding, StoreError> {
    let fields = Fields::new(item, table);
    Ok(StoredFinding {
        id: fields.s("sk")?.to_owned(),
        meter_id: fields.parsed(PK, "a meter id", |v| MeterId::parse(v).ok())?,
        kind: fields.parsed("kind", "a finding kind", FindingKind::parse)?,
        status: fields.parsed("status", "open or closed", FindingStatus::parse)?,
        opened_at: Timestamp::from_millis(fields.n("opened_at")?),
        last_seen: Timestamp::from_millis(fields.n("last_seen")?),
        closed_at: fields
            .opt_n::<i64>("closed_at")?
            .map(Timestamp::from_millis),
        score: fields.n("score")?,
        from: Timestamp::from_millis(fields.n("ev_from")?),
        to: Timestamp::from_millis(fields.n("ev_to")?),
        explanation: fields.s("explanation")?.to_owned(),
    })
}

impl DynamoFindingStore {
    async fn of_meter(
        &self,
        meter: &MeterId,
        open_only: bool,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(meter.as_str()));
        if open_only {
            // Reads the meter's recently closed findings too (until their TTL): a meter has
            // few, and the main table, unlike the index, can be read consistently, which a
            // retried scan relies on to see what its first attempt wrote.
            query = query
                .filter_expression("#st = :open")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":open", s(FindingStatus::Open.as_str()));
        }
        query_pages(&self.table, query, None, decode).await
    }
}

#[async_trait]
impl FindingStore for DynamoFindingStore {
    async fn put(&self, findings: &[StoredFinding]) -> Result<(), StoreError> {
        let count = put_all(
            &self.client,
            &self.table,
            findings,
            |x| (x.meter_id.as_str(), x.id.as_str()),
            |x| encode(x, self.retention_days),
            "finding",
        )
        .await?;
        tracing::debug!(table = %self.table, findings = count, "findings stored");
        Ok(())
    }

    async fn get(&self, meter: &MeterId, id: &str) -> Result<Option<StoredFinding>, StoreError> {
        let key = HashMap::from([(PK.to_owned(), s(meter.as_str())), ("sk".to_owned(), s(id))]);
        crate::ops::get_consistent(&self.client, &self.table, key, decode).await
    }

    async fn open_for_meter(&self, meter: &MeterId) -> Result<Vec<StoredFinding>, StoreError> {
        self.of_meter(meter, true).await
    }

    async fn for_meter(&self, meter: &MeterId) -> Result<Vec<StoredFinding>, StoreError> {
        self.of_meter(meter, false).await
    }

    async fn open_page(
        &self,
        after: Option<&FindingCursor>,
        limit: usize,
    ) -> Result<FindingPage, StoreError> {
        let limit = limit.max(1);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OPEN_INDEX)
            .expression_attribute_names("#o", OPEN)
            .expression_attribute_values(":o", s(OPEN))
            .limit(page_limit(limit.saturating_add(1)));
        query = match after {
            None => query.key_condition_expression("#o = :o"),
            Some(c) => query
                .key_condition_expression("#o = :o AND #k > :after")
                .expression_attribute_names("#k", "open_key")
                .expression_attribute_values(":after", s(open_key(c.meter_id.as_str(), &c.id))),
        };
        let mut findings =
            query_pages(&self.table, query, Some(limit.saturating_add(1)), decode).await?;
        let more = findings.len() > limit;
        findings.truncate(limit);
        let next = more
            .then(|| findings.last())
            .flatten()
            .map(|x| FindingCursor {
                meter_id: x.meter_id.clone(),
                id: x.id.clone(),
            });
        Ok(FindingPage { findings, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(status: FindingStatus) -> StoredFinding {
        StoredFinding {
            id: "tamper:001764000000000".into(),
            meter_id: MeterId::parse("m-1").unwrap(),
            kind: FindingKind::Tamper,
            status,
            opened_at: Timestamp::from_millis(1_764_000_000_000),
            last_seen: Timestamp::from_millis(1_764_003_600_000),
            closed_at: (status == FindingStatus::Closed)
                .then(|| Timestamp::from_millis(1_764_007_200_000)),
            score: 3.0,
            from: Timestamp::from_millis(1_763_990_000_000),
            to: Timestamp::from_millis(1_763_999_000_000),
            explanation: "tamper".into(),
        }
    }

    #[test]
    fn an_open_finding_is_in_the_open_index_and_a_closed_one_expires_instead() {
        let open = finding(FindingStatus::Open);
        let item = encode(&open, 90).unwrap();
        assert_eq!(item.get("open"), Some(&s("open")));
        assert_eq!(item.get("open_key"), Some(&s("m-1#tamper:001764000000000")));
        assert!(!item.contains_key("expires_at"));
        assert_eq!(decode(&item, "t").unwrap(), open);
        let closed = finding(FindingStatus::Closed);
        let item = encode(&closed, 90).unwrap();
        assert!(!item.contains_key("open") && !item.contains_key("open_key"));
        assert_eq!(
            item.get("expires_at"),
            Some(&n(1_764_007_200 + 90 * 86_400))
        );
        assert_eq!(decode(&item, "t").unwrap(), closed);
    }
}
