//! The real Lambda runtime path: `scripts/test` runs `cargo lambda watch` (the Lambda runtime
//! API emulator) with the functions pointed at moto; these tests invoke them with the sample
//! events through `cargo lambda invoke` and check what landed in DynamoDB and SQS. They run each
//! function's own `main.rs`: configuration from the environment, SDK clients, the handler.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use meter_aws::{
    DynamoAggregateStore, DynamoMeterRegistry, DynamoQuarantineStore, DynamoReadingStore,
    Retention, Tables,
};
use meter_core::aggregate::Period;
use meter_core::ports::{AggregateStore, MeterRegistry, QuarantineStore, ReadingStore};
use meter_core::{IngestReport, MeterInfo, Timestamp};
use meterflow_tests::fixtures::meter;

/// The port `cargo lambda watch` listens on, or `None` (skip) outside `scripts/test`. Under CI
/// a missing emulator is a failure, never a silent pass.
fn lambda_port() -> Option<String> {
    match std::env::var("METERFLOW_LAMBDA_PORT") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => {
            panic!("METERFLOW_LAMBDA_PORT is not set under CI: run the tests through scripts/test")
        }
        _ => {
            eprintln!("skipping: METERFLOW_LAMBDA_PORT not set (run scripts/test for the Lambda runtime test)");
            None
        }
    }
}

fn invoke(port: &str, fixture: &str) -> serde_json::Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/ingest")
        .join(fixture);
    invoke_function(port, "ingest", &file)
}

/// Invokes `function` through `cargo lambda invoke` with the event in `file`; returns its JSON
/// response (a failed invocation fails the test).
fn invoke_function(port: &str, function: &str, file: &std::path::Path) -> serde_json::Value {
    let fixture = file.display();
    let mut cmd = match std::env::var("METERFLOW_CARGO_LAMBDA") {
        Ok(bin) => {
            let mut c = Command::new(bin);
            c.arg("lambda");
            c
        }
        Err(_) => {
            let mut c = Command::new("cargo");
            c.arg("lambda");
            c
        }
    };
    let out = cmd
        .args([
            "invoke",
            function,
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            port,
            "--data-file",
        ])
        .arg(file)
        .output()
        .expect("run cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo lambda invoke {fixture} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{fixture}: {e}: {stdout}"))
}

