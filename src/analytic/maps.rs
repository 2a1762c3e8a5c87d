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

/// A 1D density profile on an interval (unnormalised), for product densities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Profile {
    /// Constant.
    Uniform,
    /// `exp(−(x − mean)²/(2 sd²))` (truncated to the interval).
    Gaussian { mean: f64, sd: f64 },
    /// `exp(−rate · (x − lower))`: spans `rate · length / ln 10` decades.
    Exponential { rate: f64 },
    /// `sin(π (x − lower)/length)`: the first Dirichlet eigenfunction, zero at both ends.
    Sine,
    /// `exp(−V(x)/D)` with `V(x) = Σ_k c_k x^k` (coefficients from degree 0 up): the
    /// stationary density of the Fokker–Planck equation `∂ₜρ = ∇·(D∇ρ + ρ∇V)`.
    Boltzmann { coefficients: [f64; 5], diffusion: f64 },
    /// `1` on `[from, to]`, 0 elsewhere.
    Interval { from: f64, to: f64 },
}

impl Profile {
    /// The (unnormalised) density at `x` of the interval `[lower, upper]`.
    pub fn value(&self, x: f64, lower: f64, upper: f64) -> f64 {
        match *self {
            Profile::Uniform => 1.0,
            Profile::Gaussian { mean, sd } => (-0.5 * ((x - mean) / sd).powi(2)).exp(),
            Profile::Exponential { rate } => (-rate * (x - lower)).exp(),
            Profile::Sine => (PI * (x - lower) / (upper - lower)).sin().max(0.0),
            Profile::Boltzmann { coefficients, diffusion } => {
                let v = coefficients.iter().rev().fold(0.0, |acc, c| acc * x + c);
                (-v / diffusion).exp()
            }
            Profile::Interval { from, to } => {
                if x >= from && x <= to {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// Nodes of the tabulated 1D distribution functions.
const TABLE: usize = 1 << 14;

/// A normalised 1D profile on `[lower, upper]` with its distribution function tabulated
/// (composite Simpson on [`TABLE`] panels, exact to ~1e-14 for smooth profiles; piecewise
/// profiles are integrated on panels split at their jumps).
#[derive(Clone, Debug, PartialEq)]
pub struct Tabulated {
    pub profile: Profile,
    pub lower: f64,
    pub upper: f64,
    /// `∫ profile` over the interval.
    mass: f64,
    /// The distribution function at `lower + k (upper − lower)/TABLE`.
    cdf: Vec<f64>,
}

impl Tabulated {
    /// Tabulates `profile` on `[lower, upper]`.
    pub fn new(profile: Profile, lower: f64, upper: f64) -> Tabulated {
        let h = (upper - lower) / TABLE as f64;
        let f = |x: f64| profile.value(x, lower, upper);
        let mut cdf = Vec::with_capacity(TABLE + 1);
        let mut acc = 0.0;
        cdf.push(0.0);
        for k in 0..TABLE {
            let (a, b) = (lower + k as f64 * h, lower + (k + 1) as f64 * h);
            let panel = |a: f64, b: f64| (b - a) / 6.0 * (f(a) + 4.0 * f(0.5 * (a + b)) + f(b));
            acc += match profile {
                Profile::Interval { from, to } => {
                    let (lo, hi) = (a.max(from), b.min(to));
                    if hi > lo {
                        hi - lo
                    } else {
                        0.0
                    }
                }
                _ => panel(a, b),
            };
            cdf.push(acc);
        }
        let mass = acc;
        cdf.iter_mut().for_each(|c| *c /= mass);
        Tabulated { profile, lower, upper, mass, cdf }
    }

    /// The normalised density at `x`.
    pub fn density(&self, x: f64) -> f64 {
        self.profile.value(x, self.lower, self.upper) / self.mass
    }

    /// The distribution function at `x` (linear between nodes, clamped to [0, 1]).
    pub fn cdf(&self, x: f64) -> f64 {
        let h = (self.upper - self.lower) / TABLE as f64;
        let s = ((x - self.lower) / h).clamp(0.0, TABLE as f64);
        let k = (s.floor() as usize).min(TABLE - 1);
        let t = s - k as f64;
        // Cubic Hermite with the density as slope: third order between nodes.
        let (x0, x1) = (self.lower + k as f64 * h, self.lower + (k + 1) as f64 * h);
        let (c0, c1) = (self.cdf[k], self.cdf[k + 1]);
        let (d0, d1) = (self.density(x0) * h, self.density(x1) * h);
        let smooth = !matches!(self.profile, Profile::Interval { .. });
        let v = if smooth {
            let (t2, t3) = (t * t, t * t * t);
            (2.0 * t3 - 3.0 * t2 + 1.0) * c0
                + (t3 - 2.0 * t2 + t) * d0
                + (-2.0 * t3 + 3.0 * t2) * c1
                + (t3 - t2) * d1
        } else {
            c0 + t * (c1 - c0)
        };
        v.clamp(0.0, 1.0)
    }

    /// The quantile function: the `x` with `cdf(x) = u` (bisection to round-off on the
    /// tabulated function; the left end of a flat stretch).
    pub fn quantile(&self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        let k = self.cdf.partition_point(|&c| c < u).clamp(1, TABLE);
        let h = (self.upper - self.lower) / TABLE as f64;
        let (mut a, mut b) = (self.lower + (k - 1) as f64 * h, self.lower + k as f64 * h);
        for _ in 0..60 {
            let m = 0.5 * (a + b);
            if self.cdf(m) < u {
                a = m;
            } else {
                b = m;
            }
        }
        0.5 * (a + b)
    }
}

/// A Brenier map between product densities `f = Π f_k(x_k)`, `g = Π g_k(y_k)`: the cost
/// is separable, so the map acts axis by axis. On a box axis `T_k = G_k⁻¹ ∘ F_k` (the
/// monotone rearrangement, exact with the second boundary condition). On a periodic axis
/// (a circle of length L) it is the rearrangement with a shift of the quantile,
/// `T_k(x) = Ĝ_k⁻¹(F_k(x) − θ_k)` with `Ĝ⁻¹(u + 1) = Ĝ⁻¹(u) + L`, θ_k minimising the
/// cost (Delon, Salomon & Sobolevski 2010): when the mean displacement is large, sending a
/// tail around the circle shortens everyone else's path.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductMap {
    /// Per axis: (source profile, target profile), on the same interval.
    pub axes: Vec<(Tabulated, Tabulated)>,
    /// Per axis: the quantile shift θ of a periodic axis (`None` on a box axis).
    pub shifts: Vec<Option<f64>>,
}

/// `Ĝ⁻¹(u)`: the quantile function extended to all u by `Ĝ⁻¹(u + 1) = Ĝ⁻¹(u) + L`.
fn periodic_quantile(g: &Tabulated, u: f64) -> f64 {
    let k = u.floor();
    g.quantile(u - k) + k * (g.upper - g.lower)
}

/// `∫₀¹ (F⁻¹(u) − Ĝ⁻¹(u − θ))² du` by the midpoint rule on `m` points.
fn shifted_cost(f: &Tabulated, g: &Tabulated, theta: f64, m: usize) -> f64 {
    (0..m)
        .map(|i| {
            let u = (i as f64 + 0.5) / m as f64;
            (periodic_quantile(g, u - theta) - f.quantile(u)).powi(2)
        })
        .sum::<f64>()
        / m as f64
}

impl ProductMap {
    /// The map between `source[k]` and `target[k]` on `[lower[k], upper[k]]`.
    pub fn new(source: &[Profile], target: &[Profile], lower: &[f64], upper: &[f64]) -> ProductMap {
        let axes = (0..source.len())
            .map(|k| {
                (
                    Tabulated::new(source[k], lower[k], upper[k]),
                    Tabulated::new(target[k], lower[k], upper[k]),
                )
            })
            .collect();
        ProductMap { shifts: vec![None; source.len()], axes }
    }

    /// The same with periodic axes where `periodic[k]`: θ_k by golden-section search on
    /// [−1/2, 1/2] (the cost is convex in θ), to 1e-10.
    pub fn with_periodic(mut self, periodic: &[bool]) -> ProductMap {
        for (k, (f, g)) in self.axes.iter().enumerate() {
            if !periodic[k] {
                continue;
            }
            let cost = |t: f64| shifted_cost(f, g, t, 4000);
            let r = 0.5 * (5f64.sqrt() - 1.0);
            let (mut a, mut b) = (-0.5, 0.5);
            let (mut c, mut d) = (b - r * (b - a), a + r * (b - a));
            let (mut fc, mut fd) = (cost(c), cost(d));
            while b - a > 1e-10 {
                if fc < fd {
                    (b, d, fd) = (d, c, fc);
                    c = b - r * (b - a);
                    fc = cost(c);
                } else {
                    (a, c, fc) = (c, d, fd);
                    d = a + r * (b - a);
                    fd = cost(d);
                }
            }
            self.shifts[k] = Some(0.5 * (a + b));
        }
        self
    }

    /// μ's density at `x`.
    pub fn source_density(&self, x: &[f64]) -> f64 {
        self.axes.iter().zip(x).map(|((f, _), &v)| f.density(v)).product()
    }

    /// ν's density at `y`.
    pub fn target_density(&self, y: &[f64]) -> f64 {
        self.axes.iter().zip(y).map(|((_, g), &v)| g.density(v)).product()
    }

    /// `T(x)` into `out`.
    pub fn map(&self, x: &[f64], out: &mut [f64]) {
        for (k, (f, g)) in self.axes.iter().enumerate() {
            out[k] = match self.shifts[k] {
                None => g.quantile(f.cdf(x[k])),
                Some(theta) => periodic_quantile(g, f.cdf(x[k]) - theta),
            };
        }
    }

    /// `W₂² = Σ_k ∫₀¹ (Ĝ_k⁻¹(u − θ_k) − F_k⁻¹(u))² du` (θ_k = 0 on box axes; midpoint
    /// rule in u on 20 000 points).
    pub fn w2_squared(&self) -> f64 {
        self.axes
            .iter()
            .zip(&self.shifts)
            .map(|((f, g), theta)| shifted_cost(f, g, theta.unwrap_or(0.0), 20_000))
            .sum()
    }
}

/// The uniform disk `|x − c| < r_disk` mapped onto the uniform annulus
/// `r_in < |y − c| < r_out` (2D): radial, `R(r) = √(r_in² + (r_out² − r_in²) r²/r_disk²)`;
/// the map tears at the centre (every direction leaves for the inner circle).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskToAnnulus {
    pub centre: [f64; 2],
    pub r_disk: f64,
    pub r_in: f64,
    pub r_out: f64,
}

impl DiskToAnnulus {
    fn radius(&self, x: &[f64]) -> (f64, [f64; 2]) {
        let d = [x[0] - self.centre[0], x[1] - self.centre[1]];
        ((d[0] * d[0] + d[1] * d[1]).sqrt(), d)
    }

    /// The disk's uniform density (unit mass).
    pub fn source_density(&self, x: &[f64]) -> f64 {
        let (r, _) = self.radius(x);
        if r < self.r_disk {
            1.0 / (PI * self.r_disk * self.r_disk)
        } else {
            0.0
        }
    }

    /// The annulus' uniform density (unit mass).
    pub fn target_density(&self, y: &[f64]) -> f64 {
        let (r, _) = self.radius(y);
        if r > self.r_in && r < self.r_out {
            1.0 / (PI * (self.r_out * self.r_out - self.r_in * self.r_in))
        } else {
            0.0
        }
    }

    /// `T(x) = c + R(|x − c|) (x − c)/|x − c|` (the centre itself maps to c + r_in e₁).
    pub fn map(&self, x: &[f64], out: &mut [f64]) {
        let (r, d) = self.radius(x);
        let big = self.r_out * self.r_out - self.r_in * self.r_in;
        let radius = (self.r_in * self.r_in + big * (r / self.r_disk).powi(2)).sqrt();
        let e = if r > 0.0 { [d[0] / r, d[1] / r] } else { [1.0, 0.0] };
        out[0] = self.centre[0] + radius * e[0];
        out[1] = self.centre[1] + radius * e[1];
    }

    /// `W₂² = ∫ (R(r) − r)² dμ = ∫₀¹ (R(r_disk √s) − r_disk √s)² ds` (s = r²/r_disk²).
    pub fn w2_squared(&self) -> f64 {
        const M: usize = 200_000;
        let big = self.r_out * self.r_out - self.r_in * self.r_in;
        (0..M)
            .map(|i| {
                let s = (i as f64 + 0.5) / M as f64;
                let r = self.r_disk * s.sqrt();
                ((self.r_in * self.r_in + big * s).sqrt() - r).powi(2)
            })
            .sum::<f64>()
            / M as f64
    }
}

#[cfg(test)]
mod product_tests {
    use super::*;

    /// The product map pushes each axis' distribution onto the target's:
    /// `G(T(x)) = F(x)`, and between two Gaussian profiles it is the affine map
    /// `m₂ + (s₂/s₁)(x − m₁)` in the bulk (truncation moves it by far less than 1e-6 there).
    #[test]
    fn product_map_is_the_monotone_rearrangement() {
        let g1 = Profile::Gaussian { mean: 0.4, sd: 0.05 };
        let g2 = Profile::Gaussian { mean: 0.6, sd: 0.04 };
        let m =
            ProductMap::new(&[g1, Profile::Sine], &[g2, Profile::Uniform], &[0.0; 2], &[1.0; 2]);
        let mut y = [0.0; 2];
        for x in [0.3, 0.35, 0.4, 0.45, 0.5] {
            m.map(&[x, x], &mut y);
            assert!((y[0] - (0.6 + 0.8 * (x - 0.4))).abs() < 1e-7, "{x}: {y:?}");
            assert!((m.axes[1].1.cdf(y[1]) - m.axes[1].0.cdf(x)).abs() < 1e-10);
            // Sine → uniform: T(x) = (1 − cos πx)/2.
            assert!((y[1] - 0.5 * (1.0 - (PI * x).cos())).abs() < 1e-9, "{y:?}");
        }
        // W₂² of the Gaussian axis: (m₁ − m₂)² + (s₁ − s₂)².
        let w2 = m.w2_squared();
        let sine: f64 = {
            let s = ProductMap::new(&[Profile::Sine], &[Profile::Uniform], &[0.0], &[1.0]);
            s.w2_squared()
        };
        assert!((w2 - sine - (0.04 + 1e-4)).abs() < 1e-6, "{w2} {sine}");
    }

    /// On a circle the optimal quantile shift is non-zero when the mean displacement is
    /// large, and the shifted map is cheaper than the box map; with no displacement the
    /// shift is zero.
    #[test]
    fn periodic_product_map_shifts_the_quantile() {
        let f = Profile::Gaussian { mean: 0.3, sd: 0.1 };
        let g = Profile::Gaussian { mean: 0.7, sd: 0.1 };
        let boxed = ProductMap::new(&[f], &[g], &[0.0], &[1.0]);
        let torus = boxed.clone().with_periodic(&[true]);
        let theta = torus.shifts[0].unwrap();
        assert!(theta.abs() > 1e-3, "θ = {theta}");
        assert!(torus.w2_squared() < boxed.w2_squared() - 1e-3);
        // Half-way round, mass goes both ways equally: cost ≤ (0.4)², shift 1/2 symmetric.
        let same = ProductMap::new(&[f], &[f], &[0.0], &[1.0]).with_periodic(&[true]);
        assert!(same.shifts[0].unwrap().abs() < 1e-6 && same.w2_squared() < 1e-10);
    }

    /// The disk → annulus map sends the disk's area fraction r²/r_disk² to the annulus'
    /// area fraction, and its W₂² matches a direct midpoint quadrature over the disk.
    #[test]
    fn disk_to_annulus_map_preserves_area_fractions() {
        let m = DiskToAnnulus { centre: [0.5, 0.5], r_disk: 0.3, r_in: 0.15, r_out: 0.4 };
        let mut y = [0.0; 2];
        for r in [0.05, 0.1, 0.2, 0.29] {
            m.map(&[0.5 + r, 0.5], &mut y);
            let ry = y[0] - 0.5;
            let fraction = (ry * ry - 0.15 * 0.15) / (0.4 * 0.4 - 0.15 * 0.15);
            assert!((fraction - (r / 0.3f64).powi(2)).abs() < 1e-12);
        }
        let n = 2000;
        let (mut sum, mut mass) = (0.0, 0.0);
        for i in 0..n {
            for j in 0..n {
                let x = [(i as f64 + 0.5) / n as f64, (j as f64 + 0.5) / n as f64];
                let rho = m.source_density(&x);
                if rho > 0.0 {
                    m.map(&x, &mut y);
                    sum += rho * ((y[0] - x[0]).powi(2) + (y[1] - x[1]).powi(2));
                    mass += rho;
                }
            }
        }
        let quadrature = sum / mass;
        assert!((quadrature - m.w2_squared()).abs() < 2e-4 * m.w2_squared(), "{quadrature}");
    }
}
