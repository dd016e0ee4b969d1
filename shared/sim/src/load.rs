//! The physical model: what each consumer truly uses in an interval, and the grid quantities
//! (voltage, power factor, frequency, feeder losses) a meter measures alongside.
//!
//! Everything here is a pure function of the seed, the meter's index and the interval index, so
//! an interval can be recomputed at any time (the theft patterns need a whole day of true values)
//! and a resumed fleet continues exactly.

use chrono::{Datelike, NaiveDate, Offset, TimeZone};
use meter_core::types::{DAY_MS, HOUR_MS};

use crate::calibration as cal;
use crate::rng::{sigma_for_cv, Purpose, SplitMix};

/// Days from 0001-01-01 (CE) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// Hash key offset for feeders, so their streams never collide with a consumer's.
pub(crate) const FEEDER_ENTITY: u64 = 1 << 40;

/// Everything about one interval that is the same for every meter of the fleet.
#[derive(Debug, Clone)]
pub(crate) struct IntervalCtx {
    /// Interval index: the interval ends at `index × interval_ms` (epoch ms).
    pub index: i64,
    /// End of the interval, epoch ms.
    pub end_ms: i64,
    /// Local calendar day of the interval's midpoint, days since 1970-01-01.
    pub local_day: i64,
    /// Whether that day is a Saturday or Sunday.
    pub weekend: bool,
    /// Local time of the midpoint in half hours since midnight (0..48, fractional).
    pub slot_pos: f64,
    /// Household seasonal factor for the date.
    pub month_factor: f64,
    /// Grid frequency, Hz (one grid: the same for every meter).
    pub frequency_hz: f64,
    /// Relative grid-voltage shift from the time of day (lower at the evening peak).
    pub diurnal_v: f64,
}

/// The fleet's clock: turns interval indices into local-time context.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    pub tz: chrono_tz::Tz,
    pub interval_ms: i64,
    pub seed: u64,
    /// Seasons shifted by six months (northern hemisphere).
    pub shift_seasons: bool,
}

impl Clock {
    pub(crate) fn new(tz: chrono_tz::Tz, interval_ms: i64, seed: u64) -> Self {
        Self {
            tz,
            interval_ms,
            seed,
            shift_seasons: !is_southern(tz),
        }
    }

    /// Local milliseconds (epoch ms shifted by the zone's offset at that instant).
    fn local_ms(&self, utc_ms: i64) -> i64 {
        let Some(dt) = chrono::DateTime::from_timestamp_millis(utc_ms) else {
            return utc_ms;
        };
        let offset_s = self
            .tz
            .offset_from_utc_datetime(&dt.naive_utc())
            .fix()
            .local_minus_utc();
        utc_ms + i64::from(offset_s) * 1000
    }

    /// The local day an interval belongs to (by its midpoint).
    pub(crate) fn local_day(&self, index: i64) -> i64 {
        let mid = index * self.interval_ms - self.interval_ms / 2;
        self.local_ms(mid).div_euclid(DAY_MS)
    }

    /// The first interval index at or after `index` that starts a new local day.
    pub(crate) fn day_start_at_or_after(&self, index: i64) -> i64 {
        let per_day = DAY_MS / self.interval_ms + 2;
        let mut i = index;
        // A day boundary comes within one day's intervals (DST days are at most 25 hours).
        while i < index + 2 * per_day {
            if self.local_day(i) != self.local_day(i - 1) {
                return i;
            }
            i += 1;
        }
        index
    }

    /// The first and last interval indices of the local day holding `index`.
    pub(crate) fn day_bounds(&self, index: i64) -> (i64, i64) {
        let day = self.local_day(index);
        let mut first = index;
        while self.local_day(first - 1) == day {
            first -= 1;
        }
        let mut last = index;
        while self.local_day(last + 1) == day {
            last += 1;
        }
        (first, last)
    }

