//! The fleet: advances the simulated clock interval by interval and turns each meter's reading
//! into the telemetry v1 messages it publishes, applying the planned injections; takes relay
//! commands; saves and restores its state.

use std::collections::HashMap;
use std::ops::Range;

use meter_core::registry::MeterInfo;
use meter_core::telemetry::encode_reading;
use meter_core::types::HOUR_MS;
use meter_core::{Energy, MeterId, MeterKind, MeterStatus, Reading, RelayState, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::{FaultKind, FleetConfig};
use crate::load::{
    business_norm, consumer_electrical, consumer_energy_kwh, Bus, Clock, ConsumerProfile,
    FeederProfile, IntervalCtx, FEEDER_ENTITY, FEEDER_PF,
};
use crate::plan::{plan, theft_day, Injection, Planned};
use crate::rng::{Purpose, SplitMix};

/// Where registers wrap: the platform's default register maximum (`Limits::register_max_kwh`),
/// in mWh, so an injected rollover is recognised as one rather than as a reset.
pub const REGISTER_MAX_MWH: i64 = 1_000_000 * 1_000_000;

/// Most readings in one store-and-forward batch message: keeps it far below IoT Core's 128 KiB.
const MAX_BATCH: usize = 200;

/// Version of [`FleetState`]'s layout.
const STATE_VERSION: u32 = 1;

/// One message a meter publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The publishing meter.
    pub meter_id: MeterId,
    /// `meters/{id}/telemetry`.
    pub topic: String,
    /// Telemetry v1 JSON: one reading, or a `readings` batch.
    pub payload: Vec<u8>,
}

/// A message a meter holds back (out-of-order delivery, store-and-forward).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldMessage {
    /// Interval index at which it is published.
    pub release: i64,
    /// Whether it is one element of a store-and-forward batch (else a whole message).
    pub batch: bool,
    /// The encoded reading.
    pub payload: String,
}

/// One meter's evolving state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterState {
    /// The meter id.
    pub meter_id: String,
    /// The import register the meter reports, mWh.
    pub register_mwh: i64,
    /// Energy truly delivered through the meter since the fleet started, mWh (for a feeder:
    /// its consumers' true consumption plus losses).
    pub true_mwh: i64,
    /// A feeder's technical losses since the fleet started, mWh (0 for consumers).
    pub loss_mwh: i64,
    /// The next message counter.
    pub seq: u64,
    /// The load relay.
    pub relay: RelayState,
    /// Messages held back for later publication.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldMessage>,
}

/// Everything needed to continue a fleet after a restart, together with its [`FleetConfig`].
/// Serialisable with serde; all numbers are integers, so a JSON round trip is exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetState {
    /// Layout version.
    pub version: u32,
    /// When the fleet was started (epoch ms): the injection plan is derived from it.
    pub start_ms: i64,
    /// Reading interval, ms.
    pub interval_ms: i64,
    /// Index of the next interval to produce (it ends at `next_index × interval_ms`).
    pub next_index: i64,
    /// Consumers, then feeders.
    pub meters: Vec<MeterState>,
}

impl FleetState {
    /// The simulated clock: the end of the last interval produced.
    pub fn clock(&self) -> Timestamp {
        Timestamp::from_millis((self.next_index - 1) * self.interval_ms)
    }
}

/// What a relay command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The commanded meter.
    pub meter_id: MeterId,
    /// The relay's state now.
    pub relay: RelayState,
    /// Whether the command changed it.
    pub changed: bool,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No meter of the fleet has this id.
    #[error("unknown meter {0:?}")]
    UnknownMeter(String),
    /// The payload is not JSON of the form `{"relay":"open"}` or `{"relay":"closed"}`.
    #[error("invalid command payload: {0}")]
    InvalidPayload(String),
    /// Feeder meters have no load relay.
    #[error("meter {0} is a feeder meter and has no load relay")]
    NoRelay(String),
}

