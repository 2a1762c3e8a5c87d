//! The back-and-forth method on a slab-decomposed grid: the serial solve
//! ([`crate::ot::BackAndForth`] with the deposit push-forward), each rank iterating on its
//! planes of every level.
//!
//! The levels, each level and its loop — half steps, step-size rule, stopping rules, the
//! fall back to the H¹ metric, the coarse levels' budgets — are the serial ones
//! ([`crate::ot::bfm`]), run against [`SlabLevel`]'s grid operations instead of the whole
//! grid's: the c-transform ([`super::slab_c_transform`]), the map `x + ∇p`
//! ([`super::slab_gradient`]) and its deposit ([`super::slab_push_forward`]) or the change of
//! variables ([`super::slab_change_of_variables`]), the metric's CG
//! and the Poisson solve ([`super::SlabMetric`]), sums over the grid ([`super::slab_sum`]),
//! and between levels the restriction and prolongation ([`super::slab_restrict`],
//! [`super::slab_prolong`]). Each is the serial operation's result to the bit, so every rank takes the serial solve's steps and decisions and the potentials are
//! the serial ones to the bit, on box and periodic slab axes. Every rank gets the same
//! outcome, iterations and marginal error.
//!
//! A warm start, a time limit or an observer is refused (each rank would stop at its own
//! iteration and leave the others waiting in a collective).

use super::exchange::Exchange;
use super::metric::SlabMetric;
use super::multilevel::{slab_prolong, slab_restrict};
use super::poisson::SlabPoissonSolver;
use super::pushforward::slab_push_forward;
use super::sum::slab_sum;
use super::{slab_c_transform, slab_change_of_variables, slab_gradient};
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::{Grid, SlabDecomposition};
use crate::ot::bfm::{Layout, Level, LevelOps, Levels, METHOD};
use crate::ot::metric::{Metric, MetricOps};
use crate::ot::multilevel::{self, Hierarchy};
use crate::ot::{BackAndForth, Options, Solution};
use crate::spectral::{MeanPolicy, Symbol};
use rayon::prelude::*;
use std::time::Instant;

/// One rank's grid operations for a bfm level ([`LevelOps`]); every call is a collective.
pub struct SlabLevel<'a, E: Exchange> {
    exchange: &'a E,
    grid: Grid,
    local: Grid,
    slabs: SlabDecomposition,
    metric: SlabMetric<'a, E>,
    /// The cell centres of this rank's cells (the whole grid's coordinates), interleaved.
    identity: Vec<f64>,
}

impl<'a, E: Exchange> SlabLevel<'a, E> {
    /// The operations of this rank's planes of `grid` (a collective: plans the slab Poisson
    /// solver).
    pub fn new(exchange: &'a E, grid: &Grid) -> Result<SlabLevel<'a, E>> {
        let slabs = SlabDecomposition::new(grid, exchange.size())?;
        let rank = exchange.rank();
        let poisson = SlabPoissonSolver::new(grid, 0.0, Symbol::Discrete, exchange)?
            .with_mean_policy(MeanPolicy::Project);
        let identity = crate::grid::cell_centres(grid, slabs.cells(rank));
        Ok(SlabLevel {
            exchange,
            grid: grid.clone(),
            local: slabs.local_grid(rank)?,
            slabs,
            metric: SlabMetric::new(exchange, poisson),
            identity,
        })
    }

    /// This rank's block as a field on its local grid.
    fn field(&self, values: Vec<f64>) -> Result<ScalarField> {
        ScalarField::from_vec(&self.local, values)
    }
}

impl<'a, E: Exchange> LevelOps for SlabLevel<'a, E> {
    type Metric = SlabMetric<'a, E>;

    fn metric(&mut self) -> &mut SlabMetric<'a, E> {
        &mut self.metric
    }

    fn dot(&self, a: &[f64], b: &[f64]) -> f64 {
        self.metric.dot(a, b)
    }

    fn whole(&self) -> &Grid {
        &self.grid
    }

    fn c_transform(&self, p: &ScalarField) -> Result<ScalarField> {
        self.field(slab_c_transform(self.exchange, &self.grid, values(p))?)
    }

    fn push_forward(
        &self,
        mass: &ScalarField,
        potential: &ScalarField,
        subsamples: usize,
    ) -> Result<ScalarField> {
        let mut map = slab_gradient(self.exchange, &self.grid, values(potential))?;
        map.par_iter_mut().zip(self.identity.par_iter()).for_each(|(a, b)| *a += b);
        let pushed = slab_push_forward(self.exchange, &self.grid, values(mass), &map, subsamples)?;
        self.field(pushed)
    }

    fn change_of_variables(
        &mut self,
        mass: &ScalarField,
        inverse: &ScalarField,
    ) -> Result<ScalarField> {
        let pushed =
            slab_change_of_variables(self.exchange, &self.grid, values(mass), values(inverse))?;
        self.field(pushed)
    }

    fn sum_abs(&self, a: &[f64]) -> f64 {
        slab_sum(self.exchange, &self.slabs, |i| a[i].abs())
    }

    fn max(&self, local: f64) -> f64 {
        self.exchange.max(local)
    }
}

fn values(f: &ScalarField) -> &[f64] {
    f.data().as_slice().expect("contiguous")
}