    pub(crate) fn ctx(&self, index: i64) -> IntervalCtx {
        let end_ms = index * self.interval_ms;
        let local_mid = self.local_ms(end_ms - self.interval_ms / 2);
        let local_day = local_mid.div_euclid(DAY_MS);
        let slot_pos = local_mid.rem_euclid(DAY_MS) as f64 / (30.0 * 60_000.0);
        // 1970-01-01 was a Thursday: with Monday = 0, day 0 is 3.
        let weekday = (local_day + 3).rem_euclid(7);
        let weekend = weekday >= 5;
        let month_factor = self.month_factor(local_day);

        // One grid frequency: slow hourly drift plus fast per-interval wander.
        let hour = end_ms.div_euclid(HOUR_MS);
        let frac = end_ms.rem_euclid(HOUR_MS) as f64 / HOUR_MS as f64;
        let knot = |h: i64| SplitMix::keyed(self.seed, 0, h, Purpose::Frequency).normal();
        let drift = knot(hour) * (1.0 - frac) + knot(hour + 1) * frac;
        let fast = SplitMix::keyed(self.seed, 1, index, Purpose::Frequency).normal();
        let frequency_hz = (50.0 + 0.025 * drift + 0.012 * fast).clamp(49.8, 50.2);

        let grid_shape = interp48(&cal::SHAPE_WEEKDAY, slot_pos - 0.5);
        IntervalCtx {
            index,
            end_ms,
            local_day,
            weekend,
            slot_pos,
            month_factor,
            frequency_hz,
            diurnal_v: -0.015 * (grid_shape - 1.0),
        }
    }

    /// The seasonal factor, interpolated between mid-months so it has no monthly steps.
    fn month_factor(&self, local_day: i64) -> f64 {
        let date = i32::try_from(local_day + UNIX_EPOCH_DAYS_FROM_CE)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt);
        let Some(date) = date else {
            return 1.0;
        };
        let days_in_month = days_in_month(date);
        let pos = date.month0() as f64 + (f64::from(date.day()) - 0.5) / days_in_month - 0.5;
        let shift = if self.shift_seasons { 6.0 } else { 0.0 };
        interp12(&cal::MONTH_FACTOR, pos + shift)
    }
}

fn days_in_month(date: NaiveDate) -> f64 {
    let (y, m) = (date.year(), date.month());
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    match (next, NaiveDate::from_ymd_opt(y, m, 1)) {
        (Some(n), Some(f)) => (n - f).num_days() as f64,
        _ => 30.0,
    }
}

/// Linear interpolation in a daily 48-slot table whose values sit at slot centres (`pos` is in
/// slots, already shifted by the half slot); wraps around midnight.
fn interp48(table: &[f64; 48], pos: f64) -> f64 {
    let p = pos.rem_euclid(48.0);
    let i0 = p.floor() as usize % 48;
    let w = p - p.floor();
    table[i0] * (1.0 - w) + table[(i0 + 1) % 48] * w
}

fn interp12(table: &[f64; 12], pos: f64) -> f64 {
    let p = pos.rem_euclid(12.0);
    let i0 = p.floor() as usize % 12;
    let w = p - p.floor();
    table[i0] * (1.0 - w) + table[(i0 + 1) % 12] * w
}

