//! The conformance suite against the DynamoDB adapters, on moto's server, plus the behaviour only
//! DynamoDB has: TTL values, the table layout `create_tables` produces, and the seq-guard
//! protocol's crash and clash cases.
//!
//! Every case gets its own five tables (a unique name prefix), so cases run in parallel on one
//! moto server. The SDK is pointed at moto purely through the environment (`AWS_ENDPOINT_URL`
//! and test credentials, as `scripts/test` sets them). Without `AWS_ENDPOINT_URL` the cases skip,
//! except under `CI`, where a missing moto is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType, TimeToLiveStatus};
use aws_sdk_dynamodb::Client;
use meter_aws::{Retention, Tables};
use meter_core::{EventKind, InsertOutcome, MeterEvent, QuarantineEntry, QuarantineReason};
use meter_core::{Ports, Timestamp};
use meterflow_tests::fixtures::{bare_reading, meter, reading, QUARTER, T0};
use meterflow_tests::moto::{skip_without_moto, unique_prefix};

/// A client for this test's runtime (a client's connections belong to the runtime that made
/// them, and every case runs on its own runtime).
async fn client() -> Client {
    meter_aws::client_from_env().await
}

/// Fresh tables under a unique prefix.
async fn fresh_tables(client: &Client) -> Tables {
    let tables = Tables::with_prefix(&unique_prefix("cf"));
    meter_aws::create_tables(client, &tables)
        .await
        .expect("create the tables in moto");
    tables
}

async fn make_ports() -> Ports {
    let client = client().await;
    let tables = fresh_tables(&client).await;
    meter_aws::dynamo_ports(client, &tables, &Retention::default()).await
}

meterflow_tests::conformance_suite!(make_ports, skip = skip_without_moto());

async fn make_forecasts() -> std::sync::Arc<dyn meter_core::ports::ForecastStore> {
    let client = client().await;
    let table = format!("{}forecasts", unique_prefix("fc"));
    meter_aws::create_forecast_table(&client, &table)
        .await
        .expect("create the forecasts table in moto");
    std::sync::Arc::new(meter_aws::DynamoForecastStore::new(client, table, 90))
}

meterflow_tests::forecast_store_suite!(make_forecasts, skip = skip_without_moto());

async fn make_findings() -> std::sync::Arc<dyn meter_core::ports::FindingStore> {
    let client = client().await;
    let table = format!("{}findings", unique_prefix("fd"));
    meter_aws::create_findings_table(&client, &table)
        .await
        .expect("create the findings table in moto");
    std::sync::Arc::new(meter_aws::DynamoFindingStore::new(client, table, 90))
}

meterflow_tests::finding_store_suite!(make_findings, skip = skip_without_moto());

/// Retention settings distinct from the defaults and from each other, so a value check proves
/// which setting was used.
const RETENTION: Retention = Retention {
    reading_days: 30,
    quarantine_days: 7,
    event_days: 60,
};

async fn get_item(
    client: &Client,
    table: &str,
    key: &[(&str, &str)],
) -> HashMap<String, AttributeValue> {
    let mut req = client.get_item().table_name(table).consistent_read(true);
    for (k, v) in key {
        req = req.key(*k, AttributeValue::S((*v).to_owned()));
    }
    req.send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("no item {key:?} in {table}"))
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("{name} is {other:?}"),
    }
}

