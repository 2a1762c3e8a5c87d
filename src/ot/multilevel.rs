//! Grid hierarchies for multilevel OT solvers: coarser grids (every even axis halved),
//! densities cell-averaged onto them (mass-conserving restriction) and potentials
//! interpolated back (cubic prolongation, second order in the gradient, i.e. the map).

use crate::error::Result;
use crate::field::ScalarField;
use crate::grid::{Axis, BoundaryKind, Grid};
use rayon::prelude::*;

/// Cell-averages a density onto `coarse` (each coarse cell covers 2 fine cells per axis that
/// was halved, 1 otherwise).
pub(super) fn restrict(fine: &ScalarField, coarse: &Grid) -> Result<ScalarField> {
    let fg = fine.grid();
    let d = fg.dim();
    let ratio: Vec<usize> = (0..d).map(|a| fg.axis(a).cells / coarse.axis(a).cells).collect();
    let fshape = fg.shape();
    let cshape = coarse.shape();
    let f = fine.data().as_slice().expect("contiguous");
    let count: usize = ratio.iter().product();
    let values: Vec<f64> = (0..coarse.num_cells())
        .into_par_iter()
        .map(|flat| {
            let mut idx = [0usize; 3];
            let mut rest = flat;
            for a in 0..d {
                idx[a] = rest % cshape[a];
                rest /= cshape[a];
            }
            let mut sum = 0.0;
            for sub in 0..count {
                let mut r = sub;
                let mut fflat = 0;
                let mut stride = 1;
                for a in 0..d {
                    let o = r % ratio[a];
                    r /= ratio[a];
                    fflat += (idx[a] * ratio[a] + o) * stride;
                    stride *= fshape[a];
                }
                sum += f[fflat];
            }
            sum / count as f64
        })
        .collect();
    ScalarField::from_vec(coarse, values)
}

/// Point values of a smooth density at the centres of `coarse` (each axis the same or
/// 2^k times fewer cells than `fine`'s), by 4-point cubic interpolation per halving (coarse centres
/// sit midway between two fine ones: weights (−1, 9, 9, −1)/16 inside, one-sided at
/// non-periodic ends), clamped at 0 and normalised to unit mass. Fourth order where
/// [`restrict`]'s cell average is second order: a coarse problem whose solution is a start
/// for a finer one keeps the fine densities' point values, not their blur.
pub(super) fn sample(fine: &ScalarField, coarse: &Grid) -> Result<ScalarField> {
    let fg = fine.grid();
    let d = fg.dim();
    let mut shape = fg.storage_shape();
    let mut data: Vec<f64> = fine.data().iter().copied().collect();
    for a in 0..d {
        let k = d - 1 - a;
        let periodic = fg.axis(a).boundary == BoundaryKind::Periodic;
        while shape[k] > coarse.axis(a).cells {
            data = halve_axis(&data, &shape, k, periodic);
            shape[k] /= 2;
        }
    }
    data.iter_mut().for_each(|v| *v = v.max(0.0));
    let field = ScalarField::from_vec(coarse, data)?;
    let mass = field.integral();
    if !(mass > 0.0 && mass.is_finite()) {
        return restrict(fine, coarse);
    }
    ScalarField::from_vec(coarse, field.data().iter().map(|v| v / mass).collect())
}

/// Halves storage axis `k` (even length n ≥ 4 unless periodic) of a C-order array: coarse
/// index i sits at fine coordinate 2i + ½.
fn halve_axis(data: &[f64], shape: &[usize], k: usize, periodic: bool) -> Vec<f64> {
    resample_axis(data, shape, k, periodic, shape[k] / 2, |c| 2.0 * c as f64 + 0.5)
}

/// Resamples storage axis `k` (length n ≥ 4 unless periodic) of a C-order array to `m`
/// points, output i at source coordinate `at(i)` (in cells of the source axis), by 4-point
/// cubic Lagrange interpolation: the stencil centred when possible, shifted inside at
/// non-periodic ends, wrapped on periodic axes.
fn resample_axis(
    data: &[f64],
    shape: &[usize],
    k: usize,
    periodic: bool,
    m: usize,
    at: impl Fn(usize) -> f64 + Sync,
) -> Vec<f64> {
    let n = shape[k];
    let inner: usize = shape[k + 1..].iter().product();
    let outer: usize = shape[..k].iter().product();
    let mut out = vec![0.0; outer * m * inner];
    out.par_chunks_mut(inner).enumerate().for_each(|(row, dst)| {
        let (o, i) = (row / m, row % m);
        let x = at(i);
        let base = x.floor() as i64 - 1;
        let first = if periodic { base } else { base.clamp(0, n as i64 - 4) };
        let w = cubic_weights(x - (first + 1) as f64);
        dst.fill(0.0);
        for (j, wj) in w.iter().enumerate() {
            let c = (first + j as i64).rem_euclid(n as i64) as usize;
            let src = &data[(o * n + c) * inner..][..inner];
            dst.iter_mut().zip(src).for_each(|(v, s)| *v += wj * s);
        }
    });
    out
}

/// Interpolates a coarse potential onto `fine`, whose axes have the same or twice as many
/// cells, by 4-point cubic Lagrange interpolation per doubled axis (fine centres sit at ±¼
/// of a coarse cell; one-sided stencils at non-periodic ends, wrapped on periodic axes).
/// Cubic accuracy keeps the gradient — the map — second-order accurate; multilinear
/// interpolation would leave an O(h) kink error in the map of every coarse cell.
pub(super) fn prolong(coarse: &ScalarField, fine: &Grid) -> ScalarField {
    let cg = coarse.grid();
    let d = cg.dim();
    let mut shape = cg.storage_shape();
    let mut data: Vec<f64> = coarse.data().iter().copied().collect();
    for a in 0..d {
        let k = d - 1 - a;
        if fine.axis(a).cells == cg.axis(a).cells {
            continue;
        }
        let periodic = cg.axis(a).boundary == BoundaryKind::Periodic;
        data = double_axis(&data, &shape, k, periodic);
        shape[k] *= 2;
    }
    ScalarField::from_vec(fine, data).expect("prolonged shape matches the fine grid")
}

