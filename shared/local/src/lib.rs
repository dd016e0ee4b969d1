//! `meter-local`: meterflow on one machine. The embedded SQLite adapters for meterflow's ports,
//! and [`stack`], the local stack behind `meterflow up` (embedded MQTT broker, rule bridge,
//! simulated fleet, schedulers, outbox, metrics).
//!
//! One [`SqliteDb`] (a single connection in WAL mode behind a mutex) backs all five adapters.
//! Calls are short and batched in transactions, so holding the mutex on the async executor's
//! thread costs less than handing each call to a blocking pool would.

mod findings;
mod forecasts;
mod pending;
mod recent;
pub mod stack;

pub use findings::SqliteFindingStore;
pub use forecasts::SqliteForecastStore;
pub use pending::SqlitePendingAggregates;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use meter_core::aggregate::{Aggregate, Period};
use meter_core::ingest::Ports;
use meter_core::ports::{
    AggregateStore, EventStore, InsertOutcome, MeterPage, MeterRegistry, QuarantineStore,
    ReadingStore, StoreError,
};
use meter_core::registry::parse_timezone;
use meter_core::telemetry::QuarantineEntry;
use meter_core::{
    Energy, EventKind, MeterEvent, MeterId, MeterInfo, MeterKind, MeterStatus, QuarantineReason,
    Reading, RelayState, Timestamp,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

/// `CREATE TABLE` for a readings table named `$name` (`readings` and `readings_hot` share it).
macro_rules! readings_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (",
            r#"
    meter_id     TEXT    NOT NULL,
    ts           INTEGER NOT NULL,
    seq          INTEGER,
    received_ms  INTEGER NOT NULL,
    e_imp        INTEGER NOT NULL,
    e_exp        INTEGER,
    power_w      REAL,
    voltage_v    REAL,
    current_a    REAL,
    power_factor REAL,
    frequency_hz REAL,
    status       TEXT    NOT NULL,
    relay        TEXT,
    PRIMARY KEY (meter_id, ts)
"#,
            ") WITHOUT ROWID;"
        )
    };
}

/// `CREATE TABLE` for an aggregates table named `$name` (`aggregates` and `aggregates_hot`).
macro_rules! aggregates_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (",
            r#"
    meter_id  TEXT    NOT NULL,
    period    TEXT    NOT NULL,
    measured  INTEGER NOT NULL,
    estimated INTEGER NOT NULL,
    readings  INTEGER NOT NULL,
    resets    INTEGER NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (meter_id, period)
"#,
            ") WITHOUT ROWID;"
        )
    };
}

