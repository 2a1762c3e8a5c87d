//! `otgrid flow`: Wasserstein gradient flows by JKO steps.

use super::progress::TimeProgress;
use super::{GridArgs, Report};
use otgrid::error::{Error, Result};
use otgrid::io::config::{read_problem, FlowProblemFile};
use otgrid::io::{check_output_path, AttrValue, Field, Inputs, Output};
use otgrid::ot::flow::{
    w2_distance, Energy, FlowRecord, GradientFlow, JkoParams, Target, Term, TimeScheme,
};
use otgrid::ot::DensitySpec;
use otgrid::resources::MemoryEstimate;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct FlowArgs {
    /// A flow problem file (TOML: grid, initial, energy, [time] tau and steps or t_end,
    /// [solver], [output]; docs/problem-files.md) instead of the problem flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["initial", "energy", "tau", "steps", "t_end", "scheme", "tol", "max_iterations", "mesh", "grid"])]
    pub problem: Option<PathBuf>,
    /// Initial density ρ₀: gaussian:MEAN:COV, uniform, case:NAME, FILE.h5:/DATASET,
    /// FILE.npy, FILE.png or an expression in x,y,z (its mass is kept).
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub initial: Option<String>,
    #[command(flatten)]
    pub grid: GridArgs,
    /// Map a density stored on another grid onto this run's grid by conservative
    /// resampling, instead of refusing it.
    #[arg(long)]
    pub resample: bool,
    /// An energy term (repeatable; the energy is their sum): entropy:D (D∫ρ log ρ, the
    /// heat flow; with a potential, Fokker–Planck), porous:M[,GAMMA] (γ∫ρᵐ/(m−1), the
    /// porous-medium equation ∂ₜρ = γΔρᵐ; γ default 1), potential:EXPR (∫Vρ, V an
    /// expression in x,y,z, or a dataset FILE.h5:/DATASET or FILE.npy), kl:SPEC (KL(ρ‖ν),
    /// ν a density as for --initial, positive everywhere), an f-divergence to ν: chi2:SPEC, hellinger:SPEC, reverse-kl:SPEC,
    /// js:SPEC, or a non-local term: interaction:KERNEL (½∫∫W(x−y)ρρ) or mmd:KERNEL:SPEC
    /// (the squared MMD to ν), KERNEL one of gaussian(σ), laplace(σ), distance (−|d|),
    /// imq(c) or an expression in the displacement x,y,z. At most one internal term
    /// (entropy, porous, kl or a divergence); without one each step moves mass along −τ∇V.
    #[arg(long = "energy", value_name = "TERM", allow_hyphen_values = true)]
    pub energy: Vec<String>,
    /// The JKO time step τ.
    #[arg(long)]
    pub tau: Option<f64>,
    /// Number of JKO steps (default: --t-end / τ).
    #[arg(long, conflicts_with = "t_end")]
    pub steps: Option<usize>,
    /// End time (rounded to a whole number of steps).
    #[arg(long)]
    pub t_end: Option<f64>,
    /// Time scheme: jko (one JKO step of τ per step, first order; default) or bdf2 (the
    /// second-order BDF2 scheme: each step extrapolates along the last displacement and
    /// takes a JKO step of 2τ/3; docs/flows.md).
    #[arg(long, value_name = "SCHEME")]
    pub scheme: Option<TimeScheme>,
    /// Densities kept in the time series (evenly spaced; the last step always; default 10,
    /// or the problem file's [output] snapshots).
    #[arg(long)]
    pub snapshots: Option<usize>,
    /// Stopping tolerance of each step's dual ascent: both H⁻¹ marginal errors (default
    /// 1e-3 τ; a step also stops at its grid's floor).
    #[arg(long)]
    pub tol: Option<f64>,
    /// Back-and-forth iterations per step (default 200).
    #[arg(long)]
    pub max_iterations: Option<usize>,
    /// Output HDF5 file; the XDMF sidecar goes next to it (default flow.h5, or the problem
    /// file's [output] file, or its name with .h5).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// W₂(ρ, ν) at every snapshot by otgrid's own OT (bfm, default settings), ν the density
    /// of the energy's kl, divergence or mmd term: diagnostics `snapshot_time`, `w2_target`.
    #[arg(long)]
    pub w2_target: bool,
    /// Also write with each snapshot its step's displacement, the vector field
    /// `displacement` in /steps: mass at x moved by it in the step (x − T(x), T the step's
    /// map back onto the previous density; zero at t = 0, NaN for an entropic step).
    #[arg(long, conflicts_with = "tau_sweep")]
    pub displacements: bool,
    /// The τ study: comma-separated τ values, each running the flow to the same end time T
    /// (--t-end, or the problem file's [time]) in T/τ steps; reports per τ the final energy,
    /// W₂ to the energy's target density (if it has one), seconds and iterations per step, and
    /// writes STEM_tau_sweep.csv and STEM_tau_sweep.png beside --out (no HDF5).
    #[arg(long, value_name = "TAU,TAU,...", value_delimiter = ',', conflicts_with_all = ["tau", "steps"])]
    pub tau_sweep: Vec<f64>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Peak memory of a flow in fields of its grid: the step's potentials, densities, residuals,
/// metric and CG vectors, the deposit and the Poisson solvers' scratch (about 40), plus the
/// snapshots kept (and their displacements).
fn memory_fields(snapshots: usize, displacements: bool, terms: &[String], dim: usize) -> f64 {
    // A non-local term keeps its kernel's transform (2^d fields: the padded array) and each
    // convolution uses two padded complex buffers (2 · 2 · 2^d fields).
    let nonlocal = terms
        .iter()
        .filter(|t| {
            t.trim_start().starts_with("interaction:") || t.trim_start().starts_with("mmd:")
        })
        .count();
    let padded = (1usize << dim) as f64;
    let per_snapshot = if displacements { 1.0 + dim as f64 } else { 1.0 };
    40.0 + snapshots as f64 * per_snapshot + nonlocal as f64 * 5.0 * padded
}

/// What a run is made of, from the flags or from a problem file.
struct Setup {
    grid: otgrid::grid::Grid,
    flow: GradientFlow,
    rho0: otgrid::field::ScalarField,
    initial: String,
    energy: Vec<String>,
    snapshots: usize,
    out: PathBuf,
    /// The density ν the energy compares with (kl, divergences, mmd) and that term alone.
    target: Option<Target>,
    /// The end time asked for (the τ study's horizon).
    t_end: f64,
}

/// The run from `--problem FILE`.
fn from_problem(path: &Path, args: &FlowArgs, report: &mut Report) -> Result<Setup> {
    let file: FlowProblemFile = read_problem(path)?;
    let base = super::pde::base_dir(path);
    let grid = file.grid.grid(&base)?;
    report.put("grid", &grid);
    report.put("problem_file", path.display().to_string());
    let output = file.output.clone().unwrap_or_default();
    let out = args.out.clone().or(output.file).unwrap_or_else(|| {
        let stem = path.file_stem().map_or("flow".into(), |s| s.to_string_lossy().to_string());
        PathBuf::from(format!("{stem}.h5"))
    });
    let snapshots = args.snapshots.or(output.snapshots).unwrap_or(10);
    let steps = file.time.step_count()?;
    let fields = memory_fields(snapshots.min(steps), args.displacements, &file.energy, grid.dim());
    MemoryEstimate::fields(&grid, fields, 0, "flow").check(report.memory_limit)?;
    let terms: Vec<Term> = file.energy.iter().map(|t| t.parse()).collect::<Result<_>>()?;
    let mut inputs = otgrid::io::config::input_files(path);
    inputs.extend(energy_inputs(&terms, &base));
    otgrid::io::check_output_path(&out, &inputs)?;
    let reading = Inputs { base, resample: args.resample };
    let (flow, rho0, target) = file.flow(&grid, &reading)?;
    Ok(Setup {
        grid,
        flow,
        rho0,
        initial: file.initial,
        energy: file.energy,
        snapshots,
        out,
        target,
        t_end: file.time.t_end.unwrap_or(steps as f64 * file.time.tau),
    })
}

/// The files the energy's terms read (dataset potentials and target densities), named for
/// the output-path check.
fn energy_inputs(terms: &[Term], base: &Path) -> Vec<(String, PathBuf)> {
    terms
        .iter()
        .filter_map(|t| t.input_file(base))
        .map(|p| ("energy term".to_string(), p))
        .collect()
}

/// The run from the problem flags.
fn from_flags(args: &FlowArgs, report: &mut Report) -> Result<Setup> {
    let grid = args.grid.resolve("unit_square_256")?;
    report.put("grid", &grid);
    let (Some(initial), Some(tau)) = (&args.initial, args.tau.or(args.tau_sweep.first().copied()))
    else {
        return Err(Error::invalid("give --initial, --energy and --tau, or --problem FILE"));
    };
    if args.energy.is_empty() {
        return Err(Error::invalid("give at least one --energy term"));
    }
    let steps = otgrid::ot::flow::step_count(tau, args.steps, args.t_end)
        .map_err(|e| Error::invalid(format!("{e} (--steps or --t-end)")))?;
    let snapshots = args.snapshots.unwrap_or(10);
    let fields = memory_fields(snapshots.min(steps), args.displacements, &args.energy, grid.dim());
    MemoryEstimate::fields(&grid, fields, 0, "flow").check(report.memory_limit)?;
    let base = Path::new(".");
    let initial_spec = DensitySpec::parse(initial, "initial")?;
    let terms: Vec<Term> = args.energy.iter().map(|t| t.parse()).collect::<Result<_>>()?;
    let mut inputs: Vec<(String, PathBuf)> =
        initial_spec.input_file(base).map(|p| vec![("initial".to_string(), p)]).unwrap_or_default();
    inputs.extend(energy_inputs(&terms, base));
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("flow.h5"));
    check_output_path(&out, &inputs)?;
    let reading = Inputs { base: base.to_path_buf(), resample: args.resample };
    let (energy, target) = Energy::with_target(&terms, &grid, &reading)?;
    let rho0 = initial_spec.sample(&grid, "initial", &reading)?;
    let defaults = JkoParams::default();
    let flow = GradientFlow {
        energy,
        jko: JkoParams {
            tau,
            tolerance: args.tol,
            max_iterations: args.max_iterations.unwrap_or(defaults.max_iterations),
            ..defaults
        },
        steps,
        scheme: args.scheme.unwrap_or_default(),
    };
    Ok(Setup {
        grid,
        flow,
        rho0,
        initial: initial.clone(),
        energy: args.energy.clone(),
        snapshots,
        out,
        target,
        t_end: args.t_end.unwrap_or(steps as f64 * tau),
    })
}

