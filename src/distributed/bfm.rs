//! The back-and-forth method on a decomposed grid — slabs, or y–z pencils in 3D: the serial
//! solve ([`crate::ot::BackAndForth`]), each rank iterating on its block of every level.
//!
//! The levels, each level and its loop — half steps, step-size rule, stopping rules, the
//! fall back to the H¹ metric, the coarse levels' budgets — are the serial ones
//! ([`crate::ot::bfm`]), run against [`DecomposedLevel`]'s grid operations instead of the
//! whole grid's: the c-transform ([`super::slab_c_transform`], [`super::pencil_c_transform`]),
//! the map `x + ∇p` ([`super::slab_gradient`], [`super::pencil_gradient`]) and its deposit
//! ([`super::slab_push_forward`], [`super::pencil_push_forward`]) or the change of variables
//! ([`super::slab_change_of_variables`], [`super::pencil_change_of_variables`]), the metric's
//! CG and the Poisson solve
//! ([`super::DecomposedMetric`]), sums over the grid ([`super::slab_sum`],
//! [`super::pencil_sum`]), and between levels the restriction and prolongation. Each is the
//! serial operation's result to the bit, so every rank takes the serial solve's steps and
//! decisions and the potentials are the serial ones to the bit, on box and periodic axes.
//! Every rank gets the same outcome, iterations and marginal error.
//!
//! A warm start, a time limit or an observer is refused (each rank would stop at its own
//! iteration and leave the others waiting in a collective).

use super::blocks::{prolong, restrict, Blocks, Cut};
use super::exchange::Exchange;
use super::metric::DecomposedMetric;
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::Grid;
use crate::ot::bfm::{Layout, Level, LevelOps, Levels, METHOD};
use crate::ot::metric::{Metric, MetricOps};
use crate::ot::multilevel::{self, Hierarchy};
use crate::ot::{BackAndForth, Options, Solution};
use rayon::prelude::*;
use std::time::Instant;

/// One rank's grid operations for a bfm level ([`LevelOps`]); every call is a collective.
pub struct DecomposedLevel<'a, E: Exchange> {
    exchange: &'a E,
    grid: Grid,
    local: Grid,
    blocks: Blocks,
    metric: DecomposedMetric<'a, E>,
    /// The cell centres of this rank's cells (the whole grid's coordinates), interleaved.
    identity: Vec<f64>,
}

impl<'a, E: Exchange> DecomposedLevel<'a, E> {
    /// The operations of this rank's block of `grid` cut as `cut` says (a collective: plans
    /// the decomposed Poisson solver).
    pub fn new(exchange: &'a E, grid: &Grid, cut: Cut) -> Result<DecomposedLevel<'a, E>> {
        let blocks = Blocks::new(grid, exchange.size(), cut)?;
        let rank = exchange.rank();
        let poisson = blocks.poisson(exchange, grid)?;
        let identity = crate::grid::cell_centres(grid, blocks.cells(rank));
        Ok(DecomposedLevel {
            exchange,
            grid: grid.clone(),
            local: blocks.local_grid(rank)?,
            metric: DecomposedMetric::new(exchange, grid, cut, poisson)?,
            blocks,
            identity,
        })
    }

    /// This rank's block as a field on its local grid.
    fn field(&self, values: Vec<f64>) -> Result<ScalarField> {
        ScalarField::from_vec(&self.local, values)
    }
}

impl<'a, E: Exchange> LevelOps for DecomposedLevel<'a, E> {
    type Metric = DecomposedMetric<'a, E>;

    fn metric(&mut self) -> &mut DecomposedMetric<'a, E> {
        &mut self.metric
    }

    fn dot(&self, a: &[f64], b: &[f64]) -> f64 {
        self.metric.dot(a, b)
    }

    fn whole(&self) -> &Grid {
        &self.grid
    }

    fn c_transform(&self, p: &ScalarField) -> Result<ScalarField> {
        self.field(self.blocks.c_transform(self.exchange, &self.grid, values(p))?)
    }

    fn push_forward(
        &self,
        mass: &ScalarField,
        potential: &ScalarField,
        subsamples: usize,
    ) -> Result<ScalarField> {
        let (ex, grid) = (self.exchange, &self.grid);
        let mut map = self.blocks.gradient(ex, grid, values(potential))?;
        map.par_iter_mut().zip(self.identity.par_iter()).for_each(|(a, b)| *a += b);
        self.field(self.blocks.push_forward(ex, grid, values(mass), &map, subsamples)?)
    }

