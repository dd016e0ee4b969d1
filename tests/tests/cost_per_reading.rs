//! Measures the DynamoDB work ingest does per reading, on moto, through the real adapters: every
//! request the SDK client sends is seen by an interceptor that counts calls and computes the
//! request units DynamoDB would bill for it from the items themselves (DynamoDB's item-size
//! rules: 1 write unit per started KB written, 1 read unit per started 4 KB read strongly
//! consistent; a conditional write that is refused still costs its write units).
//!
//! The cost model (`meter_core::cost`, `meterflow cost`, `docs/cost.md`) takes these figures as
//! its measured inputs; the test fails when they drift from the constants there, so a change in
//! the adapters that makes ingest dearer shows up here first. Run it alone with
//! `cargo nextest run -p meterflow-tests --test cost_per_reading --no-capture` to see the table.
//!
//! Like the conformance suite, it skips without `AWS_ENDPOINT_URL` (moto), except under `CI`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use meter_aws::{Retention, Tables};
use meter_core::cost::{IngestWork, MEASURED};
use meter_core::telemetry::MessageContext;
use meter_core::{Inbound, IngestConfig, Ingestor, MeterInfo, Timestamp};
use meterflow_tests::fixtures::{batch_payload, day_series, payload, topic, T0};
use meterflow_tests::moto::{skip_without_moto, unique_prefix};

/// DynamoDB's size of a number: 1 byte per two significant digits, plus 1.
fn number_size(n: &str) -> u64 {
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1) as u64;
    significant.div_ceil(2) + 1
}

fn value_size(v: &AttributeValue) -> u64 {
    match v {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value_size(x)).sum::<u64>(),
        AttributeValue::M(m) => 3 + item_size(m) + m.len() as u64,
        other => format!("{other:?}").len() as u64,
    }
}

/// An item's size as DynamoDB bills it: attribute names plus values.
fn item_size(item: &HashMap<String, AttributeValue>) -> u64 {
    item.iter()
        .map(|(k, v)| k.len() as u64 + value_size(v))
        .sum()
}

/// What one table saw.
#[derive(Debug, Default, Clone)]
struct TableWork {
    calls: BTreeMap<&'static str, u64>,
    write_units: u64,
    read_units: u64,
    /// Items written by PutItem/BatchWriteItem that did not exist before, and their bytes.
    put_bytes: u64,
    puts: u64,
}

/// Counts every DynamoDB request of the client it is attached to.
#[derive(Debug, Default, Clone)]
struct Meter {
    tables: Arc<Mutex<BTreeMap<String, TableWork>>>,
}

impl Meter {
    fn record(&self, table: &str, f: impl FnOnce(&mut TableWork)) {
        let mut t = self.tables.lock().unwrap();
        f(t.entry(table.to_owned()).or_default());
    }

