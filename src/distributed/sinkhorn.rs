//! Entropic optimal transport on a slab-decomposed grid: the serial Sinkhorn solver
//! ([`crate::ot::Sinkhorn`]: log-domain updates, ε-scaling with extrapolation,
//! over-relaxation, the multiscale hierarchy, the stopping rule, the Sinkhorn divergence's
//! symmetric problems) with each level on its own slabs: its soft c-transform run as
//! [`SlabGibbs`] (or [`PencilGibbs`]), its densities sampled by
//! [`slab_sample`] and potentials lifted by [`slab_prolong`] (both the serial ones to the
//! bit), and every sum (the marginal error, the dual value) added in the serial order
//! ([`super::slab_sum`], [`super::pencil_sum`]). The result equals the serial solve's to the
//! bit.

use super::blocks::Cut;
use super::exchange::Exchange;
use super::gibbs::{PencilGibbs, SlabGibbs};
use super::layout::PencilSpreads;
use super::multilevel::{pencil_prolong, pencil_sample, slab_prolong, slab_sample};
use super::pencil_columns;
use super::sum::{pencil_sum, slab_sum};
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::{Grid, PencilDecomposition, SlabDecomposition};
use crate::ot::gibbs::SoftTransform;
use crate::ot::multilevel::Hierarchy;
use crate::ot::sinkhorn::Layout;
use crate::ot::{Options, Sinkhorn, Solution};

/// A Sinkhorn solve's levels on a decomposed grid, each cut as `cut` says (a level the cut
/// refuses is left out of the hierarchy).
struct Decomposed<'a, E: Exchange> {
    exchange: &'a E,
    cut: Cut,
}

impl<E: Exchange> Layout for Decomposed<'_, E> {
    fn local_grid(&self, grid: &Grid) -> Result<Grid> {
        let (ranks, rank) = (self.exchange.size(), self.exchange.rank());
        match self.cut {
            Cut::Slabs => {
                let slabs = SlabDecomposition::new(grid, ranks)?;
                pencil_columns(grid.axis(0).cells, ranks)?;
                slabs.local_grid(rank)
            }
            Cut::Pencils => {
                let pencils = PencilDecomposition::new(grid, ranks)?;
                PencilSpreads::new(&pencils)?;
                pencils.local_grid(rank)
            }
        }
    }

    fn sample(&self, fine: &Grid, density: &ScalarField, coarse: &Grid) -> Result<ScalarField> {
        let block = density.data().as_slice().expect("contiguous");
        let values = match self.cut {
            Cut::Slabs => slab_sample(self.exchange, fine, coarse, block)?,
            Cut::Pencils => pencil_sample(self.exchange, fine, coarse, block)?,
        };
        ScalarField::from_vec(&self.local_grid(coarse)?, values)
    }

    fn kernel(&self, grid: &Grid, eps: f64) -> Result<Box<dyn SoftTransform + '_>> {
        Ok(match self.cut {
            Cut::Slabs => Box::new(SlabGibbs::new(self.exchange, grid, eps)?),
            Cut::Pencils => Box::new(PencilGibbs::new(self.exchange, grid, eps)?),
        })
    }

    fn lift(
        &self,
        hierarchy: &Hierarchy,
        mut v: Vec<f64>,
        from: usize,
        to: usize,
    ) -> Result<Vec<f64>> {
        let grids = hierarchy.grids();
        let prolong = match self.cut {
            Cut::Slabs => slab_prolong,
            Cut::Pencils => pencil_prolong,
        };
        for l in from..to {
            v = prolong(self.exchange, &grids[l], &grids[l + 1], &v)?;
        }
        Ok(v)
    }
}