#[tokio::test]
async fn readings_guards_quarantine_and_events_carry_their_expiry_and_aggregates_none() {
    if skip_without_moto() {
        return;
    }
    let client = client().await;
    let tables = fresh_tables(&client).await;
    let ports = meter_aws::dynamo_ports(client.clone(), &tables, &RETENTION).await;

    let mut r = reading("m-1", T0, 10.0);
    r.seq = Some(5);
    ports.readings.insert(&[r.clone()]).await.unwrap();
    let expected = T0 / 1000 + 30 * 86_400;
    let item = get_item(
        &client,
        &tables.readings,
        &[("meter_id", "m-1"), ("sk", &meter_aws::reading_sk(r.ts))],
    )
    .await;
    assert_eq!(number(&item, "expires_at"), expected);
    assert_eq!(
        number(&item, "e_imp"),
        10_000_000,
        "energy is stored as integer mWh"
    );
    let guard = get_item(
        &client,
        &tables.readings,
        &[("meter_id", "m-1"), ("sk", &meter_aws::seq_guard_sk(5))],
    )
    .await;
    assert_eq!(
        (number(&guard, "ts"), number(&guard, "expires_at")),
        (T0, expected)
    );

    let entry = QuarantineEntry {
        id: "q1".into(),
        meter_key: "m-1".into(),
        received: Timestamp::from_millis(T0 + 1_500),
        reason: QuarantineReason::ClockSkew,
        detail: "ts is 2 h ahead".into(),
        raw: "{}".into(),
        index: None,
    };
    ports
        .quarantine
        .put(std::slice::from_ref(&entry))
        .await
        .unwrap();
    let sk = meter_aws::quarantine_sk(entry.received, &entry.id);
    let item = get_item(
        &client,
        &tables.quarantine,
        &[("meter_key", "m-1"), ("sk", &sk)],
    )
    .await;
    assert_eq!(
        number(&item, "expires_at"),
        (T0 + 1_500) / 1000 + 7 * 86_400
    );

    let event = MeterEvent {
        meter_id: meter("m-1"),
        ts: Timestamp::from_millis(T0),
        kind: EventKind::Tamper,
        value: None,
        detail: "meter reports tampering".into(),
    };
    ports
        .events
        .publish(std::slice::from_ref(&event))
        .await
        .unwrap();
    let item = get_item(
        &client,
        &tables.events,
        &[("meter_id", "m-1"), ("sk", &event.key())],
    )
    .await;
    assert_eq!(number(&item, "expires_at"), T0 / 1000 + 60 * 86_400);

    let v = ports.aggregates.next_version(&meter("m-1")).await.unwrap();
    let h = meter_core::Period::Hour(Timestamp::from_millis(T0));
    ports
        .aggregates
        .put(&[meter_core::Aggregate::empty(meter("m-1"), h, v)])
        .await
        .unwrap();
    let item = get_item(
        &client,
        &tables.aggregates,
        &[("meter_id", "m-1"), ("sk", &h.key())],
    )
    .await;
    assert!(!item.contains_key("expires_at"), "aggregates never expire");
}

#[tokio::test]
async fn create_tables_is_idempotent_and_sets_up_ttl_streams_and_the_feeder_index() {
    if skip_without_moto() {
        return;
    }
    let client = client().await;
    let tables = fresh_tables(&client).await;
    meter_aws::create_tables(&client, &tables).await.unwrap();

    for (table, ttl) in [
        (&tables.readings, true),
        (&tables.meters, false),
        (&tables.quarantine, true),
        (&tables.aggregates, false),
        (&tables.events, true),
    ] {
        let d = client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .unwrap();
        let d = d.time_to_live_description.unwrap();
        if ttl {
            assert_eq!(
                d.time_to_live_status,
                Some(TimeToLiveStatus::Enabled),
                "{table}"
            );
            assert_eq!(
                d.attribute_name.as_deref(),
                Some(meter_aws::TTL_ATTRIBUTE),
                "{table}"
            );
        } else {
            assert_ne!(
                d.time_to_live_status,
                Some(TimeToLiveStatus::Enabled),
                "{table}"
            );
        }
    }
    let events = client
        .describe_table()
        .table_name(&tables.events)
        .send()
        .await
        .unwrap();
    let stream = events.table.unwrap().stream_specification.unwrap();
    assert!(stream.stream_enabled);
    assert_eq!(stream.stream_view_type, Some(StreamViewType::NewImage));
    let meters = client
        .describe_table()
        .table_name(&tables.meters)
        .send()
        .await
        .unwrap();
    let indexes = meters
        .table
        .unwrap()
        .global_secondary_indexes
        .unwrap_or_default();
    assert_eq!(
        indexes
            .iter()
            .filter_map(|i| i.index_name.as_deref())
            .collect::<Vec<_>>(),
        vec![meter_aws::BY_FEEDER_INDEX]
    );
}

