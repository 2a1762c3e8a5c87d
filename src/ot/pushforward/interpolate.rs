//! Multilinear interpolation of cell values at arbitrary points, with the gradient of the
//! interpolant (clamped to the cell-centre range on non-periodic axes, wrapped on periodic
//! ones).

use super::*;
use crate::grid::Axis;

/// Multilinear interpolation of the cell values `field` at point `p` (clamped to the range
/// of cell centres on non-periodic axes).
pub(crate) fn interpolate(field: &ScalarField, p: &[f64]) -> f64 {
    interpolate_with_gradient(field, p, None)
}

/// [`interpolate`], also writing the gradient of the multilinear interpolant at `p` into
/// `gradient` when given (zero along a non-periodic axis outside the cell-centre range).
pub(crate) fn interpolate_with_gradient(
    field: &ScalarField,
    p: &[f64],
    gradient: Option<&mut [f64]>,
) -> f64 {
    let data = field.data().as_slice().expect("contiguous");
    interpolate_from(field.grid(), |flat| data[flat], p, gradient)
}

/// The two cells of axis `ax` that [`interpolate`] reads at coordinate x, `(base, next)`,
/// the weight `w` of `next`, and whether x lies inside the cell-centre range (always on a
/// periodic axis).
pub(crate) fn linear_stencil(ax: &Axis, x: f64) -> (usize, usize, f64, bool) {
    let n = ax.cells;
    let s = (x - ax.lower) / ax.spacing() - 0.5;
    if ax.boundary.is_periodic() {
        let f = s.floor();
        let base = (f as i64).rem_euclid(n as i64) as usize;
        (base, (base + 1) % n, s - f, true)
    } else {
        let clamped = s.clamp(0.0, (n - 1) as f64);
        let f = clamped.floor().min((n.max(2) - 2) as f64);
        let base = f as usize;
        (base, (base + 1).min(n - 1), clamped - f, clamped == s)
    }
}

/// [`interpolate_with_gradient`] of the cell values `data(flat)` (C order) of grid `g`.
pub(crate) fn interpolate_from(
    g: &Grid,
    data: impl Fn(usize) -> f64,
    p: &[f64],
    mut gradient: Option<&mut [f64]>,
) -> f64 {
    let d = g.dim();
    let mut base = [0usize; 3];
    let mut next = [0usize; 3];
    let mut w = [0.0f64; 3];
    let mut inside = [1.0f64; 3];
    let mut stride = 1usize;
    let mut strides = [0usize; 3];
    for a in 0..d {
        let (b, n, wa, within) = linear_stencil(g.axis(a), p[a]);
        (base[a], next[a], w[a]) = (b, n, wa);
        if !within {
            inside[a] = 0.0;
        }
        strides[a] = stride;
        stride *= g.axis(a).cells;
    }
    if let Some(grad) = gradient.as_deref_mut() {
        grad[..d].iter_mut().for_each(|v| *v = 0.0);
    }
    let mut v = 0.0;
    for corner in 0..(1usize << d) {
        let mut flat = 0;
        let mut weight = 1.0;
        for a in 0..d {
            let bit = (corner >> a) & 1;
            flat += if bit == 0 { base[a] } else { next[a] } * strides[a];
            weight *= if bit == 0 { 1.0 - w[a] } else { w[a] };
        }
        let value = data(flat);
        v += weight * value;
        if let Some(grad) = gradient.as_deref_mut() {
            // ∂/∂p_a of the corner weight: the other factors times ±1/h_a.
            for (a, slot) in grad.iter_mut().enumerate().take(d) {
                let mut dw = inside[a] / g.axis(a).spacing();
                for b in (0..d).filter(|&b| b != a) {
                    let bit = (corner >> b) & 1;
                    dw *= if bit == 0 { 1.0 - w[b] } else { w[b] };
                }
                if (corner >> a) & 1 == 0 {
                    dw = -dw;
                }
                *slot += dw * value;
            }
        }
    }
    v
}

/// A displacement field `v` (cell values, the `d` components of a cell interleaved, C
/// order) interpolated multilinearly at `p`, written into `out[..d]`.
pub(crate) fn interpolate_displacement(g: &Grid, v: &[f64], p: &[f64], out: &mut [f64]) {
    let d = g.dim();
    for (a, o) in out.iter_mut().enumerate().take(d) {
        *o = interpolate_from(g, |flat| v[flat * d + a], p, None);
    }
}

