//! The c-transform of the quadratic cost on a slab-decomposed grid (bfm's kernel).
//!
//! `q(y) = −min_x ( |x − y|²/2 + p(x) )` as [`crate::ot::c_transform`] computes it: the
//! separable Legendre transform of `φ = |x|²/2 + p` (p extended periodically by half a period
//! plus a cell on periodic axes), one 1D pass per axis with a negation between passes, then
//! `q = φ* − |y|²/2`. The passes along the axes a slab holds whole (x, and y in 3D) run
//! locally; one `Alltoallv` regroups the data into x-pencils for the slab axis' pass and one
//! brings it back. A periodic slab axis is extended as the serial transform extends it: the
//! padded planes are split over the ranks in balanced slabs of their own, each rank gathers
//! the planes of p its padded planes repeat (one more `Alltoallv`) and runs the passes
//! along x and y on them with their own `|z|²/2`. Every operation is the serial one, so the
//! result is the same to the bit.

use super::exchange::Exchange;
use super::layout::axis_by_axis;
use super::pushforward::{gather_planes, GatheredLines};
use super::{with_slab_cells, XPencils};
use crate::error::{Error, Result};
use crate::grid::{Axis, Grid, PencilDecomposition, SlabDecomposition};
use crate::ot::legendre::{transform_axis, Maximum};

/// The padded axis of `a`: periodic axes extended by `n/2 + 1` cells on each side (every
/// optimal displacement on a torus is at most half a period), others as they are.
fn padded(a: &Axis) -> (Axis, usize) {
    let k = if a.boundary.is_periodic() { a.cells / 2 + 1 } else { 0 };
    let h = a.spacing();
    let axis = Axis {
        cells: a.cells + 2 * k,
        lower: a.lower - k as f64 * h,
        upper: a.upper + k as f64 * h,
        boundary: crate::grid::BoundaryKind::Neumann,
    };
    (axis, k)
}

/// Index on the axis of `n` cells of the padded index `i` (pad `k`).
fn wrap(i: usize, n: usize, k: usize) -> usize {
    (i + n * (k / n + 1) - k) % n
}

/// Refuses, on every rank alike, a block of p of the wrong length or with NaN on any rank.
fn check_block(exchange: &impl Exchange, p: &[f64], local: usize) -> Result<()> {
    let bad = p.len() != local || p.iter().any(|v| !v.is_finite());
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed c-transform: a rank's block has the wrong length or NaN/infinite values \
             (this rank: {} values for its {local} cells)",
            p.len()
        )));
    }
    Ok(())
}

