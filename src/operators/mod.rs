//! Matrix-free finite-difference operators on cell-centred grids, with homogeneous boundary
//! conditions imposed through ghost cells on each face:
//!
//! | kind      | ghost value `u_{−1}` for the scalar `u` | meaning                    |
//! |-----------|------------------------------------------|----------------------------|
//! | periodic  | `u_{n−1}`                                | wrap around                |
//! | Neumann   | `u_0`                                    | ∂u/∂n = 0 on the face      |
//! | Dirichlet | `−u_0`                                   | u = 0 on the face          |
//!
//! * [`apply_shifted_laplacian`]: `(−Δ_h + c) u` with the 3-point second difference per axis
//!   (5-point in 2D, 7-point in 3D): second order; the operator the spectral solver inverts.
//! * [`apply_weighted_laplacian`]: `−∇·(w∇u)` in flux form, `Σ_faces w_f (u_i − u_j)/h²`
//!   with the face weight `w_f = (w_i + w_j)/2` (at a boundary face `w_i`, and the ghost
//!   value of the table): second order for smooth w, exactly conservative (the fluxes of
//!   interior faces cancel), symmetric.
//! * [`gradient`]: centred differences `(u_{i+1} − u_{i−1})/2h`; at a Dirichlet face the
//!   one-sided quadratic `(u_0 + u_1/3)/h` (through u = 0 on the face): second order.
//! * [`divergence`]: centred differences of each component along its axis; on the cells next
//!   to a non-periodic face, the one-sided second-order difference `(−3v_0 + 4v_1 − v_2)/2h`
//!   (it assumes nothing about the vector field on the face): second order.

use crate::field::{ScalarField, VectorField};
use crate::grid::{BoundaryKind, Grid};
use ndarray::ArrayViewMutD;
use rayon::prelude::*;

/// Strides of the C-order storage, x first: `[1, nx, nx·ny]`.
pub(crate) fn strides(grid: &Grid) -> Vec<usize> {
    let mut s = Vec::with_capacity(grid.dim());
    let mut acc = 1;
    for a in grid.axes() {
        s.push(acc);
        acc *= a.cells;
    }
    s
}

/// Index of cell `flat` (at position `i` of `n` along an axis of the given stride) moved by
/// ±1 along that axis, wrapping on periodic axes; `None` across a non-periodic face.
#[inline]
pub(crate) fn neighbour(
    flat: usize,
    i: usize,
    n: usize,
    stride: usize,
    up: bool,
    kind: BoundaryKind,
) -> Option<usize> {
    match (up, i) {
        (false, 0) => (kind.is_periodic()).then(|| flat + (n - 1) * stride),
        (false, _) => Some(flat - stride),
        (true, _) if i + 1 == n => (kind.is_periodic()).then(|| flat - (n - 1) * stride),
        (true, _) => Some(flat + stride),
    }
}

/// Value of the scalar `u` at the neighbour of `flat` (ghost rule at a face).
#[inline]
pub(crate) fn scalar_neighbour(
    u: &[f64],
    flat: usize,
    i: usize,
    n: usize,
    stride: usize,
    up: bool,
    kind: BoundaryKind,
) -> f64 {
    match neighbour(flat, i, n, stride, up, kind) {
        Some(j) => u[j],
        None => ghost(kind, u[flat]),
    }
}

/// Per axis: cells, storage stride, `1/h²` and boundary kind (what the second-difference
/// stencils need).
pub(crate) fn stencil_axes(grid: &Grid) -> Vec<(usize, usize, f64, BoundaryKind)> {
    grid.axes()
        .iter()
        .zip(strides(grid))
        .map(|(a, s)| (a.cells, s, 1.0 / (a.spacing() * a.spacing()), a.boundary))
        .collect()
}

/// Computes `out = (−Δ_h + shift) u` for C-order slices on `grid` (homogeneous ghosts).
pub fn apply_shifted_laplacian(grid: &Grid, shift: f64, u: &[f64], out: &mut [f64]) {
    let axes = stencil_axes(grid);
    out.par_iter_mut().enumerate().for_each(|(flat, o)| {
        let mut acc = shift * u[flat];
        for &(n, s, ih2, kind) in &axes {
            let i = (flat / s) % n;
            let l = scalar_neighbour(u, flat, i, n, s, false, kind);
            let r = scalar_neighbour(u, flat, i, n, s, true, kind);
            acc += (2.0 * u[flat] - l - r) * ih2;
        }
        *o = acc;
    });
}

