#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recomputes the load-model calibration from the real SGSC data and checks it against the
//! constants embedded in `src/calibration.rs`, so the simulator never needs the file at run time
//! but cannot silently drift from it. `print_calibration_table` (ignored) prints the constants as
//! Rust source, which is how `src/calibration.rs` was produced.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use chrono::{Datelike, NaiveDate, Weekday};
use meter_sim::calibration as cal;

/// Slots in a day of half-hourly data.
const SLOTS: usize = 48;

/// Where the shared data lives, relative to this crate (the repository sits beside `shared/`).
fn data_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/sgsc50_halfhourly.csv.gz")
}

/// One customer's half-hourly readings, by day (days from CE) of the interval's start.
#[derive(Default)]
struct Customer {
    days: HashMap<i32, ([f64; SLOTS], u64)>,
}

/// One complete day of a customer: (day from CE, half-hourly kWh).
type Day = (i32, [f64; SLOTS]);

/// The statistics `src/calibration.rs` embeds, recomputed.
#[derive(Debug)]
struct Calibration {
    customers: usize,
    full_days: usize,
    duplicates: usize,
    shape_weekday: [f64; SLOTS],
    shape_weekend: [f64; SLOTS],
    month_factor: [f64; 12],
    ln_mu: f64,
    ln_sigma: f64,
    day_sigma: f64,
    noise_mean: f64,
    noise_cv: f64,
    spike_rate: f64,
    spike_mean: f64,
}

/// Parses `YYYY-MM-DD HH:MM:SS` (AEST, no DST) into (day of the interval start, slot).
fn day_and_slot(s: &str) -> Option<(i32, usize)> {
    let date = NaiveDate::parse_from_str(s.get(0..10)?, "%Y-%m-%d").ok()?;
    let hour: i32 = s.get(11..13)?.parse().ok()?;
    let minute: i32 = s.get(14..16)?.parse().ok()?;
    // The reading closes the half hour ending at its time: attribute it to the slot it measured.
    let minutes = date.num_days_from_ce() * 1440 + hour * 60 + minute - 30;
    let slot = usize::try_from(minutes.rem_euclid(1440) / 30).ok()?;
    Some((minutes.div_euclid(1440), slot))
}

