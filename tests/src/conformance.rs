//! The port contracts, as test cases every adapter must pass. Each case takes fresh ports and
//! panics on the first broken promise. Instantiate with [`crate::conformance_suite!`].

use std::sync::Arc;
use std::time::Duration;

use meter_core::aggregate::{Aggregate, Period};
use meter_core::anomaly::{reconcile, Finding, FindingKind, FindingStatus, StoredFinding};
use meter_core::forecast::{Bands, BillProjection, ForecastPoint, ModelKind, StoredForecast};
use meter_core::ingest::{Inbound, IngestConfig, Ingestor, Ports, RegistryMode};
use meter_core::ports::{FindingCursor, FindingStore, ForecastStore, PendingAggregates};
use meter_core::telemetry::{MessageContext, QuarantineEntry};
use meter_core::{
    Energy, EventKind, InsertOutcome, MeterEvent, MeterInfo, MeterKind, QuarantineReason,
    StoreError, Timestamp,
};

use crate::fixtures::{
    bare_reading, batch_payload, day_series, meter, payload, reading, topic, QUARTER, T0,
};

const HOUR: i64 = 3_600_000;

pub async fn readings_come_back_in_time_order_with_every_field(p: Ports) {
    let full = reading("m-1", T0 + QUARTER, 10.5);
    let mut with_seq = bare_reading("m-1", T0, 10.0);
    with_seq.seq = Some(42);
    let out = p
        .readings
        .insert(&[full.clone(), with_seq.clone()])
        .await
        .unwrap();
    assert_eq!(out, vec![InsertOutcome::Stored, InsertOutcome::Stored]);
    let got = p
        .readings
        .range(
            &meter("m-1"),
            Timestamp::from_millis(T0),
            Timestamp::from_millis(T0 + QUARTER),
        )
        .await
        .unwrap();
    assert_eq!(got, vec![with_seq, full]);
}

pub async fn a_second_reading_at_the_same_time_is_a_duplicate_and_changes_nothing(p: Ports) {
    let first = reading("m-1", T0, 10.0);
    let mut second = reading("m-1", T0, 99.0);
    second.voltage_v = Some(1.0);
    assert_eq!(
        p.readings
            .insert(std::slice::from_ref(&first))
            .await
            .unwrap(),
        vec![InsertOutcome::Stored]
    );
    assert_eq!(
        p.readings.insert(&[second]).await.unwrap(),
        vec![InsertOutcome::DuplicateTimestamp]
    );
    let got = p
        .readings
        .range(&meter("m-1"), first.ts, first.ts)
        .await
        .unwrap();
    assert_eq!(got, vec![first]);
}

pub async fn a_reused_seq_at_another_time_is_a_duplicate_seq(p: Ports) {
    let mut a = reading("m-1", T0, 10.0);
    a.seq = Some(7);
    let mut b = reading("m-1", T0 + QUARTER, 10.2);
    b.seq = Some(7);
    let mut other_meter = reading("m-2", T0 + QUARTER, 10.2);
    other_meter.seq = Some(7);
    assert_eq!(
        p.readings.insert(&[a.clone()]).await.unwrap(),
        vec![InsertOutcome::Stored]
    );
    assert_eq!(
        p.readings.insert(&[b, other_meter]).await.unwrap(),
        vec![InsertOutcome::DuplicateSeq, InsertOutcome::Stored]
    );
    // Re-offering the stored reading itself is a timestamp duplicate, not a seq clash.
    assert_eq!(
        p.readings.insert(&[a.clone()]).await.unwrap(),
        vec![InsertOutcome::DuplicateTimestamp]
    );
    let all = p
        .readings
        .range(
            &meter("m-1"),
            Timestamp::from_millis(T0 - HOUR),
            Timestamp::from_millis(T0 + HOUR),
        )
        .await
        .unwrap();
    assert_eq!(all, vec![a]);
}

pub async fn the_first_of_two_equal_readings_in_one_call_wins(p: Ports) {
    let a = reading("m-1", T0, 10.0);
    let b = reading("m-1", T0, 11.0);
    let out = p.readings.insert(&[a.clone(), b]).await.unwrap();
    assert_eq!(
        out,
        vec![InsertOutcome::Stored, InsertOutcome::DuplicateTimestamp]
    );
    assert_eq!(
        p.readings.range(&meter("m-1"), a.ts, a.ts).await.unwrap(),
        vec![a]
    );
}

pub async fn before_and_after_are_strict_and_stay_within_the_meter(p: Ports) {
    let rs: Vec<_> = (0..4)
        .map(|i| bare_reading("m-1", T0 + i * QUARTER, 1.0 + i as f64))
        .collect();
    p.readings.insert(&rs).await.unwrap();
    p.readings
        .insert(&[
            bare_reading("m-0", T0 - 5 * QUARTER, 1.0),
            bare_reading("m-2", T0 + 9 * QUARTER, 1.0),
        ])
        .await
        .unwrap();
    let m = meter("m-1");
    let at = |i: i64| Timestamp::from_millis(T0 + i * QUARTER);
    assert_eq!(
        p.readings.before(&m, at(2)).await.unwrap(),
        Some(rs[1].clone())
    );
    assert_eq!(
        p.readings.after(&m, at(2)).await.unwrap(),
        Some(rs[3].clone())
    );
    assert_eq!(p.readings.before(&m, at(0)).await.unwrap(), None);
    assert_eq!(p.readings.after(&m, at(3)).await.unwrap(), None);
    assert_eq!(
        p.readings.before(&m, at(100)).await.unwrap(),
        Some(rs[3].clone())
    );
    assert!(p.readings.range(&m, at(3), at(2)).await.unwrap().is_empty());
}

