//! `otgrid ot`: the Brenier map between two densities on a grid.

use super::{GridArgs, Report};
use otgrid::analytic::gaussian::GaussianMap;
use otgrid::error::{Error, Result};
use otgrid::io::{check_output_path, AttrValue, Field, Inputs, Output};
use otgrid::ot::density::SampleDeposit;
use otgrid::ot::method::Settings;
use otgrid::ot::parabolic::{with_background, Batches, FlowState, SampleStream};
use otgrid::ot::Exact;
use otgrid::ot::GaussianLift;
use otgrid::ot::IterationRecord;
use otgrid::ot::{
    map_error, potential_map_error, DensitySpec, Method, Observer, Options, Problem, Progress, Step,
};
use otgrid::resources::MemoryEstimate;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(clap::Args, Debug)]
pub struct OtArgs {
    /// Source density μ: gaussian:MEAN:COV, uniform, case:NAME, FILE.h5:/DATASET, FILE.npy, FILE.png, samples:POINTS[:cic|:kde|:kde=B] (a KDE of samples) or an expression in x,y,z.
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
    /// Sinkhorn: entropic regularisation ε of the cost |x−y|²/2 (default 1e-3 L², L the
    /// domain's longest side: 1e-3 on the unit box).
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
    /// A method setting NAME=VALUE (repeatable; a name the method does not take is refused
    /// with the method's settings listed). The flags --metric, --push-forward, --epsilon,
    /// --schedule and --explicit are the settings of the same names, --tol and
    /// --max-iterations the settings tolerance and max-iterations (every method's).
    #[arg(long, value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Stopping tolerance of the method's own measure: bfm — H⁻¹ marginal error (default
    /// 1.5e-3 from 256 cells per axis, scaled by 256/cells below); newton, parabolic — max Monge–Ampère residual (default 1e-8, 1e-6); sinkhorn — L1 marginal error of the plan (default 1e-5).
    #[arg(long)]
    pub tol: Option<f64>,
    /// Give up after this many iterations (all levels together). Default: the method's
    /// budget (bfm, newton, parabolic 500; sinkhorn 2000, counting every grid and ε).
    #[arg(long)]
    pub max_iterations: Option<usize>,
    /// Give up after this many seconds of solving (outcome time_limit).
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<f64>,
    /// Parabolic flow: write its state every N iterations to NAME.checkpoint.h5 (atomically,
    /// next to the output); removed when the run completes.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Parabolic flow: continue from a checkpoint written by --checkpoint-every for the same
    /// densities, grid and settings; the result equals the uninterrupted run's.
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// Parabolic flow with a target known through samples (`--target samples:FILE[:kde=B]`):
    /// each step uses a fresh batch of this many samples, drawn with replacement and
    /// deposited by KDE (bandwidth B, or Scott's rule per batch). Defaults then: schedule
    /// sqrt:0.01 L² (L the longest side), 200 steps (the run takes them all: outcome
    /// completed).
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// KDE bandwidth of `samples:` densities given without one (instead of Scott's rule; a
    /// `samples:FILE:kde=B` keeps its own B).
    #[arg(long, value_name = "B")]
    pub bandwidth: Option<f64>,
    /// With --batch: the target's density when it is known (any density spec): the
    /// diagnostics (KL, residual) then refer to it instead of the deposit of all samples,
    /// and with a Gaussian source and target the map error per step is recorded
    /// (`map_error_l2`).
    #[arg(long, value_name = "SPEC", requires = "batch", allow_hyphen_values = true)]
    pub true_target: Option<String>,
    /// Seed of the batches (with --batch; default 0).
    #[arg(long, value_name = "S", requires = "batch")]
    pub batch_seed: Option<u64>,
    /// Write the average iterate of the sample-based flow instead of the last (with --batch).
    #[arg(long, requires = "batch")]
    pub average: bool,
    /// Output HDF5 file; the XDMF sidecar goes next to it.
    #[arg(short, long, default_value = "ot.h5")]
    pub out: PathBuf,
    /// Print the summary as one JSON object on stdout, on success and on failure (with
    /// "status": "error" and the error), numbers at full precision.
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

/// The sample-based flow's schedule unless `--schedule` says otherwise: `sqrt:η₀`,
/// `η₀ = BATCH_STEP L²` (L the longest side), below the cap discrete convexity puts on steps
/// with noisy targets (`otgrid study batches`: on the unit square, 1000 samples per step and
/// a 2-cell bandwidth, steps from η₀ = 1 halve to 0.004–0.03; `sqrt:0.01` ends with the
/// smallest last-iterate error of constant, 1/√k and 1/k after 200 steps).
const BATCH_STEP: f64 = 0.01;
/// Steps of the sample-based flow unless `--max-iterations` says otherwise.
const BATCH_STEPS: usize = 200;

/// The sample-based flow's batches: from the target's sample file, by its KDE bandwidth.
fn batches(args: &OtArgs, size: usize, target: &DensitySpec, base: &Path) -> Result<Batches> {
    let DensitySpec::Samples { file, deposit } = target else {
        return Err(Error::invalid("--batch needs the target as samples: --target samples:FILE"));
    };
    let bandwidth = match deposit {
        SampleDeposit::Kde(b) => *b,
        SampleDeposit::CloudInCell => {
            return Err(Error::invalid(
                "--batch deposits batches by KDE: use samples:FILE or samples:FILE:kde=B",
            ))
        }
    };
    let points = otgrid::io::points::read_points(&base.join(file))
        .map_err(|e| Error::invalid(format!("target: {e}")))?;
    let mut batches = Batches::new(SampleStream::Points(Arc::new(points)), size);
    batches.bandwidth = bandwidth;
    batches.seed = args.batch_seed.unwrap_or(0);
    batches.average = args.average;
    Ok(batches)
}

/// `--bandwidth B`: the KDE bandwidth of those `samples:` densities given without one.
pub(super) fn apply_bandwidth(b: f64, specs: &mut [DensitySpec]) -> Result<()> {
    let positive = b.is_finite() && b > 0.0;
    if !positive {
        return Err(Error::invalid(format!("--bandwidth must be positive, got {b}")));
    }
    let mut applied = false;
    for spec in specs {
        if let DensitySpec::Samples { deposit: SampleDeposit::Kde(bandwidth @ None), .. } = spec {
            *bandwidth = Some(b);
            applied = true;
        }
    }
    if !applied {
        return Err(Error::invalid(
            "--bandwidth applies to samples:FILE densities deposited by KDE without a bandwidth of their own",
        ));
    }
    Ok(())
}

/// The method settings the flags give: each method flag is one setting, plus `--set`.
pub(super) fn settings(args: &OtArgs) -> Result<Settings> {
    let mut settings = Settings::default();
    let flags = [
        ("metric", args.metric.clone()),
        ("push-forward", args.push_forward.clone()),
        ("epsilon", args.epsilon.map(|e| e.to_string())),
        ("schedule", args.schedule.clone()),
        ("explicit", args.explicit.then(|| "true".to_string())),
        ("tolerance", args.tol.map(|t| t.to_string())),
        ("max-iterations", args.max_iterations.map(|k| k.to_string())),
    ];
    for (name, value) in flags {
        if let Some(v) = value {
            settings.set(name, &v);
        }
    }
    for pair in &args.set {
        settings.set_pair(pair)?;
    }
    Ok(settings)
}

/// Refuses a method flag the method does not take, naming the method that does (a flag's
/// setting has the flag's name).
pub(super) fn check_flags(method: Method, settings: &Settings, args: &OtArgs) -> Result<()> {
    let from_set = |name: &str| args.set.iter().any(|p| p.split('=').next() == Some(name));
    for name in settings.names() {
        if !method.takes(name) && !from_set(name) {
            let takers: Vec<_> = Method::taking(name).iter().map(|m| m.name()).collect();
            return Err(Error::invalid(format!(
                "--{name} applies to --method {}",
                takers.join(" or ")
            )));
        }
    }
    Ok(())
}

pub fn run(args: &OtArgs, report: &mut Report) -> Result<()> {
    let requested =
        if args.method == "auto" { None } else { Some(Method::from_name(&args.method)?) };
    let grid = args.grid.resolve("unit_square_256")?;
    report.put("grid", &grid);
    // Peak memory in fields, calibrated in otgrid::resources (Newton's sparse LU fill grows
    // like N log N in 2D).
    MemoryEstimate::ot(&grid, requested, &format!("ot --method {}", args.method))
        .check(report.memory_limit)?;
    report.put("source_spec", &args.source);
    report.put("target_spec", &args.target);
    if args.repeat == 0 {
        return Err(Error::invalid("--repeat must be at least 1"));
    }
    let base = Path::new(".");
    let mut source_spec = DensitySpec::parse(&args.source, "source")?;
    let mut target_spec = DensitySpec::parse(&args.target, "target")?;
    if let Some(b) = args.bandwidth {
        let mut specs = [source_spec, target_spec];
        apply_bandwidth(b, &mut specs)?;
        [source_spec, target_spec] = specs;
    }
    let true_target = args
        .true_target
        .as_deref()
        .map(|spec| DensitySpec::parse(spec, "true target"))
        .transpose()?;
    let inputs: Vec<(String, PathBuf)> = [("source", &source_spec), ("target", &target_spec)]
        .into_iter()
        .chain(true_target.as_ref().map(|spec| ("true target", spec)))
        .filter_map(|(what, spec)| spec.input_file(base).map(|p| (what.to_string(), p)))
        .collect();
    check_output_path(&args.out, &inputs)?;
    let reading = Inputs { base: base.to_path_buf(), resample: args.resample };
    let mu = source_spec.sample(&grid, "source", &reading)?;
    let mut nu = target_spec.sample(&grid, "target", &reading)?;
    if args.batch.is_some() {
        nu = match &true_target {
            Some(spec) => spec.sample(&grid, "true target", &reading)?,
            // The reference target of a sample-based run: the deposit of all samples with
            // the batches' background (positive where no sample falls).
            None => with_background(&nu, GaussianLift::default())?,
        };
    }
    let problem = Problem::new(&mu, &nu)?;
    let method = match requested {
        Some(m) => {
            // The sample-based flow checks its own (weaker) conditions.
            if args.batch.is_none() || m != Method::PARABOLIC {
                m.check(&problem)?;
            }
            m
        }
        None => {
            let (m, why) = Method::auto(&problem);
            if !report.json {
                eprintln!("method auto → {why}");
            }
            report.put("method_choice", why);
            m
        }
    };
    report.put("method", method.name());
    // The tolerance and budget solved for, recorded with the other parameters: the ones
    // given, else the method's defaults on this grid.
    let mut settings = settings(args)?;
    check_flags(method, &settings, args)?;
    if args.batch.is_some() {
        if method != Method::PARABOLIC {
            return Err(Error::invalid("--batch applies to --method parabolic"));
        }
        if settings.get("schedule").is_none() {
            let longest = (0..grid.dim()).map(|a| grid.axis(a).length()).fold(0.0, f64::max);
            settings.set("schedule", &format!("sqrt:{}", BATCH_STEP * longest * longest));
        }
        if settings.get("max-iterations").is_none() {
            settings.set("max-iterations", &BATCH_STEPS.to_string());
        }
    }
    let (tolerance, budget) = settings.stopping()?;
    let tolerance = tolerance.unwrap_or(method.default_tolerance(&grid));
    let budget = budget.unwrap_or(method.info().max_iterations);
    settings.set("tolerance", &tolerance.to_string());
    settings.set("max-iterations", &budget.to_string());
    let mut options = Options { time_limit: args.time_limit, observer: None };
    let (mut bar_update, bar) = if report.json {
        (None, None)
    } else {
        let (update, b) = super::progress::ot_progress(method.name(), budget);
        (Some(update), Some(b))
    };
    let (ms, mt) = problem.masses();
    for (what, m) in [("source", ms), ("target", mt)] {
        if (m - 1.0).abs() > 1e-2 {
            tracing::warn!("{what} density had mass {m:.6e}; normalised to 1");
        } else {
            tracing::info!("{what} density had mass {m:.6e}; normalised to 1");
        }
    }
    let exact = exact_solution(&source_spec, true_target.as_ref().unwrap_or(&target_spec))?;
    let mut solver = method.configure(&settings)?;
    // The flow's map error against the closed form, per iteration (`map_error_l2`), by an
    // observer on the potentials; with the progress bar's update when there is one.
    let tracked = match (solver.as_flow_mut().is_some(), exact.clone()) {
        (true, Some(e)) => Some((e, problem.clone())),
        _ => None,
    };
    let map_errors: Arc<Mutex<Vec<f64>>> = Arc::default();
    if bar_update.is_some() || tracked.is_some() {
        let recorded = Arc::clone(&map_errors);
        let track = tracked.clone();
        options.observer = Some(Observer::new(move |p: &Progress| {
            if let Some((e, problem)) = &track {
                if p.grid == problem.grid() {
                    let error = potential_map_error(problem, &p.potential(), |x, y| e.map(x, y));
                    recorded.lock().unwrap_or_else(PoisonError::into_inner).push(error);
                }
            }
            if let Some(update) = &mut bar_update {
                update(p);
            }
            ControlFlow::Continue(())
        }));
    }
    if (args.checkpoint_every.is_some() || args.resume.is_some()) && solver.as_flow_mut().is_none()
    {
        return Err(Error::invalid(
            "--checkpoint-every and --resume apply to --method parabolic (the other methods finish in seconds to minutes)",
        ));
    }
    if args.checkpoint_every == Some(0) {
        return Err(Error::invalid("--checkpoint-every must be at least 1"));
    }
    let checkpoint_file = args.checkpoint_every.map(|_| super::checkpoint_path(&args.out));
    if let Some(path) = &checkpoint_file {
        check_output_path(path, &inputs)?;
    }
    if let Some(flow) = solver.as_flow_mut() {
        flow.checkpoint_every = args.checkpoint_every;
        if let Some(size) = args.batch {
            flow.batches = Some(batches(args, size, &target_spec, base)?);
        }
    }
    let parameters = serde_json::json!({
        "method": method.name(),
        "solver": solver.parameters(),
        "options": &options,
        "stopping_measure": method.stopping_measure(),
        "source": &args.source,
        "target": &args.target,
        "resample": args.resample,
        "grid": &grid,
    });
    report.put("parameters", &parameters);
    // Map errors recorded before the resumed iteration (from the checkpoint).
    let mut earlier_map_errors = Vec::new();
    if let Some(p) = solver.as_flow_mut() {
        if let Some(path) = &args.resume {
            let (state, map_errors) = read_flow_state(path, &parameters)?;
            report.put("resumed_at_iteration", state.iteration);
            p.resume = Some(state);
            earlier_map_errors = map_errors;
        }
        if let Some(path) = checkpoint_file.clone() {
            let params = parameters.clone();
            let recorded = Arc::clone(&map_errors);
            p.checkpoint = Some(Arc::new(move |state: &FlowState| {
                let map_errors = recorded.lock().unwrap_or_else(PoisonError::into_inner).clone();
                write_flow_state(state, &map_errors, &path, &params)
            }));
        }
    }
    let mut runs = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        earlier_map_errors
            .clone_into(&mut map_errors.lock().unwrap_or_else(PoisonError::into_inner));
        let mut solution = solver.solve(&problem, &options)?;
        if tracked.is_some() {
            let recorded = map_errors.lock().unwrap_or_else(PoisonError::into_inner).clone();
            solution.diagnostics.push(("map_error_l2".to_string(), recorded));
        }
        runs.push(solution);
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let solution = runs.swap_remove(runs.len() / 2);
    let error = exact.as_ref().map(|e| map_error(&solution, &problem, |x, y| e.map(x, y)));
    report.put("outcome", solution.outcome.name());
    report.put("converged", solution.converged());
    if let Some(floor) = solution.outcome.floor() {
        report.put("discretisation_floor", floor);
    }
    report.put("stop_reason", &solution.stop_reason);
    report.put("iterations", solution.iterations);
    report.put("w2_squared", solution.w2_squared());
    report.put("stopping_measure", method.stopping_measure());
    report.put("tolerance", tolerance);
    report.put("marginal_error", solution.marginal_error);
    report.put("seconds", solution.seconds);
    report.put("source_mass", ms);
    report.put("target_mass", mt);
    for (k, v) in &solution.scalars {
        report.put(k, v);
    }
    if let (Some(e), Some(exact)) = (error, &exact) {
        report.put("exact_w2_squared", exact.w2_squared());
        report.put("map_error_l2_bulk", e.l2);
        report.put("map_error_max_bulk", e.max);
    }
    if !solution.solved() && !args.keep_unconverged {
        return Err(Error::NotConverged {
            method: solution.method.to_string(),
            iterations: solution.iterations,
            residual: solution.marginal_error,
            reason: format!(
                "{} ({}); nothing written (--keep-unconverged writes it anyway)",
                solution.stop_reason,
                solution.outcome.name()
            ),
        });
    }
    let mut output = solution.to_output(&problem)?;
    output.set_attribute("source_spec", AttrValue::Text(args.source.clone()))?;
    output.set_attribute("target_spec", AttrValue::Text(args.target.clone()))?;
    output.set_attribute("parameters", AttrValue::Text(parameters.to_string()))?;
    if let Some(e) = error {
        output.set_attribute("map_error_l2_bulk", AttrValue::Number(e.l2))?;
        output.set_attribute("map_error_max_bulk", AttrValue::Number(e.max))?;
    }
    let written = output.write(&args.out)?;
    report.put("output", written.hdf5.display().to_string());
    super::remove_checkpoint(checkpoint_file.as_deref(), report)?;
    if !report.json {
        report.print_text(&["parameters", "source_spec", "target_spec", "method_choice"]);
        if !solution.solved() {
            println!("warning: not converged ({})", solution.stop_reason);
        }
    }
    Ok(())
}

/// The parameters a checkpoint must share with the run resuming it.
fn resumable(parameters: &serde_json::Value) -> serde_json::Value {
    let mut p = parameters.clone();
    if let Some(map) = p.as_object_mut() {
        map.remove("checkpoint_every");
        if let Some(solver) = map.get_mut("solver").and_then(|s| s.as_object_mut()) {
            solver.remove("checkpoint_every");
            solver.remove("max_iterations");
        }
        if let Some(options) = map.get_mut("options").and_then(|s| s.as_object_mut()) {
            options.remove("time_limit");
        }
    }
    p
}

const HISTORY: [&str; 4] = ["marginal_error", "l1_marginal_error", "dual_value", "step"];

/// Writes the flow's state as an otgrid file (atomically).
fn write_flow_state(
    state: &FlowState,
    map_errors: &[f64],
    path: &Path,
    parameters: &serde_json::Value,
) -> Result<()> {
    let mut out = Output::new(state.u.grid().clone());
    out.add_field("potential", state.u.clone())?;
    let h = &state.history;
    let columns: [Vec<f64>; 4] = [
        h.iter().map(|r| r.marginal_error).collect(),
        h.iter().map(|r| r.l1_marginal_error).collect(),
        h.iter().map(|r| r.dual_value).collect(),
        h.iter().map(|r| r.step.value()).collect(),
    ];
    for (name, column) in HISTORY.iter().zip(columns) {
        out.add_diagnostic(&format!("history_{name}"), column)?;
    }
    out.add_diagnostic("kl_divergence", state.kl.clone())?;
    out.add_diagnostic("cumulative_regret", state.regret_history.clone())?;
    out.add_diagnostic("map_error_l2", map_errors.to_vec())?;
    out.set_attribute("checkpoint", AttrValue::Text("parabolic-ma".into()))?;
    out.set_attribute("iteration", AttrValue::Integer(state.iteration as i64))?;
    out.set_attribute("regret", AttrValue::Number(state.regret))?;
    out.set_attribute("parameters", AttrValue::Text(parameters.to_string()))?;
    out.write(path)?;
    tracing::info!("checkpoint at iteration {} in {}", state.iteration, path.display());
    Ok(())
}

/// Reads a flow state written by [`write_flow_state`] for the same parameters.
/// A checkpoint's flow state and the map errors recorded so far (empty without a closed form).
fn read_flow_state(path: &Path, parameters: &serde_json::Value) -> Result<(FlowState, Vec<f64>)> {
    let cp = Output::read(path)?;
    let attr = |k: &str| cp.attributes().get(k).cloned();
    if !matches!(attr("checkpoint"), Some(AttrValue::Text(t)) if t == "parabolic-ma") {
        return Err(Error::invalid(format!(
            "{}: not a checkpoint of the parabolic flow",
            path.display()
        )));
    }
    let stored: serde_json::Value = match attr("parameters") {
        Some(AttrValue::Text(t)) => serde_json::from_str(&t).unwrap_or_default(),
        _ => serde_json::Value::Null,
    };
    if resumable(&stored) != resumable(parameters) {
        return Err(Error::invalid(format!(
            "{}: written for other densities, grid or settings; resume with the same ones",
            path.display()
        )));
    }
    let column = |name: &str| cp.diagnostics().get(name).cloned().unwrap_or_default();
    let [m, l1, dual, step] = HISTORY.map(|n| column(&format!("history_{n}")));
    let history = (0..m.len())
        .map(|i| IterationRecord {
            marginal_error: m[i],
            l1_marginal_error: l1.get(i).copied().unwrap_or(f64::NAN),
            dual_value: dual.get(i).copied().unwrap_or(f64::NAN),
            step: step.get(i).filter(|v| **v > 0.0).map_or(Step::None, |&v| Step::Time(v)),
        })
        .collect();
    let (Some(AttrValue::Integer(iteration)), Some(AttrValue::Number(regret))) =
        (attr("iteration"), attr("regret"))
    else {
        return Err(Error::invalid(format!("{}: incomplete checkpoint", path.display())));
    };
    let Some(Field::Scalar(u)) = cp.fields().get("potential").cloned() else {
        return Err(Error::invalid(format!(
            "{}: checkpoint without /fields/potential",
            path.display()
        )));
    };
    let state = FlowState {
        iteration: iteration as usize,
        u,
        regret,
        history,
        kl: column("kl_divergence"),
        regret_history: column("cumulative_regret"),
    };
    Ok((state, column("map_error_l2")))
}

/// The closed-form solution when both densities are Gaussians or both are the same `case:`.
pub(super) fn exact_solution(source: &DensitySpec, target: &DensitySpec) -> Result<Option<Exact>> {
    Ok(match (source, target) {
        (DensitySpec::Gaussian(s), DensitySpec::Gaussian(t)) => {
            Some(Exact::Gaussian(GaussianMap::new(s.clone(), t.clone())?))
        }
        (DensitySpec::Case(s), DensitySpec::Case(t)) if s == t => s.exact(),
        _ => None,
    })
}