/// This rank's planes of the c-transform of `p` (this rank's planes of a function on
/// `grid`, C order), onto the same grid. A collective: every rank of `exchange` calls it
/// with the same grid. Errors (more ranks than planes or than cells along x, a block of the
/// wrong length or with NaN on any rank) are agreed over the ranks.
pub fn slab_c_transform(exchange: &impl Exchange, grid: &Grid, p: &[f64]) -> Result<Vec<f64>> {
    let ranks = exchange.size();
    let rank = exchange.rank();
    let slabs = SlabDecomposition::new(grid, ranks)?;
    let d = grid.dim();
    let nx = grid.axis(0).cells;
    // The middle axis (y in 3D; none in 2D): `rows` output lines per plane.
    let rows = if d == 3 { grid.axis(1).cells } else { 1 };
    let pencils = XPencils::new(&slabs, rank, nx, rows)?;
    let local = slabs.cells(rank).len();
    check_block(exchange, p, local)?;
    let axes: Vec<(Axis, usize)> = grid.axes().iter().map(padded).collect();
    let half = |x: f64| 0.5 * x * x;

    // The padded slab axis' planes in balanced slabs (the grid's own without padding), and
    // this rank's copy of the planes of p they repeat.
    let (sp, ks) = (&axes[d - 1].0, axes[d - 1].1);
    let n_s = grid.axis(d - 1).cells;
    let plane = slabs.plane_cells();
    let (padded_slabs, source) = if ks == 0 {
        (slabs.clone(), std::borrow::Cow::Borrowed(p))
    } else {
        let padded = SlabDecomposition::new(&with_slab_cells(grid, sp.cells)?, ranks)?;
        let wanted: Vec<Vec<usize>> =
            (0..ranks).map(|q| padded.planes(q).map(|i| wrap(i, n_s, ks)).collect()).collect();
        let planes = gather_planes(exchange, &slabs, p, plane, &wanted)?;
        (padded, std::borrow::Cow::Owned(planes))
    };
    let planes = padded_slabs.planes(rank);

    // φ on this rank's padded planes, padded along x (and y): |x|²/2 + |y|²/2 + |z|²/2 + p.
    let (xp, kx) = (&axes[0].0, axes[0].1);
    let (mp, km) = if d == 3 { (axes[1].0.clone(), axes[1].1) } else { (xp.clone(), 0) };
    let mid = if d == 3 { mp.cells } else { 1 };
    let sl = planes.len();
    let mut phi = vec![0.0; sl * mid * xp.cells];
    for s in 0..sl {
        let zs = sp.center(planes.start + s);
        for r in 0..mid {
            // Storage row (s, r): sq sums the half squares of axes 1.. in the serial order.
            let (sq, src_row) = if d == 3 {
                (0.0 + half(mp.center(r)) + half(zs), wrap(r, grid.axis(1).cells, km))
            } else {
                (0.0 + half(zs), 0)
            };
            let src = &source[(s * rows + src_row) * nx..][..nx];
            let out = &mut phi[(s * mid + r) * xp.cells..][..xp.cells];
            for (i, v) in out.iter_mut().enumerate() {
                *v = sq + half(xp.center(i)) + src[wrap(i, nx, kx)];
            }
        }
    }
    // The passes along x (and y) on the slab.
    let gx = grid.axis(0);
    let mut cur = transform_axis(
        &phi,
        &[sl, mid, xp.cells],
        2,
        nx,
        1.0,
        (xp.center(0), xp.spacing()),
        (gx.center(0), gx.spacing()),
        Maximum::Quadratic,
    );
    if d == 3 {
        let gy = grid.axis(1);
        cur = transform_axis(
            &cur,
            &[sl, mp.cells, nx],
            1,
            gy.cells,
            -1.0,
            (mp.center(0), mp.spacing()),
            (gy.center(0), gy.spacing()),
            Maximum::Quadratic,
        );
    }

    // To x-pencils of the padded slab axis: [S + 2 pad][rows][x_mine].
    let mine = pencils.mine();
    let input = XPencils::new(&padded_slabs, rank, nx, rows)?.to_pencils(exchange, &cur);
    let gs = grid.axis(d - 1);
    let width = rows * mine.len();
    let mut q = transform_axis(
        &input,
        &[sp.cells, rows, mine.len()],
        0,
        n_s,
        -1.0,
        (sp.center(0), sp.spacing()),
        (gs.center(0), gs.spacing()),
        Maximum::Quadratic,
    );
    // q = φ* − |y|²/2, the half squares summed in the serial order (axes 1.., then x).
    for (s, plane) in q.chunks_exact_mut(width).enumerate() {
        let hz = half(gs.center(s));
        for (r, line) in plane.chunks_exact_mut(mine.len()).enumerate() {
            let sq = if d == 3 { 0.0 + half(grid.axis(1).center(r)) + hz } else { 0.0 + hz };
            for (v, i) in line.iter_mut().zip(mine.clone()) {
                *v -= sq + half(gx.center(i));
            }
        }
    }

    Ok(pencils.to_slabs(exchange, &q))
}

