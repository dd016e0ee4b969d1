//! `meterflow cost`: the monthly AWS bill of a fleet, by service, from the dated price table
//! (`infra/prices-us-east-1.toml`, embedded; `--prices FILE` for another) and the ingest work
//! measured per reading (`meter_core::cost::MEASURED`). See `docs/cost.md`.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use meter_core::cost::{estimate, measured, Connection, Estimate, Prices, Scenario, MEASURED};

/// The embedded price table.
const DEFAULT_PRICES: &str = include_str!("../../infra/prices-us-east-1.toml");

/// `cost` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CostArgs {
    /// Meters in the fleet.
    #[arg(long)]
    pub meters: u64,
    /// Time between two readings of a meter: `15m`, `30m`, `1h`, `900s`.
    #[arg(long, default_value = "15m")]
    pub interval: String,
    /// Readings per message (a meter's store-and-forward batch): 1, 4 or 96, the batchings
    /// whose work was measured.
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// Meters publish through Basic Ingest ($aws/rules/...), which has no messaging charge.
    #[arg(long)]
    pub basic_ingest: bool,
    /// `persistent` (always connected) or `per-message` (connect, publish, disconnect).
    #[arg(long, default_value = "persistent")]
    pub connection: String,
    /// Days raw readings are kept (the DynamoDB TTL, ReadingRetentionDays).
    #[arg(long, default_value_t = 400.0)]
    pub retention_days: f64,
    /// Months of aggregates stored (they never expire: the age of the deployment).
    #[arg(long, default_value_t = 12.0)]
    pub aggregate_months: f64,
    /// Assumed milliseconds per DynamoDB request as seen from Lambda (not measured here).
    #[arg(long, default_value_t = 6.0)]
    pub dynamodb_ms: f64,
    /// Days of readings the daily forecast run reads per meter (FORECAST_HISTORY_DAYS; 0: no
    /// forecast run).
    #[arg(long, default_value_t = 60.0)]
    pub forecast_days: f64,
    /// Days of readings the daily anomaly scan reads per meter (SCAN_HISTORY_DAYS; 0: no scan).
    #[arg(long, default_value_t = 35.0)]
    pub scan_days: f64,
    /// A price table (TOML, the fields of infra/prices-us-east-1.toml) instead of the embedded one.
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `15m` → 15.0 minutes.
pub fn parse_interval(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .with_context(|| format!("--interval {s:?}: expected a number and s, m or h"))?;
    let minutes = match unit {
        "s" => n / 60.0,
        "m" | "" => n,
        "h" => n * 60.0,
        _ => bail!("--interval {s:?}: the unit must be s, m or h"),
    };
    if !(minutes.is_finite() && minutes > 0.0) {
        bail!("--interval {s:?} must be more than zero");
    }
    Ok(minutes)
}

/// Reads and checks a price table.
pub fn parse_prices(text: &str) -> anyhow::Result<Prices> {
    let prices: Prices = toml::from_str(text)?;
    Ok(prices)
}

fn scenario(args: &CostArgs) -> anyhow::Result<Scenario> {
    let interval = parse_interval(&args.interval)?;
    let Some(work) = measured(args.batch) else {
        let known: Vec<String> = MEASURED
            .iter()
            .map(|w| w.readings_per_message.to_string())
            .collect();
        bail!(
            "--batch {}: only {} readings per message were measured (tests/tests/cost_per_reading.rs)",
            args.batch,
            known.join(", ")
        );
    };
    let mut s = Scenario::new(args.meters, interval, work);
    s.basic_ingest = args.basic_ingest;
    s.connection = match args.connection.as_str() {
        "persistent" => Connection::Persistent,
        "per-message" => Connection::PerMessage,
        other => bail!("--connection {other:?}: expected persistent or per-message"),
    };
    s.reading_retention_days = args.retention_days;
    s.aggregate_months = args.aggregate_months;
    s.dynamodb_ms_per_request = args.dynamodb_ms;
    for (flag, days) in [
        ("--forecast-days", args.forecast_days),
        ("--scan-days", args.scan_days),
    ] {
        if !(days.is_finite() && (0.0..=400.0).contains(&days)) {
            bail!("{flag} {days}: expected 0 to 400 days");
        }
    }
    s.forecast_history_days = args.forecast_days;
    s.scan_history_days = args.scan_days;
    Ok(s)
}

