//! The Brenier map between Gaussians (quadratic cost), in closed form.
//!
//! For μ = N(m₁, Σ₁) and ν = N(m₂, Σ₂):
//!
//! `T(x) = m₂ + A (x − m₁)`, `A = Σ₁^{−1/2} (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2} Σ₁^{−1/2}`
//! (symmetric positive definite, so T = ∇φ with φ(x) = m₂·x + ½ (x − m₁)ᵀA(x − m₁) convex),
//!
//! `W₂² = |m₁ − m₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})`.
//!
//! The same affine map is optimal between uniform measures on the matching ellipsoids.

use crate::error::{Error, Result};
use nalgebra::{DMatrix, DVector};

/// A Gaussian N(mean, covariance) in 2 or 3 dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub mean: DVector<f64>,
    pub covariance: DMatrix<f64>,
}

/// The affine Brenier map `T(x) = m₂ + A (x − m₁)` between two Gaussians.
#[derive(Clone, Debug)]
pub struct GaussianMap {
    pub source: Gaussian,
    pub target: Gaussian,
    /// The symmetric positive definite matrix A.
    pub matrix: DMatrix<f64>,
}

/// Symmetric square root of a symmetric positive semi-definite matrix.
fn sqrt_spd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let eig = m.clone().symmetric_eigen();
    let sqrt_vals = eig.eigenvalues.map(|v| v.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&sqrt_vals) * eig.eigenvectors.transpose()
}

impl Gaussian {
    /// Checks and builds N(mean, covariance): matching sizes, finite, symmetric positive definite.
    pub fn new(mean: Vec<f64>, covariance: Vec<Vec<f64>>) -> Result<Gaussian> {
        let d = mean.len();
        if covariance.len() != d || covariance.iter().any(|r| r.len() != d) {
            return Err(Error::invalid(format!("Gaussian: covariance must be {d}x{d}")));
        }
        let cov = DMatrix::from_fn(d, d, |i, j| covariance[i][j]);
        if mean.iter().chain(cov.iter()).any(|v| !v.is_finite()) {
            return Err(Error::invalid("Gaussian: mean and covariance must be finite"));
        }
        if (&cov - cov.transpose()).abs().max() > 1e-12 * cov.abs().max() {
            return Err(Error::invalid("Gaussian: covariance must be symmetric"));
        }
        let min_eig = cov.clone().symmetric_eigen().eigenvalues.min();
        if min_eig <= 0.0 {
            return Err(Error::invalid(format!(
                "Gaussian: covariance must be positive definite (smallest eigenvalue {min_eig:e})"
            )));
        }
        Ok(Gaussian { mean: DVector::from_vec(mean), covariance: cov })
    }

    /// Density at `p`.
    pub fn density(&self, p: &[f64]) -> f64 {
        let d = self.mean.len();
        let x = DVector::from_column_slice(&p[..d]) - &self.mean;
        let inv = self.covariance.clone().try_inverse().expect("positive definite");
        let q = (x.transpose() * inv * &x)[(0, 0)];
        (-0.5 * q).exp()
            / ((2.0 * std::f64::consts::PI).powi(d as i32) * self.covariance.determinant()).sqrt()
    }
}

impl GaussianMap {
    /// The Brenier map from `source` to `target`.
    pub fn new(source: Gaussian, target: Gaussian) -> Result<GaussianMap> {
        if source.mean.len() != target.mean.len() {
            return Err(Error::invalid("Gaussian map between different dimensions"));
        }
        let s1h = sqrt_spd(&source.covariance);
        let s1h_inv =
            s1h.clone().try_inverse().ok_or_else(|| Error::invalid("singular covariance"))?;
        let middle = sqrt_spd(&(&s1h * &target.covariance * &s1h));
        let a = &s1h_inv * middle * &s1h_inv;
        let matrix = (&a + a.transpose()) * 0.5;
        Ok(GaussianMap { source, target, matrix })
    }

    /// `T(x)` into `out`.
    pub fn apply(&self, x: &[f64], out: &mut [f64]) {
        let d = self.matrix.nrows();
        let dx = DVector::from_column_slice(&x[..d]) - &self.source.mean;
        let t = &self.target.mean + &self.matrix * dx;
        out[..d].copy_from_slice(t.as_slice());
    }

    /// The Brenier potential `φ(x) = m₂·x + ½ (x − m₁)ᵀ A (x − m₁)` (T = ∇φ).
    pub fn potential(&self, x: &[f64]) -> f64 {
        let d = self.matrix.nrows();
        let xv = DVector::from_column_slice(&x[..d]);
        let dx = &xv - &self.source.mean;
        self.target.mean.dot(&xv) + 0.5 * (dx.transpose() * &self.matrix * &dx)[(0, 0)]
    }