const SCHEMA: &str = concat!(
    r#"
"#,
    readings_table!("readings"),
    r#"
CREATE UNIQUE INDEX IF NOT EXISTS readings_by_seq ON readings (meter_id, seq) WHERE seq IS NOT NULL;

-- New readings land here first (see `HotLimits`); the two tables never share a reading.
"#,
    readings_table!("readings_hot"),
    r#"
-- No seq index on the hot table: `insert` looks for a meter's seq among its few hot rows
-- (see `SqliteReadingStore::insert`).

CREATE TABLE IF NOT EXISTS meters (
    meter_id      TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    feeder_id     TEXT,
    contracted_kw REAL,
    location      TEXT,
    tariff_id     TEXT,
    timezone      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS meters_by_feeder ON meters (feeder_id, meter_id);

CREATE TABLE IF NOT EXISTS quarantine (
    meter_key   TEXT    NOT NULL,
    received_ms INTEGER NOT NULL,
    id          TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    raw         TEXT    NOT NULL,
    idx         INTEGER,
    PRIMARY KEY (meter_key, received_ms, id)
) WITHOUT ROWID;

"#,
    aggregates_table!("aggregates"),
    r#"

-- Aggregates written recently (see `HotLimits`). A row here is newer than the same key in
-- `aggregates`, which it shadows until it is moved there.
"#,
    aggregates_table!("aggregates_hot"),
    r#"

-- Meters whose aggregates the rule bridge recomputes in its next pass (see
-- `Ingestor::with_pending_aggregates`): the first and last hour bucket start, in ms.
CREATE TABLE IF NOT EXISTS aggregates_pending (
    meter_id TEXT    PRIMARY KEY,
    first    INTEGER NOT NULL,
    last     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    meter_id TEXT    NOT NULL,
    ev_key   TEXT    NOT NULL,
    ts       INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    value    REAL,
    detail   TEXT    NOT NULL,
    PRIMARY KEY (meter_id, ev_key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS forecasts (
    meter_id      TEXT    NOT NULL,
    issued_at     INTEGER NOT NULL,
    model         TEXT    NOT NULL,
    points        TEXT    NOT NULL,
    next_day      INTEGER NOT NULL,
    month_to_date INTEGER NOT NULL,
    rest_of_month INTEGER NOT NULL,
    bill_amount   REAL,
    bill_currency TEXT,
    bands         TEXT,
    PRIMARY KEY (meter_id, issued_at)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS findings (
    meter_id    TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    opened_at   INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    closed_at   INTEGER,
    score       REAL    NOT NULL,
    ev_from     INTEGER NOT NULL,
    ev_to       INTEGER NOT NULL,
    explanation TEXT    NOT NULL,
    PRIMARY KEY (meter_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS open_findings ON findings (meter_id, id) WHERE status = 'open';
"#,
);

/// The readings table's columns, as a macro so whole statements are `concat!`ed at compile time:
/// building them with `format!` on every call was measurable on the ingest path.
macro_rules! reading_columns {
    () => {
        "meter_id, ts, seq, received_ms, e_imp, e_exp, power_w, voltage_v, \
         current_a, power_factor, frequency_hz, status, relay"
    };
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite refused to open or migrate the file.
    #[error("cannot open the SQLite store at {path}")]
    Sqlite {
        /// The file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The background checkpoint thread could not be started.
    #[error("cannot start the SQLite checkpoint thread")]
    Thread(#[source] std::io::Error),
}

/// The SQLite database behind every local adapter.
pub struct SqliteDb {
    conn: Mutex<Connection>,
    /// Stops the background checkpoint thread when the database is dropped.
    _checkpointer: Option<Checkpointer>,
    /// The last aggregate version handed out (see [`SqliteDb::next_version`]).
    last_version: std::sync::atomic::AtomicU64,
    /// How much the hot tables hold before rows move on.
    hot: HotLimits,
    /// About how many readings `readings_hot` holds (exact for this process's own writes).
    hot_readings: std::sync::atomic::AtomicI64,
    /// Where the next move of hot readings starts: the last `(meter_id, ts)` moved.
    readings_cursor: Mutex<Option<(String, i64)>>,
    /// When hot aggregates were last looked at for moving.
    aggregates_moved: Mutex<std::time::Instant>,
    /// Where the next look for idle hot aggregates starts: the last `(meter_id, period)` the
    /// previous one examined (`None`: from the first row).
    aggregates_cursor: Mutex<Option<(String, String)>>,
    /// Per meter, the newest timestamp and highest seq in the main `readings` table, so the
    /// rule bridge can skip the main table for an in-order reading (see [`MainBounds`]).
    main_bounds: Mutex<MainBounds>,
    /// The thread whose [`SqliteDb::begin`] transaction is open, if any (see [`SqliteDb::conn`]).
    txn_owner: Mutex<Option<std::thread::ThreadId>>,
    /// Signalled when that transaction ends.
    txn_ended: std::sync::Condvar,
}

/// What the main `readings` table holds per meter, as far as this connection knows.
///
/// Only trusted inside a transaction opened with [`SqliteDb::begin`] (`BEGIN IMMEDIATE`, which
/// holds the write lock): `begin` compares `PRAGMA data_version` with the value seen at the
/// last check and forgets everything when another connection (another process) has committed
/// since. Within the transaction only this connection writes, and its only writes to the main
/// table are the moves of hot readings, which forget the meters they touch.
#[derive(Default)]
struct MainBounds {
    /// Set by `begin` after the check, cleared by `commit` and `rollback`.
    trusted: bool,
    /// When `begin` opened the transaction, on the clock aggregate versions come from.
    begun_us: u64,
    data_version: Option<i64>,
    /// meter → its bounds in `readings`.
    meters: std::collections::BTreeMap<String, MeterBounds>,
    /// Copies of each meter's newest readings and aggregates, trusted on the same terms.
    recent: recent::Recent,
}

/// A meter's newest timestamp and highest seq in the main `readings` table (`None`: no rows).
type MeterBounds = (Option<i64>, Option<i64>);

/// How the SQLite store keeps its write amplification down.
///
/// A reading written straight into `readings` (and its `seq` into `readings_by_seq`) and its
/// meter's hour, day and month rows into `aggregates` dirties a page of each B-tree, because each
/// is ordered by meter and every meter's newest rows sit on a page of their own: three 16 KiB
/// pages, six WAL `pwrite`s, per reading. Measured in `bench pipeline` at 20,000 readings/s,
/// the commit was 42% of the rule bridge's time (21% with the hot tables) and the reason for its
/// queueing.
/// So new readings and aggregates go to small tables of the same shape first (`readings_hot`,
/// `aggregates_hot`), where many meters share each page, and move to the main tables in slices
/// ordered by meter, several readings of a meter landing on its page at once. Reads see both
/// tables; both are ordinary tables in the same file, committed in the same transactions, so
/// nothing is held in memory only and a restart loses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotLimits {
    /// Readings `readings_hot` holds before each write moves the excess on. About five readings
    /// per meter for a fleet of 10,000 meters.
    pub readings: usize,
    /// Most readings one write call moves on.
    pub readings_move_max: usize,
    /// An aggregate not rewritten for this long moves on (its period is over).
    pub aggregate_idle: std::time::Duration,
    /// How often aggregates are looked at for moving, and most rows moved each time.
    pub aggregate_move_every: std::time::Duration,
    /// See `aggregate_move_every`.
    pub aggregate_move_max: usize,
    /// Most hot aggregate rows each look examines: the looks sweep `aggregates_hot` in key
    /// order, a window at a time, instead of scanning all of it for idle rows every time.
    pub aggregate_scan_max: usize,
}

impl Default for HotLimits {
    fn default() -> Self {
        Self {
            readings: 50_000,
            readings_move_max: 20_000,
            aggregate_idle: std::time::Duration::from_secs(10),
            aggregate_move_every: std::time::Duration::from_millis(100),
            aggregate_move_max: 1_000,
            aggregate_scan_max: 4_000,
        }
    }
}

impl HotLimits {
    /// Everything moves on at the next write: for tests that want rows in both tables.
    pub fn none() -> Self {
        Self {
            readings: 0,
            readings_move_max: usize::MAX,
            aggregate_idle: std::time::Duration::ZERO,
            aggregate_move_every: std::time::Duration::ZERO,
            aggregate_move_max: usize::MAX,
            aggregate_scan_max: usize::MAX,
        }
    }
}

/// How often the background thread checkpoints the WAL.
///
/// The WAL only starts again from its beginning when a write transaction begins with every
/// frame copied back, and the rule bridge commits too often for that to happen by chance: the
/// WAL fills to `wal_autocheckpoint` and the writer then checkpoints inline, copying whatever
/// the background thread has not yet copied and syncing the database file. Measured with
/// `strace -T` on the bridge's thread at 20,000 readings/s: with a checkpoint every 200 ms,
/// that inline checkpoint came every 2 s and copied some 850 pages, and its `fsync` of the
/// database file took 10–38 ms; batches over 50 ms in a 300 s `bench pipeline` run fell from
/// 245 to 70 with a checkpoint every 20 ms, which leaves the inline one little to copy.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// How often the background flusher writes the WAL's new pages out to disk (Linux only).
///
/// Measured with `bench pipeline` at 20,000 readings/s: the checkpoint's `fsync` of the WAL found
/// about 80 MB dirty each time and took 55 ms (p50) to 230 ms, and the writer's own WAL syncs
/// and appends stalled behind it for up to 100 ms, which was the whole p99 (111–122 ms). With
/// the WAL flushed every 20 ms, p99 was 54–55 ms; every 5–50 ms gave 55–66 ms, 100 ms gave 88.
const FLUSH_WAL_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Background threads with their own handles on the database file: one checkpoints the WAL
/// every [`CHECKPOINT_EVERY`], one flushes it every [`FLUSH_WAL_EVERY`].
///
/// `PASSIVE` checkpoints never wait for the writer and never make it wait: they copy what has
/// been committed while the next batch is being written. The writer restarts the WAL from its
/// start once a checkpoint has caught up, so the file stays small.
///
/// The flusher only calls `fdatasync` on the WAL file through a descriptor of its own: it
/// changes no byte and takes no SQLite lock. It exists because with `synchronous=NORMAL` SQLite
/// lets the WAL's pages pile up in the page cache until a checkpoint (or the writer, when it
/// restarts the WAL) syncs them all at once, and that sync blocks the writer.
struct Checkpointer {
    /// One sender per thread; sending (or dropping it) stops that thread.
    stops: Vec<std::sync::mpsc::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, OpenError> {
        let wrap = |source| OpenError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        let mut me = Self {
            stops: Vec::new(),
            threads: Vec::new(),
        };
        me.spawn("sqlite-checkpoint", CHECKPOINT_EVERY, move || {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "background WAL checkpoint failed");
            }
        })?;
        // Only measured on Linux; elsewhere `sync_data` may flush the drive's own cache too
        // (macOS `F_FULLFSYNC`), far too dear to run 50 times a second.
        #[cfg(target_os = "linux")]
        {
            let mut wal = WalFile::new(wal_path(path));
            me.spawn("sqlite-wal-flush", FLUSH_WAL_EVERY, move || wal.flush())?;
        }
        Ok(me)
    }

    /// Runs `tick` every `every` on a thread of its own until the checkpointer is dropped.
    fn spawn(
        &mut self,
        name: &str,
        every: std::time::Duration,
        mut tick: impl FnMut() + Send + 'static,
    ) -> Result<(), OpenError> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    tick();
                }
            })
            .map_err(OpenError::Thread)?;
        self.stops.push(stop);
        self.threads.push(thread);
        Ok(())
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        for stop in &self.stops {
            let _ = stop.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(target_os = "linux")]
/// The WAL file of the database at `db`: SQLite names it after the database, plus `-wal`.
fn wal_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

#[cfg(target_os = "linux")]
/// The flusher's own descriptor of the WAL file, opened when the file exists and opened again
/// if SQLite has deleted it (the last connection to close deletes it) and made a new one.
struct WalFile {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
}

#[cfg(target_os = "linux")]
impl WalFile {
    fn new(path: std::path::PathBuf) -> Self {
        Self { path, file: None }
    }

    /// Writes the WAL's dirty pages out to disk. Failures are logged, never fatal: this only
    /// moves work off the writer's path; SQLite still syncs whatever its own rules require.
    fn flush(&mut self) {
        use std::os::unix::fs::MetadataExt as _;
        let stale = match &self.file {
            Some(f) => f.metadata().map(|m| m.nlink() == 0).unwrap_or(true),
            None => true,
        };
        if stale {
            // Read-only is enough for fdatasync, and can never write a byte.
            self.file = std::fs::File::open(&self.path).ok();
        }
        if let Some(f) = &self.file {
            if let Err(e) = f.sync_data() {
                tracing::warn!(error = %e, wal = %self.path.display(), "WAL flush failed");
                self.file = None;
            }
        }
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the store at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let mut db = Self::open_file(path, false)?;
        db._checkpointer = Some(Checkpointer::start(path)?);
        Ok(db)
    }

    /// A second, read-only connection to the store at `path`, which [`SqliteDb::open`] has
    /// created: for work that reads a lot beside the rule bridge (the scheduled forecast and
    /// scan). WAL readers never wait for the writer, while sharing the writer's connection
    /// made the bridge queue behind every one of their statements. It starts no background
    /// threads (the writer's checkpoints and flushes cover the file), and refuses writes
    /// (`PRAGMA query_only`), so it can never bump the writer's `data_version`.
    pub fn open_reader(path: &Path) -> Result<Self, OpenError> {
        Self::open_file(path, true)
    }

    fn open_file(path: &Path, query_only: bool) -> Result<Self, OpenError> {
        let wrap = |source| OpenError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        let mut db = Self::init(conn).map_err(wrap)?;
        if query_only {
            db.conn
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pragma_update(None, "query_only", true)
                .map_err(wrap)?;
        }
        Ok(db)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self, OpenError> {
        let wrap = |source| OpenError::Sqlite {
            path: ":memory:".into(),
            source,
        };
        Self::init(Connection::open_in_memory().map_err(wrap)?).map_err(wrap)
    }

    fn init(conn: Connection) -> Result<Self, rusqlite::Error> {
        // WAL with synchronous=NORMAL: a committed batch survives a process crash, and the
        // write rate is bounded by batches, not by fsyncs per reading.
        // 16 KiB pages: a quarter of the B-tree depth and page writes of the 4 KiB default for
        // these narrow rows (measured: about 30% more inserts per second). Only takes effect
        // on a new database, so it must come before WAL mode and the schema.
        conn.pragma_update(None, "page_size", 16_384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Readings of many meters arrive interleaved, so inserts land all over the B-trees; a
        // 64 MiB page cache keeps a busy day's working set in memory instead of re-reading it.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoints (copying the WAL back into the file, and the fsyncs) run on a background
        // thread of their own (see `Checkpointer`), not in the committing thread: measured in
        // `bench pipeline`, an inline checkpoint of a busy WAL stalled ingest for 100-200 ms,
        // the whole p99 latency. The writer only checkpoints itself if the WAL grows past
        // ~320 MiB, that is if the background thread has fallen far behind or is not running.
        conn.pragma_update(None, "wal_autocheckpoint", 20_000)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Without the query planner stability guarantee, this SQLite build (STAT4) marks
        // statements whose plan could depend on a bound value as expired on every new binding,
        // so every cached statement was parsed and planned again on every call: measured, a
        // dozen re-prepares per meter per ingest and most of the local pipeline's time.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        let hot_readings: i64 =
            conn.query_row("SELECT COUNT(*) FROM readings_hot", [], |r| r.get(0))?;
        Ok(Self {
            conn: Mutex::new(conn),
            _checkpointer: None,
            last_version: std::sync::atomic::AtomicU64::new(0),
            hot: HotLimits::default(),
            hot_readings: std::sync::atomic::AtomicI64::new(hot_readings),
            readings_cursor: Mutex::new(None),
            main_bounds: Mutex::new(MainBounds::default()),
            aggregates_moved: Mutex::new(std::time::Instant::now()),
            aggregates_cursor: Mutex::new(None),
            txn_owner: Mutex::new(None),
            txn_ended: std::sync::Condvar::new(),
        })
    }

    /// The same database with other [`HotLimits`].
    pub fn with_hot_limits(mut self, hot: HotLimits) -> Self {
        self.hot = hot;
        self
    }

    /// Moves hot readings on to `readings` while `readings_hot` holds more than its limit, in
    /// meter order from where the last move stopped (so every meter's turn comes round).
    fn move_hot_readings(&self, conn: &Connection) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let held = self.hot_readings.load(Ordering::Relaxed);
        let excess = held - self.hot.readings as i64;
        if excess <= 0 {
            return Ok(());
        }
        let n = (excess as usize).min(self.hot.readings_move_max).max(1);
        let mut cursor = self
            .readings_cursor
            .lock()
            .map_err(|_| StoreError::Corrupt("hot reading cursor lock poisoned".into()))?;
        let (from_meter, from_ts) = cursor.clone().unwrap_or_else(|| (String::new(), i64::MIN));
        // The last key of this slice: `n` rows on from the cursor, or the last row there is.
        let end: Option<(String, i64)> = nth_key_after(
            conn,
            "SELECT meter_id, ts FROM readings_hot WHERE (meter_id, ts) > (?1, ?2) \
             ORDER BY meter_id, ts LIMIT 1 OFFSET ?3",
            (&from_meter, &from_ts),
            i64::try_from(n - 1).unwrap_or(i64::MAX),
        )?;
        let (end, wrapped) = match end {
            Some(end) => (end, false),
            None => {
                // Fewer than `n` rows after the cursor: this slice ends at the last of them, and
                // the next move starts again from the first meter.
                let last: Option<(String, i64)> = conn
                    .prepare_cached(
                        "SELECT meter_id, ts FROM readings_hot WHERE (meter_id, ts) > (?1, ?2) \
                         ORDER BY meter_id DESC, ts DESC LIMIT 1",
                    )
                    .and_then(|mut st| {
                        st.query_row(params![from_meter, from_ts], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(sql)?;
                match last {
                    Some(last) => (last, true),
                    None => {
                        // Nothing after the cursor: start from the first meter next time.
                        *cursor = None;
                        if from_meter.is_empty() && from_ts == i64::MIN {
                            self.hot_readings.store(0, Ordering::Relaxed);
                        }
                        return Ok(());
                    }
                }
            }
        };
        let slice = params![from_meter, from_ts, end.0, end.1];
        // Disjoint by construction (a reading is only stored hot if neither table has its
        // timestamp or seq); `OR IGNORE` keeps the first stored should that ever not hold.
        conn.prepare_cached(concat!(
            "INSERT OR IGNORE INTO readings (",
            reading_columns!(),
            ") SELECT ",
            reading_columns!(),
            " FROM readings_hot WHERE (meter_id, ts) > (?1, ?2) AND (meter_id, ts) <= (?3, ?4) \
             ORDER BY meter_id, ts"
        ))
        .and_then(|mut st| st.execute(slice))
        .map_err(sql)?;
        let moved = conn
            .prepare_cached(
                "DELETE FROM readings_hot WHERE (meter_id, ts) > (?1, ?2) AND (meter_id, ts) <= (?3, ?4)",
            )
            .and_then(|mut st| st.execute(slice))
            .map_err(sql)?;
        self.hot_readings.fetch_sub(moved as i64, Ordering::Relaxed);
        {
            let mut bounds = self.bounds()?;
            // The slice ends after its start (both queries look after the cursor); the guard
            // keeps a broken assumption from panicking in `BTreeMap::range`.
            let stale: Vec<String> = if from_meter <= end.0 {
                bounds
                    .meters
                    .range(from_meter.clone()..=end.0.clone())
                    .map(|(k, _)| k.clone())
                    .collect()
            } else {
                bounds.meters.keys().cloned().collect()
            };
            for k in stale {
                bounds.meters.remove(&k);
            }
        }
        *cursor = if wrapped { None } else { Some(end) };
        Ok(())
    }

    /// Moves aggregates not rewritten for [`HotLimits::aggregate_idle`] on to `aggregates`, at
    /// most every [`HotLimits::aggregate_move_every`] and [`HotLimits::aggregate_move_max`] rows
    /// at a time, so a period ending for the whole fleet at once does not stall one commit.
    ///
    /// Each look examines the next [`HotLimits::aggregate_scan_max`] rows in key order from
    /// where the last one stopped. Finding idle rows by version scanned the whole table
    /// (there is no index on `version`, which every put rewrites): measured in `bench pipeline`
    /// at 20,000 readings/s, 4.1 ms of each look's 7 ms, 4% of the rule bridge's time, for
    /// about 450 rows moved per look out of some 75,000.
    fn move_hot_aggregates(&self, conn: &Connection) -> Result<(), StoreError> {
        {
            let mut last = self
                .aggregates_moved
                .lock()
                .map_err(|_| StoreError::Corrupt("hot aggregate clock lock poisoned".into()))?;
            if last.elapsed() < self.hot.aggregate_move_every {
                return Ok(());
            }
            *last = std::time::Instant::now();
        }
        let idle = u64::try_from(self.hot.aggregate_idle.as_micros()).unwrap_or(u64::MAX);
        // Versions are the clock in microseconds (see `next_version`), so an old version is a
        // row nobody has rewritten for a while. Rows of an older database, with counter
        // versions, move at once.
        let cutoff = i64::try_from(self.next_version().saturating_sub(idle)).unwrap_or(i64::MAX);
        let limit = i64::try_from(self.hot.aggregate_move_max).unwrap_or(i64::MAX);
        let window = i64::try_from(self.hot.aggregate_scan_max).unwrap_or(i64::MAX);
        conn.prepare_cached(
            "CREATE TEMP TABLE IF NOT EXISTS moving_aggregates (meter_id TEXT, period TEXT)",
        )
        .and_then(|mut st| st.execute([]))
        .map_err(sql)?;
        let mut cursor = self
            .aggregates_cursor
            .lock()
            .map_err(|_| StoreError::Corrupt("hot aggregate cursor lock poisoned".into()))?;
        let (from_meter, from_period) = cursor.clone().unwrap_or_default();
        // The window's last row, or none when fewer rows follow the cursor: then the window
        // runs to the end (a bound above every key) and the next look starts from the first row.
        let end: Option<(String, String)> = nth_key_after(
            conn,
            "SELECT meter_id, period FROM aggregates_hot WHERE (meter_id, period) > (?1, ?2) \
             ORDER BY meter_id, period LIMIT 1 OFFSET ?3",
            (&from_meter, &from_period),
            window.saturating_sub(1),
        )?;
        let (end_meter, end_period) = end
            .clone()
            .unwrap_or_else(|| (char::MAX.to_string(), String::new()));
        conn.prepare_cached(
            "INSERT INTO moving_aggregates SELECT meter_id, period FROM aggregates_hot \
             WHERE (meter_id, period) > (?1, ?2) AND (meter_id, period) <= (?3, ?4) \
             AND version < ?5 LIMIT ?6",
        )
        .and_then(|mut st| {
            st.execute(params![
                from_meter,
                from_period,
                end_meter,
                end_period,
                cutoff,
                limit
            ])
        })
        .map_err(sql)?;
        *cursor = end;
        drop(cursor);
        // The hot row is always the newer one (`put` only writes it above the main row's
        // version), so it replaces.
        conn.prepare_cached(
            "INSERT OR REPLACE INTO aggregates \
             (meter_id, period, measured, estimated, readings, resets, version) \
             SELECT h.meter_id, h.period, h.measured, h.estimated, h.readings, h.resets, h.version \
             FROM moving_aggregates m JOIN aggregates_hot h \
               ON h.meter_id = m.meter_id AND h.period = m.period \
             ORDER BY h.meter_id, h.period",
        )
        .and_then(|mut st| st.execute([]))
        .map_err(sql)?;
        conn.prepare_cached(
            "DELETE FROM aggregates_hot WHERE (meter_id, period) IN \
             (SELECT meter_id, period FROM moving_aggregates)",
        )
        .and_then(|mut st| st.execute([]))
        .map_err(sql)?;
        conn.prepare_cached("DELETE FROM moving_aggregates")
            .and_then(|mut st| st.execute([]))
            .map_err(sql)?;
        Ok(())
    }

    /// Opens a transaction that the adapters' own writes join, so a caller can make a whole ingest call one commit: the local rule bridge does,
    /// turning a dozen small commits per meter into one per batch. End it with
    /// [`SqliteDb::commit`] or [`SqliteDb::rollback`]. Every statement on this database joins
    /// it until then, whichever thread runs it.
    pub fn begin(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
        let version: i64 = conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(sql)?;
        let mut bounds = self.bounds()?;
        if bounds.data_version != Some(version) {
            bounds.meters.clear();
            bounds.recent.clear();
            bounds.data_version = Some(version);
        }
        bounds.trusted = true;
        bounds.begun_us = wall_clock_us();
        *self.owner()? = Some(std::thread::current().id());
        Ok(())
    }

    /// A version at or above which no row of the main `aggregates` table can be, when that is
    /// known: inside [`SqliteDb::begin`]'s transaction, for its first
    /// [`HotLimits::aggregate_idle`]. Rows only reach `aggregates` by moving, once idle that long,
    /// and versions come from the clock (see [`SqliteDb::next_version`]), so every main row's
    /// version is older than the moment the transaction began. A put at or above it skips the
    /// main-table version check.
    fn aggregates_fresh_from(&self) -> Result<Option<u64>, StoreError> {
        let bounds = self.bounds()?;
        let idle = u64::try_from(self.hot.aggregate_idle.as_micros()).unwrap_or(u64::MAX);
        Ok(
            (bounds.trusted && wall_clock_us().saturating_sub(bounds.begun_us) < idle)
                .then_some(bounds.begun_us),
        )
    }

    fn bounds(&self) -> Result<MutexGuard<'_, MainBounds>, StoreError> {
        self.main_bounds
            .lock()
            .map_err(|_| StoreError::Corrupt("main-table bounds lock poisoned".into()))
    }

    /// The meter's newest timestamp and highest seq in the main `readings` table, when they can
    /// be trusted (inside [`SqliteDb::begin`]); `None` otherwise.
    fn main_bounds_of(
        &self,
        conn: &Connection,
        meter: &str,
    ) -> Result<Option<MeterBounds>, StoreError> {
        let mut bounds = self.bounds()?;
        if !bounds.trusted {
            return Ok(None);
        }
        if let Some(b) = bounds.meters.get(meter) {
            return Ok(Some(*b));
        }
        let b = conn
            .prepare_cached(
                "SELECT (SELECT MAX(ts) FROM readings WHERE meter_id = ?1), \
                 (SELECT MAX(seq) FROM readings WHERE meter_id = ?1 AND seq IS NOT NULL)",
            )
            .and_then(|mut st| st.query_row([meter], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(sql)?;
        bounds.meters.insert(meter.to_owned(), b);
        Ok(Some(b))
    }
    /// A fresh aggregate version: the wall clock in microseconds, or one more than the last
    /// version this process handed out if the clock has not moved on (or stepped back).
    ///
    /// A counter row per meter did this before, at two statements and a dirtied page per call,
    /// three calls per meter per ingest: measured in `bench pipeline`, 5% of the rule bridge's
    /// time and a page of every commit. Versions only need to grow in the order calls take them,
    /// and on one machine the clock gives that order across processes sharing the file too
    /// (`meterflow import` beside `up`); within a process the counter makes it strict. Counter
    /// versions in an older database are small integers, far below any clock reading.
    pub fn next_version(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let now = wall_clock_us();
        let mut last = self.last_version.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_version.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Commits the transaction [`SqliteDb::begin`] opened.
    pub fn commit(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        self.bounds()?.trusted = false;
        let committed = conn.execute_batch("COMMIT").map_err(sql);
        if conn.is_autocommit() {
            self.end_transaction()?;
        }
        committed
    }

    /// Rolls back the transaction [`SqliteDb::begin`] opened (a no-op if none is open).
    pub fn rollback(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        // What this transaction moved is undone too: forget every meter.
        {
            let mut bounds = self.bounds()?;
            bounds.trusted = false;
            bounds.meters.clear();
            bounds.recent.clear();
        }
        let rolled_back = if conn.is_autocommit() {
            Ok(())
        } else {
            conn.execute_batch("ROLLBACK").map_err(sql)
        };
        if conn.is_autocommit() {
            self.end_transaction()?;
        }
        rolled_back
    }

    fn owner(&self) -> Result<MutexGuard<'_, Option<std::thread::ThreadId>>, StoreError> {
        self.txn_owner
            .lock()
            .map_err(|_| StoreError::Corrupt("SQLite transaction owner lock poisoned".into()))
    }

    /// Hands the connection back to every thread: the `begin` transaction is over.
    fn end_transaction(&self) -> Result<(), StoreError> {
        *self.owner()? = None;
        self.txn_ended.notify_all();
        Ok(())
    }

    /// The connection for a read of several statements (the hot and the main table): inside
    /// one read transaction, so that they all see one snapshot. Another connection (the jobs'
    /// reader, another process) may move rows from the hot to the main table between two
    /// autocommit statements, and the read would then see a moved reading twice. Inside a
    /// transaction the caller opened, it is that transaction.
    fn read(&self) -> Result<ReadScope<'_>, StoreError> {
        let conn = self.conn()?;
        let owns = conn.is_autocommit();
        if owns {
            conn.execute_batch("BEGIN").map_err(sql)?;
        }
        Ok(ReadScope { conn, owns })
    }

    /// The connection, once no other thread's [`SqliteDb::begin`] transaction is open on it.
    ///
    /// The rule bridge's transaction spans many calls, and the connection's lock is only held
    /// per call. Without this wait another thread's call (the scheduled jobs' writes, a
    /// reader) would run inside that transaction: it would see uncommitted rows, and a write of
    /// its own would vanish if the bridge rolled back.
    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        let poisoned = |_| StoreError::Corrupt("SQLite connection lock poisoned".into());
        loop {
            let conn = self.conn.lock().map_err(poisoned)?;
            let owner = self.owner()?;
            let Some(holder) = *owner else {
                return Ok(conn);
            };
            let me = std::thread::current().id();
            if holder == me {
                return Ok(conn);
            }
            drop(conn);
            let _ended = self
                .txn_ended
                .wait_while(owner, |o| o.is_some_and(|t| t != me))
                .map_err(|_| {
                    StoreError::Corrupt("SQLite transaction owner lock poisoned".into())
                })?;
        }
    }
}

/// The key `offset` rows after `from` in a hot table, by `select` (which binds `from` as ?1, ?2
/// and `offset` as ?3): where a slice of rows to move on ends. `None` when fewer rows follow.
fn nth_key_after<K: rusqlite::ToSql + rusqlite::types::FromSql>(
    conn: &Connection,
    select: &str,
    from: (&str, &K),
    offset: i64,
) -> Result<Option<(String, K)>, StoreError> {
    conn.prepare_cached(select)
        .and_then(|mut st| {
            st.query_row(params![from.0, from.1, offset], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .map_err(sql)
}

/// The wall clock in microseconds since the epoch (0 before it): aggregate versions' clock.
fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Brings a database made by an earlier version up to [`SCHEMA`]: `CREATE TABLE IF NOT EXISTS`
/// leaves an existing table as it was, so columns added since are added here.
fn migrate(conn: &Connection) -> Result<(), rusqlite::Error> {
    // Databases before 2026-12-06 kept a unique seq index on the hot table too.
    conn.execute_batch("DROP INDEX IF EXISTS readings_hot_by_seq")?;
    let has_bands: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('forecasts') WHERE name = 'bands'")?
        .exists([])?;
    if !has_bands {
        conn.execute_batch("ALTER TABLE forecasts ADD COLUMN bands TEXT")?;
    }
    Ok(())
}

/// A read transaction opened by [`SqliteDb::read`]; it ends when the scope is dropped.
struct ReadScope<'a> {
    conn: MutexGuard<'a, Connection>,
    owns: bool,
}

impl std::ops::Deref for ReadScope<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for ReadScope<'_> {
    fn drop(&mut self) {
        if self.owns {
            // A read-only transaction: ending it cannot lose anything.
            let _ = self.conn.execute_batch("COMMIT");
        }
    }
}

/// The transaction around one adapter write: its own when none is open, or the caller's
/// (opened with [`SqliteDb::begin`]) when there is one. Savepoints would nest too, but SQLite
/// copies every page a savepoint touches into a sub-journal first, which measured as the
/// largest cost of the local pipeline's one-transaction-per-batch writes.
struct WriteScope<'a> {
    conn: &'a Connection,
    owns: bool,
    done: bool,
}

impl<'a> WriteScope<'a> {
    fn new(conn: &'a Connection) -> Result<Self, StoreError> {
        let owns = conn.is_autocommit();
        if owns {
            conn.execute_batch("BEGIN").map_err(sql)?;
        }
        Ok(Self {
            conn,
            owns,
            done: false,
        })
    }

    fn commit(mut self) -> Result<(), StoreError> {
        self.done = true;
        if self.owns {
            self.conn.execute_batch("COMMIT").map_err(sql)?;
        }
        Ok(())
    }
}

impl std::ops::Deref for WriteScope<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteScope<'_> {
    fn drop(&mut self) {
        // An error left the write half done: undo our own transaction. Inside the caller's, the
        // caller rolls back.
        if self.owns && !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(ref f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(Box::new(e))
        }
        other => StoreError::Rejected(Box::new(other)),
    }
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {value:?} in the SQLite store"))
}

fn meter_id(s: &str) -> Result<MeterId, StoreError> {
    MeterId::parse(s).map_err(|_| corrupt("meter id", s))
}

/// All five adapters over one database.
pub fn sqlite_ports(db: Arc<SqliteDb>) -> Ports {
    Ports {
        readings: Arc::new(SqliteReadingStore { db: db.clone() }),
        registry: Arc::new(SqliteMeterRegistry { db: db.clone() }),
        quarantine: Arc::new(SqliteQuarantineStore { db: db.clone() }),
        aggregates: Arc::new(SqliteAggregateStore { db: db.clone() }),
        events: Arc::new(SqliteEventStore { db }),
    }
}

/// Raw readings in SQLite.
pub struct SqliteReadingStore {
    db: Arc<SqliteDb>,
}

impl SqliteReadingStore {
    /// The reading adapter over `db`.
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }
}

fn reading_from_row(row: &Row<'_>) -> Result<Result<Reading, StoreError>, rusqlite::Error> {
    let id: String = row.get(0)?;
    let relay: Option<String> = row.get(12)?;
    let status: String = row.get(11)?;
    let seq: Option<i64> = row.get(2)?;
    Ok((|| {
        Ok(Reading {
            meter_id: meter_id(&id)?,
            ts: Timestamp::from_millis(row.get(1).map_err(sql)?),
            seq: seq.map(|s| s as u64),
            received: Timestamp::from_millis(row.get(3).map_err(sql)?),
            energy_import: Energy::from_mwh(row.get(4).map_err(sql)?),
            energy_export: row
                .get::<_, Option<i64>>(5)
                .map_err(sql)?
                .map(Energy::from_mwh),
            power_w: row.get(6).map_err(sql)?,
            voltage_v: row.get(7).map_err(sql)?,
            current_a: row.get(8).map_err(sql)?,
            power_factor: row.get(9).map_err(sql)?,
            frequency_hz: row.get(10).map_err(sql)?,
            status: MeterStatus::parse(&status),
            relay: match relay {
                None => None,
                Some(r) => Some(RelayState::parse(&r).ok_or_else(|| corrupt("relay", &r))?),
            },
        })
    })())
}

/// `SELECT` of every reading column followed by `$tail`, as one static string.
macro_rules! select_readings {
    ($tail:literal) => {
        concat!("SELECT ", reading_columns!(), " FROM readings ", $tail)
    };
}

/// [`select_readings`] from `readings_hot`.
macro_rules! select_hot_readings {
    ($tail:literal) => {
        concat!("SELECT ", reading_columns!(), " FROM readings_hot ", $tail)
    };
}

fn query_readings(
    conn: &Connection,
    statement: &'static str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Reading>, StoreError> {
    let mut stmt = conn.prepare_cached(statement).map_err(sql)?;
    let rows = stmt.query_map(args, reading_from_row).map_err(sql)?;
    rows.map(|r| r.map_err(sql).and_then(|x| x)).collect()
}

/// Whether `readings` (the main table) already holds the meter's timestamp (`Some(true)`), its
/// seq at another timestamp (`Some(false)`), or neither (`None`).
fn taken_in_main(conn: &Connection, r: &Reading) -> Result<Option<bool>, StoreError> {
    let id = r.meter_id.as_str();
    if conn
        .prepare_cached("SELECT 1 FROM readings WHERE meter_id = ?1 AND ts = ?2")
        .and_then(|mut st| st.exists(params![id, r.ts.millis()]))
        .map_err(sql)?
    {
        return Ok(Some(true));
    }
    let Some(seq) = r.seq else {
        return Ok(None);
    };
    let seq_taken = conn
        .prepare_cached("SELECT 1 FROM readings WHERE meter_id = ?1 AND seq = ?2")
        .and_then(|mut st| st.exists(params![id, seq as i64]))
        .map_err(sql)?;
    Ok(seq_taken.then_some(false))
}

/// The readings of `$table` in `[?2, ?3]` of meter `?1`, starting with its last at or before `?2`.
macro_rules! with_previous {
    ($table:literal) => {
        concat!(
            "SELECT ",
            reading_columns!(),
            " FROM ",
            $table,
            " WHERE meter_id = ?1 AND ts <= ?3 AND ts >= COALESCE(",
            "(SELECT MAX(ts) FROM ",
            $table,
            " WHERE meter_id = ?1 AND ts <= ?2), ?2) ORDER BY ts"
        )
    };
}

/// Whether the main table can hold nothing at or after `hot`, the answer found hot, given
/// `main_max`, the meter's newest timestamp there when known (`Some(None)`: no rows). Unknown
/// bounds (`None`) or no hot answer: it may.
fn main_ends_before(main_max: Option<Option<i64>>, hot: Option<Timestamp>) -> bool {
    match (main_max, hot) {
        (Some(None), _) => true,
        (Some(Some(m)), Some(h)) => m < h.millis(),
        _ => false,
    }
}

/// Two time-ordered lists of readings as one.
fn merge_by_time(a: Vec<Reading>, b: Vec<Reading>) -> Vec<Reading> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        let next = if x.ts <= y.ts { a.next() } else { b.next() };
        out.extend(next);
    }
    out.extend(a);
    out.extend(b);
    out
}

#[async_trait]
impl ReadingStore for SqliteReadingStore {
    async fn insert(&self, readings: &[Reading]) -> Result<Vec<InsertOutcome>, StoreError> {
        let conn = self.db.conn()?;
        let tx = WriteScope::new(&conn)?;
        let mut out = Vec::with_capacity(readings.len());
        {
            // New readings go to the hot table (see `HotLimits`), unless the main table already
            // has their timestamp or seq; the hot table's key checks the timestamp there, and a
            // look at the meter's hot rows the seq. Single-row `VALUES` statements: an
            // `INSERT ... SELECT` would open a statement journal.
            //
            // The hot table has no seq index: a meter has only a few rows there (about five at
            // 20,000 readings/s over 10,000 meters), which the primary key's meter prefix finds
            // in one seek, while an index cost an insert per reading, a delete per move and
            // about 6% of each commit's pages (measured in `bench pipeline`).
            let mut seq_taken_hot = tx
                .prepare_cached("SELECT 1 FROM readings_hot WHERE meter_id = ?1 AND seq = ?2")
                .map_err(sql)?;
            let mut ins = tx
                .prepare_cached(concat!(
                    "INSERT OR IGNORE INTO readings_hot (",
                    reading_columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ))
                .map_err(sql)?;
            for r in readings {
                // An in-order reading (after everything the main table holds for its meter, seq
                // included) cannot collide there: skip the two lookups when that is known.
                let in_order = self
                    .db
                    .main_bounds_of(&tx, r.meter_id.as_str())?
                    .is_some_and(|(max_ts, max_seq)| {
                        max_ts.is_none_or(|m| r.ts.millis() > m)
                            && match (r.seq, max_seq) {
                                (Some(seq), Some(m)) => seq as i64 > m,
                                _ => true,
                            }
                    });
                let taken = if in_order {
                    None
                } else {
                    taken_in_main(&tx, r)?
                };
                // A seq already hot: a duplicate, by timestamp if that is hot too (as the main
                // table's check ranks them).
                let taken = match (taken, r.seq) {
                    (None, Some(seq))
                        if seq_taken_hot
                            .exists(params![r.meter_id.as_str(), seq as i64])
                            .map_err(sql)? =>
                    {
                        Some(
                            tx.prepare_cached(
                                "SELECT 1 FROM readings_hot WHERE meter_id = ?1 AND ts = ?2",
                            )
                            .and_then(|mut st| {
                                st.exists(params![r.meter_id.as_str(), r.ts.millis()])
                            })
                            .map_err(sql)?,
                        )
                    }
                    (taken, _) => taken,
                };
                let outcome = match taken {
                    Some(true) => InsertOutcome::DuplicateTimestamp,
                    Some(false) => InsertOutcome::DuplicateSeq,
                    None => {
                        let changed = ins
                            .execute(params![
                                r.meter_id.as_str(),
                                r.ts.millis(),
                                r.seq.map(|s| s as i64),
                                r.received.millis(),
                                r.energy_import.mwh(),
                                r.energy_export.map(Energy::mwh),
                                r.power_w,
                                r.voltage_v,
                                r.current_a,
                                r.power_factor,
                                r.frequency_hz,
                                r.status.as_str(),
                                r.relay.map(RelayState::as_str),
                            ])
                            .map_err(sql)?;
                        // Ignored only for the key: the seq was checked above.
                        if changed == 1 {
                            InsertOutcome::Stored
                        } else {
                            InsertOutcome::DuplicateTimestamp
                        }
                    }
                };
                out.push(outcome);
            }
        }
        let stored: Vec<&Reading> = readings
            .iter()
            .zip(&out)
            .filter(|(_, o)| **o == InsertOutcome::Stored)
            .map(|(r, _)| r)
            .collect();
        self.db
            .hot_readings
            .fetch_add(stored.len() as i64, std::sync::atomic::Ordering::Relaxed);
        self.db.move_hot_readings(&tx)?;
        tx.commit()?;
        // Kept in step with what this connection stored (a rollback of the caller's transaction
        // forgets it all).
        self.db.bounds()?.recent.stored(&stored);
        Ok(out)
    }

    async fn range(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reading>, StoreError> {
        let conn = self.db.read()?;
        let args: &[&dyn rusqlite::ToSql] = &[&meter.as_str(), &from.millis(), &to.millis()];
        let hot = query_readings(
            &conn,
            select_hot_readings!("WHERE meter_id = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts"),
            args,
        )?;
        let main_max = self.db.main_bounds_of(&conn, meter.as_str())?.map(|b| b.0);
        if main_max.is_some_and(|m| m.is_none_or(|m| m < from.millis())) {
            return Ok(hot);
        }
        let main = query_readings(
            &conn,
            select_readings!("WHERE meter_id = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts"),
            args,
        )?;
        Ok(merge_by_time(main, hot))
    }

    async fn range_with_previous(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reading>, StoreError> {
        if let Some(known) = self.ask_tail(meter, |t| t.with_previous(from, to))? {
            return Ok(known);
        }
        // One statement per table instead of the provided two calls: ingest runs this for
        // every meter of every batch. Each table's own last reading at or before `from` starts
        // its part; the later of the two starts the merged result.
        let conn = self.db.read()?;
        let args: &[&dyn rusqlite::ToSql] = &[&meter.as_str(), &from.millis(), &to.millis()];
        let hot = query_readings(&conn, with_previous!("readings_hot"), args)?;
        // The main table cannot add anything when it is empty for the meter or ends before
        // the hot table's reading at or before `from`.
        let main_max = self.db.main_bounds_of(&conn, meter.as_str())?.map(|b| b.0);
        let hot_start = hot.first().map(|r| r.ts).filter(|t| *t <= from);
        let mut all = if main_ends_before(main_max, hot_start) {
            hot
        } else {
            let main = query_readings(&conn, with_previous!("readings"), args)?;
            merge_by_time(main, hot)
        };
        let before = all.partition_point(|r| r.ts <= from);
        if before > 1 {
            all.drain(..before - 1);
        }
        Ok(all)
    }

    async fn before(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError> {
        self.nearest(
            meter,
            ts,
            |t| t.before(ts),
            Nearest {
                main: select_readings!("WHERE meter_id = ?1 AND ts < ?2 ORDER BY ts DESC LIMIT 1"),
                hot: select_hot_readings!(
                    "WHERE meter_id = ?1 AND ts < ?2 ORDER BY ts DESC LIMIT 1"
                ),
                later: true,
            },
        )
    }

    async fn after(&self, meter: &MeterId, ts: Timestamp) -> Result<Option<Reading>, StoreError> {
        self.nearest(
            meter,
            ts,
            |t| t.after(ts),
            Nearest {
                main: select_readings!("WHERE meter_id = ?1 AND ts > ?2 ORDER BY ts LIMIT 1"),
                hot: select_hot_readings!("WHERE meter_id = ?1 AND ts > ?2 ORDER BY ts LIMIT 1"),
                later: false,
            },
        )
    }
}

/// The statements of a nearest-reading lookup ([`ReadingStore::before`] or `after`) in each table.
struct Nearest {
    main: &'static str,
    hot: &'static str,
    /// Looking back (the later of the two answers wins) or forward (the earlier wins).
    later: bool,
}

impl SqliteReadingStore {
    /// Asks the copy of the meter's newest readings (see [`recent`]), taking it first if
    /// needed; `None` when it cannot be trusted (outside [`SqliteDb::begin`]) or cannot answer.
    fn ask_tail<T>(
        &self,
        meter: &MeterId,
        ask: impl FnOnce(&recent::Tail) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let conn = self.db.conn()?;
        let mut known = self.db.bounds()?;
        if !known.trusted {
            return Ok(None);
        }
        if !known.recent.tails.contains_key(meter) {
            if !known.recent.room_for_tail() {
                return Ok(None);
            }
            let args: &[&dyn rusqlite::ToSql] = &[&meter.as_str(), &(recent::TAIL_READINGS as i64)];
            let main = query_readings(
                &conn,
                select_readings!("WHERE meter_id = ?1 ORDER BY ts DESC LIMIT ?2"),
                args,
            )?;
            let hot = query_readings(
                &conn,
                select_hot_readings!("WHERE meter_id = ?1 ORDER BY ts DESC LIMIT ?2"),
                args,
            )?;
            known
                .recent
                .tails
                .insert(meter.clone(), recent::Tail::from_newest(main, hot));
        }
        Ok(known.recent.tails.get(meter).and_then(ask))
    }

    /// The reading nearest to `ts` in one direction: from the meter's copy (`ask`) when it can
    /// answer, else across both tables, skipping the main table where its known bounds say it
    /// cannot hold a nearer answer than the hot one.
    fn nearest(
        &self,
        meter: &MeterId,
        ts: Timestamp,
        ask: impl FnOnce(&recent::Tail) -> Option<Option<Reading>>,
        q: Nearest,
    ) -> Result<Option<Reading>, StoreError> {
        if let Some(known) = self.ask_tail(meter, ask)? {
            return Ok(known);
        }
        let conn = self.db.read()?;
        let args: &[&dyn rusqlite::ToSql] = &[&meter.as_str(), &ts.millis()];
        let hot = query_readings(&conn, q.hot, args)?.pop();
        let main_max = self.db.main_bounds_of(&conn, meter.as_str())?.map(|b| b.0);
        let skip = if q.later {
            main_ends_before(main_max, hot.as_ref().map(|r| r.ts))
        } else {
            // Forward: the main table has nothing after `ts` once its newest is not after it.
            main_max.is_some_and(|m| m.is_none_or(|m| m <= ts.millis()))
        };
        if skip {
            return Ok(hot);
        }
        let main = query_readings(&conn, q.main, args)?.pop();
        Ok(match (main, hot) {
            (Some(a), Some(b)) => Some(if (a.ts > b.ts) == q.later { a } else { b }),
            (a, b) => a.or(b),
        })
    }
}

/// The meter registry in SQLite.
pub struct SqliteMeterRegistry {
    db: Arc<SqliteDb>,
}

fn meter_from_row(row: &Row<'_>) -> Result<Result<MeterInfo, StoreError>, rusqlite::Error> {
    let id: String = row.get(0)?;
    let kind: String = row.get(1)?;
    let feeder: Option<String> = row.get(2)?;
    let tz: String = row.get(6)?;
    let contracted_kw: Option<f64> = row.get(3)?;
    let location: Option<String> = row.get(4)?;
    let tariff_id: Option<String> = row.get(5)?;
    Ok((|| {
        Ok(MeterInfo {
            meter_id: meter_id(&id)?,
            kind: MeterKind::parse(&kind).ok_or_else(|| corrupt("meter kind", &kind))?,
            feeder_id: feeder.as_deref().map(meter_id).transpose()?,
            contracted_kw,
            location,
            tariff_id,
            timezone: parse_timezone(&tz).ok_or_else(|| corrupt("time zone", &tz))?,
        })
    })())
}

const METER_COLUMNS: &str =
    "meter_id, kind, feeder_id, contracted_kw, location, tariff_id, timezone";

fn write_meter(conn: &Connection, verb: &str, m: &MeterInfo) -> Result<usize, StoreError> {
    conn.prepare_cached(&format!(
        "{verb} INTO meters ({METER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            m.meter_id.as_str(),
            m.kind.as_str(),
            m.feeder_id.as_ref().map(MeterId::as_str),
            m.contracted_kw,
            m.location,
            m.tariff_id,
            m.timezone.name(),
        ])
    })
    .map_err(sql)
}

fn get_meter(conn: &Connection, meter: &MeterId) -> Result<Option<MeterInfo>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {METER_COLUMNS} FROM meters WHERE meter_id = ?1"
    ))
    .and_then(|mut s| s.query_row([meter.as_str()], meter_from_row).optional())
    .map_err(sql)?
    .transpose()
}

