//! Checks the slab-decomposed Poisson solver and c-transform against the serial ones under
//! MPI:
//!
//! ```text
//! cargo build --release --features distributed --example distributed_poisson_check
//! mpirun -np 4 --oversubscribe target/release/examples/distributed_poisson_check
//! ```
//!
//! Every rank solves `(−Δ_h + c)u = f` for its planes of 64³, 96³ and non-divisible grids
//! (periodic, Neumann, Dirichlet and mixed axes) and compares them with the serial solve of
//! the whole grid, then does the same for the c-transform, the soft c-transform, the
//! halo-exchanged `(−Δ_h + c)`, `−∇·(w∇) + d` and `∇_h` of a potential and the deposit
//! push-forward `T#μ` by `x + 0.3∇f` (mass crossing slabs) and a dot product over the
//! ranks (these bitwise: the serial order); rank 0 prints the solve's largest difference
//! (relative to the solution's peak), the seconds of each distributed operation and the
//! values each rank sent, and the process exits non-zero if the solve is off by more than
//! 1e-12 or any other case is not the serial one to the bit. Then Sinkhorn (ε = 0.01, single grid) between two
//! Gaussian mixtures on 64³ (box) and 96×90×83 (torus): rank 0 solves the whole grid
//! serially and sends each rank its block; every rank compares its slab solve with it (to the
//! bit: potentials, iterations, history, divergence). Then
//! bfm (one level, the deposit push-forward) between the same mixtures on 64³ and 67×61×59
//! (boxes) and the 48³ torus: iterations, outcome and potentials to the bit. Before those, the
//! Poisson solve on y–z pencils (every `py × pz` arrangement of the ranks) against the
//! serial one to the bit, on the 64³ torus and a 96×90×3 box. `--pencils` runs only those
//! and Sinkhorn on pencils (a 48×44×5 box, multiscale, and a 40×36×4 torus) against the
//! serial solve to the bit — meant for more ranks than those grids' planes (e.g. `-np 6`). `--grid NXxNYxNZ` runs that grid
//! alone; a
//! decomposition the solvers refuse (more ranks than planes) ends every rank with exit
//! status 1 and one error line from rank 0.
//!
//! With `--out DIR` each case's right-hand side, solution and a vector field are also
//! written: by rank 0 alone with the serial writer (`DIR/caseK-serial.h5`) and by every rank
//! collectively with [`write_collective`] (`DIR/caseK-npP.h5`), both with one fixed
//! provenance, so that `h5diff` finds them identical; rank 0 reads the collective file back
//! and checks its fields against the serial ones to the bit.

