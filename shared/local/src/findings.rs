//! [`FindingStore`] in SQLite: one row per `(meter_id, id)`, with a partial index on the open
//! ones, so both "open findings of this meter" and "open findings of the fleet" read only open
//! rows however many closed ones accumulate.

use std::sync::Arc;

use async_trait::async_trait;
use meter_core::anomaly::{FindingKind, FindingStatus, StoredFinding};
use meter_core::ports::{FindingCursor, FindingPage, FindingStore, StoreError};
use meter_core::{MeterId, Timestamp};
use rusqlite::{params, OptionalExtension, Row};

use crate::{corrupt, meter_id, sql, SqliteDb, WriteScope};

/// Anomaly-scan findings in SQLite.
pub struct SqliteFindingStore {
    db: Arc<SqliteDb>,
}

impl SqliteFindingStore {
    /// The findings adapter over `db`.
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }
}

const COLUMNS: &str =
    "meter_id, id, kind, status, opened_at, last_seen, closed_at, score, ev_from, ev_to, explanation";

/// A row, decoded in two steps: SQLite's types first, then meterflow's (a bad value is a
/// corrupt store, not an SQL error).
type Raw = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    f64,
    i64,
    i64,
    String,
);

fn raw(row: &Row<'_>) -> Result<Raw, rusqlite::Error> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn decode(r: Raw) -> Result<StoredFinding, StoreError> {
    let (meter, id, kind, status, opened, seen, closed, score, from, to, explanation) = r;
    Ok(StoredFinding {
        meter_id: meter_id(&meter)?,
        kind: FindingKind::parse(&kind).ok_or_else(|| corrupt("finding kind", &kind))?,
        status: FindingStatus::parse(&status).ok_or_else(|| corrupt("finding status", &status))?,
        id,
        opened_at: Timestamp::from_millis(opened),
        last_seen: Timestamp::from_millis(seen),
        closed_at: closed.map(Timestamp::from_millis),
        score,
        from: Timestamp::from_millis(from),
        to: Timestamp::from_millis(to),
        explanation,
    })
}

impl SqliteFindingStore {
    fn query(
        &self,
        sql_text: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let conn = self.db.conn()?;
        let mut stmt = conn.prepare_cached(sql_text).map_err(sql)?;
        let rows = stmt.query_map(args, raw).map_err(sql)?;
        rows.map(|r| decode(r.map_err(sql)?)).collect()
    }
}

#[async_trait]
impl FindingStore for SqliteFindingStore {
    async fn put(&self, findings: &[StoredFinding]) -> Result<(), StoreError> {
        let conn = self.db.conn()?;
        let tx = WriteScope::new(&conn)?;
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO findings ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ))
                .map_err(sql)?;
            for f in findings {
                if !f.score.is_finite() {
                    return Err(StoreError::Rejected(
                        format!("finding {} of {} has a non-finite score", f.id, f.meter_id).into(),
                    ));
                }
                stmt.execute(params![
                    f.meter_id.as_str(),
                    f.id,
                    f.kind.as_str(),
                    f.status.as_str(),
                    f.opened_at.millis(),
                    f.last_seen.millis(),
                    f.closed_at.map(Timestamp::millis),
                    f.score,
                    f.from.millis(),
                    f.to.millis(),
                    f.explanation,
                ])
                .map_err(sql)?;
            }
        }
        tx.commit()
    }

    async fn get(&self, meter: &MeterId, id: &str) -> Result<Option<StoredFinding>, StoreError> {
        let conn = self.db.conn()?;
        let row = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM findings WHERE meter_id = ?1 AND id = ?2"
            ))
            .and_then(|mut s| s.query_row(params![meter.as_str(), id], raw).optional())
            .map_err(sql)?;
        row.map(decode).transpose()
    }

    async fn open_for_meter(&self, meter: &MeterId) -> Result<Vec<StoredFinding>, StoreError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM findings WHERE status = 'open' AND meter_id = ?1 \
                 ORDER BY id"
            ),
            [meter.as_str()],
        )
    }

    async fn for_meter(&self, meter: &MeterId) -> Result<Vec<StoredFinding>, StoreError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM findings WHERE meter_id = ?1 ORDER BY id"),
            [meter.as_str()],
        )
    }

    async fn open_page(
        &self,
        after: Option<&FindingCursor>,
        limit: usize,
    ) -> Result<FindingPage, StoreError> {
        let limit = limit.max(1);
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let mut findings = match after {
            None => self.query(
                &format!(
                    "SELECT {COLUMNS} FROM findings WHERE status = 'open' \
                     ORDER BY meter_id, id LIMIT ?1"
                ),
                [fetch],
            )?,
            Some(c) => self.query(
                &format!(
                    "SELECT {COLUMNS} FROM findings WHERE status = 'open' \
                     AND (meter_id, id) > (?1, ?2) ORDER BY meter_id, id LIMIT ?3"
                ),
                params![c.meter_id.as_str(), c.id, fetch],
            )?,
        };
        let more = findings.len() > limit;
        findings.truncate(limit);
        let next = more
            .then(|| findings.last())
            .flatten()
            .map(|f| FindingCursor {
                meter_id: f.meter_id.clone(),
                id: f.id.clone(),
            });
        Ok(FindingPage { findings, next })
    }
}