/// Refuses `info` if it names a feeder not registered as a feeder meter
/// ([`meter_core::registry::check_feeder`]).
fn check_feeder_on(conn: &Connection, info: &MeterInfo) -> Result<(), StoreError> {
    let feeder = match &info.feeder_id {
        Some(f) => get_meter(conn, f)?,
        None => None,
    };
    meter_core::registry::check_feeder(info, feeder.as_ref())
}

#[async_trait]
impl MeterRegistry for SqliteMeterRegistry {
    async fn get(&self, meter: &MeterId) -> Result<Option<MeterInfo>, StoreError> {
        get_meter(&*self.db.conn()?, meter)
    }

    async fn upsert(&self, info: &MeterInfo) -> Result<(), StoreError> {
        let conn = self.db.conn()?;
        check_feeder_on(&conn, info)?;
        write_meter(&conn, "INSERT OR REPLACE", info).map(|_| ())
    }

    async fn register_if_absent(&self, info: &MeterInfo) -> Result<MeterInfo, StoreError> {
        let conn = self.db.conn()?;
        if let Some(existing) = get_meter(&conn, &info.meter_id)? {
            return Ok(existing);
        }
        check_feeder_on(&conn, info)?;
        write_meter(&conn, "INSERT OR IGNORE", info)?;
        get_meter(&conn, &info.meter_id)?
            .ok_or_else(|| corrupt("meter vanished after insert", info.meter_id.as_str()))
    }