/// The preimage w of `y` under `id + v` (`w + v(w) = y`, v a displacement field as in
/// [`interpolate_displacement`]) by `sweeps` fixed-point sweeps `w ← y − v(w)` from `w = y`:
/// each sweep contracts the error by `|Dv|`, a fraction of one for displacements of a
/// fraction of a cell per cell.
pub(crate) fn displacement_preimage(g: &Grid, v: &[f64], y: &[f64], sweeps: usize) -> [f64; 3] {
    let d = g.dim();
    let (mut w, mut vw) = ([0.0; 3], [0.0; 3]);
    w[..d].copy_from_slice(&y[..d]);
    for _ in 0..sweeps {
        interpolate_displacement(g, v, &w[..d], &mut vw[..d]);
        for a in 0..d {
            w[a] = y[a] - vw[a];
        }
    }
    w
}

/// Tensor-product cubic (4-point Lagrange) interpolation of the cell values `field` at point
/// `p`: fourth order for smooth data (multilinear interpolation is second order, and at a
/// sub-cell shift δ its error `δ(h − δ)f''/2` acts like a numerical diffusion). Stencils are
/// shifted inwards next to a non-periodic face (clamped to the cell-centre range there) and
/// wrap on periodic axes; axes with fewer than 4 cells fall back to [`interpolate`].
/// The cubic Lagrange basis on the nodes 0, 1, 2, 3 at u (the weights of the four values).
#[inline]
pub(crate) fn cubic_weights(u: f64) -> [f64; 4] {
    let (u1, u2, u3) = (u - 1.0, u - 2.0, u - 3.0);
    [
        -(u1 * u2 * u3) * (1.0 / 6.0),
        u * u2 * u3 * 0.5,
        -(u * u1 * u3) * 0.5,
        u * u1 * u2 * (1.0 / 6.0),
    ]
}

pub(crate) fn interpolate_cubic(field: &ScalarField, p: &[f64]) -> f64 {
    let g = field.grid();
    let d = g.dim();
    if g.axes().iter().any(|a| a.cells < 4) {
        return interpolate(field, p);
    }
    let data = field.data().as_slice().expect("contiguous");
    // Per axis: the 4 stencil indices and their Lagrange weights.
    let mut index = [[0usize; 4]; 3];
    let mut weight = [[0.0f64; 4]; 3];
    let mut strides = [0usize; 3];
    let mut stride = 1usize;
    for a in 0..d {
        let ax = g.axis(a);
        let n = ax.cells;
        let periodic = ax.boundary.is_periodic();
        let mut s = (p[a] - ax.lower) / ax.spacing() - 0.5;
        let first: i64 = if periodic {
            s.floor() as i64 - 1
        } else {
            s = s.clamp(0.0, (n - 1) as f64);
            (s.floor() as i64 - 1).clamp(0, n as i64 - 4)
        };
        weight[a] = cubic_weights(s - first as f64);
        for (k, index) in index[a].iter_mut().enumerate() {
            let j = first + k as i64;
            // (Box axes: first is clamped, so j is in range; periodic ones wrap.)
            *index = if (0..n as i64).contains(&j) {
                j as usize
            } else {
                j.rem_euclid(n as i64) as usize
            };
        }
        strides[a] = stride;
        stride *= n;
    }
    // Offsets per axis, then the tensor product as nested 4-point sums (x innermost).
    let mut offset = [[0usize; 4]; 3];
    for a in 0..d {
        for k in 0..4 {
            offset[a][k] = index[a][k] * strides[a];
        }
    }
    let line =
        |base: usize| -> f64 { (0..4).map(|k| weight[0][k] * data[base + offset[0][k]]).sum() };
    let plane =
        |base: usize| -> f64 { (0..4).map(|k| weight[1][k] * line(base + offset[1][k])).sum() };
    match d {
        1 => line(0),
        2 => plane(0),
        _ => (0..4).map(|k| weight[2][k] * plane(offset[2][k])).sum(),
    }
}
