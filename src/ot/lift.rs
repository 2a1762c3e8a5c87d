//! Moment-matched Gaussian lift of a density pair, for the Monge–Ampère solvers (Newton, the
//! parabolic flow) on densities with deep tails.
//!
//! `μ̃ = (μ + ε L_μ)/(1 + ε)`, `ν̃ = (ν + ε L_ν)/(1 + ε)`, where `L_ρ` is the Gaussian with
//! ρ's mean and `k²` times ρ's covariance (unit mass on the grid; on periodic axes the
//! circular mean, the covariance of the coordinates unwrapped around it, and the Gaussian
//! wrapped once in each direction). The affine map between the two lifts is the affine map
//! between Gaussians with μ's and ν's moments (`A Σ_μ A = Σ_ν` is invariant under scaling both
//! covariances by `k²`), so for a Gaussian pair one map pushes both parts of μ̃ onto ν̃ and the
//! lifted problem has the pair's map; in general the lift moves the map by O(ε).
//!
//! Why: the Monge–Ampère equation in log form weighs every cell alike, so tails that fall to
//! 1e-30 of the peak (the reference Gaussian pair) ask for a map whose Jacobian spans tens of
//! decades where μ carries no mass: Newton's discrete solution there is poor (μ-weighted map
//! error 1.1e-2 at 128²) and its damped phase long (31 steps, 25 s). Lifted, both densities are
//! bounded below by ~ε times a broad Gaussian whose ratio to the other lift varies slowly.
//! Measured on the reference pair at 128² (Newton from zero, direct steps, tolerance 1e-8):
//! ε = 1e-4, k = 3: 20 steps, map L2 6.8e-6, W₂² −3.8e-5 relative; a constant floor
//! `max(ρ, 1e-6 max ρ)` instead gives an equally accurate discrete solution but no step
//! longer than θ = 1/256 from zero (fronts where one density meets its floor before the
//! other), 315 steps with ε-continuation.

use super::problem::Problem;
use crate::error::{Error, Result};
use crate::field::{ScalarField, Term};
use crate::grid::Grid;
use rayon::prelude::*;

/// Why Newton and the parabolic flow do not solve `problem`, or `None` when they do: pairs
/// whose densities are bounded below by [`super::MIN_CONTRAST`] times their maximum are
/// solved as they are; others through the [`GaussianLift`], which needs
/// - no zero regions (a vanishing density has a map with kinks or tears where its support
///   ends: disjoint squares, images, a disk);
/// - box axes (on a torus the lifted tails meet and the map tears there);
/// - a target without separated modes or holes along any grid line (values below half the
///   smaller of the highest values on either side, among values above 1e-6 of the maximum:
///   the map of a target with two bumps splits mass and tears between them).
///
/// Resolution is not a condition: the reference pair converges from 12² (0.7 cells per
/// standard deviation) up.
pub fn unsuited(problem: &Problem) -> Option<String> {
    unsuited_with(problem, true)
}

/// [`unsuited`] for the sample-based parabolic flow ([`super::parabolic::Batches`]): without
/// the separated-modes test, which a kernel density estimate's tails fail by sampling noise
/// alone (isolated samples make bumps); its damped steps halve where a step would leave the
/// discretely convex set.
pub fn unsuited_for_samples(problem: &Problem) -> Option<String> {
    unsuited_with(problem, false)
}

fn unsuited_with(problem: &Problem, modes: bool) -> Option<String> {
    let contrast = problem.contrast();
    if contrast >= super::MIN_CONTRAST {
        return None;
    }
    let grid = problem.grid();
    for (what, rho) in [("source", problem.source()), ("target", problem.target())] {
        let zeros = rho.data().iter().filter(|&&v| v <= 0.0).count();
        if zeros > 0 {
            return Some(format!(
                "the {what} density vanishes on {zeros} of {} cells (zero regions)",
                grid.num_cells()
            ));
        }
    }
    if grid.axes().iter().any(|a| a.boundary.is_periodic()) {
        return Some(periodic_reason(contrast));
    }
    if modes {
        return separated_modes(problem.target());
    }
    None
}

