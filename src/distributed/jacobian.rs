//! The push-forward by change of variables on a slab-decomposed grid (bfm's for smooth
//! densities on the torus, [`crate::ot::JacobianPushForward::apply`]):
//!
//! `(T#μ)(y) = μ(y + ∇q(y)) det(I + D²q(y))`
//!
//! for the inverse map `y + ∇q`. Each rank differentiates q on its planes with the serial
//! stencils — centred, mirrored at box faces — whose slab-axis reach (one plane each side,
//! wrapped on a periodic axis) comes in one `Alltoallv`; then it
//! interpolates μ at its cells' mapped points, which may lie anywhere along the slab axis:
//! the planes of μ they read come in a second `Alltoallv`. Every value is computed with the
//! serial arithmetic, so the result is the serial one to the bit.
//!
//! Communication per call: q's halo (2 planes per rank, 1 beside a box face) and the planes
//! of μ the mapped points read (for a map that moves mass by less than a plane, the rank's
//! planes and one beyond each side).

use super::exchange::Exchange;
use super::pushforward::{gather_planes, GatheredLines};
use crate::error::{Error, Result};
use crate::grid::{Grid, PencilDecomposition, SlabDecomposition};
use crate::ot::pushforward::{d1, d2, determinant, interpolate_from, linear_stencil};
use rayon::prelude::*;

/// The planes of an axis of `n` cells that [`d1`] and [`d2`] read at plane i (the mirror
/// at a box face reads the face plane and its neighbour).
fn stencil_planes(i: usize, n: usize, periodic: bool) -> Vec<usize> {
    if periodic {
        vec![(i + n - 1) % n, i, (i + 1) % n]
    } else {
        (i.saturating_sub(1)..(i + 2).min(n)).collect()
    }
}

/// The values of `values` (gathered planes of `plane` cells, plane k at `position[k]`) along
/// the slab axis at in-plane offset c.
fn slab_line<'a>(
    values: &'a [f64],
    position: &'a [usize],
    plane: usize,
    c: usize,
) -> impl Fn(usize) -> f64 + 'a {
    move |k| values[position[k] * plane + c]
}

/// Sorted, without repeats.
fn sorted(mut planes: Vec<usize>) -> Vec<usize> {
    planes.sort_unstable();
    planes.dedup();
    planes
}

/// Refuses, on every rank alike, blocks of μ or q of the wrong length or with NaN on any rank,
/// and an axis of fewer than 4 cells (as the serial plan).
fn check_blocks(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    q: &[f64],
    local: usize,
) -> Result<()> {
    let bad = mu.len() != local
        || q.len() != local
        || mu.iter().chain(q).any(|v| !v.is_finite())
        || grid.axes().iter().any(|a| a.cells < 4);
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed push-forward: a rank's block has the wrong length or NaN/infinite \
             values, or an axis has fewer than 4 cells (this rank: {} and {} values for its \
             {local} cells)",
            mu.len(),
            q.len()
        )));
    }
    Ok(())
}

