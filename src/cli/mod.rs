//! Command-line interface: argument parsing, logging set-up, and one module per subcommand.
//!
//! Errors print as one line `error: …` on stderr and exit with status 2 (as clap does for
//! bad arguments); results go to stdout.

mod demo;
mod flow;
mod info;
#[cfg(feature = "distributed")]
mod mpi;
mod ot;
mod pde;
mod plot;
mod progress;
mod sample;
mod study;
mod verify;

use clap::{Args, Parser, Subcommand};
use otgrid::grid::GridSpec;
use otgrid::{Grid, Result};

#[derive(Parser, Debug)]
#[command(
    name = "otgrid",
    version,
    about = "Optimal transport and PDE solvers on regular 2D/3D grids, with HDF5 + XDMF output for ParaView",
    propagate_version = true
)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors; no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Peak memory a run may use, e.g. 64G (default: the machine's available memory); runs
    /// whose estimate exceeds it are refused before allocating.
    #[arg(long, global = true, value_name = "SIZE")]
    memory_limit: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Print a results file: grid, fields (min, max, mass), time steps, diagnostics, attributes.
    Info(info::InfoArgs),
    /// Write a demo field set (Gaussian density, its gradient, a heat-kernel time series) with its XDMF sidecar.
    Demo(demo::DemoArgs),
    /// Brenier map between two densities (quadratic cost): potentials, map, inverse map, push-forward, W₂². Built with the `distributed` feature, `mpirun -np P otgrid ot …` solves by bfm on slabs of the grid and writes one file collectively (docs/distributed.md).
    Ot(ot::OtArgs),
    /// Run the OT solvers on cases with closed-form Brenier maps at several resolutions (or the gradient-flow zoo, --suite flows); print errors, W₂² errors, observed orders, iterations, times.
    Verify(verify::VerifyArgs),
    /// Solve −∇·(a∇u) + b·∇u + c u = s from a problem file.
    Elliptic(pde::ProblemArgs),
    /// Solve ∂ₜu = ∇·(a∇u) − b·∇u − c u + s (θ-scheme) from a problem file; writes a time series.
    Parabolic(pde::TimeArgs),
    /// Solve ∂ₜρ = ∇·(D∇ρ + ρ∇V) (Scharfetter–Gummel, implicit Euler) from a problem file.
    FokkerPlanck(pde::TimeArgs),
    /// Wasserstein gradient flow of an energy by JKO steps (entropy, porous medium, potentials, KL to a target); writes a time series.
    Flow(flow::FlowArgs),
    /// Push points through a computed map (T = ∇φ, or its inverse with --inverse).
    Push(sample::PushArgs),
    /// One-step generator: draw exactly from a result's source density and push through its map.
    Sample(sample::SampleArgs),
    /// Distances between two point sets: exact W₂ (assignment), sliced W₂, MMD², energy distance.
    Compare(sample::CompareArgs),
    /// Experiments with fitted rates, written as CSV tables and a PNG plot.
    Study(study::StudyArgs),
}

/// Grid selection shared by every subcommand that builds a grid: a mesh file or built-in
/// mesh name, or explicit flags.
#[derive(Args, Debug, Clone)]
pub struct GridArgs {
    /// Grid file (TOML, see meshes/) or built-in mesh name, e.g. unit_square_256.
    #[arg(long, value_name = "FILE|NAME", conflicts_with_all = ["grid", "domain", "bc"])]
    pub mesh: Option<String>,
    /// Cells per axis, x first: 256x256 (2D) or 64x64x64 (3D).
    #[arg(long, value_name = "NXxNY[xNZ]")]
    pub grid: Option<String>,
    /// Box as lower,upper per axis, x first: 0,1,0,1[,0,1] (default: unit box).
    #[arg(long, value_name = "X0,X1,Y0,Y1[,Z0,Z1]", requires = "grid", allow_hyphen_values = true)]
    pub domain: Option<String>,
    /// Boundary kind: periodic, neumann or dirichlet; one for all axes or one per axis (comma-separated). Default neumann.
    #[arg(long, value_name = "KIND[,KIND…]", requires = "grid")]
    pub bc: Option<String>,
}