    fn take(&self) -> BTreeMap<String, TableWork> {
        std::mem::take(&mut *self.tables.lock().unwrap())
    }
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "request-unit meter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        if let Some(put) = input.downcast_ref::<PutItemInput>() {
            let size = put.item().map_or(0, item_size);
            self.record(put.table_name().unwrap_or(""), |t| {
                *t.calls.entry("PutItem").or_default() += 1;
                t.write_units += size.div_ceil(1024).max(1);
                t.put_bytes += size;
                t.puts += 1;
            });
        } else if let Some(batch) = input.downcast_ref::<BatchWriteItemInput>() {
            for (table, requests) in batch.request_items().into_iter().flatten() {
                self.record(table, |t| {
                    *t.calls.entry("BatchWriteItem").or_default() += 1;
                    for r in requests {
                        let size = r.put_request().map_or(0, |p| item_size(p.item()));
                        t.write_units += size.div_ceil(1024).max(1);
                        t.put_bytes += size;
                        t.puts += 1;
                    }
                });
            }
        } else if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
            // The only update is the per-meter version counter: a key and one number.
            let size = update.key().map_or(0, item_size) + 2 + 8;
            self.record(update.table_name().unwrap_or(""), |t| {
                *t.calls.entry("UpdateItem").or_default() += 1;
                t.write_units += size.div_ceil(1024).max(1);
            });
        } else if let Some(delete) = input.downcast_ref::<DeleteItemInput>() {
            self.record(delete.table_name().unwrap_or(""), |t| {
                *t.calls.entry("DeleteItem").or_default() += 1;
                t.write_units += 1;
            });
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Reads are billed on what comes back. The input (and with it the table name) is gone
        // by now, so reads are booked together; the model needs only their sum.
        let Some(Ok(output)) = context.output_or_error() else {
            return Ok(());
        };
        let table = "(reads, all tables)";
        if let Some(q) = output.downcast_ref::<QueryOutput>() {
            let bytes: u64 = q.items().iter().map(item_size).sum();
            self.record(table, |t| {
                *t.calls.entry("Query").or_default() += 1;
                t.read_units += bytes.div_ceil(4096).max(1);
            });
        } else if let Some(g) = output.downcast_ref::<GetItemOutput>() {
            let bytes = g.item().map_or(0, item_size);
            self.record(table, |t| {
                *t.calls.entry("GetItem").or_default() += 1;
                t.read_units += bytes.div_ceil(4096).max(1);
            });
        }
        Ok(())
    }
}

/// Meters per run. One is enough: the figures are per reading, every meter does the same work
/// (messages carry one meter's readings), and moto is slow.
const METERS: usize = 1;

/// Readings per meter for a batching: a day of quarter hours, or two messages when a message
/// carries a whole day, so every hour, day and month bucket is refreshed many times.
fn readings_per_meter(per_message: usize) -> usize {
    96.max(2 * per_message)
}

