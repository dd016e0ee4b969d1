//! The local stack behind `meterflow up`: the whole pipeline in one process, no cloud.
//!
//! | AWS                        | here                                              |
//! |----------------------------|---------------------------------------------------|
//! | IoT Core message broker    | [`broker`]: rumqttd on 127.0.0.1                  |
//! | IoT topic rule → `ingest`  | [`bridge`]: the same handler, same event shape    |
//! | DynamoDB                   | the SQLite adapters of this crate                 |
//! | EventBridge Scheduler      | [`schedule`]: jobs on simulated time              |
//! | `forecast` + shard queue   | [`forecast_job`]: the same handler, shards inline |
//! | `anomaly-scan` + its queue | [`scan_job`]: the same handler, shards inline     |
//! | findings table stream      | [`scan_job`]: new findings into the [`outbox`]    |
//! | SNS (alerts)               | [`outbox`]: console + `outbox.jsonl`              |
//! | CloudWatch metrics         | [`metrics`]: `/metrics` on the HTTP listener      |
//! | real meters                | [`publisher`]: the simulated fleet over MQTT      |
//!
//! [`Stack::start`] brings it up; [`Stack::shutdown`] stops the fleet, lets the broker
//! acknowledge what is in flight, drains the bridge until every acknowledged message is stored,
//! and saves the fleet's state, so a restart resumes with nothing lost.

pub mod bridge;
pub mod broker;
pub mod clock;
pub mod forecast_job;
pub mod http;
pub mod metrics;
pub mod outbox;
pub mod publisher;
pub mod scan_job;
pub mod schedule;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meter_core::ingest::Ports;
use meter_core::{IngestConfig, IngestReport, Ingestor, RegistryMode};
use meter_sim::FleetConfig;

use crate::SqliteDb;
use clock::SimClock;
use metrics::StackMetrics;
use outbox::Outbox;
use publisher::{FleetRunner, FleetSummary, MqttTarget, PublisherError};
use schedule::{ScheduledJob, Scheduler};

/// Observes stored batches: `(topic, payload)` of each message and when the batch was stored.
pub type BatchObserver = Arc<dyn Fn(&[(&str, &[u8])], Instant) + Send + Sync>;

/// Everything `meterflow up` can set.
pub struct StackConfig {
    /// Where the SQLite store, the fleet state, the outbox and the dead-letter file live.
    pub data_dir: PathBuf,
    /// MQTT listen address (port 0: pick a free one).
    pub mqtt_addr: SocketAddr,
    /// HTTP listen address for `/health`, `/metrics` (port 0: pick a free one).
    pub http_addr: SocketAddr,
    /// The simulated fleet; `None` runs the stack for external meters only.
    pub fleet: Option<FleetConfig>,
    /// Simulated seconds per wall second.
    pub speed: f64,
    /// MQTT connections the simulated meters share.
    pub publishers: usize,
    /// How often (wall time) the fleet publishes what is due.
    pub tick: Duration,
    /// How far (simulated time) the meters' pushes are spread after each interval ends.
    pub push_spread: Duration,
    /// Ingest settings (limits, event thresholds, registry mode).
    pub ingest: IngestConfig,
    /// How often (wall time) the rule bridge recomputes the aggregates its batches changed;
    /// readers see hour, day and month rows up to this much late (see
    /// `bridge::Bridge::aggregate_every`).
    pub aggregate_every: Duration,
    /// Scheduled jobs (anomaly scan, later) run on simulated time.
    pub jobs: Vec<Arc<dyn ScheduledJob>>,
    /// The daily forecast run on the stack's store; `None` runs none.
    pub forecast: Option<forecast_job::ForecastSchedule>,
    /// The anomaly scan on the stack's store; `None` runs none.
    pub scan: Option<scan_job::ScanSchedule>,
    /// Print outbox messages to the console as well.
    pub echo_outbox: bool,
    /// Called after every stored batch.
    pub observer: Option<BatchObserver>,
    /// Where simulated time starts for a new fleet (default: now). A resumed fleet carries on
    /// from its saved time.
    pub start: Option<meter_core::Timestamp>,
}

/// How often the rule bridge recomputes pending aggregates unless told otherwise. Each meter's
/// readings of the last two seconds share one recompute: at `bench pipeline`'s 20,000
/// readings/s a meter publishes every half second, so its hour, day and month rows are written
/// about a quarter as often as by an ingest call that writes them itself.
pub const DEFAULT_AGGREGATE_EVERY: Duration = Duration::from_secs(2);

