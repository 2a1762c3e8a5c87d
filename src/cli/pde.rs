//! `otgrid elliptic|parabolic|fokker-planck PROBLEM.toml`: PDE solves from problem files.
//!
//! Every run records its grid, parameters and results in the [`Report`] (printed as JSON
//! with `--json`) and stores the parameters (JSON) and the problem file's text as root
//! attributes of the output, so a result can be reproduced from the file alone.

use super::progress::TimeProgress;
use super::{checkpoint_path, remove_checkpoint, Report};
use otgrid::error::{Error, Result};
use otgrid::io::config::{read_problem, DiffusionProblemFile, FokkerPlanckFile};
use otgrid::io::{AttrValue, Field, Inputs, Output};
use otgrid::pde::{
    integrate_from, Checkpoint, Checkpointing, FokkerPlanckCheckpoint, FokkerPlanckRun,
    LinearMethod, StepControl, TimeSeries,
};
use otgrid::resources::{check_steps, MemoryEstimate};
use otgrid::{Grid, ScalarField};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct ProblemArgs {
    /// Problem file (TOML); every key is documented in docs/problem-files.md.
    pub problem: PathBuf,
    /// Output HDF5 file (default: [output] file, else the problem file's name with .h5).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Map datasets stored on another grid (otgrid files carry theirs) onto the problem's
    /// grid — multilinear for coefficients and initial values, conservative for a
    /// Fokker–Planck initial density — instead of refusing them.
    #[arg(long)]
    pub resample: bool,
    /// Also write the solution normalised to unit mass as /fields/density (a "PDE-induced
    /// measure" for OT); fails if it has negative values beyond round-off or zero mass.
    #[arg(long)]
    pub as_density: bool,
    /// Print one JSON object on stdout (status, grid, parameters, results; on failure the
    /// error) instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct TimeArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    /// Override [time] t_end.
    #[arg(long)]
    pub t_end: Option<f64>,
    /// Override [time] dt.
    #[arg(long)]
    pub dt: Option<f64>,
    /// Run more than 1e6 fixed steps (refused otherwise as a likely mistake in dt).
    #[arg(long)]
    pub force: bool,
    /// Write the run's state every N steps to NAME.checkpoint.h5 (atomically, next to the
    /// output); removed when the run completes.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Continue from a checkpoint written by --checkpoint-every for the same problem file
    /// and settings; the result equals the uninterrupted run's.
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
}

pub(super) fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn output_path(args: &ProblemArgs, configured: Option<&PathBuf>) -> PathBuf {
    args.out.clone().or_else(|| configured.cloned()).unwrap_or_else(|| {
        let stem =
            args.problem.file_stem().map_or("solution".into(), |s| s.to_string_lossy().to_string());
        PathBuf::from(format!("{stem}.h5"))
    })
}

/// Refuses an output path that cannot be written or would overwrite one of the problem's inputs.
fn check_output(out: &Path, problem: &Path) -> Result<()> {
    otgrid::io::check_output_path(out, &otgrid::io::config::input_files(problem))
}

fn add_density(
    out: &mut Output,
    u: &ScalarField,
    as_density: bool,
    report: &mut Report,
) -> Result<()> {
    if as_density {
        let (rho, mass) = u.to_density()?;
        if !report.json {
            println!("density      /fields/density = solution / {mass:.6e} (unit mass)");
        }
        report.put("density_rescaling", 1.0 / mass);
        out.add_field("density", rho)?;
        out.set_attribute("density_rescaling", AttrValue::Number(1.0 / mass))?;
    }
    Ok(())
}

/// Stores the parameters (JSON) and the problem file's text and path in the output.
fn provenance(out: &mut Output, parameters: &serde_json::Value, problem: &Path) -> Result<()> {
    out.set_attribute("parameters", AttrValue::Text(parameters.to_string()))?;
    let text = std::fs::read_to_string(problem).map_err(|e| Error::io(problem, e))?;
    out.set_attribute("problem_file", AttrValue::Text(text))?;
    out.set_attribute("problem_path", AttrValue::Text(problem.display().to_string()))?;
    Ok(())
}

fn write(out: &Output, path: &Path, report: &mut Report) -> Result<()> {
    let w = out.write(path)?;
    report.put("output", w.hdf5.display().to_string());
    report.put("xdmf", w.xdmf.display().to_string());
    if !report.json {
        println!("wrote        {} and {}", w.hdf5.display(), w.xdmf.display());
    }
    Ok(())
}

