//! Command-line interface: argument parsing, logging set-up, and one module per subcommand.
//!
//! Errors print as one line `error: …` on stderr and exit with status 2 (as clap does for
//! bad arguments); results go to stdout.

mod demo;
mod info;
mod ot;
mod pde;
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a results file: grid, fields (min, max, mass), time steps, diagnostics, attributes.
    Info(info::InfoArgs),
    /// Write a demo field set (Gaussian density, its gradient, a heat-kernel time series) with its XDMF sidecar.
    Demo(demo::DemoArgs),
    /// Brenier map between two densities (quadratic cost): potentials, map, inverse map, push-forward, W₂².
    Ot(ot::OtArgs),
    /// Run the OT solvers on cases with closed-form Brenier maps at several resolutions; print errors, W₂² errors, observed orders, iterations, times.
    Verify(verify::VerifyArgs),
    /// Solve −∇·(a∇u) + b·∇u + c u = s from a problem file.
    Elliptic(pde::ProblemArgs),
    /// Solve ∂ₜu = ∇·(a∇u) − b·∇u − c u + s (θ-scheme) from a problem file; writes a time series.
    Parabolic(pde::TimeArgs),
    /// Solve ∂ₜρ = ∇·(D∇ρ + ρ∇V) (Scharfetter–Gummel, implicit Euler) from a problem file.
    FokkerPlanck(pde::TimeArgs),
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
    otgrid::progress::set_quiet(quiet);
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
    init_logging(cli.verbose, cli.quiet);
    if let Err(e) = otgrid::io::remove_temporaries_on_signal() {
        tracing::warn!("{e}; an interrupted run may leave temporary files");
    }
    let result = match &cli.command {
        Command::Info(args) => info::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Ot(args) => ot::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Elliptic(args) => pde::elliptic(args),
        Command::Parabolic(args) => pde::parabolic(args),
        Command::FokkerPlanck(args) => pde::fokker_planck(args),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", otgrid::error::one_line(&e.to_string()));
            e.exit_code()
        }
    }
}