pub async fn range_with_previous_adds_the_last_reading_at_or_before_the_start(p: Ports) {
    let rs: Vec<_> = (0..6)
        .map(|i| bare_reading("m-1", T0 + i * QUARTER, 1.0 + i as f64))
        .collect();
    p.readings.insert(&rs).await.unwrap();
    p.readings
        .insert(&[
            bare_reading("m-0", T0 + 2 * QUARTER + 1, 1.0),
            bare_reading("m-2", T0 + 3 * QUARTER - 1, 1.0),
        ])
        .await
        .unwrap();
    let m = meter("m-1");
    let at = |i: i64| Timestamp::from_millis(T0 + i * QUARTER);
    let get = |from: Timestamp, to: Timestamp| {
        let store = p.readings.clone();
        let m = m.clone();
        async move { store.range_with_previous(&m, from, to).await.unwrap() }
    };
    // Between readings: the one before `from`, then those after it.
    assert_eq!(get(at(2).add_millis(5), at(4)).await, rs[2..=4].to_vec());
    // On a reading: that reading is the previous one.
    assert_eq!(get(at(2), at(4)).await, rs[2..=4].to_vec());
    // Before the first reading: no previous one.
    assert_eq!(get(at(0).add_millis(-1), at(1)).await, rs[0..=1].to_vec());
    // Past the last: only the previous one.
    assert_eq!(get(at(9), at(12)).await, rs[5..=5].to_vec());
    assert!(get(at(-9), at(-5)).await.is_empty());
}

pub async fn range_spans_more_than_one_page(p: Ports) {
    // A week of quarter hours: more than any single small page, and a realistic query size.
    let rs = day_series("m-1", T0, 100.0, 7 * 96);
    let out = p.readings.insert(&rs).await.unwrap();
    assert!(out.iter().all(|o| *o == InsertOutcome::Stored));
    let got = p
        .readings
        .range(&meter("m-1"), rs[0].ts, rs[rs.len() - 1].ts)
        .await
        .unwrap();
    assert_eq!(got.len(), rs.len());
    assert_eq!(got, rs);
}

/// A feeder meter's record.
fn feeder(id: &str) -> MeterInfo {
    MeterInfo {
        kind: MeterKind::Feeder,
        contracted_kw: None,
        location: None,
        tariff_id: None,
        ..consumer(id, None)
    }
}

fn consumer(id: &str, feeder: Option<&str>) -> MeterInfo {
    MeterInfo {
        meter_id: meter(id),
        kind: MeterKind::Consumer,
        feeder_id: feeder.map(meter),
        contracted_kw: Some(5.5),
        location: Some("Pole 17, Feeder Rd".into()),
        tariff_id: Some("residential-tou".into()),
        timezone: "Australia/Sydney".parse().unwrap(),
    }
}

