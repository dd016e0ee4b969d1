//! The handler against every sample event in `events/ingest/`, on in-memory ports: each file
//! ends exactly as `events/ingest/README.md` says it must.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use meter_core::memory::memory_ports;
use meter_core::{IngestConfig, IngestReport, Ingestor, MeterId, MeterInfo, Timestamp};
use serde_json::value::RawValue;

fn fixture(name: &str) -> Box<RawValue> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/ingest")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RawValue::from_string(text).unwrap()
}

async fn ingestor() -> Ingestor {
    let ports = memory_ports();
    ports
        .registry
        .upsert(&MeterInfo::new_consumer(
            MeterId::parse("meter-0001").unwrap(),
            chrono_tz::Tz::UTC,
        ))
        .await
        .unwrap();
    Ingestor::new(ports, IngestConfig::default())
}

const NOW: Timestamp = Timestamp::from_millis(1_763_800_000_000);

async fn run(ing: &Ingestor, name: &str) -> IngestReport {
    ingest::handle(ing, &fixture(name), NOW).await.unwrap()
}

#[tokio::test]
async fn a_valid_single_reading_is_stored() {
    let r = run(&ingestor().await, "valid_single.json").await;
    assert_eq!((r.stored, r.duplicates, r.quarantined), (1, 0, 0));
}

#[tokio::test]
async fn a_store_and_forward_batch_is_stored_whole() {
    let r = run(&ingestor().await, "valid_batch.json").await;
    assert_eq!((r.stored, r.duplicates, r.quarantined), (4, 0, 0));
}

#[tokio::test]
async fn a_redelivered_message_is_a_duplicate() {
    let ing = ingestor().await;
    run(&ing, "valid_single.json").await;
    let r = run(&ing, "duplicate.json").await;
    assert_eq!((r.stored, r.duplicates, r.quarantined), (0, 1, 0));
}

#[tokio::test]
async fn an_array_event_is_handled_as_several_messages() {
    let ing = ingestor().await;
    let single = fixture("valid_single.json");
    let batch = fixture("valid_batch.json");
    let event = RawValue::from_string(format!("[{},{}]", single.get(), batch.get())).unwrap();
    let r = ingest::handle(&ing, &event, NOW).await.unwrap();
    assert_eq!(r.stored + r.duplicates, 5);
}

#[tokio::test]
async fn every_rejection_fixture_is_quarantined_with_its_named_reason() {
    let cases = meterflow_tests::fixtures::rejection_fixtures();
    for (file, reason) in cases {
        let r = run(&ingestor().await, file).await;
        assert_eq!((r.stored, r.duplicates, r.quarantined), (0, 0, 1), "{file}");
        assert_eq!(
            r.quarantined_by_reason.get(reason),
            Some(&1),
            "{file}: {r:?}"
        );
    }
}

#[tokio::test]
async fn every_quarantine_reason_has_a_fixture() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/ingest");
    for reason in meter_core::QuarantineReason::ALL {
        assert!(
            dir.join(format!("{}.json", reason.as_str())).exists(),
            "no fixture for {reason}"
        );
    }
}

#[tokio::test]
async fn the_handler_split_in_its_two_halves_gives_what_it_gives_whole() {
    let event = fixture("valid_batch.json");
    let whole = ingest::handle(&ingestor().await, &event, NOW)
        .await
        .unwrap();
    let ing = ingestor().await;
    let items = ingest::parse(&ing, &event, NOW);
    let halves = ingest::handle_parsed(&ing, &items).await.unwrap();
    assert_eq!(halves, whole);
    // The parsed items are only read: handing them over again (a retry) stores nothing twice.
    let again = ingest::handle_parsed(&ing, &items).await.unwrap();
    assert_eq!((again.stored, again.duplicates), (0, whole.stored));
}
