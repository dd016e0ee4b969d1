//! A small, seeded fleet of simulated meters for benchmarks and the demo: quarter-hour readings
//! with a household-like daily shape and every telemetry field set. (The realistic simulator with
//! calibrated load models and fault injection is the local-stack issue's.)
//!
//! The random numbers come from SplitMix64, written out here so that a seed gives the same fleet
//! on every platform and every version, which a general-purpose RNG crate does not promise.

use meter_core::telemetry::encode_reading;
use meter_core::{Energy, MeterId, MeterStatus, Reading, RelayState, Timestamp};

const QUARTER_MS: i64 = 15 * 60 * 1000;

/// SplitMix64: tiny, fast, and stable by definition.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A fleet of simulated consumer meters.
#[derive(Debug, Clone)]
pub struct Fleet {
    meters: Vec<(MeterId, f64, f64)>,
    seed: u64,
}

impl Fleet {
    /// `n` meters named `sim-00000`, ... each with its own scale and starting register.
    pub fn new(n: usize, seed: u64) -> Self {
        let mut rng = SplitMix::new(seed);
        let meters = (0..n)
            .filter_map(|i| {
                let id = MeterId::parse(&format!("sim-{i:05}")).ok()?;
                Some((id, 0.5 + rng.unit() * 1.5, 1_000.0 + rng.unit() * 20_000.0))
            })
            .collect();
        Self { meters, seed }
    }

    /// The meter ids.
    pub fn ids(&self) -> impl Iterator<Item = &MeterId> {
        self.meters.iter().map(|(id, _, _)| id)
    }

    /// Every meter's readings for `n` quarter hours from `start`, meter by meter.
    pub fn readings(&self, start: Timestamp, n: usize) -> Vec<Vec<Reading>> {
        let mut rng = SplitMix::new(self.seed ^ 0xA5A5);
        self.meters
            .iter()
            .enumerate()
            .map(|(m, (id, scale, register))| {
                let mut kwh = *register;
                (0..n)
                    .map(|i| {
                        let ts = start.add_millis(i as i64 * QUARTER_MS);
                        let hour = (ts.millis() / 3_600_000) % 24;
                        let shape = match hour {
                            0..=5 => 0.25,
                            6..=8 => 1.4,
                            17..=21 => 2.0,
                            _ => 0.7,
                        };
                        let kw = scale * shape * (0.8 + 0.4 * rng.unit());
                        kwh += kw / 4.0;
                        let voltage = 230.0 + (rng.unit() - 0.5) * 8.0;
                        let pf = 0.9 + rng.unit() * 0.09;
                        Reading {
                            meter_id: id.clone(),
                            ts,
                            seq: Some((m * 1_000_000 + i) as u64),
                            received: ts.add_millis(2_000),
                            energy_import: Energy::from_kwh((kwh * 1000.0).round() / 1000.0)
                                .unwrap_or_default(),
                            energy_export: None,
                            power_w: Some((kw * 1000.0 * 10.0).round() / 10.0),
                            voltage_v: Some((voltage * 10.0).round() / 10.0),
                            current_a: Some((kw * 1000.0 / voltage / pf * 100.0).round() / 100.0),
                            power_factor: Some((pf * 1000.0).round() / 1000.0),
                            frequency_hz: Some(50.0 + ((rng.unit() - 0.5) * 10.0).round() / 100.0),
                            status: MeterStatus::Ok,
                            relay: Some(RelayState::Closed),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// One message per reading, ordered by time across the fleet as a broker would see them:
    /// `(topic, payload)`.
    pub fn payloads(&self, start: Timestamp, n: usize) -> Vec<(String, Vec<u8>)> {
        let per_meter = self.readings(start, n);
        let mut out = Vec::with_capacity(per_meter.len() * n);
        for i in 0..n {
            for rs in &per_meter {
                if let Some(r) = rs.get(i) {
                    out.push((topic(&r.meter_id), encode_reading(r).into_bytes()));
                }
            }
        }
        out
    }

    /// One message per reading, meter by meter (each meter's day in order): how an import or a
    /// fleet catching up after an outage arrives.
    pub fn payloads_by_meter(&self, start: Timestamp, n: usize) -> Vec<(String, Vec<u8>)> {
        self.readings(start, n)
            .iter()
            .flatten()
            .map(|r| (topic(&r.meter_id), encode_reading(r).into_bytes()))
            .collect()
    }

    /// Store-and-forward messages of `per_batch` readings each.
    pub fn batch_payloads(
        &self,
        start: Timestamp,
        n: usize,
        per_batch: usize,
    ) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for rs in self.readings(start, n) {
            for chunk in rs.chunks(per_batch.max(1)) {
                if let Some(first) = chunk.first() {
                    out.push((topic(&first.meter_id), batch_json(chunk).into_bytes()));
                }
            }
        }
        out
    }
}

/// The telemetry topic of a meter.
pub fn topic(id: &MeterId) -> String {
    format!("meters/{id}/telemetry")
}

/// A `readings` batch message.
pub fn batch_json(rs: &[Reading]) -> String {
    let items: Vec<String> = rs.iter().map(encode_reading).collect();
    format!(r#"{{"v":1,"readings":[{}]}}"#, items.join(","))
}
