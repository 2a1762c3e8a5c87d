//! Matrix-free finite-difference operators on a slab-decomposed grid, with one-plane halos.
//!
//! A stencil that reaches one cell along the slab axis needs the neighbouring ranks' edge
//! planes: each rank sends its first plane to the rank below and its last to the rank above
//! (wrapping on a periodic slab axis) in one `Alltoallv` — `2 × plane` values per rank — and
//! applies the serial stencil, in the serial order, with those halos, so the result is
//! [`crate::operators`]' to the bit. At the grid's own faces the ghost rules of
//! [`crate::operators`] apply.

use super::exchange::Exchange;
use super::layout::PencilSpreads;
use super::pushforward::{gather_planes, GatheredLines};
use super::{displacements, exchange_blocks};
use crate::error::{Error, Result};
use crate::grid::{Grid, PencilDecomposition, SlabDecomposition};
use crate::operators::{
    centred_difference, divergence_term, ghost, neighbour, scalar_neighbour, stencil_axes,
    weighted_row,
};
use rayon::prelude::*;

/// The planes below and above this rank's block along the slab axis (`None` at a
/// non-periodic face of the grid): one halo exchange.
struct Halos {
    below: Option<Vec<f64>>,
    above: Option<Vec<f64>>,
}

/// Exchanges this rank's edge planes of `u` (its block, C order) with its slab neighbours.
fn exchange_halos(
    exchange: &impl Exchange,
    slabs: &SlabDecomposition,
    periodic: bool,
    u: &[f64],
) -> Halos {
    let (rank, ranks) = (exchange.rank(), slabs.ranks());
    let plane = slabs.plane_cells();
    let below = (rank > 0 || periodic).then(|| (rank + ranks - 1) % ranks);
    let above = (rank + 1 < ranks || periodic).then(|| (rank + 1) % ranks);
    let first = &u[..plane];
    let last = &u[u.len() - plane..];
    // To each rank: my first plane if it is the rank below me (it becomes its halo above),
    // then my last plane if it is the rank above me; received in the same order.
    let mut send = Vec::with_capacity(2 * plane);
    let mut send_counts = vec![0; ranks];
    let mut recv_counts = vec![0; ranks];
    for q in 0..ranks {
        if below == Some(q) {
            send.extend_from_slice(first);
            send_counts[q] += plane;
        }
        if above == Some(q) {
            send.extend_from_slice(last);
            send_counts[q] += plane;
        }
        // What q sends me: its first plane if I am below it (q is above me), then its last
        // plane if I am above it (q is below me).
        recv_counts[q] = plane * (usize::from(above == Some(q)) + usize::from(below == Some(q)));
    }
    let recv = exchange_blocks(exchange, &send, &send_counts, &recv_counts);
    let recv_displs = displacements(&recv_counts);
    let mut halos = Halos { below: None, above: None };
    if let Some(q) = above {
        // q's first plane comes first in q's block.
        halos.above = Some(recv[recv_displs[q]..][..plane].to_vec());
    }
    if let Some(q) = below {
        let offset = if above == Some(q) { plane } else { 0 };
        halos.below = Some(recv[recv_displs[q] + offset..][..plane].to_vec());
    }
    halos
}

/// The `len` values from `start` of a halo plane that exists.
fn halo_row(halo: &Option<Vec<f64>>, start: usize, len: usize) -> &[f64] {
    &halo.as_deref().expect("a halo where a neighbour exists")[start..start + len]
}

/// Refuses, on every rank alike, a block of the wrong length on any rank.
fn agree_lengths(
    exchange: &impl Exchange,
    what: &str,
    lengths: &[usize],
    cells: usize,
) -> Result<()> {
    let bad = lengths.iter().any(|&l| l != cells);
    if exchange.max(f64::from(u8::from(bad))) > 0.0 {
        return Err(Error::invalid(format!(
            "distributed {what}: a rank's block has the wrong length (this rank: {lengths:?} \
             values for its {cells} cells)"
        )));
    }
    Ok(())
}