/// `min`, `max`, `integral` of a field.
fn stats(u: &ScalarField) -> serde_json::Value {
    serde_json::json!({"min": u.min(), "max": u.max(), "integral": u.integral()})
}

/// Extra fields a direct sparse factorisation needs (its fill), by dimension.
fn factor_fields(grid: &Grid) -> f64 {
    let n = grid.num_cells() as f64;
    if grid.dim() == 2 {
        8.0 + 2.0 * n.log2()
    } else if grid.num_cells() <= otgrid::pde::stepper::DIRECT_3D_LIMIT {
        8.0 + 8.0 * n.cbrt()
    } else {
        12.0 // Krylov with Jacobi: a few vectors and the matrix
    }
}

pub fn elliptic(args: &ProblemArgs, report: &mut Report) -> Result<()> {
    let file: DiffusionProblemFile = read_problem(&args.problem)?;
    report.put("problem", "elliptic");
    report.put("problem_file", args.problem.display().to_string());
    let base = base_dir(&args.problem);
    let inputs = Inputs { base: base.clone(), resample: args.resample };
    let out_path = output_path(args, file.output.as_ref().and_then(|o| o.file.as_ref()));
    let grid = file.grid.grid(&base)?;
    report.put("grid", &grid);
    check_output(&out_path, &args.problem)?;
    let method = file.linear_method()?;
    let fill = if method == LinearMethod::Direct { factor_fields(&grid) } else { 0.0 };
    MemoryEstimate::fields(&grid, 16.0 + fill, 0, "elliptic").check(report.memory_limit)?;
    let parameters = serde_json::json!({
        "problem": "elliptic",
        "grid": &grid,
        "solver": match method {
            LinearMethod::Direct => serde_json::json!({"method": "direct"}),
            LinearMethod::Iterative { rel_tolerance, max_iterations } => serde_json::json!({
                "method": "iterative", "tolerance": rel_tolerance, "max_iterations": max_iterations
            }),
        },
        "resample": args.resample,
        "as_density": args.as_density,
    });
    report.put("parameters", &parameters);
    let problem = file.elliptic(&grid, &inputs)?;
    let started = Instant::now();
    let (u, solve) = problem.solve(method)?;
    let seconds = started.elapsed().as_secs_f64();
    report.put("iterations", solve.iterations);
    report.put("relative_residual", solve.residual);
    report.put("seconds", seconds);
    report.put("solution", stats(&u));
    if !report.json {
        println!("problem      elliptic on {grid}");
        println!(
            "solved       {} iterations, relative residual {:.3e}, {:.3} s",
            solve.iterations, solve.residual, seconds
        );
        println!(
            "solution     min {:.6e}  max {:.6e}  integral {:.6e}",
            u.min(),
            u.max(),
            u.integral()
        );
    }
    let mut out = Output::new(grid);
    add_density(&mut out, &u, args.as_density, report)?;
    out.add_field("solution", u)?;
    out.add_diagnostic("residual", vec![solve.residual])?;
    out.set_attribute("problem", AttrValue::Text("elliptic".into()))?;
    out.set_attribute("iterations", AttrValue::Integer(solve.iterations as i64))?;
    out.set_attribute("seconds", AttrValue::Number(seconds))?;
    provenance(&mut out, &parameters, &args.problem)?;
    write(&out, &out_path, report)
}

fn time_section(
    args: &TimeArgs,
    section: Option<&otgrid::io::config::TimeSection>,
) -> Result<otgrid::io::config::TimeSection> {
    let mut t =
        section.cloned().ok_or_else(|| Error::invalid("missing [time] section (t_end, dt)"))?;
    if let Some(v) = args.t_end {
        t.t_end = v;
    }
    if let Some(v) = args.dt {
        t.dt = v;
    }
    Ok(t)
}

/// Checks the checkpoint options and the output of the checkpoints.
fn checkpoint_setup(args: &TimeArgs, out: &Path) -> Result<Option<PathBuf>> {
    match args.checkpoint_every {
        Some(0) => Err(Error::invalid("--checkpoint-every must be at least 1")),
        Some(_) => {
            let path = checkpoint_path(out);
            check_output(&path, &args.problem.problem)?;
            Ok(Some(path))
        }
        None => Ok(None),
    }
}

