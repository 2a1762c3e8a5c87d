//! The θ-scheme for `∂ₜu = −A u + g(t)` on an assembled sparse operator A:
//!
//! `(I + θ Δt A) u^{n+1} = (I − (1−θ) Δt A) u^n + Δt [θ g^{n+1} + (1−θ) g^n]`,
//!
//! θ = 1 backward Euler (first order, L-stable), θ = ½ Crank–Nicolson (second order).
//! The left-hand matrix has A's pattern, so changing Δt refactorises with the symbolic
//! analysis reused, and a fixed Δt factorises once for the whole run.

use crate::error::{Error, Result};
use crate::sparse::{Direct, LinearSolver, RowMatrix};
use faer::sparse::SparseColMat;

/// Time discretisation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeScheme {
    /// θ = 1: first order, unconditionally stable and positivity-preserving for M-matrices.
    BackwardEuler,
    /// θ = ½: second order.
    CrankNicolson,
}

impl TimeScheme {
    /// The θ of the scheme.
    pub fn theta(self) -> f64 {
        match self {
            TimeScheme::BackwardEuler => 1.0,
            TimeScheme::CrankNicolson => 0.5,
        }
    }

    /// Order of accuracy in time.
    pub fn order(self) -> u32 {
        match self {
            TimeScheme::BackwardEuler => 1,
            TimeScheme::CrankNicolson => 2,
        }
    }
}

/// A θ-scheme stepper with its factorised left-hand side.
pub struct ThetaStepper {
    theta: f64,
    dt: f64,
    a: SparseColMat<usize, f64>,
    a_rows: RowMatrix,
    symmetric: bool,
    /// Positions of the diagonal entries in `a.val()`.
    diag: Vec<usize>,
    lhs: Direct,
    au: Vec<f64>,
    rhs: Vec<f64>,
    /// Number of numeric factorisations so far.
    pub factorisations: usize,
}

fn diagonal_positions(a: &SparseColMat<usize, f64>) -> Result<Vec<usize>> {
    let (cp, ri) = (a.symbolic().col_ptr(), a.symbolic().row_idx());
    (0..a.ncols())
        .map(|j| {
            (cp[j]..cp[j + 1])
                .find(|&k| ri[k] == j)
                .ok_or_else(|| Error::invalid("operator has no diagonal entry in some row"))
        })
        .collect()
}

impl ThetaStepper {
    /// Plans the stepper for `A` (`symmetric` selects Cholesky over LU) with step `dt`.
    pub fn new(
        a: &SparseColMat<usize, f64>,
        symmetric: bool,
        theta: f64,
        dt: f64,
    ) -> Result<ThetaStepper> {
        if !(dt > 0.0 && dt.is_finite()) {
            return Err(Error::invalid(format!("time step must be positive, got {dt}")));
        }
        let diag = diagonal_positions(a)?;
        let lhs = Direct::new(&Self::lhs_matrix(a, &diag, theta, dt), symmetric)?;
        let n = a.nrows();
        Ok(ThetaStepper {
            theta,
            dt,
            a: a.clone(),
            a_rows: RowMatrix::new(a),
            symmetric,
            diag,
            lhs,
            au: vec![0.0; n],
            rhs: vec![0.0; n],
            factorisations: 1,
        })
    }

    fn lhs_matrix(
        a: &SparseColMat<usize, f64>,
        diag: &[usize],
        theta: f64,
        dt: f64,
    ) -> SparseColMat<usize, f64> {
        let mut m = a.clone();
        let vals = m.val_mut();
        vals.iter_mut().for_each(|v| *v *= theta * dt);
        for &k in diag {
            vals[k] += 1.0;
        }
        m
    }

    /// The current step.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Changes the step, refactorising (symbolic analysis reused) if it differs.
    pub fn set_dt(&mut self, dt: f64) -> Result<()> {
        if !(dt > 0.0 && dt.is_finite()) {
            return Err(Error::invalid(format!("time step must be positive, got {dt}")));
        }
        if dt != self.dt {
            self.dt = dt;
            self.lhs.refactor(&Self::lhs_matrix(&self.a, &self.diag, self.theta, dt))?;
            self.factorisations += 1;
        }
        Ok(())
    }

    /// Whether the left-hand side is factorised by Cholesky.
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// Advances `u` by one step; `g_old`, `g_new` are the forcing at `t^n`, `t^{n+1}`
    /// (`None` for zero forcing).
    pub fn step(
        &mut self,
        u: &mut [f64],
        g_old: Option<&[f64]>,
        g_new: Option<&[f64]>,
    ) -> Result<()> {
        let (theta, dt) = (self.theta, self.dt);
        if theta < 1.0 {
            self.a_rows.apply(u, &mut self.au);
        }
        for i in 0..u.len() {
            let mut r = u[i];
            if theta < 1.0 {
                r -= (1.0 - theta) * dt * self.au[i];
            }
            if let Some(g) = g_new {
                r += dt * theta * g[i];
            }
            if let Some(g) = g_old {
                r += dt * (1.0 - theta) * g[i];
            }
            self.rhs[i] = r;
        }
        self.lhs.solve(&self.rhs, u)?;
        Ok(())
    }
}
