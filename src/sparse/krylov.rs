//! Matrix-free BiCGSTAB whose operator, preconditioner and inner products are supplied by the
//! caller ([`KrylovOps`]), so that one process or the ranks of a decomposed grid take the
//! same steps to the bit (each rank's inner products add the whole grid's terms in one fixed
//! order, see [`crate::distributed::slab_dot`]).
//!
//! Right-preconditioned BiCGSTAB (van der Vorst 1992): for `A x = b` with `M ≈ A⁻¹`,
//! `p = r + β(p − ω v)`, `v = A M p`, `α = ρ/(r̂, v)`, `s = r − α v`, `t = A M s`,
//! `ω = (t, s)/(t, t)`, `x += α M p + ω M s`, `r = s − ω t`, from `x = 0`. It stops once
//! `‖r‖ ≤ tol ‖b‖` by the recurrence, then checks the true residual `‖b − A x‖ ≤ 10 tol ‖b‖`.

use super::solver::{true_residual_report, Converged, SolveReport};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// The operations of a matrix-free Krylov solve on this process's unknowns.
pub trait KrylovOps {
    /// `y = A x`.
    fn apply(&mut self, x: &[f64], y: &mut [f64]) -> Result<()>;
    /// `z = M r`.
    fn precondition(&mut self, r: &[f64], z: &mut [f64]) -> Result<()>;
    /// `Σ a·b` over every process's unknowns, in a fixed order.
    fn dot(&self, a: &[f64], b: &[f64]) -> f64;
}

/// Solves `A x = b` by right-preconditioned BiCGSTAB from `x = 0` (`x` is overwritten) with
/// relative tolerance `tol` in at most `max_iterations` iterations. Errors: no convergence,
/// breakdown (`ρ = 0` or `(r̂, v) = 0`), or a true residual above `10 tol`.
pub fn bicgstab(
    ops: &mut impl KrylovOps,
    b: &[f64],
    x: &mut [f64],
    tol: f64,
    max_iterations: usize,
) -> Result<SolveReport> {
    let n = b.len();
    let name = "bicgstab";
    x.iter_mut().for_each(|v| *v = 0.0);
    let b_norm = ops.dot(b, b).sqrt();
    if b_norm == 0.0 {
        return Ok(SolveReport {
            iterations: 0,
            residual: 0.0,
            reason: Converged::RelativeTolerance,
        });
    }
    if !b_norm.is_finite() {
        return Err(Error::Numerical(format!("{name}: the right-hand side is not finite")));
    }
    let mut r = b.to_vec();
    let r_hat = b.to_vec();
    let (mut p, mut v) = (vec![0.0; n], vec![0.0; n]);
    let (mut p_hat, mut s_hat, mut t) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (mut rho, mut alpha, mut omega) = (1.0f64, 1.0f64, 1.0f64);
    let breakdown = |what: &str, k: usize| {
        Err(Error::Numerical(format!("{name}: breakdown ({what}) at iteration {k}")))
    };
    let mut iterations = max_iterations;
    for k in 1..=max_iterations {
        let rho_new = ops.dot(&r_hat, &r);
        if rho_new == 0.0 || !rho_new.is_finite() {
            return breakdown("(r̂, r) = 0", k);
        }
        let beta = (rho_new / rho) * (alpha / omega);
        p.par_iter_mut()
            .zip(r.par_iter().zip(v.par_iter()))
            .for_each(|(p, (r, v))| *p = r + beta * (*p - omega * v));
        ops.precondition(&p, &mut p_hat)?;
        ops.apply(&p_hat, &mut v)?;
        let rv = ops.dot(&r_hat, &v);
        if rv == 0.0 || !rv.is_finite() {
            return breakdown("(r̂, A M p) = 0", k);
        }
        alpha = rho_new / rv;
        // s overwrites r.
        r.par_iter_mut().zip(v.par_iter()).for_each(|(r, v)| *r -= alpha * v);
        if ops.dot(&r, &r).sqrt() <= tol * b_norm {
            x.par_iter_mut().zip(p_hat.par_iter()).for_each(|(x, p)| *x += alpha * p);
            iterations = k;
            break;
        }
        ops.precondition(&r, &mut s_hat)?;
        ops.apply(&s_hat, &mut t)?;
        let tt = ops.dot(&t, &t);
        if tt == 0.0 || !tt.is_finite() {
            return breakdown("A M s = 0", k);
        }
        omega = ops.dot(&t, &r) / tt;
        x.par_iter_mut()
            .zip(p_hat.par_iter().zip(s_hat.par_iter()))
            .for_each(|(x, (p, s))| *x += alpha * p + omega * s);
        r.par_iter_mut().zip(t.par_iter()).for_each(|(r, t)| *r -= omega * t);
        let r_norm = ops.dot(&r, &r).sqrt();
        if r_norm <= tol * b_norm {
            iterations = k;
            break;
        }
        if omega == 0.0 {
            return breakdown("ω = 0", k);
        }
        if k == max_iterations {
            return Err(Error::NotConverged {
                method: name.to_string(),
                iterations: k,
                residual: r_norm / b_norm,
                reason: format!("relative tolerance {tol:.1e}"),
            });
        }
        rho = rho_new;
    }
    // The recurrence's residual can drift from the true one; insist on the true residual.
    ops.apply(x, &mut t)?;
    t.par_iter_mut().zip(b.par_iter()).for_each(|(t, b)| *t = b - *t);
    true_residual_report(name, ops.dot(&t, &t).sqrt() / b_norm, iterations, tol)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dense nonsymmetric matrix with a Jacobi preconditioner.
    struct Dense {
        a: Vec<Vec<f64>>,
    }

    impl KrylovOps for Dense {
        fn apply(&mut self, x: &[f64], y: &mut [f64]) -> Result<()> {
            for (row, y) in self.a.iter().zip(y.iter_mut()) {
                *y = row.iter().zip(x).map(|(a, x)| a * x).sum();
            }
            Ok(())
        }
        fn precondition(&mut self, r: &[f64], z: &mut [f64]) -> Result<()> {
            for (i, (z, r)) in z.iter_mut().zip(r).enumerate() {
                *z = r / self.a[i][i];
            }
            Ok(())
        }
        fn dot(&self, a: &[f64], b: &[f64]) -> f64 {
            a.iter().zip(b).map(|(a, b)| a * b).sum()
        }
    }

    #[test]
    fn solves_a_nonsymmetric_system_to_its_tolerance() {
        let n = 40;
        // Convection–diffusion in 1D: diagonally dominant, nonsymmetric.
        let a: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| match i as i64 - j as i64 {
                        0 => 2.5 + 0.01 * i as f64,
                        1 => -1.3,
                        -1 => -0.7,
                        _ => 0.0,
                    })
                    .collect()
            })
            .collect();
        let exact: Vec<f64> = (0..n).map(|i| (0.3 * i as f64).sin()).collect();
        let mut ops = Dense { a };
        let mut b = vec![0.0; n];
        ops.apply(&exact, &mut b).unwrap();
        let mut x = vec![1.0; n];
        let report = bicgstab(&mut ops, &b, &mut x, 1e-10, 200).unwrap();
        assert!(report.residual <= 1e-9, "{report:?}");
        let err = x.iter().zip(&exact).map(|(x, e)| (x - e).abs()).fold(0.0, f64::max);
        assert!(err < 1e-8, "error {err}");
        assert!(report.iterations < n, "{report:?}");
        // Too few iterations: an error, not a silent answer.
        assert!(bicgstab(&mut ops, &b, &mut x, 1e-14, 2).is_err());
    }
}
