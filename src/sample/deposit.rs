//! Empirical measures on a grid: samples deposited as a density, so that every OT method
//! learns a plug-in map from samples.
//!
//! * [`cloud_in_cell`]: each sample's mass `1/n` shared between the 2^d nearest cell centres
//!   with multilinear weights (on a box axis the share of a centre beyond the last one stays
//!   in the boundary cell; periodic axes wrap). Mass exactly 1 (to round-off), values ≥ 0, an
//!   O(h²) smoothing of the empirical measure; cells far from every sample stay 0.
//! * [`kde`]: the cloud-in-cell density convolved with a Gaussian of standard deviation b,
//!   reflected at box faces and wrapped on periodic axes: the heat semigroup `e^{tΔ}`,
//!   `t = b²/2`, with Neumann (box) or periodic axes, applied spectrally (DCT/FFT with the
//!   continuous symbol, [`crate::spectral::PoissonSolver::heat`]). Mass 1 exactly (the
//!   constant mode is untouched) and no boundary bias: a density that is flat up to a face
//!   stays flat there (a zero-padded kernel would halve it at the face, an O(b) error).
//!   Spectral round-off below zero far from every sample is set to 0 (then rescaled to unit
//!   mass). Bias O(b²) + O(h²), variance O(1/(n b^d)).
//!
//! The bandwidth rule ([`scott_bandwidth`]): Scott's `b = σ n^{−1/(d+4)}`, σ the samples'
//! standard deviation pooled over the axes (the root mean of the per-axis variances), and at
//! least one cell width (the grid cannot carry a narrower kernel).

use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::{BoundaryKind, Grid};
use crate::ot::pushforward::CellDeposit;
use crate::spectral::{PoissonSolver, Symbol};
use ndarray::{ArrayView2, Axis};

/// Checks that `points` fit `grid`: one column per axis, finite, inside the box on box axes.
fn check_points(points: ArrayView2<'_, f64>, grid: &Grid) -> Result<()> {
    let d = grid.dim();
    if points.ncols() != d {
        return Err(Error::invalid(format!(
            "samples for a {d}D grid need {d} columns, got {}",
            points.ncols()
        )));
    }
    if points.nrows() == 0 {
        return Err(Error::invalid("no samples"));
    }
    for (i, row) in points.axis_iter(Axis(0)).enumerate() {
        for (a, &v) in row.iter().enumerate() {
            let ax = grid.axis(a);
            if !v.is_finite() {
                return Err(Error::invalid(format!("sample {i}: coordinate {a} is {v}")));
            }
            if !ax.boundary.is_periodic() && (v < ax.lower || v > ax.upper) {
                return Err(Error::invalid(format!(
                    "sample {i}: coordinate {a} = {v} is outside the grid's [{}, {}]",
                    ax.lower, ax.upper
                )));
            }
        }
    }
    Ok(())
}

/// The cloud-in-cell density of the samples (rows of `points`) on `grid`: unit mass.
pub fn cloud_in_cell(points: ArrayView2<'_, f64>, grid: &Grid) -> Result<ScalarField> {
    check_points(points, grid)?;
    let d = grid.dim();
    let mut values = vec![0.0; grid.num_cells()];
    let weight = 1.0 / (points.nrows() as f64 * grid.cell_volume());
    let cells = CellDeposit::new(grid);
    // (Serial: the same sums in every run.)
    let mut y = [0.0f64; 3];
    for row in points.axis_iter(Axis(0)) {
        for (a, ax) in grid.axes().iter().enumerate() {
            // Periodic coordinates wrapped into the period.
            y[a] = if ax.boundary.is_periodic() {
                ax.lower + (row[a] - ax.lower).rem_euclid(ax.length())
            } else {
                row[a]
            };
        }
        cells.add(values.as_mut_slice(), &y[..d], weight);
    }
    ScalarField::from_vec(grid, values)
}