/// This rank's block of `−∇_h·(w ∇_h u) + d u` ([`crate::operators::apply_weighted_laplacian`]'s
/// stencil, face weights and ghost rules, plus an optional diagonal d: the weighted metric
/// of bfm and of the JKO steps) for `w`, `u` (and `d`) given on this rank's planes of `grid`.
/// A collective: two halo exchanges (u's and w's edge planes). Each row sums its faces in the
/// serial kernel's order, so the result is the serial operator's to the bit. A block of the
/// wrong length on any rank is an error on every rank.
pub fn slab_weighted_laplacian(
    exchange: &impl Exchange,
    grid: &Grid,
    w: &[f64],
    diagonal: Option<&[f64]>,
    u: &[f64],
) -> Result<Vec<f64>> {
    let slabs = SlabDecomposition::new(grid, exchange.size())?;
    let rank = exchange.rank();
    let cells = slabs.cells(rank);
    let mut lengths = vec![u.len(), w.len()];
    lengths.extend(diagonal.map(<[f64]>::len));
    agree_lengths(exchange, "weighted Laplacian", &lengths, cells.len())?;
    let d = grid.dim();
    let axes = stencil_axes(grid);
    let periodic = axes[d - 1].3.is_periodic();
    let (hu, hw) = (
        exchange_halos(exchange, &slabs, periodic, u),
        exchange_halos(exchange, &slabs, periodic, w),
    );
    let plane = slabs.plane_cells();
    let local_planes = slabs.planes(rank).len();
    let n0 = axes[0].0;
    let mut out = vec![0.0; u.len()];
    out.par_chunks_mut(n0).enumerate().for_each(|(row, o)| {
        let base = row * n0;
        let global = cells.start + base;
        let row_of = |j: usize| (&w[j..j + n0], &u[j..j + n0]);
        let (p, k) = (base / plane, base % plane);
        let next = |a: usize, up: bool| {
            let (n, s, _, kind) = axes[a];
            let i = (global / s) % n;
            neighbour(global, i, n, s, up, kind)?;
            Some(if a + 1 < d {
                // Within the plane: the same offset locally.
                row_of(neighbour(base, i, n, s, up, kind).expect("exists"))
            } else if up {
                if p + 1 < local_planes {
                    row_of(base + plane)
                } else {
                    (halo_row(&hw.above, k, n0), halo_row(&hu.above, k, n0))
                }
            } else if p > 0 {
                row_of(base - plane)
            } else {
                (halo_row(&hw.below, k, n0), halo_row(&hu.below, k, n0))
            })
        };
        weighted_row(&axes, row_of(base), diagonal.map(|dg| &dg[base..base + n0]), next, o);
    });
    Ok(out)
}