    async fn by_feeder(&self, feeder: &MeterId) -> Result<Vec<MeterInfo>, StoreError> {
        let conn = self.db.conn()?;
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {METER_COLUMNS} FROM meters WHERE feeder_id = ?1 ORDER BY meter_id"
            ))
            .map_err(sql)?;
        let rows = stmt
            .query_map([feeder.as_str()], meter_from_row)
            .map_err(sql)?;
        rows.map(|r| r.map_err(sql).and_then(|x| x)).collect()
    }

    async fn list(&self, after: Option<&MeterId>, limit: usize) -> Result<MeterPage, StoreError> {
        let conn = self.db.conn()?;
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {METER_COLUMNS} FROM meters WHERE meter_id > ?1 ORDER BY meter_id LIMIT ?2"
            ))
            .map_err(sql)?;
        // One more than asked, to know whether another page follows.
        let want = limit.max(1);
        let rows = stmt
            .query_map(
                params![
                    after.map_or("", MeterId::as_str),
                    i64::try_from(want + 1).unwrap_or(i64::MAX)
                ],
                meter_from_row,
            )
            .map_err(sql)?;
        let mut meters = rows
            .map(|r| r.map_err(sql).and_then(|x| x))
            .collect::<Result<Vec<_>, _>>()?;
        let more = meters.len() > want;
        meters.truncate(want);
        let next = if more {
            meters.last().map(|m| m.meter_id.clone())
        } else {
            None
        };
        Ok(MeterPage { meters, next })
    }
}

