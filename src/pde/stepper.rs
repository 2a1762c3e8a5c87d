//! The θ-scheme for `∂ₜu = −A u + g(t)` on an assembled sparse operator A:
//!
//! `(I + θ Δt A) u^{n+1} = (I − (1−θ) Δt A) u^n + Δt [θ g^{n+1} + (1−θ) g^n]`,
//!
//! θ = 1 backward Euler (first order, L-stable), θ = ½ Crank–Nicolson (second order).
//! The left-hand matrix has A's pattern, so changing Δt refactorises with the symbolic
//! analysis reused, and a fixed Δt factorises once for the whole run.

use crate::error::{Error, Result};
use crate::sparse::{
    BiCgStab, Cg, Direct, KrylovSettings, LinearSolver, Preconditioner, RowMatrix,
};
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

/// Largest 3D system the stepper factorises directly; larger 3D systems (whose sparse
/// factors fill in too much) use a Jacobi-preconditioned Krylov method warm-started from the
/// previous step.
pub const DIRECT_3D_LIMIT: usize = 150_000;

/// How the left-hand side `I + θΔt A` is solved.
enum Lhs {
    Direct(Direct),
    Krylov(Box<dyn LinearSolver + Send>),
}

impl Lhs {
    fn build(m: &SparseColMat<usize, f64>, symmetric: bool, iterative: bool) -> Result<Lhs> {
        if !iterative {
            return Ok(Lhs::Direct(Direct::new(m, symmetric)?));
        }
        let settings = KrylovSettings { rel_tolerance: 1e-13, max_iterations: 2000 };
        let pre = Preconditioner::jacobi(m)?;
        Ok(Lhs::Krylov(if symmetric {
            Box::new(Cg::new(m.clone(), pre, settings))
        } else {
            Box::new(BiCgStab::new(m.clone(), pre, settings))
        }))
    }

    fn solve(&mut self, b: &[f64], x: &mut [f64]) -> Result<()> {
        match self {
            Lhs::Direct(d) => d.solve(b, x).map(|_| ()),
            Lhs::Krylov(k) => k.solve(b, x).map(|_| ()),
        }
    }
}

/// A θ-scheme stepper with its factorised (or preconditioned) left-hand side.
pub struct ThetaStepper {
    theta: f64,
    dt: f64,
    a: SparseColMat<usize, f64>,
    a_rows: RowMatrix,
    symmetric: bool,
    /// Positions of the diagonal entries in `a.val()`.
    diag: Vec<usize>,
    lhs: Lhs,
    iterative: bool,
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
    /// Plans the stepper for `A` (`symmetric` selects Cholesky over LU, CG over BiCGSTAB)
    /// with step `dt`; `iterative` chooses a Krylov solver instead of a factorisation (see
    /// [`ThetaStepper::prefers_iterative`]).
    pub fn new(
        a: &SparseColMat<usize, f64>,
        symmetric: bool,
        theta: f64,
        dt: f64,
        iterative: bool,
    ) -> Result<ThetaStepper> {
        if dt.is_nan() || dt <= 0.0 || dt.is_infinite() {
            return Err(Error::invalid(format!("time step must be positive, got {dt}")));
        }
        let diag = diagonal_positions(a)?;
        let lhs = Lhs::build(&Self::lhs_matrix(a, &diag, theta, dt), symmetric, iterative)?;
        let n = a.nrows();
        Ok(ThetaStepper {
            theta,
            dt,
            a: a.clone(),
            a_rows: RowMatrix::new(a),
            symmetric,
            diag,
            lhs,
            iterative,
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

    /// Whether a grid of `cells` cells in `dim` dimensions is stepped iteratively
    /// (3D with more than [`DIRECT_3D_LIMIT`] cells).
    pub fn prefers_iterative(dim: usize, cells: usize) -> bool {
        dim == 3 && cells > DIRECT_3D_LIMIT
    }

    /// The current step.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Changes the step, refactorising (symbolic analysis reused) if it differs.
    pub fn set_dt(&mut self, dt: f64) -> Result<()> {
        if dt.is_nan() || dt <= 0.0 || dt.is_infinite() {
            return Err(Error::invalid(format!("time step must be positive, got {dt}")));
        }
        if dt != self.dt {
            self.dt = dt;
            let m = Self::lhs_matrix(&self.a, &self.diag, self.theta, dt);
            match &mut self.lhs {
                Lhs::Direct(d) => d.refactor(&m)?,
                Lhs::Krylov(_) => self.lhs = Lhs::build(&m, self.symmetric, self.iterative)?,
            }
            self.factorisations += 1;
        }
        Ok(())
    }

    /// Whether the left-hand side is factorised by Cholesky.
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// Advances `u` by one step; `g_old`, `g_new` are the forcing at `t^n`, `t^{n+1}`
    /// (`None` for zero forcing). An iterative solve starts from `u^n`.
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
