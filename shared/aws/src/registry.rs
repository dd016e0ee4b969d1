//! [`MeterRegistry`] on the meters table: one item per meter, and the sparse GSI `by_feeder`
//! (only meters with a `feeder_id` appear in it) to list a feeder's consumers.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use meter_core::ports::{MeterPage, MeterRegistry};
use meter_core::registry::{check_feeder, parse_timezone};
use meter_core::{MeterId, MeterInfo, MeterKind, StoreError};

use crate::error::store_error;
use crate::item::{f, s, Fields, Item};
use crate::ops::{page_limit, put_result, query_pages, Put};

/// The partition key attribute.
const PK: &str = "meter_id";

/// The GSI listing meters by feeder: partition key `feeder_id`, sort key `meter_id`.
pub const BY_FEEDER_INDEX: &str = "by_feeder";

/// The meter registry in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoMeterRegistry {
    client: Client,
    table: String,
}

impl DynamoMeterRegistry {
    /// An adapter on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get_consistent(&self, meter: &MeterId) -> Result<Option<MeterInfo>, StoreError> {
        let key = HashMap::from([(PK.to_owned(), s(meter.as_str()))]);
        crate::ops::get_consistent(&self.client, &self.table, key, decode).await
    }

    /// Refuses `info` if it names a feeder not registered as a feeder meter
    /// ([`check_feeder`]). A consistent read, then the write: meters are never deleted, so a
    /// feeder found registered is still registered when the write lands, without the cost of a
    /// transaction.
    async fn check_feeder(&self, info: &MeterInfo) -> Result<(), StoreError> {
        let feeder = match &info.feeder_id {
            Some(f) => self.get_consistent(f).await?,
            None => None,
        };
        check_feeder(info, feeder.as_ref())
    }
}

#[async_trait]
impl MeterRegistry for DynamoMeterRegistry {
    async fn get(&self, meter: &MeterId) -> Result<Option<MeterInfo>, StoreError> {
        self.get_consistent(meter).await
    }

    async fn upsert(&self, info: &MeterInfo) -> Result<(), StoreError> {
        self.check_feeder(info).await?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(info)?))
            .send()
            .await
            .map_err(|e| store_error("PutItem", &self.table, e))?;
        tracing::debug!(table = %self.table, meter_id = %info.meter_id, "meter upserted");
        Ok(())
    }

    async fn register_if_absent(&self, info: &MeterInfo) -> Result<MeterInfo, StoreError> {
        if info.feeder_id.is_some() {
            // An existing record is returned as it is, whatever the new one names; only a
            // write is checked. (Without a feeder there is nothing to check, and the
            // conditional put alone answers: ingest's auto-registration stays one request.)
            if let Some(existing) = self.get_consistent(&info.meter_id).await? {
                return Ok(existing);
            }
            self.check_feeder(info).await?;
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(info)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put_result(&self.table, result)? {
            Put::Written => {
                tracing::info!(table = %self.table, meter_id = %info.meter_id, "meter registered");
                Ok(info.clone())
            }
            Put::Refused(Some(old)) if !old.is_empty() => decode(&old, &self.table),
            Put::Refused(_) => self.get_consistent(&info.meter_id).await?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "table {}: meter {} exists by condition but cannot be read",
                    self.table, info.meter_id
                ))
            }),
        }
    }

    async fn by_feeder(&self, feeder: &MeterId) -> Result<Vec<MeterInfo>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_FEEDER_INDEX)
            .key_condition_expression("#f = :f")
            .expression_attribute_names("#f", "feeder_id")
            .expression_attribute_values(":f", s(feeder.as_str()));
        query_pages(&self.table, q, None, decode).await
    }

    /// A `Scan` page: the one request path that reads the whole table, for jobs that visit
    /// every meter once a day (see `docs/data-model.md`). The cursor is the page's
    /// `LastEvaluatedKey`, which on this table is just the meter id.
    async fn list(&self, after: Option<&MeterId>, limit: usize) -> Result<MeterPage, StoreError> {
        let start = after.map(|m| HashMap::from([(PK.to_owned(), s(m.as_str()))]));
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .limit(page_limit(limit))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Scan", &self.table, e))?;
        let meters = page
            .items
            .unwrap_or_default()
            .iter()
            .map(|i| decode(i, &self.table))
            .collect::<Result<Vec<_>, _>>()?;
        let next = page
            .last_evaluated_key
            .and_then(|k| match k.get(PK) {
                Some(AttributeValue::S(id)) => Some(MeterId::parse(id)),
                _ => None,
            })
            .transpose()
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "table {}: a page ends at a bad meter id",
                    self.table
                ))
            })?;
        Ok(MeterPage { meters, next })
    }
}

fn encode(m: &MeterInfo) -> Result<Item, StoreError> {
    let mut item = HashMap::from([
        (PK.to_owned(), s(m.meter_id.as_str())),
        ("kind".to_owned(), s(m.kind.as_str())),
        ("timezone".to_owned(), s(m.timezone.name())),
    ]);
    if let Some(feeder) = &m.feeder_id {
        item.insert("feeder_id".into(), s(feeder.as_str()));
    }
    if let Some(kw) = m.contracted_kw {
        item.insert("contracted_kw".into(), f("contracted_kw", kw)?);
    }
    if let Some(location) = &m.location {
        item.insert("location".into(), s(location.as_str()));
    }
    if let Some(tariff) = &m.tariff_id {
        item.insert("tariff_id".into(), s(tariff.as_str()));
    }
    Ok(item)
}

fn decode(item: &Item, table: &str) -> Result<MeterInfo, StoreError> {
    let f = Fields::new(item, table);
    let meter_id = |v: &str| MeterId::parse(v).ok();
    Ok(MeterInfo {
        meter_id: f.parsed(PK, "a meter id", meter_id)?,
        kind: f.parsed("kind", "consumer or feeder", MeterKind::parse)?,
        feeder_id: f.opt_parsed("feeder_id", "a meter id", meter_id)?,
        contracted_kw: f.opt_n("contracted_kw")?,
        location: f.opt_s("location")?.map(str::to_owned),
        tariff_id: f.opt_s("tariff_id")?.map(str::to_owned),
        timezone: f.parsed("timezone", "an IANA time zone", parse_timezone)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_round_trips_through_its_item() {
        let mut m = MeterInfo::new_consumer(
            MeterId::parse("c-1").unwrap(),
            parse_timezone("Australia/Sydney").unwrap(),
        );
        assert_eq!(decode(&encode(&m).unwrap(), "t").unwrap(), m);
        m.feeder_id = Some(MeterId::parse("f-1").unwrap());
        m.contracted_kw = Some(7.5);
        m.location = Some("pole 17".into());
        m.tariff_id = Some("tou-2026".into());
        let item = encode(&m).unwrap();
        assert_eq!(item.get("timezone"), Some(&s("Australia/Sydney")));
        assert_eq!(decode(&item, "t").unwrap(), m);
    }
}
