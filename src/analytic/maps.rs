//! Closed-form Brenier maps beyond Gaussians (see `../shared/reference/analytic-maps.md`):
//!
//! - [`PeriodicManufactured`]: on the unit torus, `φ = |x|²/2 + ψ`, `ψ = a Π cos(2πx_k)`,
//!   target `g(y) = 1 + b sin(2πy₁) cos(2πy₂)` (or `g ≡ 1` with `b = 0`), and source
//!   `f(x) = g(x + ∇ψ(x)) det(I + D²ψ(x))`, so that `T(x) = x + ∇ψ(x)` exactly.
//! - [`Separable`]: on the unit box, products `f = Π(1 + α_k cos πx_k)`,
//!   `g = Π(1 + β_k cos πy_k)`; the map acts axis by axis, `T_k = G_k⁻¹ ∘ F_k` with
//!   `F_k(x) = x + α_k sin(πx)/π` (monotone rearrangement), which respects the second
//!   boundary condition (faces to faces).

use std::f64::consts::PI;

/// The manufactured periodic case on the unit torus in 2 or 3 dimensions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeriodicManufactured {
    pub dim: usize,
    /// Amplitude of ψ; `|a| < 1/(4π²)` keeps `I + D²ψ` positive definite (in 2D; in 3D
    /// `|a| < 1/(12π²)` suffices, by Gershgorin's bound).
    pub a: f64,
    /// Amplitude of the target's modulation (`|b| < 1`); 0 gives the uniform target.
    pub b: f64,
}

impl PeriodicManufactured {
    /// The standard case: `a = 0.5/(4π²)` in 2D (det D²φ between 0.25 and 2.25),
    /// `a = 0.4/(8π²)` in 3D, and `b = 0.3`.
    pub fn standard(dim: usize) -> PeriodicManufactured {
        let a = if dim == 3 { 0.4 / (8.0 * PI * PI) } else { 0.5 / (4.0 * PI * PI) };
        PeriodicManufactured { dim, a, b: 0.3 }
    }

    fn trig(&self, x: &[f64]) -> ([f64; 3], [f64; 3]) {
        let (mut s, mut c) = ([0.0; 3], [1.0; 3]);
        for k in 0..self.dim {
            (s[k], c[k]) = (2.0 * PI * x[k]).sin_cos();
        }
        (s, c)
    }

    /// `∇ψ(x)` into `out`.
    pub fn displacement(&self, x: &[f64], out: &mut [f64]) {
        let (s, c) = self.trig(x);
        for k in 0..self.dim {
            let others: f64 = (0..self.dim).filter(|&j| j != k).map(|j| c[j]).product();
            out[k] = -2.0 * PI * self.a * s[k] * others;
        }
    }

    /// The exact map `T(x) = x + ∇ψ(x)` (not wrapped into the period).
    pub fn map(&self, x: &[f64], out: &mut [f64]) {
        self.displacement(x, out);
        for k in 0..self.dim {
            out[k] += x[k];
        }
    }

    /// `ψ(x)`, the displacement potential (mean zero).
    pub fn potential(&self, x: &[f64]) -> f64 {
        let (_, c) = self.trig(x);
        self.a * c[..self.dim].iter().product::<f64>()
    }

    /// Target density `g(y) = 1 + b sin(2πy₁) cos(2πy₂)` (unit mass on the torus).
    pub fn target_density(&self, y: &[f64]) -> f64 {
        1.0 + self.b * (2.0 * PI * y[0]).sin() * (2.0 * PI * y[1]).cos()
    }

    /// Source density `f(x) = g(T(x)) det(I + D²ψ(x))` (unit mass on the torus).
    pub fn source_density(&self, x: &[f64]) -> f64 {
        let d = self.dim;
        let (s, c) = self.trig(x);
        let w = 4.0 * PI * PI * self.a;
        let mut h = [[0.0f64; 3]; 3];
        for i in 0..d {
            for j in 0..d {
                let prod: f64 = (0..d).filter(|&k| k != i && k != j).map(|k| c[k]).product();
                h[i][j] = if i == j { 1.0 - w * c[i] * prod } else { w * s[i] * s[j] * prod };
            }
        }
        let det = if d == 2 {
            h[0][0] * h[1][1] - h[0][1] * h[1][0]
        } else {
            h[0][0] * (h[1][1] * h[2][2] - h[1][2] * h[2][1])
                - h[0][1] * (h[1][0] * h[2][2] - h[1][2] * h[2][0])
                + h[0][2] * (h[1][0] * h[2][1] - h[1][1] * h[2][0])
        };
        let mut y = [0.0; 3];
        self.map(x, &mut y);
        self.target_density(&y[..d]) * det
    }