/// Whether a time zone is in the southern hemisphere, where the calibration data comes from.
/// A name-based list: chrono-tz carries no coordinates. Zones not listed count as northern.
fn is_southern(tz: chrono_tz::Tz) -> bool {
    let name = tz.name();
    const PREFIXES: [&str; 6] = [
        "Australia/",
        "Antarctica/",
        "America/Argentina/",
        "Brazil/",
        "Chile/",
        "NZ",
    ];
    const ZONES: [&str; 22] = [
        "Pacific/Auckland",
        "Pacific/Chatham",
        "Pacific/Fiji",
        "Pacific/Noumea",
        "Pacific/Tongatapu",
        "America/Sao_Paulo",
        "America/Santiago",
        "America/Montevideo",
        "America/Asuncion",
        "America/La_Paz",
        "America/Lima",
        "Africa/Johannesburg",
        "Africa/Maputo",
        "Africa/Harare",
        "Africa/Windhoek",
        "Africa/Lusaka",
        "Africa/Gaborone",
        "Africa/Maseru",
        "Africa/Mbabane",
        "Indian/Mauritius",
        "Indian/Reunion",
        "Indian/Antananarivo",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || ZONES.contains(&name)
}

/// A small business's load shape (not in the calibration data; an assumption): open 08:00–17:00
/// on weekdays, a little trade on weekend days, a base load overnight.
fn business_shape_raw(slot_pos: f64, weekend: bool) -> f64 {
    let h = slot_pos / 2.0;
    if weekend {
        return if (9.0..15.0).contains(&h) { 0.8 } else { 0.5 };
    }
    match h {
        h if h < 6.0 => 0.45,
        h if h < 8.0 => 0.45 + (h - 6.0) / 2.0 * 1.45,
        h if h < 17.0 => 1.9,
        h if h < 20.0 => 1.9 - (h - 17.0) / 3.0 * 1.45,
        _ => 0.45,
    }
}

/// The weekly mean of [`business_shape_raw`], to scale it to mean 1.
pub(crate) fn business_norm() -> f64 {
    let mean = |weekend: bool| {
        (0..480)
            .map(|i| business_shape_raw(f64::from(i) / 10.0 + 0.05, weekend))
            .sum::<f64>()
            / 480.0
    };
    (5.0 * mean(false) + 2.0 * mean(true)) / 7.0
}

/// One consumer's fixed characteristics, drawn from the seed.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerProfile {
    pub business: bool,
    pub mean_daily_kwh: f64,
    /// Shift of the household's daily shape, in half hours (early or late risers).
    shift: f64,
    /// Exponent sharpening (> 1) or flattening (< 1) the household's shape.
    gamma: f64,
    /// Keeps the reshaped weekday and weekend levels equal to the calibrated ones.
    norm: [f64; 2],
    pub contracted_kw: f64,
    /// Position along the feeder, 0 (at the transformer) to 1 (end of the line).
    position: f64,
    /// The connection's own voltage offset (tap, cable), relative.
    v_offset: f64,
    pf_base: f64,
    pub register0_kwh: f64,
}

impl ConsumerProfile {
    pub(crate) fn new(seed: u64, index: usize) -> Self {
        let mut r = SplitMix::keyed(seed, index as u64, 0, Purpose::Profile);
        let business = r.unit() < 0.1;
        let position = r.unit();
        let v_offset = 0.004 * r.normal();
        if business {
            let mean_daily_kwh = (cal::BUSINESS_DAILY_KWH_MEDIAN.ln()
                + cal::BUSINESS_DAILY_KWH_LN_SIGMA * r.normal())
            .exp()
            .clamp(8.0, 400.0);
            let contracted_kw = pick_tier(
                &[15.0, 20.0, 30.0, 45.0, 60.0, 80.0, 100.0, 150.0],
                mean_daily_kwh / 24.0 * 4.0,
            );
            return Self {
                business,
                mean_daily_kwh,
                shift: 0.0,
                gamma: 1.0,
                norm: [1.0, 1.0],
                contracted_kw,
                position,
                v_offset,
                pf_base: r.range(0.90, 0.97),
                register0_kwh: r.range(5_000.0, 300_000.0),
            };
        }
        let mean_daily_kwh = (cal::HOUSEHOLD_DAILY_KWH_LN_MU
            + cal::HOUSEHOLD_DAILY_KWH_LN_SIGMA * r.normal())
        .exp()
        .clamp(1.5, 80.0);
        let shift = r.range(-2.0, 2.0);
        let gamma = r.range(0.7, 1.5);
        let norm_for = |table: &[f64; 48]| {
            let plain: f64 = table.iter().sum();
            let shaped: f64 = table.iter().map(|v| v.powf(gamma)).sum();
            plain / shaped
        };
        let norm = [norm_for(&cal::SHAPE_WEEKDAY), norm_for(&cal::SHAPE_WEEKEND)];
        let contracted_kw = pick_tier(
            &[5.0, 7.0, 10.0, 15.0, 20.0, 30.0],
            mean_daily_kwh / 24.0 * 12.0,
        );
        Self {
            business,
            mean_daily_kwh,
            shift,
            gamma,
            norm,
            contracted_kw,
            position,
            v_offset,
            pf_base: r.range(0.96, 0.99),
            register0_kwh: r.range(500.0, 30_000.0),
        }
    }

