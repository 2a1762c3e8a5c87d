//! `otgrid study …`: experiments with fitted rates, written as CSV tables and a PNG plot.

use super::plot::{log_log_panels, Panel, Series};
use super::{GridArgs, Report};
use otgrid::error::{Error, Result};
use otgrid::io::{check_output_path, AtomicFile, Inputs};
use otgrid::ot::{DensitySpec, Problem};
use otgrid::study::batches::MIXTURE_ON_FLOOR;
use otgrid::study::BatchStudy;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct StudyArgs {
    #[command(subcommand)]
    pub study: Study,
}

#[derive(clap::Subcommand, Debug)]
pub enum Study {
    /// The sample-based parabolic Monge–Ampère flow against a known target: last and average
    /// iterates under constant, 1/√k and 1/k schedules, the O(b²) bias of the KDE bandwidth,
    /// and the noise floor against η/B.
    Batches(BatchesArgs),
    /// Plug-in maps learnt from n samples of PDE-induced targets (elliptic, parabolic,
    /// double-well Fokker–Planck): map error, W₂ and energy distance to held-out samples
    /// against n with fitted rates, Hölder and doubling estimates, and the robustness of the
    /// map to a perturbed PDE coefficient.
    Generalization(GeneralizationArgs),
}

impl StudyArgs {
    pub fn json(&self) -> bool {
        match &self.study {
            Study::Batches(a) => a.json,
            Study::Generalization(a) => a.json,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct BatchesArgs {
    /// Source density μ (any density spec, as for `otgrid ot`).
    #[arg(long, default_value = "uniform", allow_hyphen_values = true)]
    pub source: String,
    /// The known target ν (batches are exact draws from it). Default: a two-component
    /// Gaussian mixture on a uniform floor.
    #[arg(long, default_value = MIXTURE_ON_FLOOR, allow_hyphen_values = true)]
    pub target: String,
    #[command(flatten)]
    pub grid: GridArgs,
    /// Steps of each schedule run (and of the bias part's runs).
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Samples per step of the schedule runs.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// η₀ of the schedules constant:η₀, sqrt:η₀, harmonic:η₀ (linearly implicit steps).
    #[arg(long, default_value_t = 0.01)]
    pub eta: f64,
    /// KDE bandwidth of the schedule and noise parts, in cells.
    #[arg(long, default_value_t = 2.0)]
    pub bandwidth: f64,
    /// Bandwidths of the bias part, in cells.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub bandwidths: Vec<f64>,
    /// Samples per step of the bias part's runs.
    #[arg(long, default_value_t = 16000)]
    pub bias_batch: usize,
    /// Explicit step sizes of the noise part, in units of h².
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.03,0.1")]
    pub noise_etas: Vec<f64>,
    /// Batch sizes of the noise part.
    #[arg(long, value_delimiter = ',', default_value = "1000,4000,16000")]
    pub noise_batches: Vec<usize>,
    /// Steps of each noise run.
    #[arg(long, default_value_t = 400)]
    pub noise_steps: usize,
    /// Seed of the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output prefix: PREFIX_schedules.csv, PREFIX_bias.csv, PREFIX_noise.csv, PREFIX.png.
    #[arg(short, long, default_value = "study_batches")]
    pub out: PathBuf,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StudyArgs, report: &mut Report) -> Result<()> {
    match &args.study {
        Study::Batches(a) => batches(a, report),
        Study::Generalization(a) => generalization(a, report),
    }
}

/// The grid of a study: the flags', else 64² on the unit square.
fn study_grid(args: &GridArgs) -> Result<otgrid::Grid> {
    match (&args.mesh, &args.grid) {
        (None, None) => {
            otgrid::grid::GridSpec::from_flags("64x64", args.domain.as_deref(), args.bc.as_deref())
        }
        _ => args.resolve("unit_square_256"),
    }
}

fn batches(args: &BatchesArgs, report: &mut Report) -> Result<()> {
    let grid = study_grid(&args.grid)?;
    report.put("grid", &grid);
    let base = Path::new(".");
    let (source, target) =
        (DensitySpec::parse(&args.source, "source")?, DensitySpec::parse(&args.target, "target")?);
    let inputs: Vec<(String, PathBuf)> = [("source", &source), ("target", &target)]
        .into_iter()
        .filter_map(|(what, spec)| spec.input_file(base).map(|p| (what.to_string(), p)))
        .collect();
    let name = |suffix: &str| PathBuf::from(format!("{}{suffix}", args.out.display()));
    let paths = [name("_schedules.csv"), name("_bias.csv"), name("_noise.csv"), name(".png")];
    for p in &paths {
        check_output_path(p, &inputs)?;
    }
    let reading = Inputs { base: base.to_path_buf(), resample: false };
    let problem = Problem::new(
        &source.sample(&grid, "source", &reading)?,
        &target.sample(&grid, "target", &reading)?,
    )?;
    let study = BatchStudy {
        steps: args.steps,
        batch: args.batch,
        eta: args.eta,
        bandwidths: args.bandwidths.clone(),
        bias_batch: args.bias_batch,
        noise_etas: args.noise_etas.clone(),
        noise_batches: args.noise_batches.clone(),
        noise_steps: args.noise_steps,
        bandwidth: args.bandwidth,
        seed: args.seed,
    };
    report.put("study", &study);
    let started = std::time::Instant::now();
    let result = study.run(&problem, &progress(report.json, started))?;

    write_table(&paths[0], &result.schedules)?;
    write_table(&paths[1], &result.bias)?;
    write_table(&paths[2], &result.noise)?;

    let mut by_schedule = Vec::new();
    for name in ["constant", "sqrt", "harmonic"] {
        let rows: Vec<_> =
            result.schedules.iter().filter(|r| r.schedule.starts_with(name)).collect();
        for (which, pick) in [("last", 0), ("average", 1)] {
            by_schedule.push(Series {
                label: format!("{name} {which}"),
                points: rows
                    .iter()
                    .map(|r| {
                        let e = if pick == 0 { r.map_error_last } else { r.map_error_average };
                        (r.step as f64, e)
                    })
                    .collect(),
            });
        }
    }
    let bias_series = vec![
        Series {
            label: "map of K_b*nu".into(),
            points: result.bias.iter().map(|r| (r.bandwidth, r.smoothing_map_error)).collect(),
        },
        Series {
            label: "flow, last iterate".into(),
            points: result.bias.iter().map(|r| (r.bandwidth, r.flow_map_error)).collect(),
        },
    ];
    let noise_series = args
        .noise_batches
        .iter()
        .map(|&b| Series {
            label: format!("B = {b}"),
            points: result
                .noise
                .iter()
                .filter(|r| r.batch == b)
                .map(|r| (r.eta / r.batch as f64, r.kl_floor))
                .collect(),
        })
        .collect();
    let plotted = log_log_panels(
        &paths[3],
        &[
            Panel { title: "map error vs step", x_label: "step", series: by_schedule },
            Panel { title: "bias vs bandwidth", x_label: "bandwidth b", series: bias_series },
            Panel { title: "KL noise floor", x_label: "eta / B", series: noise_series },
        ],
    )?;

    let last =
        |name: &str| result.schedules.iter().rfind(|r| r.schedule.starts_with(name)).cloned();
    let finals: Vec<_> = ["constant", "sqrt", "harmonic"].iter().filter_map(|n| last(n)).collect();
    report.put("final", &finals);
    report.put("bias", &result.bias);
    report.put("bias_order", result.bias_order);
    report.put("noise", &result.noise);
    report.put("noise_exponent_eta", result.noise_exponent_eta);
    report.put("noise_exponent_batch", result.noise_exponent_batch);
    report.put("seconds", started.elapsed().as_secs_f64());
    if !report.json {
        println!("sample-based parabolic flow on {grid}: after {} steps", args.steps);
        println!("| schedule | map error (last) | map error (average) | KL (last) | KL (average) | regret |");
        println!("|---|---|---|---|---|---|");
        for r in &finals {
            println!(
                "| {} | {:.3e} | {:.3e} | {:.3e} | {:.3e} | {:.3e} |",
                r.schedule,
                r.map_error_last,
                r.map_error_average,
                r.kl_last,
                r.kl_average,
                r.regret
            );
        }
        println!("\n| bandwidth | map of K_b∗ν − T* | flow (sqrt, last iterate) − T* |");
        println!("|---|---|---|");
        for r in &result.bias {
            println!(
                "| {:.4} | {:.3e} | {:.3e} |",
                r.bandwidth, r.smoothing_map_error, r.flow_map_error
            );
        }
        println!("bias order in b: {:.2}", result.bias_order);
        println!("\n| η | B | KL floor | map floor |");
        println!("|---|---|---|---|");
        for r in &result.noise {
            println!("| {:.3e} | {} | {:.3e} | {:.3e} |", r.eta, r.batch, r.kl_floor, r.map_floor);
        }
        println!(
            "KL floor exponents: {:.2} in η, {:.2} in B",
            result.noise_exponent_eta, result.noise_exponent_batch
        );
    }
    files_written(report, &paths[..3], plotted);
    Ok(())
}

/// Records the tables and the plot a study wrote (`csv`, `png` or `png_skipped`) and,
/// without `--json`, prints them.
fn files_written(
    report: &mut Report,
    tables: &[PathBuf],
    plotted: std::result::Result<PathBuf, String>,
) {
    let written: Vec<String> = tables.iter().map(|p| p.display().to_string()).collect();
    report.put("csv", &written);
    match &plotted {
        Ok(p) => report.put("png", p.display().to_string()),
        Err(why) => report.put("png_skipped", why.as_str()),
    }
    if !report.json {
        for p in &written {
            println!("wrote        {p}");
        }
        match plotted {
            Ok(p) => println!("wrote        {}", p.display()),
            Err(why) => println!("{why}"),
        }
    }
}

/// One line per step of a study on stderr, with the seconds since `started` (none with
/// `--json`).
fn progress(quiet: bool, started: std::time::Instant) -> impl Fn(&str) {
    move |line| {
        if !quiet {
            eprintln!("[{:6.1} s] {line}", started.elapsed().as_secs_f64());
        }
    }
}

/// Writes `rows` (structs of numbers and strings) as a CSV table with their field names as
/// the header, atomically.
fn write_table<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let json = serde_json::to_value(rows).map_err(|e| Error::invalid(e.to_string()))?;
    let rows = json.as_array().map(Vec::as_slice).unwrap_or_default();
    let header: Vec<String> = rows
        .first()
        .and_then(|r| r.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let mut text = header.join(",");
    text.push('\n');
    for row in rows {
        let cells: Vec<String> = header
            .iter()
            .map(|k| match &row[k] {
                serde_json::Value::String(v) => v.clone(),
                serde_json::Value::Null => String::new(),
                v => v.to_string(),
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    let file = AtomicFile::new(path)?;
    std::fs::write(file.path(), text).map_err(|e| Error::io(file.path(), e))?;
    file.commit()?;
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct GeneralizationArgs {
    /// Targets: elliptic, parabolic, double-well (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "elliptic,parabolic,double-well")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub grid: GridArgs,
    /// Sample sizes n of the plug-in maps.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000,100000")]
    pub sizes: Vec<usize>,
    /// Independent samples per n (the tables report medians).
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// Generated and held-out samples compared by W₂ (assignment) and energy distance.
    #[arg(long, default_value_t = 1000)]
    pub compared: usize,
    /// Perturbations δ of the elliptic coefficient, a_δ = (1 + x/2)(1 + δxy).
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.2,0.4")]
    pub deltas: Vec<f64>,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output prefix: PREFIX_samples.csv, PREFIX_targets.csv, PREFIX_robustness.csv, PREFIX.png.
    #[arg(short, long, default_value = "study_generalization")]
    pub out: PathBuf,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn generalization(args: &GeneralizationArgs, report: &mut Report) -> Result<()> {
    use otgrid::study::{GeneralizationStudy, PdeTarget};
    let grid = study_grid(&args.grid)?;
    report.put("grid", &grid);
    let name = |suffix: &str| PathBuf::from(format!("{}{suffix}", args.out.display()));
    let paths = [name("_samples.csv"), name("_targets.csv"), name("_robustness.csv"), name(".png")];
    for p in &paths {
        check_output_path(p, &[])?;
    }
    let study = GeneralizationStudy {
        targets: args
            .targets
            .iter()
            .map(|t| PdeTarget::from_name(t.trim()))
            .collect::<Result<_>>()?,
        sizes: args.sizes.clone(),
        repetitions: args.repetitions,
        compared: args.compared,
        deltas: args.deltas.clone(),
        seed: args.seed,
    };
    report.put("study", &study);
    let started = std::time::Instant::now();
    let result = study.run(&grid, &progress(report.json, started))?;
    write_table(&paths[0], &result.rows)?;
    write_table(&paths[1], &result.targets)?;
    write_table(&paths[2], &result.robustness)?;

    let medians = |target: &str, pick: fn(&otgrid::study::generalization::SizeRow) -> f64| {
        args.sizes
            .iter()
            .map(|&n| {
                let mut v: Vec<f64> = result
                    .rows
                    .iter()
                    .filter(|r| r.target == target && r.n == n)
                    .map(pick)
                    .collect();
                v.sort_by(f64::total_cmp);
                (n as f64, v.get(v.len() / 2).copied().unwrap_or(f64::NAN))
            })
            .collect::<Vec<_>>()
    };
    let series = |pick: fn(&otgrid::study::generalization::SizeRow) -> f64| -> Vec<Series> {
        result
            .targets
            .iter()
            .map(|t| Series { label: t.target.to_string(), points: medians(t.target, pick) })
            .collect()
    };
    let plotted = log_log_panels(
        &paths[3],
        &[
            Panel { title: "plug-in map error", x_label: "n", series: series(|r| r.map_error) },
            Panel { title: "W2 to held-out samples", x_label: "n", series: series(|r| r.w2) },
            Panel {
                title: "map change vs W2(nu_delta, nu_0)",
                x_label: "W2 between targets",
                series: vec![Series {
                    label: "elliptic".into(),
                    points: result
                        .robustness
                        .iter()
                        .map(|r| (r.w2_targets, r.map_change))
                        .collect(),
                }],
            },
        ],
    )?;
    report.put("targets", &result.targets);
    report.put("robustness", &result.robustness);
    report.put("robustness_exponent", result.robustness_exponent);
    report.put("seconds", started.elapsed().as_secs_f64());
    if !report.json {
        println!(
            "plug-in maps from n samples on {grid} (medians of {} repetitions)",
            args.repetitions
        );
        println!("| target | n | map error | W₂ to held-out | energy distance |");
        println!("|---|---|---|---|---|");
        for t in &result.targets {
            let (e, w, m) = (
                medians(t.target, |r| r.map_error),
                medians(t.target, |r| r.w2),
                medians(t.target, |r| r.energy_distance),
            );
            for i in 0..e.len() {
                println!(
                    "| {} | {} | {:.3e} | {:.3e} | {:.3e} |",
                    t.target, e[i].0, e[i].1, w[i].1, m[i].1
                );
            }
        }
        println!("\n| target | rate: map error | W₂ | energy distance | W₂ of the exact map's samples | Hölder exponent | doubling constant |");
        println!("|---|---|---|---|---|---|---|");
        for t in &result.targets {
            println!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.3e} | {:.2} | {:.2} |",
                t.target,
                t.rate_map_error,
                t.rate_w2,
                t.rate_energy_distance,
                t.exact_w2,
                t.holder_exponent,
                t.doubling_constant
            );
        }
        println!("\n| δ | ‖T_δ − T₀‖ | W₂(ν_δ, ν₀) |");
        println!("|---|---|---|");
        for r in &result.robustness {
            println!("| {} | {:.3e} | {:.3e} |", r.delta, r.map_change, r.w2_targets);
        }
        println!("robustness exponent: {:.2}", result.robustness_exponent);
    }
    files_written(report, &paths[..3], plotted);
    Ok(())
}
