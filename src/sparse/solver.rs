//! Linear solvers behind one small trait, in the spirit of PETSc's KSP: every solve reports
//! its iterations, final relative residual `‖b − A x‖/‖b‖` and why it stopped, and a solve
//! that does not converge is an error, never a silent result.
//!
//! * [`Cholesky`], [`Lu`]: faer's sparse direct factorisations; the symbolic analysis
//!   (ordering, elimination tree) is computed once and reused by
//!   [`refactor`](Cholesky::refactor) for any matrix with the same sparsity pattern.
//! * [`Cg`], [`BiCgStab`]: faer's matrix-free Krylov methods with a [`Preconditioner`]
//!   (none, Jacobi, or the spectral Poisson solver as an H¹ preconditioner).

use crate::error::{Error, Result};
use crate::spectral::PoissonSolver;
use dyn_stack::{MemBuffer, MemStack};
use faer::linalg::solvers::Solve;
use faer::matrix_free::bicgstab::{bicgstab, bicgstab_scratch, BicgParams};
use faer::matrix_free::conjugate_gradient::{
    conjugate_gradient, conjugate_gradient_scratch, CgError, CgParams,
};
use faer::matrix_free::{InitialGuessStatus, LinOp, Precond};
use faer::sparse::linalg::solvers::{Llt, Lu as FaerLu, SymbolicLlt, SymbolicLu};
use faer::sparse::SparseColMat;
use faer::{Mat, MatMut, MatRef, Par, Side};
use std::sync::Mutex;

/// Why a solve stopped successfully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Converged {
    /// A direct factorisation solve.
    Direct,
    /// The relative residual fell below the tolerance.
    RelativeTolerance,
}

/// What a successful solve reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SolveReport {
    /// Krylov iterations (0 for direct solves).
    pub iterations: usize,
    /// Final relative residual `‖b − A x‖₂ / ‖b‖₂` (recomputed from the matrix).
    pub residual: f64,
    pub reason: Converged,
}

/// A linear solver for `A x = b`.
pub trait LinearSolver {
    /// Short name for messages ("cholesky", "cg+jacobi", …).
    fn name(&self) -> String;
    /// Solves into `x` (its content is the initial guess for iterative methods).
    fn solve(&mut self, b: &[f64], x: &mut [f64]) -> Result<SolveReport>;
}

/// `y = A x` for a CSC matrix.
pub fn matvec(a: &SparseColMat<usize, f64>, x: &[f64], y: &mut [f64]) {
    y.iter_mut().for_each(|v| *v = 0.0);
    let (cp, ri, val) = (a.symbolic().col_ptr(), a.symbolic().row_idx(), a.val());
    for j in 0..a.ncols() {
        let xj = x[j];
        for k in cp[j]..cp[j + 1] {
            y[ri[k]] += val[k] * xj;
        }
    }
}

/// Relative residual `‖b − A x‖ / ‖b‖` (absolute when b = 0).
pub fn relative_residual(a: &SparseColMat<usize, f64>, b: &[f64], x: &[f64]) -> f64 {
    let mut ax = vec![0.0; b.len()];
    matvec(a, x, &mut ax);
    let r: f64 = ax.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|v| v * v).sum::<f64>().sqrt();
    if nb > 0.0 {
        r / nb
    } else {
        r
    }
}

fn check_sizes(name: &str, n: usize, b: &[f64], x: &[f64]) -> Result<()> {
    if b.len() != n || x.len() != n {
        return Err(Error::invalid(format!(
            "{name}: right-hand side has {} entries and solution {}, matrix has {n} rows",
            b.len(),
            x.len()
        )));
    }
    if b.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(format!("{name}: right-hand side has NaN or infinite values")));
    }
    Ok(())
}