impl StackConfig {
    /// Defaults for a data directory: MQTT on 127.0.0.1:1883, HTTP on 127.0.0.1:8080, no
    /// fleet, real time, meters auto-registered.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            mqtt_addr: SocketAddr::from(([127, 0, 0, 1], 1883)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            fleet: None,
            speed: 1.0,
            publishers: 4,
            tick: Duration::from_millis(100),
            push_spread: publisher::DEFAULT_PUSH_SPREAD,
            ingest: IngestConfig {
                registry_mode: RegistryMode::AutoRegister,
                ..IngestConfig::default()
            },
            aggregate_every: DEFAULT_AGGREGATE_EVERY,
            jobs: Vec::new(),
            forecast: Some(forecast_job::ForecastSchedule::default()),
            scan: Some(scan_job::ScanSchedule::default()),
            echo_outbox: true,
            observer: None,
            start: None,
        }
    }
}

/// Why the stack could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The SQLite store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::OpenError),
    /// Registering the fleet's meters failed.
    #[error("cannot register the simulated meters")]
    Registry(#[source] meter_core::ports::StoreError),
    /// The broker did not start.
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    /// The HTTP listener did not start.
    #[error("cannot listen for HTTP on {addr} (pick another --http-port)")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The simulated fleet failed.
    #[error(transparent)]
    Fleet(#[from] PublisherError),
    /// A background thread could not be started or died.
    #[error("the {0} stopped unexpectedly")]
    Thread(&'static str),
}

/// The running stack.
pub struct Stack {
    /// Where MQTT clients connect.
    pub mqtt_addr: SocketAddr,
    /// Where `/health` and `/metrics` are served.
    pub http_addr: SocketAddr,
    /// The store's ports, for queries (the API, tests).
    pub ports: Ports,
    /// The forecasts the forecast job writes.
    pub forecasts: Arc<dyn meter_core::ports::ForecastStore>,
    /// The findings the anomaly-scan job keeps.
    pub findings: Arc<dyn meter_core::ports::FindingStore>,
    /// Simulated time.
    pub clock: SimClock,
    /// Counters.
    pub metrics: Arc<StackMetrics>,
    /// The alert outbox.
    pub outbox: Arc<Outbox>,
    /// The fleet simulator, when one runs (tests send it commands and read its ground truth).
    pub fleet: Option<Arc<Mutex<meter_sim::Fleet>>>,
    /// Publishes device commands (relay) to `meters/{id}/commands` through the broker.
    pub commands: Arc<Mutex<rumqttd::local::LinkTx>>,
    stopping_fleet: Arc<AtomicBool>,
    stopping_bridge: Arc<AtomicBool>,
    stopping_jobs: Arc<AtomicBool>,
    fleet_task: Option<tokio::task::JoinHandle<Result<FleetSummary, PublisherError>>>,
    bridge_thread: std::thread::JoinHandle<IngestReport>,
    jobs_thread: std::thread::JoinHandle<()>,
    http: http::HttpServer,
    _command_rx: rumqttd::local::LinkRx,
}

/// What a shutdown saw.
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    /// What the fleet published and the broker acknowledged.
    pub fleet: FleetSummary,
    /// What the bridge ingested over the stack's life.
    pub ingested: IngestReport,
}

impl Stack {
    /// Starts everything; returns once the broker and the HTTP listener accept connections.
    pub async fn start(cfg: StackConfig) -> Result<Stack, StackError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| StackError::DataDir {
            path: cfg.data_dir.display().to_string(),
            source,
        })?;
        let db_path = cfg.data_dir.join("meterflow.db");
        let db = Arc::new(SqliteDb::open(&db_path)?);
        let ports = crate::sqlite_ports(db.clone());
        // The scheduled jobs read through a connection of their own (see
        // `SqliteDb::open_reader`) and write their few batches through the writer's.
        let job_reads = crate::sqlite_ports(Arc::new(SqliteDb::open_reader(&db_path)?));
        let forecasts: Arc<dyn meter_core::ports::ForecastStore> =
            Arc::new(crate::SqliteForecastStore::new(db.clone()));
        let findings: Arc<dyn meter_core::ports::FindingStore> =
            Arc::new(crate::SqliteFindingStore::new(db.clone()));
        let metrics = Arc::new(StackMetrics::new());
        let outbox = Arc::new(Outbox::new(&cfg.data_dir, cfg.echo_outbox));

        // The fleet (resumed if its state is in the data dir) decides where simulated time starts.
        let state_path = cfg.data_dir.join("fleet.json");
        let (fleet, start) = match cfg.fleet.clone() {
            Some(fc) => {
                let identity = publisher::fleet_identity(&fc);
                let fresh = cfg.start.unwrap_or_else(clock::wall_now);
                let (fleet, start) = publisher::open_fleet(fc, &state_path, fresh)?;
                for info in fleet.registry() {
                    ports
                        .registry
                        .upsert(&info)
                        .await
                        .map_err(StackError::Registry)?;
                }
                (Some((Arc::new(Mutex::new(fleet)), identity)), start)
            }
            None => (None, clock::wall_now()),
        };
        let speed = if fleet.is_some() { cfg.speed } else { 1.0 };
        let clock = SimClock::new(start, speed);
        metrics.set_sim_time(start);

        let mqtt_addr = with_free_port(cfg.mqtt_addr)?;
        let b = broker::start(mqtt_addr)?;
        let commands = Arc::new(Mutex::new(b.commands));

        // The bridge's ingest calls only mark the hours whose aggregates change; the bridge
        // recomputes them every `aggregate_every` (see `bridge::Bridge::aggregate_every`).
        let pending = Arc::new(crate::SqlitePendingAggregates::new(db.clone()));
        let ingestor =
            Arc::new(Ingestor::new(ports.clone(), cfg.ingest).with_pending_aggregates(pending));
        let stopping_bridge = Arc::new(AtomicBool::new(false));
        let bridge = bridge::Bridge {
            ingestor,
            clock,
            metrics: metrics.clone(),
            dead_letter: cfg.data_dir.join("dead-letter.jsonl"),
            stopping: stopping_bridge.clone(),
            observer: cfg.observer,
            db: Some(db),
            aggregate_every: cfg.aggregate_every,
        };
        let link = b.link;
        // The bridge gets its own thread and runtime: SQLite calls block, and must not stall
        // the HTTP listener or the fleet's connections.
        let bridge_thread = std::thread::Builder::new()
            .name("rule-bridge".into())
            .spawn(move || {
                block_on_own_runtime("rule bridge", IngestReport::default(), bridge.run(link))
            })
            .map_err(|_| StackError::Thread("rule bridge"))?;

        let http_addr = with_free_port(cfg.http_addr)?;
        let http = http::HttpServer::start(
            http_addr,
            http::HttpState {
                metrics: metrics.clone(),
                clock,
            },
        )
        .await
        .map_err(|source| StackError::Http {
            addr: http_addr,
            source,
        })?;

        let stopping_fleet = Arc::new(AtomicBool::new(false));
        let fleet_task = fleet.as_ref().map(|(f, identity)| {
            let runner = FleetRunner {
                fleet: f.clone(),
                identity: identity.clone(),
                clock,
                metrics: metrics.clone(),
                stopping: stopping_fleet.clone(),
                state_path: Some(state_path.clone()),
                tick: cfg.tick,
                push_spread: cfg.push_spread,
            };
            tokio::spawn(runner.run(MqttTarget {
                host: loopback_host(mqtt_addr),
                port: mqtt_addr.port(),
                tls: None,
                client_prefix: "meterflow-sim".into(),
                connections: cfg.publishers,
            }))
        });

        let stopping_jobs = Arc::new(AtomicBool::new(false));
        let mut scheduler = Scheduler::new();
        for job in cfg.jobs {
            scheduler.add(job, clock.now());
        }
        if let Some(schedule) = cfg.forecast {
            let job = forecast_job::ForecastJob::new(
                job_reads.registry.clone(),
                job_reads.readings.clone(),
                forecasts.clone(),
                schedule,
            );
            scheduler.add(Arc::new(job), clock.now());
        }
        if let Some(schedule) = cfg.scan {
            let job = scan_job::ScanJob::new(
                job_reads.registry.clone(),
                job_reads.readings.clone(),
                findings.clone(),
                outbox.clone(),
                schedule,
            )
            .with_metrics(metrics.clone());
            scheduler.add(Arc::new(job), clock.now());
        }
        let jobs_stop = stopping_jobs.clone();
        // The jobs get a thread and runtime of their own, like the bridge: the daily forecast
        // and scan of a whole fleet are seconds of CPU. Run as a task on the shared runtime, they
        // held one of its two workers, and with it the fleet's publishing task, which tokio
        // could not move to the other worker: measured in `bench pipeline`, no reading reached
        // the broker for 1.8 s at each simulated midnight (p99 1.3-1.7 s in 30 s runs).
        let jobs_thread = std::thread::Builder::new()
            .name("scheduled-jobs".into())
            .spawn(move || {
                // Lowest CPU priority, as a background job should have: on a small machine the
                // jobs otherwise take a whole core from ingest (measured: the bridge slowed 4x
                // and p99 reached 0.8 s while the midnight jobs ran). They read through their
                // own connection and write a few batches, so the bridge never waits on them.
                if let Err(e) = thread_priority::set_current_thread_priority(
                    thread_priority::ThreadPriority::Min,
                ) {
                    tracing::debug!(error = ?e, "scheduled jobs keep their normal CPU priority");
                }
                block_on_own_runtime("scheduled jobs", (), async move {
                    while !jobs_stop.load(Ordering::Relaxed) {
                        scheduler.tick(clock.now()).await;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            })
            .map_err(|_| StackError::Thread("scheduled jobs"))?;

        Ok(Stack {
            mqtt_addr,
            http_addr: http.addr,
            ports,
            forecasts,
            findings,
            clock,
            metrics,
            outbox,
            fleet: fleet.map(|(f, _)| f),
            commands,
            stopping_fleet,
            stopping_bridge,
            stopping_jobs,
            fleet_task,
            bridge_thread,
            jobs_thread,
            http,
            _command_rx: b.commands_rx,
        })
    }

    /// Publishes a device command (`{"relay":"open"}`) to `meters/{id}/commands`.
    pub fn send_command(&self, meter_id: &str, payload: &[u8]) -> Result<(), StackError> {
        let mut tx = self
            .commands
            .lock()
            .map_err(|_| StackError::Thread("command link"))?;
        tx.publish(format!("meters/{meter_id}/commands"), payload.to_vec())
            .map(drop)
            .map_err(|_| StackError::Thread("command link"))
    }

    /// Stops the fleet, waits for the broker's acknowledgements and for the bridge to store
    /// everything it was handed, saves the fleet state, and stops the listeners.
    pub async fn shutdown(self) -> Result<ShutdownReport, StackError> {
        self.stopping_fleet.store(true, Ordering::Relaxed);
        let fleet = match self.fleet_task {
            Some(task) => task
                .await
                .map_err(|_| StackError::Thread("simulated fleet"))??,
            None => FleetSummary::default(),
        };
        self.stopping_jobs.store(true, Ordering::Relaxed);
        let jobs = self.jobs_thread;
        let _ = tokio::task::spawn_blocking(move || jobs.join()).await;
        // The bridge keeps going until the broker has had nothing for it for a moment.
        self.stopping_bridge.store(true, Ordering::Relaxed);
        let ingested = tokio::task::spawn_blocking(move || self.bridge_thread.join())
            .await
            .map_err(|_| StackError::Thread("rule bridge"))?
            .map_err(|_| StackError::Thread("rule bridge"))?;
        self.http.stop().await;
        Ok(ShutdownReport { fleet, ingested })
    }
}

/// Runs `fut` on a current-thread runtime of the calling thread, or gives `fallback` (logged) if
/// that runtime cannot start. The stack's blocking loops (the rule bridge's two halves, the
/// scheduled jobs) each get a thread and runtime of their own this way, so SQLite calls and
/// long jobs never stall the shared runtime's HTTP listener or fleet connections.
pub(crate) fn block_on_own_runtime<T>(what: &str, fallback: T, fut: impl Future<Output = T>) -> T {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            tracing::error!(error = %e, thread = what, "runtime failed to start");
            fallback
        }
    }
}

/// Port 0 means "any free port": resolve it now so the address can be printed and probed.
fn with_free_port(addr: SocketAddr) -> Result<SocketAddr, StackError> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let l =
        std::net::TcpListener::bind(addr).map_err(|source| StackError::Http { addr, source })?;
    let port = l
        .local_addr()
        .map_err(|source| StackError::Http { addr, source })?
        .port();
    Ok(SocketAddr::new(addr.ip(), port))
}

/// The host the in-process fleet dials: the listen address, or loopback for 0.0.0.0.
fn loopback_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "127.0.0.1".into()
    } else {
        addr.ip().to_string()
    }
}
