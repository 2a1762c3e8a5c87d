//! `otgrid push` (points through a computed map) and `otgrid sample` (a one-step generator:
//! exact draws from the source density pushed through the map).

use super::Report;
use ndarray::{Array2, Axis};
use otgrid::io::points::{read_points, write_points, PointFormat};
use otgrid::io::{Field, Output};
use otgrid::resources::MemoryEstimate;
use otgrid::sample::{draw, GridMap, Interpolation};
use otgrid::{Error, Result, ScalarField};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// An `otgrid ot` result (its /fields/displacement, or /fields/inverse_map with --inverse).
    #[arg(long, value_name = "RESULT.h5")]
    pub map: PathBuf,
    /// The points, one per row: .npy [n][dim], .csv/.txt, or .h5 (/points).
    #[arg(long, value_name = "FILE")]
    pub points: PathBuf,
    /// Where the pushed points go (format by extension, as --points).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Push through the inverse map ∇ψ (target → source) instead of T = ∇φ.
    #[arg(long)]
    pub inverse: bool,
    /// Interpolation between cell centres: cubic (4th order) or linear (2nd order).
    #[arg(long, default_value = "cubic", value_name = "KIND")]
    pub interpolation: Interpolation,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// An `otgrid ot` result (its /fields/source and /fields/displacement).
    #[arg(long, value_name = "RESULT.h5")]
    pub map: PathBuf,
    /// How many samples.
    #[arg(short = 'n', long, value_name = "N")]
    pub count: usize,
    /// Random seed (the samples depend on it only, not on the thread count).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the generated (pushed) samples go: .npy, .csv/.txt or .h5 (/points).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write the source samples (before the map) here.
    #[arg(long, value_name = "FILE")]
    pub source_out: Option<PathBuf>,
    /// Interpolation between cell centres: cubic (4th order) or linear (2nd order).
    #[arg(long, default_value = "cubic", value_name = "KIND")]
    pub interpolation: Interpolation,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The map of an `otgrid ot` result, forward or inverse.
fn load_map(path: &Path, inverse: bool, interpolation: Interpolation) -> Result<(Output, GridMap)> {
    let result = Output::read(path)?;
    let name = if inverse { "inverse_map" } else { "displacement" };
    let map = match result.fields().get(name) {
        Some(Field::Vector(v)) => {
            if inverse {
                GridMap::from_map(v, interpolation)?
            } else {
                GridMap::from_displacement(v.clone(), interpolation)?
            }
        }
        _ => {
            return Err(Error::format(
                path,
                format!("no vector field /fields/{name} (is it an `otgrid ot` result?)"),
            ))
        }
    };
    Ok((result, map))
}

/// Mean and covariance (rows of `points`), for the report.
fn moments(points: &Array2<f64>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = points.nrows().max(1) as f64;
    let d = points.ncols();
    let mean: Vec<f64> = (0..d).map(|a| points.column(a).sum() / n).collect();
    let mut cov = vec![vec![0.0; d]; d];
    for row in points.axis_iter(Axis(0)) {
        for a in 0..d {
            for b in 0..d {
                cov[a][b] += (row[a] - mean[a]) * (row[b] - mean[b]) / n;
            }
        }
    }
    (mean, cov)
}

/// Refuses an output that is one of the inputs (`(what, path)` pairs).
fn refuse_overwriting(out: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let inputs: Vec<(String, PathBuf)> =
        inputs.iter().map(|(w, p)| (w.to_string(), p.to_path_buf())).collect();
    otgrid::io::refuse_input_as_output(out, &inputs)
}

pub fn push(args: &PushArgs, report: &mut Report) -> Result<()> {
    PointFormat::of(&args.out)?;
    refuse_overwriting(&args.out, &[("map", &args.map), ("points", &args.points)])?;
    let (_, map) = load_map(&args.map, args.inverse, args.interpolation)?;
    let points = read_points(&args.points)?;
    report.put("grid", map.grid());
    report.put("points", points.nrows());
    report.put("direction", if args.inverse { "inverse" } else { "forward" });
    report.put("interpolation", args.interpolation);
    let start = Instant::now();
    let pushed = map
        .apply(points.view())
        .map_err(|e| Error::invalid(format!("{}: {e}", args.points.display())))?;
    report.put("seconds", start.elapsed().as_secs_f64());
    let map_name = args.map.display().to_string();
    let direction = if args.inverse { "inverse" } else { "forward" };
    write_points(&args.out, &pushed, &[("map", &map_name), ("direction", direction)])?;
    report.put("output", args.out.display().to_string());
    if !report.json {
        report.print_text(&[]);
    }
    Ok(())
}