/// A grid line along which `rho` dips below half the smaller of its highest values on either
/// side (counting only values above 1e-6 of the maximum), described in words.
pub(crate) fn separated_modes(rho: &ScalarField) -> Option<String> {
    let d = rho.grid().dim();
    let significant = 1e-6 * rho.max();
    for k in 0..d {
        for lane in rho.data().lanes(ndarray::Axis(k)) {
            if let Some((_, ratio)) = first_dip(lane.len(), |i| lane[i], [0.0; 2], significant) {
                // Storage axis k is grid axis d − 1 − k.
                return Some(modes_reason(d - 1 - k, ratio));
            }
        }
    }
    None
}

/// The reason [`unsuited`] gives for a low-contrast pair on a periodic grid.
pub(crate) fn periodic_reason(contrast: f64) -> String {
    format!("densities with near-zero regions (min/max {contrast:.1e}) on a periodic domain")
}

/// The reason [`unsuited`] gives for a dip along grid axis `axis` to `ratio` of the peaks
/// on either side.
pub(crate) fn modes_reason(axis: usize, ratio: f64) -> String {
    format!(
        "the target density has separated modes or holes (along axis {axis}, a value \
         {ratio:.1e} times the peaks on either side)"
    )
}

/// The first index `i` of a lane of `n` values `value(i)` where the lane dips below half the
/// smaller of its highest values on either side, counting only values above `significant`,
/// with that value's ratio to it; `beyond`: the highest values before and after the lane
/// (a line's other parts, 0 for a whole line).
pub(crate) fn first_dip(
    n: usize,
    value: impl Fn(usize) -> f64,
    beyond: [f64; 2],
    significant: f64,
) -> Option<(usize, f64)> {
    let mut suffix = vec![beyond[1]; n + 1];
    for i in (0..n).rev() {
        suffix[i] = suffix[i + 1].max(value(i));
    }
    let mut prefix = beyond[0];
    for i in 0..n {
        let around = prefix.min(suffix[i + 1]);
        if around > significant && value(i) < 0.5 * around {
            return Some((i, value(i) / around));
        }
        prefix = prefix.max(value(i));
    }
    None
}

/// The pair a Monge–Ampère solver (`method`) works on: `problem` itself when `lift` is `None`
/// or both densities are above [`super::MIN_CONTRAST`] of their maximum, else the lifted pair
/// (`Some`, with the lift applied) — or [`Error::UnsuitedMethod`] when [`unsuited`] says the
/// lifted equation is out of range.
pub(super) fn lifted_for(
    method: &'static str,
    lift: Option<GaussianLift>,
    problem: &Problem,
    unsuited: fn(&Problem) -> Option<String>,
) -> Result<Option<(GaussianLift, Problem)>> {
    let Some(lift) = lift.filter(|_| problem.contrast() < super::MIN_CONTRAST) else {
        return Ok(None);
    };
    if let Some(reason) = unsuited(problem) {
        return Err(Error::UnsuitedMethod {
            method,
            reason,
            suggestion: "the method bfm (or auto)",
        });
    }
    Ok(Some((lift, lift.apply(problem)?)))
}

/// Settings of the moment-matched Gaussian lift.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct GaussianLift {
    /// The mass fraction ε added to each (unit-mass) density.
    pub mass: f64,
    /// The width factor k: the lift's covariance is k² times the density's.
    pub width: f64,
}

impl Default for GaussianLift {
    /// ε = 1e-4, k = 3 (reference pair at 128², from zero: ε = 1e-3 moves W₂² by 2.9e-4
    /// through the box faces; ε = 1e-5 takes 30 steps instead of 20; k = 2 and k = 4 give
    /// 7.5× and 1.4× larger map errors).
    fn default() -> Self {
        GaussianLift { mass: 1e-4, width: 3.0 }
    }
}

