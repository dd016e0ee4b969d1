//! The sample Lambda events in `events/ingest` hold what `events/ingest/README.md` says they hold,
//! and `docs/telemetry-v1.schema.json` agrees with the parser about what a valid message is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use meter_core::ingest::{Inbound, IngestConfig, Ingestor, RegistryMode};
use meter_core::memory::memory_ports;
use meter_core::registry::{parse_timezone, MeterInfo};
use meter_core::telemetry::{parse_message, MessageContext};
use meter_core::validation::MAX_PAYLOAD_BYTES;
use meter_core::{Limits, MeterId, QuarantineReason, Timestamp};
use meterflow_tests::fixtures::{Outcome, FIXTURES};
use serde_json::{json, Value};

/// `received_ms` of every sample event: 2025-11-22T08:26:40Z.
const RECEIVED_MS: i64 = 1_763_800_000_000;

/// Fixtures the schema must reject: a message shape problem a schema can see.
const SCHEMA_REJECTS: &[&str] = &[
    "schema_violation.json",
    "missing_field.json",
    "unsupported_version.json",
    "value_out_of_range.json",
];

/// Fixtures whose problem only the platform can see (topic, registry, clock, size): the message
/// itself is well-formed, so the schema must accept it.
const SCHEMA_CANNOT_TELL: &[&str] = &[
    "meter_id_mismatch.json",
    "unknown_meter.json",
    "clock_skew.json",
    "too_old.json",
    "payload_too_large.json",
];

/// Fixtures that are base64 envelopes from the rule for non-JSON payloads.
const ENVELOPES: &[&str] = &["malformed_json.json", "non_finite_number.json"];