pub fn sample(args: &SampleArgs, report: &mut Report) -> Result<()> {
    if args.count == 0 {
        return Err(Error::invalid("-n must be at least 1"));
    }
    PointFormat::of(&args.out)?;
    refuse_overwriting(&args.out, &[("map", &args.map)])?;
    if let Some(s) = &args.source_out {
        PointFormat::of(s)?;
        refuse_overwriting(s, &[("map", &args.map)])?;
        if s == &args.out {
            return Err(Error::invalid("--source-out and --out name the same file"));
        }
    }
    // Memory: the source and the pushed samples, 2 × n × dim doubles.
    let (result, map) = load_map(&args.map, false, args.interpolation)?;
    let d = map.grid().dim();
    let samples = (2 * args.count as u64).saturating_mul(d as u64 * 8);
    MemoryEstimate::fields(map.grid(), 8.0, samples, "sampling").check(report.memory_limit)?;
    let source: ScalarField = match result.fields().get("source") {
        Some(Field::Scalar(s)) => s.clone(),
        _ => {
            return Err(Error::format(
                &args.map,
                "no scalar field /fields/source (is it an `otgrid ot` result?)",
            ))
        }
    };
    report.put("grid", map.grid());
    report.put("samples", args.count);
    report.put("seed", args.seed);
    report.put("interpolation", args.interpolation);
    let start = Instant::now();
    let x = draw(&source, args.count, args.seed)?;
    let y = map.apply(x.view())?;
    report.put("seconds", start.elapsed().as_secs_f64());
    let (mean, cov) = moments(&y);
    report.put("mean", mean);
    report.put("covariance", cov);
    let map_name = args.map.display().to_string();
    let seed = args.seed.to_string();
    if let Some(s) = &args.source_out {
        write_points(s, &x, &[("map", &map_name), ("seed", &seed), ("kind", "source")])?;
        report.put("source_output", s.display().to_string());
    }
    write_points(&args.out, &y, &[("map", &map_name), ("seed", &seed), ("kind", "generated")])?;
    report.put("output", args.out.display().to_string());
    if !report.json {
        report.print_text(&[]);
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The first point set (.npy [n][dim], .csv/.txt or .h5 /points).
    pub a: PathBuf,
    /// The second point set (same dimension).
    pub b: PathBuf,
    /// Directions of the sliced W₂.
    #[arg(long, default_value_t = 200)]
    pub directions: usize,
    /// Seed of the sliced W₂'s directions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// σ of the Gaussian-kernel MMD (default: the median distance between points of the
    /// pooled sets, over at most 1000 of each).
    #[arg(long)]
    pub sigma: Option<f64>,
    /// Also the Sinkhorn divergence S_ε (≈ W₂², any sizes; O(n m) per pass, hundreds of
    /// passes: 2000 + 2000 points take seconds, 10⁴ + 10⁴ minutes).
    #[arg(long)]
    pub sinkhorn: bool,
    /// ε of the Sinkhorn divergence (default (0.05 × the sets' diameter)²).
    #[arg(long, requires = "sinkhorn")]
    pub epsilon: Option<f64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The median of the pairwise distances within the first 1000 rows of each set, pooled.
fn median_distance(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let take = |p: &Array2<f64>| p.slice(ndarray::s![..p.nrows().min(1000), ..]).to_owned();
    let pooled = ndarray::concatenate(Axis(0), &[take(a).view(), take(b).view()])
        .expect("same dimension (checked)");
    let n = pooled.nrows();
    let mut d: Vec<f64> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .map(|(i, j)| {
            pooled
                .row(i)
                .iter()
                .zip(pooled.row(j))
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    if d.is_empty() {
        return 1.0;
    }
    d.sort_by(f64::total_cmp);
    d[d.len() / 2].max(f64::MIN_POSITIVE)
}

pub fn compare(args: &CompareArgs, report: &mut Report) -> Result<()> {
    use otgrid::sample::metrics::{
        mmd_squared, sliced_w2, w2_assignment, MmdKernel, ASSIGNMENT_MAX,
    };
    let a = read_points(&args.a)?;
    let b = read_points(&args.b)?;
    if a.ncols() != b.ncols() {
        return Err(Error::invalid(format!(
            "{} has {} columns, {} has {}",
            args.a.display(),
            a.ncols(),
            args.b.display(),
            b.ncols()
        )));
    }
    report.put("points", [a.nrows(), b.nrows()]);
    report.put("dim", a.ncols());
    let start = Instant::now();
    if a.nrows() == b.nrows() && a.nrows() <= ASSIGNMENT_MAX {
        report.put("w2", w2_assignment(a.view(), b.view())?);
    } else {
        report.put(
            "w2",
            format!("not computed: the assignment needs equal sizes ≤ {ASSIGNMENT_MAX}"),
        );
    }
    report.put("sliced_w2", sliced_w2(a.view(), b.view(), args.directions, args.seed)?);
    report.put("directions", args.directions);
    let sigma = args.sigma.unwrap_or_else(|| median_distance(&a, &b));
    report.put("mmd2_gaussian", mmd_squared(a.view(), b.view(), MmdKernel::Gaussian(sigma))?);
    report.put("mmd_sigma", sigma);
    report.put("energy_distance", mmd_squared(a.view(), b.view(), MmdKernel::Energy)?);
    if args.sinkhorn {
        let s = otgrid::sample::sinkhorn_divergence(a.view(), b.view(), args.epsilon)?;
        if !s.converged {
            tracing::warn!("the Sinkhorn divergence stopped after {} passes unconverged", s.passes);
        }
        report.put("sinkhorn_divergence", s.value);
        report.put("sinkhorn_epsilon", s.epsilon);
        report.put("sinkhorn_passes", s.passes);
        report.put("sinkhorn_converged", s.converged);
    }
    report.put("seconds", start.elapsed().as_secs_f64());
    if !report.json {
        report.print_text(&[]);
    }
    Ok(())
}