/// This rank's pencil block of `−∇_h·(w ∇_h u) + d u` ([`slab_weighted_laplacian`]'s operator)
/// for `w`, `u` (and `d`) given on this rank's block of the 3D `grid`'s
/// [`PencilDecomposition`]. A collective: the x lines just beyond the block along y and z
/// (one row on each side of each plane, one plane on each side of each row; wrapped on
/// periodic axes) gathered for u and for w, two `Alltoallv`s; each row adds its faces in the
/// serial kernel's order ([`weighted_row`]), so the result is the serial operator's to the
/// bit. A block of the wrong length on any rank is an error on every rank.
pub fn pencil_weighted_laplacian(
    exchange: &impl Exchange,
    grid: &Grid,
    w: &[f64],
    diagonal: Option<&[f64]>,
    u: &[f64],
) -> Result<Vec<f64>> {
    let pencils = PencilDecomposition::new(grid, exchange.size())?;
    let rank = exchange.rank();
    let mut lengths = vec![u.len(), w.len()];
    lengths.extend(diagonal.map(<[f64]>::len));
    agree_lengths(exchange, "weighted Laplacian", &lengths, pencils.len(rank))?;
    let axes = stencil_axes(grid);
    let (nx, ny) = (axes[0].0, axes[1].0);
    // The neighbouring index along axis a (`None` beyond a non-periodic face).
    let step = |a: usize, i: usize, up: bool| neighbour(i, i, axes[a].0, 1, up, axes[a].3);
    // Each rank's halo lines (id z·ny + y): beyond its rows within its planes, beyond its
    // planes within its rows.
    let halo = |q: usize| -> Vec<usize> {
        let (rows, planes) = (pencils.rows(q), pencils.planes(q));
        let mut ids = Vec::new();
        for z in planes.clone() {
            for y in [step(1, rows.start, false), step(1, rows.end - 1, true)].into_iter().flatten()
            {
                if !rows.contains(&y) {
                    ids.push(z * ny + y);
                }
            }
        }
        for y in rows.clone() {
            for z in
                [step(2, planes.start, false), step(2, planes.end - 1, true)].into_iter().flatten()
            {
                if !planes.contains(&z) {
                    ids.push(z * ny + y);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let wanted: Vec<Vec<usize>> = (0..pencils.ranks()).map(halo).collect();
    let (hu, hw) = (
        GatheredLines::gather(exchange, &pencils, u, nx, &wanted)?,
        GatheredLines::gather(exchange, &pencils, w, nx, &wanted)?,
    );
    let (rows, planes) = (pencils.rows(rank), pencils.planes(rank));
    let mut out = vec![0.0; u.len()];
    out.par_chunks_mut(nx).enumerate().for_each(|(line, o)| {
        let (y, z) = (rows.start + line % rows.len(), planes.start + line / rows.len());
        let local_row = |y: usize, z: usize| {
            let j = ((z - planes.start) * rows.len() + (y - rows.start)) * nx;
            (&w[j..j + nx], &u[j..j + nx])
        };
        let row_at = |y: usize, z: usize| {
            if rows.contains(&y) && planes.contains(&z) {
                local_row(y, z)
            } else {
                (hw.line(z * ny + y), hu.line(z * ny + y))
            }
        };
        let next = |a: usize, up: bool| match a {
            1 => step(1, y, up).map(|y| row_at(y, z)),
            _ => step(2, z, up).map(|z| row_at(y, z)),
        };
        let base = line * nx;
        weighted_row(&axes, local_row(y, z), diagonal.map(|dg| &dg[base..base + nx]), next, o);
    });
    Ok(out)
}

/// This rank's block of `∇_h u` ([`crate::operators::gradient`]'s centred differences and
/// face rules), `dim` components per cell as a [`crate::field::VectorField`] stores them,
/// for `u` given on this rank's planes of `grid` (the map `x + ∇p` of bfm and of the JKO
/// steps). A collective: one halo exchange; equal to the serial gradient to the bit. A block
/// of the wrong length on any rank is an error on every rank.
pub fn slab_gradient(exchange: &impl Exchange, grid: &Grid, u: &[f64]) -> Result<Vec<f64>> {
    let slabs = SlabDecomposition::new(grid, exchange.size())?;
    let rank = exchange.rank();
    let cells = slabs.cells(rank);
    agree_lengths(exchange, "gradient", &[u.len()], cells.len())?;
    let d = grid.dim();
    let axes = stencil_axes(grid);
    let halos = exchange_halos(exchange, &slabs, axes[d - 1].3.is_periodic(), u);
    let plane = slabs.plane_cells();
    let local_planes = slabs.planes(rank).len();
    let mut out = vec![0.0; u.len() * d];
    out.par_chunks_mut(d).enumerate().for_each(|(flat, o)| {
        let global = cells.start + flat;
        for (a, &(n, s, _, kind)) in axes.iter().enumerate() {
            let i = (global / s) % n;
            let h = grid.axis(a).spacing();
            let value = |up: bool| -> Option<f64> {
                neighbour(global, i, n, s, up, kind)?;
                Some(if a + 1 < d {
                    u[neighbour(flat, i, n, s, up, kind).expect("exists")]
                } else {
                    let (p, k) = (flat / plane, flat % plane);
                    match (up, p) {
                        (true, p) if p + 1 < local_planes => u[flat + plane],
                        (true, _) => halo_row(&halos.above, k, 1)[0],
                        (false, 0) => halo_row(&halos.below, k, 1)[0],
                        (false, _) => u[flat - plane],
                    }
                })
            };
            o[a] = centred_difference(kind, h, value(false), u[flat], value(true));
        }
    });
    Ok(out)
}

/// This rank's pencil block of `∇_h u` ([`crate::operators::gradient`]'s centred
/// differences, one-sided ones at a non-periodic face) for `u` given on this rank's block of
/// the 3D `grid`'s [`PencilDecomposition`], `3` components per cell as a
/// [`crate::field::VectorField`] stores them: each component on whole lines of its axis (y
/// and z lines through [`PencilSpreads`]: two all-to-alls each way), the serial arithmetic,
/// so the result is the serial gradient to the bit. A collective; a block of the wrong
/// length on any rank is an error on every rank.
pub fn pencil_gradient(exchange: &impl Exchange, grid: &Grid, u: &[f64]) -> Result<Vec<f64>> {
    let pencils = PencilDecomposition::new(grid, exchange.size())?;
    let spreads = PencilSpreads::new(&pencils)?;
    let rank = exchange.rank();
    agree_lengths(exchange, "gradient", &[u.len()], pencils.len(rank))?;
    // The derivative along grid axis a of lines of its n cells, laid end to end.
    let along = |a: usize, values: &[f64]| -> Vec<f64> {
        let axis = grid.axis(a);
        let (n, kind, h) = (axis.cells, axis.boundary, axis.spacing());
        let mut out = vec![0.0; values.len()];
        out.par_chunks_mut(n).zip(values.par_chunks(n)).for_each(|(o, line)| {
            for (i, o) in o.iter_mut().enumerate() {
                let left = neighbour(i, i, n, 1, false, kind).map(|l| line[l]);
                let right = neighbour(i, i, n, 1, true, kind).map(|r| line[r]);
                *o = centred_difference(kind, h, left, line[i], right);
            }
        });
        out
    };
    let PencilSpreads { blocks, y_lines, z_lines } = &spreads;
    let dx = along(0, u);
    let dy = y_lines.redistribute(
        exchange,
        blocks,
        &along(1, &blocks.redistribute(exchange, y_lines, u)),
    );
    let dz = z_lines.redistribute(
        exchange,
        blocks,
        &along(2, &blocks.redistribute(exchange, z_lines, u)),
    );
    Ok((0..u.len()).flat_map(|i| [dx[i], dy[i], dz[i]]).collect())
}

/// This rank's block of `∇_h · v` ([`crate::operators::divergence`]'s centred differences,
/// one-sided second-order ones next to a non-periodic face) for `v` given on this rank's
/// planes of `grid`, `dim` components per cell as a [`crate::field::VectorField`] stores
/// them. A collective: the slab-axis planes a rank's cells read (one beyond its block on each
/// side, and the third plane in from a face the rank touches, which may lie two ranks away)
/// gathered in one `Alltoallv`; each row adds its axes in the serial order, so the result is
/// the serial divergence to the bit. A block of the wrong length on any rank is an error on
/// every rank.
pub fn slab_divergence(exchange: &impl Exchange, grid: &Grid, v: &[f64]) -> Result<Vec<f64>> {
    let slabs = SlabDecomposition::new(grid, exchange.size())?;
    let rank = exchange.rank();
    let d = grid.dim();
    let cells = slabs.cells(rank);
    agree_lengths(exchange, "divergence", &[v.len()], cells.len() * d)?;
    let slab_axis = grid.axis(d - 1);
    let (n, kind) = (slab_axis.cells, slab_axis.boundary);
    // The slab-axis planes rank q's cells read, ascending.
    let reads = |q: usize| -> Vec<usize> {
        let own = slabs.planes(q);
        let mut list: Vec<usize> = if kind.is_periodic() {
            (own.start + n - 1..=own.end + n).map(|j| j % n).collect()
        } else {
            (own.start.saturating_sub(1)..(own.end + 1).min(n)).collect()
        };
        if !kind.is_periodic() && n >= 3 {
            list.extend(
                (own.start == 0).then_some(2).into_iter().chain((own.end == n).then(|| n - 3)),
            );
        }
        list.sort_unstable();
        list.dedup();
        list
    };
    let wanted: Vec<Vec<usize>> = (0..slabs.ranks()).map(reads).collect();
    let plane = slabs.plane_cells();
    let planes = gather_planes(exchange, &slabs, v, plane * d, &wanted)?;
    let mut at = vec![usize::MAX; n];
    wanted[rank].iter().enumerate().for_each(|(k, &j)| at[j] = k);
    // Component a of the cell at in-plane offset k of global plane j.
    let value = |j: usize, k: usize, a: usize| planes[(at[j] * plane + k) * d + a];
    let axes = stencil_axes(grid);
    let mut out = vec![0.0; cells.len()];
    out.par_iter_mut().enumerate().for_each(|(flat, o)| {
        let global = cells.start + flat;
        let mut acc = 0.0;
        for (a, &(n, s, _, kind)) in axes.iter().enumerate() {
            let h = grid.axis(a).spacing();
            let i = (global / s) % n;
            let left = neighbour(global, i, n, s, false, kind);
            let right = neighbour(global, i, n, s, true, kind);
            let term = if a + 1 < d {
                let own = |j: usize| v[(j - cells.start) * d + a];
                let beyond = |up: bool| {
                    if up {
                        own(right.expect("r") + s)
                    } else {
                        own(left.expect("l") - s)
                    }
                };
                divergence_term(n, h, own(global), left.map(own), right.map(own), beyond)
            } else {
                let k = global % plane;
                let at_plane = |j: usize| value(j / plane, k, a);
                let beyond = |up: bool| {
                    if up {
                        at_plane(right.expect("r") + s)
                    } else {
                        at_plane(left.expect("l") - s)
                    }
                };
                divergence_term(
                    n,
                    h,
                    at_plane(global),
                    left.map(at_plane),
                    right.map(at_plane),
                    beyond,
                )
            };
            acc += term;
        }
        *o = acc;
    });
    Ok(out)
}

/// This rank's block of `(−Δ_h + shift) u` ([`crate::operators::apply_shifted_laplacian`]'s
/// stencil and ghost rules) for `u` given on this rank's planes of `grid`. A collective: one
/// halo exchange. A block of the wrong length on any rank is an error on every rank.
pub fn slab_shifted_laplacian(
    exchange: &impl Exchange,
    grid: &Grid,
    shift: f64,
    u: &[f64],
) -> Result<Vec<f64>> {
    let slabs = SlabDecomposition::new(grid, exchange.size())?;
    let rank = exchange.rank();
    let cells = slabs.cells(rank);
    agree_lengths(exchange, "Laplacian", &[u.len()], cells.len())?;
    let d = grid.dim();
    let axes = stencil_axes(grid);
    let (_, _, ih2_s, kind_s) = axes[d - 1];
    let halos = exchange_halos(exchange, &slabs, kind_s.is_periodic(), u);
    let plane = slabs.plane_cells();
    let sl = slabs.planes(rank).len();
    let mut out = vec![0.0; u.len()];
    out.par_chunks_mut(plane).enumerate().for_each(|(s, row)| {
        let here = &u[s * plane..][..plane];
        let below =
            if s > 0 { Some(&u[(s - 1) * plane..][..plane]) } else { halos.below.as_deref() };
        let above =
            if s + 1 < sl { Some(&u[(s + 1) * plane..][..plane]) } else { halos.above.as_deref() };
        for (k, o) in row.iter_mut().enumerate() {
            let mut acc = shift * here[k];
            for &(n, stride, ih2, kind) in &axes[..d - 1] {
                let i = (k / stride) % n;
                let l = scalar_neighbour(here, k, i, n, stride, false, kind);
                let r = scalar_neighbour(here, k, i, n, stride, true, kind);
                acc += (2.0 * here[k] - l - r) * ih2;
            }
            let l = below.map_or_else(|| ghost(kind_s, here[k]), |p| p[k]);
            let r = above.map_or_else(|| ghost(kind_s, here[k]), |p| p[k]);
            acc += (2.0 * here[k] - l - r) * ih2_s;
            *o = acc;
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::exchange::LocalWorld;
    use crate::field::ScalarField;
    use crate::grid::BoundaryKind;
    use crate::operators::{apply_shifted_laplacian, apply_weighted_laplacian_plus};

    /// Non-divisible 2D and 3D grids with periodic, Neumann and Dirichlet slab axes (down to
    /// one plane per rank on 4 ranks).
    fn grids() -> Vec<(Vec<usize>, Vec<BoundaryKind>)> {
        use BoundaryKind::*;
        vec![
            (vec![7, 6, 5], vec![Neumann, Periodic, Dirichlet]),
            (vec![5, 6, 4], vec![Dirichlet, Neumann, Periodic]),
            (vec![6, 5, 7], vec![Periodic, Periodic, Neumann]),
            (vec![9, 4], vec![Neumann, Periodic]),
            (vec![8, 3], vec![Periodic, Dirichlet]),
        ]
    }

    /// The slab gradient equals the serial one to the bit on 1–4 ranks, on [`grids`] (every
    /// boundary kind on the slab axis, Dirichlet's one-sided faces included).
    /// On y–z pencils (2–12 ranks, more than the z planes) the gradient equals the serial
    /// one to the bit, periodic, Neumann and Dirichlet axes.
    #[test]
    fn pencil_gradient_equals_the_serial_one() {
        use BoundaryKind::*;
        for (shape, kinds, rank_counts) in [
            ([7, 6, 3], [Neumann, Periodic, Dirichlet], &[2usize, 4, 6][..]),
            ([6, 9, 2], [Periodic, Neumann, Periodic], &[4, 8, 12][..]),
        ] {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let u = ScalarField::from_fn(&grid, |x| (3.0 * x[0]).sin() * (x[1] - 0.3 * x[2]).cos());
            let values: Vec<f64> = u.data().iter().copied().collect();
            let serial = crate::operators::gradient(&u);
            let serial = serial.data().as_slice().unwrap();
            for &ranks in rank_counts {
                let parts = LocalWorld::run(ranks, |ex| {
                    let pencils = PencilDecomposition::new(&grid, ranks).unwrap();
                    let g = pencil_gradient(ex, &grid, &pencils.block(ex.rank(), &values)).unwrap();
                    let want: Vec<f64> = (0..pencils.len(ex.rank()))
                        .flat_map(|l| {
                            let i = pencils.to_global(ex.rank(), l);
                            serial[3 * i..3 * i + 3].to_vec()
                        })
                        .collect();
                    g == want
                });
                assert!(parts.iter().all(|&same| same), "{shape:?} on {ranks} ranks");
            }
        }
    }

    #[test]
    fn slab_gradient_equals_the_serial_one() {
        for (shape, kinds) in grids() {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let u = ScalarField::from_fn(&grid, |x| {
                let z = x.get(2).copied().unwrap_or(0.3);
                (2.0 * x[0] + z).sin() * (1.0 + x[1] * x[1]) - z * z
            });
            let expected = crate::operators::gradient(&u);
            let expected = expected.data().as_slice().unwrap();
            let u = u.data().as_slice().unwrap();
            let d = grid.dim();
            let planes = shape[shape.len() - 1];
            for ranks in 1..=planes.min(4) {
                let blocks = LocalWorld::run(ranks, |ex| {
                    let cells = SlabDecomposition::new(&grid, ranks).unwrap().cells(ex.rank());
                    (cells.clone(), slab_gradient(ex, &grid, &u[cells]).unwrap())
                });
                for (cells, out) in blocks {
                    assert_eq!(
                        out,
                        expected[cells.start * d..cells.end * d],
                        "{shape:?} {kinds:?} on {ranks} ranks"
                    );
                }
            }
        }
    }

    /// The slab divergence equals the serial one to the bit on 1–4 ranks, on [`grids`] (every
    /// boundary kind on the slab axis: one-sided differences reading a plane two ranks
    /// away, 3 planes); a wrong block length on one rank fails every rank.
    #[test]
    fn slab_divergence_equals_the_serial_one() {
        for (shape, kinds) in grids() {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let v = crate::field::VectorField::from_fn(&grid, |x, out| {
                let z = x.get(2).copied().unwrap_or(0.3);
                for (a, o) in out.iter_mut().enumerate() {
                    *o = (1.7 * x[0] + (a + 1) as f64 * z).sin() * (1.0 + x[1] * x[1]) - z * z * z;
                }
            });
            let expected = crate::operators::divergence(&v);
            let expected = expected.data().as_slice().unwrap();
            let v = v.data().as_slice().unwrap();
            let d = grid.dim();
            let planes = shape[shape.len() - 1];
            for ranks in 1..=planes.min(4) {
                let blocks = LocalWorld::run(ranks, |ex| {
                    let cells = SlabDecomposition::new(&grid, ranks).unwrap().cells(ex.rank());
                    let block = &v[cells.start * d..cells.end * d];
                    (cells.clone(), slab_divergence(ex, &grid, block).unwrap())
                });
                for (cells, out) in blocks {
                    let same =
                        out.iter().zip(&expected[cells]).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{shape:?} {kinds:?} on {ranks} ranks");
                }
            }
            if planes >= 2 {
                let errors = LocalWorld::run(2, |ex| {
                    let cells = SlabDecomposition::new(&grid, 2).unwrap().cells(ex.rank());
                    let extra = usize::from(ex.rank() == 1);
                    slab_divergence(ex, &grid, &v[cells.start * d..cells.end * d - extra]).is_err()
                });
                assert_eq!(errors, vec![true, true]);
            }
        }
    }

    /// The slab weighted operator (with and without a diagonal) equals the serial one to the
    /// bit on 1–4 ranks, on the grids of [`slab_laplacian_equals_the_serial_one`]; a wrong
    /// block length on one rank fails every rank.
    #[test]
    fn slab_weighted_laplacian_equals_the_serial_one() {
        for (shape, kinds) in grids() {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let field = |f: &(dyn Fn(&[f64]) -> f64 + Sync)| {
                ScalarField::from_fn(&grid, f).data().as_slice().unwrap().to_vec()
            };
            let u = field(&|x| {
                let z = x.get(2).copied().unwrap_or(0.3);
                (2.0 * x[0] + z).sin() * (1.0 + x[1] * x[1]) - z
            });
            let w = field(&|x| 0.1 + (-(x[0] - 0.4).powi(2) - (x[1] - 0.6).powi(2)).exp());
            let dg = field(&|x| 3.0 + x[0] * x[1]);
            let planes = shape[shape.len() - 1];
            for diagonal in [None, Some(dg.as_slice())] {
                let mut expected = vec![0.0; u.len()];
                apply_weighted_laplacian_plus(&grid, &w, diagonal, &u, &mut expected);
                for ranks in 1..=planes.min(4) {
                    let blocks = LocalWorld::run(ranks, |ex| {
                        let cells = SlabDecomposition::new(&grid, ranks).unwrap().cells(ex.rank());
                        let d = diagonal.map(|d| &d[cells.clone()]);
                        let out = slab_weighted_laplacian(
                            ex,
                            &grid,
                            &w[cells.clone()],
                            d,
                            &u[cells.clone()],
                        );
                        (cells, out.unwrap())
                    });
                    for (cells, out) in blocks {
                        assert_eq!(out, expected[cells], "{shape:?} {kinds:?} on {ranks} ranks");
                    }
                }
            }
        }
        let grid = crate::distributed::test_grid(&[6, 5, 4], &[BoundaryKind::Neumann; 3]);
        let errors = LocalWorld::run(2, |ex| {
            let cells = SlabDecomposition::new(&grid, 2).unwrap().cells(ex.rank());
            let n = cells.len() - ex.rank(); // rank 1's weight is one value short
            let u = vec![1.0; cells.len()];
            slab_weighted_laplacian(ex, &grid, &vec![1.0; n], None, &u).unwrap_err().to_string()
        });
        assert!(errors.iter().all(|e| e.contains("wrong length")), "{errors:?}");
    }

    /// The pencil weighted operator (with and without a diagonal) equals the serial one to
    /// the bit on 1–12 ranks — slabs and every py × pz the rank count allows, down to one row
    /// or plane per rank and a rank its own neighbour across a periodic axis — on box,
    /// periodic and Dirichlet axes; a wrong block length on one rank fails every rank.
    #[test]
    fn pencil_weighted_laplacian_equals_the_serial_one() {
        use BoundaryKind::*;
        for (shape, kinds) in [
            ([9usize, 7, 4], [Neumann, Neumann, Neumann]),
            ([8, 6, 3], [Periodic, Periodic, Periodic]),
            ([7, 5, 2], [Neumann, Periodic, Dirichlet]),
            ([6, 4, 6], [Dirichlet, Neumann, Periodic]),
        ] {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let field = |f: &(dyn Fn(&[f64]) -> f64 + Sync)| {
                ScalarField::from_fn(&grid, f).data().as_slice().unwrap().to_vec()
            };
            let u = field(&|x| (2.0 * x[0] + x[2]).sin() * (1.0 + x[1] * x[1]) - x[2] * x[1]);
            let w = field(&|x| 0.1 + (-(x[0] - 0.4).powi(2) - (x[1] - 0.6).powi(2) - x[2]).exp());
            let dg = field(&|x| 3.0 + x[0] * x[1] + x[2]);
            for diagonal in [None, Some(dg.as_slice())] {
                let mut expected = vec![0.0; u.len()];
                apply_weighted_laplacian_plus(&grid, &w, diagonal, &u, &mut expected);
                for ranks in [1, 2, 3, 4, 5, 6, 8, 12] {
                    let Ok(pencils) = PencilDecomposition::new(&grid, ranks) else { continue };
                    let blocks = LocalWorld::run(ranks, |ex| {
                        let block = |v: &[f64]| pencils.block(ex.rank(), v);
                        let d = diagonal.map(block);
                        let out = pencil_weighted_laplacian(
                            ex,
                            &grid,
                            &block(&w),
                            d.as_deref(),
                            &block(&u),
                        );
                        (ex.rank(), out.unwrap())
                    });
                    for (rank, out) in blocks {
                        assert!(
                            out == pencils.block(rank, &expected),
                            "{shape:?} {kinds:?} on {ranks} ranks ({:?})",
                            pencils.shape()
                        );
                    }
                }
            }
        }
        let grid = crate::distributed::test_grid(&[6, 5, 2], &[BoundaryKind::Neumann; 3]);
        let errors = LocalWorld::run(4, |ex| {
            let n = PencilDecomposition::new(&grid, 4).unwrap().len(ex.rank());
            let u = vec![1.0; n];
            let w = vec![1.0; n - usize::from(ex.rank() == 3)];
            pencil_weighted_laplacian(ex, &grid, &w, None, &u).unwrap_err().to_string()
        });
        assert!(errors.iter().all(|e| e.contains("wrong length")), "{errors:?}");
    }

    /// The slab operator equals the serial one to the bit on 1–4 ranks, on non-divisible 2D
    /// and 3D grids with periodic, Neumann and Dirichlet slab axes (down to one plane per
    /// rank, and two ranks on a periodic axis, where one rank is both neighbours).
    #[test]
    fn slab_laplacian_equals_the_serial_one() {
        for (shape, kinds) in grids() {
            let grid = crate::distributed::test_grid(&shape, &kinds);
            let u = ScalarField::from_fn(&grid, |x| {
                let z = x.get(2).copied().unwrap_or(0.3);
                (2.0 * x[0] + z).sin() * (1.0 + x[1] * x[1]) - z
            });
            let u = u.data().as_slice().unwrap().to_vec();
            let mut expected = vec![0.0; u.len()];
            apply_shifted_laplacian(&grid, 0.7, &u, &mut expected);
            let planes = shape[shape.len() - 1];
            for ranks in 1..=planes.min(4) {
                let blocks = LocalWorld::run(ranks, |ex| {
                    let cells = SlabDecomposition::new(&grid, ranks).unwrap().cells(ex.rank());
                    (cells.clone(), slab_shifted_laplacian(ex, &grid, 0.7, &u[cells]).unwrap())
                });
                for (cells, out) in blocks {
                    assert_eq!(out, expected[cells], "{shape:?} {kinds:?} on {ranks} ranks");
                }
            }
        }
    }
}