/// Fields the IoT rules add to the payload.
const RULE_FIELDS: &[&str] = &["topic_meter_id", "received_ms", "topic"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn events_dir() -> PathBuf {
    repo_root().join("events/ingest")
}

fn raw(name: &str) -> Vec<u8> {
    let path = events_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&raw(name)).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// The meter's payload inside a rule's output: the event without the fields the rule added.
fn payload_of(event: &Value) -> Value {
    let mut payload = event.clone();
    if let Some(o) = payload.as_object_mut() {
        for f in RULE_FIELDS {
            o.remove(*f);
        }
    }
    payload
}

fn schema() -> Value {
    let path = repo_root().join("docs/telemetry-v1.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
}

/// Why the schema refuses `instance`, or `None` if it accepts it.
fn schema_errors(v: &jsonschema::Validator, instance: &Value) -> Option<String> {
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// Standard base64, enough for the envelopes (the package has no base64 dependency).
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes().filter(|&c| c != b'=') {
        let sextet = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("standard base64");
        acc = (acc << 6) | sextet as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn ctx() -> MessageContext<'static> {
    MessageContext {
        topic: None,
        received: Timestamp::from_millis(RECEIVED_MS),
    }
}

#[test]
fn every_fixture_file_is_json_and_listed_with_its_outcome() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let listed: BTreeSet<String> = FIXTURES.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(
        on_disk, listed,
        "every file in events/ingest needs an expected outcome here"
    );
    for name in &on_disk {
        assert!(fixture(name).is_object(), "{name} is not a JSON object");
    }
}

#[test]
fn the_readme_describes_every_fixture() {
    let readme = std::fs::read_to_string(events_dir().join("README.md")).unwrap();
    for (name, outcome) in FIXTURES {
        let line = readme
            .lines()
            .find(|l| l.contains(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("README.md has no line for {name}"));
        let promised = match outcome {
            Outcome::Stored(_) => "stored".to_owned(),
            Outcome::Duplicate => "duplicate".to_owned(),
            Outcome::Quarantined(r) => format!("`{r}`"),
        };
        assert!(
            line.contains(&promised),
            "README line for {name} does not say {promised}: {line}"
        );
    }
}

#[test]
fn every_event_carries_the_fixed_receive_time() {
    for (name, _) in FIXTURES {
        assert_eq!(fixture(name)["received_ms"], json!(RECEIVED_MS), "{name}");
    }
}

#[test]
fn duplicate_is_a_byte_for_byte_redelivery_of_valid_single() {
    assert_eq!(raw("duplicate.json"), raw("valid_single.json"));
}

#[test]
fn the_schema_is_valid_draft_2020_12() {
    let schema = schema();
    assert_eq!(
        schema["$schema"],
        json!("https://json-schema.org/draft/2020-12/schema")
    );
    jsonschema::meta::validate(&schema).expect("the schema is valid against its meta-schema");
}

#[test]
fn the_schema_accepts_the_valid_fixtures_with_and_without_the_rule_fields() {
    let v = validator();
    for name in ["valid_single.json", "valid_batch.json", "duplicate.json"] {
        let event = fixture(name);
        assert_eq!(
            schema_errors(&v, &event),
            None,
            "{name} as the rule's output"
        );
        let payload = payload_of(&event);
        assert!(payload.get("topic_meter_id").is_none());
        assert_eq!(
            schema_errors(&v, &payload),
            None,
            "{name} as the meter published it"
        );
    }
}

#[test]
fn the_schema_rejects_what_a_schema_can_see() {
    let v = validator();
    let expected_path = [
        ("schema_violation.json", "/voltage_v"),
        ("missing_field.json", ""),
        ("unsupported_version.json", "/v"),
        ("value_out_of_range.json", "/energy_import_kwh"),
    ];
    assert_eq!(expected_path.map(|(n, _)| n), SCHEMA_REJECTS);
    for (name, path) in expected_path {
        let payload = payload_of(&fixture(name));
        let errors =
            schema_errors(&v, &payload).unwrap_or_else(|| panic!("the schema accepts {name}"));
        assert!(errors.contains(&format!("{path}: ")), "{name}: {errors}");
    }
}

#[test]
fn the_schema_accepts_messages_whose_problem_only_the_platform_can_see() {
    let v = validator();
    for name in SCHEMA_CANNOT_TELL {
        assert_eq!(
            schema_errors(&v, &payload_of(&fixture(name))),
            None,
            "{name}"
        );
    }
    assert!(raw("payload_too_large.json").len() > MAX_PAYLOAD_BYTES);
}

#[test]
fn envelopes_carry_a_payload_that_is_not_json_and_no_meter_message() {
    let v = validator();
    for name in ENVELOPES {
        let event = fixture(name);
        assert_eq!(
            event["topic"],
            json!("meters/meter-0001/telemetry"),
            "{name}"
        );
        let b64 = event["payload_b64"].as_str().unwrap();
        let inner = base64_decode(b64);
        assert!(
            serde_json::from_slice::<Value>(&inner).is_err(),
            "{name} wraps valid JSON"
        );
        assert!(
            !v.is_valid(&event),
            "the schema takes the envelope {name} for a meter message"
        );
    }
}

#[test]
fn the_parser_gives_every_fixture_the_promised_reason() {
    for (name, outcome) in FIXTURES {
        let items = parse_message(&raw(name), ctx(), &Limits::default());
        match outcome {
            // Duplicates and unknown meters are for the stores and the registry to decide.
            Outcome::Stored(n) => {
                assert!(items.iter().all(Result::is_ok), "{name}: {items:?}");
                assert_eq!(items.len() as u64, *n, "{name}: {items:?}");
            }
            Outcome::Duplicate | Outcome::Quarantined(QuarantineReason::UnknownMeter) => {
                assert!(items.len() == 1 && items[0].is_ok(), "{name}: {items:?}")
            }
            Outcome::Quarantined(reason) => {
                assert_eq!(items.len(), 1, "{name}: {items:?}");
                let q = items[0].as_ref().expect_err(name);
                assert_eq!(q.reason, *reason, "{name}: {}", q.detail);
            }
        }
    }
}

#[test]
fn the_batch_is_four_quarter_hours_of_one_meter_in_time_order() {
    let items = parse_message(&raw("valid_batch.json"), ctx(), &Limits::default());
    let readings: Vec<_> = items.into_iter().map(Result::unwrap).collect();
    let start = Timestamp::parse_rfc3339("2025-11-22T07:00:00Z")
        .unwrap()
        .millis();
    let ts: Vec<i64> = readings.iter().map(|r| r.ts.millis()).collect();
    assert_eq!(
        ts,
        (0..4)
            .map(|i| start + i * 15 * 60 * 1000)
            .collect::<Vec<_>>()
    );
    assert!(readings.iter().all(|r| r.meter_id.as_str() == "meter-0001"));
    assert!(readings
        .windows(2)
        .all(|w| w[0].energy_import < w[1].energy_import));
    assert!(readings.iter().all(|r| r.received.millis() == RECEIVED_MS));
}

#[tokio::test]
async fn every_fixture_gets_the_outcome_the_readme_promises_when_ingested() {
    let ports = memory_ports();
    let utc = parse_timezone("UTC").unwrap();
    ports
        .registry
        .register_if_absent(&MeterInfo::new_consumer(
            MeterId::parse("meter-0001").unwrap(),
            utc,
        ))
        .await
        .unwrap();
    let config = IngestConfig {
        registry_mode: RegistryMode::Enforce,
        ..IngestConfig::default()
    };
    let ingestor = Ingestor::new(ports, config);
    for (name, outcome) in FIXTURES {
        let payload = raw(name);
        let inbound = Inbound {
            payload: &payload,
            ctx: ctx(),
        };
        let report = ingestor.ingest(&[inbound]).await.unwrap();
        let got = (report.stored, report.duplicates, report.quarantined);
        match outcome {
            Outcome::Stored(n) => assert_eq!(got, (*n, 0, 0), "{name}: {report:?}"),
            Outcome::Duplicate => assert_eq!(got, (0, 1, 0), "{name}: {report:?}"),
            Outcome::Quarantined(reason) => {
                assert_eq!(got, (0, 0, 1), "{name}: {report:?}");
                assert_eq!(
                    report.quarantined_by_reason.get(reason.as_str()),
                    Some(&1),
                    "{name}: {report:?}"
                );
            }
        }
    }
}

/// Small messages on which the schema and the parser must agree: accepted by one exactly when
/// every reading in it is accepted by the other.
#[test]
fn the_schema_and_the_parser_agree_on_edge_cases() {
    let cases = [
        json!({"v": 1, "ts": 1763799300000_i64, "energy_import_kwh": 0}),
        json!({"v": 1, "ts": "2025-11-22T09:15:00+01:00", "energy_import_kwh": 1.5}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00.250Z", "energy_import_kwh": 1.5, "firmware": "2.4.1"}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5, "power_w": null, "relay": null}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5, "status": "low_battery"}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5, "frequency_hz": 0}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5, "power_w": -3000.0}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00", "energy_import_kwh": 1.5}),
        json!({"v": 1, "ts": "yesterday", "energy_import_kwh": 1.5}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z"}),
        json!({"ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5}),
        json!({"v": "1", "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5, "relay": "half"}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5, "seq": -1}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5, "voltage_v": 5000}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5, "frequency_hz": 5}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5, "power_factor": 1.2}),
        json!({"v": 1, "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 2e6}),
        json!({"v": 1, "meter_id": "bad/id", "ts": "2025-11-22T08:15:00Z", "energy_import_kwh": 1.5}),
        json!({"v": 1, "readings": [{"ts": "2025-11-22T08:00:00Z", "energy_import_kwh": 1.0}]}),
        json!({"readings": [{"v": 1, "ts": "2025-11-22T08:00:00Z", "energy_import_kwh": 1.0}]}),
        json!({"readings": [{"ts": "2025-11-22T08:00:00Z", "energy_import_kwh": 1.0}]}),
        json!({"v": 1, "readings": [{"ts": "2025-11-22T08:00:00Z"}]}),
        json!({"v": 1, "readings": [{"readings": [], "ts": "2025-11-22T08:00:00Z", "energy_import_kwh": 1.0}]}),
        json!({"v": 1, "readings": [{"v": 2, "ts": "2025-11-22T08:00:00Z", "energy_import_kwh": 1.0}]}),
        json!({"v": 1, "readings": "soon"}),
    ];
    let v = validator();
    let topic = Some("meters/meter-0001/telemetry");
    for case in cases {
        let bytes = serde_json::to_vec(&case).unwrap();
        let items = parse_message(
            &bytes,
            MessageContext { topic, ..ctx() },
            &Limits::default(),
        );
        let parser_accepts = items.iter().all(Result::is_ok);
        let schema_verdict = schema_errors(&v, &case);
        assert_eq!(
            schema_verdict.is_none(),
            parser_accepts,
            "{case}\n schema: {schema_verdict:?}\n parser: {items:?}"
        );
    }
}

#[test]
fn the_fast_path_and_serde_read_every_sample_and_simulated_message_alike() {
    use meter_core::telemetry::parse_message_reference;
    use meterflow_tests::fixtures::{batch_payload, day_series, payload, topic};
    let limits = Limits::default();
    let mut messages: Vec<(Option<String>, Vec<u8>)> = FIXTURES
        .iter()
        .map(|(file, _)| (None, std::fs::read(events_dir().join(file)).unwrap()))
        .collect();
    let series = day_series("m-1", meterflow_tests::fixtures::T0, 12_345.678, 96);
    messages.extend(series.iter().map(|r| (Some(topic("m-1")), payload(r))));
    messages.extend(
        series
            .chunks(10)
            .map(|c| (Some(topic("m-1")), batch_payload(c))),
    );
    for (t, raw) in &messages {
        let ctx = MessageContext {
            topic: t.as_deref(),
            received: Timestamp::from_millis(RECEIVED_MS + 400 * 86_400_000),
        };
        let fast = parse_message(raw, ctx, &limits);
        let reference = parse_message_reference(raw, ctx, &limits);
        assert_eq!(
            fast,
            reference,
            "{}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        );
    }
}