use otgrid::distributed::mpi::MpiExchange;
use otgrid::distributed::{
    pencil_sinkhorn, slab_bfm, slab_c_transform, slab_divergence, slab_dot, slab_gradient,
    slab_push_forward, slab_shifted_laplacian, slab_sinkhorn, slab_soft_transform,
    slab_weighted_laplacian, write_collective, Exchange, PencilPoissonSolver, Single,
    SlabPoissonSolver,
};
use otgrid::grid::{Axis, BoundaryKind, Grid, PencilDecomposition};
use otgrid::io::{AttrValue, Field, Output, Provenance, FORMAT_VERSION};
use otgrid::operators::{
    apply_shifted_laplacian, apply_weighted_laplacian_plus, divergence, gradient,
};
use otgrid::ot::bfm::PushForward;
use otgrid::ot::{c_transform, push_forward_adaptive};
use otgrid::ot::{BackAndForth, Options, Problem, Sinkhorn, Solver};
use otgrid::spectral::{MeanPolicy, PoissonSolver, Symbol};
use otgrid::{ScalarField, VectorField};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() {
    let universe = mpi::initialize().expect("MPI is initialised once");
    let ex = MpiExchange::new(universe.world());
    use BoundaryKind::*;
    let mut cases: Vec<([usize; 3], [BoundaryKind; 3], f64)> = vec![
        ([64, 64, 64], [Periodic, Periodic, Periodic], 0.0),
        ([64, 64, 64], [Neumann, Neumann, Neumann], 0.0),
        ([96, 96, 96], [Periodic, Neumann, Dirichlet], 0.0),
        ([67, 61, 59], [Neumann, Periodic, Neumann], 1.5),
    ];
    // `--grid NXxNYxNZ`: that grid alone (Neumann), e.g. one with fewer planes than ranks.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--grid") {
        let shape: Vec<usize> = args
            .get(i + 1)
            .map(|g| g.split('x').filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        if shape.len() != 3 {
            if ex.rank() == 0 {
                eprintln!("error: --grid wants NXxNYxNZ, e.g. 64x64x64");
            }
            std::process::exit(2);
        }
        cases = vec![([shape[0], shape[1], shape[2]], [Neumann; 3], 0.0)];
    }
    let out_dir = args.iter().position(|a| a == "--out").map(|i| {
        PathBuf::from(args.get(i + 1).cloned().unwrap_or_else(|| {
            if ex.rank() == 0 {
                eprintln!("error: --out wants a directory");
            }
            std::process::exit(2)
        }))
    });
    // `--pencils`: the pencil checks alone (run with more ranks than a grid's planes).
    if args.iter().any(|a| a == "--pencils") {
        let ok = pencil_cases(&ex) & pencil_sinkhorn_cases(&ex);
        if !ok {
            if ex.rank() == 0 {
                eprintln!("error: a solve on pencils differs from the serial one");
            }
            std::process::exit(1);
        }
        return;
    }
    let mut failed = false;
    for (case, (shape, kinds, shift)) in cases.into_iter().enumerate() {
        let axes = (0..3)
            .map(|a| Axis { cells: shape[a], lower: 0.0, upper: 1.0, boundary: kinds[a] })
            .collect();
        let grid = Grid::new(axes).expect("a valid grid");
        let f = ScalarField::from_fn(&grid, |x| {
            (3.0 * x[0]).sin() + (x[1] * x[1] - 0.2 * x[2]).cos() * (1.0 + x[0] * x[2])
        });
        let f: Vec<f64> = f.data().iter().copied().collect();
        let mut serial = PoissonSolver::new(&grid, shift, Symbol::Discrete)
            .expect("planned")
            .with_mean_policy(MeanPolicy::Project);
        let mut expected = vec![0.0; f.len()];
        serial.solve(&f, &mut expected).expect("serial solve");
        let peak = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut solver = or_exit(&ex, SlabPoissonSolver::new(&grid, shift, Symbol::Discrete, &ex))
            .with_mean_policy(MeanPolicy::Project);
        let cells = solver.decomposition().cells(ex.rank());
        let mut out = vec![0.0; cells.len()];
        let start = Instant::now();
        or_exit(&ex, solver.solve(&ex, &f[cells.clone()], &mut out));
        let seconds = ex.max(start.elapsed().as_secs_f64());
        let local =
            out.iter().zip(&expected[cells.clone()]).fold(0.0f64, |m, (v, e)| m.max((v - e).abs()));
        let worst = ex.max(local) / peak;
        let kept = cells.len() / ex.size();
        let sent = ex.max(2.0 * (cells.len() - kept.min(cells.len())) as f64);
        if ex.rank() == 0 {
            println!(
                "{}x{}x{} {:?} c={shift}: ranks {}, max |u − u_serial|/max|u| = {worst:.2e}, solve {seconds:.3} s, ≈{sent:.0} values sent per rank",
                shape[0], shape[1], shape[2], kinds, ex.size()
            );
        }
        let within = worst <= 1e-12; // false for NaN too
        failed |= !within;
        if let Some(dir) = &out_dir {
            let case = CaseFiles { dir, case, grid: &grid, f: &f, u: &expected };
            failed |= !case.write_and_compare(&ex, solver.decomposition(), &out);
        }

        // The c-transform of a displacement potential on the same grid.
        let potential: Vec<f64> = f.iter().map(|v| 0.01 * v).collect();
        let field = ScalarField::from_vec(&grid, potential.clone()).expect("the grid's size");
        let expected = c_transform(&field, &grid).expect("serial c-transform");
        let expected = expected.data().as_slice().expect("contiguous");
        let start = Instant::now();
        let q = or_exit(&ex, slab_c_transform(&ex, &grid, &potential[cells.clone()]));
        let seconds = ex.max(start.elapsed().as_secs_f64());
        if ex.rank() == 0 {
            println!("  c-transform: {seconds:.3} s");
        }
        failed |= !bitwise(&ex, "c-transform on slabs", q == expected[cells.clone()]);

        // The halo-exchanged finite-difference operator, against the serial stencil.
        let mut serial_apply = vec![0.0; f.len()];
        apply_shifted_laplacian(&grid, shift, &f, &mut serial_apply);
        let applied = or_exit(&ex, slab_shifted_laplacian(&ex, &grid, shift, &f[cells.clone()]));
        failed |= !bitwise(&ex, "(−Δ_h + c) on slabs", applied == serial_apply[cells.clone()]);

        // The weighted operator of bfm's metric, −∇·(w∇u) + d u, with halos of u and w.
        let w: Vec<f64> = f.iter().map(|v| 0.05 + v * v).collect();
        let diagonal: Vec<f64> = f.iter().map(|v| 2.0 + v.sin()).collect();
        let mut serial_apply = vec![0.0; f.len()];
        apply_weighted_laplacian_plus(&grid, &w, Some(&diagonal), &f, &mut serial_apply);
        let applied = or_exit(
            &ex,
            slab_weighted_laplacian(
                &ex,
                &grid,
                &w[cells.clone()],
                Some(&diagonal[cells.clone()]),
                &f[cells.clone()],
            ),
        );
        failed |= !bitwise(&ex, "−∇·(w∇) + d on slabs", applied == serial_apply[cells.clone()]);

        // The gradient (bfm's map x + ∇p), with one halo exchange.
        let field = ScalarField::from_vec(&grid, f.clone()).expect("the grid's size");
        let serial_gradient = gradient(&field);
        let serial_gradient = serial_gradient.data().as_slice().expect("contiguous");
        let applied = or_exit(&ex, slab_gradient(&ex, &grid, &f[cells.clone()]));
        failed |= !bitwise(
            &ex,
            "∇_h on slabs",
            applied == serial_gradient[cells.start * 3..cells.end * 3],
        );
        // The divergence of that gradient (one-sided differences at the faces).
        let serial_divergence = divergence(&gradient(&field));
        let serial_divergence = serial_divergence.data().as_slice().expect("contiguous");
        let applied = or_exit(&ex, slab_divergence(&ex, &grid, &applied));
        failed |= !bitwise(&ex, "∇_h· on slabs", applied == serial_divergence[cells.clone()]);

        // The deposit push-forward T#μ (bfm's) of a density by x + ∇p, p large enough that
        // mass crosses slabs: shares land on other ranks' planes.
        let mu: Vec<f64> = f.iter().map(|v| 1.0 + 0.5 * v.sin()).collect();
        let mut map = serial_gradient.to_vec();
        let x = VectorField::from_fn(&grid, |p, out| out.copy_from_slice(p));
        map.iter_mut().zip(x.data().iter()).for_each(|(m, x)| *m = x + 0.3 * *m);
        let mu_field = ScalarField::from_vec(&grid, mu.clone()).expect("the grid's size");
        let mut map_field = VectorField::zeros(&grid);
        map_field.data_mut().as_slice_mut().expect("contiguous").copy_from_slice(&map);
        let serial_pushed = push_forward_adaptive(&mu_field, &map_field, &grid, 1).expect("serial");
        let serial_pushed = serial_pushed.data().as_slice().expect("contiguous");
        let start = Instant::now();
        let pushed = or_exit(
            &ex,
            slab_push_forward(
                &ex,
                &grid,
                &mu[cells.clone()],
                &map[cells.start * 3..cells.end * 3],
                1,
            ),
        );
        let seconds = ex.max(start.elapsed().as_secs_f64());
        if ex.rank() == 0 {
            println!("  T#μ deposit: {seconds:.3} s");
        }
        failed |= !bitwise(&ex, "T#μ deposit on slabs", pushed == serial_pushed[cells.clone()]);

        // A dot product over the ranks, added as the serial one (the metric's CG sums).
        let serial_dot = otgrid::field::ordered_sum(mu.len(), |r| {
            mu[r.clone()].iter().zip(&serial_pushed[r]).map(|(x, y)| x * y).sum()
        });
        let slabs = solver.decomposition();
        let sum = slab_dot(&ex, slabs, &mu[cells.clone()], &serial_pushed[cells.clone()]);
        failed |= !bitwise(&ex, "Σ a·b on slabs", sum.to_bits() == serial_dot.to_bits());

        // The soft c-transform (Sinkhorn's kernel) at ε = 0.01.
        let eps = 0.01;
        let serial_lse = serial_soft_transform(&grid, eps, &potential);
        let lse = or_exit(&ex, slab_soft_transform(&ex, &grid, eps, &potential[cells.clone()]));
        let same = lse == serial_lse[cells];
        failed |= !bitwise(&ex, &format!("soft c-transform (ε = {eps}) on slabs"), same);
    }
    if args.iter().all(|a| a != "--grid") {
        failed |= !pencil_cases(&ex);
        failed |= !sinkhorn_cases(&ex);
        failed |= !bfm_cases(&ex);
    }
    if failed {
        if ex.rank() == 0 {
            eprintln!("error: a distributed solve differs from the serial one");
        }
        std::process::exit(1);
    }
}

