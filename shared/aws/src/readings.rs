//! [`ReadingStore`] on the readings table.
//!
//! One partition per meter. A reading is the item `T#<ts ms, 15 digits>`; a meter's `seq` is made
//! unique by a guard item `S#<seq, 20 digits>` holding the timestamp of the reading that owns it.
//! Both are written with `attribute_not_exists`, the guard first, so a reused `seq` is caught
//! before its reading is written and a retry after a crash between the two puts finds its own
//! guard (same timestamp) and carries on.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt};
use meter_core::ports::ReadingStore;
use meter_core::{
    Energy, InsertOutcome, MeterId, MeterStatus, Reading, RelayState, StoreError, Timestamp,
};

use crate::config::{expires_at, Retention};
use crate::error::store_error;
use crate::item::{check_key_ms, f, ms_key, n, s, Fields, Item, MAX_KEY_MS};
use crate::ops::{put_result, query_pages, Put};

/// How many meters of one batch are written at once. Readings of one meter are written in order
/// (so the first of two equal readings wins); different meters do not interfere.
const METER_CONCURRENCY: usize = 16;

/// The partition key attribute.
const PK: &str = "meter_id";

/// The sort key of a reading.
pub fn reading_sk(ts: Timestamp) -> String {
    format!("T#{}", ms_key(ts.millis()))
}

/// The sort key of a seq guard.
pub fn seq_guard_sk(seq: u64) -> String {
    format!("S#{seq:020}")
}

/// Readings in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoReadingStore {
    client: Client,
    table: String,
    retention_days: u32,
}

impl DynamoReadingStore {
    /// An adapter on `table`; items expire `retention.reading_days` after their timestamp.
    pub fn new(client: Client, table: impl Into<String>, retention: &Retention) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days: retention.reading_days,
        }
    }

    fn key(meter: &MeterId, sk: String) -> Item {
        HashMap::from([(PK.to_owned(), s(meter.as_str())), ("sk".to_owned(), s(sk))])
    }

    /// Stores one reading: seq guard first, then the reading.
    async fn insert_one(&self, r: &Reading) -> Result<InsertOutcome, StoreError> {
        let expires = expires_at(r.ts.millis(), self.retention_days);
        if let Some(seq) = r.seq {
            let mut guard = Self::key(&r.meter_id, seq_guard_sk(seq));
            guard.insert("ts".into(), n(r.ts.millis()));
            guard.insert("expires_at".into(), n(expires));
            if let Put::Refused(old) = self.put_if_absent(guard).await? {
                let owner = match old {
                    Some(item) if !item.is_empty() => Fields::new(&item, &self.table).n("ts")?,
                    _ => self.guard_owner(&r.meter_id, seq).await?,
                };
                if owner != r.ts.millis() {
                    // Same precedence as every other store: an existing timestamp wins over a
                    // reused seq.
                    return Ok(if self.reading_exists(&r.meter_id, r.ts).await? {
                        InsertOutcome::DuplicateTimestamp
                    } else {
                        InsertOutcome::DuplicateSeq
                    });
                }
                // The guard is ours: an earlier attempt stopped before writing the reading.
            }
        }
        match self.put_if_absent(encode(r, expires)?).await? {
            Put::Written => Ok(InsertOutcome::Stored),
            Put::Refused(old) => {
                if let Some(seq) = r.seq {
                    let old_seq = match old {
                        Some(item) if !item.is_empty() => {
                            Fields::new(&item, &self.table).opt_n("seq")?
                        }
                        _ => self.stored_seq(&r.meter_id, r.ts).await?,
                    };
                    if old_seq != Some(seq) {
                        // The timestamp is taken by another reading, so this seq stays free.
                        self.release_guard(&r.meter_id, seq, r.ts).await?;
                    }
                }
                Ok(InsertOutcome::DuplicateTimestamp)
            }
        }
    }

    async fn put_if_absent(&self, item: Item) -> Result<Put, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        put_result(&self.table, result)
    }

    /// The timestamp a seq guard points at (fallback when the conflict did not return it).
    async fn guard_owner(&self, meter: &MeterId, seq: u64) -> Result<i64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(meter, seq_guard_sk(seq))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", &self.table, e))?;
        match out.item {
            Some(item) => Fields::new(&item, &self.table).n("ts"),
            // Released between our put and this read: treat it as someone else's.
            None => Ok(-1),
        }
    }

    /// The key attributes and `seq` of the reading at `ts`, if there is one.
    async fn get_reading_key(
        &self,
        meter: &MeterId,
        ts: Timestamp,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(meter, reading_sk(ts))))
            .consistent_read(true)
            .projection_expression("#pk, #seq")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#seq", "seq")
            .send()
            .await
            .map_err(|e| store_error("GetItem", &self.table, e))?;
        Ok(out.item.filter(|i| !i.is_empty()))
    }

    async fn reading_exists(&self, meter: &MeterId, ts: Timestamp) -> Result<bool, StoreError> {
        Ok(self.get_reading_key(meter, ts).await?.is_some())
    }

    /// The `seq` of the reading stored at `ts` (fallback when the conflict did not return it).
    async fn stored_seq(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<u64>, StoreError> {
        match self.get_reading_key(meter, ts).await? {
            Some(item) => Fields::new(&item, &self.table).opt_n("seq"),
            None => Ok(None),
        }
    }

    /// Deletes the guard of `seq` if it still points at `ts`.
    async fn release_guard(
        &self,
        meter: &MeterId,
        seq: u64,
        ts: Timestamp,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(meter, seq_guard_sk(seq))))
            .condition_expression("#ts = :ts")
            .expression_attribute_names("#ts", "ts")
            .expression_attribute_values(":ts", n(ts.millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error("DeleteItem", &self.table, e)),
        }
    }

    /// Readings of `meter` with sort keys in `lo..=hi`.
    async fn query(
        &self,
        meter: &MeterId,
        lo: String,
        hi: String,
        forward: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Reading>, StoreError> {
        let mut q =
            crate::ops::query_sk_between(&self.client, &self.table, PK, meter.as_str(), lo, hi)
                .scan_index_forward(forward);
        if let Some(l) = limit {
            q = q.limit(crate::ops::page_limit(l));
        }
        query_pages(&self.table, q, limit, decode).await
    }
}