/// What the simulator knows that the meter does not report truthfully.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterTruth {
    /// Energy truly delivered since the fleet started, kWh (feeders: consumers + losses).
    pub true_kwh: f64,
    /// A feeder's technical losses since the start, kWh.
    pub losses_kwh: f64,
    /// The register as the meter currently reports it, kWh.
    pub register_kwh: f64,
    /// The load relay.
    pub relay: RelayState,
}

/// One consumer's energies for the interval being produced.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    /// The reported register's increment, mWh.
    reported_mwh: i64,
    /// Power the meter shows, kW.
    power_kw: f64,
    /// Whether there is supply at the meter.
    supplied: bool,
    /// Whether the meter publishes nothing this interval.
    silent: bool,
}

/// A day of theft-pattern output for one consumer, cached while the day is being produced.
#[derive(Debug, Clone)]
struct TheftDay {
    day: i64,
    first: i64,
    reported_kwh: Vec<f64>,
}

/// A simulated fleet of consumer and feeder meters. See the crate documentation.
#[derive(Debug, Clone)]
pub struct Fleet {
    cfg: FleetConfig,
    clock: Clock,
    start_ms: i64,
    next_index: i64,
    business_norm: f64,
    consumers: Vec<ConsumerProfile>,
    feeders: Vec<FeederProfile>,
    /// Consumers under each feeder; one group (with an unpublished virtual feeder) if none.
    groups: Vec<Range<usize>>,
    ids: Vec<MeterId>,
    topics: Vec<String>,
    meters: Vec<MeterState>,
    planned: Vec<Planned>,
    /// For each consumer, its entry in `planned`.
    plan_of: Vec<Option<usize>>,
    injections: Vec<Injection>,
    theft_days: HashMap<usize, TheftDay>,
    steps: Vec<Step>,
}

fn consumer_id(i: usize) -> String {
    format!("c-{:05}", i + 1)
}

fn feeder_id(i: usize) -> String {
    format!("f-{:03}", i + 1)
}

fn to_mwh(kwh: f64) -> i64 {
    (kwh * 1_000_000.0).round() as i64
}