fn report(v: &serde_json::Value) -> IngestReport {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    IngestReport {
        stored: n("stored"),
        duplicates: n("duplicates"),
        quarantined: n("quarantined"),
        quarantined_by_reason: serde_json::from_value(v["quarantined_by_reason"].clone()).unwrap(),
        events: n("events"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_function_runs_in_the_lambda_runtime_and_stores_into_dynamodb() {
    let Some(port) = lambda_port() else { return };
    let tables = Tables::from_env().unwrap_or_else(|_| Tables::with_prefix("lambda_"));
    let client = meter_aws::client_from_env().await;
    meter_aws::create_tables(&client, &tables).await.unwrap();
    let retention = Retention::from_lookup(|_| None).unwrap();
    let registry = DynamoMeterRegistry::new(client.clone(), &tables.meters);
    registry
        .upsert(&MeterInfo::new_consumer(
            meter("meter-0001"),
            chrono_tz::Tz::UTC,
        ))
        .await
        .unwrap();

    let single = report(&invoke(&port, "valid_single.json"));
    assert_eq!(
        (single.stored, single.duplicates, single.quarantined),
        (1, 0, 0)
    );
    let dup = report(&invoke(&port, "duplicate.json"));
    assert_eq!((dup.stored, dup.duplicates, dup.quarantined), (0, 1, 0));
    let batch = report(&invoke(&port, "valid_batch.json"));
    assert_eq!(batch.stored + batch.duplicates, 4);
    assert_eq!(batch.quarantined, 0);
    for (fixture, reason) in meterflow_tests::fixtures::rejection_fixtures() {
        let r = report(&invoke(&port, fixture));
        assert_eq!(
            r.quarantined_by_reason.get(reason),
            Some(&1),
            "{fixture}: {r:?}"
        );
    }

    // What landed in DynamoDB, read back through the adapters.
    let m = meter("meter-0001");
    let readings = DynamoReadingStore::new(client.clone(), &tables.readings, &retention)
        .range(
            &m,
            Timestamp::from_millis(0),
            Timestamp::from_millis(i64::MAX / 2),
        )
        .await
        .unwrap();
    assert!(readings.len() >= 2, "{readings:?}");
    let first = readings.first().unwrap().ts.to_datetime().date_naive();
    let days = DynamoAggregateStore::new(client.clone(), &tables.aggregates)
        .range(&m, Period::Day(first), Period::Day(first))
        .await
        .unwrap();
    assert_eq!(days.len(), 1, "a daily aggregate for {first}");
    let quarantined = DynamoQuarantineStore::new(client.clone(), &tables.quarantine, &retention)
        .for_meter("meter-0001", 100)
        .await
        .unwrap();
    assert!(quarantined.len() >= 7, "{quarantined:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forecast_function_runs_in_the_lambda_runtime_fans_out_over_sqs_and_stores_forecasts() {
    use meter_aws::ForecastTables;
    let Some(port) = lambda_port() else { return };
    // The names `scripts/test` gives `cargo lambda watch`.
    let tables = Tables::with_prefix("lambda_");
    let forecasts_table =
        std::env::var("FORECASTS_TABLE").unwrap_or_else(|_| "lambda_forecasts".into());
    let queue_name = std::env::var("METERFLOW_LAMBDA_SHARD_QUEUE")
        .unwrap_or_else(|_| "lambda-forecast-shards".into());
    let client = meter_aws::client_from_env().await;
    meter_aws::create_tables(&client, &tables).await.unwrap();
    meter_aws::create_forecast_table(&client, &forecasts_table)
        .await
        .unwrap();
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue_name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    // Three meters with 14 days of quarter-hour readings before the sample events' issue time
    // (2026-03-15T00:00Z).
    let ids = ["lf-0", "lf-1", "lf-2"];
    meterflow_tests::moto::seed_forecast_history(&client, &tables, &ids).await;

    // The coordinator sample event: four shard messages on the queue.
    let events = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/forecast");
    let r = invoke_function(&port, "forecast", &events.join("coordinator.json"));
    assert_eq!(r["dispatched"], 4, "{r}");
    let records = meterflow_tests::moto::receive_records(&sqs, &queue_url, 4).await;
    assert_eq!(records.len(), 4, "one message per shard: {records:?}");

    // Each shard's message, as the SQS trigger would deliver it, forecasts its meters.
    let dir = std::env::temp_dir().join(format!("meterflow-lambda-fc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut forecast = 0;
    for (i, record) in records.iter().enumerate() {
        let event = serde_json::json!({ "Records": [record] });
        let file = dir.join(format!("sqs-{i}.json"));
        std::fs::write(&file, event.to_string()).unwrap();
        let r = invoke_function(&port, "forecast", &file);
        assert_eq!(r["batchItemFailures"], serde_json::json!([]), "{r}");
        forecast += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(forecast, 4);
    let ft = ForecastTables {
        meters: tables.meters.clone(),
        readings: tables.readings.clone(),
        forecasts: forecasts_table,
    };
    let ports = meter_aws::forecast_ports(client.clone(), &ft, 90);
    let issued = Timestamp::parse_rfc3339("2026-03-15T00:00:00Z").unwrap();
    meterflow_tests::moto::assert_forecasts_stored(ports.forecasts.as_ref(), &ids, issued).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anomaly_scan_function_runs_in_the_lambda_runtime_and_keeps_one_finding_per_condition()
{
    use meter_core::anomaly::FindingKind;
    use meter_core::ports::FindingStore;
    use meterflow_tests::fixtures::{day_series, QUARTER, T0};
    let Some(port) = lambda_port() else { return };
    // The names `scripts/test` gives `cargo lambda watch`.
    let tables = Tables::with_prefix("lambda_");
    let findings_table =
        std::env::var("FINDINGS_TABLE").unwrap_or_else(|_| "lambda_findings".into());
    let client = meter_aws::client_from_env().await;
    meter_aws::create_tables(&client, &tables).await.unwrap();
    meter_aws::create_findings_table(&client, &findings_table)
        .await
        .unwrap();
    // Three consumers with the last 3 days of quarter-hour readings before the sample events'
    // scan time (2026-03-15T00:00Z); the last four readings of `ls-2` report tamper.
    let ingest = meter_aws::dynamo_ports(client.clone(), &tables, &Retention::default()).await;
    for i in 0..3 {
        let id = format!("ls-{i}");
        ingest
            .registry
            .upsert(&MeterInfo::new_consumer(meter(&id), chrono_tz::Tz::UTC))
            .await
            .unwrap();
        let mut rs = day_series(&id, T0 + 11 * 86_400_000 + QUARTER, 0.0, 3 * 96);
        let mut prev = 0.0;
        for r in &mut rs {
            r.power_w = Some((r.energy_import.kwh() - prev) * 4_000.0);
            prev = r.energy_import.kwh();
        }
        if i == 2 {
            let n = rs.len();
            for r in &mut rs[n - 4..] {
                r.status = meter_core::MeterStatus::Tamper;
            }
        }
        ingest.readings.insert(&rs).await.unwrap();
    }

    // The shard sample event (one shard: the whole registry), twice: the second run finds the
    // same condition and opens nothing.
    let events = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/anomaly-scan");
    let mine = |r: &serde_json::Value| -> Vec<(String, String)> {
        r["opened"]
            .as_array()
            .unwrap_or_else(|| panic!("no opened list in {r}"))
            .iter()
            .filter(|o| o["meter_id"].as_str().is_some_and(|m| m.starts_with("ls-")))
            .map(|o| {
                (
                    o["meter_id"].as_str().unwrap().to_owned(),
                    o["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let first = invoke_function(&port, "anomaly-scan", &events.join("shard.json"));
    assert_eq!(
        mine(&first),
        vec![("ls-2".to_owned(), "tamper".to_owned())],
        "{first}"
    );
    let second = invoke_function(&port, "anomaly-scan", &events.join("shard.json"));
    assert!(mine(&second).is_empty(), "{second}");
    let store = meter_aws::DynamoFindingStore::new(client, findings_table, 90);
    let stored = store.for_meter(&meter("ls-2")).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0].kind, FindingKind::Tamper);
}