/// Computes `out = −∇_h·(w ∇_h u)` for C-order slices on `grid` (cell weights `w > 0`;
/// homogeneous ghosts as in the module table, the boundary face taking its cell's weight).
///
/// Row by row (the axis-0 lines of C order): every face of a row along the axes above 0
/// joins it to one neighbouring row, so the loops over a row are plain strided sums; each
/// cell adds its faces' fluxes in axis order, low face first.
pub fn apply_weighted_laplacian(grid: &Grid, w: &[f64], u: &[f64], out: &mut [f64]) {
    apply_weighted_laplacian_plus(grid, w, None, u, out);
}

/// [`apply_weighted_laplacian`] plus a diagonal: `out = −∇_h·(w ∇_h u) + d u` (each cell's
/// face fluxes first, then `d u`), in one pass.
pub fn apply_weighted_laplacian_plus(
    grid: &Grid,
    w: &[f64],
    diagonal: Option<&[f64]>,
    u: &[f64],
    out: &mut [f64],
) {
    let axes = stencil_axes(grid);
    let n0 = axes[0].0;
    out.par_chunks_mut(n0).enumerate().for_each(|(row, o)| {
        let base = row * n0;
        let row_of = |j: usize| (&w[j..j + n0], &u[j..j + n0]);
        let next = |a: usize, up: bool| {
            let (n, s, _, kind) = axes[a];
            neighbour(base, (base / s) % n, n, s, up, kind).map(row_of)
        };
        weighted_row(&axes, row_of(base), diagonal.map(|d| &d[base..base + n0]), next, o);
    });
}

/// One row (an axis-0 line of C order) of `−∇_h·(w ∇_h u) + d u`: `(w, u)` on the row,
/// `next(a, up)` the neighbouring row's `(w, u)` along axis `a ≥ 1` (`None` at a
/// non-periodic face: the ghost rule, the face taking the cell's weight). Each cell adds
/// its faces' fluxes in axis order, low face first, then `d u` — the order every caller
/// (the serial kernel, the slab one) shares, so their results agree to the bit.
pub(crate) fn weighted_row<'a>(
    axes: &[(usize, usize, f64, BoundaryKind)],
    (wr, ur): (&[f64], &[f64]),
    diagonal: Option<&[f64]>,
    next: impl Fn(usize, bool) -> Option<(&'a [f64], &'a [f64])>,
    o: &mut [f64],
) {
    let (n0, _, ih0, kind0) = axes[0];
    for (x, o) in o.iter_mut().enumerate() {
        let mut acc = 0.0;
        for up in [false, true] {
            acc += match neighbour(x, x, n0, 1, up, kind0) {
                Some(j) => 0.5 * (wr[x] + wr[j]) * (ur[x] - ur[j]),
                None => wr[x] * (ur[x] - ghost(kind0, ur[x])),
            } * ih0;
        }
        *o = acc;
    }
    for (a, &(_, _, ih2, kind)) in axes.iter().enumerate().skip(1) {
        for up in [false, true] {
            match next(a, up) {
                Some((wn, un)) => {
                    for x in 0..n0 {
                        o[x] += 0.5 * (wr[x] + wn[x]) * (ur[x] - un[x]) * ih2;
                    }
                }
                None => {
                    for x in 0..n0 {
                        o[x] += wr[x] * (ur[x] - ghost(kind, ur[x])) * ih2;
                    }
                }
            }
        }
    }
    if let Some(d) = diagonal {
        o.iter_mut().zip(d).zip(ur).for_each(|((o, d), u)| *o += d * u);
    }
}

/// The ghost value beyond a non-periodic face of a cell holding `v`: `v` (Neumann: zero
/// flux), `−v` (Dirichlet: zero on the face).
#[inline]
pub(crate) fn ghost(kind: BoundaryKind, v: f64) -> f64 {
    match kind {
        BoundaryKind::Neumann => v,
        BoundaryKind::Dirichlet => -v,
        BoundaryKind::Periodic => unreachable!("periodic axes always have a neighbour"),
    }
}