    fn shape(&self, ctx: &IntervalCtx, business_norm: f64) -> f64 {
        if self.business {
            return business_shape_raw(ctx.slot_pos, ctx.weekend) / business_norm;
        }
        let (table, norm) = if ctx.weekend {
            (&cal::SHAPE_WEEKEND, self.norm[1])
        } else {
            (&cal::SHAPE_WEEKDAY, self.norm[0])
        };
        interp48(table, ctx.slot_pos - 0.5 - self.shift).powf(self.gamma) * norm
    }

    /// The largest load a healthy meter shows, kW: below the contracted load, so
    /// `over_contracted_load` events come from injected overloads only.
    pub(crate) fn healthy_cap_kw(&self) -> f64 {
        0.9 * self.contracted_kw
    }
}

fn pick_tier(tiers: &[f64], at_least: f64) -> f64 {
    tiers
        .iter()
        .copied()
        .find(|t| *t >= at_least)
        .unwrap_or_else(|| (at_least / 10.0).ceil() * 10.0)
}

/// Energy a healthy consumer uses in the interval, kWh: the calibrated household model (or the
/// assumed business one) with day-to-day variation, noise and appliance spikes.
pub(crate) fn consumer_energy_kwh(
    seed: u64,
    index: usize,
    p: &ConsumerProfile,
    ctx: &IntervalCtx,
    interval_ms: i64,
    business_norm: f64,
) -> f64 {
    let entity = index as u64;
    let hours = interval_ms as f64 / HOUR_MS as f64;
    let mut r = SplitMix::keyed(seed, entity, ctx.index, Purpose::Load);
    let mut d = SplitMix::keyed(seed, entity, ctx.local_day, Purpose::Day);
    let (day, resid, season) = if p.business {
        (
            d.lognormal_mean1(cal::BUSINESS_DAY_FACTOR_LN_SIGMA),
            r.lognormal_mean1(sigma_for_cv(cal::BUSINESS_NOISE_CV)),
            ctx.month_factor.sqrt(),
        )
    } else {
        let resid = if r.unit() < cal::SPIKE_RATE {
            cal::SPIKE_THRESHOLD + r.exponential(cal::SPIKE_MEAN_RATIO - cal::SPIKE_THRESHOLD)
        } else {
            cal::NOISE_MEAN * r.lognormal_mean1(sigma_for_cv(cal::NOISE_CV))
        };
        (
            d.lognormal_mean1(cal::DAY_FACTOR_LN_SIGMA),
            resid,
            ctx.month_factor,
        )
    };
    let kwh = p.mean_daily_kwh / 24.0 * hours * p.shape(ctx, business_norm) * season * day * resid;
    kwh.min(p.healthy_cap_kw() * hours)
}

/// What a consumer meter measures besides energy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Electrical {
    pub voltage_v: f64,
    pub current_a: f64,
    pub power_factor: f64,
}

/// A feeder's LV bus in one interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bus {
    /// Nominal phase voltage, V.
    pub nominal_v: f64,
    /// Bus voltage relative to nominal (0.01 = 1% above).
    pub rel: f64,
    /// The feeder's load as a share of its rating.
    pub load_frac: f64,
}