/// Scott's bandwidth for the samples (see the module documentation), at least `h_max`.
pub fn scott_bandwidth(points: ArrayView2<'_, f64>, grid: &Grid) -> f64 {
    let n = points.nrows().max(1) as f64;
    let d = points.ncols().max(1);
    let pooled: f64 = (0..d)
        .map(|a| {
            let c = points.column(a);
            let mean = c.sum() / n;
            c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n
        })
        .sum::<f64>()
        / d as f64;
    (pooled.sqrt() * n.powf(-1.0 / (d as f64 + 4.0))).max(grid.max_spacing())
}

/// `rho` convolved with the Gaussian of standard deviation `b` reflected at box faces and
/// wrapped on periodic axes (the heat semigroup `e^{tΔ}`, `t = b²/2`, spectrally; the
/// integral is kept), values below zero from spectral round-off set to 0: what a
/// kernel density estimate of bandwidth `b` approximates, `E[kde] = K_b ∗ ρ`.
pub fn smooth(rho: &ScalarField, b: f64) -> Result<ScalarField> {
    if !(b.is_finite() && b >= 0.0) {
        return Err(Error::invalid(format!("smoothing width must be ≥ 0, got {b}")));
    }
    let grid = rho.grid();
    // Reflection at every box face, whatever the grid's boundary kind for its PDEs.
    let axes = grid
        .axes()
        .iter()
        .map(|a| {
            let mut a = a.clone();
            if a.boundary == BoundaryKind::Dirichlet {
                a.boundary = BoundaryKind::Neumann;
            }
            a
        })
        .collect();
    let mut heat = PoissonSolver::new(&Grid::new(axes)?, 0.0, Symbol::Continuous)?;
    let mut out = vec![0.0; grid.num_cells()];
    heat.heat(0.5 * b * b, rho.data().as_slice().expect("contiguous"), &mut out)?;
    out.iter_mut().for_each(|v| *v = v.max(0.0));
    ScalarField::from_vec(grid, out)
}