/// Quarantine in SQLite.
pub struct SqliteQuarantineStore {
    db: Arc<SqliteDb>,
}

#[async_trait]
impl QuarantineStore for SqliteQuarantineStore {
    async fn put(&self, entries: &[QuarantineEntry]) -> Result<(), StoreError> {
        let conn = self.db.conn()?;
        let tx = WriteScope::new(&conn)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO quarantine \
                     (meter_key, received_ms, id, reason, detail, raw, idx) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql)?;
            for e in entries {
                stmt.execute(params![
                    e.meter_key,
                    e.received.millis(),
                    e.id,
                    e.reason.as_str(),
                    e.detail,
                    e.raw,
                    e.index,
                ])
                .map_err(sql)?;
            }
        }
        tx.commit()
    }

    async fn for_meter(
        &self,
        meter_key: &str,
        limit: usize,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        let conn = self.db.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT meter_key, received_ms, id, reason, detail, raw, idx FROM quarantine \
                 WHERE meter_key = ?1 ORDER BY received_ms DESC, id DESC LIMIT ?2",
            )
            .map_err(sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![meter_key, limit], |row| {
                let reason: String = row.get(3)?;
                Ok((
                    QuarantineEntry {
                        meter_key: row.get(0)?,
                        received: Timestamp::from_millis(row.get(1)?),
                        id: row.get(2)?,
                        reason: QuarantineReason::MalformedJson,
                        detail: row.get(4)?,
                        raw: row.get(5)?,
                        index: row.get(6)?,
                    },
                    reason,
                ))
            })
            .map_err(sql)?;
        rows.map(|r| {
            let (mut e, reason) = r.map_err(sql)?;
            e.reason = QuarantineReason::parse(&reason)
                .ok_or_else(|| corrupt("quarantine reason", &reason))?;
            Ok(e)
        })
        .collect()
    }
}

/// Aggregates in SQLite.
pub struct SqliteAggregateStore {
    db: Arc<SqliteDb>,
}

#[async_trait]
impl AggregateStore for SqliteAggregateStore {
    async fn next_version(&self, _meter: &MeterId) -> Result<u64, StoreError> {
        Ok(self.db.next_version())
    }

