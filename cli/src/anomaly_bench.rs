//! `meterflow bench anomaly`: meter-core's isolation forest fit and scoring time, and the AUC
//! of its scores, on the same matrices as scikit-learn's `IsolationForest` (100 trees, 256
//! samples, one thread each). The matrices are written to a temporary directory as raw
//! little-endian `f32`; with `--python`, `scripts/sklearn_iforest.py` (compiled in) fits and
//! scores them there, and both sides' scores are ranked against the same labels here.
//! `scripts/bench-anomaly` sets up the venv with scikit-learn and runs this.
//!
//! Datasets: `synthetic`, a Gaussian mixture of `--rows` × 8 with 1% planted uniform outliers
//! (throughput, the top-level figures); and `sgsc_days`, the per-meter-day feature rows of the
//! shared SGSC file with injected h1–h6 thefts as labels, when the file is there.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context as _;
use meter_core::anomaly::metrics::roc_auc;
use meter_core::anomaly::{ForestConfig, IsolationForest, Rng};
use serde_json::{json, Value};

/// The scikit-learn side, run with the given python.
const SKLEARN_SCRIPT: &str = include_str!("../../scripts/sklearn_iforest.py");

/// Benchmark settings.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchAnomalyArgs {
    /// Rows of the synthetic matrix.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Scoring runs per side; the fastest counts (the VM's speed drifts).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Seed for the data and both forests.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// A python with scikit-learn (scripts/bench-anomaly passes the project venv's); without
    /// it only meterflow's side is measured.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The interval file for the `sgsc_days` dataset (default: the shared SGSC file).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Print JSON (the only output; kept for symmetry with the other benches).
    #[arg(long)]
    pub json: bool,
}

/// One labelled matrix both sides score.
pub struct Dataset {
    /// File-name-safe name.
    pub name: &'static str,
    /// Row-major values.
    pub rows: Vec<f32>,
    /// Features per row.
    pub features: usize,
    /// Whether each row is an outlier (planted or injected).
    pub labels: Vec<bool>,
}

/// `rows` × 8: three correlated Gaussian clusters, and 1% of rows uniform over a wide box.
fn synthetic(rows: usize, seed: u64) -> Dataset {
    const FEATURES: usize = 8;
    let mut rng = Rng::new(seed);
    let centres = [[0.0f64; FEATURES], [3.0; FEATURES], [-2.0; FEATURES]];
    let mut values = Vec::with_capacity(rows * FEATURES);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let outlier = rng.unit() < 0.01;
        if outlier {
            for _ in 0..FEATURES {
                values.push(rng.uniform(-8.0, 8.0) as f32);
            }
        } else {
            let c = &centres[rng.below(centres.len())];
            // A shared factor correlates the features, as load features are.
            let common = rng.normal();
            for centre in c {
                values.push((centre + 0.7 * common + 0.7 * rng.normal()) as f32);
            }
        }
        labels.push(outlier);
    }
    Dataset {
        name: "synthetic",
        rows: values,
        features: FEATURES,
        labels,
    }
}

/// Fits and scores one dataset with meterflow; the fastest of `repeats` scoring runs.
fn measure(ds: &Dataset, config: &ForestConfig, repeats: usize) -> anyhow::Result<Value> {
    let started = Instant::now();
    let forest = IsolationForest::fit(&ds.rows, ds.features, config)?;
    let fit_s = started.elapsed().as_secs_f64();
    let mut best = f64::INFINITY;
    let mut scores = Vec::new();
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        scores = forest.score(&ds.rows)?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(json!({
        "rows": ds.labels.len(),
        "features": ds.features,
        "outliers": ds.labels.iter().filter(|&&l| l).count(),
        "meterflow_fit_s": fit_s,
        "meterflow_score_s": best,
        "meterflow_rows_per_s": ds.labels.len() as f64 / best,
        "auc_meterflow": roc_auc(&scores, &ds.labels),
    }))
}

