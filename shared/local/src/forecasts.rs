//! [`ForecastStore`] in SQLite: one row per `(meter_id, issued_at)`, the points as a compact
//! JSON array of `[target ms, p10, p50, p90]` in mWh (a forecast is always read whole, so the
//! points need no rows of their own).

use std::sync::Arc;

use async_trait::async_trait;
use meter_core::forecast::{Bands, BillProjection, ForecastPoint, ModelKind, StoredForecast};
use meter_core::ports::{ForecastStore, StoreError};
use meter_core::{Energy, MeterId, Timestamp};
use rusqlite::{params, OptionalExtension, Row};

use crate::{corrupt, sql, SqliteDb, WriteScope};

/// Issued forecasts in SQLite.
pub struct SqliteForecastStore {
    pub(crate) db: Arc<SqliteDb>,
}

impl SqliteForecastStore {
    /// The forecast adapter over `db`.
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }
}

const COLUMNS: &str = "issued_at, model, points, next_day, month_to_date, rest_of_month, \
     bill_amount, bill_currency, bands";

fn encode_points(points: &[ForecastPoint]) -> String {
    let rows: Vec<[i64; 4]> = points
        .iter()
        .map(|p| [p.target.millis(), p.p10.mwh(), p.p50.mwh(), p.p90.mwh()])
        .collect();
    serde_json::Value::from(
        rows.iter()
            .map(|r| serde_json::Value::from(r.to_vec()))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

fn decode(
    meter: &MeterId,
    row: &Row<'_>,
) -> Result<Result<StoredForecast, StoreError>, rusqlite::Error> {
    let issued_at: i64 = row.get(0)?;
    let model: String = row.get(1)?;
    let points: String = row.get(2)?;
    let (next_day, month_to_date, rest_of_month): (i64, i64, i64) =
        (row.get(3)?, row.get(4)?, row.get(5)?);
    let bill_amount: Option<f64> = row.get(6)?;
    let bill_currency: Option<String> = row.get(7)?;
    let bands: Option<String> = row.get(8)?;
    Ok((|| {
        let rows: Vec<[i64; 4]> =
            serde_json::from_str(&points).map_err(|_| corrupt("forecast points", &points))?;
        Ok(StoredForecast {
            meter_id: meter.clone(),
            issued_at: Timestamp::from_millis(issued_at),
            model: ModelKind::parse(&model).ok_or_else(|| corrupt("forecast model", &model))?,
            points: rows
                .into_iter()
                .map(|[t, p10, p50, p90]| ForecastPoint {
                    target: Timestamp::from_millis(t),
                    p10: Energy::from_mwh(p10),
                    p50: Energy::from_mwh(p50),
                    p90: Energy::from_mwh(p90),
                })
                .collect(),
            next_day: Energy::from_mwh(next_day),
            month_to_date: Energy::from_mwh(month_to_date),
            rest_of_month: Energy::from_mwh(rest_of_month),
            projected_bill: match (bill_amount, bill_currency) {
                (Some(amount), Some(currency)) => Some(BillProjection { amount, currency }),
                _ => None,
            },
            bands: match bands {
                None => None,
                Some(text) => Some(
                    Bands::from_stored(&text).ok_or_else(|| corrupt("forecast bands", &text))?,
                ),
            },
        })
    })())
}

#[async_trait]
impl ForecastStore for SqliteForecastStore {
    async fn put(&self, forecasts: &[StoredForecast]) -> Result<(), StoreError> {
        let conn = self.db.conn()?;
        let tx = WriteScope::new(&conn)?;
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO forecasts (meter_id, {COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ))
                .map_err(sql)?;
            for f in forecasts {
                let bill = f.projected_bill.as_ref();
                stmt.execute(params![
                    f.meter_id.as_str(),
                    f.issued_at.millis(),
                    f.model.as_str(),
                    encode_points(&f.points),
                    f.next_day.mwh(),
                    f.month_to_date.mwh(),
                    f.rest_of_month.mwh(),
                    bill.map(|b| b.amount),
                    bill.map(|b| b.currency.as_str()),
                    f.bands.as_ref().map(Bands::to_stored),
                ])
                .map_err(sql)?;
            }
        }
        tx.commit()
    }

    async fn get(
        &self,
        meter: &MeterId,
        issued_at: Timestamp,
    ) -> Result<Option<StoredForecast>, StoreError> {
        let conn = self.db.conn()?;
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM forecasts WHERE meter_id = ?1 AND issued_at = ?2"
        ))
        .and_then(|mut s| {
            s.query_row(params![meter.as_str(), issued_at.millis()], |r| {
                decode(meter, r)
            })
            .optional()
        })
        .map_err(sql)?
        .transpose()
    }

    async fn latest(&self, meter: &MeterId) -> Result<Option<StoredForecast>, StoreError> {
        let conn = self.db.conn()?;
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM forecasts WHERE meter_id = ?1 \
             ORDER BY issued_at DESC LIMIT 1"
        ))
        .and_then(|mut s| {
            s.query_row([meter.as_str()], |r| decode(meter, r))
                .optional()
        })
        .map_err(sql)?
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_database_from_before_stored_bands_gains_the_column_and_keeps_its_forecasts() {
        let path = std::env::temp_dir().join(format!(
            "meterflow-forecast-migration-{}.db",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        {
            // The forecasts table as it was created before bands were kept.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE forecasts (
                    meter_id TEXT NOT NULL, issued_at INTEGER NOT NULL, model TEXT NOT NULL,
                    points TEXT NOT NULL, next_day INTEGER NOT NULL,
                    month_to_date INTEGER NOT NULL, rest_of_month INTEGER NOT NULL,
                    bill_amount REAL, bill_currency TEXT,
                    PRIMARY KEY (meter_id, issued_at)) WITHOUT ROWID;
                 INSERT INTO forecasts VALUES ('m-1', 1000, 'ridge', '[[1900000,1,2,3]]',
                    5, 6, 7, NULL, NULL);",
            )
            .unwrap();
        }
        let db = Arc::new(SqliteDb::open(&path).unwrap());
        let store = SqliteForecastStore::new(db.clone());
        let m = MeterId::parse("m-1").unwrap();
        let old = store.latest(&m).await.unwrap().unwrap();
        assert_eq!(old.model, ModelKind::Ridge);
        assert_eq!(old.bands, None);
        let mut new = old.clone();
        new.issued_at = Timestamp::from_millis(2_000);
        new.bands = Some(Bands::from_mwh(&[-3, -2], &[4, 5]));
        store.put(std::slice::from_ref(&new)).await.unwrap();
        assert_eq!(store.latest(&m).await.unwrap(), Some(new));
        drop(store);
        drop(db);
        // Opening again finds the column there and adds nothing.
        let db = Arc::new(SqliteDb::open(&path).unwrap());
        assert!(SqliteForecastStore::new(db)
            .get(&m, old.issued_at)
            .await
            .unwrap()
            .is_some());
        let _ = std::fs::remove_file(&path);
    }
}
