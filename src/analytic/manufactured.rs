//! Manufactured solutions `u(x) = Π_a φ_a(x_a)` on a box, one smooth, non-polynomial profile
//! per boundary kind that satisfies that kind's homogeneous condition on both faces
//! (s = (x − lower)/L ∈ [0, 1]):
//!
//! | kind      | φ(s)               | property                       |
//! |-----------|--------------------|--------------------------------|
//! | periodic  | exp(½ sin 2πs)     | periodic with all derivatives  |
//! | Neumann   | exp(½ cos πs)      | φ'(0) = φ'(1) = 0              |
//! | Dirichlet | sin(πs) · exp(s)   | φ(0) = φ(1) = 0                |
//!
//! None is an eigenfunction of the Laplacian, so discretisation errors are generic.

use crate::grid::{BoundaryKind, Grid};
use std::f64::consts::PI;

/// The product solution for a grid's boundary kinds and box.
#[derive(Clone, Debug)]
pub struct Manufactured {
    axes: Vec<(BoundaryKind, f64, f64)>,
    generic: bool,
}

impl Manufactured {
    /// The manufactured solution matching `grid`'s boundary kinds and extent.
    pub fn for_grid(grid: &Grid) -> Manufactured {
        Manufactured {
            axes: grid.axes().iter().map(|a| (a.boundary, a.lower, a.length())).collect(),
            generic: false,
        }
    }

    /// A solution that satisfies no homogeneous condition on the non-periodic axes
    /// (φ(s) = exp(0.7 s) + cos 2s there), for testing inhomogeneous boundary data;
    /// periodic axes keep their periodic profile.
    pub fn generic(grid: &Grid) -> Manufactured {
        Manufactured { generic: true, ..Manufactured::for_grid(grid) }
    }

    /// φ, φ', φ'' of axis `a` at coordinate `x`.
    fn profile(&self, a: usize, x: f64) -> (f64, f64, f64) {
        let (kind, lower, len) = self.axes[a];
        let s = (x - lower) / len;
        let (v, d1, d2) = match kind {
            BoundaryKind::Neumann | BoundaryKind::Dirichlet if self.generic => {
                let e = (0.7 * s).exp();
                (
                    e + (2.0 * s).cos(),
                    0.7 * e - 2.0 * (2.0 * s).sin(),
                    0.49 * e - 4.0 * (2.0 * s).cos(),
                )
            }
            BoundaryKind::Periodic => {
                let w = 2.0 * PI;
                let e = (0.5 * (w * s).sin()).exp();
                let d1 = 0.5 * w * (w * s).cos();
                (e, d1 * e, (d1 * d1 - 0.5 * w * w * (w * s).sin()) * e)
            }
            BoundaryKind::Neumann => {
                let e = (0.5 * (PI * s).cos()).exp();
                let d1 = -0.5 * PI * (PI * s).sin();
                (e, d1 * e, (d1 * d1 - 0.5 * PI * PI * (PI * s).cos()) * e)
            }
            BoundaryKind::Dirichlet => {
                let (sn, cs, e) = ((PI * s).sin(), (PI * s).cos(), s.exp());
                (sn * e, (PI * cs + sn) * e, (-PI * PI * sn + 2.0 * PI * cs + sn) * e)
            }
        };
        (v, d1 / len, d2 / (len * len))
    }

    /// u(p).
    pub fn value(&self, p: &[f64]) -> f64 {
        (0..self.axes.len()).map(|a| self.profile(a, p[a]).0).product()
    }

    /// ∇u(p) into `out`.
    pub fn gradient(&self, p: &[f64], out: &mut [f64]) {
        let prof: Vec<_> = (0..self.axes.len()).map(|a| self.profile(a, p[a])).collect();
        for a in 0..prof.len() {
            out[a] = (0..prof.len()).map(|b| if b == a { prof[b].1 } else { prof[b].0 }).product();
        }
    }

    /// Δu(p).
    pub fn laplacian(&self, p: &[f64]) -> f64 {
        let prof: Vec<_> = (0..self.axes.len()).map(|a| self.profile(a, p[a])).collect();
        (0..prof.len())
            .map(|a| {
                (0..prof.len()).map(|b| if b == a { prof[b].2 } else { prof[b].0 }).product::<f64>()
            })
            .sum()
    }
}

/// Observed orders `log(e_k/e_{k+1}) / log(h_k/h_{k+1})` of a refinement sequence.
pub fn observed_orders(h: &[f64], errors: &[f64]) -> Vec<f64> {
    h.windows(2)
        .zip(errors.windows(2))
        .map(|(h, e)| (e[0] / e[1]).ln() / (h[0] / h[1]).ln())
        .collect()
}

/// Discrete L2 norm `sqrt(Σ e² |cell|)` and max norm of `a − b`.
pub fn error_norms(grid: &Grid, a: &[f64], b: &[f64]) -> (f64, f64) {
    let (sq, mx) = a.iter().zip(b).fold((0.0f64, 0.0f64), |(s, m), (x, y)| {
        let e = (x - y).abs();
        (s + e * e, m.max(e))
    });
    ((sq * grid.cell_volume()).sqrt(), mx)
}
