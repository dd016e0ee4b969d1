//! [`EventStore`] on the events table: one partition per meter, sort key [`MeterEvent::key`]
//! (timestamp then kind), written once with `attribute_not_exists`. The table's stream
//! (`NEW_IMAGE`) feeds the alerts function, so a redelivered event, refused by its condition,
//! never alerts twice.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use futures::stream::{self, TryStreamExt};
use meter_core::ports::EventStore;
use meter_core::{EventKind, MeterEvent, MeterId, StoreError, Timestamp};

use crate::config::{expires_at, Retention};
use crate::item::{check_key_ms, f, ms_key, n, s, Fields, Item};
use crate::ops::{put_result, query_pages, Put};

/// The partition key attribute.
const PK: &str = "meter_id";

/// How many event writes are in flight at once.
const WRITE_CONCURRENCY: usize = 16;

/// Events in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
    retention_days: u32,
}

impl DynamoEventStore {
    /// An adapter on `table`; events expire `retention.event_days` after their timestamp.
    pub fn new(client: Client, table: impl Into<String>, retention: &Retention) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days: retention.event_days,
        }
    }

    async fn publish_one(&self, e: &MeterEvent) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(e, self.retention_days)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match put_result(&self.table, result)? {
            Put::Written => tracing::info!(
                table = %self.table,
                meter_id = %e.meter_id,
                kind = %e.kind,
                ts = %e.ts,
                "event published"
            ),
            Put::Refused(_) => tracing::debug!(
                table = %self.table,
                meter_id = %e.meter_id,
                kind = %e.kind,
                ts = %e.ts,
                "event already recorded"
            ),
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn publish(&self, events: &[MeterEvent]) -> Result<(), StoreError> {
        // The first of two events with one key wins, as it would if they came one call apart.
        let mut seen = HashSet::new();
        let firsts: Vec<&MeterEvent> = events
            .iter()
            .filter(|e| seen.insert((&e.meter_id, e.key())))
            .collect();
        stream::iter(firsts.into_iter().map(Ok))
            .try_for_each_concurrent(WRITE_CONCURRENCY, |e| self.publish_one(e))
            .await
    }

    async fn for_meter(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<MeterEvent>, StoreError> {
        if from > to || to.millis() < 0 {
            return Ok(Vec::new());
        }
        // Every key of a timestamp is `<ts>#<kind>`, and `$` sorts right after `#`.
        let lo = ms_key(from.millis());
        let hi = format!("{}$", ms_key(to.millis()));
        let q = crate::ops::query_sk_between(&self.client, &self.table, PK, meter.as_str(), lo, hi);
        query_pages(&self.table, q, None, decode).await
    }
}

/// An event as an item, expiring `retention_days` after its timestamp.
fn encode(e: &MeterEvent, retention_days: u32) -> Result<Item, StoreError> {
    check_key_ms("event", e.ts.millis())?;
    let mut item = HashMap::from([
        (PK.to_owned(), s(e.meter_id.as_str())),
        ("sk".to_owned(), s(e.key())),
        ("kind".to_owned(), s(e.kind.as_str())),
        ("ts".to_owned(), n(e.ts.millis())),
        ("detail".to_owned(), s(e.detail.as_str())),
        (
            "expires_at".to_owned(),
            n(expires_at(e.ts.millis(), retention_days)),
        ),
    ]);
    if let Some(v) = e.value {
        item.insert("value".into(), f("value", v)?);
    }
    Ok(item)
}

fn decode(item: &Item, table: &str) -> Result<MeterEvent, StoreError> {
    let f = Fields::new(item, table);
    Ok(MeterEvent {
        meter_id: f.parsed(PK, "a meter id", |v| MeterId::parse(v).ok())?,
        ts: Timestamp::from_millis(f.n("ts")?),
        kind: f.parsed("kind", "an event kind", EventKind::parse)?,
        value: f.opt_n("value")?,
        detail: f.s("detail")?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_through_its_item() {
        let e = MeterEvent {
            meter_id: MeterId::parse("m").unwrap(),
            ts: Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::VoltageLow,
            value: Some(198.5),
            detail: "voltage 198.5 V is below 207.0 V".into(),
        };
        let item = encode(&e, 400).unwrap();
        assert_eq!(item.get("sk"), Some(&s("001700000000000#voltage_low")));
        assert_eq!(
            item.get("expires_at"),
            Some(&n(1_700_000_000 + 400 * 86_400))
        );
        assert_eq!(decode(&item, "t").unwrap(), e);
        assert!(format!("{}#", ms_key(1)) < format!("{}$", ms_key(1)));
    }
}