/// Whether every rank's block equals the serial one to the bit; rank 0 prints the verdict
/// for `name`.
fn bitwise(ex: &MpiExchange, name: &str, same: bool) -> bool {
    let all_same = ex.max(f64::from(u8::from(!same))) == 0.0;
    if ex.rank() == 0 {
        println!("  {name}: {}", if all_same { "bitwise equal" } else { "DIFFERS" });
    }
    all_same
}

/// The Poisson solve on y–z pencils against the serial one, to the bit: the 64³ torus and a
/// 96×90×3 box (fewer planes than ranks at P = 4) on every `py × pz` arrangement of the
/// ranks that fits, then on the arrangement [`PencilDecomposition::new`] picks.
fn pencil_cases(ex: &MpiExchange) -> bool {
    use BoundaryKind::*;
    let p = ex.size();
    let mut all = true;
    for (shape, kinds, shift) in [
        ([64, 64, 64], [Periodic, Periodic, Periodic], 0.0),
        ([96, 90, 3], [Neumann, Periodic, Dirichlet], 0.5),
    ] {
        let axes = (0..3)
            .map(|a| Axis { cells: shape[a], lower: 0.0, upper: 1.0, boundary: kinds[a] })
            .collect();
        let grid = Grid::new(axes).expect("a valid grid");
        let f = ScalarField::from_fn(&grid, |x| {
            (3.0 * x[0]).sin() + (x[1] * x[1] - 0.2 * x[2]).cos() * (1.0 + x[0] * x[2])
        });
        let f: Vec<f64> = f.data().iter().copied().collect();
        let mut serial = PoissonSolver::new(&grid, shift, Symbol::Discrete)
            .expect("planned")
            .with_mean_policy(MeanPolicy::Project);
        let mut expected = vec![0.0; f.len()];
        serial.solve(&f, &mut expected).expect("serial solve");
        let mut arrangements: Vec<Option<(usize, usize)>> = (1..=p)
            .filter(|pz| p % pz == 0 && *pz <= shape[2])
            .map(|pz| Some((p / pz, pz)))
            .collect();
        arrangements.push(None);
        for arrangement in arrangements {
            let pencils = match arrangement {
                Some((py, pz)) => PencilDecomposition::with_shape(&grid, py, pz),
                None => PencilDecomposition::new(&grid, p),
            };
            let pencils = or_exit(ex, pencils);
            let (py, pz) = pencils.shape();
            let mut solver =
                or_exit(ex, PencilPoissonSolver::on(pencils, shift, Symbol::Discrete, ex))
                    .with_mean_policy(MeanPolicy::Project);
            let block = solver.decomposition().block(ex.rank(), &f);
            let mut out = vec![0.0; block.len()];
            let start = Instant::now();
            or_exit(ex, solver.solve(ex, &block, &mut out));
            let seconds = ex.max(start.elapsed().as_secs_f64());
            let same = out == solver.decomposition().block(ex.rank(), &expected);
            if ex.rank() == 0 {
                println!(
                    "{}x{}x{} {kinds:?} c={shift}: {py} × {pz} pencils, solve {seconds:.3} s",
                    shape[0], shape[1], shape[2]
                );
            }
            all &= bitwise(ex, "Poisson solve on pencils", same);
        }
    }
    all
}