impl GridArgs {
    /// The grid these flags describe, or the mesh named `default` when none is given.
    pub fn resolve(&self, default: &str) -> Result<Grid> {
        match (&self.mesh, &self.grid) {
            (Some(mesh), _) => GridSpec::load(mesh),
            (None, Some(shape)) => {
                GridSpec::from_flags(shape, self.domain.as_deref(), self.bc.as_deref())
            }
            (None, None) => GridSpec::load(default),
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        (false, 2) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
    progress::set_quiet(quiet);
}

/// What a command reports. With `--json`, printed as one JSON object on stdout — on success
/// (`"status": "ok"`) and on failure (`"status": "error"`, `"error"`, and whatever the
/// command had recorded: grid, parameters, outcome) — via serde, numbers at full precision.
#[derive(Debug, Default)]
pub struct Report {
    /// Whether the command was asked for JSON.
    pub json: bool,
    /// Set by a command that printed its own JSON document.
    pub printed: bool,
    /// Peak memory a run may use (`--memory-limit`); `None`: the machine's available memory.
    pub memory_limit: Option<u64>,
    entries: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// Records `key` (replacing an earlier value).
    pub fn put(&mut self, key: &str, value: impl serde::Serialize) {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.entries.insert(key.to_string(), value);
    }

    /// Prints the entries as `key value` lines (numbers in scientific notation), leaving out
    /// `skip`; a grid prints as its description.
    #[cfg(feature = "distributed")]
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.entries.get(key)
    }

    pub fn print_text(&self, skip: &[&str]) {
        for (k, v) in self.entries.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
            match v {
                serde_json::Value::String(s) => println!("{k:<20} {s}"),
                serde_json::Value::Number(n) => match n.as_f64() {
                    Some(x) if !n.is_u64() && !n.is_i64() => println!("{k:<20} {x:.8e}"),
                    _ => println!("{k:<20} {n}"),
                },
                serde_json::Value::Object(o) if o.contains_key("description") => {
                    println!("{k:<20} {}", o["description"].as_str().unwrap_or(""))
                }
                other => println!("{k:<20} {other}"),
            }
        }
    }

    /// The JSON document: `status`, then `error` when failed, then the entries.
    fn document(&self, error: Option<&str>) -> String {
        let mut doc = serde_json::Map::new();
        doc.insert("status".into(), if error.is_some() { "error" } else { "ok" }.into());
        if let Some(e) = error {
            doc.insert("error".into(), e.into());
        }
        doc.extend(self.entries.clone());
        serde_json::to_string_pretty(&serde_json::Value::Object(doc))
            .unwrap_or_else(|e| format!("{{\"status\": \"error\", \"error\": \"JSON: {e}\"}}"))
    }
}

impl Command {
    /// Whether `--json` was given.
    fn json(&self) -> bool {
        match self {
            Command::Ot(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Flow(a) => a.json,
            Command::Push(a) => a.json,
            Command::Sample(a) => a.json,
            Command::Compare(a) => a.json,
            Command::Study(a) => a.json(),
            Command::Elliptic(a) => a.json,
            Command::Parabolic(a) | Command::FokkerPlanck(a) => a.problem.json,
            Command::Info(_) | Command::Demo(_) => false,
        }
    }
}

/// Where checkpoints of the run writing `out` go: `NAME.checkpoint.h5` next to it.
pub fn checkpoint_path(out: &std::path::Path) -> std::path::PathBuf {
    let stem = out.file_stem().map_or("run".into(), |s| s.to_string_lossy().to_string());
    out.with_file_name(format!("{stem}.checkpoint.h5"))
}

/// Removes a run's checkpoint (and its sidecar) once the run's output is complete.
pub fn remove_checkpoint(path: Option<&std::path::Path>, report: &mut Report) -> Result<()> {
    if let Some(path) = path {
        for p in [path.to_path_buf(), path.with_extension("xmf")] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(otgrid::Error::io(&p, e)),
            }
        }
        report.put("checkpoint_removed", path.display().to_string());
    }
    Ok(())
}