#[async_trait]
impl ReadingStore for DynamoReadingStore {
    async fn insert(&self, readings: &[Reading]) -> Result<Vec<InsertOutcome>, StoreError> {
        for r in readings {
            check_key_ms("reading", r.ts.millis())?;
        }
        // Group by meter, keeping each meter's readings in input order.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group_of: HashMap<&MeterId, usize> = HashMap::new();
        for (i, r) in readings.iter().enumerate() {
            let g = *group_of.entry(&r.meter_id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        let results: Vec<Result<Vec<(usize, InsertOutcome)>, StoreError>> = stream::iter(groups)
            .map(|indices| async move {
                let mut out = Vec::with_capacity(indices.len());
                for i in indices {
                    out.push((i, self.insert_one(&readings[i]).await?));
                }
                Ok(out)
            })
            .buffer_unordered(METER_CONCURRENCY)
            .collect()
            .await;
        let mut outcomes = vec![InsertOutcome::Stored; readings.len()];
        for group in results {
            for (i, outcome) in group? {
                outcomes[i] = outcome;
            }
        }
        let duplicates = outcomes.iter().filter(|o| o.is_duplicate()).count();
        tracing::debug!(
            table = %self.table,
            readings = readings.len(),
            duplicates,
            "readings inserted"
        );
        Ok(outcomes)
    }

    async fn range(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reading>, StoreError> {
        if from > to || to.millis() < 0 || from.millis() > MAX_KEY_MS {
            return Ok(Vec::new());
        }
        self.query(meter, reading_sk(from), reading_sk(to), true, None)
            .await
    }

    async fn before(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError> {
        if ts.millis() <= 0 {
            return Ok(None);
        }
        let lo = reading_sk(Timestamp::from_millis(0));
        let hi = reading_sk(ts.add_millis(-1));
        Ok(self.query(meter, lo, hi, false, Some(1)).await?.pop())
    }

    async fn after(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError> {
        if ts.millis() >= MAX_KEY_MS {
            return Ok(None);
        }
        let lo = reading_sk(ts.add_millis(1));
        let hi = reading_sk(Timestamp::from_millis(MAX_KEY_MS));
        Ok(self.query(meter, lo, hi, true, Some(1)).await?.pop())
    }
}

/// A reading as an item.
fn encode(r: &Reading, expires: i64) -> Result<Item, StoreError> {
    let mut item = DynamoReadingStore::key(&r.meter_id, reading_sk(r.ts));
    item.insert("ts".into(), n(r.ts.millis()));
    if let Some(seq) = r.seq {
        item.insert("seq".into(), n(seq));
    }
    item.insert("received_ms".into(), n(r.received.millis()));
    item.insert("e_imp".into(), n(r.energy_import.mwh()));
    if let Some(e) = r.energy_export {
        item.insert("e_exp".into(), n(e.mwh()));
    }
    for (name, value) in [
        ("power_w", r.power_w),
        ("voltage_v", r.voltage_v),
        ("current_a", r.current_a),
        ("power_factor", r.power_factor),
        ("frequency_hz", r.frequency_hz),
    ] {
        if let Some(v) = value {
            item.insert(name.into(), f(name, v)?);
        }
    }
    item.insert("status".into(), s(r.status.as_str()));
    if let Some(relay) = r.relay {
        item.insert("relay".into(), s(relay.as_str()));
    }
    item.insert("expires_at".into(), n(expires));
    Ok(item)
}

/// An item as a reading.
fn decode(item: &Item, table: &str) -> Result<Reading, StoreError> {
    let f = Fields::new(item, table);
    Ok(Reading {
        meter_id: f.parsed(PK, "a meter id", |v| MeterId::parse(v).ok())?,
        ts: Timestamp::from_millis(f.n("ts")?),
        seq: f.opt_n("seq")?,
        received: Timestamp::from_millis(f.n("received_ms")?),
        energy_import: Energy::from_mwh(f.n("e_imp")?),
        energy_export: f.opt_n("e_exp")?.map(Energy::from_mwh),
        power_w: f.opt_n("power_w")?,
        voltage_v: f.opt_n("voltage_v")?,
        current_a: f.opt_n("current_a")?,
        power_factor: f.opt_n("power_factor")?,
        frequency_hz: f.opt_n("frequency_hz")?,
        status: MeterStatus::parse(f.s("status")?),
        relay: f.opt_parsed("relay", "closed or open", RelayState::parse)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading() -> Reading {
        Reading {
            meter_id: MeterId::parse("m-1").unwrap(),
            ts: Timestamp::from_millis(1_700_000_000_000),
            seq: Some(42),
            received: Timestamp::from_millis(1_700_000_000_500),
            energy_import: Energy::from_mwh(12_345_678),
            energy_export: Some(Energy::from_mwh(5)),
            power_w: Some(1234.5),
            voltage_v: Some(231.2),
            current_a: None,
            power_factor: Some(-0.97),
            frequency_hz: Some(50.01),
            status: MeterStatus::Other("low_battery".into()),
            relay: Some(RelayState::Open),
        }
    }

    #[test]
    fn a_reading_round_trips_through_its_item() {
        let r = reading();
        let item = encode(&r, 99).unwrap();
        assert_eq!(item.get("sk"), Some(&s("T#001700000000000")));
        assert_eq!(item.get("expires_at"), Some(&n(99)));
        assert!(!item.contains_key("current_a"));
        assert_eq!(decode(&item, "t").unwrap(), r);
    }

    #[test]
    fn guard_keys_never_fall_inside_reading_key_ranges() {
        assert_eq!(seq_guard_sk(7), "S#00000000000000000007");
        let (lo, hi) = (
            reading_sk(Timestamp::from_millis(0)),
            reading_sk(Timestamp::from_millis(i64::MAX)),
        );
        assert!(seq_guard_sk(u64::MAX) < lo || seq_guard_sk(u64::MAX) > hi);
        assert!(seq_guard_sk(0) < lo || seq_guard_sk(0) > hi);
    }
}