/// Sinkhorn on y–z pencils against the serial solve (every rank solves the small grid
/// serially too): a 48×44×5 box with its multiscale level (24×22×5) and a 40×36×4 torus,
/// ε = 0.01 — the serial solve to the bit ([`same_solve`], p and q).
fn pencil_sinkhorn_cases(ex: &MpiExchange) -> bool {
    use BoundaryKind::*;
    let mut all = true;
    for (shape, kind, multiscale) in [([48, 44, 5], Neumann, true), ([40, 36, 4], Periodic, false)]
    {
        let axes = (0..3)
            .map(|a| Axis { cells: shape[a], lower: 0.0, upper: 1.0, boundary: kind })
            .collect();
        let grid = Grid::new(axes).expect("a valid grid");
        let problem = or_exit(ex, mixtures(&grid));
        let solver = Sinkhorn { epsilon: Some(0.01), multiscale, ..Sinkhorn::default() };
        let options = Options::default();
        let pencils = or_exit(ex, PencilDecomposition::new(&grid, ex.size()));
        let flat = |f: &ScalarField| f.data().as_slice().expect("contiguous").to_vec();
        let block = |f: &ScalarField| pencils.block(ex.rank(), &flat(f));
        let (mu, nu) = (block(problem.source()), block(problem.target()));
        let start = Instant::now();
        let part = or_exit(ex, pencil_sinkhorn(ex, &grid, &mu, &nu, &solver, &options));
        let seconds = ex.max(start.elapsed().as_secs_f64());
        let serial = or_exit(ex, solver.solve(&problem, &options));
        let same_here = flat(&part.p) == block(&serial.p)
            && flat(&part.q) == block(&serial.q)
            && same_solve(&part, &serial);
        let same = ex.max(f64::from(u8::from(!same_here))) == 0.0;
        if ex.rank() == 0 {
            let (py, pz) = pencils.shape();
            println!(
                "sinkhorn on {py} × {pz} pencils {}x{}x{} {kind:?} ε = 0.01{}: {} iterations (serial {}), potentials, history and divergence {}; {seconds:.2} s",
                shape[0], shape[1], shape[2],
                if multiscale { " multiscale" } else { "" },
                part.iterations, serial.iterations,
                if same { "bitwise equal" } else { "DIFFER" }
            );
        }
        all &= same;
    }
    all
}

