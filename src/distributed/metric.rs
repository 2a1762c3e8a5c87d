//! The weighted metric of bfm and of the JKO steps on a decomposed grid: the serial
//! [`crate::ot::metric::WeightedSolver`]'s preconditioned CG, run on each rank's block with
//! the decomposed operator ([`super::slab_weighted_laplacian`],
//! [`super::pencil_weighted_laplacian`]), the decomposed Poisson solver as its
//! preconditioner and dot products over the ranks that add as the serial ones
//! ([`super::slab_dot`], [`super::pencil_dot`]): the serial CG's steps and solution to the
//! bit ([`DecomposedMetric`]).

use super::blocks::{Blocks, Cut, DecomposedPoisson};
use super::exchange::Exchange;
use crate::error::Result;
use crate::grid::Grid;
use crate::ot::metric::MetricOps;

/// One rank's part of the metric's operations: a collective in each call (every rank calls
/// the CG together, which takes the same steps on every rank: its scalars are reduced).
pub struct DecomposedMetric<'a, E: Exchange> {
    exchange: &'a E,
    blocks: Blocks,
    poisson: DecomposedPoisson,
}

impl<'a, E: Exchange> DecomposedMetric<'a, E> {
    /// The operations on `grid` cut as `cut` says, with `poisson` (planned on the same grid,
    /// cut and ranks) as the preconditioner's solve.
    pub fn new(
        exchange: &'a E,
        grid: &Grid,
        cut: Cut,
        poisson: DecomposedPoisson,
    ) -> Result<DecomposedMetric<'a, E>> {
        Ok(DecomposedMetric { exchange, blocks: Blocks::new(grid, exchange.size(), cut)?, poisson })
    }
}

impl<E: Exchange> MetricOps for DecomposedMetric<'_, E> {
    fn apply(
        &mut self,
        grid: &Grid,
        w: &[f64],
        diagonal: Option<&[f64]>,
        u: &[f64],
        out: &mut [f64],
    ) -> Result<()> {
        out.copy_from_slice(&self.blocks.weighted_laplacian(
            self.exchange,
            grid,
            w,
            diagonal,
            u,
        )?);
        Ok(())
    }

    fn poisson(&mut self, r: &[f64], z: &mut [f64]) -> Result<()> {
        self.poisson.solve(self.exchange, r, z)
    }

    fn dot(&self, a: &[f64], b: &[f64]) -> f64 {
        self.blocks.sum(self.exchange, |i| a[i] * b[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::exchange::LocalWorld;
    use crate::distributed::SlabPoissonSolver;
    use crate::field::ScalarField;
    use crate::grid::{BoundaryKind, SlabDecomposition};
    use crate::ot::metric::{floored, WeightedSolver};
    use crate::spectral::{MeanPolicy, PoissonSolver, Symbol};

    /// The metric's CG on 1–4 ranks takes the serial solve's iterations and returns its
    /// solution to the bit, for bfm's operator (a Gaussian weight floored at 1 %, no
    /// diagonal, the singular preconditioner with the mean projected) and the JKO steps'
    /// (a diagonal and the shifted preconditioner), on a box and a periodic non-divisible
    /// 3D grid.
    #[test]
    fn the_slab_metric_solve_equals_the_serial_one_to_the_bit() {
        use BoundaryKind::*;
        for kinds in [[Neumann, Neumann, Neumann], [Periodic, Neumann, Periodic]] {
            let grid = crate::distributed::test_grid(&[12, 10, 9], &kinds);
            let values = |f: &(dyn Fn(&[f64]) -> f64 + Sync)| {
                ScalarField::from_fn(&grid, f).data().as_slice().unwrap().to_vec()
            };
            let rho = values(&|x| {
                (-((x[0] - 0.4).powi(2) + (x[1] - 0.5).powi(2) + (x[2] - 0.45).powi(2)) / 0.02)
                    .exp()
            });
            let w = floored(&rho, 0.01);
            let r = {
                let mut r = values(&|x| (6.0 * x[0]).sin() * (1.0 + x[1]) - x[2] * x[2]);
                let mean = r.iter().sum::<f64>() / r.len() as f64;
                r.iter_mut().for_each(|v| *v -= mean);
                r
            };
            let d: Vec<f64> = rho.iter().map(|v| 40.0 * v).collect();
            for (lambda, diagonal) in [(0.0, None), (40.0, Some(d))] {
                let serial = {
                    let mut solver = WeightedSolver::with_weights([w.clone(), w.clone()]);
                    if let Some(d) = &diagonal {
                        solver = solver.with_diagonals([d.clone(), d.clone()]);
                    }
                    let mut poisson = PoissonSolver::new(&grid, lambda, Symbol::Discrete)
                        .unwrap()
                        .with_mean_policy(MeanPolicy::Project);
                    let mut x = vec![0.0; r.len()];
                    let its = solver.solve(&grid, &mut poisson, 0, &r, &mut x).unwrap();
                    (its, x)
                };
                for ranks in 1..=4 {
                    let blocks = LocalWorld::run(ranks, |ex| {
                        let cells = SlabDecomposition::new(&grid, ranks).unwrap().cells(ex.rank());
                        let block = |v: &[f64]| v[cells.clone()].to_vec();
                        let mut solver = WeightedSolver::with_weights([block(&w), block(&w)]);
                        if let Some(d) = &diagonal {
                            solver = solver.with_diagonals([block(d), block(d)]);
                        }
                        let poisson = SlabPoissonSolver::new(&grid, lambda, Symbol::Discrete, ex)
                            .unwrap()
                            .with_mean_policy(MeanPolicy::Project);
                        let poisson = DecomposedPoisson::Slabs(poisson);
                        let mut ops =
                            DecomposedMetric::new(ex, &grid, Cut::Slabs, poisson).unwrap();
                        let mut x = vec![0.0; cells.len()];
                        let its = solver.solve(&grid, &mut ops, 0, &block(&r), &mut x).unwrap();
                        (cells, its, x)
                    });
                    for (cells, its, x) in blocks {
                        assert_eq!(its, serial.0, "{kinds:?} λ = {lambda}: {ranks} ranks");
                        assert!(x == serial.1[cells], "{kinds:?} λ = {lambda}, {ranks} ranks");
                    }
                }
            }
        }
    }
}
