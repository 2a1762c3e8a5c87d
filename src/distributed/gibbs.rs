//! The soft c-transform of the separable Gibbs kernel on a slab-decomposed grid
//! (Sinkhorn's kernel).
//!
//! `LSE_ε(h)_i = ε log Σ_j exp((h_j − |x_i − x_j|²/2)/ε)` (wrapped distance on periodic
//! axes) is one pass per axis, as in the serial kernel: the passes along x (and y in 3D)
//! run on the slabs, one `Alltoallv` moves the data to x-pencils for the slab axis' pass, and
//! one brings it back. Each pass is the serial pass on whole lines, so the result is the
//! serial one to round-off (its GEMM blocks the lines differently).

use super::exchange::Exchange;
use super::layout::axis_by_axis;
use super::sum::{pencil_sum, slab_sum};
use super::XPencils;
use crate::error::{Error, Result};
use crate::grid::{Grid, PencilDecomposition, SlabDecomposition};
use crate::ot::gibbs::{GibbsKernel, SoftTransform};

/// This rank's planes of `LSE_ε(h)` for `h` given on this rank's planes of `grid` (C order).
/// A collective: every rank calls it with the same grid and ε. Errors (ε not positive, more
/// ranks than planes or than cells along x, a block of the wrong length on any rank) are
/// agreed over the ranks. Values may be −∞ (empty lines stay −∞), not NaN.
pub fn slab_soft_transform(
    exchange: &impl Exchange,
    grid: &Grid,
    eps: f64,
    h: &[f64],
) -> Result<Vec<f64>> {
    let planned = SlabGibbs::new(exchange, grid, eps)?;
    let local: usize = planned.slab.iter().product();
    let bad = h.len() != local || h.iter().any(|v| v.is_nan());
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed soft c-transform: a rank's block has the wrong length or NaN values \
             (this rank: {} values for its {local} cells)",
            h.len()
        )));
    }
    let mut out = h.to_vec();
    planned.apply(&mut out)?;
    Ok(out)
}

/// The soft c-transform on one rank's slab, planned once for a grid and ε (the kernels, the
/// slab's shape and the pencil regrouping): what a distributed Sinkhorn iterates with.
pub struct SlabGibbs<'a, E: Exchange> {
    exchange: &'a E,
    kernel: GibbsKernel,
    slabs: SlabDecomposition,
    pencils: XPencils,
    /// The slab's storage shape `[planes][rows][x]` (2D: `[planes][x]`).
    slab: Vec<usize>,
    /// The pencils' shape for the slab axis' pass: `[n_S][rows · x_mine]`.
    pencil: [usize; 2],
}

impl<'a, E: Exchange> SlabGibbs<'a, E> {
    /// Plans the transform on this rank's planes of `grid` at ε; refused (on every rank
    /// alike) for ε not positive, more ranks than planes or than cells along x.
    pub fn new(exchange: &'a E, grid: &Grid, eps: f64) -> Result<SlabGibbs<'a, E>> {
        check_eps(eps)?;
        let slabs = SlabDecomposition::new(grid, exchange.size())?;
        let d = grid.dim();
        let (nx, rows) = (grid.axis(0).cells, if d == 3 { grid.axis(1).cells } else { 1 });
        let pencils = XPencils::new(&slabs, exchange.rank(), nx, rows)?;
        let sl = slabs.planes(exchange.rank()).len();
        let slab = if d == 3 { vec![sl, rows, nx] } else { vec![sl, nx] };
        let pencil = [grid.axis(d - 1).cells, rows * pencils.mine().len()];
        let kernel = GibbsKernel::new(grid, eps);
        Ok(SlabGibbs { exchange, kernel, slabs, pencils, slab, pencil })
    }
}

impl<E: Exchange> SoftTransform for SlabGibbs<'_, E> {
    fn eps(&self) -> f64 {
        self.kernel.eps()
    }

    /// The x (and y) passes on the slab, the slab axis' pass on the x-pencils.
    fn apply(&self, h: &mut Vec<f64>) -> Result<()> {
        let d = self.slab.len();
        self.kernel.soft_transform_axis(h, &self.slab, d - 1, 0);
        if d == 3 {
            self.kernel.soft_transform_axis(h, &self.slab, 1, 1);
        }
        let mut pencil = self.pencils.to_pencils(self.exchange, h);
        self.kernel.soft_transform_axis(&mut pencil, &self.pencil, 0, d - 1);
        *h = self.pencils.to_slabs(self.exchange, &pencil);
        Ok(())
    }

    fn sum(&self, terms: &[f64]) -> f64 {
        slab_sum(self.exchange, &self.slabs, |l| terms[l])
    }
}

/// The soft c-transform on one rank's y–z pencil block of a 3D grid (more ranks than z
/// planes): the x pass on the block, the y and z passes on whole y and z lines
/// ([`axis_by_axis`]), each the serial pass on whole lines — the serial transform to
/// round-off.
pub struct PencilGibbs<'a, E: Exchange> {
    exchange: &'a E,
    kernel: GibbsKernel,
    pencils: PencilDecomposition,
}