/// The serial soft c-transform: the slab transform on one rank is the serial kernel's
/// passes in the serial order, with no exchange.
fn serial_soft_transform(grid: &Grid, eps: f64, h: &[f64]) -> Vec<f64> {
    slab_soft_transform(&Single, grid, eps, h).expect("serial soft c-transform")
}

/// The value, or: rank 0 prints the error (every rank has the same one: the collectives
/// agree on errors) and every rank exits with status 1.
fn or_exit<T>(ex: &MpiExchange, result: otgrid::Result<T>) -> T {
    result.unwrap_or_else(|e| {
        if ex.rank() == 0 {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
        // The other ranks leave it to rank 0's exit, which makes mpirun end the job: exiting
        // at once, one of them could have mpirun abort rank 0 before it printed (measured:
        // the refusal of 4 ranks on 3 planes lost its line in 1 run of 6). An error on
        // another rank alone still ends the run, 10 s later.
        std::thread::sleep(std::time::Duration::from_secs(10));
        std::process::exit(1)
    })
}

/// One case's files: the serial writer's and the collective writer's, compared.
struct CaseFiles<'a> {
    dir: &'a Path,
    case: usize,
    grid: &'a Grid,
    f: &'a [f64],
    /// The serial solution.
    u: &'a [f64],
}

