//! Convolution with a kernel on a cell-centred grid by FFT:
//!
//! `(k ∗ f)_i = Σ_j k(x_i − x_j) f_j |cell|`,
//!
//! the midpoint rule for `∫ k(x − y) f(y) dy`. Box axes (Neumann, Dirichlet) are zero-padded
//! to 2n cells, so the sum is the linear convolution over the box (no wrap-around); periodic
//! axes are circular, the kernel taken at the minimum-image displacement (a kernel wider than
//! half the period sees one image only). The kernel is symmetrised, `½(k(d) + k(−d))`: the
//! energies that use it (`½∫∫ W ρρ`, MMD) depend on its even part only, and an even kernel's
//! transform is real. Planned once per grid and kernel ([`Convolution::new`] keeps the
//! kernel's transform); each [`Convolution::apply`] costs two FFTs of the padded array.

use crate::error::{Error, Result};
use crate::grid::Grid;
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// The forward and inverse FFT of one length.
type Plans = (Arc<dyn Fft<f64>>, Arc<dyn Fft<f64>>);

/// A planned convolution with one kernel on one grid.
#[derive(Clone)]
pub struct Convolution {
    grid: Grid,
    /// The grid's storage shape (`[z][y][x]`).
    shape: Vec<usize>,
    /// The padded array's storage shape.
    padded: Vec<usize>,
    /// Forward and inverse FFT plans per storage axis.
    plans: Vec<Plans>,
    /// The kernel's transform times `|cell| / N_padded` (the inverse FFT's normalisation).
    spectrum: Vec<f64>,
}

impl std::fmt::Debug for Convolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Convolution {{ grid: {}, padded: {:?} }}", self.grid, self.padded)
    }
}