impl GaussianLift {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.mass.is_finite() && self.mass > 0.0 && self.width.is_finite() && self.width > 0.0)
        {
            return Err(Error::invalid(format!(
                "the Gaussian lift needs a positive mass and width (got {} and {})",
                self.mass, self.width
            )));
        }
        Ok(())
    }

    /// The lifted problem `(μ̃, ν̃)`.
    pub fn apply(&self, problem: &Problem) -> Result<Problem> {
        self.validate()?;
        let grid = problem.grid();
        let centres = crate::grid::cell_centres(grid, 0..grid.num_cells());
        let sum = |t: &Term| crate::field::ordered_sum(grid.num_cells(), |r| r.map(t).sum());
        let lift = |rho: &ScalarField| -> Result<ScalarField> {
            let values = rho.data().as_slice().expect("contiguous");
            let l = self.gaussian_values(grid, values, &centres, &sum)?;
            ScalarField::from_vec(grid, self.plus(values, &l))
        };
        Problem::new(&lift(problem.source())?, &lift(problem.target())?)
    }

    /// The unit-mass Gaussian with `rho`'s mean and `k²` times its covariance.
    pub(crate) fn gaussian_like(&self, rho: &ScalarField) -> Result<ScalarField> {
        let grid = rho.grid();
        let values = rho.data().as_slice().expect("contiguous");
        let centres = crate::grid::cell_centres(grid, 0..grid.num_cells());
        let sum = |t: &Term| crate::field::ordered_sum(values.len(), |r| r.map(t).sum());
        ScalarField::from_vec(grid, self.gaussian_values(grid, values, &centres, &sum)?)
    }

    /// [`GaussianLift::gaussian_like`] on this process's cells of `grid`: `rho` the density
    /// there, `centres` their centres (`d` per cell), `sum` a term added over every process's
    /// cells in [`crate::field::ordered_sum`]'s order.
    pub(crate) fn gaussian_values(
        &self,
        grid: &Grid,
        rho: &[f64],
        centres: &[f64],
        sum: &dyn Fn(&Term) -> f64,
    ) -> Result<Vec<f64>> {
        let d = grid.dim();
        let vol = grid.cell_volume();
        let (mean, cov, period) = moments(grid, rho, centres, sum);
        let precision = (cov * (self.width * self.width)).try_inverse().ok_or_else(|| {
            Error::invalid("the Gaussian lift needs a density with a non-degenerate covariance")
        })?;
        // Periodic axes: the images at −1, 0, +1 periods.
        let images: Vec<[f64; 3]> = (0..3usize.pow(d as u32))
            .map(|code| {
                let mut shift = [0.0f64; 3];
                let mut c = code;
                for (a, s) in shift.iter_mut().enumerate().take(d) {
                    *s = (c % 3) as f64 - 1.0;
                    c /= 3;
                    if period[a] == 0.0 && *s != 0.0 {
                        *s = f64::NAN;
                    }
                }
                shift
            })
            .filter(|s| s[..d].iter().all(|v| v.is_finite()))
            .collect();
        let mut l: Vec<f64> = centres
            .par_chunks(d)
            .map(|x| {
                images
                    .iter()
                    .map(|shift| {
                        let mut r = [0.0f64; 3];
                        for a in 0..d {
                            r[a] = x[a] - mean[a] + shift[a] * period[a];
                        }
                        let q: f64 = (0..d)
                            .flat_map(|a| (0..d).map(move |b| (a, b)))
                            .map(|(a, b)| r[a] * precision[(a, b)] * r[b])
                            .sum();
                        (-0.5 * q).exp()
                    })
                    .sum()
            })
            .collect();
        let mass = sum(&|i| l[i]) * vol;
        if !(mass.is_finite() && mass > 0.0) {
            return Err(Error::invalid("the Gaussian lift underflowed on this grid"));
        }
        l.par_iter_mut().for_each(|v| *v /= mass);
        Ok(l)
    }

    /// `ρ + ε L` (the lifted density before normalisation) from `L` =
    /// [`GaussianLift::gaussian_values`] of `rho`, on this process's cells.
    pub(crate) fn plus(&self, rho: &[f64], l: &[f64]) -> Vec<f64> {
        rho.iter().zip(l).map(|(a, b)| a + self.mass * b).collect()
    }
}