fn direct_solve(
    name: &str,
    a: &SparseColMat<usize, f64>,
    b: &[f64],
    x: &mut [f64],
    solve: impl FnOnce(MatMut<'_, f64>),
) -> Result<SolveReport> {
    check_sizes(name, a.nrows(), b, x)?;
    let mut rhs = Mat::<f64>::from_fn(b.len(), 1, |i, _| b[i]);
    solve(rhs.as_mut());
    for (i, v) in x.iter_mut().enumerate() {
        *v = rhs[(i, 0)];
    }
    let residual = relative_residual(a, b, x);
    if !residual.is_finite() || residual > 1e-6 {
        return Err(Error::Solver(format!(
            "{name}: direct solve is inaccurate (relative residual {residual:.3e}); the matrix is singular or badly conditioned"
        )));
    }
    Ok(SolveReport { iterations: 0, residual, reason: Converged::Direct })
}

/// Sparse Cholesky `A = L Lᵀ` for symmetric positive definite matrices.
pub struct Cholesky {
    symbolic: SymbolicLlt<usize>,
    numeric: Llt<usize, f64>,
    matrix: SparseColMat<usize, f64>,
}

impl Cholesky {
    /// Symbolic analysis and numeric factorisation of `a` (lower triangle read).
    pub fn new(a: &SparseColMat<usize, f64>) -> Result<Cholesky> {
        let symbolic = SymbolicLlt::try_new(a.symbolic(), Side::Lower)
            .map_err(|e| Error::Solver(format!("cholesky: symbolic analysis failed: {e:?}")))?;
        let numeric = Self::numeric(&symbolic, a)?;
        Ok(Cholesky { symbolic, numeric, matrix: a.clone() })
    }

    fn numeric(
        symbolic: &SymbolicLlt<usize>,
        a: &SparseColMat<usize, f64>,
    ) -> Result<Llt<usize, f64>> {
        Llt::try_new_with_symbolic(symbolic.clone(), a.as_ref(), Side::Lower).map_err(|e| {
            Error::Solver(format!("cholesky: factorisation failed ({e:?}); the matrix is not symmetric positive definite"))
        })
    }

    /// New numeric factorisation of `a`, which must have the pattern of the first matrix;
    /// reuses the symbolic analysis.
    pub fn refactor(&mut self, a: &SparseColMat<usize, f64>) -> Result<()> {
        if a.symbolic().col_ptr() != self.matrix.symbolic().col_ptr()
            || a.symbolic().row_idx() != self.matrix.symbolic().row_idx()
        {
            return Err(Error::invalid("cholesky: refactor needs the same sparsity pattern"));
        }
        self.numeric = Self::numeric(&self.symbolic, a)?;
        self.matrix = a.clone();
        Ok(())
    }
}

impl LinearSolver for Cholesky {
    fn name(&self) -> String {
        "cholesky".into()
    }
    fn solve(&mut self, b: &[f64], x: &mut [f64]) -> Result<SolveReport> {
        let numeric = &self.numeric;
        direct_solve("cholesky", &self.matrix, b, x, |rhs| numeric.solve_in_place(rhs))
    }
}

/// Sparse LU with partial pivoting for general (e.g. advective) matrices.
pub struct Lu {
    symbolic: SymbolicLu<usize>,
    numeric: FaerLu<usize, f64>,
    matrix: SparseColMat<usize, f64>,
}

impl Lu {
    /// Symbolic analysis and numeric factorisation of `a`.
    pub fn new(a: &SparseColMat<usize, f64>) -> Result<Lu> {
        let symbolic = SymbolicLu::try_new(a.symbolic())
            .map_err(|e| Error::Solver(format!("lu: symbolic analysis failed: {e:?}")))?;
        let numeric = FaerLu::try_new_with_symbolic(symbolic.clone(), a.as_ref()).map_err(|e| {
            Error::Solver(format!("lu: factorisation failed ({e:?}); the matrix is singular"))
        })?;
        Ok(Lu { symbolic, numeric, matrix: a.clone() })
    }

    /// New numeric factorisation reusing the symbolic analysis (same pattern required).
    pub fn refactor(&mut self, a: &SparseColMat<usize, f64>) -> Result<()> {
        if a.symbolic().col_ptr() != self.matrix.symbolic().col_ptr()
            || a.symbolic().row_idx() != self.matrix.symbolic().row_idx()
        {
            return Err(Error::invalid("lu: refactor needs the same sparsity pattern"));
        }
        self.numeric =
            FaerLu::try_new_with_symbolic(self.symbolic.clone(), a.as_ref()).map_err(|e| {
                Error::Solver(format!("lu: factorisation failed ({e:?}); the matrix is singular"))
            })?;
        self.matrix = a.clone();
        Ok(())
    }
}

impl LinearSolver for Lu {
    fn name(&self) -> String {
        "lu".into()
    }
    fn solve(&mut self, b: &[f64], x: &mut [f64]) -> Result<SolveReport> {
        let numeric = &self.numeric;
        direct_solve("lu", &self.matrix, b, x, |rhs| numeric.solve_in_place(rhs))
    }
}

/// Preconditioner `M ≈ A⁻¹` for the Krylov solvers.
pub enum Preconditioner {
    None,
    /// Inverse of the matrix diagonal.
    Jacobi(Vec<f64>),
    /// The spectral solver of `(−Δ_h + c)` on the same grid (an H¹ preconditioner for
    /// diffusion-dominated operators), scaled by `1/scale` (e.g. a typical diffusivity).
    Spectral {
        solver: Mutex<PoissonSolver>,
        scale: f64,
    },
}

impl Preconditioner {
    /// Jacobi from the diagonal of `a` (zero diagonal entries are an error).
    pub fn jacobi(a: &SparseColMat<usize, f64>) -> Result<Preconditioner> {
        let mut diag = vec![0.0; a.nrows()];
        let (cp, ri, val) = (a.symbolic().col_ptr(), a.symbolic().row_idx(), a.val());
        for j in 0..a.ncols() {
            for k in cp[j]..cp[j + 1] {
                if ri[k] == j {
                    diag[j] += val[k];
                }
            }
        }
        if let Some(i) = diag.iter().position(|d| *d == 0.0 || !d.is_finite()) {
            return Err(Error::invalid(format!(
                "jacobi: diagonal entry {i} is zero or not finite"
            )));
        }
        Ok(Preconditioner::Jacobi(diag.into_iter().map(|d| 1.0 / d).collect()))
    }

    /// The spectral Poisson solver as preconditioner.
    pub fn spectral(solver: PoissonSolver, scale: f64) -> Preconditioner {
        Preconditioner::Spectral { solver: Mutex::new(solver), scale }
    }

    fn label(&self) -> &'static str {
        match self {
            Preconditioner::None => "none",
            Preconditioner::Jacobi(_) => "jacobi",
            Preconditioner::Spectral { .. } => "spectral",
        }
    }

    fn apply_column(&self, out: &mut [f64], rhs: &[f64]) {
        match self {
            Preconditioner::None => out.copy_from_slice(rhs),
            Preconditioner::Jacobi(inv) => {
                for ((o, r), d) in out.iter_mut().zip(rhs).zip(inv) {
                    *o = r * d;
                }
            }
            Preconditioner::Spectral { solver, scale } => {
                let mut s = solver.lock().expect("preconditioner lock");
                if s.solve(rhs, out).is_err() {
                    // Only NaN input can fail (mean handling is set at construction);
                    // propagate it so the Krylov method reports breakdown.
                    out.iter_mut().for_each(|v| *v = f64::NAN);
                }
                out.iter_mut().for_each(|v| *v /= scale);
            }
        }
    }
}