    fn change_of_variables(
        &mut self,
        mass: &ScalarField,
        inverse: &ScalarField,
    ) -> Result<ScalarField> {
        let (ex, grid) = (self.exchange, &self.grid);
        self.field(self.blocks.change_of_variables(ex, grid, values(mass), values(inverse))?)
    }

    fn sum_abs(&self, a: &[f64]) -> f64 {
        self.blocks.sum(self.exchange, |i| a[i].abs())
    }

    fn max(&self, local: f64) -> f64 {
        self.exchange.max(local)
    }
}

fn values(f: &ScalarField) -> &[f64] {
    f.data().as_slice().expect("contiguous")
}

/// Where a decomposed bfm solve's levels live ([`Layout`]): each level of the hierarchy cut
/// as `cut` says, the coarse densities this rank's block of the serial cell averages,
/// potentials lifted by the decomposed prolongation.
struct DecomposedLayout<'a, E: Exchange> {
    exchange: &'a E,
    cut: Cut,
    grids: &'a [Grid],
    /// The push-forward by change of variables (else the deposit).
    jacobian: bool,
    /// Per level: this rank's blocks of μ and ν.
    densities: Vec<[Vec<f64>; 2]>,
}

impl<'a, E: Exchange> Layout for DecomposedLayout<'a, E> {
    type Ops = DecomposedLevel<'a, E>;

    fn level(
        &self,
        i: usize,
        p: Vec<f64>,
        sigma: f64,
        subsamples: usize,
        metric: Metric,
    ) -> Result<Level<DecomposedLevel<'a, E>>> {
        let ops = DecomposedLevel::new(self.exchange, &self.grids[i], self.cut)?;
        let field = |v: Vec<f64>| ScalarField::from_vec(&ops.local, v);
        let [mu, nu] = self.densities[i].clone().map(field);
        let p = field(p)?;
        Level::with_ops(ops, [mu?, nu?], p, sigma, subsamples, self.jacobian, metric)
    }

    fn lift(&self, _: &Hierarchy, mut v: Vec<f64>, from: usize, to: usize) -> Result<Vec<f64>> {
        for l in from..to {
            v = prolong(self.cut, self.exchange, &self.grids[l], &self.grids[l + 1], &v)?;
        }
        Ok(v)
    }
}

/// bfm between μ and ν (this rank's planes of two densities on `grid`, normalised over every
/// rank to equal mass by the caller) with `solver`'s settings: the serial solve — its
/// levels coarse to fine (with `multilevel`, the default) and each level's iterations — on
/// slabs, to the bit on box and periodic axes. The solution's `p` and `q` are this rank's
/// planes (on [`crate::grid::SlabDecomposition::local_grid`]); the rest is the whole solve's,
/// the same on every rank. The push-forward is the serial solve's: the deposit, or the
/// change of variables (`--push-forward jacobian`, and `auto` for smooth densities on the
/// torus). A collective. Refused, on every rank: a level with fewer planes than ranks (with
/// `multilevel`, the coarsest), a warm start, a block of the wrong length or with negative,
/// NaN or infinite values on any rank, masses that differ.
pub fn slab_bfm(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    nu: &[f64],
    solver: &BackAndForth,
) -> Result<Solution> {
    decomposed_bfm(exchange, grid, mu, nu, solver, Cut::Slabs)
}

/// [`slab_bfm`] on the 3D `grid`'s y–z pencils ([`crate::grid::PencilDecomposition::new`] of
/// every level: μ, ν, p and q this rank's blocks): the serial solve to the bit, its
/// push-forward included. Refused as [`slab_bfm`] is, and for a level without pencils (with
/// `multilevel`, the coarsest).
pub fn pencil_bfm(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    nu: &[f64],
    solver: &BackAndForth,
) -> Result<Solution> {
    decomposed_bfm(exchange, grid, mu, nu, solver, Cut::Pencils)
}

