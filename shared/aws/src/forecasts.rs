//! [`ForecastStore`] on the forecasts table: one partition per meter, sort key the issue time
//! (15 digits), so a meter's latest forecast is one reverse query of one item. Forecasts are
//! written with `BatchWriteItem` puts: an issue's item depends only on its inputs, so a re-run
//! shard overwrites its own forecasts instead of adding new ones.
//!
//! The 48 hours of points are one list attribute `points` of `[target ms, p10, p50, p90]`
//! (energies in mWh): 48 hours of half-hourly points are about 2.7 KB (three write units), of
//! quarter-hour points about 5.3 KB (six). The model's bands, kept so that the next days that
//! keep the model need no backtest, are one string attribute `bands` ([`Bands::to_stored`],
//! about 0.6 KB for half-hourly slots).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use meter_core::forecast::{Bands, BillProjection, ForecastPoint, ModelKind, StoredForecast};
use meter_core::ports::ForecastStore;
use meter_core::{Energy, MeterId, StoreError, Timestamp};

use crate::batch::put_all;
use crate::config::expires_at;
use crate::error::store_error;
use crate::item::{check_key_ms, f, ms_key, n, s, Fields, Item};

/// The partition key attribute.
const PK: &str = "meter_id";

/// Forecasts in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoForecastStore {
    client: Client,
    table: String,
    retention_days: u32,
}

impl DynamoForecastStore {
    /// An adapter on `table`; forecasts expire `retention_days` after their issue time.
    pub fn new(client: Client, table: impl Into<String>, retention_days: u32) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days,
        }
    }
}

fn encode(fc: &StoredForecast, retention_days: u32) -> Result<Item, StoreError> {
    check_key_ms("forecast", fc.issued_at.millis())?;
    let points = fc
        .points
        .iter()
        .map(|p| {
            AttributeValue::L(vec![
                n(p.target.millis()),
                n(p.p10.mwh()),
                n(p.p50.mwh()),
                n(p.p90.mwh()),
            ])
        })
        .collect();
    let mut item = HashMap::from([
        (PK.to_owned(), s(fc.meter_id.as_str())),
        ("sk".to_owned(), s(ms_key(fc.issued_at.millis()))),
        ("issued_at".to_owned(), n(fc.issued_at.millis())),
        ("model".to_owned(), s(fc.model.as_str())),
        ("points".to_owned(), AttributeValue::L(points)),
        ("next_day".to_owned(), n(fc.next_day.mwh())),
        ("month_to_date".to_owned(), n(fc.month_to_date.mwh())),
        ("rest_of_month".to_owned(), n(fc.rest_of_month.mwh())),
        (
            "expires_at".to_owned(),
            n(expires_at(fc.issued_at.millis(), retention_days)),
        ),
    ]);
    if let Some(bill) = &fc.projected_bill {
        item.insert("bill_amount".into(), f("bill_amount", bill.amount)?);
        item.insert("bill_currency".into(), s(bill.currency.as_str()));
    }
    if let Some(bands) = &fc.bands {
        item.insert("bands".into(), s(bands.to_stored()));
    }
    Ok(item)
}