/// This rank's part of the Sinkhorn solve between the densities whose planes of `grid` this
/// rank holds (`source`, `target`: C order, normalised to unit mass over all ranks as
/// [`crate::ot::Problem::new`] normalises — [`super::slab_density`] does it to the bit).
/// A collective: every rank calls it with the same grid, solver and options. The solution's
/// potentials `p`, `q` are this rank's blocks (on [`SlabDecomposition::local_grid`]); its
/// scalars, iterations and history are the whole solve's, the same on every rank — the
/// serial solve's to the bit (every sum added in the serial order). Refused on every rank
/// alike: a grid OT does not take (Dirichlet axes, fewer than 4 cells per axis), a time limit
/// or observer in `options` (ranks must stop together), a bad decomposition, a block of the
/// wrong length, NaN, infinite or negative values, a mass other than 1.
pub fn slab_sinkhorn<E: Exchange>(
    exchange: &E,
    grid: &Grid,
    source: &[f64],
    target: &[f64],
    solver: &Sinkhorn,
    options: &Options,
) -> Result<Solution> {
    check_problem(grid, options)?;
    let layout = Decomposed { exchange, cut: Cut::Slabs };
    let local_grid = layout.local_grid(grid)?;
    let slabs = SlabDecomposition::new(grid, exchange.size())?;
    let sum = |block: &[f64]| slab_sum(exchange, &slabs, |l| block[l]);
    let (mu, nu) = densities(exchange, grid, &local_grid, [source, target], sum)?;
    solver.solve_part(grid, [&mu, &nu], &layout, options)
}

/// [`slab_sinkhorn`] on y–z pencils of a 3D grid, for more ranks than z planes: `source` and
/// `target` are this rank's blocks `[z_local][y_local][x]`
/// ([`PencilDecomposition::block`]), and so are the solution's potentials (on
/// [`PencilDecomposition::local_grid`]); every level of the hierarchy on its own pencils
/// ([`PencilGibbs`], [`pencil_sample`], [`pencil_prolong`]); the densities normalised as
/// [`super::pencil_density`] does. The serial solve to the bit.
/// Refused as [`slab_sinkhorn`] is, and for a grid [`PencilDecomposition::new`] or the
/// transposed boxes refuse.
pub fn pencil_sinkhorn<E: Exchange>(
    exchange: &E,
    grid: &Grid,
    source: &[f64],
    target: &[f64],
    solver: &Sinkhorn,
    options: &Options,
) -> Result<Solution> {
    check_problem(grid, options)?;
    let layout = Decomposed { exchange, cut: Cut::Pencils };
    let local_grid = layout.local_grid(grid)?;
    let pencils = PencilDecomposition::new(grid, exchange.size())?;
    let sum = |block: &[f64]| pencil_sum(exchange, &pencils, |l| block[l]);
    let (mu, nu) = densities(exchange, grid, &local_grid, [source, target], sum)?;
    solver.solve_part(grid, [&mu, &nu], &layout, options)
}

/// The refusals common to the decomposed Sinkhorn solves: a grid OT does not take, a time
/// limit or an observer.
fn check_problem(grid: &Grid, options: &Options) -> Result<()> {
    if grid.boundaries().iter().any(|k| k.prescribes_value()) {
        return Err(Error::invalid(
            "optimal transport needs neumann (box) or periodic axes, not dirichlet",
        ));
    }
    if grid.axes().iter().any(|a| a.cells < 4) {
        return Err(Error::invalid("optimal transport needs at least 4 cells per axis"));
    }
    if options.time_limit.is_some() || options.observer.is_some() {
        // (Each rank would stop at its own iteration and leave the others in a collective.)
        return Err(Error::invalid(
            "sinkhorn on a decomposed grid: a time limit or an observer is not supported (the \
             ranks must stop at the same iteration); use the tolerance and iteration limit",
        ));
    }
    Ok(())
}