impl std::fmt::Debug for Preconditioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Adapter giving [`Preconditioner`] faer's operator traits.
#[derive(Debug)]
struct PrecondOp<'a> {
    inner: &'a Preconditioner,
    n: usize,
}

impl LinOp<f64> for PrecondOp<'_> {
    fn apply_scratch(&self, _rhs_ncols: usize, _par: Par) -> dyn_stack::StackReq {
        dyn_stack::StackReq::EMPTY
    }
    fn nrows(&self) -> usize {
        self.n
    }
    fn ncols(&self) -> usize {
        self.n
    }
    fn apply(
        &self,
        mut out: MatMut<'_, f64>,
        rhs: MatRef<'_, f64>,
        _par: Par,
        _stack: &mut MemStack,
    ) {
        let mut a = vec![0.0; self.n];
        let mut b = vec![0.0; self.n];
        for j in 0..rhs.ncols() {
            for i in 0..self.n {
                a[i] = rhs[(i, j)];
            }
            self.inner.apply_column(&mut b, &a);
            for i in 0..self.n {
                out[(i, j)] = b[i];
            }
        }
    }
    fn conj_apply(
        &self,
        out: MatMut<'_, f64>,
        rhs: MatRef<'_, f64>,
        par: Par,
        stack: &mut MemStack,
    ) {
        self.apply(out, rhs, par, stack)
    }
}

impl Precond<f64> for PrecondOp<'_> {}

/// Settings of the Krylov solvers.
#[derive(Clone, Copy, Debug)]
pub struct KrylovSettings {
    /// Stop when `‖b − A x‖/‖b‖` is below this.
    pub rel_tolerance: f64,
    /// Give up (with an error) after this many iterations.
    pub max_iterations: usize,
}

impl Default for KrylovSettings {
    fn default() -> Self {
        KrylovSettings { rel_tolerance: 1e-10, max_iterations: 10_000 }
    }
}

/// Preconditioned conjugate gradients (symmetric positive (semi)definite matrices).
pub struct Cg {
    pub matrix: SparseColMat<usize, f64>,
    pub preconditioner: Preconditioner,
    pub settings: KrylovSettings,
}