/// Voltage, current and power factor at a consumer drawing `power_kw` from `bus`.
pub(crate) fn consumer_electrical(
    seed: u64,
    index: usize,
    p: &ConsumerProfile,
    ctx: &IntervalCtx,
    bus: &Bus,
    power_kw: f64,
) -> Electrical {
    let (nominal_v, bus_rel, load_frac) = (bus.nominal_v, bus.rel, bus.load_frac);
    let mut r = SplitMix::keyed(seed, index as u64, ctx.index, Purpose::Voltage);
    // Farther down the line, the feeder's load drops more voltage; the consumer's own load drops a
    // little in the service cable.
    let rel = bus_rel - 0.03 * p.position * load_frac + p.v_offset + 0.002 * r.normal();
    let voltage_v = nominal_v * (1.0 + rel) - 0.35 * power_kw;
    // Light loads are electronics and motors (poor power factor); heavy loads are mostly
    // resistive (kettles, heaters, ovens).
    let pf = (p.pf_base - 0.12 * (-power_kw / 0.5).exp() + 0.004 * r.normal()).clamp(0.85, 0.99);
    let current_a = if voltage_v > 0.0 {
        power_kw * 1000.0 / (voltage_v * pf)
    } else {
        0.0
    };
    Electrical {
        voltage_v,
        current_a,
        power_factor: pf,
    }
}

/// One feeder's fixed characteristics.
#[derive(Debug, Clone)]
pub(crate) struct FeederProfile {
    /// Transformer rating, kVA (from the number of consumers under it).
    pub rating_kva: f64,
    /// Tap setting: LV buses usually run a little above nominal to leave room for drop.
    v_base: f64,
    pub register0_kwh: f64,
}

/// Power factor of a feeder's aggregate load.
pub(crate) const FEEDER_PF: f64 = 0.95;

impl FeederProfile {
    pub(crate) fn new(seed: u64, index: usize, consumers: usize) -> Self {
        let mut r = SplitMix::keyed(seed, FEEDER_ENTITY | index as u64, 0, Purpose::Profile);
        Self {
            // About 2.5 kVA of diversified demand per consumer, and never a toy transformer.
            rating_kva: (consumers as f64 * 2.5).max(25.0).ceil(),
            v_base: r.range(0.0, 0.03),
            register0_kwh: r.range(10_000.0, 100_000.0),
        }
    }

    /// The bus voltage relative to nominal: tap, slow drift, time of day, and the drop of the
    /// transformer under load.
    pub(crate) fn bus_rel(
        &self,
        seed: u64,
        index: usize,
        ctx: &IntervalCtx,
        load_frac: f64,
    ) -> f64 {
        let entity = FEEDER_ENTITY | index as u64;
        let hour = ctx.end_ms.div_euclid(HOUR_MS);
        let frac = ctx.end_ms.rem_euclid(HOUR_MS) as f64 / HOUR_MS as f64;
        let knot = |h: i64| SplitMix::keyed(seed, entity, h, Purpose::FeederDrift).normal();
        let drift = 0.006 * (knot(hour) * (1.0 - frac) + knot(hour + 1) * frac);
        self.v_base + drift + ctx.diurnal_v - 0.02 * load_frac
    }

    /// Technical losses, W, when the feeder meter measures `metered_w`: a no-load (core) term
    /// (0.3% of the rating) plus a load term proportional to current squared (4% of the rating
    /// at full load, for the transformer's copper and the LV lines). The same model, with the
    /// same shares and power factor, as the scan's `meter_core::anomaly::balance::RatedLoss`
    /// default, which knows the rating from the registry (`contracted_kw`).
    pub(crate) fn losses_w(&self, metered_w: f64) -> f64 {
        let rating_w = self.rating_kva * 1000.0;
        let s_frac = metered_w / FEEDER_PF / rating_w;
        rating_w * (0.003 + 0.04 * s_frac * s_frac)
    }