/// This rank's planes of [`crate::ot::JacobianPushForward::apply`]`(μ, q)` on `grid`: `mu`
/// and `q` this rank's planes of the density and of the inverse map's displacement
/// potential (C order). To the bit. A collective: every rank calls it with the same grid.
/// Refused on every rank: fewer than 4 cells along an axis, blocks of the wrong length or
/// with NaN or infinite values on any rank.
pub fn slab_change_of_variables(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    q: &[f64],
) -> Result<Vec<f64>> {
    let (ranks, rank) = (exchange.size(), exchange.rank());
    let slabs = SlabDecomposition::new(grid, ranks)?;
    let local = slabs.cells(rank).len();
    check_blocks(exchange, grid, mu, q, local)?;
    let d = grid.dim();
    let plane = slabs.plane_cells();
    let slab = grid.axis(d - 1);
    let (n, periodic, h) = (slab.cells, slab.boundary.is_periodic(), slab.spacing());
    let planes = slabs.planes(rank);
    // q on the planes the slab-axis stencils read.
    let wanted: Vec<Vec<usize>> = (0..ranks)
        .map(|r| sorted(slabs.planes(r).flat_map(|i| stencil_planes(i, n, periodic)).collect()))
        .collect();
    let qs = gather_planes(exchange, &slabs, q, plane, &wanted)?;
    let mut position = vec![usize::MAX; n];
    for (k, &j) in wanted[rank].iter().enumerate() {
        position[j] = k;
    }
    let strides = crate::operators::strides(grid);
    // In-plane index (x, and y in 3D) of in-plane offset c.
    let in_plane = |c: usize| -> [usize; 2] {
        if d == 3 {
            [c % strides[1], c / strides[1]]
        } else {
            [c, 0]
        }
    };
    // The derivative (d1) or second derivative (d2) along in-plane axis a of the plane of
    // `values` starting at `start`, at in-plane offset c.
    let along = |values: &[f64], start: usize, a: usize, c: usize, second: bool| -> f64 {
        let ax = grid.axis(a);
        let (i, s) = (in_plane(c)[a], strides[a]);
        let line0 = start + c - i * s;
        let f = |k: usize| values[line0 + k * s];
        let (m, hh, per) = (ax.cells, ax.spacing(), ax.boundary.is_periodic());
        if second {
            d2(f, i, m, hh, per)
        } else {
            d1(f, i, m, hh, per)
        }
    };
    // The gradients along the in-plane axes on every gathered plane.
    let gathered = wanted[rank].len();
    let in_plane_gradients: Vec<Vec<f64>> = (0..d - 1)
        .map(|a| {
            (0..gathered * plane)
                .into_par_iter()
                .map(|g| along(&qs, g - g % plane, a, g % plane, false))
                .collect()
        })
        .collect();
    // Per own cell: the mapped point y + ∇q and det(I + D²q).
    let mapped: Vec<([f64; 3], f64)> = (0..local)
        .into_par_iter()
        .map(|l| {
            let (s, c) = (l / plane, l % plane);
            let i = planes.start + s;
            let start = position[i] * plane;
            let mut gradient = [0.0f64; 3];
            for (a, g) in in_plane_gradients.iter().enumerate() {
                gradient[a] = g[start + c];
            }
            gradient[d - 1] = d1(slab_line(&qs, &position, plane, c), i, n, h, periodic);
            let mut raw = [[0.0f64; 3]; 3];
            for a in 0..d {
                for b in 0..d {
                    raw[a][b] = match (a == b, b == d - 1, a == d - 1) {
                        (true, true, _) => {
                            d2(slab_line(&qs, &position, plane, c), i, n, h, periodic)
                        }
                        (true, false, _) => along(&qs, start, a, c, true),
                        // The slab-axis derivative of an in-plane gradient.
                        (false, true, _) => d1(
                            slab_line(&in_plane_gradients[a], &position, plane, c),
                            i,
                            n,
                            h,
                            periodic,
                        ),
                        // An in-plane derivative of the slab-axis gradient (on this plane).
                        (false, false, true) => {
                            let ax = grid.axis(b);
                            let (ib, sb) = (in_plane(c)[b], strides[b]);
                            let f = |k: usize| {
                                let cc = c - ib * sb + k * sb;
                                d1(slab_line(&qs, &position, plane, cc), i, n, h, periodic)
                            };
                            d1(f, ib, ax.cells, ax.spacing(), ax.boundary.is_periodic())
                        }
                        (false, false, false) => along(&in_plane_gradients[a], start, b, c, false),
                    };
                }
            }
            let index = in_plane(c);
            let mut x = [0.0f64; 3];
            for a in 0..d {
                let ia = if a == d - 1 { i } else { index[a] };
                x[a] = grid.axis(a).center(ia) + gradient[a];
            }
            (x, determinant(&raw, d))
        })
        .collect();
    // μ on the planes the mapped points read.
    let reads = |x: &[f64; 3]| {
        let (base, next, _, _) = linear_stencil(slab, x[d - 1]);
        [base, next]
    };
    let mine: Vec<usize> = sorted(mapped.iter().flat_map(|(x, _)| reads(x)).collect());
    let wanted = super::all_lists(exchange, &mine);
    let mus = gather_planes(exchange, &slabs, mu, plane, &wanted)?;
    let mut at = vec![usize::MAX; n];
    for (k, &j) in mine.iter().enumerate() {
        at[j] = k;
    }
    let value = |flat: usize| mus[at[flat / plane] * plane + flat % plane];
    Ok(mapped
        .par_iter()
        .map(|(x, det)| interpolate_from(grid, value, &x[..d], None) * det.max(0.0))
        .collect())
}

