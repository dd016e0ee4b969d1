//! [`PendingAggregates`] in SQLite: the `aggregates_pending` table, one row per meter with the
//! first and last hour bucket whose aggregates are to be recomputed.
//!
//! The rule bridge's ingest calls mark rows in the same transaction as the readings they store,
//! and its aggregate passes recompute and clear them in a transaction of their own, so the marks
//! survive a crash exactly when their readings do.

use std::sync::Arc;

use async_trait::async_trait;
use meter_core::aggregate::HourRange;
use meter_core::ports::{PendingAggregates, StoreError};
use meter_core::{MeterId, Timestamp};
use rusqlite::params;

use crate::{meter_id, sql, SqliteDb, WriteScope};

/// Pending aggregate marks in SQLite.
pub struct SqlitePendingAggregates {
    db: Arc<SqliteDb>,
}

impl SqlitePendingAggregates {
    /// The marks adapter over `db`.
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }
}

#[async_trait]
impl PendingAggregates for SqlitePendingAggregates {
    async fn mark(&self, meter: &MeterId, range: HourRange) -> Result<(), StoreError> {
        let conn = self.db.conn()?;
        let tx = WriteScope::new(&conn)?;
        tx.prepare_cached(
            "INSERT INTO aggregates_pending (meter_id, first, last) VALUES (?1, ?2, ?3) \
             ON CONFLICT (meter_id) DO UPDATE SET first = min(first, excluded.first), \
             last = max(last, excluded.last)",
        )
        .and_then(|mut st| {
            st.execute(params![
                meter.as_str(),
                range.first.millis(),
                range.last.millis()
            ])
        })
        .map_err(sql)?;
        tx.commit()
    }

    async fn next(
        &self,
        after: Option<&MeterId>,
        max: usize,
    ) -> Result<Vec<(MeterId, HourRange)>, StoreError> {
        let conn = self.db.conn()?;
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let mut st = conn
            .prepare_cached(
                "SELECT meter_id, first, last FROM aggregates_pending WHERE meter_id > ?1 \
                 ORDER BY meter_id LIMIT ?2",
            )
            .map_err(sql)?;
        let rows = st
            .query_map(params![after.map_or("", MeterId::as_str), limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(sql)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, first, last) = row.map_err(sql)?;
            out.push((
                meter_id(&id)?,
                HourRange {
                    first: Timestamp::from_millis(first),
                    last: Timestamp::from_millis(last),
                },
            ));
        }
        Ok(out)
    }

    async fn clear(&self, meters: &[MeterId]) -> Result<(), StoreError> {
        let conn = self.db.conn()?;
        let tx = WriteScope::new(&conn)?;
        {
            let mut st = tx
                .prepare_cached("DELETE FROM aggregates_pending WHERE meter_id = ?1")
                .map_err(sql)?;
            for m in meters {
                st.execute(params![m.as_str()]).map_err(sql)?;
            }
        }
        tx.commit()
    }
}