fn write_f32(path: &Path, values: &[f32]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for v in values {
        out.write_all(&v.to_le_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn read_f64(path: &Path) -> anyhow::Result<Vec<f64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .collect())
}

/// Runs scikit-learn on the datasets and adds its figures to each dataset's report.
fn run_sklearn(
    python: &Path,
    datasets: &[Dataset],
    config: &ForestConfig,
    repeats: usize,
    reports: &mut [Value],
) -> anyhow::Result<Value> {
    let dir = std::env::temp_dir().join(format!("meterflow-bench-anomaly-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let mut listed = Vec::new();
        for ds in datasets {
            let file = format!("{}.f32", ds.name);
            write_f32(&dir.join(&file), &ds.rows)?;
            listed.push(json!({"name": ds.name, "rows": ds.labels.len(), "features": ds.features, "file": file}));
        }
        let meta = json!({
            "datasets": listed, "trees": config.trees, "max_samples": config.max_samples,
            "seed": config.seed, "repeats": repeats.max(1),
        });
        std::fs::write(dir.join("meta.json"), meta.to_string())?;
        let out = Command::new(python)
            .arg("-c")
            .arg(SKLEARN_SCRIPT)
            .arg(&dir)
            .env("OMP_NUM_THREADS", "1")
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "scikit-learn side failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let timings: Value = serde_json::from_slice(&out.stdout)?;
        for (ds, report) in datasets.iter().zip(reports.iter_mut()) {
            let t = &timings["datasets"][ds.name];
            let scores = read_f64(&dir.join(format!("{}.sklearn.f64", ds.name)))?;
            let sk_score = t["score_s"].as_f64().unwrap_or(f64::NAN);
            let sk_fit = t["fit_s"].as_f64().unwrap_or(f64::NAN);
            let own_score = report["meterflow_score_s"].as_f64().unwrap_or(f64::NAN);
            let own_fit = report["meterflow_fit_s"].as_f64().unwrap_or(f64::NAN);
            let obj = report.as_object_mut().context("report is an object")?;
            obj.insert("sklearn_fit_s".into(), json!(sk_fit));
            obj.insert("sklearn_score_s".into(), json!(sk_score));
            obj.insert("speedup_vs_sklearn".into(), json!(sk_score / own_score));
            obj.insert("fit_speedup_vs_sklearn".into(), json!(sk_fit / own_fit));
            obj.insert("auc_sklearn".into(), json!(roc_auc(&scores, &ds.labels)));
        }
        Ok(timings["sklearn_version"].clone())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs the benchmark.
pub fn run(args: &BenchAnomalyArgs) -> anyhow::Result<()> {
    let config = ForestConfig {
        seed: args.seed,
        ..ForestConfig::default()
    };
    let mut datasets = vec![synthetic(args.rows, args.seed)];
    let input = args
        .input
        .clone()
        .unwrap_or_else(crate::forecast::shared_sgsc_path);
    if input.exists() {
        datasets.push(crate::detect::bench_dataset(&input, args.seed)?);
    } else {
        eprintln!("{} not found: sgsc_days dataset skipped", input.display());
    }
    let mut reports = Vec::new();
    for ds in &datasets {
        reports.push(measure(ds, &config, args.repeats)?);
    }
    let sklearn_version = match &args.python {
        Some(python) => Some(run_sklearn(
            python,
            &datasets,
            &config,
            args.repeats,
            &mut reports,
        )?),
        None => None,
    };
    let mut top = reports[0].clone();
    let obj = top.as_object_mut().context("report is an object")?;
    obj.insert("dataset".into(), json!(datasets[0].name));
    obj.insert("threads".into(), json!(1));
    obj.insert("trees".into(), json!(config.trees));
    obj.insert("max_samples".into(), json!(config.max_samples));
    obj.insert("seed".into(), json!(config.seed));
    obj.insert("sklearn_version".into(), json!(sklearn_version));
    obj.insert(
        "datasets".into(),
        Value::Object(
            datasets
                .iter()
                .zip(reports)
                .map(|(d, r)| (d.name.to_owned(), r))
                .collect(),
        ),
    );
    say!("{}", serde_json::to_string_pretty(&top)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_matrix_plants_about_one_percent_outliers_that_the_forest_finds() {
        let ds = synthetic(20_000, 1);
        assert_eq!(ds.rows.len(), 20_000 * ds.features);
        let outliers = ds.labels.iter().filter(|&&l| l).count();
        assert!((150..=250).contains(&outliers), "{outliers}");
        let report = measure(&ds, &ForestConfig::default(), 1).unwrap();
        let auc = report["auc_meterflow"].as_f64().unwrap();
        assert!(auc > 0.95, "{auc}");
    }

    #[test]
    fn matrices_round_trip_through_the_files_scikit_learn_reads() {
        let path = std::env::temp_dir().join(format!("meterflow-f32-{}", std::process::id()));
        write_f32(&path, &[1.5, -2.0]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            bytes,
            [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()
        );
    }
}
