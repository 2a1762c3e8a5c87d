//! `mpirun -np P otgrid ot …` (the `distributed` feature): under an MPI launcher `otgrid ot`
//! solves on slabs of the grid — bfm ([`otgrid::distributed::slab_bfm`], the serial solve,
//! levels and push-forward included, to the bit; the default) or Sinkhorn
//! ([`otgrid::distributed::slab_sinkhorn`], the serial solve, its multiscale levels
//! included, to the bit) or the parabolic Monge–Ampère flow
//! ([`otgrid::distributed::slab_parabolic`], the serial flow to the bit, its Gaussian lift
//! included). With more ranks than z planes (3D) each runs on y–z pencils instead
//! ([`otgrid::distributed::pencil_bfm`], [`otgrid::distributed::pencil_sinkhorn`],
//! [`otgrid::distributed::pencil_parabolic`]). Every
//! rank writes its cells of the results file collectively
//! ([`otgrid::distributed::slab_output`] / [`otgrid::distributed::pencil_output`],
//! [`otgrid::distributed::write_collective`]): the serial `otgrid ot --method bfm`
//! (`--method sinkhorn`, `--method parabolic`) file. The rank count is MPI's. Rank 0 prints
//! the report and any error (the ranks agree on every error, so all exit with its status).

use super::ot::{check_flags, settings, OtArgs};
use super::Report;
use otgrid::distributed::mpi::MpiExchange;
use otgrid::distributed::{
    agree, blocks, pencil_bfm, pencil_output, pencil_parabolic, pencil_sinkhorn, slab_bfm,
    slab_output, slab_parabolic, slab_sinkhorn, write_collective, Blocks, Exchange,
};
use otgrid::error::{Error, Result};
use otgrid::io::{check_output_path, AttrValue, Inputs};
use otgrid::ot::{
    BackAndForth, DensitySpec, MapErrorSums, Method, Options, Parabolic, Problem, Sinkhorn,
    Solution,
};
use otgrid::resources::MemoryEstimate;
use std::path::{Path, PathBuf};

/// Whether an MPI launcher started this process (Open MPI's `mpirun`, or a PMI / PMIx
/// launcher such as Slurm's `srun`): then `otgrid` joins MPI's world.
pub fn launched() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].iter().any(|v| std::env::var_os(v).is_some())
}

/// Why a subcommand other than `ot` is refused on more than one rank.
pub fn refuse(ranks: usize) -> Error {
    Error::invalid(format!(
        "under mpirun ({ranks} ranks) only `otgrid ot` runs distributed; the other subcommands \
         run on one rank (start them without mpirun, or with -np 1)"
    ))
}

/// Per rank: the method's working fields on its slab (the densities among them: each rank
/// samples only its planes).
fn memory(grid: &otgrid::Grid, method: Method, ranks: usize) -> MemoryEstimate {
    let fields = method.memory_fields(grid) / ranks as f64;
    let what = format!("ot --method {} on {ranks} ranks, per rank", method.name());
    MemoryEstimate::fields(grid, fields, 0, &what)
}