/// The mean (circular on periodic axes), covariance (of the coordinates unwrapped around the
/// mean on periodic axes) and per-axis period (0 on box axes) of the density `rho` given on
/// this process's cells with their `centres`; `sum` adds a term over every process's cells.
fn moments(
    grid: &Grid,
    rho: &[f64],
    centres: &[f64],
    sum: &dyn Fn(&Term) -> f64,
) -> ([f64; 3], nalgebra::DMatrix<f64>, [f64; 3]) {
    let d = grid.dim();
    let x = |a: usize, i: usize| centres[i * d + a];
    let total = sum(&|i| rho[i]);
    let mut mean = [0.0f64; 3];
    let mut period = [0.0f64; 3];
    for a in 0..d {
        let axis = grid.axis(a);
        if axis.boundary.is_periodic() {
            let length = axis.upper - axis.lower;
            let angle = |i: usize| std::f64::consts::TAU * (x(a, i) - axis.lower) / length;
            let s = sum(&|i| rho[i] * angle(i).sin());
            let c = sum(&|i| rho[i] * angle(i).cos());
            let angle = s.atan2(c).rem_euclid(std::f64::consts::TAU);
            mean[a] = axis.lower + angle / std::f64::consts::TAU * length;
            period[a] = length;
        } else {
            mean[a] = sum(&|i| rho[i] * x(a, i)) / total;
        }
    }
    let offset = |a: usize, x: f64| -> f64 {
        let r = x - mean[a];
        if period[a] > 0.0 {
            r - period[a] * (r / period[a]).round()
        } else {
            r
        }
    };
    let mut cov = nalgebra::DMatrix::<f64>::zeros(d, d);
    for a in 0..d {
        for b in 0..=a {
            cov[(a, b)] = sum(&|i| rho[i] * offset(a, x(a, i)) * offset(b, x(b, i)) / total);
            cov[(b, a)] = cov[(a, b)];
        }
    }
    (mean, cov, period)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{BoundaryKind, Grid};

    /// The lift of a Gaussian has the Gaussian's mean and k² times its covariance (to the
    /// grid's quadrature error), unit mass, and the lifted densities are bounded below.
    #[test]
    fn the_lift_matches_the_moments() {
        let grid = Grid::unit(2, 128, BoundaryKind::Neumann).unwrap();
        let (m, s) = ([0.4, 0.55], [0.05, 0.08]);
        let g = ScalarField::from_fn(&grid, |x| {
            (-(x[0] - m[0]).powi(2) / (2.0 * s[0] * s[0])
                - (x[1] - m[1]).powi(2) / (2.0 * s[1] * s[1]))
                .exp()
        });
        let lift = GaussianLift { mass: 1e-4, width: 1.0 };
        let l = lift.gaussian_like(&g).unwrap();
        let vol = grid.cell_volume();
        assert!((l.data().sum() * vol - 1.0).abs() < 1e-12);
        // width 1: the lift is the density itself, normalised.
        let total = g.data().sum() * vol;
        let diff = l.data().iter().zip(g.data().iter()).map(|(a, b)| (a - b / total).abs());
        assert!(diff.fold(0.0, f64::max) < 1e-6 * l.max(), "lift differs from the Gaussian");
        // Lifted, the far corner (12 and 7 standard deviations out) rises by 30 decades.
        let problem = Problem::new(&g, &g).unwrap();
        let lifted = GaussianLift::default().apply(&problem).unwrap();
        assert!(lifted.contrast() > 1e20 * problem.contrast(), "{}", lifted.contrast());
    }

    /// On a torus the lift is centred at the circular mean: a Gaussian centred near the
    /// seam gets a lift that peaks at the same cell.
    #[test]
    fn periodic_axes_use_the_circular_mean() {
        let grid = Grid::unit(2, 64, BoundaryKind::Periodic).unwrap();
        let wrap = |r: f64| r - r.round();
        let g = ScalarField::from_fn(&grid, |x| {
            (-(wrap(x[0] - 0.02).powi(2) + wrap(x[1] - 0.5).powi(2)) / (2.0 * 0.06f64.powi(2)))
                .exp()
        });
        let l = GaussianLift { mass: 1e-4, width: 1.0 }.gaussian_like(&g).unwrap();
        let argmax = |f: &ScalarField| {
            f.data().indexed_iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap()
        };
        assert_eq!(argmax(&l), argmax(&g));
    }
}
