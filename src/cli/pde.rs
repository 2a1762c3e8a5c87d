//! `otgrid elliptic|parabolic|fokker-planck PROBLEM.toml`: PDE solves from problem files.

use otgrid::error::{Error, Result};
use otgrid::io::config::{
    advection_scheme, boundary_conditions, read_problem, vector_field, DiffusionProblemFile,
    FokkerPlanckFile, Value,
};
use otgrid::io::{AttrValue, Field, Inputs, Output};
use otgrid::pde::{
    integrate, EllipticProblem, FokkerPlanckProblem, LinearMethod, ParabolicProblem, Source,
};
use otgrid::sparse::{Coefficient, OperatorSpec};
use otgrid::{Grid, ScalarField};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
}

fn base_dir(path: &Path) -> PathBuf {
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

fn operator(file: &DiffusionProblemFile, grid: &Grid, inputs: &Inputs) -> Result<OperatorSpec> {
    let eq = &file.equation;
    let mut op = OperatorSpec::default().with_diffusion(match &eq.diffusion {
        None => Coefficient::Constant(1.0),
        Some(v) => v.coefficient(grid, "diffusion", inputs)?,
    });
    if let Some(b) = &eq.advection {
        op = op.with_advection(
            vector_field(b, grid, "advection", inputs)?,
            advection_scheme(eq.advection_scheme.as_deref())?,
        );
    } else if eq.advection_scheme.is_some() {
        return Err(Error::invalid("advection_scheme given without advection"));
    }
    if let Some(c) = &eq.reaction {
        op = op.with_reaction(c.coefficient(grid, "reaction", inputs)?);
    }
    for (name, v) in [("diffusion", &eq.diffusion), ("reaction", &eq.reaction)] {
        if v.as_ref().is_some_and(Value::depends_on_time) {
            return Err(Error::invalid(format!("{name} must not depend on t (only source may)")));
        }
    }
    Ok(op)
}

fn add_density(out: &mut Output, u: &ScalarField, as_density: bool) -> Result<()> {
    if as_density {
        let (rho, mass) = u.to_density()?;
        println!("density      /fields/density = solution / {mass:.6e} (unit mass)");
        out.add_field("density", rho)?;
        out.set_attribute("density_rescaling", AttrValue::Number(1.0 / mass))?;
    }
    Ok(())
}

fn write(out: &Output, path: &Path) -> Result<()> {
    let w = out.write(path)?;
    println!("wrote        {} and {}", w.hdf5.display(), w.xdmf.display());
    Ok(())
}

pub fn elliptic(args: &ProblemArgs) -> Result<()> {
    let file: DiffusionProblemFile = read_problem(&args.problem)?;
    let base = base_dir(&args.problem);
    let inputs = Inputs { base: base.clone(), resample: args.resample };
    if file.time.is_some() || file.equation.initial.is_some() {
        return Err(Error::invalid(
            "[time] and initial are for parabolic problems (otgrid parabolic)",
        ));
    }
    let out_path = output_path(args, file.output.as_ref().and_then(|o| o.file.as_ref()));
    let grid = file.grid.grid(&base)?;
    check_output(&out_path, &args.problem)?;
    let source = match &file.equation.source {
        None => ScalarField::zeros(&grid),
        Some(v) if v.depends_on_time() => {
            return Err(Error::invalid("elliptic source must not depend on t"))
        }
        Some(v) => v.field(&grid, 0.0, "source", &inputs)?,
    };
    let problem = EllipticProblem {
        operator: operator(&file, &grid, &inputs)?,
        bcs: boundary_conditions(&grid, file.boundary.as_ref())?,
        source,
        grid: grid.clone(),
    };
    let solver = file.solver.clone().unwrap_or_default();
    let method = match solver.method.as_deref().unwrap_or("direct") {
        "direct" => LinearMethod::Direct,
        "iterative" => LinearMethod::Iterative {
            rel_tolerance: solver.tolerance.unwrap_or(1e-10),
            max_iterations: solver.max_iterations.unwrap_or(10_000),
        },
        other => {
            return Err(Error::invalid(format!("[solver] method '{other}' (direct or iterative)")))
        }
    };
    let started = Instant::now();
    let (u, report) = problem.solve(method)?;
    let seconds = started.elapsed().as_secs_f64();
    println!("problem      elliptic on {grid}");
    println!(
        "solved       {} iterations, relative residual {:.3e}, {:.3} s",
        report.iterations, report.residual, seconds
    );
    println!(
        "solution     min {:.6e}  max {:.6e}  integral {:.6e}",
        u.min(),
        u.max(),
        u.integral()
    );
    let mut out = Output::new(grid);
    add_density(&mut out, &u, args.as_density)?;
    out.add_field("solution", u)?;
    out.add_diagnostic("residual", vec![report.residual])?;
    out.set_attribute("problem", AttrValue::Text("elliptic".into()))?;
    out.set_attribute("iterations", AttrValue::Integer(report.iterations as i64))?;
    out.set_attribute("seconds", AttrValue::Number(seconds))?;
    write(&out, &out_path)
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

fn progress(t_end: f64) -> (indicatif::ProgressBar, impl FnMut(f64)) {
    let bar = otgrid::progress::bar(1000, "time");
    let b = bar.clone();
    (bar, move |t: f64| b.set_position((1000.0 * t / t_end).round() as u64))
}

pub fn parabolic(args: &TimeArgs) -> Result<()> {
    let pa = &args.problem;
    let file: DiffusionProblemFile = read_problem(&pa.problem)?;
    let base = base_dir(&pa.problem);
    let inputs = Inputs { base: base.clone(), resample: pa.resample };
    let time = time_section(args, file.time.as_ref())?;
    let snapshots = file.output.as_ref().and_then(|o| o.snapshots).unwrap_or(10);
    let settings = time.settings(snapshots)?;
    let out_path = output_path(pa, file.output.as_ref().and_then(|o| o.file.as_ref()));
    let grid = file.grid.grid(&base)?;
    check_output(&out_path, &pa.problem)?;
    if file.solver.is_some() {
        return Err(Error::invalid(
            "[solver] is for elliptic problems; parabolic steps use a direct factorisation",
        ));
    }
    let initial = file
        .equation
        .initial
        .as_ref()
        .ok_or_else(|| Error::invalid("parabolic problems need [equation] initial"))?
        .field(&grid, 0.0, "initial", &inputs)?;
    let source = match &file.equation.source {
        None => Source::None,
        Some(v) if v.depends_on_time() => {
            let (v, g, b) = (v.clone(), grid.clone(), inputs.clone());
            v.field(&g, 0.0, "source", &b)?; // report a bad expression before stepping
            Source::Function(Arc::new(move |t| v.field(&g, t, "source", &b)))
        }
        Some(v) => Source::Field(v.field(&grid, 0.0, "source", &inputs)?),
    };
    let problem = ParabolicProblem {
        operator: operator(&file, &grid, &inputs)?,
        bcs: boundary_conditions(&grid, file.boundary.as_ref())?,
        source,
        initial,
        grid: grid.clone(),
    };
    let started = Instant::now();
    let (bar, on_step) = progress(settings.t_end);
    let series = integrate(&problem, &settings, on_step)?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let last = series.last().clone();
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
    let mut out = Output::new(grid);
    for (t, u) in &series.snapshots {
        out.add_step(*t, vec![("solution", Field::Scalar(u.clone()))])?;
    }
    add_density(&mut out, &last, pa.as_density)?;
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
    write(&out, &out_path)
}

pub fn fokker_planck(args: &TimeArgs) -> Result<()> {
    let pa = &args.problem;
    let file: FokkerPlanckFile = read_problem(&pa.problem)?;
    let base = base_dir(&pa.problem);
    let inputs = Inputs { base: base.clone(), resample: pa.resample };
    let time = time_section(args, Some(&file.time))?;
    if time.adaptive.unwrap_or(false) || time.scheme.is_some() || time.tolerance.is_some() {
        return Err(Error::invalid("Fokker–Planck uses implicit Euler with a fixed dt: remove scheme/adaptive/tolerance from [time]"));
    }
    let snapshots = file.output.as_ref().and_then(|o| o.snapshots).unwrap_or(10);
    let out_path = output_path(pa, file.output.as_ref().and_then(|o| o.file.as_ref()));
    let grid = file.grid.grid(&base)?;
    check_output(&out_path, &pa.problem)?;
    let eq = &file.equation;
    let problem = FokkerPlanckProblem {
        diffusion: eq.diffusion,
        potential: eq.potential.field(&grid, 0.0, "potential", &inputs)?,
        drift: eq.drift.as_ref().map(|d| vector_field(d, &grid, "drift", &inputs)).transpose()?,
        initial: eq.initial.density(&grid, "initial", &inputs)?,
        grid: grid.clone(),
    };
    problem.validate()?;
    let started = Instant::now();
    let (bar, on_step) = progress(time.t_end);
    let run = problem.run(time.t_end, time.dt, snapshots, on_step)?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let last = run.snapshots.last().expect("initial state").1.clone();
    let m0 = problem.initial.integral();
    let drift = run.mass.iter().map(|m| ((m - m0) / m0).abs()).fold(0.0, f64::max);
    let defect = run.mass_defect.iter().map(|d| d.abs()).fold(0.0, f64::max);
    println!("problem      fokker-planck on {grid}, D = {}", problem.diffusion);
    println!(
        "integrated   t = {} in {} implicit Euler steps, {:.3} s",
        time.t_end,
        run.times.len(),
        seconds
    );
    println!("mass         {m0:.12e}, relative drift {drift:.1e} (largest raw per-step defect {defect:.1e})");
    println!(
        "positivity   min density {:.3e}",
        run.min_density.iter().cloned().fold(f64::INFINITY, f64::min)
    );
    if let (Some(a), Some(b)) = (run.entropy.first(), run.entropy.last()) {
        println!("entropy      relative entropy to e^(-V/D)/Z: {a:.6e} -> {b:.6e}");
    }
    let mut out = Output::new(grid);
    for (t, rho) in &run.snapshots {
        out.add_step(*t, vec![("rho", Field::Scalar(rho.clone()))])?;
    }
    add_density(&mut out, &last, pa.as_density)?;
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
    write(&out, &out_path)
}