impl CaseFiles<'_> {
    /// The fields of one output on `grid` from the global arrays' `planes`: f, u and the
    /// vector field (x, y·z, sin z).
    fn output(&self, mut output: Output, planes: std::ops::Range<usize>, u: &[f64]) -> Output {
        let grid = output.grid().clone();
        let plane = self.grid.num_cells() / self.grid.storage_shape()[0];
        let cells = planes.start * plane..planes.end * plane;
        let scalar = |v: &[f64]| ScalarField::from_vec(&grid, v.to_vec()).expect("the grid's size");
        output.add_field("f", scalar(&self.f[cells])).expect("a field name");
        output.add_field("u", scalar(u)).expect("a field name");
        let whole = VectorField::from_fn(self.grid, |x, v| {
            v.copy_from_slice(&[x[0], x[1] * x[2], x[2].sin()]);
        });
        let part = whole.data().slice_axis(ndarray::Axis(0), planes.into()).to_owned();
        output
            .add_field("v", VectorField::new(grid, part).expect("the local shape"))
            .expect("a name");
        output.add_diagnostic("residuals", vec![1.0, 0.5, 0.25]).expect("a name");
        output.set_attribute("case", AttrValue::Integer(self.case as i64)).expect("a name");
        output.provenance = Some(Provenance {
            format_version: FORMAT_VERSION,
            otgrid_version: "check".into(),
            command_line: "distributed_poisson_check".into(),
            created: "fixed".into(),
        });
        output
    }

    /// Writes both files (the distributed solution `mine` on this rank's planes); on rank 0
    /// reads the collective one back and compares it with the serial one field by field.
    fn write_and_compare(
        &self,
        ex: &MpiExchange,
        decomposition: &otgrid::grid::SlabDecomposition,
        mine: &[f64],
    ) -> bool {
        let serial_path = self.dir.join(format!("case{}-serial.h5", self.case));
        let parallel_path = self.dir.join(format!("case{}-np{}.h5", self.case, ex.size()));
        let part = or_exit(ex, Output::slab(self.grid, decomposition, ex.rank()));
        let output = self.output(part, decomposition.planes(ex.rank()), mine);
        let start = Instant::now();
        or_exit(ex, write_collective(&output, &parallel_path, ex));
        let seconds = ex.max(start.elapsed().as_secs_f64());
        // The serial file, by rank 0 (its failure ends every rank).
        let serial = (ex.rank() == 0).then(|| {
            let all = 0..self.grid.storage_shape()[0];
            self.output(Output::new(self.grid.clone()), all, self.u).write(&serial_path)
        });
        if let Some(Err(e)) = &serial {
            eprintln!("error: {e}");
        }
        if ex.max(f64::from(u8::from(matches!(serial, Some(Err(_)))))) > 0.0 {
            std::process::exit(1);
        }
        if ex.rank() != 0 {
            return true;
        }
        let read = |p: &Path| or_exit(ex, Output::read(p));
        let (serial, parallel) = (read(&serial_path), read(&parallel_path));
        let same = serial.grid() == parallel.grid()
            && serial.fields().len() == parallel.fields().len()
            && serial.fields().iter().all(|(name, field)| {
                parallel.fields().get(name).is_some_and(|other| match (field, other) {
                    (Field::Scalar(a), Field::Scalar(b)) => a.data() == b.data(),
                    (Field::Vector(a), Field::Vector(b)) => a.data() == b.data(),
                    _ => false,
                })
            })
            && serial.diagnostics() == parallel.diagnostics()
            && serial.attributes() == parallel.attributes()
            && sidecar(&serial_path) == sidecar(&parallel_path);
        println!(
            "  collective HDF5 write: {} ({seconds:.3} s), {}",
            parallel_path.display(),
            if same {
                "same fields, diagnostics, attributes and XDMF as the serial file"
            } else {
                "DIFFERS from the serial file"
            }
        );
        same
    }
}

/// The XDMF sidecar of `h5` with the HDF5 file's name replaced by `H5`.
fn sidecar(h5: &Path) -> Option<String> {
    let name = h5.file_name()?.to_str()?;
    let text = std::fs::read_to_string(h5.with_extension("xmf")).ok()?;
    Some(text.replace(name, "H5"))
}

