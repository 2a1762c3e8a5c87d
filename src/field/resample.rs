//! Moving a scalar field from one grid's cells to another's, one axis at a time (both maps
//! are tensor products of 1D maps):
//!
//! - [`conservative`] — for densities: the new cell value is the mean of the old piecewise
//!   constant field over the new cell, `ρ'_i = (1/h'_i) Σ_j |C'_i ∩ C_j| ρ_j`, so the mass in
//!   the region covered by both grids is kept exactly (mass outside the new box is dropped);
//! - [`multilinear`] — for coefficients and initial data: linear interpolation between old
//!   cell centres along each axis, constant beyond the outermost centres.

use super::ScalarField;
use crate::error::Result;
use crate::grid::{Axis, Grid};
use ndarray::{ArrayD, Axis as NdAxis};

/// Per new cell, the (old cell, weight) pairs of a 1D map.
type Weights = Vec<Vec<(usize, f64)>>;

fn overlap_weights(from: &Axis, to: &Axis) -> Weights {
    let (hf, ht) = (from.spacing(), to.spacing());
    (0..to.cells)
        .map(|i| {
            let (b0, b1) = (to.lower + i as f64 * ht, to.lower + (i + 1) as f64 * ht);
            let first = (((b0 - from.lower) / hf).floor().max(0.0) as usize).min(from.cells);
            let mut row = Vec::new();
            for j in first..from.cells {
                let (a0, a1) = (from.lower + j as f64 * hf, from.lower + (j + 1) as f64 * hf);
                if a0 >= b1 {
                    break;
                }
                let overlap = a1.min(b1) - a0.max(b0);
                if overlap > 0.0 {
                    row.push((j, overlap / ht));
                }
            }
            row
        })
        .collect()
}

fn linear_weights(from: &Axis, to: &Axis) -> Weights {
    let n = from.cells;
    (0..to.cells)
        .map(|i| {
            let s = (to.center(i) - from.lower) / from.spacing() - 0.5;
            if n == 1 || s <= 0.0 {
                vec![(0, 1.0)]
            } else if s >= (n - 1) as f64 {
                vec![(n - 1, 1.0)]
            } else {
                let j = s.floor() as usize;
                let t = s - j as f64;
                vec![(j, 1.0 - t), (j + 1, t)]
            }
        })
        .collect()
}

/// Applies a 1D map along storage axis `axis` of `data`.
fn apply_along(data: &ArrayD<f64>, axis: usize, weights: &Weights) -> ArrayD<f64> {
    let mut shape = data.shape().to_vec();
    shape[axis] = weights.len();
    let mut out = ArrayD::zeros(shape);
    for (input, mut output) in data.lanes(NdAxis(axis)).into_iter().zip(out.lanes_mut(NdAxis(axis)))
    {
        for (o, row) in output.iter_mut().zip(weights) {
            *o = row.iter().map(|&(j, w)| w * input[j]).sum();
        }
    }
    out
}

fn resample(
    field: &ScalarField,
    to: &Grid,
    weights: fn(&Axis, &Axis) -> Weights,
) -> Result<ScalarField> {
    let from = field.grid();
    if from.dim() != to.dim() {
        return Err(crate::error::Error::invalid(format!(
            "cannot resample a {}D field onto a {}D grid",
            from.dim(),
            to.dim()
        )));
    }
    let d = from.dim();
    let mut data = field.data().clone();
    for a in 0..d {
        data = apply_along(&data, d - 1 - a, &weights(from.axis(a), to.axis(a)));
    }
    ScalarField::new(to.clone(), data)
}

/// Conservative (cell-overlap) resampling of a density onto `to`.
pub fn conservative(field: &ScalarField, to: &Grid) -> Result<ScalarField> {
    resample(field, to, overlap_weights)
}

