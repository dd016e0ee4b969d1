//! [`AggregateStore`] on the aggregates table: one partition per meter holding its hourly,
//! daily and monthly buckets (sort key [`Period::key`], so each granularity is one contiguous,
//! time-ordered key range) and the item `VERSION`, the meter's recompute counter.
//!
//! A bucket is only replaced by a higher version (`attribute_not_exists(version) OR version <
//! :v`); a refused write means a newer recompute already stored its view, which is not an error.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;
use futures::stream::{self, TryStreamExt};
use meter_core::ports::AggregateStore;
use meter_core::{Aggregate, Energy, MeterId, Period, StoreError};

use crate::error::store_error;
use crate::item::{check_key_ms, ms_key, n, s, Fields, Item};
use crate::ops::{put_result, query_pages, Put};

/// The partition key attribute.
const PK: &str = "meter_id";

/// The sort key of the per-meter version counter. It sorts apart from every `H#`, `D#` and `M#`
/// key, so no aggregate range query ever returns it.
pub const VERSION_SK: &str = "VERSION";

/// How many bucket writes are in flight at once.
const WRITE_CONCURRENCY: usize = 16;

/// Aggregates in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoAggregateStore {
    client: Client,
    table: String,
}

impl DynamoAggregateStore {
    /// An adapter on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn put_one(&self, a: &Aggregate) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(a)?))
            .condition_expression("attribute_not_exists(#ver) OR #ver < :v")
            .expression_attribute_names("#ver", "version")
            .expression_attribute_values(":v", n(a.version))
            .send()
            .await;
        if let Put::Refused(_) = put_result(&self.table, result)? {
            tracing::debug!(
                table = %self.table,
                meter_id = %a.meter_id,
                period = %a.period,
                version = a.version,
                "aggregate already has a newer version"
            );
        }
        Ok(())
    }
}

#[async_trait]
impl AggregateStore for DynamoAggregateStore {
    async fn next_version(&self, meter: &MeterId) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(meter.as_str()))
            .key("sk", s(VERSION_SK))
            .update_expression("ADD #v :one")
            .expression_attribute_names("#v", "v")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", &self.table, e))?;
        let attributes = out.attributes.unwrap_or_default();
        Fields::new(&attributes, &self.table).n("v")
    }

    async fn put(&self, aggregates: &[Aggregate]) -> Result<(), StoreError> {
        // Keep one write per bucket (the first of the highest version), so the outcome does not
        // depend on which of two concurrent writes lands first.
        let mut best: HashMap<(&MeterId, Period), &Aggregate> = HashMap::new();
        for a in aggregates {
            best.entry((&a.meter_id, a.period))
                .and_modify(|b| {
                    if a.version > b.version {
                        *b = a;
                    }
                })
                .or_insert(a);
        }
        stream::iter(best.into_values().map(Ok))
            .try_for_each_concurrent(WRITE_CONCURRENCY, |a| self.put_one(a))
            .await
    }

    async fn range(
        &self,
        meter: &MeterId,
        from: Period,
        to: Period,
    ) -> Result<Vec<Aggregate>, StoreError> {
        let (lo, hi) = (bound_key(&from), bound_key(&to));
        if from.granularity() != to.granularity() || from > to || lo > hi {
            return Ok(Vec::new());
        }
        let q = crate::ops::query_sk_between(&self.client, &self.table, PK, meter.as_str(), lo, hi);
        query_pages(&self.table, q, None, decode).await
    }
}

/// A period's key as a query bound, with hour starts clamped into the storable range.
fn bound_key(p: &Period) -> String {
    match p {
        Period::Hour(t) => format!("H#{}", ms_key(t.millis())),
        other => other.key(),
    }
}

fn encode(a: &Aggregate) -> Result<Item, StoreError> {
    if let Period::Hour(t) = a.period {
        check_key_ms("aggregate hour", t.millis())?;
    }
    Ok(HashMap::from([
        (PK.to_owned(), s(a.meter_id.as_str())),
        ("sk".to_owned(), s(a.period.key())),
        ("measured".to_owned(), n(a.measured.mwh())),
        ("estimated".to_owned(), n(a.estimated.mwh())),
        ("readings".to_owned(), n(a.readings)),
        ("resets".to_owned(), n(a.resets)),
        ("version".to_owned(), n(a.version)),
    ]))
}

fn decode(item: &Item, table: &str) -> Result<Aggregate, StoreError> {
    let f = Fields::new(item, table);
    Ok(Aggregate {
        meter_id: f.parsed(PK, "a meter id", |v| MeterId::parse(v).ok())?,
        period: f.parsed("sk", "a period key", Period::parse_key)?,
        measured: Energy::from_mwh(f.n("measured")?),
        estimated: Energy::from_mwh(f.n("estimated")?),
        readings: f.n("readings")?,
        resets: f.n("resets")?,
        version: f.n("version")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use meter_core::Timestamp;

    #[test]
    fn an_aggregate_round_trips_through_its_item() {
        let mut a = Aggregate::empty(
            MeterId::parse("m").unwrap(),
            Period::Hour(Timestamp::from_millis(1_700_000_000_000)),
            9,
        );
        a.measured = Energy::from_mwh(1_000_000);
        a.estimated = Energy::from_mwh(-3);
        a.readings = 4;
        a.resets = 1;
        let item = encode(&a).unwrap();
        assert_eq!(item.get("sk"), Some(&s("H#001700000000000")));
        assert!(!item.contains_key("expires_at"));
        assert_eq!(decode(&item, "t").unwrap(), a);
    }

    #[test]
    fn the_version_item_sorts_outside_every_bucket_range() {
        for prefix in ["H#", "D#", "M#"] {
            let lo = prefix.to_owned();
            let hi = format!("{prefix}\u{10FFFF}");
            assert!(!(lo.as_str() <= VERSION_SK && VERSION_SK <= hi.as_str()));
        }
        assert_eq!(
            bound_key(&Period::Hour(Timestamp::from_millis(-1))),
            "H#000000000000000"
        );
    }
}
