//! The anomaly-scan function's AWS path on moto: the coordinator sends one SQS message per
//! shard through [`meter_aws::SqsShardDispatcher`], and those messages, handed back to the
//! handler as the SQS event Lambda would deliver, scan the fleet's readings in DynamoDB and keep
//! the findings table: a planted fault is one finding, and running the same scan again adds
//! nothing. Skips without moto, except under `CI`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use anomaly_scan::{Response, ScanSettings, Scanner};
use meter_aws::ScanTables;
use meter_core::anomaly::{FindingKind, FindingStatus};
use meter_core::{MeterInfo, MeterStatus, Timestamp};
use meterflow_tests::fixtures::{day_series, meter, QUARTER, T0};
use meterflow_tests::moto::{receive_records, skip_without_moto, ShardedAws};

const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_over_sqs_stores_a_planted_fault_once_in_dynamodb() {
    if skip_without_moto() {
        return;
    }
    let aws = ShardedAws::start("sa").await;
    let (dynamo, sqs, tables, queue_url) = (&aws.dynamo, &aws.sqs, &aws.tables, &aws.queue_url);
    let st = ScanTables {
        meters: tables.meters.clone(),
        readings: tables.readings.clone(),
        findings: format!("{}findings", aws.prefix),
    };
    meter_aws::create_findings_table(dynamo, &st.findings)
        .await
        .unwrap();

    // Three consumers with 3 days of quarter-hour readings (power consistent with energy);
    // the last four readings of `sa-2` report tamper.
    let ingest =
        meter_aws::dynamo_ports(dynamo.clone(), tables, &meter_aws::Retention::default()).await;
    for i in 0..3 {
        let id = format!("sa-{i}");
        ingest
            .registry
            .upsert(&MeterInfo::new_consumer(meter(&id), chrono_tz::Tz::UTC))
            .await
            .unwrap();
        let mut rs = day_series(&id, T0 + QUARTER, 10.0 * i as f64, 3 * 96);
        let mut prev = 10.0 * i as f64;
        for r in &mut rs {
            r.power_w = Some((r.energy_import.kwh() - prev) * 4_000.0);
            prev = r.energy_import.kwh();
        }
        if i == 2 {
            let n = rs.len();
            for r in &mut rs[n - 4..] {
                r.status = MeterStatus::Tamper;
            }
        }
        ingest.readings.insert(&rs).await.unwrap();
    }

    let ports = meter_aws::scan_ports(dynamo.clone(), &st, 90);
    let s = Scanner {
        registry: ports.registry,
        readings: ports.readings,
        findings: ports.findings.clone(),
        dispatcher: Arc::new(meter_aws::SqsShardDispatcher::new(sqs.clone(), queue_url)),
        settings: ScanSettings::default(),
    };
    let at = Timestamp::from_millis(T0 + 3 * DAY);
    let now = at.add_millis(60_000);
    let coordinator =
        serde_json::json!({"mode": "coordinator", "shards": 3, "scan_at": at.millis()});
    // The same scan twice (a retried coordinator): the second finds the same and adds nothing.
    // Received messages stay invisible for the queue's visibility timeout, so the second round
    // reads the second round's messages (any three would do: they are the same scan's shards).
    for _ in 0..2 {
        anomaly_scan::handle(&s, &coordinator, now).await.unwrap();
        let records = receive_records(sqs, queue_url, 3).await;
        assert_eq!(records.len(), 3, "one message per shard");
        let event = serde_json::json!({ "Records": records });
        let r = anomaly_scan::handle(&s, &event, now).await.unwrap();
        assert_eq!(
            r,
            Response::Batch {
                batch_item_failures: vec![]
            }
        );
    }
    let stored = ports.findings.for_meter(&meter("sa-2")).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(
        (stored[0].kind, stored[0].status, stored[0].opened_at),
        (FindingKind::Tamper, FindingStatus::Open, at)
    );
    let open = ports.findings.open_page(None, 100).await.unwrap().findings;
    assert_eq!(open, stored, "the fleet's only open finding");
}