    /// Technical losses, W, with a consumer load of `load_w`: the current through the feeder
    /// meter carries the load and the losses, so the losses solve `L = losses_w(load + L)`.
    /// With y = load + L and q the load term's coefficient, q·y² − y + load + no-load = 0,
    /// whose smaller root is the physical one (the larger is past five times the rating).
    pub(crate) fn losses_for_load_w(&self, load_w: f64) -> f64 {
        let rating_w = self.rating_kva * 1000.0;
        let q = 0.04 / (FEEDER_PF * FEEDER_PF * rating_w);
        let c = load_w + 0.003 * rating_w;
        let disc = 1.0 - 4.0 * q * c;
        if disc < 0.0 {
            // No steady state: far beyond any load a healthy fleet draws.
            return self.losses_w(load_w);
        }
        // The smaller root, in the form that does not cancel.
        let y = 2.0 * c / (1.0 + disc.sqrt());
        y - load_w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_shapes_scale_to_the_daily_mean() {
        let wd: f64 = cal::SHAPE_WEEKDAY.iter().sum::<f64>() / 48.0;
        let we: f64 = cal::SHAPE_WEEKEND.iter().sum::<f64>() / 48.0;
        let week = (5.0 * wd + 2.0 * we) / 7.0;
        assert!((week - 1.0).abs() < 0.02, "weekly mean {week}");
        let months: f64 = cal::MONTH_FACTOR.iter().sum::<f64>() / 12.0;
        assert!((months - 1.0).abs() < 1e-3);
    }

    #[test]
    fn sydney_is_southern_and_london_is_not() {
        assert!(is_southern(chrono_tz::Australia::Sydney));
        assert!(!is_southern(chrono_tz::Europe::London));
        let c = Clock::new(chrono_tz::Europe::London, 900_000, 1);
        // Mid-January in London is its winter: the southern July factor applies.
        let jan = Clock::new(chrono_tz::Europe::London, 900_000, 1).month_factor(19_738);
        assert!(c.shift_seasons && jan > 1.1, "{jan}");
    }

    #[test]
    fn a_local_day_has_96_quarter_hours_except_across_dst() {
        let c = Clock::new(chrono_tz::Australia::Sydney, 900_000, 1);
        // 2026-01-15 local noon in Sydney (UTC+11), as an interval index.
        let idx = (1_768_438_800_000_i64) / 900_000;
        let (first, last) = c.day_bounds(idx);
        assert_eq!(last - first + 1, 96);
        assert_eq!(c.day_start_at_or_after(idx), last + 1);
    }

    #[test]
    fn losses_grow_with_the_square_of_load() {
        let f = FeederProfile::new(1, 0, 40);
        let no_load = f.losses_w(0.0);
        assert!((no_load - 300.0).abs() < 1e-9);
        let half = f.losses_w(0.5 * 100_000.0 * FEEDER_PF) - no_load;
        let full = f.losses_w(100_000.0 * FEEDER_PF) - no_load;
        assert!((full / half - 4.0).abs() < 1e-9);
    }

    #[test]
    fn losses_for_a_load_are_the_losses_of_what_the_feeder_meter_measures() {
        let f = FeederProfile::new(1, 0, 40);
        for load_w in [0.0, 20_000.0, 95_000.0, 150_000.0] {
            let l = f.losses_for_load_w(load_w);
            assert!((l - f.losses_w(load_w + l)).abs() < 1e-6, "{load_w}: {l}");
        }
    }

    #[test]
    fn feeder_losses_are_what_the_scans_rated_loss_model_expects_from_the_rating() {
        let f = FeederProfile::new(1, 0, 40);
        let model = meter_core::anomaly::balance::RatedLoss::default()
            .model(f.rating_kva, 0.25)
            .unwrap();
        for load_w in [0.0, 8_000.0, 40_000.0, 95_000.0] {
            let loss_kwh = f.losses_for_load_w(load_w) / 1000.0 * 0.25;
            let metered_kwh = load_w / 1000.0 * 0.25 + loss_kwh;
            assert!(
                (model.loss(metered_kwh) - loss_kwh).abs() < 1e-9,
                "{load_w} W: {loss_kwh} vs {}",
                model.loss(metered_kwh)
            );
        }
    }

    #[test]
    fn business_shape_has_weekly_mean_one_after_scaling() {
        let n = business_norm();
        assert!(n > 0.5 && n < 1.5);
    }
}