/// The command-line flag that addresses a library error (the library names no flags).
fn flag_hint(e: &otgrid::Error) -> Option<&'static str> {
    use otgrid::Error as E;
    match e {
        E::GridMismatch { .. } => Some("--resample maps it"),
        E::Memory { .. } => Some("--memory-limit SIZE sets the limit"),
        E::TooManySteps { .. } => Some("--force runs them"),
        E::UnsuitedMethod { .. } => Some("use --method bfm"),
        E::Unsupported { .. } => Some("rebuild with the default features"),
        _ => None,
    }
}

/// Runs the CLI and returns the process exit status.
pub fn main() -> i32 {
    // A closed stdout (`otgrid info f.h5 | head -1`) ends the program quietly, as for any
    // Unix tool, instead of a panic in `println!`.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Under an MPI launcher (the `distributed` feature) the process joins MPI's world; rank
    // 0 alone logs, prints the report and errors (the ranks agree on every error).
    #[cfg(feature = "distributed")]
    let universe = if mpi::launched() { ::mpi::initialize() } else { None };
    #[cfg(feature = "distributed")]
    let world = universe.as_ref().map(|u| otgrid::distributed::mpi::MpiExchange::new(u.world()));
    #[cfg(feature = "distributed")]
    let root = world.as_ref().is_none_or(|w| otgrid::distributed::Exchange::rank(w) == 0);
    #[cfg(not(feature = "distributed"))]
    let root = true;
    init_logging(cli.verbose, cli.quiet || !root);
    if let Err(e) = otgrid::io::remove_temporaries_on_signal() {
        tracing::warn!("{e}; an interrupted run may leave temporary files");
    }
    let mut report = Report { json: cli.command.json(), ..Default::default() };
    if let Some(text) = &cli.memory_limit {
        match otgrid::resources::parse_size(text) {
            Ok(bytes) => report.memory_limit = Some(bytes),
            Err(e) => {
                eprintln!("error: --memory-limit: {e}");
                return 2;
            }
        }
    }
    #[cfg(feature = "distributed")]
    let result = match (&world, &cli.command) {
        (Some(world), Command::Ot(args)) => mpi::ot(args, &mut report, world),
        (Some(world), _) if otgrid::distributed::Exchange::size(world) > 1 => {
            Err(mpi::refuse(otgrid::distributed::Exchange::size(world)))
        }
        _ => run(&cli.command, &mut report),
    };
    #[cfg(not(feature = "distributed"))]
    let result = run(&cli.command, &mut report);
    match result {
        Ok(()) => {
            if report.json && !report.printed && root {
                println!("{}", report.document(None));
            }
            0
        }
        Err(e) => {
            let mut message = otgrid::error::one_line(&e.to_string());
            if let Some(hint) = flag_hint(&e) {
                message = format!("{message} ({hint})");
            }
            if report.json && root {
                println!("{}", report.document(Some(&message)));
            }
            if root {
                eprintln!("error: {message}");
            }
            e.exit_code()
        }
    }
}

/// Runs `command` in this process.
fn run(command: &Command, report: &mut Report) -> Result<()> {
    match command {
        Command::Info(args) => info::run(args, report),
        Command::Demo(args) => demo::run(args, report),
        Command::Ot(args) => ot::run(args, report),
        Command::Verify(args) => verify::run(args, report),
        Command::Elliptic(args) => pde::elliptic(args, report),
        Command::Parabolic(args) => pde::parabolic(args, report),
        Command::FokkerPlanck(args) => pde::fokker_planck(args, report),
        Command::Flow(args) => flow::run(args, report),
        Command::Push(args) => sample::push(args, report),
        Command::Sample(args) => sample::sample(args, report),
        Command::Compare(args) => sample::compare(args, report),
        Command::Study(args) => study::run(args, report),
    }
}