/// Two Gaussian mixtures on `grid` (on a floor of 0.01), the Sinkhorn and bfm cases' pair.
fn mixtures(grid: &Grid) -> otgrid::Result<Problem> {
    let bump = |c: [f64; 3], s: f64| {
        move |x: &[f64]| {
            let r2: f64 = x.iter().zip(c).map(|(x, c)| (x - c) * (x - c)).sum();
            (-r2 / (2.0 * s * s)).exp()
        }
    };
    let (a, b) = (bump([0.35, 0.4, 0.45], 0.1), bump([0.6, 0.55, 0.5], 0.12));
    let mu = ScalarField::from_fn(grid, |x| a(x) + 0.5 * b(x) + 0.01);
    let (c, d) = (bump([0.65, 0.6, 0.4], 0.08), bump([0.4, 0.5, 0.6], 0.15));
    let nu = ScalarField::from_fn(grid, |x| c(x) + d(x) + 0.01);
    Problem::new(&mu, &nu)
}

/// Every rank's planes of rank 0's whole-grid fields (`Some` on rank 0 only), one
/// `Alltoallv`.
fn scatter_from_root<const K: usize>(
    ex: &MpiExchange,
    slabs: &otgrid::grid::SlabDecomposition,
    fields: Option<[&ScalarField; K]>,
) -> Vec<Vec<f64>> {
    let cells = slabs.cells(ex.rank());
    let ranks: Vec<_> = (0..ex.size()).map(|r| slabs.cells(r)).collect();
    let mut send = Vec::new();
    if let Some(fields) = fields {
        for r in &ranks {
            for f in fields {
                send.extend_from_slice(&f.data().as_slice().expect("c")[r.clone()]);
            }
        }
    }
    let send_counts: Vec<usize> =
        ranks.iter().map(|r| if ex.rank() == 0 { K * r.len() } else { 0 }).collect();
    let send_displs: Vec<usize> = send_counts
        .iter()
        .scan(0, |a, c| {
            let d = *a;
            *a += c;
            Some(d)
        })
        .collect();
    let mut recv = vec![0.0; K * cells.len()];
    let mut recv_counts = vec![0; ex.size()];
    recv_counts[0] = K * cells.len();
    ex.all_to_all_v(
        &send,
        &send_counts,
        &send_displs,
        &mut recv,
        &recv_counts,
        &vec![0; ex.size()],
    );
    recv.chunks(cells.len()).map(<[f64]>::to_vec).collect()
}

/// bfm (one level, the deposit push-forward) between two Gaussian mixtures on box grids,
/// 64³ and 67×61×59, and on the 48³ torus: every rank's slab solve against rank 0's serial
/// solve (`multilevel: false`), iterations, outcome and potentials to the bit.
fn bfm_cases(ex: &MpiExchange) -> bool {
    use BoundaryKind::*;
    let mut all = true;
    for (shape, boundary) in
        [([64, 64, 64], Neumann), ([67, 61, 59], Neumann), ([48, 48, 48], Periodic)]
    {
        let axes =
            (0..3).map(|a| Axis { cells: shape[a], lower: 0.0, upper: 1.0, boundary }).collect();
        let grid = Grid::new(axes).expect("a valid grid");
        let problem = or_exit(ex, mixtures(&grid));
        let solver = BackAndForth {
            multilevel: false,
            push_forward: PushForward::Deposit,
            ..BackAndForth::default()
        };
        let slabs = or_exit(ex, otgrid::grid::SlabDecomposition::new(&grid, ex.size()));
        let cells = slabs.cells(ex.rank());
        let block =
            |f: &ScalarField| f.data().as_slice().expect("contiguous")[cells.clone()].to_vec();
        let start = Instant::now();
        let part = or_exit(
            ex,
            slab_bfm(ex, &grid, &block(problem.source()), &block(problem.target()), &solver),
        );
        let seconds = ex.max(start.elapsed().as_secs_f64());
        let serial = (ex.rank() == 0).then(|| {
            let t = Instant::now();
            let s = or_exit(ex, solver.solve(&problem, &Options::default()));
            (s, t.elapsed().as_secs_f64())
        });
        let blocks = scatter_from_root(ex, &slabs, serial.as_ref().map(|(s, _)| [&s.p, &s.q]));
        let flat = |f: &ScalarField| f.data().as_slice().expect("contiguous").to_vec();
        let same_here = flat(&part.p) == blocks[0] && flat(&part.q) == blocks[1];
        let same = ex.max(f64::from(u8::from(!same_here))) == 0.0;
        let ok = if let Some((s, serial_seconds)) = &serial {
            let ok = same && part.iterations == s.iterations && part.outcome == s.outcome;
            println!(
                "bfm {}x{}x{} {boundary:?} (one level, deposit): ranks {}, {} iterations (serial {}), {:?}, potentials {}; {seconds:.2} s (serial {serial_seconds:.2} s)",
                shape[0], shape[1], shape[2], ex.size(), part.iterations, s.iterations,
                part.outcome, if ok { "bitwise equal" } else { "DIFFER" }
            );
            ok
        } else {
            true
        };
        all &= ex.max(f64::from(u8::from(!ok))) == 0.0;
    }
    all
}