    /// `W₂² = ∫ |∇ψ|² f dx`, by the periodic trapezoidal rule on 256^d points (spectrally
    /// accurate for this smooth periodic integrand).
    pub fn w2_squared(&self) -> f64 {
        let n: usize = if self.dim == 3 { 96 } else { 256 };
        let total = n.pow(self.dim as u32);
        let mut sum = 0.0;
        let mut x = [0.0; 3];
        let mut v = [0.0; 3];
        for flat in 0..total {
            let mut rest = flat;
            for xk in x.iter_mut().take(self.dim) {
                *xk = (rest % n) as f64 / n as f64;
                rest /= n;
            }
            self.displacement(&x[..self.dim], &mut v);
            let sq: f64 = v[..self.dim].iter().map(|t| t * t).sum();
            sum += sq * self.source_density(&x[..self.dim]);
        }
        sum / total as f64
    }
}

/// Separable densities on the unit box with the coordinate-wise monotone map.
#[derive(Clone, Debug, PartialEq)]
pub struct Separable {
    /// Source factors `1 + α_k cos(πx)`, `|α_k| < 1`.
    pub alpha: Vec<f64>,
    /// Target factors `1 + β_k cos(πy)`, `|β_k| < 1`.
    pub beta: Vec<f64>,
}

fn cdf(c: f64, x: f64) -> f64 {
    x + c * (PI * x).sin() / PI
}

impl Separable {
    /// The standard case: α = (0.5, −0.3, 0.4), β = (−0.4, 0.6, −0.2) truncated to `dim`.
    pub fn standard(dim: usize) -> Separable {
        Separable {
            alpha: [0.5, -0.3, 0.4][..dim].to_vec(),
            beta: [-0.4, 0.6, -0.2][..dim].to_vec(),
        }
    }

    pub fn dim(&self) -> usize {
        self.alpha.len()
    }

    /// `f(x) = Π (1 + α_k cos πx_k)`.
    pub fn source_density(&self, x: &[f64]) -> f64 {
        self.alpha.iter().zip(x).map(|(a, v)| 1.0 + a * (PI * v).cos()).product()
    }

    /// `g(y) = Π (1 + β_k cos πy_k)`.
    pub fn target_density(&self, y: &[f64]) -> f64 {
        self.beta.iter().zip(y).map(|(b, v)| 1.0 + b * (PI * v).cos()).product()
    }

    /// One axis of the map: `G⁻¹(F(x))` by safeguarded Newton iteration to round-off.
    pub fn map_1d(&self, k: usize, x: f64) -> f64 {
        let (a, b) = (self.alpha[k], self.beta[k]);
        let target = cdf(a, x.clamp(0.0, 1.0));
        let (mut lo, mut hi, mut y) = (0.0f64, 1.0f64, x.clamp(0.0, 1.0));
        for _ in 0..200 {
            let r = cdf(b, y) - target;
            if r == 0.0 {
                break;
            }
            if r > 0.0 {
                hi = y;
            } else {
                lo = y;
            }
            let step = r / (1.0 + b * (PI * y).cos());
            let next = y - step;
            y = if next >= lo && next <= hi { next } else { 0.5 * (lo + hi) };
            if step.abs() < 1e-16 || hi - lo < 1e-16 {
                break;
            }
        }
        y
    }

    /// The exact map, axis by axis.
    pub fn map(&self, x: &[f64], out: &mut [f64]) {
        for k in 0..self.dim() {
            out[k] = self.map_1d(k, x[k]);
        }
    }