#[tokio::test]
async fn a_retry_after_a_crash_between_guard_and_reading_stores_the_reading() {
    if skip_without_moto() {
        return;
    }
    let client = client().await;
    let tables = fresh_tables(&client).await;
    let ports = meter_aws::dynamo_ports(client.clone(), &tables, &Retention::default()).await;
    let mut r = bare_reading("m-1", T0, 10.0);
    r.seq = Some(9);
    // The crash: the guard was written, the reading was not.
    client
        .put_item()
        .table_name(&tables.readings)
        .item("meter_id", AttributeValue::S("m-1".into()))
        .item("sk", AttributeValue::S(meter_aws::seq_guard_sk(9)))
        .item("ts", AttributeValue::N(T0.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ports.readings.insert(&[r.clone()]).await.unwrap(),
        vec![InsertOutcome::Stored]
    );
    assert_eq!(
        ports.readings.range(&r.meter_id, r.ts, r.ts).await.unwrap(),
        vec![r]
    );
}

#[tokio::test]
async fn a_seq_refused_with_a_taken_timestamp_stays_free() {
    if skip_without_moto() {
        return;
    }
    let ports = make_ports().await;
    let at = |i: i64, seq: u64| {
        let mut r = bare_reading("m-1", T0 + i * QUARTER, 10.0 + i as f64);
        r.seq = Some(seq);
        r
    };
    assert_eq!(
        ports.readings.insert(&[at(0, 5)]).await.unwrap(),
        vec![InsertOutcome::Stored]
    );
    // Seq 6 at a taken timestamp: a timestamp duplicate, and seq 6 is not consumed by it.
    assert_eq!(
        ports.readings.insert(&[at(0, 6)]).await.unwrap(),
        vec![InsertOutcome::DuplicateTimestamp]
    );
    assert_eq!(
        ports.readings.insert(&[at(1, 6)]).await.unwrap(),
        vec![InsertOutcome::Stored]
    );
    // Both clashes at once: the timestamp wins, as in every other store.
    assert_eq!(
        ports.readings.insert(&[at(1, 5)]).await.unwrap(),
        vec![InsertOutcome::DuplicateTimestamp]
    );
    assert_eq!(
        ports.readings.insert(&[at(2, 5)]).await.unwrap(),
        vec![InsertOutcome::DuplicateSeq]
    );
}

#[tokio::test]
async fn readings_of_many_meters_in_one_call_keep_their_outcome_order() {
    if skip_without_moto() {
        return;
    }
    let ports = make_ports().await;
    let readings: Vec<_> = (0..40)
        .map(|i| bare_reading(&format!("m-{}", i % 20), T0 + (i / 20) * QUARTER, 1.0))
        .collect();
    let mut offered = readings.clone();
    offered.push(readings[7].clone());
    let out = ports.readings.insert(&offered).await.unwrap();
    assert!(out[..40].iter().all(|o| *o == InsertOutcome::Stored));
    assert_eq!(out[40], InsertOutcome::DuplicateTimestamp);
    let m = meter("m-7");
    let got = ports
        .readings
        .range(
            &m,
            Timestamp::from_millis(T0),
            Timestamp::from_millis(T0 + QUARTER),
        )
        .await
        .unwrap();
    assert_eq!(got, vec![readings[7].clone(), readings[27].clone()]);
}

#[tokio::test]
async fn queries_follow_pages_past_dynamodbs_one_megabyte_limit() {
    if skip_without_moto() {
        return;
    }
    let client = client().await;
    let tables = fresh_tables(&client).await;
    let ports = meter_aws::dynamo_ports(client.clone(), &tables, &Retention::default()).await;
    // 15 entries of 100 KB: a query result of 1.5 MB comes back in two pages.
    let entries: Vec<_> = (0..15)
        .map(|i| QuarantineEntry {
            id: format!("big{i:02}"),
            meter_key: "m-1".into(),
            received: Timestamp::from_millis(T0 + i),
            reason: QuarantineReason::PayloadTooLarge,
            detail: "oversize".into(),
            raw: "x".repeat(100_000),
            index: None,
        })
        .collect();
    ports.quarantine.put(&entries).await.unwrap();
    let first_page = client
        .query()
        .table_name(&tables.quarantine)
        .key_condition_expression("meter_key = :k")
        .expression_attribute_values(":k", AttributeValue::S("m-1".into()))
        .send()
        .await
        .unwrap();
    assert!(
        first_page.last_evaluated_key.is_some(),
        "the data must span pages"
    );
    let got = ports.quarantine.for_meter("m-1", 100).await.unwrap();
    let mut newest_first = entries.clone();
    newest_first.reverse();
    assert_eq!(got, newest_first);
    assert_eq!(
        ports.quarantine.for_meter("m-1", 12).await.unwrap(),
        newest_first[..12].to_vec()
    );
}
