//! `otgrid ot`: the Brenier map between two densities on a grid.

use super::GridArgs;
use otgrid::analytic::gaussian::GaussianMap;
use otgrid::error::{Error, Result};
use otgrid::io::{check_output_path, AttrValue, Inputs};
use otgrid::ot::bfm::PushForward;
use otgrid::ot::metric::Metric;
use otgrid::ot::parabolic::ExactMap;
use otgrid::ot::Exact;
use otgrid::ot::{
    map_error, BackAndForth, DensitySpec, Method, Options, Parabolic, Problem, Schedule, Sinkhorn,
    Solver, Stepping,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct OtArgs {
    /// Source density μ: gaussian:MEAN:COV, uniform, case:NAME, FILE.h5:/DATASET, FILE.npy, FILE.png or an expression in x,y,z.
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub source: String,
    /// Target density ν (same forms as --source).
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub target: String,
    #[command(flatten)]
    pub grid: GridArgs,
    /// Map a density stored on another grid (otgrid files carry theirs) onto this run's grid
    /// by conservative cell-overlap resampling, instead of refusing it.
    #[arg(long)]
    pub resample: bool,
    /// Solver: auto (picks by the densities and says why; default), bfm (back-and-forth
    /// dual ascent; any densities), newton (damped Newton on the Monge–Ampère equation),
    /// parabolic (the parabolic Monge–Ampère flow; newton and parabolic refuse densities
    /// with min/max < 0.05) or sinkhorn (entropic, --epsilon).
    #[arg(long, default_value = "auto")]
    pub method: String,
    /// Parabolic step sizes: constant:ETA, sqrt:ETA0 (η₀/√(k+1)), harmonic:ETA0 (η₀/(k+1)),
    /// geometric:ETA0,RATIO or cfl:THETA (θ × the explicit stability bound). Default
    /// geometric:0.1,2 (linearly implicit), cfl:0.9 with --explicit.
    #[arg(long, value_name = "SPEC")]
    pub schedule: Option<String>,
    /// Parabolic: forward-Euler steps instead of linearly implicit ones.
    #[arg(long)]
    pub explicit: bool,
    /// Sinkhorn: entropic regularisation ε of the cost |x−y|²/2 (default 1e-3).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// bfm: push-forward in the dual gradient: deposit (mass-conserving cloud-in-cell; any
    /// densities), jacobian (change of variables; second order for smooth densities bounded
    /// away from zero) or auto (jacobian on the torus for densities with min ≥ 8% of max,
    /// else deposit).
    #[arg(long, value_name = "KIND")]
    pub push_forward: Option<String>,
    /// bfm: metric of the gradient steps: weighted (density-weighted H¹, −∇·(w∇) with w the
    /// density floored at 1% of its maximum: approximate Newton steps; default),
    /// weighted:FLOOR (another floor, 0 < FLOOR ≤ 1) or laplacian (the H¹ metric of the
    /// reference method)
    #[arg(long, value_name = "METRIC")]
    pub metric: Option<String>,
    /// Stopping tolerance of the method's own measure: bfm — H⁻¹ marginal error (default
    /// 1.5e-3 from 256 cells per axis, scaled by 256/cells below); newton, parabolic — max Monge–Ampère residual (default 1e-8, 1e-6); sinkhorn — L1 marginal error of the plan (default 1e-5).
    #[arg(long)]
    pub tol: Option<f64>,
    /// Give up after this many iterations (all levels together).
    #[arg(long, default_value_t = Options::default().max_iterations)]
    pub max_iterations: usize,
    /// Give up after this many seconds of solving (outcome time_limit).
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<f64>,
    /// Output HDF5 file; the XDMF sidecar goes next to it.
    #[arg(short, long, default_value = "ot.h5")]
    pub out: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the result even if the solver neither converged nor reached the grid's
    /// discretisation floor (the file's `outcome` attribute says how it ended).
    #[arg(long)]
    pub keep_unconverged: bool,
    /// Timing: solve N times in this process and report (and write) the run of median time.
    /// The first solve of a process pays one-time library set-up (e.g. the matrix-product
    /// kernels read the CPU's cache sizes, ~1 ms), which the median leaves out.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: usize,
}

pub fn run(args: &OtArgs) -> Result<()> {
    let requested =
        if args.method == "auto" { None } else { Some(Method::from_name(&args.method)?) };
    let grid = args.grid.resolve("unit_square_256")?;
    if args.repeat == 0 {
        return Err(Error::invalid("--repeat must be at least 1"));
    }
    let base = Path::new(".");
    let source_spec = DensitySpec::parse(&args.source, "source")?;
    let target_spec = DensitySpec::parse(&args.target, "target")?;
    let inputs: Vec<(String, PathBuf)> = [("source", &source_spec), ("target", &target_spec)]
        .into_iter()
        .filter_map(|(what, spec)| spec.input_file(base).map(|p| (what.to_string(), p)))
        .collect();
    check_output_path(&args.out, &inputs)?;
    let inputs = Inputs { base: base.to_path_buf(), resample: args.resample };
    let mu = source_spec.sample(&grid, "source", &inputs)?;
    let nu = target_spec.sample(&grid, "target", &inputs)?;
    let problem = Problem::new(&mu, &nu)?;
    let method = match requested {
        Some(m) => {
            m.check(&problem)?;
            m
        }
        None => {
            let (m, why) = Method::auto(&problem);
            if !args.json {
                eprintln!("method auto → {why}");
            }
            m
        }
    };
    let options = Options {
        tolerance: args.tol.unwrap_or(method.default_tolerance(&grid)),
        max_iterations: args.max_iterations,
        progress: !args.json,
        time_limit: args.time_limit,
    };
    options.validate()?;
    let (ms, mt) = problem.masses();
    for (what, m) in [("source", ms), ("target", mt)] {
        if (m - 1.0).abs() > 1e-2 {
            tracing::warn!("{what} density had mass {m:.6e}; normalised to 1");
        } else {
            tracing::info!("{what} density had mass {m:.6e}; normalised to 1");
        }
    }
    let exact = exact_solution(&source_spec, &target_spec)?;
    let solve = || -> Result<otgrid::ot::Solution> {
        Ok(match method {
            _ if method != Method::Parabolic && (args.schedule.is_some() || args.explicit) => {
                return Err(Error::invalid("--schedule and --explicit apply to --method parabolic"))
            }
            _ if method != Method::Sinkhorn && args.epsilon.is_some() => {
                return Err(Error::invalid("--epsilon applies to --method sinkhorn"))
            }
            _ if method != Method::BackAndForth && args.push_forward.is_some() => {
                return Err(Error::invalid("--push-forward applies to --method bfm"))
            }
            _ if method != Method::BackAndForth && args.metric.is_some() => {
                return Err(Error::invalid("--metric applies to --method bfm"))
            }
            Method::BackAndForth => {
                let push_forward = match &args.push_forward {
                    Some(kind) => PushForward::from_name(kind)?,
                    None => PushForward::Auto,
                };
                let metric = match &args.metric {
                    Some(name) => Metric::from_name(name)?,
                    None => Metric::default(),
                };
                BackAndForth { push_forward, metric, ..Default::default() }
                    .solve(&problem, &options)?
            }
            Method::Parabolic => parabolic(args, exact.clone())?.solve(&problem, &options)?,
            Method::Sinkhorn => {
                let defaults = Sinkhorn::default();
                let epsilon = args.epsilon.unwrap_or(defaults.epsilon);
                Sinkhorn { epsilon, ..defaults }.solve(&problem, &options)?
            }
            _ => method.solve(&problem, &options)?,
        })
    };
    let mut runs = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        runs.push(solve()?);
    }
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let solution = runs.swap_remove(runs.len() / 2);
    let error = exact.as_ref().map(|e| map_error(&solution, &problem, |x, y| e.map(x, y)));
    let mut summary = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        summary.insert(k.to_string(), v);
    };
    put("method", solution.method.into());
    put("grid", grid.to_string().into());
    put("outcome", solution.outcome.name().into());
    put("converged", solution.converged().into());
    if let Some(floor) = solution.outcome.floor() {
        put("discretisation_floor", floor.into());
    }
    put("stop_reason", solution.stop_reason.clone().into());
    put("iterations", solution.iterations.into());
    put("w2_squared", solution.w2_squared().into());
    put("stopping_measure", method.stopping_measure().into());
    put("tolerance", options.tolerance.into());
    put("marginal_error", solution.marginal_error.into());
    put("seconds", solution.seconds.into());
    put("source_mass", ms.into());
    put("target_mass", mt.into());
    for (k, v) in &solution.scalars {
        put(k, (*v).into());
    }
    if let (Some(e), Some(exact)) = (error, &exact) {
        put("exact_w2_squared", exact.w2_squared().into());
        put("map_error_l2_bulk", e.l2.into());
        put("map_error_max_bulk", e.max.into());
    }
    if !solution.solved() && !args.keep_unconverged {
        return Err(Error::Solver(format!(
            "{} did not converge ({}): {}; nothing written (--keep-unconverged writes it anyway)",
            solution.method,
            solution.outcome.name(),
            solution.stop_reason
        )));
    }
    let mut output = solution.to_output(&problem)?;
    output.set_attribute("source_spec", AttrValue::Text(args.source.clone()))?;
    output.set_attribute("target_spec", AttrValue::Text(args.target.clone()))?;
    if let Some(e) = error {
        output.set_attribute("map_error_l2_bulk", AttrValue::Number(e.l2))?;
        output.set_attribute("map_error_max_bulk", AttrValue::Number(e.max))?;
    }
    let written = output.write(&args.out)?;
    summary.insert("output".into(), written.hdf5.display().to_string().into());
    if args.json {
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(summary))
            .map_err(|e| Error::invalid(format!("JSON summary: {e}")))?;
        println!("{text}");
    } else {
        for (k, v) in &summary {
            match v {
                serde_json::Value::String(s) => println!("{k:<20} {s}"),
                serde_json::Value::Number(n) => match n.as_f64() {
                    Some(x) if !n.is_u64() => println!("{k:<20} {x:.8e}"),
                    _ => println!("{k:<20} {n}"),
                },
                other => println!("{k:<20} {other}"),
            }
        }
        if !solution.solved() {
            println!("warning: not converged ({})", solution.stop_reason);
        }
    }
    Ok(())
}