    /// `W₂² = Σ_k ∫₀¹ (T_k(x) − x)² f_k(x) dx` (each factor has unit mass), by composite
    /// Simpson's rule on 4000 intervals.
    pub fn w2_squared(&self) -> f64 {
        let m = 4000;
        (0..self.dim())
            .map(|k| {
                let f = |x: f64| {
                    (self.map_1d(k, x) - x).powi(2) * (1.0 + self.alpha[k] * (PI * x).cos())
                };
                let h = 1.0 / m as f64;
                let inner: f64 =
                    (1..m).map(|i| if i % 2 == 1 { 4.0 } else { 2.0 } * f(i as f64 * h)).sum();
                (f(0.0) + f(1.0) + inner) * h / 3.0
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both sides have unit mass and the map pushes one to the other: checked through the
    /// change-of-variables identity at random points and by quadrature of the masses.
    #[test]
    fn manufactured_densities_have_unit_mass_and_match_the_map() {
        for dim in [2, 3] {
            let c = PeriodicManufactured::standard(dim);
            let n: usize = if dim == 2 { 128 } else { 32 };
            let total = n.pow(dim as u32);
            let (mut mf, mut mg, mut min_f) = (0.0, 0.0, f64::INFINITY);
            let mut x = [0.0; 3];
            for flat in 0..total {
                let mut rest = flat;
                for xk in x.iter_mut().take(dim) {
                    *xk = ((rest % n) as f64 + 0.5) / n as f64;
                    rest /= n;
                }
                let f = c.source_density(&x[..dim]);
                min_f = min_f.min(f);
                mf += f;
                mg += c.target_density(&x[..dim]);
            }
            assert!((mf / total as f64 - 1.0).abs() < 1e-12, "{dim}D source mass");
            assert!((mg / total as f64 - 1.0).abs() < 1e-12, "{dim}D target mass");
            assert!(min_f > 0.1, "{dim}D: f must stay positive, min {min_f}");
            assert!(c.w2_squared() > 0.0);
        }
        // The displacement is the gradient of the potential (central differences).
        let c = PeriodicManufactured::standard(2);
        let (x, e) = ([0.31, 0.77], 1e-6);
        let mut g = [0.0; 2];
        c.displacement(&x, &mut g);
        let fd0 = (c.potential(&[x[0] + e, x[1]]) - c.potential(&[x[0] - e, x[1]])) / (2.0 * e);
        let fd1 = (c.potential(&[x[0], x[1] + e]) - c.potential(&[x[0], x[1] - e])) / (2.0 * e);
        assert!((g[0] - fd0).abs() < 1e-9 && (g[1] - fd1).abs() < 1e-9);
    }

    #[test]
    fn separable_map_is_the_monotone_rearrangement() {
        // A factor equal on both sides maps by the identity (an exact root at the start).
        let same = Separable { alpha: vec![0.5, 0.0], beta: vec![0.0, 0.0] };
        for x in [0.0, 0.1, 0.5, 1.0] {
            assert_eq!(same.map_1d(1, x), x);
        }
        let s = Separable::standard(2);
        for k in 0..2 {
            assert!(s.map_1d(k, 0.0).abs() < 1e-15 && (s.map_1d(k, 1.0) - 1.0).abs() < 1e-15);
            for x in [0.1, 0.37, 0.5, 0.93] {
                let y = s.map_1d(k, x);
                assert!((cdf(s.beta[k], y) - cdf(s.alpha[k], x)).abs() < 1e-14);
                // T' = f/g(T): the 1D Monge–Ampère equation.
                let e = 1e-6;
                let slope = (s.map_1d(k, x + e) - s.map_1d(k, x - e)) / (2.0 * e);
                let ratio =
                    (1.0 + s.alpha[k] * (PI * x).cos()) / (1.0 + s.beta[k] * (PI * y).cos());
                assert!((slope - ratio).abs() < 1e-7);
            }
        }
        // Simpson's W₂² agrees with a midpoint rule on 20000 cells.
        let m = 20000;
        let midpoint: f64 = (0..2)
            .map(|k| {
                (0..m)
                    .map(|i| {
                        let x = (i as f64 + 0.5) / m as f64;
                        (s.map_1d(k, x) - x).powi(2) * (1.0 + s.alpha[k] * (PI * x).cos())
                    })
                    .sum::<f64>()
                    / m as f64
            })
            .sum();
        assert!((s.w2_squared() - midpoint).abs() < 1e-9, "{} {midpoint}", s.w2_squared());
    }
}