fn decomposed_bfm(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    nu: &[f64],
    solver: &BackAndForth,
    cut: Cut,
) -> Result<Solution> {
    let ranks = exchange.size();
    let blocks = Blocks::new(grid, ranks, cut)?;
    let cells = blocks.len(exchange.rank());
    let bad = mu.len() != cells
        || nu.len() != cells
        || mu.iter().chain(nu).any(|v| !(v.is_finite() && *v >= 0.0));
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed bfm: a rank's density block has the wrong length or negative, NaN or \
             infinite values (this rank: {} and {} values for its {cells} cells)",
            mu.len(),
            nu.len(),
        )));
    }
    if solver.initial.is_some() {
        return Err(Error::invalid("distributed bfm: a warm start is not supported"));
    }
    let masses = [mu, nu].map(|m| blocks.sum(exchange, |i| m[i]));
    if (masses[0] - masses[1]).abs() > 1e-9 * masses[0].max(masses[1]) || masses[0] <= 0.0 {
        return Err(Error::invalid(format!(
            "distributed bfm: the densities' masses differ or vanish ({:e} and {:e} cell sums)",
            masses[0], masses[1]
        )));
    }
    let stopping =
        Options::default().stopping(&METHOD, grid, solver.tolerance, solver.max_iterations)?;
    let hierarchy = Hierarchy::new(grid, solver.coarsest(grid), solver.multilevel);
    let grids = hierarchy.grids();
    if let Err(e) = Blocks::new(&grids[0], ranks, cut) {
        return Err(Error::invalid(format!(
            "distributed bfm: the coarsest level {}: {e} (multilevel=false solves the finest \
             grid only)",
            grids[0]
        )));
    }
    let peak = exchange.max(mu.iter().chain(nu).copied().fold(0.0, f64::max));
    let floor = -exchange.max(-mu.iter().chain(nu).copied().fold(f64::INFINITY, f64::min));
    let jacobian = solver.picks_jacobian(grid, floor, peak);
    let mut densities: Vec<[Vec<f64>; 2]> = Vec::with_capacity(grids.len());
    for g in &grids[..grids.len() - 1] {
        densities
            .push([restrict(cut, exchange, grid, g, mu)?, restrict(cut, exchange, grid, g, nu)?]);
    }
    densities.push([mu.to_vec(), nu.to_vec()]);
    let start = Instant::now();
    let coarsest = Blocks::new(&grids[0], ranks, cut)?.len(exchange.rank());
    let layout = DecomposedLayout { exchange, cut, grids, jacobian, densities };
    let mut levels = Levels::new(solver, layout, (&stopping, start), grids, peak, jacobian);
    multilevel::drive(
        &hierarchy,
        &multilevel::per_level(&hierarchy),
        vec![0.0; coarsest],
        &mut levels,
    )?;
    Ok(levels.into_solution(grid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::{test_grid, LocalWorld};
    use crate::grid::BoundaryKind::{Neumann, Periodic};
    use crate::grid::SlabDecomposition;
    use crate::ot::bfm::PushForward;
    use crate::ot::{Options, Problem, Solver};

    fn density(grid: &Grid, centre: [f64; 3], width: f64) -> ScalarField {
        let mut f = ScalarField::from_fn(grid, |x| {
            0.02 + (-x.iter().zip(centre).map(|(x, c)| (x - c).powi(2)).sum::<f64>() / width).exp()
        });
        let mass = f.integral();
        f.data_mut().mapv_inplace(|v| v / mass);
        f
    }

    /// Solves `problem` serially and on slabs with each of `ranks` rank counts, and asserts
    /// the slab solves' iterations, outcome, history, marginal error and potentials equal the
    /// serial solve's to the bit. Returns the serial solve.
    fn assert_slab_solves_are_serial(
        problem: &Problem,
        solver: &BackAndForth,
        ranks: impl IntoIterator<Item = usize>,
    ) -> crate::ot::Solution {
        assert_decomposed_solves_are_serial(problem, solver, ranks, Cut::Slabs)
    }

    /// [`assert_slab_solves_are_serial`] with the grid cut as `cut` says.
    fn assert_decomposed_solves_are_serial(
        problem: &Problem,
        solver: &BackAndForth,
        ranks: impl IntoIterator<Item = usize>,
        cut: Cut,
    ) -> crate::ot::Solution {
        let grid = problem.grid();
        let serial = solver.solve(problem, &Options::default()).unwrap();
        let (m, n) = (values(problem.source()), values(problem.target()));
        let (p, q) = (values(&serial.p), values(&serial.q));
        for ranks in ranks {
            let blocks = Blocks::new(grid, ranks, cut).unwrap();
            let block = |rank: usize, v: &[f64]| -> Vec<f64> {
                blocks.cells(rank).into_iter().map(|i| v[i]).collect()
            };
            let results = LocalWorld::run(ranks, |ex| {
                let r = ex.rank();
                (r, decomposed_bfm(ex, grid, &block(r, m), &block(r, n), solver, cut).unwrap())
            });
            let case = format!("{grid}, {ranks} ranks, {cut:?}");
            for (rank, r) in results {
                assert_eq!(
                    (r.iterations, r.outcome),
                    (serial.iterations, serial.outcome),
                    "{case}"
                );
                assert_eq!(r.history, serial.history, "{case}");
                assert_eq!(r.marginal_error.to_bits(), serial.marginal_error.to_bits(), "{case}");
                assert!(*values(&r.p) == block(rank, p), "{case}: p");
                assert!(*values(&r.q) == block(rank, q), "{case}: q");
            }
        }
        serial
    }

    /// On y–z pencils (more ranks than z planes: 3 × 2 up to 3 × 4) bfm takes the serial
    /// solve's levels and iterations and ends with its outcome, history and potentials to the
    /// bit: single level and multilevel (every level on its own pencils) on a box, on a torus
    /// with the deposit, and by change of variables (`auto` on a smooth torus pair,
    /// `jacobian` on a box).
    #[test]
    fn pencil_bfm_equals_the_serial_solve_to_the_bit() {
        let cases = [
            (&[14usize, 13, 4][..], Neumann, false, &[6usize, 8][..]),
            (&[16, 18, 8][..], Neumann, true, &[12][..]),
            (&[16, 15, 4][..], Periodic, false, &[6, 8][..]),
        ];
        for (shape, kind, multilevel, ranks) in cases {
            let grid = test_grid(shape, &[kind; 3]);
            let mu = density(&grid, [0.4, 0.5, 0.5], 0.03);
            let nu = density(&grid, [0.6, 0.55, 0.45], 0.05);
            let solver = BackAndForth {
                multilevel,
                push_forward: PushForward::Deposit,
                coarsest_cells: Some(4),
                tolerance: Some(1e-6),
                max_iterations: Some(if multilevel { 40 } else { 25 }),
                ..BackAndForth::default()
            };
            let problem = Problem::new(&mu, &nu).unwrap();
            let serial = assert_decomposed_solves_are_serial(
                &problem,
                &solver,
                ranks.iter().copied(),
                Cut::Pencils,
            );
            assert!(serial.history.len() > 5, "{shape:?}: {} iterations", serial.history.len());
        }
        // Smooth densities on the torus: `auto` pushes forward by change of variables, on
        // pencils as serially (and `jacobian` on a box).
        for (shape, kind, push_forward) in [
            (&[20usize, 18, 5][..], Periodic, PushForward::Auto),
            (&[16, 15, 4][..], Neumann, PushForward::Jacobian),
        ] {
            let grid = test_grid(shape, &[kind; 3]);
            let smooth = |c: f64| {
                ScalarField::from_fn(&grid, |x| {
                    1.0 + 0.4 * (6.0 * (x[0] - c)).sin() * (4.0 * x[2] + c).cos()
                        + 0.2 * (5.0 * x[1]).cos()
                })
            };
            let problem = Problem::new(&smooth(0.1), &smooth(0.7)).unwrap();
            let solver =
                BackAndForth { max_iterations: Some(6), push_forward, ..BackAndForth::default() };
            assert!(solver.uses_jacobian(&problem), "{shape:?}");
            assert_decomposed_solves_are_serial(&problem, &solver, [6, 8], Cut::Pencils);
        }
    }

    /// On 1–4 ranks the slab bfm takes the serial single-level solve's iterations and ends
    /// with its outcome and potentials to the bit (box grids, 2D and 3D, non-divisible).
    #[test]
    fn slab_bfm_equals_the_serial_single_level_solve_to_the_bit() {
        for shape in [&[24usize, 21][..], &[14, 13, 11][..]] {
            let grid = test_grid(shape, &[Neumann; 3][..shape.len()]);
            let mu = density(&grid, [0.4, 0.5, 0.5], 0.03);
            let nu = density(&grid, [0.6, 0.55, 0.45], 0.05);
            let solver = BackAndForth {
                multilevel: false,
                push_forward: PushForward::Deposit,
                tolerance: Some(1e-6),
                max_iterations: Some(30),
                ..BackAndForth::default()
            };
            assert_slab_solves_are_serial(&Problem::new(&mu, &nu).unwrap(), &solver, 1..=4);
        }
    }

    /// With the multilevel hierarchy (the default solve; coarse levels down to 8 cells per
    /// axis here) the slab bfm takes the serial solve's levels and iterations and ends with its
    /// outcome and potentials to the bit on 1–4 ranks; a coarsest level with fewer planes than
    /// ranks is refused on every rank.
    #[test]
    fn multilevel_slab_bfm_equals_the_serial_solve_to_the_bit() {
        for shape in [&[32usize, 28][..], &[16, 18, 20][..]] {
            let grid = test_grid(shape, &[Neumann; 3][..shape.len()]);
            let mu = density(&grid, [0.4, 0.5, 0.5], 0.03);
            let nu = density(&grid, [0.6, 0.55, 0.45], 0.05);
            let solver = BackAndForth {
                push_forward: PushForward::Deposit,
                coarsest_cells: Some(8),
                tolerance: Some(1e-6),
                max_iterations: Some(40),
                ..BackAndForth::default()
            };
            let problem = Problem::new(&mu, &nu).unwrap();
            let serial = assert_slab_solves_are_serial(&problem, &solver, 1..=4);
            assert!(serial.history.len() > 5, "{shape:?}: {} iterations", serial.history.len());
        }
        // 5 ranks for the 16×18×20 grid's coarsest level of 10 planes: fine; with a coarsest
        // level of 5 planes (coarsest_cells 4: 20 → 10 → 5), 6 ranks are refused.
        let grid = test_grid(&[16, 18, 20], &[Neumann; 3]);
        let mu = density(&grid, [0.4, 0.5, 0.5], 0.03);
        let solver = BackAndForth { coarsest_cells: Some(4), ..BackAndForth::default() };
        let m = values(&mu);
        let refused = LocalWorld::run(6, |ex| {
            let c = SlabDecomposition::new(&grid, 6).unwrap().cells(ex.rank());
            slab_bfm(ex, &grid, &m[c.clone()], &m[c], &solver).map(|_| ())
        });
        assert!(refused
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.to_string().contains("coarsest"))));
    }

    /// On a torus (the slab axis periodic: its c-transform's padded planes) the slab solve is
    /// the serial one to the bit: iterations, outcome, marginal error and potentials.
    #[test]
    fn slab_bfm_on_a_torus_is_the_serial_solve_to_the_bit() {
        let grid = test_grid(&[16, 15, 13], &[Periodic, Periodic, Periodic]);
        let mu = density(&grid, [0.4, 0.5, 0.5], 0.03);
        let nu = density(&grid, [0.6, 0.55, 0.45], 0.05);
        let solver = BackAndForth {
            multilevel: false,
            push_forward: PushForward::Deposit,
            max_iterations: Some(8),
            ..BackAndForth::default()
        };
        assert_slab_solves_are_serial(&Problem::new(&mu, &nu).unwrap(), &solver, [2, 3]);
    }

    /// Smooth densities on the torus: the default push-forward (`auto`) is the change of
    /// variables, serially and on slabs, and the slab solve is the serial one to the bit
    /// (2D and 3D, 1–4 ranks); `--push-forward jacobian` on a box too.
    #[test]
    fn slab_bfm_by_change_of_variables_is_the_serial_solve_to_the_bit() {
        for (shape, kind, push_forward) in [
            (&[20usize, 18, 17][..], Periodic, PushForward::Auto),
            (&[26, 23][..], Periodic, PushForward::Auto),
            (&[16, 15, 14][..], Neumann, PushForward::Jacobian),
        ] {
            let grid = test_grid(shape, &vec![kind; shape.len()]);
            let smooth = |c: f64| {
                ScalarField::from_fn(&grid, |x| {
                    1.0 + 0.4 * (6.0 * (x[0] - c)).sin() * (4.0 * x[x.len() - 1] + c).cos()
                })
            };
            let problem = Problem::new(&smooth(0.1), &smooth(0.7)).unwrap();
            let solver =
                BackAndForth { max_iterations: Some(6), push_forward, ..BackAndForth::default() };
            assert!(solver.uses_jacobian(&problem), "{shape:?}");
            assert_slab_solves_are_serial(&problem, &solver, 1..=4);
        }
    }

    /// Bad blocks and unequal masses fail every rank.
    #[test]
    fn bad_inputs_fail_every_rank() {
        let grid = test_grid(&[10, 9, 8], &[Neumann; 3]);
        let mu = density(&grid, [0.4, 0.5, 0.5], 0.03);
        let nu = density(&grid, [0.6, 0.55, 0.45], 0.05);
        let (m, n) = (values(&mu), values(&nu));
        for case in 0..3 {
            let results = LocalWorld::run(2, |ex| {
                let c = SlabDecomposition::new(&grid, 2).unwrap().cells(ex.rank());
                let mut a = m[c.clone()].to_vec();
                if ex.rank() == 1 {
                    match case {
                        0 => a[3] = -1.0,
                        1 => {
                            a.pop();
                        }
                        _ => a.iter_mut().for_each(|v| *v *= 2.0),
                    }
                }
                slab_bfm(ex, &grid, &a, &n[c], &BackAndForth::default())
            });
            assert!(results.iter().all(|r| r.is_err()), "case {case}");
        }
    }
}