/// Multilinear interpolation of a field at the cell centres of `to`.
pub fn multilinear(field: &ScalarField, to: &Grid) -> Result<ScalarField> {
    resample(field, to, linear_weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;

    fn grid(n: [usize; 2], lo: [f64; 2], hi: [f64; 2]) -> Grid {
        Grid::uniform(&n, &lo, &hi, BoundaryKind::Neumann).unwrap()
    }

    /// Mass is kept to round-off onto finer, coarser and misaligned grids covering the
    /// old box; a brute-force sub-sampled average checks the values.
    #[test]
    fn conservative_keeps_mass_and_matches_brute_force_averages() {
        let from = grid([12, 9], [-1.0, 0.0], [1.0, 1.5]);
        let rho = ScalarField::from_fn(&from, |p| 1.0 + p[0] * p[0] + 0.5 * p[1]);
        for to in [
            grid([24, 18], [-1.0, 0.0], [1.0, 1.5]),
            grid([5, 7], [-1.0, 0.0], [1.0, 1.5]),
            grid([17, 11], [-1.3, -0.2], [1.1, 1.6]),
        ] {
            let r = conservative(&rho, &to).unwrap();
            let (m0, m1) = (rho.integral(), r.integral());
            assert!((m0 - m1).abs() <= 1e-13 * m0, "mass {m0} -> {m1}");
            // Brute force: average the piecewise-constant old field over 64² points per cell.
            let k = 64;
            let (hx, hy) = (to.axis(0).spacing(), to.axis(1).spacing());
            for (j, i) in [(0usize, 0usize), (3, 4), (to.shape()[1] - 1, to.shape()[0] - 1)] {
                let mut sum = 0.0;
                for q in 0..k * k {
                    let x = to.axis(0).lower + (i as f64 + ((q % k) as f64 + 0.5) / k as f64) * hx;
                    let y = to.axis(1).lower + (j as f64 + ((q / k) as f64 + 0.5) / k as f64) * hy;
                    let ix = ((x - from.axis(0).lower) / from.axis(0).spacing()).floor();
                    let iy = ((y - from.axis(1).lower) / from.axis(1).spacing()).floor();
                    if ix >= 0.0 && iy >= 0.0 && (ix as usize) < 12 && (iy as usize) < 9 {
                        sum += rho.data()[[iy as usize, ix as usize]];
                    }
                }
                let brute = sum / (k * k) as f64;
                let got = r.data()[[j, i]];
                assert!((got - brute).abs() < 0.03 * brute.max(1e-3), "{got} vs {brute}");
            }
        }
    }

    /// Observed orders on a smooth field, source grids n = 16, 32, 64 (target grids of
    /// 1.5 n cells on a box inside, misaligned): multilinear interpolation is second order
    /// in the RMS norm; the conservative map, against the exact cell averages of the smooth
    /// density on the target cells, is first order (the source holds piecewise constants).
    #[test]
    fn resampling_converges_at_its_order() {
        use crate::analytic::manufactured::observed_orders;
        let f = |p: &[f64]| (3.0 * p[0]).sin() * (2.0 * p[1]).cos() + 2.0;
        let (mut h, mut lin, mut cons) = (vec![], vec![], vec![]);
        for n in [16usize, 32, 64] {
            let from = grid([n, n], [0.0, 0.0], [1.0, 1.0]);
            let m = 3 * n / 2;
            let to = grid([m, m], [0.13, 0.11], [0.87, 0.91]);
            // Source: point values at centres (for interpolation) and cell averages (for the
            // conservative map), both by a 6-point Gauss rule per axis for the averages.
            let gauss = [
                (-0.932_469_514_203_152, 0.171_324_492_379_170),
                (-0.661_209_386_466_265, 0.360_761_573_048_139),
                (-0.238_619_186_083_197, 0.467_913_934_572_691),
                (0.238_619_186_083_197, 0.467_913_934_572_691),
                (0.661_209_386_466_265, 0.360_761_573_048_139),
                (0.932_469_514_203_152, 0.171_324_492_379_170),
            ];
            let average = |g: &Grid, c: &[f64]| -> f64 {
                let (hx, hy) = (g.axis(0).spacing(), g.axis(1).spacing());
                let mut sum = 0.0;
                for (x, wx) in gauss {
                    for (y, wy) in gauss {
                        sum += wx * wy * f(&[c[0] + 0.5 * hx * x, c[1] + 0.5 * hy * y]);
                    }
                }
                sum / 4.0
            };
            let points = ScalarField::from_fn(&from, f);
            let averages = ScalarField::from_fn(&from, |c| average(&from, c));
            let exact_points = ScalarField::from_fn(&to, f);
            let exact_averages = ScalarField::from_fn(&to, |c| average(&to, c));
            // RMS over the target cells (the max norm samples a different interpolation
            // point per grid, so its ratios fluctuate).
            let max_err = |a: &ScalarField, b: &ScalarField| {
                let sq: f64 = a.data().iter().zip(b.data()).map(|(x, y)| (x - y).powi(2)).sum();
                (sq / a.data().len() as f64).sqrt()
            };
            h.push(1.0 / n as f64);
            lin.push(max_err(&multilinear(&points, &to).unwrap(), &exact_points));
            cons.push(max_err(&conservative(&averages, &to).unwrap(), &exact_averages));
        }
        let (ol, oc) = (observed_orders(&h, &lin), observed_orders(&h, &cons));
        eprintln!("multilinear orders {ol:?}, conservative orders {oc:?}");
        assert!(ol.iter().all(|&o| o >= 1.9), "multilinear orders {ol:?} (errors {lin:?})");
        assert!(oc.iter().all(|&o| o >= 0.9), "conservative orders {oc:?} (errors {cons:?})");
    }

    /// Linear functions are reproduced exactly inside the old centres' hull.
    #[test]
    fn multilinear_is_exact_for_linear_fields() {
        let from = grid([10, 8], [0.0, 0.0], [1.0, 1.0]);
        let f = ScalarField::from_fn(&from, |p| 2.0 * p[0] - 3.0 * p[1] + 1.0);
        let to = grid([13, 6], [0.1, 0.1], [0.9, 0.9]);
        let g = multilinear(&f, &to).unwrap();
        let exact = ScalarField::from_fn(&to, |p| 2.0 * p[0] - 3.0 * p[1] + 1.0);
        for (a, b) in g.data().iter().zip(exact.data()) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }
}
