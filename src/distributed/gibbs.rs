//! The soft c-transform of the separable Gibbs kernel on a slab-decomposed grid
//! (Sinkhorn's kernel).
//!
//! `LSE_ε(h)_i = ε log Σ_j exp((h_j − |x_i − x_j|²/2)/ε)` (wrapped distance on periodic
//! axes) is one pass per axis, as in the serial kernel: the passes along x (and y in 3D)
//! run on the slabs, one `Alltoallv` moves the data to x-pencils for the slab axis' pass, and
//! one brings it back. Each pass is the serial pass on whole lines, so the result is the
//! serial one to round-off (its GEMM blocks the lines differently).

use super::exchange::Exchange;
use super::XPencils;
use crate::error::{Error, Result};
use crate::grid::{Grid, SlabDecomposition};
use crate::ot::gibbs::GibbsKernel;

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
    let positive = eps.is_finite() && eps > 0.0;
    if !positive {
        return Err(Error::invalid(format!("ε must be positive and finite, got {eps}")));
    }
    let (rank, ranks) = (exchange.rank(), exchange.size());
    let slabs = SlabDecomposition::new(grid, ranks)?;
    let d = grid.dim();
    let nx = grid.axis(0).cells;
    let rows = if d == 3 { grid.axis(1).cells } else { 1 };
    let pencils = XPencils::new(&slabs, rank, nx, rows)?;
    let local = slabs.cells(rank).len();
    let bad = h.len() != local || h.iter().any(|v| v.is_nan());
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed soft c-transform: a rank's block has the wrong length or NaN values \
             (this rank: {} values for its {local} cells)",
            h.len()
        )));
    }
    let kernel = GibbsKernel::new(grid, eps);
    let sl = slabs.planes(rank).len();
    let mut slab = h.to_vec();
    let shape: Vec<usize> = if d == 3 { vec![sl, rows, nx] } else { vec![sl, nx] };
    kernel.soft_transform_axis(&mut slab, &shape, d - 1, 0);
    if d == 3 {
        kernel.soft_transform_axis(&mut slab, &shape, 1, 1);
    }
    let mut pencil = pencils.to_pencils(exchange, &slab);
    let n_s = grid.axis(d - 1).cells;
    kernel.soft_transform_axis(&mut pencil, &[n_s, rows * pencils.mine().len()], 0, d - 1);
    Ok(pencils.to_slabs(exchange, &pencil))
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
}