/// Whether a decomposed solve's whole-solve record is the serial one's to the bit: outcome,
/// iterations, history, marginal error, dual value, and the scalars but wall times.
fn same_solve(part: &otgrid::ot::Solution, serial: &otgrid::ot::Solution) -> bool {
    let timeless = |s: &otgrid::ot::Solution| -> Vec<(String, f64)> {
        s.scalars.iter().filter(|(n, _)| !n.ends_with("_seconds")).cloned().collect()
    };
    part.outcome == serial.outcome
        && part.iterations == serial.iterations
        && part.history == serial.history
        && part.marginal_error.to_bits() == serial.marginal_error.to_bits()
        && part.dual_value.to_bits() == serial.dual_value.to_bits()
        && timeless(part) == timeless(serial)
}

/// Sinkhorn on slabs against the serial solve with `multiscale: false` (rank 0 solves the
/// whole grid and sends each rank its block of the potentials): true when every case is the
/// serial solve to the bit ([`same_solve`], p and q).
fn sinkhorn_cases(ex: &MpiExchange) -> bool {
    use BoundaryKind::*;
    let mut all = true;
    for (shape, kind) in [([64, 64, 64], Neumann), ([96, 90, 83], Periodic)] {
        let axes = (0..3)
            .map(|a| Axis { cells: shape[a], lower: 0.0, upper: 1.0, boundary: kind })
            .collect();
        let grid = Grid::new(axes).expect("a valid grid");
        let problem = or_exit(ex, mixtures(&grid));
        let solver = Sinkhorn { epsilon: Some(0.01), multiscale: false, ..Sinkhorn::default() };
        let options = Options::default();
        let slabs = or_exit(ex, otgrid::grid::SlabDecomposition::new(&grid, ex.size()));
        let cells = slabs.cells(ex.rank());
        let block =
            |f: &ScalarField| f.data().as_slice().expect("contiguous")[cells.clone()].to_vec();
        let start = Instant::now();
        let part = or_exit(
            ex,
            slab_sinkhorn(
                ex,
                &grid,
                &block(problem.source()),
                &block(problem.target()),
                &solver,
                &options,
            ),
        );
        let seconds = ex.max(start.elapsed().as_secs_f64());
        // Rank 0's serial solve, its blocks of p and q sent to each rank.
        let serial = (ex.rank() == 0).then(|| {
            let t = Instant::now();
            let s = or_exit(ex, solver.solve(&problem, &options));
            (s, t.elapsed().as_secs_f64())
        });
        let n = grid.num_cells();
        let fields = serial.as_ref().map(|(s, _)| [&s.p, &s.q]);
        let blocks = scatter_from_root(ex, &slabs, fields);
        let (p, q) = (&blocks[0][..], &blocks[1][..]);
        let flat = |f: &ScalarField| f.data().as_slice().expect("contiguous").to_vec();
        let same_here = flat(&part.p) == p && flat(&part.q) == q;
        let potentials = ex.max(f64::from(u8::from(!same_here))) == 0.0;
        let ok = if let Some((s, serial_seconds)) = &serial {
            let same = potentials && same_solve(&part, s);
            println!(
                "sinkhorn {}x{}x{} {kind:?} ε = 0.01 ({} cells): ranks {}, {} iterations (serial {}), potentials, history and divergence {}; {seconds:.2} s (serial {serial_seconds:.2} s)",
                shape[0], shape[1], shape[2], n, ex.size(), part.iterations, s.iterations,
                if same { "bitwise equal" } else { "DIFFER" }
            );
            same
        } else {
            true
        };
        all &= ex.max(f64::from(u8::from(!ok))) == 0.0;
    }
    all
}