/// The parameters a checkpoint must share with the run that resumes it: all but the
/// checkpoint and output options.
fn resumable(parameters: &serde_json::Value) -> serde_json::Value {
    let mut p = parameters.clone();
    if let Some(map) = p.as_object_mut() {
        for key in ["checkpoint_every", "resume", "as_density"] {
            map.remove(key);
        }
    }
    p
}

/// Reads a checkpoint and checks that it was written for this problem file and settings.
fn read_checkpoint(
    path: &Path,
    kind: &str,
    problem: &Path,
    parameters: &serde_json::Value,
) -> Result<Output> {
    let cp = Output::read(path)?;
    let attr = |k: &str| cp.attributes().get(k).map(ToString::to_string);
    if attr("checkpoint").as_deref() != Some(kind) {
        return Err(Error::invalid(format!("{}: not a {kind} checkpoint", path.display())));
    }
    let text = std::fs::read_to_string(problem).map_err(|e| Error::io(problem, e))?;
    if attr("problem_file").as_deref() != Some(text.as_str()) {
        return Err(Error::invalid(format!(
            "{}: written for another problem file (its text differs from {})",
            path.display(),
            problem.display()
        )));
    }
    let stored: serde_json::Value = attr("parameters")
        .and_then(|p| serde_json::from_str(&p).ok())
        .unwrap_or(serde_json::Value::Null);
    if resumable(&stored) != resumable(parameters) {
        return Err(Error::invalid(format!(
            "{}: written with other settings (t_end, dt, scheme, snapshots or grid differ); resume with the same ones",
            path.display()
        )));
    }
    Ok(cp)
}

fn number(cp: &Output, key: &str) -> Result<f64> {
    match cp.attributes().get(key) {
        Some(AttrValue::Number(x)) => Ok(*x),
        Some(AttrValue::Integer(i)) => Ok(*i as f64),
        _ => Err(Error::invalid(format!("checkpoint: missing attribute {key}"))),
    }
}

fn diagnostic(cp: &Output, key: &str) -> Vec<f64> {
    cp.diagnostics().get(key).cloned().unwrap_or_default()
}

fn state(cp: &Output, name: &str) -> Result<ScalarField> {
    match cp.fields().get("state") {
        Some(Field::Scalar(f)) => Ok(f.clone()),
        _ => Err(Error::invalid(format!("checkpoint: missing /fields/state ({name})"))),
    }
}

fn snapshots_of(cp: &Output, name: &str) -> Result<Vec<(f64, ScalarField)>> {
    cp.steps()
        .iter()
        .map(|s| match s.fields.get(name) {
            Some(Field::Scalar(f)) => Ok((s.time, f.clone())),
            _ => Err(Error::invalid(format!("checkpoint: step without '{name}'"))),
        })
        .collect()
}

/// What a checkpoint file holds: the state, the snapshots so far, the histories, the
/// counters.
struct CheckpointData<'a> {
    kind: &'a str,
    name: &'a str,
    state: &'a ScalarField,
    snapshots: &'a [(f64, ScalarField)],
    histories: &'a [(&'a str, &'a [f64])],
    counters: &'a [(&'a str, f64)],
}

impl CheckpointData<'_> {
    /// The checkpoint as an otgrid output, with the parameters and problem file it belongs to.
    fn output(
        &self,
        grid: &Grid,
        parameters: &serde_json::Value,
        problem: &Path,
    ) -> Result<Output> {
        let mut out = Output::new(grid.clone());
        for (t, u) in self.snapshots {
            out.add_step(*t, vec![(self.name, Field::Scalar(u.clone()))])?;
        }
        out.add_field("state", self.state.clone())?;
        for (k, v) in self.histories {
            out.add_diagnostic(k, v.to_vec())?;
        }
        for (k, v) in self.counters {
            out.set_attribute(k, AttrValue::Number(*v))?;
        }
        out.set_attribute("checkpoint", AttrValue::Text(self.kind.into()))?;
        provenance(&mut out, parameters, problem)?;
        Ok(out)
    }
}

/// Snapshots a run keeps: at most one per step, plus t = 0.
fn kept_snapshots(snapshots: usize, steps: u64) -> f64 {
    (snapshots.max(1) as u64).min(steps.max(1)) as f64 + 1.0
}