pub async fn the_registry_round_trips_and_lists_consumers_by_feeder(p: Ports) {
    let feeder = feeder("f-1");
    for m in [
        feeder.clone(),
        self::feeder("f-9"),
        consumer("c-1", Some("f-1")),
        consumer("c-2", Some("f-1")),
        consumer("c-3", Some("f-9")),
    ] {
        p.registry.upsert(&m).await.unwrap();
    }
    assert_eq!(p.registry.get(&meter("f-1")).await.unwrap(), Some(feeder));
    assert_eq!(p.registry.get(&meter("nope")).await.unwrap(), None);
    let mut under: Vec<String> = p
        .registry
        .by_feeder(&meter("f-1"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.meter_id.to_string())
        .collect();
    under.sort();
    assert_eq!(under, vec!["c-1", "c-2"]);
    let mut moved = consumer("c-2", Some("f-9"));
    moved.contracted_kw = Some(9.0);
    p.registry.upsert(&moved).await.unwrap();
    assert_eq!(p.registry.get(&meter("c-2")).await.unwrap(), Some(moved));
}

pub async fn listing_the_registry_page_by_page_yields_every_meter_once(p: Ports) {
    let empty = p.registry.list(None, 10).await.unwrap();
    assert_eq!((empty.meters.len(), empty.next), (0, None));
    p.registry.upsert(&feeder("f-1")).await.unwrap();
    let mut ids: Vec<String> = (0..23).map(|i| format!("c-{i:02}")).collect();
    for id in &ids {
        p.registry.upsert(&consumer(id, Some("f-1"))).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let page = p.registry.list(after.as_ref(), 5).await.unwrap();
        assert!(page.meters.len() <= 5, "a page holds at most its limit");
        seen.extend(page.meters.iter().map(|m| m.meter_id.to_string()));
        if let Some(first) = page.meters.iter().find(|m| m.kind == MeterKind::Consumer) {
            assert_eq!(first, &consumer(first.meter_id.as_str(), Some("f-1")));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    seen.sort();
    ids.push("f-1".into());
    assert_eq!(seen, ids);
}

pub async fn register_if_absent_keeps_the_existing_record(p: Ports) {
    p.registry.upsert(&feeder("f-1")).await.unwrap();
    let original = consumer("c-1", Some("f-1"));
    p.registry.upsert(&original).await.unwrap();
    let auto = MeterInfo::new_consumer(meter("c-1"), chrono_tz::Tz::UTC);
    assert_eq!(
        p.registry.register_if_absent(&auto).await.unwrap(),
        original
    );
    let fresh = MeterInfo::new_consumer(meter("c-new"), chrono_tz::Tz::UTC);
    assert_eq!(p.registry.register_if_absent(&fresh).await.unwrap(), fresh);
    assert_eq!(p.registry.get(&meter("c-new")).await.unwrap(), Some(fresh));
}

/// A consumer naming a feeder the registry does not know (or knows as a consumer) would be
/// scanned in a group without a feeder meter: both ways of registering refuse it, naming both
/// meters, and store nothing; once the feeder is registered the same record is accepted.
pub async fn a_consumer_naming_an_unregistered_feeder_is_refused(p: Ports) {
    let orphan = consumer("c-1", Some("f-1"));
    let refused = |e: StoreError| match e {
        StoreError::UnregisteredFeeder { meter, feeder } => {
            assert_eq!((meter.as_str(), feeder.as_str()), ("c-1", "f-1"));
        }
        other => panic!("expected UnregisteredFeeder, got {other:?}"),
    };
    refused(p.registry.upsert(&orphan).await.unwrap_err());
    refused(p.registry.register_if_absent(&orphan).await.unwrap_err());
    let message = p.registry.upsert(&orphan).await.unwrap_err().to_string();
    assert!(
        message.contains("c-1") && message.contains("f-1"),
        "{message}"
    );
    assert_eq!(p.registry.get(&meter("c-1")).await.unwrap(), None);
    // A meter of that id registered as a consumer is not a feeder either.
    p.registry.upsert(&consumer("f-1", None)).await.unwrap();
    refused(p.registry.upsert(&orphan).await.unwrap_err());
    assert!(p
        .registry
        .by_feeder(&meter("f-1"))
        .await
        .unwrap()
        .is_empty());
    // Registered as a feeder, it is accepted, either way.
    p.registry.upsert(&feeder("f-1")).await.unwrap();
    assert_eq!(
        p.registry.register_if_absent(&orphan).await.unwrap(),
        orphan
    );
    let moved = MeterInfo {
        contracted_kw: Some(7.0),
        ..orphan.clone()
    };
    p.registry.upsert(&moved).await.unwrap();
    assert_eq!(p.registry.get(&meter("c-1")).await.unwrap(), Some(moved));
    // A meter without a feeder needs none.
    let alone = consumer("c-2", None);
    assert_eq!(p.registry.register_if_absent(&alone).await.unwrap(), alone);
}

fn entry(id: &str, meter_key: &str, received_ms: i64, reason: QuarantineReason) -> QuarantineEntry {
    QuarantineEntry {
        id: id.into(),
        meter_key: meter_key.into(),
        received: Timestamp::from_millis(received_ms),
        reason,
        detail: format!("detail of {id}"),
        raw: r#"{"v":1,"ts":"#.into(),
        index: (id == "b").then_some(3),
    }
}

pub async fn quarantine_is_idempotent_and_lists_newest_first(p: Ports) {
    let a = entry("a", "m-1", T0, QuarantineReason::MalformedJson);
    let b = entry("b", "m-1", T0 + 1000, QuarantineReason::ClockSkew);
    let c = entry("c", "_unknown", T0, QuarantineReason::SchemaViolation);
    p.quarantine
        .put(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    p.quarantine.put(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(
        p.quarantine.for_meter("m-1", 10).await.unwrap(),
        vec![b.clone(), a]
    );
    assert_eq!(p.quarantine.for_meter("m-1", 1).await.unwrap(), vec![b]);
    assert_eq!(
        p.quarantine.for_meter("_unknown", 10).await.unwrap(),
        vec![c]
    );
    // Many at once (more than one DynamoDB batch).
    let many: Vec<_> = (0..60)
        .map(|i| entry(&format!("x{i:02}"), "m-9", T0 + i, QuarantineReason::TooOld))
        .collect();
    p.quarantine.put(&many).await.unwrap();
    assert_eq!(p.quarantine.for_meter("m-9", 100).await.unwrap().len(), 60);
}

fn agg(id: &str, period: Period, mwh: i64, version: u64) -> Aggregate {
    Aggregate {
        meter_id: meter(id),
        period,
        measured: Energy::from_mwh(mwh),
        estimated: Energy::from_mwh(mwh / 3),
        readings: 4,
        resets: 0,
        version,
    }
}

pub async fn versions_only_increase_and_a_lower_version_never_overwrites(p: Ports) {
    let m = meter("m-1");
    let v1 = p.aggregates.next_version(&m).await.unwrap();
    let v2 = p.aggregates.next_version(&m).await.unwrap();
    assert!(v2 > v1);
    let h = Period::Hour(Timestamp::from_millis(T0));
    p.aggregates.put(&[agg("m-1", h, 500, v2)]).await.unwrap();
    p.aggregates.put(&[agg("m-1", h, 100, v1)]).await.unwrap();
    p.aggregates.put(&[agg("m-1", h, 200, v2)]).await.unwrap();
    assert_eq!(
        p.aggregates.range(&m, h, h).await.unwrap(),
        vec![agg("m-1", h, 500, v2)]
    );
    let v3 = p.aggregates.next_version(&m).await.unwrap();
    p.aggregates.put(&[agg("m-1", h, 700, v3)]).await.unwrap();
    assert_eq!(
        p.aggregates.range(&m, h, h).await.unwrap(),
        vec![agg("m-1", h, 700, v3)]
    );
}

pub async fn aggregate_ranges_stay_within_granularity_and_meter(p: Ports) {
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let hours: Vec<_> = (0..5)
        .map(|i| {
            agg(
                "m-1",
                Period::Hour(Timestamp::from_millis(T0 + i * HOUR)),
                10 * i,
                1,
            )
        })
        .collect();
    let mut all = hours.clone();
    all.push(agg("m-1", Period::Day(d("2026-03-01")), 1, 1));
    all.push(agg("m-1", Period::Day(d("2026-03-02")), 2, 1));
    all.push(agg("m-1", Period::month_of(d("2026-03-01")), 3, 1));
    all.push(agg(
        "m-2",
        Period::Hour(Timestamp::from_millis(T0 + HOUR)),
        9,
        1,
    ));
    p.aggregates.put(&all).await.unwrap();
    let m = meter("m-1");
    let got = p
        .aggregates
        .range(&m, hours[1].period, hours[3].period)
        .await
        .unwrap();
    assert_eq!(got, hours[1..=3].to_vec());
    let days = p
        .aggregates
        .range(
            &m,
            Period::Day(d("2026-02-01")),
            Period::Day(d("2026-03-31")),
        )
        .await
        .unwrap();
    assert_eq!(days.len(), 2);
    let months = p
        .aggregates
        .range(
            &m,
            Period::month_of(d("2026-01-01")),
            Period::month_of(d("2026-12-01")),
        )
        .await
        .unwrap();
    assert_eq!(
        months,
        vec![agg("m-1", Period::month_of(d("2026-03-01")), 3, 1)]
    );
}

pub async fn a_roll_up_sums_exactly_the_children_in_range(p: Ports) {
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let hour = |i: i64| Period::Hour(Timestamp::from_millis(T0 + i * HOUR));
    let mut all: Vec<Aggregate> = (0..5).map(|i| agg("m-1", hour(i), 10 * i + 7, 1)).collect();
    all[2].resets = 1;
    // Neighbours that must not be counted: another meter's hour in range, and a day.
    all.push(agg("m-2", hour(1), 1_000, 1));
    all.push(agg("m-1", Period::Day(d("2026-03-01")), 5_000, 1));
    p.aggregates.put(&all).await.unwrap();
    let m = meter("m-1");
    let day = Period::Day(d("2026-03-01"));
    let got = p
        .aggregates
        .roll_up(&m, day, hour(1), hour(3), 9)
        .await
        .unwrap();
    let expected = meter_core::aggregate::roll_up(&m, day, &all[1..=3], 9);
    assert_eq!(got, expected);
    assert_eq!(got.measured, Energy::from_mwh(17 + 27 + 37));
    assert_eq!((got.readings, got.resets, got.version), (12, 1, 9));
    // Nothing in range: an empty aggregate, not an error.
    let none = p
        .aggregates
        .roll_up(&meter("m-3"), day, hour(0), hour(4), 2)
        .await
        .unwrap();
    assert_eq!(none, Aggregate::empty(meter("m-3"), day, 2));
}

pub async fn events_are_recorded_once_and_listed_by_time(p: Ports) {
    let ev = |ts: i64, kind: EventKind, detail: &str| MeterEvent {
        meter_id: meter("m-1"),
        ts: Timestamp::from_millis(ts),
        kind,
        value: Some(190.5),
        detail: detail.into(),
    };
    let a = ev(T0 + QUARTER, EventKind::VoltageLow, "first");
    let b = ev(T0, EventKind::Tamper, "tamper");
    p.events.publish(&[a.clone(), b.clone()]).await.unwrap();
    p.events
        .publish(&[ev(T0 + QUARTER, EventKind::VoltageLow, "second")])
        .await
        .unwrap();
    let got = p
        .events
        .for_meter(
            &meter("m-1"),
            Timestamp::from_millis(T0),
            Timestamp::from_millis(T0 + HOUR),
        )
        .await
        .unwrap();
    assert_eq!(got, vec![b, a.clone()]);
    let later = p
        .events
        .for_meter(
            &meter("m-1"),
            Timestamp::from_millis(T0 + 1),
            Timestamp::from_millis(T0 + HOUR),
        )
        .await
        .unwrap();
    assert_eq!(later, vec![a]);
}

fn ingestor(p: &Ports, mode: RegistryMode) -> Ingestor {
    Ingestor::new(
        p.clone(),
        IngestConfig {
            registry_mode: mode,
            default_timezone: "Australia/Sydney".parse().unwrap(),
            registry_cache_ttl: Duration::from_secs(0),
            ..IngestConfig::default()
        },
    )
}

/// Ingests each payload as its own message on the meter's topic.
async fn ingest(
    ing: &Ingestor,
    id: &str,
    payloads: &[Vec<u8>],
    received_ms: i64,
) -> meter_core::IngestReport {
    let t = topic(id);
    let msgs: Vec<Inbound<'_>> = payloads
        .iter()
        .map(|p| Inbound {
            payload: p,
            ctx: MessageContext {
                topic: Some(&t),
                received: Timestamp::from_millis(received_ms),
            },
        })
        .collect();
    ing.ingest(&msgs).await.unwrap()
}

/// Every hourly, daily and monthly aggregate of a meter around the test window.
async fn snapshot(p: &Ports, id: &str) -> Vec<Aggregate> {
    let m = meter(id);
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let mut out = p
        .aggregates
        .range(
            &m,
            Period::Hour(Timestamp::from_millis(T0 - 2 * 24 * HOUR)),
            Period::Hour(Timestamp::from_millis(T0 + 5 * 24 * HOUR)),
        )
        .await
        .unwrap();
    out.extend(
        p.aggregates
            .range(
                &m,
                Period::Day(d("2026-02-20")),
                Period::Day(d("2026-03-10")),
            )
            .await
            .unwrap(),
    );
    out.extend(
        p.aggregates
            .range(
                &m,
                Period::month_of(d("2026-01-01")),
                Period::month_of(d("2026-06-01")),
            )
            .await
            .unwrap(),
    );
    out
}

fn assert_same_content(a: &[Aggregate], b: &[Aggregate]) {
    assert_eq!(a.len(), b.len(), "different bucket counts");
    for (x, y) in a.iter().zip(b) {
        assert!(x.same_content(y), "{x:?} != {y:?}");
    }
}

pub async fn redelivery_and_out_of_order_replay_leave_every_aggregate_unchanged(p: Ports) {
    let series = day_series("m-1", T0, 5_000.0, 2 * 96);
    let received = T0 + 3 * 24 * HOUR;
    let ing = ingestor(&p, RegistryMode::AutoRegister);
    let singles: Vec<Vec<u8>> = series.iter().map(payload).collect();
    let first = ingest(&ing, "m-1", &singles, received).await;
    assert_eq!(
        (first.stored, first.duplicates, first.quarantined),
        (series.len() as u64, 0, 0)
    );
    let before = snapshot(&p, "m-1").await;
    let day_total: i64 = before
        .iter()
        .filter(|a| matches!(a.period, Period::Month(_)))
        .map(|a| a.total().mwh())
        .sum();
    let expected = series.last().unwrap().energy_import.mwh() - series[0].energy_import.mwh();
    assert_eq!(
        day_total, expected,
        "the month holds exactly the register's rise"
    );

    // The same readings again: reversed, as store-and-forward batches of 7, each sent twice.
    let mut reversed = series.clone();
    reversed.reverse();
    let batches: Vec<Vec<u8>> = reversed
        .chunks(7)
        .flat_map(|c| [batch_payload(c), batch_payload(c)])
        .collect();
    let again = ingest(&ing, "m-1", &batches, received).await;
    assert_eq!(
        (again.stored, again.duplicates),
        (0, 2 * series.len() as u64)
    );
    assert_same_content(&before, &snapshot(&p, "m-1").await);

    // A second meter fed the same data shuffled ends with identical aggregates.
    let mut shuffled: Vec<_> = series
        .iter()
        .map(|r| meter_core::Reading {
            meter_id: meter("m-2"),
            ..r.clone()
        })
        .collect();
    let n = shuffled.len();
    for i in 0..n {
        shuffled.swap(i, (i * 7919 + 13) % n);
    }
    let payloads: Vec<Vec<u8>> = shuffled.chunks(5).map(batch_payload).collect();
    ingest(&ing, "m-2", &payloads, received).await;
    let other: Vec<Aggregate> = snapshot(&p, "m-2")
        .await
        .into_iter()
        .map(|a| Aggregate {
            meter_id: meter("m-1"),
            ..a
        })
        .collect();
    assert_same_content(&before, &other);
}

pub async fn a_retry_after_a_crash_half_way_converges_on_the_same_state(p: Ports) {
    let series = day_series("m-1", T0, 10.0, 96);
    let received = T0 + 2 * 24 * HOUR;
    let ing = ingestor(&p, RegistryMode::AutoRegister);
    let first_half: Vec<Vec<u8>> = series[..48].iter().map(payload).collect();
    ingest(&ing, "m-1", &first_half, received).await;
    // The crash: the second half's readings were stored, then the invocation died before any
    // aggregate was written.
    p.readings.insert(&series[48..]).await.unwrap();
    let retry: Vec<Vec<u8>> = series[48..].iter().map(payload).collect();
    let report = ingest(&ing, "m-1", &retry, received).await;
    assert_eq!((report.stored, report.duplicates), (0, 48));

    let clean = meter_core::memory::memory_ports();
    let clean_ing = ingestor(&clean, RegistryMode::AutoRegister);
    let all: Vec<Vec<u8>> = series.iter().map(payload).collect();
    ingest(&clean_ing, "m-1", &all, received).await;
    assert_same_content(&snapshot(&clean, "m-1").await, &snapshot(&p, "m-1").await);
}

pub async fn gaps_are_estimated_and_resets_bill_nothing(p: Ports) {
    let ing = ingestor(&p, RegistryMode::AutoRegister);
    let rs = [
        bare_reading("m-1", T0, 100.0),
        bare_reading("m-1", T0 + QUARTER, 100.5),
        // Three silent hours, then the register has risen by 3 kWh.
        bare_reading("m-1", T0 + QUARTER + 3 * HOUR, 103.5),
        // Meter replaced: the register restarts near zero.
        bare_reading("m-1", T0 + 2 * QUARTER + 3 * HOUR, 0.2),
        bare_reading("m-1", T0 + 3 * QUARTER + 3 * HOUR, 0.7),
    ];
    let payloads: Vec<Vec<u8>> = rs.iter().map(payload).collect();
    let report = ingest(&ing, "m-1", &payloads, T0 + 6 * HOUR).await;
    assert_eq!(report.stored, 5);
    let aggs = snapshot(&p, "m-1").await;
    let month = aggs
        .iter()
        .find(|a| matches!(a.period, Period::Month(_)))
        .unwrap();
    assert_eq!(month.measured, Energy::from_kwh(1.0).unwrap());
    assert_eq!(month.estimated, Energy::from_kwh(3.0).unwrap());
    assert_eq!(month.resets, 1);
    let events = p
        .events
        .for_meter(
            &meter("m-1"),
            Timestamp::from_millis(T0),
            Timestamp::from_millis(T0 + 6 * HOUR),
        )
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == EventKind::RegisterReset),
        "{events:?}"
    );
}

pub async fn unknown_meters_are_quarantined_when_the_registry_is_enforced(p: Ports) {
    let ing = ingestor(&p, RegistryMode::Enforce);
    p.registry.upsert(&consumer("known", None)).await.unwrap();
    let report = ingest(
        &ing,
        "stranger",
        &[payload(&reading("stranger", T0, 1.0))],
        T0 + HOUR,
    )
    .await;
    assert_eq!((report.stored, report.quarantined), (0, 1));
    assert_eq!(report.quarantined_by_reason.get("unknown_meter"), Some(&1));
    let q = p.quarantine.for_meter("stranger", 10).await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].reason, QuarantineReason::UnknownMeter);
    let ok = ingest(
        &ing,
        "known",
        &[payload(&reading("known", T0, 1.0))],
        T0 + HOUR,
    )
    .await;
    assert_eq!(ok.stored, 1);
    assert_eq!(p.registry.get(&meter("stranger")).await.unwrap(), None);
}

fn forecast(id: &str, issued_ms: i64, model: ModelKind, scale: i64) -> StoredForecast {
    StoredForecast {
        meter_id: meter(id),
        issued_at: Timestamp::from_millis(issued_ms),
        model,
        points: (1..=192)
            .map(|k| ForecastPoint {
                target: Timestamp::from_millis(issued_ms + k * QUARTER),
                p10: Energy::from_mwh(k * scale),
                p50: Energy::from_mwh(k * scale * 2),
                p90: Energy::from_mwh(k * scale * 3),
            })
            .collect(),
        next_day: Energy::from_mwh(12_345 * scale),
        month_to_date: Energy::from_mwh(100_000),
        rest_of_month: Energy::from_mwh(250_000 * scale),
        projected_bill: None,
        // Bands on odd scales only, so that both forms (with and without) round-trip.
        bands: (scale % 2 == 1).then(|| {
            let lo: Vec<i64> = (0..96).map(|k| -(k * scale) - 1).collect();
            let hi: Vec<i64> = (0..96).map(|k| 2 * k * scale + 7).collect();
            Bands::from_mwh(&lo, &hi)
        }),
    }
}

const DAY: i64 = 86_400_000;

pub async fn a_stored_forecast_comes_back_whole_by_meter_and_issue_time(f: Arc<dyn ForecastStore>) {
    let a = forecast("m-1", T0, ModelKind::Ridge, 1);
    let mut billed = forecast("m-2", T0, ModelKind::Persistence7, 2);
    billed.projected_bill = Some(BillProjection {
        amount: 87.5,
        currency: "AUD".into(),
    });
    f.put(&[a.clone(), billed.clone()]).await.unwrap();
    assert_eq!(f.get(&meter("m-1"), a.issued_at).await.unwrap(), Some(a));
    assert_eq!(
        f.get(&meter("m-2"), billed.issued_at).await.unwrap(),
        Some(billed)
    );
    assert_eq!(
        f.get(&meter("m-1"), Timestamp::from_millis(T0 + DAY))
            .await
            .unwrap(),
        None
    );
    assert_eq!(f.latest(&meter("m-3")).await.unwrap(), None);
}

pub async fn rewriting_a_forecast_for_the_same_issue_replaces_it(f: Arc<dyn ForecastStore>) {
    let first = forecast("m-1", T0, ModelKind::Ridge, 1);
    let rerun = forecast("m-1", T0, ModelKind::RidgeBlend, 5);
    f.put(std::slice::from_ref(&first)).await.unwrap();
    f.put(&[first.clone(), rerun.clone()]).await.unwrap();
    f.put(std::slice::from_ref(&rerun)).await.unwrap();
    assert_eq!(
        f.get(&meter("m-1"), first.issued_at).await.unwrap(),
        Some(rerun.clone())
    );
    assert_eq!(f.latest(&meter("m-1")).await.unwrap(), Some(rerun));
}

pub async fn latest_is_the_most_recent_issue_of_that_meter_only(f: Arc<dyn ForecastStore>) {
    let days: Vec<StoredForecast> = (0..4)
        .map(|d| forecast("m-1", T0 + d * DAY, ModelKind::Ridge, d + 1))
        .collect();
    // Written out of order: latest goes by issue time, not by write order.
    f.put(&[
        days[2].clone(),
        days[0].clone(),
        days[3].clone(),
        days[1].clone(),
    ])
    .await
    .unwrap();
    f.put(&[forecast("m-10", T0 + 9 * DAY, ModelKind::Persistence7, 1)])
        .await
        .unwrap();
    assert_eq!(
        f.latest(&meter("m-1")).await.unwrap(),
        Some(days[3].clone())
    );
    assert_eq!(
        f.get(&meter("m-1"), days[1].issued_at).await.unwrap(),
        Some(days[1].clone())
    );
}

fn finding(id: &str, kind: FindingKind, opened_ms: i64, status: FindingStatus) -> StoredFinding {
    StoredFinding {
        id: format!("{}:{opened_ms:015}", kind.as_str()),
        meter_id: meter(id),
        kind,
        status,
        opened_at: Timestamp::from_millis(opened_ms),
        last_seen: Timestamp::from_millis(opened_ms + HOUR),
        closed_at: (status == FindingStatus::Closed)
            .then(|| Timestamp::from_millis(opened_ms + 2 * HOUR)),
        score: 7.25,
        from: Timestamp::from_millis(opened_ms - 3 * HOUR),
        to: Timestamp::from_millis(opened_ms - QUARTER),
        explanation: format!("{kind} on {id}: \"quoted\", ünïcode"),
    }
}

pub async fn a_stored_finding_comes_back_whole_by_meter_and_id(f: Arc<dyn FindingStore>) {
    let open = finding("m-1", FindingKind::StuckRegister, T0, FindingStatus::Open);
    let closed = finding("m-1", FindingKind::Tamper, T0, FindingStatus::Closed);
    f.put(&[open.clone(), closed.clone()]).await.unwrap();
    assert_eq!(
        f.get(&meter("m-1"), &open.id).await.unwrap(),
        Some(open.clone())
    );
    assert_eq!(
        f.get(&meter("m-1"), &closed.id).await.unwrap(),
        Some(closed.clone())
    );
    assert_eq!(f.get(&meter("m-2"), &open.id).await.unwrap(), None);
    assert_eq!(
        f.for_meter(&meter("m-1")).await.unwrap(),
        vec![open.clone(), closed]
    );
    assert_eq!(f.open_for_meter(&meter("m-1")).await.unwrap(), vec![open]);
    assert!(f.for_meter(&meter("m-2")).await.unwrap().is_empty());
}

pub async fn rewriting_a_finding_replaces_it_and_a_closed_one_leaves_the_open_lists(
    f: Arc<dyn FindingStore>,
) {
    let open = finding("m-1", FindingKind::ZeroRun, T0, FindingStatus::Open);
    f.put(std::slice::from_ref(&open)).await.unwrap();
    let seen_again = StoredFinding {
        last_seen: Timestamp::from_millis(T0 + 5 * HOUR),
        score: 9.5,
        ..open.clone()
    };
    f.put(std::slice::from_ref(&seen_again)).await.unwrap();
    f.put(std::slice::from_ref(&seen_again)).await.unwrap();
    assert_eq!(
        f.for_meter(&meter("m-1")).await.unwrap(),
        vec![seen_again.clone()]
    );
    let closed = StoredFinding {
        status: FindingStatus::Closed,
        closed_at: Some(Timestamp::from_millis(T0 + 6 * HOUR)),
        ..seen_again
    };
    f.put(std::slice::from_ref(&closed)).await.unwrap();
    assert!(f.open_for_meter(&meter("m-1")).await.unwrap().is_empty());
    assert!(f.open_page(None, 10).await.unwrap().findings.is_empty());
    assert_eq!(
        f.get(&meter("m-1"), &closed.id).await.unwrap(),
        Some(closed)
    );
}

pub async fn open_findings_of_a_meter_stay_within_that_meter(f: Arc<dyn FindingStore>) {
    // "m-1" is a prefix of "m-10": a store keyed by prefix must not mix them.
    let a = finding("m-1", FindingKind::Gap, T0, FindingStatus::Open);
    let b = finding("m-10", FindingKind::Gap, T0, FindingStatus::Open);
    let c = finding("m-1.a", FindingKind::Gap, T0, FindingStatus::Open);
    f.put(&[b.clone(), a.clone(), c]).await.unwrap();
    assert_eq!(f.open_for_meter(&meter("m-1")).await.unwrap(), vec![a]);
    assert_eq!(f.open_for_meter(&meter("m-10")).await.unwrap(), vec![b]);
}

pub async fn the_fleets_open_findings_page_in_meter_and_id_order_each_once(
    f: Arc<dyn FindingStore>,
) {
    let mut all = Vec::new();
    for m in ["m-2", "m-1", "m-10", "a-9"] {
        for (k, kind) in [FindingKind::Spike, FindingKind::Tamper]
            .into_iter()
            .enumerate()
        {
            all.push(finding(m, kind, T0 + k as i64 * HOUR, FindingStatus::Open));
        }
        all.push(finding(m, FindingKind::Gap, T0, FindingStatus::Closed));
    }
    f.put(&all).await.unwrap();
    let mut expected: Vec<StoredFinding> = all.into_iter().filter(|s| s.is_open()).collect();
    expected.sort_by(|a, b| (&a.meter_id, &a.id).cmp(&(&b.meter_id, &b.id)));
    let mut got = Vec::new();
    let mut cursor: Option<FindingCursor> = None;
    for _ in 0..20 {
        let page = f.open_page(cursor.as_ref(), 3).await.unwrap();
        assert!(page.findings.len() <= 3);
        got.extend(page.findings);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(got, expected);
}

pub async fn consecutive_scans_of_one_condition_leave_one_finding_in_the_store(
    f: Arc<dyn FindingStore>,
) {
    let id = meter("m-1");
    let mut opened = 0;
    for scan in 1..=4 {
        let now = Timestamp::from_millis(T0 + scan * HOUR);
        let found = Finding {
            meter_id: id.clone(),
            kind: FindingKind::StuckRegister,
            score: scan as f64,
            from: Timestamp::from_millis(T0),
            to: now,
            explanation: "register unchanged while power flowed".into(),
        };
        let open = f.open_for_meter(&id).await.unwrap();
        let r = reconcile(&open, std::slice::from_ref(&found), now);
        opened += r.opened.len();
        f.put(&r.writes()).await.unwrap();
        // A retried scan (same time, same findings) opens nothing and writes the same again.
        let r2 = reconcile(&f.open_for_meter(&id).await.unwrap(), &[found], now);
        assert!(r2.opened.is_empty());
        f.put(&r2.writes()).await.unwrap();
    }
    assert_eq!(opened, 1);
    let stored = f.for_meter(&id).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].last_seen, Timestamp::from_millis(T0 + 4 * HOUR));
    // The condition is gone: the next scan closes it.
    let now = Timestamp::from_millis(T0 + 5 * HOUR);
    let r = reconcile(&f.open_for_meter(&id).await.unwrap(), &[], now);
    f.put(&r.writes()).await.unwrap();
    assert!(f.open_for_meter(&id).await.unwrap().is_empty());
    assert_eq!(f.for_meter(&id).await.unwrap()[0].closed_at, Some(now));
}