    async fn put(&self, aggregates: &[Aggregate]) -> Result<(), StoreError> {
        let conn = self.db.conn()?;
        let tx = WriteScope::new(&conn)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO aggregates_hot \
                     (meter_id, period, measured, estimated, readings, resets, version) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (meter_id, period) DO UPDATE SET \
                       measured = excluded.measured, estimated = excluded.estimated, \
                       readings = excluded.readings, resets = excluded.resets, \
                       version = excluded.version \
                     WHERE excluded.version > aggregates_hot.version",
                )
                .map_err(sql)?;
            // The main table's row, if the period has moved on, must be older too (a separate
            // lookup: an `INSERT ... SELECT ... WHERE NOT EXISTS` would open a statement journal).
            let mut newer_in_main = tx
                .prepare_cached(
                    "SELECT 1 FROM aggregates WHERE meter_id = ?1 AND period = ?2 AND version >= ?3",
                )
                .map_err(sql)?;
            let fresh_from = self.db.aggregates_fresh_from()?;
            for a in aggregates {
                let key = a.period.key();
                let fresh = fresh_from.is_some_and(|t| a.version >= t);
                if !fresh
                    && newer_in_main
                        .exists(params![a.meter_id.as_str(), key, a.version as i64])
                        .map_err(sql)?
                {
                    continue;
                }
                stmt.execute(params![
                    a.meter_id.as_str(),
                    key,
                    a.measured.mwh(),
                    a.estimated.mwh(),
                    a.readings,
                    a.resets,
                    a.version as i64,
                ])
                .map_err(sql)?;
            }
        }
        self.db.move_hot_aggregates(&tx)?;
        tx.commit()?;
        self.db.bounds()?.recent.put(aggregates);
        Ok(())
    }

    async fn range(
        &self,
        meter: &MeterId,
        from: Period,
        to: Period,
    ) -> Result<Vec<Aggregate>, StoreError> {
        if from.granularity() != to.granularity() {
            return Ok(Vec::new());
        }
        let conn = self.db.conn()?;
        aggregates_in(&conn, meter, from, to)
    }

    async fn roll_up(
        &self,
        meter: &MeterId,
        period: Period,
        from: Period,
        to: Period,
        version: u64,
    ) -> Result<Aggregate, StoreError> {
        let mut out = Aggregate::empty(meter.clone(), period, version);
        if from.granularity() != to.granularity() {
            return Ok(out);
        }
        let conn = self.db.conn()?;
        {
            let mut known = self.db.bounds()?;
            if known.trusted {
                // Ingest rolls up the same day and month for a meter batch after batch: read
                // their rows once, then keep the copy in step with the puts (see [`recent`]).
                if let Some(copy) = known
                    .recent
                    .aggregates_of(meter)
                    .filter(|_| recent::can_roll_up(from, to))
                {
                    if let Some(sum) = copy.roll_up(from, to, out.clone()) {
                        return Ok(sum);
                    }
                    let rows = aggregates_in(&conn, meter, from, to)?;
                    copy.fill(from, to, &rows);
                    return Ok(meter_core::aggregate::roll_up(
                        meter, period, &rows, version,
                    ));
                }
            }
        }
        // Otherwise (outside a trusted transaction, or past the copies' meter limit), summed
        // here rather than moving up to 31 rows into Rust and parsing their keys.
        let (measured, estimated, readings, resets) = conn
            .prepare_cached(
                // The main table's rows plus, for each hot row, its difference from the main
                // row it shadows: a hot row is one of a meter's few current periods, so this
                // looks up a handful of rows where "main rows not shadowed" would look up all.
                "SELECT COALESCE(SUM(m), 0), COALESCE(SUM(e), 0), COALESCE(SUM(r), 0), \
                 COALESCE(SUM(s), 0) FROM ( \
                   SELECT measured AS m, estimated AS e, readings AS r, resets AS s \
                   FROM aggregates WHERE meter_id = ?1 AND period BETWEEN ?2 AND ?3 \
                   UNION ALL \
                   SELECT h.measured - COALESCE(a.measured, 0), \
                          h.estimated - COALESCE(a.estimated, 0), \
                          h.readings - COALESCE(a.readings, 0), h.resets - COALESCE(a.resets, 0) \
                   FROM aggregates_hot h LEFT JOIN aggregates a \
                     ON a.meter_id = h.meter_id AND a.period = h.period \
                   WHERE h.meter_id = ?1 AND h.period BETWEEN ?2 AND ?3)",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![meter.as_str(), from.key(), to.key()], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, u32>(2)?,
                        row.get::<_, u32>(3)?,
                    ))
                })
            })
            .map_err(sql)?;
        out.measured = Energy::from_mwh(measured);
        out.estimated = Energy::from_mwh(estimated);
        out.readings = readings;
        out.resets = resets;
        Ok(out)
    }
}