/// Where a slab bfm solve's levels live ([`Layout`]): each level of the hierarchy on its own
/// slab decomposition, the coarse densities this rank's planes of the serial cell averages
/// ([`super::slab_restrict`]), potentials lifted by [`super::slab_prolong`].
struct SlabLayout<'a, E: Exchange> {
    exchange: &'a E,
    grids: &'a [Grid],
    /// The push-forward by change of variables (else the deposit).
    jacobian: bool,
    /// Per level: this rank's planes of μ and ν.
    densities: Vec<[Vec<f64>; 2]>,
}

impl<'a, E: Exchange> Layout for SlabLayout<'a, E> {
    type Ops = SlabLevel<'a, E>;

    fn level(
        &self,
        i: usize,
        p: Vec<f64>,
        sigma: f64,
        subsamples: usize,
        metric: Metric,
    ) -> Result<Level<SlabLevel<'a, E>>> {
        let g = &self.grids[i];
        let local =
            SlabDecomposition::new(g, self.exchange.size())?.local_grid(self.exchange.rank())?;
        let field = |v: Vec<f64>| ScalarField::from_vec(&local, v);
        let [mu, nu] = self.densities[i].clone().map(field);
        let ops = SlabLevel::new(self.exchange, g)?;
        Level::with_ops(ops, [mu?, nu?], field(p)?, sigma, subsamples, self.jacobian, metric)
    }

    fn lift(&self, _: &Hierarchy, mut v: Vec<f64>, from: usize, to: usize) -> Result<Vec<f64>> {
        for l in from..to {
            v = slab_prolong(self.exchange, &self.grids[l], &self.grids[l + 1], &v)?;
        }
        Ok(v)
    }
}

/// bfm between μ and ν (this rank's planes of two densities on `grid`, normalised over every
/// rank to equal mass by the caller) with `solver`'s settings: the serial solve — its
/// levels coarse to fine (with `multilevel`, the default) and each level's iterations — on
/// slabs, to the bit on a box slab axis. The solution's `p` and `q` are this rank's planes
/// (on [`SlabDecomposition::local_grid`]); the rest is the whole solve's, the same on every
/// rank. The push-forward is the serial solve's: the deposit, or the change of variables
/// (`--push-forward jacobian`, and `auto` for smooth densities on the torus). A collective.
/// Refused, on every rank: a level with fewer planes than ranks (with `multilevel`, the
/// coarsest), a warm start, a block of the wrong length or with negative, NaN or infinite
/// values on any rank, masses that differ.
pub fn slab_bfm(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    nu: &[f64],
    solver: &BackAndForth,
) -> Result<Solution> {
    let ranks = exchange.size();
    let slabs = SlabDecomposition::new(grid, ranks)?;
    let cells = slabs.cells(exchange.rank());
    let bad = mu.len() != cells.len()
        || nu.len() != cells.len()
        || mu.iter().chain(nu).any(|v| !(v.is_finite() && *v >= 0.0));
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed bfm: a rank's density block has the wrong length or negative, NaN or \
             infinite values (this rank: {} and {} values for its {} cells)",
            mu.len(),
            nu.len(),
            cells.len()
        )));
    }
    if solver.initial.is_some() {
        return Err(Error::invalid("distributed bfm: a warm start is not supported"));
    }
    let masses = [mu, nu].map(|m| slab_sum(exchange, &slabs, |i| m[i]));
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
    if let Err(e) = SlabDecomposition::new(&grids[0], ranks) {
        return Err(Error::invalid(format!(
            "distributed bfm: the coarsest level {}: {e} (multilevel=false solves the finest \
             grid only)",
            grids[0]
        )));
    }
    let mut densities: Vec<[Vec<f64>; 2]> = Vec::with_capacity(grids.len());
    for g in &grids[..grids.len() - 1] {
        densities
            .push([slab_restrict(exchange, grid, g, mu)?, slab_restrict(exchange, grid, g, nu)?]);
    }
    densities.push([mu.to_vec(), nu.to_vec()]);
    let peak = exchange.max(mu.iter().chain(nu).copied().fold(0.0, f64::max));
    let floor = -exchange.max(-mu.iter().chain(nu).copied().fold(f64::INFINITY, f64::min));
    let jacobian = solver.picks_jacobian(grid, floor, peak);
    let start = Instant::now();
    let layout = SlabLayout { exchange, grids, jacobian, densities };
    let mut levels = Levels::new(solver, layout, (&stopping, start), grids, peak, jacobian);
    let coarsest = SlabDecomposition::new(&grids[0], ranks)?.cells(exchange.rank()).len();
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
        let grid = problem.grid();
        let serial = solver.solve(problem, &Options::default()).unwrap();
        let (m, n) = (values(problem.source()), values(problem.target()));
        for ranks in ranks {
            let results = LocalWorld::run(ranks, |ex| {
                let c = SlabDecomposition::new(grid, ranks).unwrap().cells(ex.rank());
                (c.clone(), slab_bfm(ex, grid, &m[c.clone()], &n[c], solver).unwrap())
            });
            let case = format!("{grid}, {ranks} ranks");
            for (c, r) in results {
                assert_eq!(
                    (r.iterations, r.outcome),
                    (serial.iterations, serial.outcome),
                    "{case}"
                );
                assert_eq!(r.history, serial.history, "{case}");
                assert_eq!(r.marginal_error.to_bits(), serial.marginal_error.to_bits(), "{case}");
                assert!(*values(&r.p) == values(&serial.p)[c.clone()], "{case}: p");
                assert!(*values(&r.q) == values(&serial.q)[c], "{case}: q");
            }
        }
        serial
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