impl Convolution {
    /// Plans the convolution with `kernel` (a function of the displacement `d`, x first) on
    /// `grid`. Errors if the kernel is not finite at some displacement of the grid.
    pub fn new(grid: &Grid, kernel: impl Fn(&[f64]) -> f64 + Sync) -> Result<Convolution> {
        let d = grid.dim();
        let shape = grid.storage_shape();
        // Storage axis k is grid axis d − 1 − k.
        let periodic: Vec<bool> =
            (0..d).map(|k| grid.axis(d - 1 - k).boundary.is_periodic()).collect();
        let spacing: Vec<f64> = (0..d).map(|k| grid.axis(d - 1 - k).spacing()).collect();
        let padded: Vec<usize> =
            (0..d).map(|k| if periodic[k] { shape[k] } else { 2 * shape[k] }).collect();
        let mut planner = FftPlanner::<f64>::new();
        let plans = padded
            .iter()
            .map(|&n| (planner.plan_fft_forward(n), planner.plan_fft_inverse(n)))
            .collect();
        let total: usize = padded.iter().product();
        // The kernel at padded index m (per storage axis): offset m for m < n/2-ish, m − n
        // after (the minimum image on periodic axes; the negative offsets on padded ones).
        let offset = |k: usize, m: usize| -> f64 {
            let n = padded[k];
            let signed = if 2 * m <= n { m as f64 } else { m as f64 - n as f64 };
            signed * spacing[k]
        };
        let values: Vec<Complex<f64>> = (0..total)
            .into_par_iter()
            .map(|flat| {
                let mut rest = flat;
                let mut disp = [0.0; 3];
                for k in (0..d).rev() {
                    let m = rest % padded[k];
                    rest /= padded[k];
                    disp[d - 1 - k] = offset(k, m);
                }
                let minus: Vec<f64> = disp[..d].iter().map(|v| -v).collect();
                Complex::new(0.5 * (kernel(&disp[..d]) + kernel(&minus)), 0.0)
            })
            .collect();
        if let Some(bad) = values.iter().position(|v| !v.re.is_finite()) {
            return Err(Error::invalid(format!(
                "convolution kernel: not finite at a displacement of the grid (value {})",
                values[bad].re
            )));
        }
        let mut conv =
            Convolution { grid: grid.clone(), shape, padded, plans, spectrum: Vec::new() };
        let mut values = values;
        conv.transform(&mut values, true);
        let scale = grid.cell_volume() / total as f64;
        conv.spectrum = values.iter().map(|v| v.re * scale).collect();
        Ok(conv)
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// `out = k ∗ f` (`f`, `out`: one value per cell, C order).
    pub fn apply(&self, f: &[f64], out: &mut [f64]) -> Result<()> {
        let n = self.grid.num_cells();
        if f.len() != n || out.len() != n {
            return Err(Error::invalid("convolution: the values live on another grid"));
        }
        let total: usize = self.padded.iter().product();
        let mut buf = vec![Complex::new(0.0, 0.0); total];
        self.scatter(f, &mut buf);
        self.transform(&mut buf, true);
        buf.par_iter_mut().zip(self.spectrum.par_iter()).for_each(|(v, s)| *v *= *s);
        self.transform(&mut buf, false);
        self.gather(&buf, out);
        Ok(())
    }

    /// Copies grid values into the corner of the padded array.
    fn scatter(&self, f: &[f64], buf: &mut [Complex<f64>]) {
        let last = *self.shape.last().expect("a grid has axes");
        let plast = *self.padded.last().expect("a grid has axes");
        for (row, values) in f.chunks_exact(last).enumerate() {
            let start = self.padded_row(row) * plast;
            buf[start..start + last].iter_mut().zip(values).for_each(|(b, v)| b.re = *v);
        }
    }

    /// Reads the grid's corner of the padded array (real parts).
    fn gather(&self, buf: &[Complex<f64>], out: &mut [f64]) {
        let last = *self.shape.last().expect("a grid has axes");
        let plast = *self.padded.last().expect("a grid has axes");
        out.par_chunks_exact_mut(last).enumerate().for_each(|(row, values)| {
            let start = self.padded_row(row) * plast;
            values.iter_mut().zip(&buf[start..start + last]).for_each(|(o, b)| *o = b.re);
        });
    }

    /// The padded array's row (all storage axes but the last) of the grid's row `row`.
    fn padded_row(&self, row: usize) -> usize {
        let d = self.shape.len();
        let (mut rest, mut index, mut stride) = (row, 0, 1);
        for k in (0..d - 1).rev() {
            index += (rest % self.shape[k]) * stride;
            rest /= self.shape[k];
            stride *= self.padded[k];
        }
        index
    }

    /// The d-dimensional FFT (forward or unnormalised inverse) of the padded array in place:
    /// along the contiguous axis, then a transpose that brings the next axis last, d times.
    fn transform(&self, buf: &mut Vec<Complex<f64>>, forward: bool) {
        let d = self.padded.len();
        let mut dims = self.padded.clone();
        let mut other = vec![Complex::new(0.0, 0.0); buf.len()];
        for _ in 0..d {
            let n = *dims.last().expect("a grid has axes");
            // (A plan depends only on the length.)
            let axis = self.padded.iter().position(|&m| m == n).expect("an axis of this length");
            let plan = if forward { &self.plans[axis].0 } else { &self.plans[axis].1 };
            let scratch_len = plan.get_inplace_scratch_len();
            let lines_per_task = (16384 / n).max(1);
            buf.par_chunks_mut(lines_per_task * n).for_each_init(
                || vec![Complex::new(0.0, 0.0); scratch_len],
                |scratch, chunk| plan.process_with_scratch(chunk, scratch),
            );
            // [rest][n] → [n][rest]
            let rest = buf.len() / n;
            other.par_chunks_mut(rest).enumerate().for_each(|(j, row)| {
                row.iter_mut().enumerate().for_each(|(i, v)| *v = buf[i * n + j]);
            });
            std::mem::swap(buf, &mut other);
            dims.rotate_right(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{unflatten, Axis, BoundaryKind};

    /// The direct sum `Σ_j k_s(x_i − x_j) f_j |cell|` with the symmetrised kernel and the
    /// minimum image on periodic axes.
    fn brute(grid: &Grid, kernel: &dyn Fn(&[f64]) -> f64, f: &[f64]) -> Vec<f64> {
        let d = grid.dim();
        let shape = grid.storage_shape();
        let n = grid.num_cells();
        let centre = |flat: usize| {
            let mut idx = [0usize; 3];
            unflatten(flat, &shape, &mut idx[..d], 0);
            let mut x = [0.0; 3];
            grid.cell_center(&idx[..d], &mut x[..d]);
            x
        };
        (0..n)
            .map(|i| {
                let xi = centre(i);
                (0..n)
                    .map(|j| {
                        let xj = centre(j);
                        let mut disp = [0.0; 3];
                        for a in 0..d {
                            let mut v = xi[a] - xj[a];
                            let axis = grid.axis(a);
                            if axis.boundary.is_periodic() {
                                let l = axis.length();
                                v -= l * (v / l).round();
                                // (Half a period: both images, as the symmetrised kernel.)
                            }
                            disp[a] = v;
                        }
                        let minus: Vec<f64> = disp[..d].iter().map(|v| -v).collect();
                        0.5 * (kernel(&disp[..d]) + kernel(&minus)) * f[j]
                    })
                    .sum::<f64>()
                    * grid.cell_volume()
            })
            .collect()
    }

    /// The FFT convolution equals the direct sum to round-off on boxes, tori and mixed grids
    /// in 2D and 3D (odd and even cell counts), for an uneven kernel (only its even part
    /// counts) and the energy distance's `−|d|`.
    #[test]
    fn matches_the_direct_sum() {
        let uneven = |d: &[f64]| (-(d[0] - 0.1).powi(2) * 8.0 - d[1] * d[1] * 3.0).exp() + d[0];
        let distance = |d: &[f64]| -d.iter().map(|v| v * v).sum::<f64>().sqrt();
        let axis = |cells: usize, lower: f64, upper: f64, boundary: BoundaryKind| Axis {
            cells,
            lower,
            upper,
            boundary,
        };
        let grids = [
            Grid::new(vec![
                axis(12, 0.0, 1.0, BoundaryKind::Neumann),
                axis(9, -1.0, 0.5, BoundaryKind::Neumann),
            ])
            .unwrap(),
            Grid::new(vec![
                axis(10, 0.0, 1.0, BoundaryKind::Periodic),
                axis(7, 0.0, 2.0, BoundaryKind::Neumann),
            ])
            .unwrap(),
            Grid::unit(2, 11, BoundaryKind::Periodic).unwrap(),
            Grid::new(vec![
                axis(6, 0.0, 1.0, BoundaryKind::Neumann),
                axis(5, 0.0, 1.0, BoundaryKind::Periodic),
                axis(4, 0.0, 0.5, BoundaryKind::Neumann),
            ])
            .unwrap(),
        ];
        for grid in &grids {
            let d = grid.dim();
            let f: Vec<f64> =
                (0..grid.num_cells()).map(|i| ((i * 7919) % 101) as f64 / 101.0 - 0.3).collect();
            for kernel in [&uneven as &(dyn Fn(&[f64]) -> f64 + Sync), &distance] {
                let conv = Convolution::new(grid, |x| kernel(&x[..d])).unwrap();
                let mut fast = vec![0.0; f.len()];
                conv.apply(&f, &mut fast).unwrap();
                let slow = brute(grid, kernel, &f);
                let scale = slow.iter().map(|v| v.abs()).fold(0.0, f64::max);
                for (a, b) in fast.iter().zip(&slow) {
                    assert!((a - b).abs() < 1e-12 * scale, "{grid}: {a} vs {b}");
                }
            }
        }
        let grid = &grids[0];
        assert!(Convolution::new(grid, |d| 1.0 / d[0]).is_err());
        let conv = Convolution::new(grid, |_| 1.0).unwrap();
        assert!(conv.apply(&[0.0; 3], &mut [0.0; 3]).is_err());
    }
}