/// The aggregates of `meter` with periods `from..=to` (one granularity) across both tables,
/// each hot row shadowing the main row of its period.
fn aggregates_in(
    conn: &Connection,
    meter: &MeterId,
    from: Period,
    to: Period,
) -> Result<Vec<Aggregate>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT period, measured, estimated, readings, resets, version FROM aggregates_hot \
             WHERE meter_id = ?1 AND period BETWEEN ?2 AND ?3 \
             UNION ALL \
             SELECT period, measured, estimated, readings, resets, version FROM aggregates \
             WHERE meter_id = ?1 AND period BETWEEN ?2 AND ?3 \
             ORDER BY period, version DESC",
        )
        .map_err(sql)?;
    let rows = stmt
        .query_map(params![meter.as_str(), from.key(), to.key()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, u32>(3)?,
                row.get::<_, u32>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })
        .map_err(sql)?;
    rows.map(|r| {
        let (key, measured, estimated, readings, resets, version) = r.map_err(sql)?;
        Ok(Aggregate {
            meter_id: meter.clone(),
            period: Period::parse_key(&key).ok_or_else(|| corrupt("period key", &key))?,
            measured: Energy::from_mwh(measured),
            estimated: Energy::from_mwh(estimated),
            readings,
            resets,
            version: version as u64,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()
    .map(|mut rows| {
        // A hot row shadows the main table's row of the same period (it is newer, and
        // sorts first).
        rows.dedup_by(|later, first| later.period == first.period);
        rows
    })
}

/// Instant events in SQLite.
pub struct SqliteEventStore {
    db: Arc<SqliteDb>,
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn publish(&self, events: &[MeterEvent]) -> Result<(), StoreError> {
        let conn = self.db.conn()?;
        let tx = WriteScope::new(&conn)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO events (meter_id, ev_key, ts, kind, value, detail) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql)?;
            for e in events {
                stmt.execute(params![
                    e.meter_id.as_str(),
                    e.key(),
                    e.ts.millis(),
                    e.kind.as_str(),
                    e.value,
                    e.detail,
                ])
                .map_err(sql)?;
            }
        }
        tx.commit()
    }

    async fn for_meter(
        &self,
        meter: &MeterId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<MeterEvent>, StoreError> {
        let conn = self.db.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT ts, kind, value, detail FROM events \
                 WHERE meter_id = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ev_key",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![meter.as_str(), from.millis(), to.millis()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<f64>>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(sql)?;
        rows.map(|r| {
            let (ts, kind, value, detail) = r.map_err(sql)?;
            Ok(MeterEvent {
                meter_id: meter.clone(),
                ts: Timestamp::from_millis(ts),
                kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?,
                value,
                detail,
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory for one test's files (the caller removes it).
    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("meterflow-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// How many rows `table` holds, as `conn` sees it.
    fn rows_in(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// A plain reading of `meter` at `ts_ms` with register `mwh`, `seq` and nothing else.
    fn reading_at(meter: &str, ts_ms: i64, mwh: i64, seq: Option<u64>) -> Reading {
        Reading {
            seq,
            ..Reading::register_only(
                MeterId::parse(meter).unwrap(),
                Timestamp::from_millis(ts_ms),
                Timestamp::from_millis(ts_ms + 1_000),
                Energy::from_mwh(mwh),
            )
        }
    }

    #[tokio::test]
    async fn a_hot_reading_at_the_same_time_outranks_another_hot_reading_with_the_same_seq() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let store = SqliteReadingStore { db: db.clone() };
        let t0 = 1_763_790_000_000_i64;
        let stored = store
            .insert(&[
                reading_at("m-1", t0, 1_000, Some(1)),
                reading_at("m-1", t0 + 900_000, 1_100, Some(2)),
            ])
            .await
            .unwrap();
        assert_eq!(stored, vec![InsertOutcome::Stored; 2]);
        // Both rows are still hot: the seq is found there, and the timestamp ranks first.
        assert_eq!(rows_in(&db.conn().unwrap(), "readings_hot"), 2);
        let again = store
            .insert(&[
                reading_at("m-1", t0, 1_000, Some(2)),
                reading_at("m-1", t0 + 1_800_000, 1_200, Some(2)),
                reading_at("m-1", t0 + 1_800_000, 1_200, Some(3)),
            ])
            .await
            .unwrap();
        assert_eq!(
            again,
            vec![
                InsertOutcome::DuplicateTimestamp,
                InsertOutcome::DuplicateSeq,
                InsertOutcome::Stored
            ]
        );
    }

    #[test]
    fn opening_a_database_with_the_old_hot_seq_index_drops_it() {
        let dir = scratch_dir("old-hot-index");
        let path = dir.join("store.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(concat!(
                readings_table!("readings_hot"),
                "CREATE UNIQUE INDEX readings_hot_by_seq ON readings_hot (meter_id, seq) \
                 WHERE seq IS NOT NULL;"
            ))
            .unwrap();
        }
        let db = SqliteDb::open(&path).unwrap();
        let left: i64 = db
            .conn()
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'readings_hot_by_seq'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn committed_writes_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = scratch_dir("ckpt");
        let path = dir.join("store.db");
        let db = SqliteDb::open(&path).unwrap();
        {
            let conn = db.conn().unwrap();
            conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
                .unwrap();
            for k in 0..200 {
                conn.execute("INSERT INTO t VALUES (?1, ?2)", params![k, "x".repeat(500)])
                    .unwrap();
            }
        }
        // Far below the writer's own checkpoint threshold: only the background thread copies
        // the WAL into the file. Its copy alone (no -wal beside it) must hold every row.
        let copy = dir.join("copy.db");
        let mut rows = 0;
        for _ in 0..50 {
            std::thread::sleep(CHECKPOINT_EVERY / 2);
            std::fs::copy(&path, &copy).unwrap();
            rows = Connection::open(&copy)
                .and_then(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0)))
                .unwrap_or(0);
            let _ = std::fs::remove_file(&copy);
            if rows == 200 {
                break;
            }
        }
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(rows, 200);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_wal_flusher_waits_for_the_wal_and_follows_it_when_sqlite_makes_a_new_one() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = scratch_dir("flush");
        let path = dir.join("store.db-wal");
        let mut wal = WalFile::new(path.clone());
        wal.flush();
        assert!(wal.file.is_none(), "no WAL yet: nothing to open");

        std::fs::write(&path, b"first").unwrap();
        wal.flush();
        let first = wal.file.as_ref().map(|f| f.metadata().unwrap().ino());
        assert_eq!(first, Some(std::fs::metadata(&path).unwrap().ino()));

        // The last connection to close deletes the WAL; the next one makes a new file.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"second").unwrap();
        wal.flush();
        let second = wal.file.as_ref().map(|f| f.metadata().unwrap().ino());
        let now_there = std::fs::metadata(&path).unwrap().ino();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(second, Some(now_there));
        assert_ne!(second, first, "the flusher must let go of the deleted file");
    }

    #[tokio::test]
    async fn a_read_of_both_tables_sees_one_snapshot_while_another_connection_moves_rows() {
        let dir = scratch_dir("snap");
        let path = dir.join("store.db");
        let writer = Arc::new(SqliteDb::open(&path).unwrap());
        let reader = Arc::new(SqliteDb::open_reader(&path).unwrap());
        let t0 = 1_772_323_200_000_i64;
        let readings: Vec<Reading> = (0..4)
            .map(|i| reading_at("m-1", t0 + i * 900_000, 1_000 + i, Some(i as u64)))
            .collect();
        SqliteReadingStore::new(writer.clone())
            .insert(&readings)
            .await
            .unwrap();
        let hot_then_main = {
            let conn = reader.read().unwrap();
            let count = |table: &str| rows_in(&conn, table);
            let hot = count("readings_hot");
            // The writer moves every hot reading on between the read's two statements.
            writer
                .conn()
                .unwrap()
                .execute_batch(
                    "BEGIN; INSERT INTO readings SELECT * FROM readings_hot; \
                     DELETE FROM readings_hot; COMMIT;",
                )
                .unwrap();
            (hot, count("readings"))
        };
        let after = SqliteReadingStore::new(reader.clone())
            .range(
                &MeterId::parse("m-1").unwrap(),
                Timestamp::from_millis(t0),
                Timestamp::from_millis(t0 + 3 * 900_000),
            )
            .await
            .unwrap();
        drop((reader, writer));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            hot_then_main,
            (4, 0),
            "each reading seen once, in the hot table"
        );
        assert_eq!(after.len(), 4);
    }

    #[test]
    fn another_threads_write_waits_for_the_bridges_transaction_and_survives_its_rollback() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let store = Arc::new(SqliteReadingStore::new(db.clone()));
        let t0 = 1_772_323_200_000_i64;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        db.begin().unwrap();
        rt.block_on(store.insert(&[reading_at("m-1", t0, 1_000, None)]))
            .unwrap();
        let job = {
            let store = store.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(store.insert(&[reading_at("m-2", t0, 2_000, None)]))
                    .map(|_| ())
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        let waited = !job.is_finished();
        db.rollback().unwrap();
        job.join().unwrap().unwrap();
        let count = |m: &str| {
            rt.block_on(store.range(
                &MeterId::parse(m).unwrap(),
                Timestamp::from_millis(t0),
                Timestamp::from_millis(t0),
            ))
            .unwrap()
            .len()
        };
        assert!(
            waited,
            "the other thread must not write inside the open transaction"
        );
        assert_eq!((count("m-1"), count("m-2")), (0, 1));
    }

    #[test]
    fn the_jobs_reader_connection_refuses_writes() {
        let dir = scratch_dir("ro");
        let path = dir.join("store.db");
        let writer = SqliteDb::open(&path).unwrap();
        let reader = SqliteDb::open_reader(&path).unwrap();
        let refused = reader
            .conn()
            .unwrap()
            .execute("DELETE FROM readings_hot", [])
            .is_err();
        drop((reader, writer));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(refused);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_wal_is_the_database_path_with_wal_appended() {
        assert_eq!(
            wal_path(Path::new("/data/meterflow.db")),
            Path::new("/data/meterflow.db-wal")
        );
    }

    #[tokio::test]
    async fn hot_statements_are_prepared_once_not_on_every_call() {
        use meter_core::{IngestConfig, Ingestor, RegistryMode};
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let ingestor = Ingestor::new(
            sqlite_ports(db.clone()),
            IngestConfig {
                registry_mode: RegistryMode::AutoRegister,
                ..IngestConfig::default()
            },
        );
        let t0 = 1_763_790_000_000_i64;
        for i in 0..20_i64 {
            let msgs: Vec<String> = (0..5)
                .map(|m| {
                    format!(
                        r#"{{"v":1,"seq":{i},"ts":{},"energy_import_kwh":{},"topic_meter_id":"m-{m}","received_ms":{}}}"#,
                        t0 + i * 900_000,
                        10.0 + i as f64,
                        t0 + i * 900_000 + 1_000
                    )
                })
                .collect();
            let inbound: Vec<meter_core::Inbound<'_>> = msgs
                .iter()
                .map(|p| meter_core::Inbound {
                    payload: p.as_bytes(),
                    ctx: meter_core::telemetry::MessageContext {
                        topic: None,
                        received: Timestamp::from_millis(t0 + i * 900_000 + 1_000),
                    },
                })
                .collect();
            db.begin().unwrap();
            ingestor.ingest(&inbound).await.unwrap();
            db.commit().unwrap();
        }
        let conn = db.conn().unwrap();
        let mut worst = Vec::new();
        for sql in [
            select_readings!("WHERE meter_id = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts")
                .to_string(),
            select_readings!("WHERE meter_id = ?1 AND ts < ?2 ORDER BY ts DESC LIMIT 1")
                .to_string(),
            "SELECT period, measured, estimated, readings, resets, version FROM aggregates \
                 WHERE meter_id = ?1 AND period BETWEEN ?2 AND ?3 ORDER BY period"
                .to_string(),
        ] {
            let stmt = conn.prepare_cached(&sql).unwrap();
            worst.push((
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                stmt.get_status(rusqlite::StatementStatus::Run),
            ));
        }
        eprintln!("(reprepares, runs) = {worst:?}");
        assert!(worst.iter().all(|(re, _)| *re == 0), "{worst:?}");
    }

    #[test]
    fn aggregate_versions_grow_strictly_even_within_one_microsecond() {
        let db = SqliteDb::in_memory().unwrap();
        let versions: Vec<u64> = (0..10_000).map(|_| db.next_version()).collect();
        assert!(versions.windows(2).all(|w| w[1] > w[0]));
        // Far above the per-meter counters an older database holds.
        assert!(versions[0] > 1 << 50);
    }

    #[tokio::test]
    async fn readings_survive_closing_and_reopening_the_file() {
        let path = std::env::temp_dir().join(format!("meterflow-reopen-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let r = Reading {
            meter_id: MeterId::parse("m-1").unwrap(),
            ts: Timestamp::from_millis(1_772_323_200_000),
            seq: Some(1),
            received: Timestamp::from_millis(1_772_323_260_000),
            energy_import: Energy::from_mwh(1_500_000),
            energy_export: None,
            power_w: Some(100.0),
            voltage_v: None,
            current_a: None,
            power_factor: None,
            frequency_hz: None,
            status: MeterStatus::Ok,
            relay: None,
        };
        {
            let store = SqliteReadingStore::new(Arc::new(SqliteDb::open(&path).unwrap()));
            assert_eq!(
                store.insert(std::slice::from_ref(&r)).await.unwrap(),
                vec![InsertOutcome::Stored]
            );
        }
        let store = SqliteReadingStore::new(Arc::new(SqliteDb::open(&path).unwrap()));
        assert_eq!(
            store.range(&r.meter_id, r.ts, r.ts).await.unwrap(),
            vec![r.clone()]
        );
        assert_eq!(
            store.insert(&[r]).await.unwrap(),
            vec![InsertOutcome::DuplicateTimestamp]
        );
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    fn hour(meter: &str, start_ms: i64, kwh: i64, version: u64) -> Aggregate {
        let mut a = Aggregate::empty(
            MeterId::parse(meter).unwrap(),
            Period::Hour(Timestamp::from_millis(start_ms)),
            version,
        );
        a.measured = Energy::from_mwh(kwh * 1_000_000);
        a.readings = 4;
        a
    }

    #[tokio::test]
    async fn a_hot_aggregate_shadows_the_moved_row_of_its_period_and_a_stale_put_changes_nothing() {
        // Everything moves at every write: the first put lands in the main table.
        let db = Arc::new(
            SqliteDb::in_memory()
                .unwrap()
                .with_hot_limits(HotLimits::none()),
        );
        let store = SqliteAggregateStore { db: db.clone() };
        let m = MeterId::parse("m-1").unwrap();
        let (h0, h1) = (1_772_323_200_000, 1_772_326_800_000);
        let v1 = db.next_version();
        store
            .put(&[hour("m-1", h0, 1, v1), hour("m-1", h1, 2, v1)])
            .await
            .unwrap();
        let count = |table: &str| rows_in(&db.conn().unwrap(), table);
        assert_eq!((count("aggregates"), count("aggregates_hot")), (2, 0));

        // A newer row for h0 written hot (as a late reading would, before it moves on).
        let v2 = db.next_version();
        db.conn()
            .unwrap()
            .execute(
                "INSERT INTO aggregates_hot VALUES ('m-1', ?1, 5000000, 0, 4, 0, ?2)",
                params![Period::Hour(Timestamp::from_millis(h0)).key(), v2 as i64],
            )
            .unwrap();
        let (p0, p1) = (
            Period::Hour(Timestamp::from_millis(h0)),
            Period::Hour(Timestamp::from_millis(h1)),
        );
        let rows = store.range(&m, p0, p1).await.unwrap();
        assert_eq!(rows.len(), 2, "one row per period: {rows:?}");
        assert_eq!((rows[0].measured.mwh(), rows[0].version), (5_000_000, v2));
        let sum = store
            .roll_up(&m, Period::Hour(Timestamp::from_millis(0)), p0, p1, 0)
            .await
            .unwrap();
        assert_eq!((sum.measured.mwh(), sum.readings), (7_000_000, 8));

        // A put older than the main table's row is refused, hot or not, and inside the
        // bridge's transaction too (where fresh puts skip the check).
        store.put(&[hour("m-1", h1, 9, v1 - 1)]).await.unwrap();
        db.begin().unwrap();
        store.put(&[hour("m-1", h1, 9, v1 - 1)]).await.unwrap();
        db.commit().unwrap();
        let rows = store
            .range(
                &m,
                Period::Hour(Timestamp::from_millis(h1)),
                Period::Hour(Timestamp::from_millis(h1)),
            )
            .await
            .unwrap();
        assert_eq!(rows[0].measured.mwh(), 2_000_000);
    }

    #[tokio::test]
    async fn idle_hot_aggregates_move_on_a_window_at_a_time_and_every_row_gets_its_turn() {
        let limits = HotLimits {
            aggregate_idle: std::time::Duration::ZERO,
            aggregate_move_every: std::time::Duration::ZERO,
            aggregate_scan_max: 2,
            ..HotLimits::default()
        };
        let db = Arc::new(SqliteDb::in_memory().unwrap().with_hot_limits(limits));
        let store = SqliteAggregateStore { db: db.clone() };
        let h0 = 1_772_323_200_000;
        let rows: Vec<Aggregate> = (1..=5)
            .map(|i| hour(&format!("m-{i}"), h0, i, db.next_version()))
            .collect();
        let count = |table: &str| rows_in(&db.conn().unwrap(), table);
        let readable = || async {
            let mut seen = Vec::new();
            for a in &rows {
                seen.extend(store.range(&a.meter_id, a.period, a.period).await.unwrap());
            }
            seen
        };
        // Each put (here: of nothing) looks at the next two rows.
        store.put(&rows).await.unwrap();
        let mut hot = Vec::new();
        for _ in 0..3 {
            hot.push(count("aggregates_hot"));
            assert_eq!(readable().await, rows, "every row readable once");
            store.put(&[]).await.unwrap();
        }
        hot.push(count("aggregates_hot"));
        assert_eq!(hot, vec![3, 1, 0, 0]);
        assert_eq!(count("aggregates"), 5);
        assert_eq!(readable().await, rows);

        // The sweep came round to the start: a row before every other key moves too.
        let first = hour("m-0", h0, 9, db.next_version());
        store.put(std::slice::from_ref(&first)).await.unwrap();
        store.put(&[]).await.unwrap();
        assert_eq!((count("aggregates_hot"), count("aggregates")), (0, 6));
    }

    #[tokio::test]
    async fn in_the_bridges_transaction_only_puts_newer_than_its_start_skip_the_main_check() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let store = SqliteAggregateStore { db: db.clone() };
        let m = MeterId::parse("m-1").unwrap();
        let h0 = 1_772_323_200_000;
        let p0 = Period::Hour(Timestamp::from_millis(h0));
        let v_main = db.next_version();
        db.conn()
            .unwrap()
            .execute(
                "INSERT INTO aggregates VALUES ('m-1', ?1, 1000000, 0, 4, 0, ?2)",
                params![p0.key(), v_main as i64],
            )
            .unwrap();
        db.begin().unwrap();
        store.put(&[hour("m-1", h0, 9, v_main - 1)]).await.unwrap();
        assert_eq!(
            store.range(&m, p0, p0).await.unwrap()[0].measured.mwh(),
            1_000_000
        );
        let fresh = db.next_version();
        store.put(&[hour("m-1", h0, 2, fresh)]).await.unwrap();
        db.commit().unwrap();
        let rows = store.range(&m, p0, p0).await.unwrap();
        assert_eq!(
            (rows[0].measured.mwh(), rows[0].version),
            (2_000_000, fresh)
        );
    }

    #[tokio::test]
    async fn hot_readings_move_on_in_meter_order_and_every_reading_stays_readable_once() {
        hot_readings_case(false).await;
    }

    #[tokio::test]
    async fn inside_the_bridges_transactions_known_bounds_skip_the_main_table_and_miss_nothing() {
        hot_readings_case(true).await;
    }

    /// Readings of three meters stored and read back, each call in a transaction of its own
    /// opened with `begin` (where the main table's per-meter bounds are trusted) or not.
    async fn hot_readings_case(in_transactions: bool) {
        let limits = HotLimits {
            readings: 5,
            readings_move_max: 3,
            ..HotLimits::default()
        };
        let db = Arc::new(SqliteDb::in_memory().unwrap().with_hot_limits(limits));
        let store = SqliteReadingStore::new(db.clone());
        let t0 = 1_772_323_200_000_i64;
        let reading =
            |meter: &str, i: i64| reading_at(meter, t0 + i * 900_000, 1_000 * i, Some(i as u64));
        for i in 0..10 {
            let batch: Vec<Reading> = ["a", "b", "c"].iter().map(|m| reading(m, i)).collect();
            assert!(store
                .insert(&batch)
                .await
                .unwrap()
                .iter()
                .all(|o| *o == InsertOutcome::Stored));
        }
        let count = |table: &str| rows_in(&db.conn().unwrap(), table);
        // Each call moves at most three, so the hot table holds more than its limit here
        // but both tables together hold every reading once.
        assert!(count("readings") > 0 && count("readings_hot") > 0);
        assert_eq!(count("readings") + count("readings_hot"), 30);
        for m in ["a", "b", "c"] {
            let id = MeterId::parse(m).unwrap();
            let all = tx(
                &db,
                in_transactions,
                store.range(
                    &id,
                    Timestamp::from_millis(t0),
                    Timestamp::from_millis(t0 + 10 * 900_000),
                ),
            )
            .await;
            assert_eq!(
                all.iter().map(|r| r.seq.unwrap()).collect::<Vec<_>>(),
                (0..10).collect::<Vec<u64>>()
            );
            // Re-deliveries and reused seqs are caught in either table.
            for i in 0..10 {
                assert_eq!(
                    tx(&db, in_transactions, store.insert(&[reading(m, i)])).await,
                    vec![InsertOutcome::DuplicateTimestamp]
                );
                let mut moved = reading(m, i);
                moved.ts = Timestamp::from_millis(t0 - 900_000 * (i + 1));
                assert_eq!(
                    tx(&db, in_transactions, store.insert(&[moved])).await,
                    vec![InsertOutcome::DuplicateSeq]
                );
            }
        }
        assert_eq!(count("readings") + count("readings_hot"), 30);
    }

    #[tokio::test]
    async fn a_move_cursor_past_every_hot_reading_starts_again_from_the_first_meter() {
        let limits = HotLimits {
            readings: 1,
            readings_move_max: 1,
            ..HotLimits::default()
        };
        let db = Arc::new(SqliteDb::in_memory().unwrap().with_hot_limits(limits));
        let store = SqliteReadingStore::new(db.clone());
        let t0 = 1_772_323_200_000_i64;
        // Each call moves the first hot reading after the cursor; by the fifth call the cursor
        // (at c's second reading) is past both hot readings of meter a.
        let calls = [
            ("a", 1),
            ("b", 1),
            ("c", 1),
            ("c", 2),
            ("a", 5),
            ("a", 6),
            ("a", 7),
        ];
        for (i, (meter, k)) in calls.into_iter().enumerate() {
            let r = reading_at(meter, t0 + k * 900_000, k * 1_000, None);
            // Inside the bridge's transactions, where the main table's bounds are known.
            assert_eq!(
                tx(&db, true, store.insert(&[r])).await,
                vec![InsertOutcome::Stored],
                "call {i}"
            );
        }
        let a = MeterId::parse("a").unwrap();
        let all = store
            .range(
                &a,
                Timestamp::from_millis(t0),
                Timestamp::from_millis(t0 + 8 * 900_000),
            )
            .await
            .unwrap();
        assert_eq!(all.len(), 4);
        let hot: i64 = db
            .conn()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM readings_hot", [], |r| r.get(0))
            .unwrap();
        assert!(hot <= 2, "moves went on from the first meter: {hot} hot");
    }

    #[tokio::test]
    async fn a_late_reading_kept_hot_does_not_hide_newer_ones_already_moved_on() {
        for wrap in [false, true] {
            let limits = HotLimits {
                readings: 1,
                ..HotLimits::default()
            };
            let db = Arc::new(SqliteDb::in_memory().unwrap().with_hot_limits(limits));
            let store = SqliteReadingStore::new(db.clone());
            let at = |minutes: i64| Timestamp::from_millis(1_772_323_200_000 + minutes * 60_000);
            let reading =
                |minutes: i64| reading_at("m-1", at(minutes).millis(), minutes * 1_000, None);
            // 10 moves on, 20 stays hot; then the late 5 arrives and 20 moves on: the main
            // table holds 10 and 20, the hot table only the older 5.
            tx(&db, wrap, store.insert(&[reading(10), reading(20)])).await;
            tx(&db, wrap, store.insert(&[reading(5)])).await;
            let hot: i64 = db
                .conn()
                .unwrap()
                .query_row("SELECT MAX(ts) FROM readings_hot", [], |r| r.get(0))
                .unwrap();
            assert_eq!(hot, at(5).millis(), "the set-up this case is about");
            let m = MeterId::parse("m-1").unwrap();
            let before = tx(&db, wrap, store.before(&m, at(30))).await;
            assert_eq!(before.map(|r| r.ts), Some(at(20)), "wrapped: {wrap}");
            let after = tx(&db, wrap, store.after(&m, at(0))).await;
            assert_eq!(after.map(|r| r.ts), Some(at(5)), "wrapped: {wrap}");
            let with_previous = tx(&db, wrap, store.range_with_previous(&m, at(25), at(30))).await;
            assert_eq!(
                with_previous.iter().map(|r| r.ts).collect::<Vec<_>>(),
                vec![at(20)],
                "wrapped: {wrap}"
            );
            let all = tx(&db, wrap, store.range(&m, at(0), at(30))).await;
            assert_eq!(
                all.iter().map(|r| r.ts).collect::<Vec<_>>(),
                vec![at(5), at(10), at(20)],
                "wrapped: {wrap}"
            );
        }
    }

    /// A database file's name, whose file and WAL files are removed when it is dropped.
    struct TempDbFile(std::path::PathBuf);

    impl TempDbFile {
        fn remove(&self) {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", self.0.display()));
            }
        }
    }

    impl Drop for TempDbFile {
        fn drop(&mut self) {
            self.remove();
        }
    }

    /// Two connections to one file, as `up` and `meterflow import` would be. Keep the third
    /// value alive as long as the connections: dropping it removes the files.
    fn two_connections(name: &str) -> (Arc<SqliteDb>, Arc<SqliteDb>, TempDbFile) {
        let file = TempDbFile(std::env::temp_dir().join(format!(
            "meterflow-{name}-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        )));
        file.remove();
        let a = Arc::new(SqliteDb::open(&file.0).unwrap());
        let b = Arc::new(SqliteDb::open(&file.0).unwrap());
        (a, b, file)
    }

    #[tokio::test]
    async fn a_reading_another_process_commits_is_seen_by_the_bridges_next_transaction() {
        let (bridge, other, _file) = two_connections("recent-other");
        let (ours, theirs) = (
            SqliteReadingStore::new(bridge.clone()),
            SqliteReadingStore::new(other.clone()),
        );
        let t0 = 1_772_323_200_000_i64;
        let id = MeterId::parse("m").unwrap();
        let at = |i: i64| Timestamp::from_millis(t0 + i * 900_000);
        tx(
            &bridge,
            true,
            ours.insert(&[reading_at("m", t0, 0, Some(0))]),
        )
        .await;
        // The bridge now has a copy of the meter's newest readings.
        let prev = tx(&bridge, true, ours.before(&id, at(9))).await;
        assert_eq!(prev.map(|r| r.ts), Some(at(0)));
        // Another process stores a later reading (and a late one) in between.
        theirs
            .insert(&[
                reading_at("m", t0 + 2 * 900_000, 2, Some(2)),
                reading_at("m", t0 - 900_000, 0, None),
            ])
            .await
            .unwrap();
        let prev = tx(&bridge, true, ours.before(&id, at(9))).await;
        assert_eq!(prev.map(|r| r.ts), Some(at(2)));
        let next = tx(&bridge, true, ours.after(&id, at(0))).await;
        assert_eq!(next.map(|r| r.ts), Some(at(2)));
        let around = tx(&bridge, true, ours.range_with_previous(&id, at(-1), at(3))).await;
        assert_eq!(
            around.iter().map(|r| r.ts).collect::<Vec<_>>(),
            vec![at(-1), at(0), at(2)]
        );
    }

    #[tokio::test]
    async fn a_rolled_back_reading_is_forgotten_by_the_copy_of_the_newest_readings() {
        let db = Arc::new(SqliteDb::in_memory().unwrap());
        let store = SqliteReadingStore::new(db.clone());
        let t0 = 1_772_323_200_000_i64;
        let id = MeterId::parse("m").unwrap();
        tx(&db, true, store.insert(&[reading_at("m", t0, 0, Some(0))])).await;
        db.begin().unwrap();
        assert!(store
            .before(&id, Timestamp::from_millis(t0 + 1))
            .await
            .unwrap()
            .is_some());
        store
            .insert(&[reading_at("m", t0 + 900_000, 1, Some(1))])
            .await
            .unwrap();
        db.rollback().unwrap();
        let after = tx(&db, true, store.after(&id, Timestamp::from_millis(t0))).await;
        assert_eq!(after, None);
        let last = tx(
            &db,
            true,
            store.before(&id, Timestamp::from_millis(t0 + 2_000_000)),
        )
        .await;
        assert_eq!(last.map(|r| r.ts.millis()), Some(t0));
    }

    #[tokio::test]
    async fn roll_ups_in_the_bridges_transactions_see_every_committed_child() {
        let (bridge, other, _file) = two_connections("recent-rollup");
        let (ours, theirs) = (
            SqliteAggregateStore { db: bridge.clone() },
            SqliteAggregateStore { db: other.clone() },
        );
        let id = MeterId::parse("m").unwrap();
        let t0 = 1_772_323_200_000_i64;
        let hour = |h: i64, mwh: i64, version: u64| Aggregate {
            measured: Energy::from_mwh(mwh),
            ..Aggregate::empty(
                id.clone(),
                Period::Hour(Timestamp::from_millis(t0 + h * 3_600_000)),
                version,
            )
        };
        let (from, to) = (hour(0, 0, 0).period, hour(23, 0, 0).period);
        let day = Period::Hour(Timestamp::from_millis(t0));
        async fn day_sum(
            db: &SqliteDb,
            store: &SqliteAggregateStore,
            id: &MeterId,
            (day, from, to): (Period, Period, Period),
        ) -> i64 {
            let v = db.next_version();
            tx(db, true, store.roll_up(id, day, from, to, v))
                .await
                .measured
                .mwh()
        }
        let span = (day, from, to);
        tx(
            &bridge,
            true,
            ours.put(&[hour(0, 5, bridge.next_version())]),
        )
        .await;
        assert_eq!(day_sum(&bridge, &ours, &id, span).await, 5);
        // Our own puts keep the copy current; a stale one changes nothing.
        tx(
            &bridge,
            true,
            ours.put(&[hour(1, 7, bridge.next_version()), hour(0, 1, 1)]),
        )
        .await;
        assert_eq!(day_sum(&bridge, &ours, &id, span).await, 12);
        // Another process's put is seen at the next transaction.
        theirs
            .put(&[hour(2, 100, other.next_version())])
            .await
            .unwrap();
        assert_eq!(day_sum(&bridge, &ours, &id, span).await, 112);
        // A rolled-back put is forgotten.
        bridge.begin().unwrap();
        ours.put(&[hour(3, 1_000, bridge.next_version())])
            .await
            .unwrap();
        bridge.rollback().unwrap();
        assert_eq!(day_sum(&bridge, &ours, &id, span).await, 112);
    }

    async fn tx<T>(
        db: &SqliteDb,
        wrap: bool,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> T {
        if wrap {
            db.begin().unwrap();
        }
        let out = call.await.unwrap();
        if wrap {
            db.commit().unwrap();
        }
        out
    }
}