/// Runs `meterflow cost`.
pub fn run(args: &CostArgs) -> anyhow::Result<()> {
    let text = match &args.prices {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the price table {}", path.display()))?,
        None => DEFAULT_PRICES.to_owned(),
    };
    let prices = parse_prices(&text).context("the price table")?;
    let e = estimate(&prices, &scenario(args)?);
    if args.json {
        say!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print_table(&e)?;
    }
    Ok(())
}

fn print_table(e: &Estimate) -> anyhow::Result<()> {
    let s = &e.scenario;
    say!(
        "{} meters, a reading every {} min, {} per message{}, {} connections; prices {} {} (re-check them)",
        s.meters,
        s.interval_minutes,
        s.work.readings_per_message,
        if s.basic_ingest { " via Basic Ingest" } else { "" },
        match s.connection {
            Connection::Persistent => "persistent",
            Connection::PerMessage => "per-message",
        },
        e.region,
        e.prices_date
    );
    for (name, usd) in &e.by_service {
        say!("  {name:<30} {usd:>14.2} USD/month");
    }
    say!("  {:<30} {:>14.2} USD/month", "total", e.usd_per_month);
    say!(
        "  {:<30} {:>14.5} USD",
        "per meter-month",
        e.usd_per_meter_month
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_in_seconds_minutes_and_hours() {
        assert_eq!(parse_interval("15m").unwrap(), 15.0);
        assert_eq!(parse_interval("1h").unwrap(), 60.0);
        assert_eq!(parse_interval("900s").unwrap(), 15.0);
        assert_eq!(parse_interval("30").unwrap(), 30.0);
        for bad in ["", "m", "0m", "15d", "-5m"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_embedded_price_table_parses_and_is_dated() {
        let p = parse_prices(DEFAULT_PRICES).unwrap();
        assert_eq!(p.region, "us-east-1");
        assert!(p.date.starts_with("20"), "{}", p.date);
        assert!(p.dynamodb_write_units_per_million > 0.0);
    }

    #[test]
    fn a_price_table_with_an_unknown_or_missing_field_is_refused() {
        let extra = format!("{DEFAULT_PRICES}\nsurprise = 1.0\n");
        assert!(parse_prices(&extra).is_err());
        let missing: String = DEFAULT_PRICES
            .lines()
            .filter(|l| !l.starts_with("kms_key_per_month"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse_prices(&missing).is_err());
    }

    #[test]
    fn only_measured_batchings_are_priced() {
        let args = |batch| CostArgs {
            meters: 10,
            interval: "15m".into(),
            batch,
            basic_ingest: false,
            connection: "persistent".into(),
            retention_days: 400.0,
            aggregate_months: 12.0,
            dynamodb_ms: 6.0,
            forecast_days: 60.0,
            scan_days: 35.0,
            prices: None,
            json: true,
        };
        assert!(scenario(&args(4)).is_ok());
        assert!(scenario(&args(5)).is_err());
    }

    #[test]
    fn history_windows_outside_zero_to_400_days_are_refused() {
        let args = |forecast_days, scan_days| CostArgs {
            meters: 10,
            interval: "15m".into(),
            batch: 1,
            basic_ingest: false,
            connection: "persistent".into(),
            retention_days: 400.0,
            aggregate_months: 12.0,
            dynamodb_ms: 6.0,
            forecast_days,
            scan_days,
            prices: None,
            json: true,
        };
        let off = scenario(&args(0.0, 0.0)).unwrap();
        assert_eq!(
            (off.forecast_history_days, off.scan_history_days),
            (0.0, 0.0)
        );
        assert!(scenario(&args(401.0, 35.0)).is_err());
        assert!(scenario(&args(60.0, -1.0)).is_err());
        assert!(scenario(&args(f64::NAN, 35.0)).is_err());
    }
}