/// Preconditioned BiCGSTAB (general matrices; the preconditioner is applied on the right).
pub struct BiCgStab {
    pub matrix: SparseColMat<usize, f64>,
    pub preconditioner: Preconditioner,
    pub settings: KrylovSettings,
}

fn krylov_report(
    name: &str,
    a: &SparseColMat<usize, f64>,
    b: &[f64],
    x: &[f64],
    iterations: usize,
    tol: f64,
) -> Result<SolveReport> {
    let residual = relative_residual(a, b, x);
    // faer's recurrence residual can drift from the true one; insist on the true residual.
    if !residual.is_finite() || residual > 10.0 * tol {
        return Err(Error::Solver(format!(
            "{name}: did not converge: true relative residual {residual:.3e} after {iterations} iterations (tolerance {tol:.1e})"
        )));
    }
    Ok(SolveReport { iterations, residual, reason: Converged::RelativeTolerance })
}

impl LinearSolver for Cg {
    fn name(&self) -> String {
        format!("cg+{}", self.preconditioner.label())
    }
    fn solve(&mut self, b: &[f64], x: &mut [f64]) -> Result<SolveReport> {
        let name = self.name();
        let n = self.matrix.nrows();
        check_sizes(&name, n, b, x)?;
        let precond = PrecondOp { inner: &self.preconditioner, n };
        let a = self.matrix.as_ref();
        let rhs = MatRef::from_column_major_slice(b, n, 1);
        let out = MatMut::from_column_major_slice_mut(x, n, 1);
        let par = Par::rayon(0);
        let mut mem = MemBuffer::new(conjugate_gradient_scratch(&precond, a, 1, par));
        // MaybeNonZero: faer's Zero path can report a spurious non-definite operator.
        let params = CgParams {
            initial_guess: InitialGuessStatus::MaybeNonZero,
            abs_tolerance: 0.0,
            rel_tolerance: self.settings.rel_tolerance,
            max_iters: self.settings.max_iterations,
            ..Default::default()
        };
        let result =
            conjugate_gradient(out, &precond, a, rhs, params, |_| {}, par, MemStack::new(&mut mem));
        match result {
            Ok(info) => krylov_report(&name, &self.matrix, b, x, info.iter_count, self.settings.rel_tolerance),
            Err(CgError::NoConvergence { rel_residual, .. }) => Err(Error::Solver(format!(
                "{name}: did not converge in {} iterations (relative residual {rel_residual:.3e}, tolerance {:.1e})",
                self.settings.max_iterations, self.settings.rel_tolerance
            ))),
            Err(CgError::NonPositiveDefiniteOperator) => {
                Err(Error::Solver(format!("{name}: breakdown: the matrix is not positive definite")))
            }
            Err(CgError::NonPositiveDefinitePreconditioner) => Err(Error::Solver(format!(
                "{name}: breakdown: the preconditioner is not positive definite"
            ))),
        }
    }
}

impl LinearSolver for BiCgStab {
    fn name(&self) -> String {
        format!("bicgstab+{}", self.preconditioner.label())
    }
    fn solve(&mut self, b: &[f64], x: &mut [f64]) -> Result<SolveReport> {
        let name = self.name();
        let n = self.matrix.nrows();
        check_sizes(&name, n, b, x)?;
        let identity = PrecondOp { inner: &Preconditioner::None, n };
        let precond = PrecondOp { inner: &self.preconditioner, n };
        let a = self.matrix.as_ref();
        let rhs = MatRef::from_column_major_slice(b, n, 1);
        let out = MatMut::from_column_major_slice_mut(x, n, 1);
        let par = Par::rayon(0);
        let mut mem = MemBuffer::new(bicgstab_scratch(&identity, &precond, a, 1, par));
        let params = BicgParams {
            initial_guess: InitialGuessStatus::MaybeNonZero,
            abs_tolerance: 0.0,
            rel_tolerance: self.settings.rel_tolerance,
            max_iters: self.settings.max_iterations,
            ..Default::default()
        };
        match bicgstab(
            out,
            &identity,
            &precond,
            a,
            rhs,
            params,
            |_| {},
            par,
            MemStack::new(&mut mem),
        ) {
            Ok(info) => krylov_report(
                &name,
                &self.matrix,
                b,
                x,
                info.iter_count,
                self.settings.rel_tolerance,
            ),
            Err(e) => Err(Error::Solver(format!(
                "{name}: did not converge in {} iterations ({e:?}, tolerance {:.1e})",
                self.settings.max_iterations, self.settings.rel_tolerance
            ))),
        }
    }
}