/// This rank's blocks of the two densities as fields on `local_grid`, checked: lengths, NaN,
/// infinite or negative values, and unit mass over the whole grid (within 1e-9, added in the
/// serial order by `sum`) — agreed over the ranks.
fn densities(
    exchange: &impl Exchange,
    grid: &Grid,
    local_grid: &Grid,
    [source, target]: [&[f64]; 2],
    sum: impl Fn(&[f64]) -> f64,
) -> Result<(ScalarField, ScalarField)> {
    let cells = local_grid.num_cells();
    let bad =
        |block: &[f64]| block.len() != cells || block.iter().any(|v| !v.is_finite() || *v < 0.0);
    if exchange.max(f64::from(u8::from(bad(source) || bad(target)))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed sinkhorn: a rank's density block has the wrong length or NaN, \
             infinite or negative values (this rank: {} and {} values for its {cells} cells)",
            source.len(),
            target.len()
        )));
    }
    let masses = [source, target].map(|block| sum(block) * grid.cell_volume());
    if masses.iter().any(|m| (m - 1.0).abs() > 1e-9) {
        return Err(Error::invalid(format!(
            "distributed sinkhorn: the densities must have unit mass (normalise them with \
             slab_density or pencil_density), got {:e} and {:e}",
            masses[0], masses[1]
        )));
    }
    let field = |block: &[f64]| ScalarField::from_vec(local_grid, block.to_vec());
    Ok((field(source)?, field(target)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::LocalWorld;
    use crate::grid::{Axis, BoundaryKind};
    use crate::ot::{Problem, Solver};

    fn gaussian(grid: &Grid, c: [f64; 3], s: f64) -> ScalarField {
        ScalarField::from_fn(grid, |x| {
            let r2: f64 = x.iter().zip(c).map(|(x, c)| (x - c) * (x - c)).sum();
            (-r2 / (2.0 * s * s)).exp() + 0.05
        })
    }

    /// A rank's part of a decomposed solve is the serial solve's to the bit: its blocks of
    /// `p` and `q` (`p_block`, `q_block`: the serial ones'), and the whole solve's outcome,
    /// iterations, history, marginal error, dual value, scalars (but wall times) and
    /// diagnostics.
    fn assert_bitwise(
        part: &Solution,
        serial: &Solution,
        p_block: &[f64],
        q_block: &[f64],
        at: &str,
    ) {
        let values = |f: &ScalarField| f.data().iter().copied().collect::<Vec<f64>>();
        assert_eq!(part.outcome, serial.outcome, "{at}");
        assert_eq!(part.iterations, serial.iterations, "{at}");
        assert_eq!(part.history, serial.history, "{at}");
        assert_eq!(part.marginal_error.to_bits(), serial.marginal_error.to_bits(), "{at}");
        assert_eq!(part.dual_value.to_bits(), serial.dual_value.to_bits(), "{at}");
        let timeless = |s: &Solution| -> Vec<(String, f64)> {
            s.scalars.iter().filter(|(n, _)| !n.ends_with("_seconds")).cloned().collect()
        };
        assert_eq!(timeless(part), timeless(serial), "{at}");
        assert_eq!(part.diagnostics, serial.diagnostics, "{at}");
        assert!(values(&part.p) == p_block, "{at}: p differs");
        assert!(values(&part.q) == q_block, "{at}: q differs");
    }

    /// On 1–4 ranks the slab solve is the serial solve to the bit (iterations, history,
    /// potentials, divergence, dual value) — single grid (box and torus, 3D and 2D,
    /// non-divisible) and multiscale (a coarse level, its densities sampled and potentials
    /// lifted on slabs; 3D box, 2D torus, an odd slab axis).
    #[test]
    fn slab_sinkhorn_is_the_serial_solve_to_the_bit() {
        use BoundaryKind::*;
        for (shape, kind, multiscale) in [
            (vec![12, 10, 9], Neumann, false),
            (vec![10, 8, 11], Periodic, false),
            (vec![14, 13], Neumann, false),
            (vec![40, 36, 34], Neumann, true),
            (vec![34, 66], Periodic, true),
            (vec![36, 34, 35], Neumann, true),
        ] {
            let axes = shape
                .iter()
                .map(|&n| Axis { cells: n, lower: 0.0, upper: 1.0, boundary: kind })
                .collect();
            let grid = Grid::new(axes).unwrap();
            let mu = gaussian(&grid, [0.4, 0.45, 0.5], 0.15);
            let nu = gaussian(&grid, [0.6, 0.5, 0.45], 0.2);
            let problem = Problem::new(&mu, &nu).unwrap();
            let levels = crate::ot::multilevel::Hierarchy::new(&grid, 16, multiscale);
            assert_eq!(levels.grids().len(), if multiscale { 2 } else { 1 }, "{shape:?}");
            let solver = Sinkhorn { epsilon: Some(0.01), multiscale, ..Sinkhorn::default() };
            let options = Options::default();
            let serial = solver.solve(&problem, &options).unwrap();
            let (p, q) = (serial.p.data().as_slice().unwrap(), serial.q.data().as_slice().unwrap());
            for ranks in 1..=4 {
                let slabs = SlabDecomposition::new(&grid, ranks).unwrap();
                let parts = LocalWorld::run(ranks, |ex| {
                    let cells = slabs.cells(ex.rank());
                    let block =
                        |f: &ScalarField| f.data().as_slice().unwrap()[cells.clone()].to_vec();
                    let s = slab_sinkhorn(
                        ex,
                        &grid,
                        &block(problem.source()),
                        &block(problem.target()),
                        &solver,
                        &options,
                    )
                    .unwrap();
                    (cells, s)
                });
                for (cells, part) in parts {
                    let at = format!("{shape:?} on {ranks} ranks");
                    assert_bitwise(&part, &serial, &p[cells.clone()], &q[cells], &at);
                }
            }
        }
    }

    /// On y–z pencils (more ranks than z planes) the solve is the serial one to the bit —
    /// single grid (box and torus) and multiscale (a coarse level sampled and lifted on its
    /// own pencils).
    #[test]
    fn pencil_sinkhorn_is_the_serial_solve_to_the_bit() {
        use BoundaryKind::*;
        for (shape, kind, multiscale, rank_counts) in [
            ([12, 10, 4], Neumann, false, vec![6, 8]),
            ([10, 8, 5], Periodic, false, vec![10]),
            ([40, 36, 6], Neumann, true, vec![8, 12]),
        ] {
            let axes = shape
                .iter()
                .map(|&n| Axis { cells: n, lower: 0.0, upper: 1.0, boundary: kind })
                .collect();
            let grid = Grid::new(axes).unwrap();
            let mu = gaussian(&grid, [0.4, 0.45, 0.5], 0.15);
            let nu = gaussian(&grid, [0.6, 0.5, 0.45], 0.2);
            let problem = Problem::new(&mu, &nu).unwrap();
            let levels = crate::ot::multilevel::Hierarchy::new(&grid, 16, multiscale);
            assert_eq!(levels.grids().len(), if multiscale { 2 } else { 1 }, "{shape:?}");
            let solver = Sinkhorn { epsilon: Some(0.01), multiscale, ..Sinkhorn::default() };
            let options = Options::default();
            let serial = solver.solve(&problem, &options).unwrap();
            let flat = |f: &ScalarField| f.data().as_slice().unwrap().to_vec();
            let (p, q) = (flat(&serial.p), flat(&serial.q));
            for ranks in rank_counts {
                let pencils = PencilDecomposition::new(&grid, ranks).unwrap();
                assert!(pencils.shape().0 > 1, "{shape:?} on {ranks} ranks: pencils");
                let parts = LocalWorld::run(ranks, |ex| {
                    let block = |f: &[f64]| pencils.block(ex.rank(), f);
                    let (mu, nu) = (block(&flat(problem.source())), block(&flat(problem.target())));
                    let s = pencil_sinkhorn(ex, &grid, &mu, &nu, &solver, &options).unwrap();
                    (s, block(&p), block(&q))
                });
                for (part, p_block, q_block) in parts {
                    let at = format!("{shape:?} on {ranks} ranks");
                    assert_bitwise(&part, &serial, &p_block, &q_block, &at);
                }
            }
        }
    }

    /// With more ranks than a coarse level's planes (18 ranks; levels 20×20×17 and 40×40×34)
    /// that level is left out: the solve starts on the finest grid and still converges, to
    /// the serial solve's plan within the tolerance.
    #[test]
    fn levels_with_fewer_planes_than_ranks_are_left_out() {
        let grid = Grid::unit(3, 40, BoundaryKind::Neumann).unwrap();
        let axes = grid
            .axes()
            .iter()
            .enumerate()
            .map(|(a, x)| Axis { cells: if a == 2 { 34 } else { 40 }, ..x.clone() })
            .collect();
        let grid = Grid::new(axes).unwrap();
        let hierarchy = crate::ot::multilevel::Hierarchy::new(&grid, 16, true);
        assert_eq!(hierarchy.grids()[0].axis(2).cells, 17);
        let problem = Problem::new(
            &gaussian(&grid, [0.4, 0.45, 0.5], 0.15),
            &gaussian(&grid, [0.6, 0.5, 0.45], 0.2),
        )
        .unwrap();
        let solver = Sinkhorn { epsilon: Some(0.01), ..Sinkhorn::default() };
        let serial = solver.solve(&problem, &Options::default()).unwrap();
        let p = serial.p.data().as_slice().unwrap();
        let peak = p.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let ranks = 18;
        let slabs = SlabDecomposition::new(&grid, ranks).unwrap();
        let parts = LocalWorld::run(ranks, |ex| {
            let cells = slabs.cells(ex.rank());
            let block = |f: &ScalarField| f.data().as_slice().unwrap()[cells.clone()].to_vec();
            let (mu, nu) = (block(problem.source()), block(problem.target()));
            (cells.clone(), slab_sinkhorn(ex, &grid, &mu, &nu, &solver, &Options::default()))
        });
        for (cells, part) in parts {
            let part = part.unwrap();
            assert_eq!(part.outcome, serial.outcome);
            assert_ne!(part.iterations, serial.iterations, "the coarse level was left out");
            let worst =
                part.p.data().iter().zip(&p[cells]).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst <= 1e-3 * peak, "p off by {worst:e} (peak {peak:e})");
        }
    }

    /// Bad blocks fail every rank alike.
    #[test]
    fn bad_blocks_fail_every_rank() {
        let grid = Grid::unit(3, 8, BoundaryKind::Neumann).unwrap();
        let slabs = SlabDecomposition::new(&grid, 3).unwrap();
        let errors = LocalWorld::run(3, |ex| {
            let n = slabs.cells(ex.rank()).len();
            let mut source = vec![1.0; n];
            if ex.rank() == 1 {
                source[3] = -1.0;
            }
            slab_sinkhorn(
                ex,
                &grid,
                &source,
                &vec![1.0; n],
                &Sinkhorn::default(),
                &Options::default(),
            )
            .unwrap_err()
            .to_string()
        });
        assert!(
            errors.iter().all(|e| e.starts_with("distributed sinkhorn: a rank's density block")),
            "{errors:?}"
        );
        let zero = LocalWorld::run(2, |ex| {
            let n = SlabDecomposition::new(&grid, 2).unwrap().cells(ex.rank()).len();
            slab_sinkhorn(
                ex,
                &grid,
                &vec![1.0; n],
                &vec![0.0; n],
                &Sinkhorn::default(),
                &Options::default(),
            )
            .unwrap_err()
            .to_string()
        });
        assert!(
            zero.iter().all(|e| e.contains("must have unit mass") && e.ends_with("and 0e0")),
            "{zero:?}"
        );
        let timed = Options { time_limit: Some(10.0), ..Options::default() };
        let n = grid.num_cells();
        let err = slab_sinkhorn(
            &crate::distributed::Single,
            &grid,
            &vec![1.0; n],
            &vec![1.0; n],
            &Sinkhorn::default(),
            &timed,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("time limit or an observer"), "{err}");
    }
}