/// The options a distributed run does not take, by their flags.
fn refused_options(args: &OtArgs) -> Option<&'static str> {
    [
        (args.batch.is_some(), "--batch"),
        (args.true_target.is_some(), "--true-target"),
        (args.checkpoint_every.is_some(), "--checkpoint-every"),
        (args.resume.is_some(), "--resume"),
        (args.time_limit.is_some(), "--time-limit (each rank would stop at its own iteration)"),
        (args.repeat != 1, "--repeat"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

/// The decomposed solvers: bfm, Sinkhorn, the parabolic Monge–Ampère flow.
enum Decomposed {
    Bfm(BackAndForth),
    Sinkhorn(Sinkhorn),
    Parabolic(Box<Parabolic>),
}

impl Decomposed {
    fn method(&self) -> Method {
        match self {
            Decomposed::Bfm(_) => Method::BFM,
            Decomposed::Sinkhorn(_) => Method::SINKHORN,
            Decomposed::Parabolic(_) => Method::PARABOLIC,
        }
    }

    fn parameters(&self) -> serde_json::Value {
        match self {
            Decomposed::Bfm(s) => serde_json::to_value(s),
            Decomposed::Sinkhorn(s) => serde_json::to_value(s),
            Decomposed::Parabolic(s) => serde_json::to_value(s),
        }
        .unwrap_or_default()
    }

    /// The solve on this rank's cells of μ and ν (its planes, or its pencil block). A
    /// collective.
    fn solve(
        &self,
        ex: &MpiExchange,
        grid: &otgrid::Grid,
        cut: &Blocks,
        mu: &[f64],
        nu: &[f64],
    ) -> Result<Solution> {
        let options = Options::default();
        match (self, cut) {
            (Decomposed::Bfm(s), Blocks::Slabs(_)) => slab_bfm(ex, grid, mu, nu, s),
            (Decomposed::Bfm(s), Blocks::Pencils(_)) => pencil_bfm(ex, grid, mu, nu, s),
            (Decomposed::Sinkhorn(s), Blocks::Slabs(_)) => {
                slab_sinkhorn(ex, grid, mu, nu, s, &options)
            }
            (Decomposed::Sinkhorn(s), Blocks::Pencils(_)) => {
                pencil_sinkhorn(ex, grid, mu, nu, s, &options)
            }
            (Decomposed::Parabolic(s), Blocks::Slabs(_)) => slab_parabolic(ex, grid, mu, nu, s),
            (Decomposed::Parabolic(s), Blocks::Pencils(_)) => pencil_parabolic(ex, grid, mu, nu, s),
        }
    }
}

/// The solver a distributed run takes: `--method bfm` (and `auto`), its levels as the
/// serial solve's (the finest alone where the coarsest level would not split as the finest
/// does — slabs with a plane per rank, or pencils — and `multilevel` was not set),
/// `--method sinkhorn` (its levels with at least a plane per rank, or pencils); the flags'
/// settings and the serial CLI's default tolerance and budget.
fn solver(args: &OtArgs, grid: &otgrid::Grid, ranks: usize) -> Result<Decomposed> {
    let method = match args.method.as_str() {
        "auto" | "bfm" => Method::BFM,
        "sinkhorn" => Method::SINKHORN,
        "parabolic" => Method::PARABOLIC,
        other => {
            return Err(Error::invalid(format!(
                "--method {other}: under mpirun ({ranks} ranks) otgrid ot solves by bfm, \
                 sinkhorn or parabolic, the methods with a distributed solver (start other \
                 methods without mpirun)"
            )))
        }
    };
    let mut settings = settings(args)?;
    check_flags(method, &settings, args)?;
    method.configure(&settings)?;
    let (tolerance, budget) = settings.stopping()?;
    settings.set("tolerance", &tolerance.unwrap_or(method.default_tolerance(grid)).to_string());
    let budget = budget.unwrap_or(method.info().max_iterations);
    settings.set("max-iterations", &budget.to_string());
    if method == Method::SINKHORN {
        return Ok(Decomposed::Sinkhorn(Sinkhorn::from_settings(&settings)?));
    }
    if method == Method::PARABOLIC {
        let mut configured = method.configure(&settings)?;
        let flow = configured.as_flow_mut().expect("the parabolic method configures a flow");
        return Ok(Decomposed::Parabolic(Box::new(flow.clone())));
    }
    let mut solver = BackAndForth::from_settings(&settings)?;
    // Every level is cut as the finest is: unless multilevel=true was asked for (which the
    // solve then refuses), a hierarchy whose coarsest level does not split so runs the
    // finest grid only.
    let coarsest = solver.levels(grid).remove(0);
    let cut = Blocks::spread(grid, ranks)?.cut();
    if let Err(e) = blocks::fits(&coarsest, ranks, cut) {
        if settings.get("multilevel").is_none() {
            tracing::warn!(
                "bfm's coarsest level {coarsest} does not split over {ranks} ranks ({e}): \
                 solving the finest grid only (multilevel=false)"
            );
            solver.multilevel = false;
        }
    }
    Ok(Decomposed::Bfm(solver))
}

/// `otgrid ot` on every rank of `ex` (see the module's description). A collective: every
/// rank returns the same verdict.
pub fn ot(args: &OtArgs, report: &mut Report, ex: &MpiExchange) -> Result<()> {
    let ranks = ex.size();
    let prepared = prepare(args, report, ranks);
    let (specs, reading, solver, grid) = agree(ex, prepared, "reading the problem")?;
    let cut = Blocks::spread(&grid, ranks)?;
    let planes = cut.planes(ex.rank());
    let window = cut.window(ex.rank());
    let sample = |k: usize, what: &str| specs[k].sample_window(&grid, &window, what, &reading);
    let sampled = sample(0, "source").and_then(|mu| Ok((mu, sample(1, "target")?)));
    let (mu, nu) = agree(ex, sampled, "sampling the densities")?;
    let (mu, source_mass) = cut.density(ex, mu, "source")?;
    let (nu, target_mass) = cut.density(ex, nu, "target")?;
    let masses = (source_mass, target_mass);
    match &cut {
        Blocks::Slabs(_) => tracing::info!("rank {} of {ranks}: planes {planes:?}", ex.rank()),
        Blocks::Pencils(p) => tracing::info!(
            "rank {} of {ranks}: planes {planes:?}, rows {:?} ({} × {} pencils)",
            ex.rank(),
            p.rows(ex.rank()),
            p.shape().0,
            p.shape().1
        ),
    }
    let result = solver.solve(ex, &grid, &cut, &mu, &nu)?;
    report.put("outcome", result.outcome.name());
    report.put("converged", result.outcome == otgrid::ot::Outcome::Converged);
    if let Some(floor) = result.outcome.floor() {
        report.put("discretisation_floor", floor);
    }
    report.put("stop_reason", &result.stop_reason);
    report.put("iterations", result.iterations);
    report.put("w2_squared", result.w2_squared());
    report.put("stopping_measure", solver.method().stopping_measure());
    report.put("tolerance", &solver.parameters()["tolerance"]);
    report.put("marginal_error", result.marginal_error);
    report.put("seconds", ex.max(result.seconds));
    report.put("source_mass", masses.0);
    report.put("target_mass", masses.1);
    for (k, v) in &result.scalars {
        report.put(k, v);
    }
    if !result.outcome.is_solved() && !args.keep_unconverged {
        return Err(Error::NotConverged {
            method: result.method.into(),
            iterations: result.iterations,
            residual: result.marginal_error,
            reason: format!(
                "{} ({}); nothing written (--keep-unconverged writes it anyway)",
                result.stop_reason,
                result.outcome.name()
            ),
        });
    }
    let mut output = match &cut {
        Blocks::Slabs(_) => slab_output(ex, &grid, (&mu, &nu), masses, &result)?,
        Blocks::Pencils(_) => pencil_output(ex, &grid, (&mu, &nu), masses, &result)?,
    };
    if let Some(exact) = super::ot::exact_solution(&specs[0], &specs[1])? {
        // The closed-form map error, as the serial CLI measures it: each rank's cells' sums,
        // added over the ranks.
        let map = output
            .fields()
            .get("map")
            .ok_or_else(|| Error::invalid("distributed output: no map field"))?
            .data();
        let t = map.as_slice().expect("contiguous");
        let peak = ex.max(mu.iter().copied().fold(0.0, f64::max));
        let mine =
            MapErrorSums::over(&grid, cut.cells(ex.rank()), &mu, t, peak, |x, y| exact.map(x, y));
        let e = MapErrorSums {
            bulk: ex.sum(mine.bulk),
            bulk_mass: ex.sum(mine.bulk_mass),
            max: ex.max(mine.max),
            all: ex.sum(mine.all),
            total: ex.sum(mine.total),
        }
        .finish();
        report.put("exact_w2_squared", exact.w2_squared());
        report.put("map_error_l2_bulk", e.l2);
        report.put("map_error_max_bulk", e.max);
        output.set_attribute("map_error_l2_bulk", AttrValue::Number(e.l2))?;
        output.set_attribute("map_error_max_bulk", AttrValue::Number(e.max))?;
    }
    output.set_attribute("source_spec", AttrValue::Text(args.source.clone()))?;
    output.set_attribute("target_spec", AttrValue::Text(args.target.clone()))?;
    let parameters = report.get("parameters").cloned().unwrap_or_default();
    output.set_attribute("parameters", AttrValue::Text(parameters.to_string()))?;
    let written = write_collective(&output, &args.out, ex)?;
    report.put("output", written.hdf5.display().to_string());
    if ex.rank() == 0 && !report.json {
        report.print_text(&["parameters", "source_spec", "target_spec"]);
        if !result.outcome.is_solved() {
            println!("warning: not converged ({})", result.stop_reason);
        }
    }
    Ok(())
}

/// Everything before the densities, on each rank alike: the checks, the grid, the density
/// specifications, how input files are read, and the solver.
fn prepare(
    args: &OtArgs,
    report: &mut Report,
    ranks: usize,
) -> Result<([DensitySpec; 2], Inputs, Decomposed, otgrid::Grid)> {
    if let Some(flag) = refused_options(args) {
        return Err(Error::invalid(format!("{flag} does not apply to a distributed run")));
    }
    let grid = args.grid.resolve("unit_square_256")?;
    // (The cut first, as for any method: slabs, pencils on a 3D grid beyond its planes, or a 2D
    // grid's refusal.)
    Blocks::spread(&grid, ranks)?;
    Problem::check_grid(&grid)?;
    report.put("grid", &grid);
    report.put("ranks", ranks);
    let solver = solver(args, &grid, ranks)?;
    memory(&grid, solver.method(), ranks).check(report.memory_limit)?;
    report.put("source_spec", &args.source);
    report.put("target_spec", &args.target);
    let base = Path::new(".");
    let mut specs =
        [DensitySpec::parse(&args.source, "source")?, DensitySpec::parse(&args.target, "target")?];
    if let Some(b) = args.bandwidth {
        super::ot::apply_bandwidth(b, &mut specs)?;
    }
    let inputs: Vec<(String, PathBuf)> = [("source", &specs[0]), ("target", &specs[1])]
        .into_iter()
        .filter_map(|(what, spec)| spec.input_file(base).map(|p| (what.to_string(), p)))
        .collect();
    check_output_path(&args.out, &inputs)?;
    let reading = Inputs { base: base.to_path_buf(), resample: args.resample };
    let method = solver.method();
    report.put("method", method.name());
    let parameters = serde_json::json!({
        "method": method.name(),
        "solver": solver.parameters(),
        "stopping_measure": method.stopping_measure(),
        "source": &args.source,
        "target": &args.target,
        "resample": args.resample,
        "grid": &grid,
        "ranks": ranks,
    });
    report.put("parameters", &parameters);
    Ok((specs, reading, solver, grid))
}