fn is_weekend(day: i32) -> bool {
    let d = NaiveDate::from_num_days_from_ce_opt(day).unwrap();
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn month0(day: i32) -> usize {
    NaiveDate::from_num_days_from_ce_opt(day).unwrap().month0() as usize
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn robust_sigma(xs: &mut [f64]) -> f64 {
    let median = |v: &mut [f64]| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m = median(xs);
    let mut dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    1.4826 * median(&mut dev)
}

fn compute(path: &PathBuf) -> Calibration {
    let file = std::fs::File::open(path).unwrap();
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut customers: HashMap<String, Customer> = HashMap::new();
    let mut duplicates = 0;
    for line in reader.lines().skip(1) {
        let line = line.unwrap();
        let mut cols = line.split(',');
        let (Some(id), Some(ts), Some(kwh)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        let (Some((day, slot)), Ok(kwh)) = (day_and_slot(ts), kwh.parse::<f64>()) else {
            continue;
        };
        let entry = customers
            .entry(id.to_owned())
            .or_default()
            .days
            .entry(day)
            .or_insert(([0.0; SLOTS], 0));
        // The sampling package duplicated some (customer, time) pairs: the first one wins.
        if entry.1 & (1 << slot) != 0 {
            duplicates += 1;
            continue;
        }
        entry.0[slot] = kwh;
        entry.1 |= 1 << slot;
    }

    // Complete days only, per customer, in a stable order.
    let full_mask = (1u64 << SLOTS) - 1;
    let mut ids: Vec<&String> = customers.keys().collect();
    ids.sort();
    let mut per_customer: Vec<(f64, Vec<Day>)> = Vec::new();
    for id in ids {
        let mut days: Vec<Day> = customers[id]
            .days
            .iter()
            .filter(|(_, (_, mask))| *mask == full_mask)
            .map(|(d, (x, _))| (*d, *x))
            .collect();
        days.sort_by_key(|(d, _)| *d);
        if days.len() < 30 {
            continue;
        }
        let mean_daily =
            days.iter().map(|(_, x)| x.iter().sum::<f64>()).sum::<f64>() / days.len() as f64;
        if mean_daily > 0.0 {
            per_customer.push((mean_daily, days));
        }
    }
    let full_days = per_customer.iter().map(|(_, d)| d.len()).sum();

    // Monthly factors: each customer's month mean over their overall mean, averaged.
    let mut month_sum = [0.0; 12];
    let mut month_n = [0.0; 12];
    for (mean_daily, days) in &per_customer {
        let mut tot = [0.0; 12];
        let mut n = [0usize; 12];
        for (d, x) in days {
            tot[month0(*d)] += x.iter().sum::<f64>();
            n[month0(*d)] += 1;
        }
        for m in 0..12 {
            if n[m] >= 10 {
                month_sum[m] += tot[m] / n[m] as f64 / mean_daily;
                month_n[m] += 1.0;
            }
        }
    }
    let mut month_factor = [0.0; 12];
    for m in 0..12 {
        month_factor[m] = month_sum[m] / month_n[m];
    }
    let norm = month_factor.iter().sum::<f64>() / 12.0;
    month_factor.iter_mut().for_each(|f| *f /= norm);

    // Shapes: readings over the customer's mean half hour, deseasonalised.
    let mut shape = [[0.0; SLOTS]; 2];
    let mut shape_n = [0.0; 2];
    for (mean_daily, days) in &per_customer {
        for (d, x) in days {
            let k = usize::from(is_weekend(*d));
            let base = mean_daily / SLOTS as f64 * month_factor[month0(*d)];
            for s in 0..SLOTS {
                shape[k][s] += x[s] / base;
            }
            shape_n[k] += 1.0;
        }
    }
    for k in 0..2 {
        shape[k].iter_mut().for_each(|v| *v /= shape_n[k]);
    }
    let level = [
        shape[0].iter().sum::<f64>() / SLOTS as f64,
        shape[1].iter().sum::<f64>() / SLOTS as f64,
    ];

    // Day factors, then the within-day residual split into noise and spikes.
    let mut ln_day = Vec::new();
    let mut ns = Vec::new();
    let mut spikes = Vec::new();
    for (mean_daily, days) in &per_customer {
        for (d, x) in days {
            let k = usize::from(is_weekend(*d));
            let base = mean_daily / SLOTS as f64 * month_factor[month0(*d)];
            let ratio = x.iter().sum::<f64>() / (base * SLOTS as f64 * level[k]);
            if ratio <= 0.0 {
                continue;
            }
            ln_day.push(ratio.ln());
            for s in 0..SLOTS {
                let r = x[s] / (base * shape[k][s] * ratio);
                if r > cal::SPIKE_THRESHOLD {
                    spikes.push(r);
                } else {
                    ns.push(r);
                }
            }
        }
    }
    // Robust spread (scaled median absolute deviation): a few near-empty days (holidays, a
    // vacant house) would otherwise dominate a plain standard deviation of logs.
    let day_sigma = robust_sigma(&mut ln_day);
    let (noise_mean, noise_sd) = mean_std(&ns);
    let (spike_mean, _) = mean_std(&spikes);
    let spike_rate = spikes.len() as f64 / (spikes.len() + ns.len()) as f64;
    let lns: Vec<f64> = per_customer.iter().map(|(m, _)| m.ln()).collect();
    let (ln_mu, ln_sigma) = mean_std(&lns);

    Calibration {
        customers: per_customer.len(),
        full_days,
        duplicates,
        shape_weekday: shape[0],
        shape_weekend: shape[1],
        month_factor,
        ln_mu,
        ln_sigma,
        day_sigma,
        noise_mean,
        noise_cv: noise_sd / noise_mean,
        spike_rate,
        spike_mean,
    }
}

fn fmt_array(xs: &[f64]) -> String {
    let items: Vec<String> = xs.iter().map(|x| format!("{x:.4}")).collect();
    items
        .chunks(8)
        .map(|c| format!("    {},", c.join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads the data file, or says clearly why the check is skipped.
fn calibration_or_skip() -> Option<Calibration> {
    let path = data_path();
    if !path.exists() {
        println!(
            "SKIPPED: {} is absent; the embedded calibration was not re-checked",
            path.display()
        );
        return None;
    }
    Some(compute(&path))
}

#[test]
#[ignore = "prints the calibration table for src/calibration.rs; run by hand"]
fn print_calibration_table() {
    let Some(c) = calibration_or_skip() else {
        return;
    };
    println!(
        "// {} customers, {} complete days, {} duplicate readings dropped",
        c.customers, c.full_days, c.duplicates
    );
    println!(
        "pub const SHAPE_WEEKDAY: [f64; 48] = [\n{}\n];",
        fmt_array(&c.shape_weekday)
    );
    println!(
        "pub const SHAPE_WEEKEND: [f64; 48] = [\n{}\n];",
        fmt_array(&c.shape_weekend)
    );
    println!(
        "pub const MONTH_FACTOR: [f64; 12] = [\n{}\n];",
        fmt_array(&c.month_factor)
    );
    println!("pub const HOUSEHOLD_DAILY_KWH_LN_MU: f64 = {:.4};", c.ln_mu);
    println!(
        "pub const HOUSEHOLD_DAILY_KWH_LN_SIGMA: f64 = {:.4};",
        c.ln_sigma
    );
    println!("pub const DAY_FACTOR_LN_SIGMA: f64 = {:.4};", c.day_sigma);
    println!("pub const NOISE_MEAN: f64 = {:.4};", c.noise_mean);
    println!("pub const NOISE_CV: f64 = {:.4};", c.noise_cv);
    println!("pub const SPIKE_RATE: f64 = {:.4};", c.spike_rate);
    println!("pub const SPIKE_MEAN_RATIO: f64 = {:.4};", c.spike_mean);
}

fn assert_close(name: &str, got: f64, embedded: f64, tol: f64) {
    assert!(
        (got - embedded).abs() <= tol,
        "{name}: recomputed {got:.4}, embedded {embedded:.4} (tolerance {tol})"
    );
}

#[test]
fn embedded_calibration_matches_the_real_data() {
    let Some(c) = calibration_or_skip() else {
        return;
    };
    assert_eq!(c.customers, cal::CUSTOMERS);
    for s in 0..SLOTS {
        assert_close(
            "weekday shape",
            c.shape_weekday[s],
            cal::SHAPE_WEEKDAY[s],
            1e-3,
        );
        assert_close(
            "weekend shape",
            c.shape_weekend[s],
            cal::SHAPE_WEEKEND[s],
            1e-3,
        );
    }
    for m in 0..12 {
        assert_close(
            "month factor",
            c.month_factor[m],
            cal::MONTH_FACTOR[m],
            1e-3,
        );
    }
    assert_close("ln mu", c.ln_mu, cal::HOUSEHOLD_DAILY_KWH_LN_MU, 1e-3);
    assert_close(
        "ln sigma",
        c.ln_sigma,
        cal::HOUSEHOLD_DAILY_KWH_LN_SIGMA,
        1e-3,
    );
    assert_close("day sigma", c.day_sigma, cal::DAY_FACTOR_LN_SIGMA, 1e-3);
    assert_close("noise mean", c.noise_mean, cal::NOISE_MEAN, 1e-3);
    assert_close("noise cv", c.noise_cv, cal::NOISE_CV, 1e-3);
    assert_close("spike rate", c.spike_rate, cal::SPIKE_RATE, 1e-4);
    assert_close("spike mean", c.spike_mean, cal::SPIKE_MEAN_RATIO, 1e-3);
}