pub fn parabolic(args: &TimeArgs, report: &mut Report) -> Result<()> {
    let pa = &args.problem;
    let file: DiffusionProblemFile = read_problem(&pa.problem)?;
    report.put("problem", "parabolic");
    report.put("problem_file", pa.problem.display().to_string());
    let base = base_dir(&pa.problem);
    let inputs = Inputs { base: base.clone(), resample: pa.resample };
    let time = time_section(args, file.time.as_ref())?;
    let snapshots = file.output.as_ref().and_then(|o| o.snapshots).unwrap_or(10);
    let settings = time.settings(snapshots)?;
    let out_path = output_path(pa, file.output.as_ref().and_then(|o| o.file.as_ref()));
    let grid = file.grid.grid(&base)?;
    report.put("grid", &grid);
    check_output(&out_path, &pa.problem)?;
    let checkpoint_file = checkpoint_setup(args, &out_path)?;
    let steps = match settings.control {
        StepControl::Fixed { dt } => check_steps(settings.t_end, dt, args.force)?,
        StepControl::Adaptive { .. } => 1_000_000,
    };
    if let StepControl::Fixed { .. } = settings.control {
        if (snapshots as u64) > steps {
            tracing::warn!("{snapshots} snapshots but only {steps} steps: one snapshot per step");
        }
    }
    let factors = if matches!(settings.control, StepControl::Adaptive { .. }) { 2.0 } else { 1.0 };
    let kept = kept_snapshots(snapshots, steps);
    MemoryEstimate::fields(
        &grid,
        20.0 + factors * factor_fields(&grid) + 2.0 * kept,
        0,
        "parabolic",
    )
    .check(report.memory_limit)?;
    let parameters = serde_json::json!({
        "problem": "parabolic",
        "grid": &grid,
        "time": &settings,
        "resample": pa.resample,
        "as_density": pa.as_density,
        "checkpoint_every": args.checkpoint_every,
    });
    report.put("parameters", &parameters);
    let resume = match &args.resume {
        None => None,
        Some(path) => {
            let cp = read_checkpoint(path, "parabolic", &pa.problem, &parameters)?;
            let series = TimeSeries {
                snapshots: snapshots_of(&cp, "solution")?,
                times: diagnostic(&cp, "time"),
                dt: diagnostic(&cp, "dt"),
                error_estimates: diagnostic(&cp, "error_estimate"),
                rejected: number(&cp, "rejected")? as usize,
                factorisations: number(&cp, "factorisations")? as usize,
                stopped: false,
            };
            Some(Checkpoint {
                t: number(&cp, "t")?,
                step: number(&cp, "step")? as usize,
                dt_next: number(&cp, "dt_next")?,
                attempts: number(&cp, "attempts")? as usize,
                u: state(&cp, "solution")?,
                next_snapshot: number(&cp, "next_snapshot")? as usize,
                series,
            })
        }
    };
    let problem = file.parabolic(&grid, &inputs)?;
    let started = Instant::now();
    let t_start = resume.as_ref().map_or(0.0, |c| c.t);
    let mut progress = TimeProgress::new(t_start, settings.t_end, "time");
    let mut save = |c: &Checkpoint| -> Result<()> {
        let Some(path) = &checkpoint_file else { return Ok(()) };
        let s = &c.series;
        CheckpointData {
            kind: "parabolic",
            name: "solution",
            state: &c.u,
            snapshots: &s.snapshots,
            histories: &[("time", &s.times), ("dt", &s.dt), ("error_estimate", &s.error_estimates)],
            counters: &[
                ("t", c.t),
                ("step", c.step as f64),
                ("dt_next", c.dt_next),
                ("attempts", c.attempts as f64),
                ("next_snapshot", c.next_snapshot as f64),
                ("rejected", s.rejected as f64),
                ("factorisations", s.factorisations as f64),
            ],
        }
        .output(&grid, &parameters, &pa.problem)?
        .write(path)?;
        tracing::info!("checkpoint at t = {} (step {}) in {}", c.t, c.step, path.display());
        Ok(())
    };
    let checkpointing = args.checkpoint_every.map(|every| Checkpointing { every, save: &mut save });
    let series =
        integrate_from(&problem, &settings, resume, |r| progress.observe(r), checkpointing)?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let last = series.last().clone();
    report.put("steps", series.times.len());
    report.put("rejected", series.rejected);
    report.put("factorisations", series.factorisations);
    report.put("seconds", seconds);
    report.put("final", stats(&last));
    if !report.json {
        println!("problem      parabolic on {grid}");
        println!(
            "integrated   t = {} in {} steps ({} rejected), {:?}, {} factorisations, {:.3} s",
            settings.t_end,
            series.times.len(),
            series.rejected,
            settings.scheme,
            series.factorisations,
            seconds
        );
        println!(
            "final        min {:.6e}  max {:.6e}  integral {:.6e}",
            last.min(),
            last.max(),
            last.integral()
        );
    }
    let mut out = Output::new(grid);
    for (t, u) in &series.snapshots {
        out.add_step(*t, vec![("solution", Field::Scalar(u.clone()))])?;
    }
    add_density(&mut out, &last, pa.as_density, report)?;
    out.add_field("solution", last)?;
    out.add_diagnostic("time", series.times.clone())?;
    out.add_diagnostic("dt", series.dt.clone())?;
    out.add_diagnostic(
        "snapshot_integral",
        series.snapshots.iter().map(|(_, u)| u.integral()).collect(),
    )?;
    if !series.error_estimates.is_empty() {
        out.add_diagnostic("error_estimate", series.error_estimates.clone())?;
    }
    out.set_attribute("problem", AttrValue::Text("parabolic".into()))?;
    out.set_attribute("seconds", AttrValue::Number(seconds))?;
    provenance(&mut out, &parameters, &pa.problem)?;
    write(&out, &out_path, report)?;
    remove_checkpoint(checkpoint_file.as_deref(), report)
}