/// This rank's pencil block of the c-transform of `p` (this rank's block of the 3D `grid`'s
/// [`PencilDecomposition`], `[z][y][x]`), onto the same block. φ is built on the padded grid's
/// pencils (the same `py × pz`, periodic axes padded as the serial transform pads them): each
/// rank gathers the x lines of p its padded rows and planes repeat (one `Alltoallv`), then
/// the three passes run on whole lines of their axis ([`axis_by_axis`]: two all-to-alls
/// per transposed axis), and `q = φ* − |y|²/2` on the block — every value the serial
/// arithmetic, so the result is [`crate::ot::c_transform`]'s to the bit. A collective;
/// errors (a block of the wrong length or with NaN on any rank, a decomposition that does
/// not fit) are agreed over the ranks.
pub fn pencil_c_transform(exchange: &impl Exchange, grid: &Grid, p: &[f64]) -> Result<Vec<f64>> {
    let pencils = PencilDecomposition::new(grid, exchange.size())?;
    let rank = exchange.rank();
    let local = pencils.len(rank);
    check_block(exchange, p, local)?;
    let axes: Vec<(Axis, usize)> = grid.axes().iter().map(padded).collect();
    let padded_grid = Grid::new(axes.iter().map(|(a, _)| a.clone()).collect())?;
    let (py, pz) = pencils.shape();
    let padded_pencils = PencilDecomposition::with_shape(&padded_grid, py, pz)?;
    let n: [usize; 3] = std::array::from_fn(|a| grid.axis(a).cells);
    let half = |x: f64| 0.5 * x * x;
    // The x lines (id z·ny + y) of p each rank's padded rows and planes repeat.
    let (ky, kz) = (axes[1].1, axes[2].1);
    let wanted: Vec<Vec<usize>> = (0..pencils.ranks())
        .map(|q| {
            let (rows, planes) = (padded_pencils.rows(q), padded_pencils.planes(q));
            planes
                .flat_map(|z| {
                    let z = wrap(z, n[2], kz);
                    rows.clone().map(move |y| z * n[1] + wrap(y, n[1], ky))
                })
                .collect()
        })
        .collect();
    let source = GatheredLines::gather(exchange, &pencils, p, n[0], &wanted)?;
    // φ = |x|²/2 + p on this rank's padded block, the half squares summed in the serial
    // order (axes 1.., then x).
    let (xp, kx) = (&axes[0].0, axes[0].1);
    let (yp, zp) = (&axes[1].0, &axes[2].0);
    let (rows, planes) = (padded_pencils.rows(rank), padded_pencils.planes(rank));
    let mut phi = Vec::with_capacity(planes.len() * rows.len() * xp.cells);
    for z in planes.clone() {
        for y in rows.clone() {
            let sq = 0.0 + half(yp.center(y)) + half(zp.center(z));
            let src = source.line(wrap(z, n[2], kz) * n[1] + wrap(y, n[1], ky));
            phi.extend((0..xp.cells).map(|i| sq + half(xp.center(i)) + src[wrap(i, n[0], kx)]));
        }
    }
    // One pass per axis on whole lines of it, negating between passes.
    let pass = |values: &[f64], shape: [usize; 3], a: usize| {
        let (from, to) = (&axes[a].0, grid.axis(a));
        transform_axis(
            values,
            &shape,
            2,
            to.cells,
            if a == 0 { 1.0 } else { -1.0 },
            (from.center(0), from.spacing()),
            (to.center(0), to.spacing()),
            Maximum::Quadratic,
        )
    };
    let mut q = axis_by_axis(exchange, &padded_pencils, &pencils, &phi, pass)?;
    let (gx, gy, gz) = (grid.axis(0), grid.axis(1), grid.axis(2));
    let (rows, planes) = (pencils.rows(rank), pencils.planes(rank));
    let lines = planes.flat_map(|z| rows.clone().map(move |y| (y, z)));
    for (line, (y, z)) in q.chunks_exact_mut(n[0]).zip(lines) {
        let sq = 0.0 + half(gy.center(y)) + half(gz.center(z));
        for (i, v) in line.iter_mut().enumerate() {
            *v -= sq + half(gx.center(i));
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::exchange::LocalWorld;
    use crate::field::ScalarField;
    use crate::grid::BoundaryKind;
    use crate::ot::c_transform;

    /// The slab c-transform equals the serial one to the bit on 1–4 ranks, on non-divisible
    /// 2D and 3D grids with box and periodic axes (slab axis included).
    #[test]
    fn slab_c_transform_equals_the_serial_one() {
        use BoundaryKind::*;
        let cases: Vec<(Vec<usize>, Vec<BoundaryKind>)> = vec![
            (vec![13, 10, 11], vec![Neumann, Neumann, Neumann]),
            (vec![12, 9, 7], vec![Periodic, Neumann, Periodic]),
            (vec![8, 7, 9], vec![Periodic, Periodic, Periodic]),
            (vec![11, 14], vec![Neumann, Neumann]),
            (vec![9, 10], vec![Periodic, Periodic]),
        ];
        for (shape, kinds) in cases {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            // A displacement potential with structure on every axis.
            let p = ScalarField::from_fn(&grid, |x| {
                let z = x.get(2).copied().unwrap_or(0.3);
                0.05 * (6.0 * x[0]).sin() * (4.0 * x[1] + z).cos() - 0.02 * x[0] * z
            });
            let expected = c_transform(&p, &grid).unwrap();
            let expected = expected.data().as_slice().unwrap().to_vec();
            let values = p.data().as_slice().unwrap().to_vec();
            for ranks in 1..=4 {
                let blocks = LocalWorld::run(ranks, |ex| {
                    let cells = SlabDecomposition::new(&grid, ranks).unwrap().cells(ex.rank());
                    (cells.clone(), slab_c_transform(ex, &grid, &values[cells]).unwrap())
                });
                let mut worst = 0.0f64;
                for (cells, q) in blocks {
                    for (v, e) in q.iter().zip(&expected[cells]) {
                        worst = worst.max((v - e).abs());
                    }
                }
                assert!(worst == 0.0, "{shape:?} {kinds:?} on {ranks} ranks: off by {worst:e}");
            }
        }
    }

    /// The pencil c-transform equals the serial one to the bit on 1–12 ranks (slabs, and
    /// pencils of every py × pz), on non-divisible grids with box and periodic axes.
    #[test]
    fn pencil_c_transform_equals_the_serial_one() {
        use BoundaryKind::*;
        let cases: Vec<(Vec<usize>, Vec<BoundaryKind>)> = vec![
            (vec![13, 10, 3], vec![Neumann, Neumann, Neumann]),
            (vec![12, 9, 4], vec![Periodic, Neumann, Periodic]),
            (vec![8, 7, 5], vec![Periodic, Periodic, Periodic]),
            (vec![9, 11, 2], vec![Neumann, Periodic, Neumann]),
        ];
        for (shape, kinds) in cases {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let p = ScalarField::from_fn(&grid, |x| {
                0.05 * (6.0 * x[0]).sin() * (4.0 * x[1] + x[2]).cos() - 0.02 * x[0] * x[2]
                    + 0.03 * (5.0 * x[2]).sin() * x[1]
            });
            let expected = c_transform(&p, &grid).unwrap();
            let expected = expected.data().as_slice().unwrap().to_vec();
            let values = p.data().as_slice().unwrap().to_vec();
            for ranks in [1, 2, 3, 4, 6, 8, 12] {
                let Ok(pencils) = PencilDecomposition::new(&grid, ranks) else { continue };
                let blocks = LocalWorld::run(ranks, |ex| {
                    let block = pencils.block(ex.rank(), &values);
                    (ex.rank(), pencil_c_transform(ex, &grid, &block).unwrap())
                });
                for (rank, q) in blocks {
                    assert!(
                        q == pencils.block(rank, &expected),
                        "{shape:?} {kinds:?} on {ranks} ranks ({:?}): rank {rank}",
                        pencils.shape()
                    );
                }
            }
        }
    }

    /// Bad input on one rank ends every rank with the same error.
    #[test]
    fn a_bad_block_on_one_rank_fails_every_rank() {
        let grid = Grid::uniform(&[6, 5, 4], &[0.0; 3], &[1.0; 3], BoundaryKind::Neumann).unwrap();
        let errors = LocalWorld::run(2, |ex| {
            let n = SlabDecomposition::new(&grid, 2).unwrap().cells(ex.rank()).len();
            let mut p = vec![0.0; n];
            if ex.rank() == 1 {
                p[3] = f64::NAN;
            }
            slab_c_transform(ex, &grid, &p).unwrap_err().to_string()
        });
        assert!(errors.iter().all(|e| e.contains("NaN")), "{errors:?}");
    }
}