impl<'a, E: Exchange> PencilGibbs<'a, E> {
    /// Plans the transform on this rank's pencil of `grid` at ε; refused (on every rank
    /// alike) for ε not positive, a decomposition [`PencilDecomposition::new`] refuses,
    /// fewer cells along x than py or along y than pz.
    pub fn new(exchange: &'a E, grid: &Grid, eps: f64) -> Result<PencilGibbs<'a, E>> {
        check_eps(eps)?;
        let pencils = PencilDecomposition::new(grid, exchange.size())?;
        super::layout::PencilSpreads::new(&pencils)?;
        Ok(PencilGibbs { exchange, kernel: GibbsKernel::new(grid, eps), pencils })
    }
}

impl<E: Exchange> SoftTransform for PencilGibbs<'_, E> {
    fn eps(&self) -> f64 {
        self.kernel.eps()
    }

    fn apply(&self, h: &mut Vec<f64>) -> Result<()> {
        let pass = |values: &[f64], shape: [usize; 3], axis: usize| {
            let mut out = values.to_vec();
            self.kernel.soft_transform_axis(&mut out, &shape, 2, axis);
            out
        };
        *h = axis_by_axis(self.exchange, &self.pencils, &self.pencils, h, pass)?;
        Ok(())
    }

    fn sum(&self, terms: &[f64]) -> f64 {
        pencil_sum(self.exchange, &self.pencils, |l| terms[l])
    }
}

/// Refuses an ε that is not positive and finite.
fn check_eps(eps: f64) -> Result<()> {
    if eps.is_finite() && eps > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!("ε must be positive and finite, got {eps}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::exchange::LocalWorld;
    use crate::field::ScalarField;
    use crate::grid::BoundaryKind;

    /// The slab soft transform equals the serial one on 1–4 ranks, on non-divisible 2D and
    /// 3D grids with box and periodic axes, at an ε that exercises the exact fallback.
    #[test]
    fn slab_soft_transform_equals_the_serial_one() {
        use BoundaryKind::*;
        let cases: Vec<(Vec<usize>, Vec<BoundaryKind>, f64)> = vec![
            (vec![13, 10, 11], vec![Neumann, Neumann, Neumann], 0.05),
            (vec![12, 9, 7], vec![Periodic, Neumann, Periodic], 0.01),
            (vec![11, 14], vec![Neumann, Periodic], 1e-4),
        ];
        for (shape, kinds, eps) in cases {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let h = ScalarField::from_fn(&grid, |x| {
                let z = x.get(2).copied().unwrap_or(0.3);
                0.2 * (5.0 * x[0]).sin() + 0.1 * (3.0 * x[1] - z).cos()
            });
            let values = h.data().as_slice().unwrap().to_vec();
            let mut expected = values.clone();
            GibbsKernel::new(&grid, eps).soft_transform(&mut expected, &grid.storage_shape());
            for ranks in 1..=4 {
                let blocks = LocalWorld::run(ranks, |ex| {
                    let cells = SlabDecomposition::new(&grid, ranks).unwrap().cells(ex.rank());
                    (cells.clone(), slab_soft_transform(ex, &grid, eps, &values[cells]).unwrap())
                });
                let mut worst = 0.0f64;
                for (cells, out) in blocks {
                    for (v, e) in out.iter().zip(&expected[cells]) {
                        worst = worst.max((v - e).abs());
                    }
                }
                assert!(worst <= 1e-12, "{shape:?} {kinds:?} ε {eps} on {ranks} ranks: {worst:e}");
            }
        }
    }

    /// On y–z pencils (more ranks than z planes, 4–9 ranks) the soft transform equals the
    /// serial one, box and periodic axes.
    #[test]
    fn pencil_soft_transform_equals_the_serial_one() {
        use BoundaryKind::*;
        for (shape, kinds, eps, ranks) in [
            (vec![13, 10, 3], vec![Neumann, Neumann, Neumann], 0.05, vec![4, 6, 9]),
            (vec![12, 9, 2], vec![Periodic, Neumann, Periodic], 0.01, vec![3, 8]),
        ] {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let h = ScalarField::from_fn(&grid, |x| {
                0.2 * (5.0 * x[0]).sin() + 0.1 * (3.0 * x[1] - x[2]).cos()
            });
            let values = h.data().as_slice().unwrap().to_vec();
            let mut expected = values.clone();
            GibbsKernel::new(&grid, eps).soft_transform(&mut expected, &grid.storage_shape());
            for ranks in ranks {
                let blocks = LocalWorld::run(ranks, |ex| {
                    let pencils = PencilDecomposition::new(&grid, ranks).unwrap();
                    let mut h = pencils.block(ex.rank(), &values);
                    PencilGibbs::new(ex, &grid, eps).unwrap().apply(&mut h).unwrap();
                    (pencils.block(ex.rank(), &expected), h)
                });
                for (want, got) in blocks {
                    let worst =
                        want.iter().zip(&got).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                    assert!(worst <= 1e-12, "{shape:?} ε {eps} on {ranks} ranks: {worst:e}");
                }
            }
        }
    }
}