pub fn run(args: &FlowArgs, report: &mut Report) -> Result<()> {
    let setup = match &args.problem {
        Some(path) => from_problem(path, args, report)?,
        None => from_flags(args, report)?,
    };
    if !args.tau_sweep.is_empty() {
        return tau_sweep(&setup, &args.tau_sweep, report);
    }
    let Setup { grid, flow, rho0, initial, energy: energy_terms, snapshots, out, target, .. } =
        setup;
    let steps = flow.steps;
    let tau = flow.jko.tau;
    let parameters = serde_json::json!({
        "initial": &initial,
        "energy": &energy_terms,
        "internal": &flow.energy.internal,
        "nonlocal": flow.energy.nonlocal.iter().map(|n| n.describe()).collect::<Vec<_>>(),
        "jko": &flow.jko,
        "scheme": flow.scheme,
        "steps": steps,
        "snapshots": snapshots,
        "grid": &grid,
    });
    report.put("parameters", &parameters);
    let t_end = steps as f64 * tau;
    let mut progress = TimeProgress::new(0.0, t_end, "flow");
    let started = std::time::Instant::now();
    let observe = |r: &FlowRecord| {
        progress.at(r.time);
        std::ops::ControlFlow::Continue(())
    };
    let run = if args.displacements {
        flow.run_with_displacements(&rho0, snapshots, observe)?
    } else {
        flow.run(&rho0, snapshots, observe)?
    };
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let w2_target: Option<Vec<f64>> = match (&target, args.w2_target) {
        (Some(nu), true) => {
            let nu = &nu.density;
            Some(run.snapshots.iter().map(|(_, rho)| w2_distance(rho, nu)).collect::<Result<_>>()?)
        }
        (None, true) => {
            return Err(Error::invalid(
                "--w2-target needs an energy with a target density (kl, a divergence or mmd)",
            ))
        }
        _ => None,
    };
    if let Some(w) = &w2_target {
        report.put("w2_target", serde_json::json!({"first": w[0], "last": w[w.len() - 1]}));
    }
    // The divergence to ν of each snapshot's unit-mass density.
    let snapshot_divergence: Option<Vec<f64>> = target
        .as_ref()
        .map(|t| &t.divergence)
        .map(|e| run.snapshots.iter().map(|(_, rho)| e.value(&rho.to_density()?.0)).collect())
        .transpose()?;
    if let Some(d) = &snapshot_divergence {
        report.put("divergence", serde_json::json!({"first": d[0], "last": d[d.len() - 1]}));
    }
    let records = &run.records;
    let column = |f: fn(&FlowRecord) -> f64| records.iter().map(f).collect::<Vec<f64>>();
    let m0 = rho0.integral();
    let drift = records.iter().map(|r| ((r.mass - m0) / m0).abs()).fold(0.0, f64::max);
    let min_density = records.iter().map(|r| r.min_density).fold(f64::INFINITY, f64::min);
    let count = |name: &str| records.iter().filter(|r| r.outcome == name).count();
    let (converged, at_floor) = (count("converged"), count("discretisation_floor"));
    let (limited, stalled) = (count("iteration_limit"), count("stalled"));
    let (entropic, refined) = (count("entropic"), count("refined"));
    let energy0 = flow.energy.value(&rho0)?;
    let energy1 = records.last().map_or(energy0, |r| r.energy);
    let iterations: usize = records.iter().map(|r| r.iterations).sum();
    let cg_iterations: usize = records.iter().map(|r| r.cg_iterations).sum();
    let bdf2_steps = records.iter().filter(|r| r.scheme == TimeScheme::Bdf2.name()).count();
    report.put("steps", records.len());
    report.put("scheme", flow.scheme);
    report.put("bdf2_steps", bdf2_steps);
    report.put("t_end", t_end);
    report.put("seconds", seconds);
    report.put("seconds_per_step", seconds / records.len().max(1) as f64);
    report.put("iterations", iterations);
    report.put("cg_iterations", cg_iterations);
    report
        .put("fixed_point_solves", records.iter().map(|r| r.fixed_point_iterations).sum::<usize>());
    report.put("energy", serde_json::json!({"first": energy0, "last": energy1}));
    report.put("mass", m0);
    report.put("relative_mass_drift", drift);
    report.put("min_density", min_density);
    report.put(
        "step_outcomes",
        serde_json::json!({
            "converged": converged,
            "discretisation_floor": at_floor,
            "iteration_limit": limited,
            "stalled": stalled,
            "entropic": entropic,
            "refined": refined,
        }),
    );
    if !report.json {
        println!("flow         {} on {grid}, τ = {tau}", energy_terms.join(" + "));
        if flow.scheme == TimeScheme::Bdf2 {
            println!(
                "scheme       bdf2: {bdf2_steps} of {} steps BDF2 (JKO steps of 2τ/3 from the \
                 extrapolated density), the others JKO steps of τ",
                records.len()
            );
        }
        println!(
            "integrated   t = {t_end} in {} JKO steps, {seconds:.3} s ({:.3} s per step, {:.1} iterations and {:.1} CG iterations per step)",
            records.len(),
            seconds / records.len().max(1) as f64,
            iterations as f64 / records.len().max(1) as f64,
            cg_iterations as f64 / records.len().max(1) as f64
        );
        println!(
            "steps        {converged} converged, {at_floor} at the grid's floor, {limited} at the iteration limit{}",
            stall_summary(stalled, entropic, refined)
        );
        if !flow.energy.nonlocal.is_empty() {
            let solves: usize = records.iter().map(|r| r.fixed_point_iterations).sum();
            let worst = records.iter().map(|r| r.fixed_point_change).fold(0.0, f64::max);
            println!(
                "fixed point  {:.1} solves per step (non-local terms), largest last change {worst:.1e}{}",
                solves as f64 / records.len().max(1) as f64,
                if flow.energy.internal.is_none() { "; Lagrangian steps (no internal term)" } else { "" }
            );
        }
        println!("energy       {energy0:.9e} -> {energy1:.9e}");
        println!("mass         {m0:.12e}, relative drift {drift:.1e}");
        println!("positivity   min density {min_density:.3e}");
    }
    let mut output = Output::new(grid.clone());
    for (k, (t, rho)) in run.snapshots.iter().enumerate() {
        let mut fields = vec![("rho", Field::Scalar(rho.clone()))];
        if let Some(d) = run.displacements.get(k) {
            fields.push(("displacement", Field::Vector(d.clone())));
        }
        output.add_step(*t, fields)?;
    }
    let last = run.snapshots.last().expect("the initial density").1.clone();
    output.add_field("rho", last)?;
    if let Some(v) = &flow.energy.potential {
        output.add_field("potential", v.clone())?;
    }
    output.add_diagnostic("time", column(|r| r.time))?;
    output.add_diagnostic("energy", column(|r| r.energy))?;
    output.add_diagnostic("w2_step", column(|r| r.w2_step))?;
    output.add_diagnostic("marginal_error", column(|r| r.marginal_error))?;
    output.add_diagnostic("dual_gap", column(|r| r.dual_gap))?;
    output.add_diagnostic("iterations", column(|r| r.iterations as f64))?;
    output.add_diagnostic("cg_iterations", column(|r| r.cg_iterations as f64))?;
    output.add_diagnostic("seconds", column(|r| r.seconds))?;
    output.add_diagnostic("mass", column(|r| r.mass))?;
    output.add_diagnostic("min_density", column(|r| r.min_density))?;
    if flow.scheme == TimeScheme::Bdf2 {
        // 1 for a BDF2 step, 0 for a JKO step of τ (the first, and any from a density with
        // empty cells or after an entropic step).
        output.add_diagnostic(
            "bdf2",
            column(|r| f64::from(u8::from(r.scheme == TimeScheme::Bdf2.name()))),
        )?;
    }
    if !flow.energy.nonlocal.is_empty() {
        output.add_diagnostic(
            "fixed_point_iterations",
            column(|r| r.fixed_point_iterations as f64),
        )?;
        output.add_diagnostic("fixed_point_change", column(|r| r.fixed_point_change))?;
    }
    if run.entropic_steps > 0 {
        // 1 for a step taken by the entropic step (a stalled ascent against a far target).
        output
            .add_diagnostic("entropic", column(|r| f64::from(u8::from(r.outcome == "entropic"))))?;
    }
    if run.refined_steps > 0 {
        // 1 for a step solved again on the refined grid.
        output
            .add_diagnostic("refined", column(|r| f64::from(u8::from(r.outcome == "refined"))))?;
    }
    if w2_target.is_some() || snapshot_divergence.is_some() {
        output.add_diagnostic("snapshot_time", run.snapshots.iter().map(|(t, _)| *t).collect())?;
    }
    if let Some(d) = snapshot_divergence {
        output.add_diagnostic("snapshot_divergence", d)?;
    }
    if let Some(w) = w2_target {
        output.add_diagnostic("w2_target", w)?;
    }
    output.set_attribute("problem", AttrValue::Text("flow".into()))?;
    output.set_attribute("tau", AttrValue::Number(tau))?;
    output.set_attribute("scheme", AttrValue::Text(flow.scheme.name().into()))?;
    output.set_attribute("seconds", AttrValue::Number(seconds))?;
    output.set_attribute("parameters", AttrValue::Text(parameters.to_string()))?;
    if let Some(path) = &args.problem {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        output.set_attribute("problem_file", AttrValue::Text(text))?;
        output.set_attribute("problem_path", AttrValue::Text(path.display().to_string()))?;
    }
    let w = output.write(&out)?;
    report.put("output", w.hdf5.display().to_string());
    report.put("xdmf", w.xdmf.display().to_string());
    if !report.json {
        println!("wrote        {} and {}", w.hdf5.display(), w.xdmf.display());
    }
    Ok(())
}