fn decode(item: &Item, table: &str) -> Result<StoredForecast, StoreError> {
    let fields = Fields::new(item, table);
    let bad_points = || {
        StoreError::Corrupt(format!(
            "table {table}: attribute `points` is not a list of [t, p10, p50, p90]"
        ))
    };
    let points = match item.get("points") {
        Some(AttributeValue::L(rows)) => rows
            .iter()
            .map(|row| {
                let AttributeValue::L(cells) = row else {
                    return Err(bad_points());
                };
                let nums = cells
                    .iter()
                    .map(|c| match c {
                        AttributeValue::N(v) => v.parse::<i64>().map_err(|_| bad_points()),
                        _ => Err(bad_points()),
                    })
                    .collect::<Result<Vec<i64>, _>>()?;
                match nums.as_slice() {
                    [t, p10, p50, p90] => Ok(ForecastPoint {
                        target: Timestamp::from_millis(*t),
                        p10: Energy::from_mwh(*p10),
                        p50: Energy::from_mwh(*p50),
                        p90: Energy::from_mwh(*p90),
                    }),
                    _ => Err(bad_points()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(bad_points()),
    };
    let bill = match (
        fields.opt_n::<f64>("bill_amount")?,
        fields.opt_s("bill_currency")?,
    ) {
        (Some(amount), Some(currency)) => Some(BillProjection {
            amount,
            currency: currency.to_owned(),
        }),
        _ => None,
    };
    Ok(StoredForecast {
        meter_id: fields.parsed(PK, "a meter id", |v| MeterId::parse(v).ok())?,
        issued_at: Timestamp::from_millis(fields.n("issued_at")?),
        model: fields.parsed("model", "a model name", ModelKind::parse)?,
        points,
        next_day: Energy::from_mwh(fields.n("next_day")?),
        month_to_date: Energy::from_mwh(fields.n("month_to_date")?),
        rest_of_month: Energy::from_mwh(fields.n("rest_of_month")?),
        projected_bill: bill,
        bands: match fields.opt_s("bands")? {
            None => None,
            Some(text) => Some(Bands::from_stored(text).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "table {table}: attribute `bands` is not [[lo...],[hi...]] in mWh"
                ))
            })?),
        },
    })
}

#[async_trait]
impl ForecastStore for DynamoForecastStore {
    async fn put(&self, forecasts: &[StoredForecast]) -> Result<(), StoreError> {
        let count = put_all(
            &self.client,
            &self.table,
            forecasts,
            |fc| (fc.meter_id.as_str(), fc.issued_at.millis()),
            |fc| encode(fc, self.retention_days),
            "forecast",
        )
        .await?;
        tracing::debug!(table = %self.table, forecasts = count, "forecasts stored");
        Ok(())
    }

    async fn get(
        &self,
        meter: &MeterId,
        issued_at: Timestamp,
    ) -> Result<Option<StoredForecast>, StoreError> {
        if check_key_ms("forecast", issued_at.millis()).is_err() {
            return Ok(None);
        }
        let key = HashMap::from([
            (PK.to_owned(), s(meter.as_str())),
            ("sk".to_owned(), s(ms_key(issued_at.millis()))),
        ]);
        crate::ops::get_consistent(&self.client, &self.table, key, decode).await
    }

    async fn latest(&self, meter: &MeterId) -> Result<Option<StoredForecast>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(meter.as_str()))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(|e| store_error("Query", &self.table, e))?;
        out.items
            .unwrap_or_default()
            .first()
            .map(|i| decode(i, &self.table))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forecast_round_trips_through_its_item_with_its_bill_and_bands() {
        let mut fc = StoredForecast {
            meter_id: MeterId::parse("m-1").unwrap(),
            issued_at: Timestamp::from_millis(1_764_000_000_000),
            model: ModelKind::RidgeBlend,
            points: vec![ForecastPoint {
                target: Timestamp::from_millis(1_764_000_900_000),
                p10: Energy::from_mwh(1),
                p50: Energy::from_mwh(20),
                p90: Energy::from_mwh(300),
            }],
            next_day: Energy::from_mwh(5_000),
            month_to_date: Energy::from_mwh(6_000),
            rest_of_month: Energy::from_mwh(7_000),
            projected_bill: None,
            bands: None,
        };
        let item = encode(&fc, 90).unwrap();
        assert_eq!(item.get("sk"), Some(&s("001764000000000")));
        assert_eq!(
            item.get("expires_at"),
            Some(&n(1_764_000_000 + 90 * 86_400))
        );
        assert_eq!(decode(&item, "t").unwrap(), fc);
        fc.projected_bill = Some(BillProjection {
            amount: 41.25,
            currency: "AUD".into(),
        });
        assert_eq!(decode(&encode(&fc, 90).unwrap(), "t").unwrap(), fc);
        fc.bands = Some(Bands::from_mwh(&[-5, -1], &[3, 9]));
        assert_eq!(decode(&encode(&fc, 90).unwrap(), "t").unwrap(), fc);
        let mut broken = encode(&fc, 90).unwrap();
        broken.insert("bands".into(), s("[[1],[2,3]]"));
        assert!(matches!(decode(&broken, "t"), Err(StoreError::Corrupt(_))));
    }
}