/// The Gaussian kernel density estimate of the samples on `grid` with bandwidth `b`
/// (`None`: [`scott_bandwidth`]); unit mass. Returns the density and the bandwidth used.
pub fn kde(
    points: ArrayView2<'_, f64>,
    grid: &Grid,
    bandwidth: Option<f64>,
) -> Result<(ScalarField, f64)> {
    let b = match bandwidth {
        Some(b) if !(b.is_finite() && b > 0.0) => {
            return Err(Error::invalid(format!("KDE bandwidth must be positive, got {b}")))
        }
        Some(b) => b,
        None => scott_bandwidth(points, grid),
    };
    let histogram = cloud_in_cell(points, grid)?;
    let mut rho = smooth(&histogram, b)?;
    let mass = rho.integral();
    let has_mass = mass > 0.0;
    if !has_mass {
        return Err(Error::invalid("the KDE has no mass on the grid"));
    }
    rho.data_mut().mapv_inplace(|v| v / mass);
    Ok((rho, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;
    use ndarray::Array2;

    fn gaussian_samples(n: usize, mean: [f64; 2], sd: f64, seed: u64) -> Array2<f64> {
        // Box–Muller on a fixed linear congruential stream.
        let mut state = seed;
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut p = Array2::zeros((n, 2));
        for i in 0..n {
            let (u, v) = (uniform(), uniform());
            let r = (-2.0 * u.ln()).sqrt();
            p[[i, 0]] = mean[0] + sd * r * (2.0 * std::f64::consts::PI * v).cos();
            p[[i, 1]] = mean[1] + sd * r * (2.0 * std::f64::consts::PI * v).sin();
        }
        p
    }

    /// Cloud in cell: unit mass to round-off and non-negative, on box (samples on the faces
    /// included) and torus; a sample at a cell centre fills that cell alone.
    #[test]
    fn cloud_in_cell_conserves_mass_and_stays_non_negative() {
        for kind in [BoundaryKind::Neumann, BoundaryKind::Periodic] {
            let g = Grid::unit(2, 16, kind).unwrap();
            let mut p = gaussian_samples(5000, [0.5, 0.5], 0.3, 3);
            p.mapv_inplace(|v| v.clamp(0.0, 1.0));
            p[[0, 0]] = 0.0;
            p[[1, 1]] = 1.0;
            let rho = cloud_in_cell(p.view(), &g).unwrap();
            assert!((rho.integral() - 1.0).abs() < 1e-13, "{kind:?}: {}", rho.integral());
            assert!(rho.min() >= 0.0);
        }
        let g = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let one = ndarray::array![[0.3125, 0.5625]]; // the centre of cell (2, 4)
        let rho = cloud_in_cell(one.view(), &g).unwrap();
        assert!((rho.data()[[4, 2]] * g.cell_volume() - 1.0).abs() < 1e-14);
        let bad = ndarray::array![[0.5, 1.5]];
        assert!(cloud_in_cell(bad.view(), &g).unwrap_err().to_string().contains("sample 0"));
        let bad = ndarray::array![[0.5, f64::NAN]];
        assert!(cloud_in_cell(bad.view(), &g).is_err());
        assert!(kde(one.view(), &g, Some(-1.0)).is_err());
    }

    /// The KDE of n Gaussian samples converges to the density in L1 as n grows (Scott's
    /// bandwidth: error ∝ n^{−2/(d+4)} = n^{−1/3} in 2D; measured 0.106 / 0.067 / 0.027 at
    /// n = 10³ / 10⁴ / 10⁵, rate 0.30 over the range, asserted ≥ 0.25), is
    /// positive and of unit mass; a wide bandwidth shows its O(b²) bias.
    #[test]
    fn kde_converges_to_the_density_as_samples_grow() {
        let g = Grid::unit(2, 64, BoundaryKind::Neumann).unwrap();
        let sd = 0.1;
        let exact = ScalarField::from_fn(&g, |x| {
            (-((x[0] - 0.5).powi(2) + (x[1] - 0.5).powi(2)) / (2.0 * sd * sd)).exp()
                / (2.0 * std::f64::consts::PI * sd * sd)
        });
        let l1 = |rho: &ScalarField| -> f64 {
            rho.data().iter().zip(exact.data().iter()).map(|(a, b)| (a - b).abs()).sum::<f64>()
                * g.cell_volume()
        };
        let (mut ns, mut errors) = (vec![], vec![]);
        for n in [1_000usize, 10_000, 100_000] {
            let p = gaussian_samples(n, [0.5, 0.5], sd, 17);
            let (rho, b) = kde(p.view(), &g, None).unwrap();
            assert!((rho.integral() - 1.0).abs() < 1e-12 && rho.min() >= 0.0);
            let scott = (sd * (n as f64).powf(-1.0 / 6.0)).max(g.max_spacing());
            assert!((b - scott).abs() < 0.02 * b, "bandwidth {b} against {scott}");
            ns.push(n as f64);
            errors.push(l1(&rho));
        }
        let rates: Vec<f64> =
            (1..3).map(|i| (errors[i - 1] / errors[i]).ln() / (ns[i] / ns[i - 1]).ln()).collect();
        eprintln!("KDE L1 errors {errors:?} at n = 1e3, 1e4, 1e5; rates {rates:?}");
        let overall = (errors[0] / errors[2]).ln() / (ns[2] / ns[0]).ln();
        assert!(
            errors[1] < errors[0] && errors[2] < errors[1] && overall >= 0.25,
            "{errors:?}, rates {rates:?}, overall {overall}"
        );
        // No boundary bias: uniform samples give a flat estimate up to the faces (within
        // the sampling noise; a zero-padded kernel would halve it at the faces).
        let uniform = crate::sample::draw(&ScalarField::from_fn(&g, |_| 1.0), 200_000, 3).unwrap();
        let (flat, _) = kde(uniform.view(), &g, Some(0.05)).unwrap();
        let (lo, hi) = (flat.min(), flat.max());
        assert!(lo > 0.9 && hi < 1.1, "uniform KDE between {lo} and {hi}");
        // Bias: a wide kernel's error on many samples stays near the smoothing's b²-effect.
        let p = gaussian_samples(100_000, [0.5, 0.5], sd, 17);
        let (wide, _) = kde(p.view(), &g, Some(0.05)).unwrap();
        assert!(l1(&wide) > 2.0 * errors[2], "wide {} against {}", l1(&wide), errors[2]);
    }
}