/// Cubic Lagrange weights for nodes −1, 0, 1, 2 at offset t from node 0.
fn cubic_weights(t: f64) -> [f64; 4] {
    [
        -t * (t - 1.0) * (t - 2.0) / 6.0,
        (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0,
        -(t + 1.0) * t * (t - 2.0) / 2.0,
        (t + 1.0) * t * (t - 1.0) / 6.0,
    ]
}

/// Doubles storage axis `k` (length n ≥ 4 unless periodic) of a C-order array: fine index
/// 2i + s (s = 0, 1) sits at coarse coordinate i − ¼ + s/2.
fn double_axis(data: &[f64], shape: &[usize], k: usize, periodic: bool) -> Vec<f64> {
    resample_axis(data, shape, k, periodic, 2 * shape[k], |f| (f as f64 - 0.5) / 2.0)
}

/// The grid with every axis of more than `2·min` cells (and even) halved.
pub(super) fn coarsen(grid: &Grid, min: usize) -> Option<Grid> {
    let mut halved = false;
    let axes: Vec<Axis> = grid
        .axes()
        .iter()
        .map(|a| {
            if a.cells % 2 == 0 && a.cells / 2 >= min {
                halved = true;
                Axis { cells: a.cells / 2, ..a.clone() }
            } else {
                a.clone()
            }
        })
        .collect();
    if !halved {
        return None;
    }
    Grid::new(axes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::gradient;
    use std::f64::consts::PI;

    /// Sampling onto a grid 4× coarser per axis reproduces the point values of a smooth
    /// density at fourth order (box and torus; the cell average is second order), keeps unit
    /// mass to round-off, and clamps the undershoot of a density with a hard edge at zero.
    #[test]
    fn sampling_is_fourth_order_and_keeps_mass_and_sign() {
        for kind in [BoundaryKind::Neumann, BoundaryKind::Periodic] {
            let rho = |x: &[f64]| {
                1.0 + 0.5 * (2.0 * PI * x[0]).sin() * (2.0 * PI * x[1]).cos()
                    + 0.2 * (4.0 * PI * x[1]).cos()
            };
            let errors: Vec<f64> = [16usize, 32, 64]
                .iter()
                .map(|&n| {
                    let fine = Grid::unit(2, 4 * n, kind).unwrap();
                    let coarse = Grid::unit(2, n, kind).unwrap();
                    let (density, mass) = ScalarField::from_fn(&fine, rho).to_density().unwrap();
                    let sampled = sample(&density, &coarse).unwrap();
                    assert!((sampled.integral() - 1.0).abs() < 1e-13);
                    let exact = ScalarField::from_fn(&coarse, rho);
                    sampled
                        .data()
                        .iter()
                        .zip(exact.data().iter())
                        .map(|(s, e)| (s * mass - e).abs())
                        .fold(0.0, f64::max)
                })
                .collect();
            for w in errors.windows(2) {
                let order = (w[0] / w[1]).log2();
                assert!(order >= 3.8, "{kind:?}: order {order} from {errors:?}");
            }
        }
        let fine = Grid::unit(2, 64, BoundaryKind::Neumann).unwrap();
        let coarse = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
        let edge = ScalarField::from_fn(&fine, |x| if x[0] < 0.5 { 1.0 } else { 0.0 });
        let sampled = sample(&edge.to_density().unwrap().0, &coarse).unwrap();
        assert!(sampled.data().iter().all(|v| *v >= 0.0));
        assert!((sampled.integral() - 1.0).abs() < 1e-13);
    }

    /// Cubic prolongation reproduces cubics per axis (box and torus) and its gradient — the
    /// map the next level starts from — converges at second order.
    #[test]
    fn cubic_prolongation_is_exact_for_cubics_and_second_order_in_the_gradient() {
        let cubic = |x: &[f64]| x[0].powi(3) - 2.0 * x[0] * x[1] * x[1] + 0.5 * x[1];
        let coarse = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
        let fine = Grid::unit(2, 32, BoundaryKind::Neumann).unwrap();
        let p = prolong(&ScalarField::from_fn(&coarse, cubic), &fine);
        let exact = ScalarField::from_fn(&fine, cubic);
        let diff = p.data().iter().zip(exact.data().iter()).map(|(a, b)| (a - b).abs());
        assert!(diff.fold(0.0, f64::max) < 1e-13);
        // Periodic: a smooth function, gradient error order ≥ 1.9 over 3 sizes.
        let f = |x: &[f64]| (2.0 * PI * x[0]).sin() * (2.0 * PI * x[1]).cos();
        let errors: Vec<f64> = [16usize, 32, 64]
            .iter()
            .map(|&n| {
                let c = Grid::unit(2, n, BoundaryKind::Periodic).unwrap();
                let fg = Grid::unit(2, 2 * n, BoundaryKind::Periodic).unwrap();
                let g = gradient(&prolong(&ScalarField::from_fn(&c, f), &fg));
                let ge = gradient(&ScalarField::from_fn(&fg, f));
                g.data()
                    .iter()
                    .zip(ge.data().iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
            })
            .collect();
        for w in errors.windows(2) {
            let order = (w[0] / w[1]).log2();
            assert!(order >= 1.9, "order {order} from {errors:?}");
        }
    }
}