pub fn fokker_planck(args: &TimeArgs, report: &mut Report) -> Result<()> {
    let pa = &args.problem;
    let file: FokkerPlanckFile = read_problem(&pa.problem)?;
    report.put("problem", "fokker-planck");
    report.put("problem_file", pa.problem.display().to_string());
    let base = base_dir(&pa.problem);
    let inputs = Inputs { base: base.clone(), resample: pa.resample };
    let time = time_section(args, Some(&file.time))?;
    if time.adaptive.unwrap_or(false) || time.scheme.is_some() || time.tolerance.is_some() {
        return Err(Error::invalid("Fokker–Planck uses implicit Euler with a fixed dt: remove scheme/adaptive/tolerance from [time]"));
    }
    let snapshots = file.output.as_ref().and_then(|o| o.snapshots).unwrap_or(10);
    let out_path = output_path(pa, file.output.as_ref().and_then(|o| o.file.as_ref()));
    let grid = file.grid.grid(&base)?;
    report.put("grid", &grid);
    check_output(&out_path, &pa.problem)?;
    let checkpoint_file = checkpoint_setup(args, &out_path)?;
    if !(time.t_end > 0.0 && time.t_end.is_finite()) {
        return Err(Error::invalid(format!("t_end must be positive, got {}", time.t_end)));
    }
    if !(time.dt > 0.0 && time.dt.is_finite()) {
        return Err(Error::invalid(format!("time step dt must be positive, got {}", time.dt)));
    }
    let steps = check_steps(time.t_end, time.dt, args.force)?;
    let kept = kept_snapshots(snapshots, steps);
    MemoryEstimate::fields(&grid, 30.0 + factor_fields(&grid) + 2.0 * kept, 0, "fokker-planck")
        .check(report.memory_limit)?;
    let parameters = serde_json::json!({
        "problem": "fokker-planck",
        "grid": &grid,
        "time": {"t_end": time.t_end, "dt": time.dt, "scheme": "backward-euler", "snapshots": snapshots},
        "diffusion": file.equation.diffusion,
        "resample": pa.resample,
        "as_density": pa.as_density,
        "checkpoint_every": args.checkpoint_every,
    });
    report.put("parameters", &parameters);
    let problem = file.problem(&grid, &inputs)?;
    let resume = match &args.resume {
        None => None,
        Some(path) => {
            let cp = read_checkpoint(path, "fokker-planck", &pa.problem, &parameters)?;
            Some(FokkerPlanckCheckpoint {
                step: number(&cp, "step")? as usize,
                rho: state(&cp, "rho")?,
                run: FokkerPlanckRun {
                    snapshots: snapshots_of(&cp, "rho")?,
                    times: diagnostic(&cp, "time"),
                    mass: diagnostic(&cp, "mass"),
                    mass_defect: diagnostic(&cp, "mass_defect"),
                    entropy: diagnostic(&cp, "relative_entropy"),
                    min_density: diagnostic(&cp, "min_density"),
                    stopped: false,
                },
            })
        }
    };
    let started = Instant::now();
    let t_start = resume.as_ref().and_then(|c| c.run.times.last().copied()).unwrap_or(0.0);
    let mut progress = TimeProgress::new(t_start, time.t_end, "time");
    let mut save = |c: &FokkerPlanckCheckpoint| -> Result<()> {
        let Some(path) = &checkpoint_file else { return Ok(()) };
        let r = &c.run;
        CheckpointData {
            kind: "fokker-planck",
            name: "rho",
            state: &c.rho,
            snapshots: &r.snapshots,
            histories: &[
                ("time", &r.times),
                ("mass", &r.mass),
                ("mass_defect", &r.mass_defect),
                ("relative_entropy", &r.entropy),
                ("min_density", &r.min_density),
            ],
            counters: &[("step", c.step as f64)],
        }
        .output(&grid, &parameters, &pa.problem)?
        .write(path)?;
        tracing::info!("checkpoint after step {} in {}", c.step, path.display());
        Ok(())
    };
    let checkpointing = args.checkpoint_every.map(|every| Checkpointing { every, save: &mut save });
    let run = problem.run_from(
        time.t_end,
        time.dt,
        snapshots,
        resume,
        |r| progress.observe(r),
        checkpointing,
    )?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let last = run.snapshots.last().expect("initial state").1.clone();
    let m0 = problem.initial.integral();
    let drift = run.mass.iter().map(|m| ((m - m0) / m0).abs()).fold(0.0, f64::max);
    let defect = run.mass_defect.iter().map(|d| d.abs()).fold(0.0, f64::max);
    let min_density = run.min_density.iter().cloned().fold(f64::INFINITY, f64::min);
    report.put("steps", run.times.len());
    report.put("seconds", seconds);
    report.put("mass", m0);
    report.put("relative_mass_drift", drift);
    report.put("largest_mass_defect", defect);
    report.put("min_density", min_density);
    if let (Some(a), Some(b)) = (run.entropy.first(), run.entropy.last()) {
        report.put("relative_entropy", serde_json::json!({"first": a, "last": b}));
    }
    report.put("final", stats(&last));
    if !report.json {
        println!("problem      fokker-planck on {grid}, D = {}", problem.diffusion);
        println!(
            "integrated   t = {} in {} implicit Euler steps, {:.3} s",
            time.t_end,
            run.times.len(),
            seconds
        );
        println!("mass         {m0:.12e}, relative drift {drift:.1e} (largest raw per-step defect {defect:.1e})");
        println!("positivity   min density {min_density:.3e}");
        if let (Some(a), Some(b)) = (run.entropy.first(), run.entropy.last()) {
            println!("entropy      relative entropy to e^(-V/D)/Z: {a:.6e} -> {b:.6e}");
        }
    }
    let mut out = Output::new(grid);
    for (t, rho) in &run.snapshots {
        out.add_step(*t, vec![("rho", Field::Scalar(rho.clone()))])?;
    }
    add_density(&mut out, &last, pa.as_density, report)?;
    out.add_field("rho", last)?;
    out.add_field("potential", problem.potential.clone())?;
    if problem.drift.is_none() {
        out.add_field("stationary", problem.stationary_state())?;
    }
    out.add_diagnostic("time", run.times.clone())?;
    out.add_diagnostic("mass", run.mass.clone())?;
    out.add_diagnostic("mass_defect", run.mass_defect.clone())?;
    out.add_diagnostic("min_density", run.min_density.clone())?;
    if !run.entropy.is_empty() {
        out.add_diagnostic("relative_entropy", run.entropy.clone())?;
    }
    out.set_attribute("problem", AttrValue::Text("fokker-planck".into()))?;
    out.set_attribute("diffusion", AttrValue::Number(problem.diffusion))?;
    out.set_attribute("seconds", AttrValue::Number(seconds))?;
    provenance(&mut out, &parameters, &pa.problem)?;
    write(&out, &out_path, report)?;
    remove_checkpoint(checkpoint_file.as_deref(), report)
}
