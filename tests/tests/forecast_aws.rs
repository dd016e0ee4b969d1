//! The forecast function's AWS path on moto: the coordinator sends one SQS message per shard
//! through [`meter_aws::SqsShardDispatcher`], and those messages, handed back to the handler as
//! the SQS event Lambda would deliver, forecast every meter from DynamoDB into the forecasts
//! table, exactly once per meter. Skips without moto, except under `CI`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use forecast::{ForecastConfig, Forecaster, Response};
use meter_aws::ForecastTables;
use meter_core::Timestamp;
use meterflow_tests::fixtures::{meter, T0};
use meterflow_tests::moto::{
    assert_forecasts_stored, receive_records, seed_forecast_history, skip_without_moto, ShardedAws,
};

const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_run_over_sqs_forecasts_every_meter_from_dynamodb_once() {
    if skip_without_moto() {
        return;
    }
    let aws = ShardedAws::start("fa").await;
    let (dynamo, sqs, tables, queue_url) = (&aws.dynamo, &aws.sqs, &aws.tables, &aws.queue_url);
    let ft = ForecastTables {
        meters: tables.meters.clone(),
        readings: tables.readings.clone(),
        forecasts: format!("{}forecasts", aws.prefix),
    };
    meter_aws::create_forecast_table(dynamo, &ft.forecasts)
        .await
        .unwrap();

    // Six meters with 14 days of quarter-hour readings, written through the ingest adapters.
    let ids: Vec<String> = (0..6).map(|i| format!("aws-{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    seed_forecast_history(dynamo, tables, &id_refs).await;

    let ports = meter_aws::forecast_ports(dynamo.clone(), &ft, 90);
    let f = Forecaster {
        registry: ports.registry,
        readings: ports.readings,
        forecasts: ports.forecasts.clone(),
        dispatcher: Arc::new(meter_aws::SqsShardDispatcher::new(sqs.clone(), queue_url)),
        config: ForecastConfig::default(),
    };
    let issued = Timestamp::from_millis(T0 + 14 * DAY);
    let now = issued.add_millis(60_000);
    let coordinator =
        serde_json::json!({"mode": "coordinator", "shards": 13, "issued_at": issued.millis()});
    forecast::handle(&f, &coordinator, now).await.unwrap();

    // Collect the 13 messages as Lambda's SQS poller would, and hand them over as one event.
    let records = receive_records(sqs, queue_url, 13).await;
    assert_eq!(records.len(), 13, "one message per shard");
    let event = serde_json::json!({ "Records": records });
    let r = forecast::handle(&f, &event, now).await.unwrap();
    assert_eq!(
        r,
        Response::Batch {
            batch_item_failures: vec![]
        }
    );
    let stored = assert_forecasts_stored(ports.forecasts.as_ref(), &id_refs, issued).await;
    for (id, fc) in id_refs.iter().zip(stored) {
        assert_eq!(ports.forecasts.latest(&meter(id)).await.unwrap(), Some(fc));
    }
}