/// The τ study: the flow of `setup` to the same end time with each τ (see `--tau-sweep`).
fn tau_sweep(setup: &Setup, taus: &[f64], report: &mut Report) -> Result<()> {
    if let Some(bad) = taus.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(Error::invalid(format!("--tau-sweep: τ must be positive, got {bad}")));
    }
    let t_end = setup.t_end;
    if let Some(bad) = taus.iter().find(|t| **t > t_end * (1.0 + 1e-12)) {
        return Err(Error::invalid(format!(
            "--tau-sweep: τ = {bad} is longer than the end time {t_end}"
        )));
    }
    let stem = setup.out.with_extension("");
    let name = |suffix: &str| PathBuf::from(format!("{}_tau_sweep.{suffix}", stem.display()));
    let (csv_path, png_path) = (name("csv"), name("png"));
    let mut rows = Vec::new();
    let scheme = setup.flow.scheme.name();
    let mut csv = String::from(
        "scheme,tau,steps,energy,normalised_energy,w2_target,seconds,iterations_per_step\n",
    );
    if !report.json {
        println!(
            "τ study ({scheme} scheme): {} to t = {t_end} on {}",
            setup.energy.join(" + "),
            setup.grid
        );
        println!(
            "| τ | steps | F(ρ_K) | F(ρ_K/M) | W₂(ρ_K/M, ν) | seconds | iterations per step |"
        );
        println!("|---|---|---|---|---|---|---|");
    }
    for &tau in taus {
        let steps = otgrid::ot::flow::step_count(tau, None, Some(t_end))?;
        if ((steps as f64 * tau) - t_end).abs() > 1e-9 * t_end {
            tracing::warn!(
                "τ = {tau}: {steps} steps end at t = {} instead of {t_end}",
                steps as f64 * tau
            );
        }
        let mut flow = setup.flow.clone();
        flow.jko.tau = tau;
        flow.steps = steps;
        let started = std::time::Instant::now();
        let run = flow.run(&setup.rho0, 1, |_| std::ops::ControlFlow::Continue(()))?;
        let seconds = started.elapsed().as_secs_f64();
        let last = &run.snapshots.last().expect("the last step").1;
        let energy = flow.energy.value(last)?;
        // The energy of the unit-mass density: with a kl or divergence term, the divergence
        // of ρ/M from ν (F(ρ) itself includes M log M and the like).
        let normalised = flow.energy.value(&last.to_density()?.0)?;
        let w2 = setup.target.as_ref().map(|nu| w2_distance(last, &nu.density)).transpose()?;
        let iterations =
            run.records.iter().map(|r| r.iterations).sum::<usize>() as f64 / steps as f64;
        let w2_text = w2.map_or("-".to_string(), |w| format!("{w:.4e}"));
        if !report.json {
            println!(
                "| {tau:.3e} | {steps} | {energy:.4e} | {normalised:.4e} | {w2_text} | {seconds:.2} | {iterations:.1} |"
            );
        }
        csv.push_str(&format!(
            "{scheme},{tau},{steps},{energy},{normalised},{},{seconds},{iterations}\n",
            w2.map_or(String::new(), |w| w.to_string())
        ));
        rows.push(serde_json::json!({
            "scheme": scheme, "tau": tau, "steps": steps, "t_end": steps as f64 * tau,
            "energy": energy, "normalised_energy": normalised,
            "w2_target": w2,
            "seconds": seconds, "iterations_per_step": iterations,
        }));
    }
    let file = otgrid::io::AtomicFile::new(&csv_path)?;
    std::fs::write(file.path(), csv).map_err(|e| Error::io(file.path(), e))?;
    let csv_written = file.commit()?;
    let column = |key: &str| -> Vec<(f64, f64)> {
        rows.iter().filter_map(|r| Some((r["tau"].as_f64()?, r[key].as_f64()?))).collect()
    };
    let energy_title = format!("final energy of rho/M ({scheme} scheme)");
    let mut panels =
        vec![super::plot::Panel::single(&energy_title, "tau", column("normalised_energy"))];
    if setup.target.is_some() {
        panels.push(super::plot::Panel::single("W2(rho/M, target)", "tau", column("w2_target")));
    }
    panels.push(super::plot::Panel::single("seconds", "tau", column("seconds")));
    let plotted = super::plot::log_log_panels(&png_path, &panels)?;
    report.put("t_end", t_end);
    report.put("scheme", scheme);
    report.put("tau_sweep", &rows);
    report.put("csv", csv_written.display().to_string());
    match &plotted {
        Ok(p) => report.put("png", p.display().to_string()),
        Err(why) => report.put("png_skipped", why.as_str()),
    }
    if !report.json {
        println!("wrote        {}", csv_written.display());
        match plotted {
            Ok(p) => println!("wrote        {}", p.display()),
            Err(why) => println!("{why}"),
        }
    }
    Ok(())
}

/// The summary's clauses on refined, entropic and stalled steps (empty without any): their
/// counts and what helps.
fn stall_summary(stalled: usize, entropic: usize, refined: usize) -> String {
    let mut out = String::new();
    if refined > 0 {
        out += &format!(
            ", {refined} refined (the dual ascent ended at a floor above half a cell; the step was solved again on the grid refined twice per axis; docs/flows.md)"
        );
    }
    if entropic > 0 {
        out += &format!(
            ", {entropic} entropic (the dual ascent stalled or raised the energy; the step is the entropic one, whose JKO objective is lower; see the warnings and docs/flows.md)"
        );
    }
    if stalled > 0 {
        out += &format!(
            ", {stalled} stalled (their ascent stopped above the grid's floor; see the warnings)"
        );
    }
    out
}