/// Ingests `METERS` × [`readings_per_meter`] readings (every field set, with `seq`), in messages of
/// `per_message` readings of one meter, and returns the measured work.
async fn measure(per_message: usize) -> (IngestWork, BTreeMap<String, TableWork>) {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let meter = Meter::default();
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(meter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    let tables = Tables::with_prefix(&unique_prefix("cost"));
    meter_aws::create_tables(&client, &tables).await.unwrap();
    let ports = meter_aws::dynamo_ports(client, &tables, &Retention::default()).await;
    let ids: Vec<String> = (0..METERS).map(|m| format!("cost-meter-{m}")).collect();
    for id in &ids {
        let info = MeterInfo::new_consumer(
            meter_core::MeterId::parse(id).unwrap(),
            chrono_tz::Australia::Sydney,
        );
        ports.registry.upsert(&info).await.unwrap();
    }
    let ingestor = Ingestor::new(ports, IngestConfig::default());
    meter.take(); // only ingest's own requests count

    let mut messages = 0u64;
    let mut readings = 0u64;
    for id in &ids {
        let mut series = day_series(id, T0, 100.0, readings_per_meter(per_message));
        for (i, r) in series.iter_mut().enumerate() {
            r.seq = Some(i as u64 + 1);
        }
        let topic = topic(id);
        for chunk in series.chunks(per_message) {
            let body = if per_message == 1 {
                payload(&chunk[0])
            } else {
                batch_payload(chunk)
            };
            let last = chunk.last().unwrap();
            let inbound = Inbound {
                payload: &body,
                ctx: MessageContext {
                    topic: Some(&topic),
                    received: Timestamp::from_millis(last.ts.millis() + 60_000),
                },
            };
            let report = ingestor.ingest(&[inbound]).await.unwrap();
            assert_eq!(report.stored, chunk.len() as u64, "{report:?}");
            messages += 1;
            readings += chunk.len() as u64;
        }
    }
    let seen = meter.take();
    let total = |f: fn(&TableWork) -> u64| seen.values().map(f).sum::<u64>() as f64;
    let calls = total(|t| t.calls.values().sum());
    let readings_table = &seen[&tables.readings];
    let aggregates_table = seen.get(&tables.aggregates).cloned().unwrap_or_default();
    let work = IngestWork {
        readings_per_message: per_message as f64,
        write_units_per_reading: total(|t| t.write_units) / readings as f64,
        read_units_per_reading: total(|t| t.read_units) / readings as f64,
        requests_per_message: calls / messages as f64,
        // Reading item + seq guard per reading (every put on the readings table is one of them).
        stored_items_per_reading: readings_table.puts as f64 / readings as f64,
        stored_bytes_per_reading: readings_table.put_bytes as f64 / readings as f64,
        aggregate_item_bytes: aggregates_table.put_bytes as f64
            / aggregates_table.puts.max(1) as f64,
    };
    (work, seen)
}

fn print(label: &str, work: &IngestWork, seen: &BTreeMap<String, TableWork>) {
    eprintln!("{label}: {work:?}");
    for (table, t) in seen {
        eprintln!(
            "    {table}: calls {:?}, WCU {}, RCU {}",
            t.calls, t.write_units, t.read_units
        );
    }
}

/// The measured figures must stay within 2 % of the model's constants (they are deterministic
/// for a given adapter, so a larger change means the adapters changed: re-measure and update
/// `MEASURED` in shared/core/src/cost.rs and docs/cost.md).
fn assert_close(measured: &IngestWork, constant: &IngestWork) {
    let pairs = [
        (
            "write_units_per_reading",
            measured.write_units_per_reading,
            constant.write_units_per_reading,
        ),
        (
            "read_units_per_reading",
            measured.read_units_per_reading,
            constant.read_units_per_reading,
        ),
        (
            "requests_per_message",
            measured.requests_per_message,
            constant.requests_per_message,
        ),
        (
            "stored_items_per_reading",
            measured.stored_items_per_reading,
            constant.stored_items_per_reading,
        ),
        (
            "stored_bytes_per_reading",
            measured.stored_bytes_per_reading,
            constant.stored_bytes_per_reading,
        ),
        (
            "aggregate_item_bytes",
            measured.aggregate_item_bytes,
            constant.aggregate_item_bytes,
        ),
    ];
    for (name, m, c) in pairs {
        assert!(
            (m - c).abs() <= 0.02 * c.abs().max(1e-9),
            "{name}: measured {m:.3}, the cost model uses {c:.3} (readings per message {}): \
             update MEASURED in shared/core/src/cost.rs and docs/cost.md",
            measured.readings_per_message
        );
    }
}

/// Measures one batching and checks it against the model's constant for it.
async fn check(readings_per_message: u32) {
    if skip_without_moto() {
        return;
    }
    let constant = meter_core::cost::measured(readings_per_message)
        .expect("the model has a constant for every batching measured here");
    let (work, seen) = measure(readings_per_message as usize).await;
    print(
        &format!("{readings_per_message} readings per message"),
        &work,
        &seen,
    );
    assert_close(&work, &constant);
    // The floor whatever the batching: the reading and its seq guard.
    assert!(work.write_units_per_reading >= 2.0, "{work:?}");
}

// One test per batching, so they run in parallel (moto is the slow part).

#[tokio::test]
async fn the_cost_model_uses_the_request_units_ingest_sends_for_one_reading_per_message() {
    check(1).await;
}

#[tokio::test]
async fn the_cost_model_uses_the_request_units_ingest_sends_for_hourly_batches_of_four() {
    check(4).await;
}

#[tokio::test]
async fn the_cost_model_uses_the_request_units_ingest_sends_for_daily_batches_of_96() {
    check(96).await;
}

#[test]
fn every_batching_in_the_model_is_measured_here() {
    let here = [1.0, 4.0, 96.0];
    assert_eq!(
        MEASURED
            .iter()
            .map(|w| w.readings_per_message)
            .collect::<Vec<_>>(),
        here
    );
}
