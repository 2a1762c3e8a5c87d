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
}

impl StudyArgs {
    pub fn json(&self) -> bool {
        match &self.study {
            Study::Batches(a) => a.json,
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
    }
}

fn batches(args: &BatchesArgs, report: &mut Report) -> Result<()> {
    let grid = match (&args.grid.mesh, &args.grid.grid) {
        (None, None) => otgrid::grid::GridSpec::from_flags(
            "64x64",
            args.grid.domain.as_deref(),
            args.grid.bc.as_deref(),
        )?,
        _ => args.grid.resolve("unit_square_256")?,
    };
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
    let quiet = report.json;
    let started = std::time::Instant::now();
    let result = study.run(&problem, &|line| {
        if !quiet {
            eprintln!("[{:6.1} s] {line}", started.elapsed().as_secs_f64());
        }
    })?;

    let f = |v: f64| v.to_string();
    let schedules: Vec<Vec<String>> = result
        .schedules
        .iter()
        .map(|r| {
            vec![
                r.schedule.clone(),
                r.step.to_string(),
                f(r.eta),
                f(r.map_error_last),
                f(r.map_error_average),
                f(r.kl_last),
                f(r.kl_average),
                f(r.batch_kl),
                f(r.regret),
            ]
        })
        .collect();
    write_csv(
        &paths[0],
        "schedule,step,eta,map_error_last,map_error_average,kl_last,kl_average,batch_kl,regret",
        &schedules,
    )?;
    let bias: Vec<Vec<String>> = result
        .bias
        .iter()
        .map(|r| vec![f(r.bandwidth), f(r.smoothing_map_error), f(r.flow_map_error)])
        .collect();
    write_csv(&paths[1], "bandwidth,smoothing_map_error,flow_map_error", &bias)?;
    let noise: Vec<Vec<String>> = result
        .noise
        .iter()
        .map(|r| vec![f(r.eta), r.batch.to_string(), f(r.kl_floor), f(r.map_floor)])
        .collect();
    write_csv(&paths[2], "eta,batch,kl_floor,map_floor", &noise)?;

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
    let written: Vec<String> = paths[..3].iter().map(|p| p.display().to_string()).collect();
    report.put("csv", &written);
    match &plotted {
        Ok(p) => report.put("png", p.display().to_string()),
        Err(why) => report.put("png_skipped", why.as_str()),
    }
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
        for p in &written {
            println!("wrote        {p}");
        }
        match plotted {
            Ok(p) => println!("wrote        {}", p.display()),
            Err(why) => println!("{why}"),
        }
    }
    Ok(())
}

/// Writes a CSV table atomically.
fn write_csv(path: &Path, header: &str, rows: &[Vec<String>]) -> Result<()> {
    let mut text = String::from(header);
    text.push('\n');
    for row in rows {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    let file = AtomicFile::new(path)?;
    std::fs::write(file.path(), text).map_err(|e| Error::io(file.path(), e))?;
    file.commit()?;
    Ok(())
}