/// `∇_h u` by centred differences (see the module table for the faces).
pub fn gradient(u: &ScalarField) -> VectorField {
    let grid = u.grid();
    let st = strides(grid);
    let src = u.data().as_slice().expect("contiguous");
    let d = grid.dim();
    let mut g = VectorField::zeros(grid);
    g.as_mut_slice().par_chunks_mut(d).enumerate().for_each(|(flat, out)| {
        for (a, ax) in grid.axes().iter().enumerate() {
            let (n, s) = (ax.cells, st[a]);
            let i = (flat / s) % n;
            let left = neighbour(flat, i, n, s, false, ax.boundary).map(|l| src[l]);
            let right = neighbour(flat, i, n, s, true, ax.boundary).map(|r| src[r]);
            out[a] = centred_difference(ax.boundary, ax.spacing(), left, src[flat], right);
        }
    });
    g
}

/// One component of [`gradient`] at a cell holding `here`, from its neighbours' values along
/// the axis (`None` beyond a non-periodic face): centred, or at a face the one-sided rule of
/// the module table.
#[inline]
pub(crate) fn centred_difference(
    kind: BoundaryKind,
    h: f64,
    left: Option<f64>,
    here: f64,
    right: Option<f64>,
) -> f64 {
    match (left, right, kind) {
        (Some(l), Some(r), _) => (r - l) / (2.0 * h),
        (None, Some(r), BoundaryKind::Dirichlet) => (here + r / 3.0) / h,
        (Some(l), None, BoundaryKind::Dirichlet) => -(here + l / 3.0) / h,
        (None, Some(r), _) => (r - here) / (2.0 * h),
        (Some(l), None, _) => (here - l) / (2.0 * h),
        (None, None, _) => 0.0,
    }
}

/// `∇_h · v` by centred differences of each component along its own axis.
pub fn divergence(v: &VectorField) -> ScalarField {
    let grid = v.grid();
    let st = strides(grid);
    let d = grid.dim();
    let src = v.data().as_slice().expect("contiguous");
    let mut out = ScalarField::zeros(grid);
    out.as_mut_slice().par_iter_mut().enumerate().for_each(|(flat, o)| {
        let mut acc = 0.0;
        for (a, ax) in grid.axes().iter().enumerate() {
            let (n, s, h) = (ax.cells, st[a], ax.spacing());
            let i = (flat / s) % n;
            let v = |j: usize| src[j * d + a];
            let left = neighbour(flat, i, n, s, false, ax.boundary);
            let right = neighbour(flat, i, n, s, true, ax.boundary);
            // Two cells in from a face: past the right neighbour, or before the left one.
            let beyond =
                |up: bool| if up { v(right.expect("r") + s) } else { v(left.expect("l") - s) };
            acc += divergence_term(n, h, v(flat), left.map(v), right.map(v), beyond);
        }
        *o = acc;
    });
    out
}

/// One axis' term of [`divergence`] at a cell whose component along the axis is `here`, from
/// its neighbours' (`None` beyond a non-periodic face) and, at a face with n ≥ 3 cells,
/// `beyond(up)`: the cell two in from the face (past the right neighbour for `up`, before
/// the left one otherwise) — centred, or the one-sided second-order difference.
#[inline]
pub(crate) fn divergence_term(
    n: usize,
    h: f64,
    here: f64,
    left: Option<f64>,
    right: Option<f64>,
    beyond: impl Fn(bool) -> f64,
) -> f64 {
    match (left, right) {
        (Some(l), Some(r)) => (r - l) / (2.0 * h),
        (None, Some(r)) if n >= 3 => (-3.0 * here + 4.0 * r - beyond(true)) / (2.0 * h),
        (Some(l), None) if n >= 3 => (3.0 * here - 4.0 * l + beyond(false)) / (2.0 * h),
        (None, Some(r)) => (r - here) / h,
        (Some(l), None) => (here - l) / h,
        (None, None) => 0.0,
    }
}

/// Removes the mean of a field in place (the projection used with singular operators).
pub fn remove_mean(mut u: ArrayViewMutD<'_, f64>) -> f64 {
    let mean = u.mean().unwrap_or(0.0);
    u.par_mapv_inplace(|v| v - mean);
    mean
}

#[cfg(test)]
pub(crate) mod tests;