    /// `W₂²(μ, ν)`.
    pub fn w2_squared(&self) -> f64 {
        let s1h = sqrt_spd(&self.source.covariance);
        let cross = sqrt_spd(&(&s1h * &self.target.covariance * &s1h));
        (&self.source.mean - &self.target.mean).norm_squared()
            + (&self.source.covariance + &self.target.covariance - cross * 2.0).trace()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Gaussian, Gaussian) {
        // The reference problem's pair, with a full (rotated) target covariance.
        let s = Gaussian::new(vec![0.4, 0.45], vec![vec![0.0064, 0.0], vec![0.0, 0.0064]]).unwrap();
        let t =
            Gaussian::new(vec![0.6, 0.55], vec![vec![0.0036, 0.0012], vec![0.0012, 0.01]]).unwrap();
        (s, t)
    }

    /// A Σ₁ A = Σ₂ (the push-forward of N(m₁, Σ₁) is N(m₂, Σ₂)) and A is symmetric positive definite.
    #[test]
    fn pushes_source_covariance_to_target() {
        for (s, t) in [
            pair(),
            (
                Gaussian::new(
                    vec![0.0, 1.0, -1.0],
                    vec![vec![2.0, 0.3, 0.1], vec![0.3, 1.0, -0.2], vec![0.1, -0.2, 0.5]],
                )
                .unwrap(),
                Gaussian::new(
                    vec![1.0, 0.0, 0.5],
                    vec![vec![0.7, -0.1, 0.0], vec![-0.1, 1.5, 0.4], vec![0.0, 0.4, 0.9]],
                )
                .unwrap(),
            ),
        ] {
            let map = GaussianMap::new(s.clone(), t.clone()).unwrap();
            let pushed = &map.matrix * &s.covariance * &map.matrix;
            assert!((pushed - &t.covariance).abs().max() < 1e-12);
            assert!((&map.matrix - map.matrix.transpose()).abs().max() < 1e-14);
            assert!(map.matrix.clone().symmetric_eigen().eigenvalues.min() > 0.0);
            let mut out = [0.0; 3];
            map.apply(s.mean.as_slice(), &mut out);
            assert!((DVector::from_column_slice(&out[..s.mean.len()]) - &t.mean).norm() < 1e-15);
            // T = ∇φ: centred differences of the potential.
            let x: Vec<f64> = s.mean.iter().map(|m| m + 0.1).collect();
            map.apply(&x, &mut out);
            for a in 0..x.len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[a] += 1e-5;
                xm[a] -= 1e-5;
                let g = (map.potential(&xp) - map.potential(&xm)) / 2e-5;
                assert!((g - out[a]).abs() < 1e-8);
            }
        }
    }

    /// W₂² agrees with the 1D formula per axis for commuting (diagonal) covariances, and
    /// with the value quoted for the reference problem (W₂²/2 = 0.0254 for its diagonal pair).
    #[test]
    fn w2_matches_closed_forms() {
        let s = Gaussian::new(vec![0.4, 0.45], vec![vec![0.0064, 0.0], vec![0.0, 0.0064]]).unwrap();
        let t = Gaussian::new(vec![0.6, 0.55], vec![vec![0.0036, 0.0], vec![0.0, 0.01]]).unwrap();
        let w2 = GaussianMap::new(s, t).unwrap().w2_squared();
        let diag =
            0.2f64.powi(2) + 0.1f64.powi(2) + (0.08f64 - 0.06).powi(2) + (0.08f64 - 0.10).powi(2);
        assert!((w2 - diag).abs() < 1e-15);
        assert!((w2 / 2.0 - 0.0254).abs() < 5e-5, "W2²/2 = {}", w2 / 2.0);
        // Identity map: W₂ = 0.
        let (s, _) = pair();
        assert!(GaussianMap::new(s.clone(), s).unwrap().w2_squared().abs() < 1e-15);
    }

    #[test]
    fn rejects_bad_covariances() {
        assert!(Gaussian::new(vec![0.0, 0.0], vec![vec![1.0, 2.0], vec![2.0, 1.0]])
            .unwrap_err()
            .to_string()
            .contains("positive definite"));
        assert!(Gaussian::new(vec![0.0, 0.0], vec![vec![1.0, 0.5], vec![0.0, 1.0]])
            .unwrap_err()
            .to_string()
            .contains("symmetric"));
        assert!(Gaussian::new(vec![0.0], vec![vec![1.0, 0.0]]).is_err());
        assert!(Gaussian::new(vec![f64::NAN, 0.0], vec![vec![1.0, 0.0], vec![0.0, 1.0]]).is_err());
    }

    #[test]
    fn density_integrates_to_one() {
        let (s, _) = pair();
        let g = crate::grid::Grid::unit(2, 256, crate::grid::BoundaryKind::Neumann).unwrap();
        let f = crate::field::ScalarField::from_fn(&g, |p| s.density(p));
        assert!((f.integral() - 1.0).abs() < 1e-6);
    }
}