/// Rounds to `scale` steps per unit (10 for one decimal). Dividing the rounded integer (rather
/// than multiplying by the step) gives the double nearest the decimal, so JSON prints `229.2`,
/// not `229.20000000000002`.
fn round_to(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

impl Fleet {
    /// A fleet whose clock starts at `start`: the first reading closes the first interval that
    /// ends after it.
    pub fn new(cfg: FleetConfig, start: Timestamp) -> Fleet {
        let mut fleet = Self::build(cfg, start.millis());
        fleet.next_index = start.millis().div_euclid(fleet.clock.interval_ms) + 1;
        fleet.init_meters();
        fleet
    }

    /// Continues a fleet from [`Fleet::state`], as if it had never stopped. `cfg` must be the
    /// configuration the fleet was created with; meters the state does not hold (a larger
    /// fleet) start fresh.
    pub fn resume(cfg: FleetConfig, state: FleetState) -> Fleet {
        let mut fleet = Self::build(cfg, state.start_ms);
        // Continue from the saved clock even if the interval was changed in between.
        let clock_ms = (state.next_index - 1).saturating_mul(state.interval_ms);
        fleet.next_index = clock_ms.div_euclid(fleet.clock.interval_ms) + 1;
        fleet.init_meters();
        for (slot, saved) in fleet.meters.iter_mut().zip(state.meters) {
            if slot.meter_id == saved.meter_id {
                *slot = saved;
            }
        }
        fleet
    }

    fn build(cfg: FleetConfig, start_ms: i64) -> Fleet {
        let interval_ms = cfg.interval_ms();
        let clock = Clock::new(cfg.timezone, interval_ms, cfg.seed);
        let consumers: Vec<ConsumerProfile> = (0..cfg.consumers)
            .map(|i| ConsumerProfile::new(cfg.seed, i))
            .collect();
        let n = cfg.consumers;
        let groups: Vec<Range<usize>> = if cfg.feeders == 0 {
            std::iter::once(0..n).collect()
        } else {
            (0..cfg.feeders)
                .map(|f| f * n / cfg.feeders..(f + 1) * n / cfg.feeders)
                .collect()
        };
        let feeders: Vec<FeederProfile> = groups
            .iter()
            .enumerate()
            .map(|(f, g)| FeederProfile::new(cfg.seed, f, g.len()))
            .collect();
        // Generated names (`c-00001`, `f-001`) are always valid ids, so none is dropped here.
        let ids: Vec<MeterId> = (0..n)
            .map(consumer_id)
            .chain((0..cfg.feeders).map(feeder_id))
            .filter_map(|name| MeterId::parse(&name).ok())
            .collect();
        let topics = ids
            .iter()
            .map(|id| format!("meters/{id}/telemetry"))
            .collect();
        let planned = plan(&cfg, &clock, start_ms);
        let mut plan_of = vec![None; n];
        for (k, p) in planned.iter().enumerate() {
            plan_of[p.meter] = Some(k);
        }
        let injections = planned
            .iter()
            .map(|p| Injection {
                meter_id: ids[p.meter].clone(),
                kind: p.kind,
                from: Timestamp::from_millis((p.first - 1) * interval_ms),
                to: Timestamp::from_millis(p.last * interval_ms),
            })
            .collect();
        Fleet {
            cfg,
            clock,
            start_ms,
            next_index: 0,
            business_norm: business_norm(),
            consumers,
            feeders,
            groups,
            ids,
            topics,
            meters: Vec::new(),
            planned,
            plan_of,
            injections,
            theft_days: HashMap::new(),
            steps: Vec::new(),
        }
    }

    /// Fresh meter states: seeded registers, relays closed, nothing held.
    fn init_meters(&mut self) {
        let mut meters = Vec::with_capacity(self.ids.len());
        for (i, id) in self.ids.iter().enumerate() {
            let register_kwh = match i.checked_sub(self.cfg.consumers) {
                None => self.initial_consumer_register(i),
                Some(f) => self.feeders[f].register0_kwh,
            };
            meters.push(MeterState {
                meter_id: id.as_str().to_owned(),
                register_mwh: to_mwh(register_kwh),
                true_mwh: 0,
                loss_mwh: 0,
                seq: 0,
                relay: RelayState::Closed,
                held: Vec::new(),
            });
        }
        self.meters = meters;
    }

    /// A consumer's starting register. A rollover meter starts just below the maximum, by as
    /// much as it will use before its planned wrap, so the wrap lands in the planned interval.
    fn initial_consumer_register(&self, m: usize) -> f64 {
        let p = &self.consumers[m];
        let Some(plan) = self.plan_of[m].map(|k| &self.planned[k]) else {
            return p.register0_kwh;
        };
        if plan.kind != FaultKind::Rollover {
            return p.register0_kwh;
        }
        let mut before_mwh = 0;
        for i in self.next_index..plan.first {
            before_mwh += to_mwh(self.healthy_kwh(m, &self.clock.ctx(i)));
        }
        let wrap_mwh = to_mwh(self.healthy_kwh(m, &self.clock.ctx(plan.first)));
        (REGISTER_MAX_MWH - before_mwh - wrap_mwh / 2) as f64 / 1_000_000.0
    }

    fn healthy_kwh(&self, m: usize, ctx: &IntervalCtx) -> f64 {
        consumer_energy_kwh(
            self.cfg.seed,
            m,
            &self.consumers[m],
            ctx,
            self.clock.interval_ms,
            self.business_norm,
        )
    }

    /// The state to save for [`Fleet::resume`].
    pub fn state(&self) -> FleetState {
        FleetState {
            version: STATE_VERSION,
            start_ms: self.start_ms,
            interval_ms: self.clock.interval_ms,
            next_index: self.next_index,
            meters: self.meters.clone(),
        }
    }

    /// The simulated clock: the end of the last interval produced (the start, before any).
    pub fn clock(&self) -> Timestamp {
        Timestamp::from_millis((self.next_index - 1) * self.clock.interval_ms)
    }

    /// The configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.cfg
    }

    /// Registry records: feeders first (contracted load = transformer rating, kVA), then
    /// consumers (with feeder and contracted load; tariff `household` or `business`), the order
    /// they can be registered in (a registry refuses a consumer whose feeder it does not know).
    pub fn registry(&self) -> Vec<MeterInfo> {
        let tz = self.cfg.timezone;
        let mut out = Vec::with_capacity(self.ids.len());
        for (f, feeder) in self.feeders.iter().enumerate().take(self.cfg.feeders) {
            out.push(MeterInfo {
                meter_id: self.ids[self.cfg.consumers + f].clone(),
                kind: MeterKind::Feeder,
                feeder_id: None,
                contracted_kw: Some(feeder.rating_kva),
                location: None,
                tariff_id: None,
                timezone: tz,
            });
        }
        for (g, range) in self.groups.iter().enumerate() {
            for m in range.clone() {
                let p = &self.consumers[m];
                out.push(MeterInfo {
                    meter_id: self.ids[m].clone(),
                    kind: MeterKind::Consumer,
                    feeder_id: (self.cfg.feeders > 0)
                        .then(|| self.ids[self.cfg.consumers + g].clone()),
                    contracted_kw: Some(p.contracted_kw),
                    location: None,
                    tariff_id: Some(if p.business { "business" } else { "household" }.into()),
                    timezone: tz,
                });
            }
        }
        out
    }

    /// Ground truth of every injection, ordered by meter.
    pub fn injections(&self) -> &[Injection] {
        &self.injections
    }

    /// What the simulator knows of a meter beyond what it reports.
    pub fn truth(&self, meter_id: &str) -> Option<MeterTruth> {
        let i = self.index_of(meter_id)?;
        let s = &self.meters[i];
        Some(MeterTruth {
            true_kwh: s.true_mwh as f64 / 1_000_000.0,
            losses_kwh: s.loss_mwh as f64 / 1_000_000.0,
            register_kwh: s.register_mwh as f64 / 1_000_000.0,
            relay: s.relay,
        })
    }

    fn index_of(&self, meter_id: &str) -> Option<usize> {
        let (prefix, offset) = if meter_id.starts_with("c-") {
            ("c-", 0)
        } else {
            ("f-", self.cfg.consumers)
        };
        let n: usize = meter_id.strip_prefix(prefix)?.parse().ok()?;
        let i = offset + n.checked_sub(1)?;
        (self.ids.get(i)?.as_str() == meter_id).then_some(i)
    }

    /// Meters currently publishing: all but those silent in an outage or buffering for
    /// store-and-forward.
    pub fn meters_online(&self) -> usize {
        let now = self.next_index - 1;
        let silent = self
            .planned
            .iter()
            .filter(|p| {
                matches!(p.kind, FaultKind::Outage | FaultKind::StoreAndForward)
                    && p.first <= now
                    && now < p.last
            })
            .count();
        self.ids.len() - silent
    }

    /// Applies a command published on `meters/{meter_id}/commands`: `{"relay":"open"}` cuts the
    /// consumer's supply (zero consumption from the next interval on), `{"relay":"closed"}`
    /// restores it.
    pub fn command(
        &mut self,
        meter_id: &str,
        payload: &[u8],
    ) -> Result<CommandOutcome, CommandError> {
        let i = self
            .index_of(meter_id)
            .ok_or_else(|| CommandError::UnknownMeter(meter_id.to_owned()))?;
        #[derive(Deserialize)]
        struct Command {
            relay: Option<String>,
        }
        let cmd: Command = serde_json::from_slice(payload)
            .map_err(|e| CommandError::InvalidPayload(e.to_string()))?;
        let relay = match cmd.relay.as_deref() {
            Some(word) => RelayState::parse(word).ok_or_else(|| {
                CommandError::InvalidPayload(format!(
                    "relay {word:?} is neither \"open\" nor \"closed\""
                ))
            })?,
            None => {
                return Err(CommandError::InvalidPayload(
                    "missing field `relay`".to_owned(),
                ))
            }
        };
        if i >= self.cfg.consumers {
            return Err(CommandError::NoRelay(meter_id.to_owned()));
        }
        let state = &mut self.meters[i];
        let changed = state.relay != relay;
        state.relay = relay;
        Ok(CommandOutcome {
            meter_id: self.ids[i].clone(),
            relay,
            changed,
        })
    }

    /// Every message due up to `now` on the simulated clock, in publish order: interval by
    /// interval; within one, each feeder's consumers and then the feeder. Consecutive calls
    /// continue where the last stopped.
    pub fn advance(&mut self, now: Timestamp) -> Vec<Message> {
        let mut out = Vec::new();
        while self.next_index.saturating_mul(self.clock.interval_ms) <= now.millis() {
            let index = self.next_index;
            self.step(index, &mut out);
            self.next_index += 1;
        }
        out
    }

    fn step(&mut self, index: i64, out: &mut Vec<Message>) {
        let ctx = self.clock.ctx(index);
        let hours = self.clock.interval_ms as f64 / HOUR_MS as f64;
        for g in 0..self.groups.len() {
            let range = self.groups[g].clone();
            let mut steps = std::mem::take(&mut self.steps);
            steps.clear();
            let mut group_true_mwh = 0;
            for m in range.clone() {
                let (step, true_mwh) = self.consumer_step(m, &ctx);
                group_true_mwh += true_mwh;
                steps.push(step);
            }
            let feeder = &self.feeders[g];
            let load_w = group_true_mwh as f64 / 1000.0 / hours;
            let load_frac = load_w / FEEDER_PF / (feeder.rating_kva * 1000.0);
            let bus_rel = feeder.bus_rel(self.cfg.seed, g, &ctx, load_frac);
            let loss_mwh = to_mwh(feeder.losses_for_load_w(load_w) / 1000.0 * hours);
            for (k, m) in range.enumerate() {
                self.consumer_publish(m, &ctx, steps[k], bus_rel, load_frac, out);
            }
            self.steps = steps;
            if g < self.cfg.feeders {
                self.feeder_publish(g, &ctx, group_true_mwh, loss_mwh, bus_rel, out);
            }
        }
    }

    fn plan_for(&self, m: usize, index: i64) -> Option<&Planned> {
        self.plan_of[m]
            .map(|k| &self.planned[k])
            .filter(|p| p.active(index))
    }

    /// A consumer's energies for the interval; updates its registers. Returns the step and the
    /// true energy (mWh) its feeder sees.
    fn consumer_step(&mut self, m: usize, ctx: &IntervalCtx) -> (Step, i64) {
        let hours = self.clock.interval_ms as f64 / HOUR_MS as f64;
        let plan = self.plan_for(m, ctx.index).cloned();
        let kind = plan.as_ref().map(|p| p.kind);
        let closed = self.meters[m].relay == RelayState::Closed;
        let (supplied, silent) = match &plan {
            Some(p) if p.kind == FaultKind::Outage => {
                let restoring = ctx.index == p.last;
                (restoring && !p.zero_on_restore, !restoring)
            }
            _ => (true, false),
        };
        let true_kwh = if !closed || !supplied {
            0.0
        } else if let Some(p) = plan.as_ref().filter(|p| p.kind == FaultKind::Overload) {
            self.consumers[m].contracted_kw * p.param * hours
        } else {
            self.healthy_kwh(m, ctx)
        };
        let reported_kwh = match &plan {
            Some(p) if p.kind == FaultKind::Bypass => true_kwh * p.param,
            Some(p) if p.kind == FaultKind::LongBypass => 0.0,
            Some(p) if p.kind.is_theft() && true_kwh > 0.0 => self.theft_reported(m, p.kind, ctx),
            Some(p) if p.kind == FaultKind::StuckRegister => 0.0,
            _ => true_kwh,
        };
        // A stuck register still measures power: that is what gives it away.
        let shown_kwh = if kind == Some(FaultKind::StuckRegister) {
            true_kwh
        } else {
            reported_kwh
        };
        let true_mwh = to_mwh(true_kwh);
        let reported_mwh = to_mwh(reported_kwh);
        let state = &mut self.meters[m];
        if let Some(p) = plan.as_ref().filter(|p| p.kind == FaultKind::Replacement) {
            state.register_mwh = to_mwh(p.param);
        }
        state.register_mwh += reported_mwh;
        if state.register_mwh >= REGISTER_MAX_MWH {
            state.register_mwh -= REGISTER_MAX_MWH;
        }
        state.true_mwh += true_mwh;
        let step = Step {
            reported_mwh,
            power_kw: shown_kwh / hours,
            supplied,
            silent,
        };
        (step, true_mwh)
    }

    /// The reported energy of a theft-pattern meter: the pattern is applied to the whole local
    /// day of true energies, computed once per day and cached.
    fn theft_reported(&mut self, m: usize, kind: FaultKind, ctx: &IntervalCtx) -> f64 {
        let cached = self
            .theft_days
            .get(&m)
            .filter(|d| d.day == ctx.local_day)
            .and_then(|d| d.reported_kwh.get((ctx.index - d.first) as usize).copied());
        if let Some(v) = cached {
            return v;
        }
        let (first, last) = self.clock.day_bounds(ctx.index);
        let x: Vec<f64> = (first..=last)
            .map(|i| self.healthy_kwh(m, &self.clock.ctx(i)))
            .collect();
        let mut r = SplitMix::keyed(self.cfg.seed, m as u64, ctx.local_day, Purpose::Theft);
        let reported_kwh = theft_day(kind, &x, &mut r);
        let v = reported_kwh
            .get((ctx.index - first) as usize)
            .copied()
            .unwrap_or(0.0);
        self.theft_days.insert(
            m,
            TheftDay {
                day: ctx.local_day,
                first,
                reported_kwh,
            },
        );
        v
    }

    fn consumer_publish(
        &mut self,
        m: usize,
        ctx: &IntervalCtx,
        step: Step,
        bus_rel: f64,
        load_frac: f64,
        out: &mut Vec<Message>,
    ) {
        if step.silent {
            return;
        }
        let plan = self.plan_for(m, ctx.index).cloned();
        let kind = plan.as_ref().map(|p| p.kind);
        let p = &self.consumers[m];
        let bus = Bus {
            nominal_v: self.cfg.nominal_voltage_v,
            rel: bus_rel,
            load_frac,
        };
        let mut e = consumer_electrical(self.cfg.seed, m, p, ctx, &bus, step.power_kw);
        if let Some(pl) = plan
            .as_ref()
            .filter(|pl| matches!(pl.kind, FaultKind::Sag | FaultKind::Swell))
        {
            e.voltage_v *= pl.param;
            e.current_a /= pl.param;
        }
        let frequency_hz = if step.supplied {
            ctx.frequency_hz
        } else {
            e = crate::load::Electrical {
                voltage_v: 0.0,
                current_a: 0.0,
                power_factor: e.power_factor,
            };
            0.0
        };
        let skew = match &plan {
            Some(pl) if pl.kind == FaultKind::ClockSkew => pl.param as i64,
            _ => 0,
        };
        let state = &mut self.meters[m];
        let seq = state.seq;
        state.seq += 1;
        let ts = Timestamp::from_millis(ctx.end_ms + skew);
        let reading = Reading {
            meter_id: self.ids[m].clone(),
            ts,
            seq: Some(seq),
            received: ts,
            energy_import: Energy::from_mwh(state.register_mwh),
            energy_export: None,
            power_w: Some(round_to(step.power_kw * 1000.0, 10.0)),
            voltage_v: Some(round_to(e.voltage_v, 10.0)),
            current_a: Some(round_to(e.current_a, 1000.0)),
            power_factor: Some(round_to(e.power_factor, 1000.0)),
            frequency_hz: Some(round_to(frequency_hz, 100.0)),
            status: if kind == Some(FaultKind::Tamper) {
                MeterStatus::Tamper
            } else {
                MeterStatus::Ok
            },
            relay: Some(state.relay),
        };
        debug_assert!(step.reported_mwh >= 0);
        let payload = encode_reading(&reading);
        self.deliver(m, ctx.index, plan.as_ref(), payload, out);
    }

    /// Publishes (or holds back) a consumer's message as its delivery fault dictates, then
    /// releases whatever it held that is due.
    fn deliver(
        &mut self,
        m: usize,
        index: i64,
        plan: Option<&Planned>,
        payload: String,
        out: &mut Vec<Message>,
    ) {
        let mut r = SplitMix::keyed(self.cfg.seed, m as u64, index, Purpose::Delivery);
        match plan.map(|p| (p.kind, p)) {
            Some((FaultKind::StoreAndForward, p)) => {
                self.meters[m].held.push(HeldMessage {
                    release: p.last,
                    batch: true,
                    payload,
                });
            }
            // The first interval of the window always shows the fault; later ones by chance.
            Some((FaultKind::OutOfOrder, p)) if index == p.first || r.unit() < 0.35 => {
                let delay = 1 + r.below(3) as i64;
                self.meters[m].held.push(HeldMessage {
                    release: index + delay,
                    batch: false,
                    payload,
                });
            }
            Some((FaultKind::Duplicate, p)) if index == p.first || r.unit() < 0.5 => {
                out.push(self.message(m, payload.clone().into_bytes()));
                out.push(self.message(m, payload.into_bytes()));
            }
            _ => out.push(self.message(m, payload.into_bytes())),
        }
        if self.meters[m].held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.meters[m].held);
        let (due, keep): (Vec<HeldMessage>, Vec<HeldMessage>) =
            held.into_iter().partition(|h| h.release <= index);
        self.meters[m].held = keep;
        let mut batch: Vec<String> = Vec::new();
        for h in due {
            if h.batch {
                batch.push(h.payload);
            } else {
                out.push(self.message(m, h.payload.into_bytes()));
            }
        }
        for chunk in batch.chunks(MAX_BATCH) {
            let body = format!(
                r#"{{"v":1,"meter_id":"{}","readings":[{}]}}"#,
                self.ids[m],
                chunk.join(",")
            );
            out.push(self.message(m, body.into_bytes()));
        }
    }

    fn message(&self, m: usize, payload: Vec<u8>) -> Message {
        Message {
            meter_id: self.ids[m].clone(),
            topic: self.topics[m].clone(),
            payload,
        }
    }

    fn feeder_publish(
        &mut self,
        f: usize,
        ctx: &IntervalCtx,
        consumers_mwh: i64,
        loss_mwh: i64,
        bus_rel: f64,
        out: &mut Vec<Message>,
    ) {
        let i = self.cfg.consumers + f;
        let hours = self.clock.interval_ms as f64 / HOUR_MS as f64;
        let total_mwh = consumers_mwh + loss_mwh;
        let state = &mut self.meters[i];
        state.register_mwh += total_mwh;
        if state.register_mwh >= REGISTER_MAX_MWH {
            state.register_mwh -= REGISTER_MAX_MWH;
        }
        state.true_mwh += total_mwh;
        state.loss_mwh += loss_mwh;
        let seq = state.seq;
        state.seq += 1;
        let mut r = SplitMix::keyed(
            self.cfg.seed,
            FEEDER_ENTITY | f as u64,
            ctx.index,
            Purpose::Voltage,
        );
        let voltage_v = self.cfg.nominal_voltage_v * (1.0 + bus_rel + 0.001 * r.normal());
        let power_w = total_mwh as f64 / 1000.0 / hours;
        // A three-phase transformer: per-phase current of the balanced total.
        let current_a = power_w / (3.0 * voltage_v * FEEDER_PF);
        let ts = Timestamp::from_millis(ctx.end_ms);
        let reading = Reading {
            meter_id: self.ids[i].clone(),
            ts,
            seq: Some(seq),
            received: ts,
            energy_import: Energy::from_mwh(state.register_mwh),
            energy_export: None,
            power_w: Some(round_to(power_w, 10.0)),
            voltage_v: Some(round_to(voltage_v, 10.0)),
            current_a: Some(round_to(current_a, 100.0)),
            power_factor: Some(FEEDER_PF),
            frequency_hz: Some(round_to(ctx.frequency_hz, 100.0)),
            status: MeterStatus::Ok,
            relay: Some(RelayState::Closed),
        };
        let payload = encode_reading(&reading).into_bytes();
        out.push(self.message(i, payload));
    }
}