/// The parabolic solver as the flags say, recording the map error when the map is known.
fn parabolic(args: &OtArgs, exact: Option<Exact>) -> Result<Parabolic> {
    let stepping = if args.explicit { Stepping::Explicit } else { Stepping::LinearlyImplicit };
    let schedule = match (&args.schedule, stepping) {
        (Some(spec), _) => Schedule::parse(spec)?,
        (None, Stepping::Explicit) => Schedule::Cfl(0.9),
        (None, Stepping::LinearlyImplicit) => Parabolic::default().schedule,
    };
    let exact_map = exact.map(|e| {
        let map: ExactMap = Arc::new(move |x: &[f64], y: &mut [f64]| e.map(x, y));
        map
    });
    Ok(Parabolic { schedule, stepping, initial: None, exact_map })
}

/// The closed-form solution when both densities are Gaussians or both are the same `case:`.
fn exact_solution(source: &DensitySpec, target: &DensitySpec) -> Result<Option<Exact>> {
    Ok(match (source, target) {
        (DensitySpec::Gaussian(s), DensitySpec::Gaussian(t)) => {
            Some(Exact::Gaussian(GaussianMap::new(s.clone(), t.clone())?))
        }
        (DensitySpec::Case(s), DensitySpec::Case(t)) if s == t => s.exact(),
        _ => None,
    })
}