/// This rank's pencil block of [`crate::ot::JacobianPushForward::apply`]`(μ, q)` on the 3D
/// `grid`'s [`PencilDecomposition`]: `mu` and `q` this rank's blocks. The x lines of q the
/// stencils read — the block's rows and planes and their reach along y and z (one beyond,
/// up to three at a face, wrapped on a periodic axis), corners included for the mixed
/// derivatives — come in one `Alltoallv`, the x lines of μ the mapped points read in
/// another; every value is computed with the serial arithmetic, so the result is the serial
/// one to the bit. A collective; refused on every rank as [`slab_change_of_variables`] is.
pub fn pencil_change_of_variables(
    exchange: &impl Exchange,
    grid: &Grid,
    mu: &[f64],
    q: &[f64],
) -> Result<Vec<f64>> {
    let pencils = PencilDecomposition::new(grid, exchange.size())?;
    let rank = exchange.rank();
    let local = pencils.len(rank);
    check_blocks(exchange, grid, mu, q, local)?;
    let (nx, ny) = (grid.axis(0).cells, grid.axis(1).cells);
    let periodic = |a: usize| grid.axis(a).boundary.is_periodic();
    let reach = |cells: std::ops::Range<usize>, a: usize| -> Vec<usize> {
        let n = grid.axis(a).cells;
        sorted(cells.flat_map(|i| stencil_planes(i, n, periodic(a))).collect())
    };
    // q's x lines (id z·ny + y) each rank's stencils read.
    let wanted: Vec<Vec<usize>> = (0..pencils.ranks())
        .map(|r| {
            let ys = reach(pencils.rows(r), 1);
            reach(pencils.planes(r), 2)
                .iter()
                .flat_map(|z| ys.iter().map(move |y| z * ny + y))
                .collect()
        })
        .collect();
    let qs = GatheredLines::gather(exchange, &pencils, q, nx, &wanted)?;
    let q_at = |flat: usize| qs.line(flat / nx)[flat % nx];
    let strides = [1, nx, nx * ny];
    let index = |flat: usize| [flat % nx, (flat / nx) % ny, flat / (nx * ny)];
    // The serial stencils along axis a at global cell `flat` of the values `vals`.
    let along = |flat: usize, a: usize, vals: &dyn Fn(usize) -> f64, second: bool| -> f64 {
        let ax = grid.axis(a);
        let (i, s) = (index(flat)[a], strides[a]);
        let line0 = flat - i * s;
        let f = |k: usize| vals(line0 + k * s);
        if second {
            d2(f, i, ax.cells, ax.spacing(), periodic(a))
        } else {
            d1(f, i, ax.cells, ax.spacing(), periodic(a))
        }
    };
    // Per own cell: the mapped point y + ∇q and det(I + D²q), as the serial kernel.
    let mapped: Vec<([f64; 3], f64)> = (0..local)
        .into_par_iter()
        .map(|k| {
            let flat = pencils.to_global(rank, k);
            let mut raw = [[0.0f64; 3]; 3];
            for (a, row) in raw.iter_mut().enumerate() {
                let gradient_a = |f: usize| along(f, a, &q_at, false);
                for (b, v) in row.iter_mut().enumerate() {
                    *v = if a == b {
                        along(flat, a, &q_at, true)
                    } else {
                        along(flat, b, &gradient_a, false)
                    };
                }
            }
            let idx = index(flat);
            let x: [f64; 3] =
                std::array::from_fn(|a| grid.axis(a).center(idx[a]) + along(flat, a, &q_at, false));
            (x, determinant(&raw, 3))
        })
        .collect();
    // μ's x lines the mapped points read.
    let reads = |x: &[f64; 3]| {
        let (y0, y1, _, _) = linear_stencil(grid.axis(1), x[1]);
        let (z0, z1, _, _) = linear_stencil(grid.axis(2), x[2]);
        [z0 * ny + y0, z0 * ny + y1, z1 * ny + y0, z1 * ny + y1]
    };
    let mine: Vec<usize> = sorted(mapped.iter().flat_map(|(x, _)| reads(x)).collect());
    let wanted = super::all_lists(exchange, &mine);
    let mus = GatheredLines::gather(exchange, &pencils, mu, nx, &wanted)?;
    let value = |flat: usize| mus.line(flat / nx)[flat % nx];
    Ok(mapped
        .par_iter()
        .map(|(x, det)| interpolate_from(grid, value, x, None) * det.max(0.0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::{test_grid, LocalWorld};
    use crate::field::ScalarField;
    use crate::grid::BoundaryKind::{Neumann, Periodic};
    use crate::ot::JacobianPushForward;

    /// On 1–4 ranks the slab change of variables equals the serial one to the bit: 2D and
    /// 3D, box and periodic slab axes (the faces' mirror and the wrap), uneven slabs,
    /// and a map that moves points across several slabs.
    #[test]
    fn slab_change_of_variables_equals_the_serial_one_to_the_bit() {
        for (shape, kinds) in [
            (vec![12usize, 11, 13], vec![Periodic, Periodic, Periodic]),
            (vec![10, 9, 14], vec![Neumann, Periodic, Neumann]),
            (vec![13, 12], vec![Neumann, Neumann]),
            (vec![9, 16], vec![Periodic, Periodic]),
        ] {
            let grid = test_grid(&shape, &kinds);
            let d = grid.dim();
            let mu = ScalarField::from_fn(&grid, |x| {
                1.2 + (6.0 * x[0]).sin() * (5.0 * x[d - 1]).cos() + 0.3 * x[1]
            });
            // A displacement that reaches a third of the slab axis.
            let q = ScalarField::from_fn(&grid, |x| {
                0.02 * (6.3 * x[0]).sin() + 0.05 * (6.3 * x[d - 1]).cos() + 0.01 * x[1] * x[1]
            });
            let flat = |f: &ScalarField| f.data().as_slice().unwrap().to_vec();
            let (m, qv) = (flat(&mu), flat(&q));
            let mut serial = vec![0.0; grid.num_cells()];
            JacobianPushForward::new(&grid).unwrap().apply(&mu, &qv, &mut serial);
            for ranks in 1..=4 {
                let got = LocalWorld::run(ranks, |ex| {
                    let c = SlabDecomposition::new(&grid, ranks).unwrap().cells(ex.rank());
                    let out = slab_change_of_variables(ex, &grid, &m[c.clone()], &qv[c.clone()]);
                    (c, out.unwrap())
                });
                for (c, out) in got {
                    assert!(out == serial[c], "{shape:?} {kinds:?} on {ranks} ranks");
                }
            }
        }
    }

    /// On y–z pencils (1–12 ranks: slabs and every py × pz the count allows) the change of
    /// variables equals the serial one to the bit: box and periodic axes (the faces'
    /// mirror, the wrap), a map that moves points across several pencils.
    #[test]
    fn pencil_change_of_variables_equals_the_serial_one_to_the_bit() {
        for (shape, kinds) in [
            ([12usize, 11, 5], [Periodic, Periodic, Periodic]),
            ([10, 9, 4], [Neumann, Periodic, Neumann]),
            ([9, 8, 6], [Neumann, Neumann, Neumann]),
        ] {
            let grid = test_grid(&shape, &kinds);
            let mu = ScalarField::from_fn(&grid, |x| {
                1.2 + (6.0 * x[0]).sin() * (5.0 * x[2]).cos() + 0.3 * x[1]
            });
            let q = ScalarField::from_fn(&grid, |x| {
                0.02 * (6.3 * x[0]).sin()
                    + 0.05 * (6.3 * x[2]).cos()
                    + 0.04 * (5.0 * x[1]).sin()
                    + 0.01 * x[1] * x[2]
            });
            let flat = |f: &ScalarField| f.data().as_slice().unwrap().to_vec();
            let (m, qv) = (flat(&mu), flat(&q));
            let mut serial = vec![0.0; grid.num_cells()];
            JacobianPushForward::new(&grid).unwrap().apply(&mu, &qv, &mut serial);
            for ranks in [1, 2, 4, 6, 8, 12] {
                let Ok(pencils) = PencilDecomposition::new(&grid, ranks) else { continue };
                let got = LocalWorld::run(ranks, |ex| {
                    let r = ex.rank();
                    let (mb, qb) = (pencils.block(r, &m), pencils.block(r, &qv));
                    (r, pencil_change_of_variables(ex, &grid, &mb, &qb).unwrap())
                });
                for (r, out) in got {
                    assert!(
                        out == pencils.block(r, &serial),
                        "{shape:?} {kinds:?} on {ranks} ranks ({:?})",
                        pencils.shape()
                    );
                }
            }
        }
    }

    /// A NaN on one rank fails every rank.
    #[test]
    fn a_bad_block_fails_every_rank() {
        let grid = test_grid(&[6, 5, 8], &[Neumann; 3]);
        let errors = LocalWorld::run(2, |ex| {
            let n = SlabDecomposition::new(&grid, 2).unwrap().cells(ex.rank()).len();
            let mut q = vec![0.0; n];
            if ex.rank() == 1 {
                q[2] = f64::NAN;
            }
            slab_change_of_variables(ex, &grid, &vec![1.0; n], &q).unwrap_err().to_string()
        });
        assert!(errors.iter().all(|e| e.contains("NaN")), "{errors:?}");
    }
}