fn hours(first: i64, last: i64) -> meter_core::aggregate::HourRange {
    meter_core::aggregate::HourRange {
        first: Timestamp::from_millis(T0 + first * HOUR),
        last: Timestamp::from_millis(T0 + last * HOUR),
    }
}

pub async fn marks_of_one_meter_merge_into_the_range_covering_both(p: Arc<dyn PendingAggregates>) {
    p.mark(&meter("m-1"), hours(3, 4)).await.unwrap();
    p.mark(&meter("m-1"), hours(1, 2)).await.unwrap();
    p.mark(&meter("m-1"), hours(2, 6)).await.unwrap();
    assert_eq!(
        p.next(None, 10).await.unwrap(),
        vec![(meter("m-1"), hours(1, 6))]
    );
}

pub async fn pending_marks_page_in_meter_order_and_cleared_ones_are_gone(
    p: Arc<dyn PendingAggregates>,
) {
    for id in ["m-3", "m-1", "m-4", "m-2"] {
        p.mark(&meter(id), hours(0, 0)).await.unwrap();
    }
    let first: Vec<_> = p.next(None, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["m-1", "m-2"]
    );
    let rest: Vec<_> = p.next(Some(&meter("m-2")), 10).await.unwrap();
    assert_eq!(
        rest.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["m-3", "m-4"]
    );
    p.clear(&[meter("m-1"), meter("m-3")]).await.unwrap();
    let left: Vec<_> = p.next(None, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["m-2", "m-4"]
    );
    assert!(p.next(Some(&meter("m-4")), 10).await.unwrap().is_empty());
}
