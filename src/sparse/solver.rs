//! Linear solvers behind one small trait, in the spirit of PETSc's KSP: every solve reports
//! its iterations, final relative residual `‖b − A x‖/‖b‖` and why it stopped, and a solve
//! that does not converge is an error, never a silent result.
//!
//! * [`Cholesky`], [`Lu`]: faer's sparse direct factorisations; the symbolic analysis
//!   (ordering, elimination tree) is computed once and reused by
//!   [`refactor`](Cholesky::refactor) for any matrix with the same sparsity pattern.
//! * [`Cg`], [`BiCgStab`]: faer's matrix-free Krylov methods with a [`Preconditioner`]
//!   (none, Jacobi, or the spectral Poisson solver as an H¹ preconditioner).

use crate::error::{Error, FactorisationFailure, Result};
use crate::spectral::PoissonSolver;
use dyn_stack::{MemBuffer, MemStack};
use faer::linalg::solvers::Solve;
use faer::matrix_free::bicgstab::{bicgstab, bicgstab_scratch, BicgParams};
use faer::matrix_free::conjugate_gradient::{
    conjugate_gradient, conjugate_gradient_scratch, CgError, CgParams,
};
use faer::matrix_free::{InitialGuessStatus, LinOp, Precond};
use faer::reborrow::ReborrowMut;
use faer::sparse::linalg::solvers::{Llt, Lu as FaerLu, SymbolicLlt, SymbolicLu};
use faer::sparse::SparseColMat;
use faer::{MatMut, MatRef, Par, Side};
use rayon::prelude::*;
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

/// `y = A x` for a CSC matrix (serial scatter; see [`RowMatrix`] for the parallel form).
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

/// A row-major (CSR) copy of a matrix for parallel products `A x` (one gather per row).
#[derive(Clone, Debug)]
pub struct RowMatrix {
    row_ptr: Vec<usize>,
    col_idx: Vec<usize>,
    val: Vec<f64>,
}

impl RowMatrix {
    /// Converts a CSC matrix.
    pub fn new(a: &SparseColMat<usize, f64>) -> RowMatrix {
        let (cp, ri, v) = (a.symbolic().col_ptr(), a.symbolic().row_idx(), a.val());
        let n = a.nrows();
        let mut row_ptr = vec![0usize; n + 1];
        for &r in ri {
            row_ptr[r + 1] += 1;
        }
        for i in 0..n {
            row_ptr[i + 1] += row_ptr[i];
        }
        let mut next = row_ptr.clone();
        let mut col_idx = vec![0usize; ri.len()];
        let mut val = vec![0.0; ri.len()];
        for j in 0..a.ncols() {
            for k in cp[j]..cp[j + 1] {
                let r = ri[k];
                col_idx[next[r]] = j;
                val[next[r]] = v[k];
                next[r] += 1;
            }
        }
        RowMatrix { row_ptr, col_idx, val }
    }

    /// `y = A x`, parallel over rows.
    pub fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.par_iter_mut().enumerate().for_each(|(i, yi)| {
            let mut acc = 0.0;
            for k in self.row_ptr[i]..self.row_ptr[i + 1] {
                acc += self.val[k] * x[self.col_idx[k]];
            }
            *yi = acc;
        });
    }

    /// Relative residual `‖b − A x‖ / ‖b‖` (absolute when b = 0), in parallel.
    pub fn relative_residual(&self, b: &[f64], x: &[f64]) -> f64 {
        let (r2, b2) = (0..b.len())
            .into_par_iter()
            .map(|i| {
                let mut acc = 0.0;
                for k in self.row_ptr[i]..self.row_ptr[i + 1] {
                    acc += self.val[k] * x[self.col_idx[k]];
                }
                ((acc - b[i]) * (acc - b[i]), b[i] * b[i])
            })
            .reduce(|| (0.0, 0.0), |p, q| (p.0 + q.0, p.1 + q.1));
        if b2 > 0.0 {
            (r2 / b2).sqrt()
        } else {
            r2.sqrt()
        }
    }
}

/// Relative residual `‖b − A x‖ / ‖b‖` (absolute when b = 0).
pub fn relative_residual(a: &SparseColMat<usize, f64>, b: &[f64], x: &[f64]) -> f64 {
    RowMatrix::new(a).relative_residual(b, x)
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
    rows: &RowMatrix,
    b: &[f64],
    x: &mut [f64],
    solve: impl FnOnce(MatMut<'_, f64>),
) -> Result<SolveReport> {
    check_sizes(name, b.len(), b, x)?;
    x.copy_from_slice(b);
    solve(MatMut::from_column_major_slice_mut(x, b.len(), 1));
    let residual = rows.relative_residual(b, x);
    if !residual.is_finite() || residual > 1e-6 {
        return Err(Error::Numerical(format!(
            "{name}: direct solve is inaccurate (relative residual {residual:.3e}); the matrix is singular or badly conditioned"
        )));
    }
    Ok(SolveReport { iterations: 0, residual, reason: Converged::Direct })
}

/// Whether two matrices have the same sparsity pattern.
/// The matrix a direct solver factorised, with the row copy its residual check uses; both
/// are replaced together on refactorisation.
struct Factored {
    matrix: SparseColMat<usize, f64>,
    rows: RowMatrix,
}

impl Factored {
    fn new(a: &SparseColMat<usize, f64>) -> Factored {
        Factored { matrix: a.clone(), rows: RowMatrix::new(a) }
    }

    /// Refuses a matrix with another sparsity pattern (`name` labels the error).
    fn check_pattern(&self, a: &SparseColMat<usize, f64>, name: &str) -> Result<()> {
        let same = a.symbolic().col_ptr() == self.matrix.symbolic().col_ptr()
            && a.symbolic().row_idx() == self.matrix.symbolic().row_idx();
        if same {
            Ok(())
        } else {
            Err(Error::invalid(format!("{name}: refactor needs the same sparsity pattern")))
        }
    }
}

/// Sparse Cholesky `A = L Lᵀ` for symmetric positive definite matrices.
pub struct Cholesky {
    symbolic: SymbolicLlt<usize>,
    numeric: Llt<usize, f64>,
    factored: Factored,
}

impl Cholesky {
    /// Symbolic analysis and numeric factorisation of `a` (lower triangle read).
    pub fn new(a: &SparseColMat<usize, f64>) -> Result<Cholesky> {
        let symbolic =
            SymbolicLlt::try_new(a.symbolic(), Side::Lower).map_err(|e| Error::Factorisation {
                solver: "cholesky",
                kind: FactorisationFailure::Symbolic,
                detail: format!("{e:?}"),
            })?;
        let numeric = Self::numeric(&symbolic, a)?;
        Ok(Cholesky { symbolic, numeric, factored: Factored::new(a) })
    }

    fn numeric(
        symbolic: &SymbolicLlt<usize>,
        a: &SparseColMat<usize, f64>,
    ) -> Result<Llt<usize, f64>> {
        Llt::try_new_with_symbolic(symbolic.clone(), a.as_ref(), Side::Lower).map_err(|e| {
            Error::Factorisation {
                solver: "cholesky",
                kind: FactorisationFailure::NotPositiveDefinite,
                detail: format!("{e:?}"),
            }
        })
    }

    /// New numeric factorisation of `a`, which must have the pattern of the first matrix;
    /// reuses the symbolic analysis.
    pub fn refactor(&mut self, a: &SparseColMat<usize, f64>) -> Result<()> {
        self.factored.check_pattern(a, "cholesky")?;
        self.numeric = Self::numeric(&self.symbolic, a)?;
        self.factored = Factored::new(a);
        Ok(())
    }
}

impl LinearSolver for Cholesky {
    fn name(&self) -> String {
        "cholesky".into()
    }
    fn solve(&mut self, b: &[f64], x: &mut [f64]) -> Result<SolveReport> {
        let numeric = &self.numeric;
        direct_solve("cholesky", &self.factored.rows, b, x, |rhs| numeric.solve_in_place(rhs))
    }
}

/// Sparse LU with partial pivoting for general (e.g. advective) matrices.
pub struct Lu {
    symbolic: SymbolicLu<usize>,
    numeric: FaerLu<usize, f64>,
    factored: Factored,
}

impl Lu {
    /// Symbolic analysis and numeric factorisation of `a`.
    pub fn new(a: &SparseColMat<usize, f64>) -> Result<Lu> {
        let symbolic = SymbolicLu::try_new(a.symbolic()).map_err(|e| Error::Factorisation {
            solver: "lu",
            kind: FactorisationFailure::Symbolic,
            detail: format!("{e:?}"),
        })?;
        let numeric = Self::numeric(&symbolic, a)?;
        Ok(Lu { symbolic, numeric, factored: Factored::new(a) })
    }

    fn numeric(
        symbolic: &SymbolicLu<usize>,
        a: &SparseColMat<usize, f64>,
    ) -> Result<FaerLu<usize, f64>> {
        FaerLu::try_new_with_symbolic(symbolic.clone(), a.as_ref()).map_err(|e| {
            Error::Factorisation {
                solver: "lu",
                kind: FactorisationFailure::Singular,
                detail: format!("{e:?}"),
            }
        })
    }

    /// New numeric factorisation reusing the symbolic analysis (same pattern required).
    pub fn refactor(&mut self, a: &SparseColMat<usize, f64>) -> Result<()> {
        self.factored.check_pattern(a, "lu")?;
        self.numeric = Self::numeric(&self.symbolic, a)?;
        self.factored = Factored::new(a);
        Ok(())
    }
}

impl LinearSolver for Lu {
    fn name(&self) -> String {
        "lu".into()
    }
    fn solve(&mut self, b: &[f64], x: &mut [f64]) -> Result<SolveReport> {
        let numeric = &self.numeric;
        direct_solve("lu", &self.factored.rows, b, x, |rhs| numeric.solve_in_place(rhs))
    }
}

/// A direct factorisation chosen by symmetry: Cholesky for symmetric matrices, LU otherwise.
pub enum Direct {
    Cholesky(Box<Cholesky>),
    Lu(Box<Lu>),
}

impl Direct {
    /// Factorises `a` (Cholesky when `symmetric`).
    pub fn new(a: &SparseColMat<usize, f64>, symmetric: bool) -> Result<Direct> {
        Ok(if symmetric {
            Direct::Cholesky(Box::new(Cholesky::new(a)?))
        } else {
            Direct::Lu(Box::new(Lu::new(a)?))
        })
    }

    /// Refactorises a matrix with the same pattern, reusing the symbolic analysis.
    pub fn refactor(&mut self, a: &SparseColMat<usize, f64>) -> Result<()> {
        match self {
            Direct::Cholesky(c) => c.refactor(a),
            Direct::Lu(l) => l.refactor(a),
        }
    }
}

impl LinearSolver for Direct {
    fn name(&self) -> String {
        match self {
            Direct::Cholesky(c) => c.name(),
            Direct::Lu(l) => l.name(),
        }
    }
    fn solve(&mut self, b: &[f64], x: &mut [f64]) -> Result<SolveReport> {
        match self {
            Direct::Cholesky(c) => c.solve(b, x),
            Direct::Lu(l) => l.solve(b, x),
        }
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
    /// `(−Δ_h + c)⁻¹ diag(w)`: the spectral solver after a per-cell scaling, for operators
    /// `≈ −a(x) Δ` with a diffusivity that varies in space (`w = 1/a`; as a right
    /// preconditioner the product is then ≈ the identity).
    ScaledSpectral {
        solver: Mutex<(PoissonSolver, Vec<f64>)>,
        weights: Vec<f64>,
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

    /// `(−Δ_h + c)⁻¹ diag(weights)` ([`Preconditioner::ScaledSpectral`]).
    pub fn scaled_spectral(solver: PoissonSolver, weights: Vec<f64>) -> Preconditioner {
        let scratch = vec![0.0; weights.len()];
        Preconditioner::ScaledSpectral { solver: Mutex::new((solver, scratch)), weights }
    }

    fn label(&self) -> &'static str {
        match self {
            Preconditioner::None => "none",
            Preconditioner::Jacobi(_) => "jacobi",
            Preconditioner::Spectral { .. } => "spectral",
            Preconditioner::ScaledSpectral { .. } => "scaled spectral",
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
            Preconditioner::ScaledSpectral { solver, weights } => {
                let mut guard = solver.lock().expect("preconditioner lock");
                let (s, scaled) = &mut *guard;
                for ((o, r), w) in scaled.iter_mut().zip(rhs).zip(weights) {
                    *o = r * w;
                }
                if s.solve(scaled, out).is_err() {
                    out.iter_mut().for_each(|v| *v = f64::NAN);
                }
            }
        }
    }
}

impl std::fmt::Debug for Preconditioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Adapter giving a square column map `out = op(rhs)` (a matrix product, a preconditioner;
/// real, so its conjugate is itself) faer's operator traits, one Krylov vector at a time.
struct ColumnOp<'a> {
    n: usize,
    op: &'a (dyn Fn(&[f64], &mut [f64]) + Sync),
}

impl std::fmt::Debug for ColumnOp<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ColumnOp({}×{})", self.n, self.n)
    }
}

impl LinOp<f64> for ColumnOp<'_> {
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
        for j in 0..rhs.ncols() {
            let r = column(rhs, j);
            let o =
                out.rb_mut().col_mut(j).try_as_col_major_mut().expect("contiguous Krylov vectors");
            (self.op)(&r, o.as_slice_mut());
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

impl Precond<f64> for ColumnOp<'_> {}

/// Column `j` of `m` as a slice when contiguous (faer's Krylov vectors are), else a copy.
fn column<'a>(m: MatRef<'a, f64>, j: usize) -> std::borrow::Cow<'a, [f64]> {
    match m.col(j).try_as_col_major() {
        Some(c) => std::borrow::Cow::Borrowed(c.as_slice()),
        None => std::borrow::Cow::Owned((0..m.nrows()).map(|i| m[(i, j)]).collect()),
    }
}

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
    matrix: SparseColMat<usize, f64>,
    rows: RowMatrix,
    preconditioner: Preconditioner,
    pub settings: KrylovSettings,
}

/// Preconditioned BiCGSTAB (general matrices; the preconditioner is applied on the right).
pub struct BiCgStab {
    matrix: SparseColMat<usize, f64>,
    rows: RowMatrix,
    preconditioner: Preconditioner,
    pub settings: KrylovSettings,
}

impl Cg {
    /// CG on `matrix` with `preconditioner`.
    pub fn new(
        matrix: SparseColMat<usize, f64>,
        preconditioner: Preconditioner,
        settings: KrylovSettings,
    ) -> Cg {
        Cg { rows: RowMatrix::new(&matrix), matrix, preconditioner, settings }
    }
}

impl BiCgStab {
    /// BiCGSTAB on `matrix` with a right `preconditioner`.
    pub fn new(
        matrix: SparseColMat<usize, f64>,
        preconditioner: Preconditioner,
        settings: KrylovSettings,
    ) -> BiCgStab {
        BiCgStab { rows: RowMatrix::new(&matrix), matrix, preconditioner, settings }
    }

    /// Hands back the matrix and a spectral preconditioner's planned solver (to retry with
    /// another preconditioner, or reuse the plans with the next matrix); `None` for other
    /// preconditioners.
    pub fn into_parts(self) -> (SparseColMat<usize, f64>, Option<PoissonSolver>) {
        let solver = match self.preconditioner {
            Preconditioner::Spectral { solver, .. } => solver.into_inner().ok(),
            Preconditioner::ScaledSpectral { solver, .. } => solver.into_inner().ok().map(|s| s.0),
            _ => None,
        };
        (self.matrix, solver)
    }
}

fn krylov_report(
    name: &str,
    rows: &RowMatrix,
    b: &[f64],
    x: &[f64],
    iterations: usize,
    tol: f64,
) -> Result<SolveReport> {
    // faer's recurrence residual can drift from the true one; insist on the true residual.
    true_residual_report(name, rows.relative_residual(b, x), iterations, tol)
}

/// The report of a Krylov solve whose true relative residual is `residual`: an error above
/// `10 tol` (a recurrence residual can drift from the true one).
pub(super) fn true_residual_report(
    name: &str,
    residual: f64,
    iterations: usize,
    tol: f64,
) -> Result<SolveReport> {
    if !residual.is_finite() || residual > 10.0 * tol {
        return Err(Error::NotConverged {
            method: name.to_string(),
            iterations,
            residual,
            reason: format!("true relative residual above the tolerance {tol:.1e}"),
        });
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
        let apply_precond = |r: &[f64], o: &mut [f64]| self.preconditioner.apply_column(o, r);
        let precond = ColumnOp { n, op: &apply_precond };
        let multiply = |v: &[f64], o: &mut [f64]| self.rows.apply(v, o);
        let a = ColumnOp { n, op: &multiply };
        let rhs = MatRef::from_column_major_slice(b, n, 1);
        let out = MatMut::from_column_major_slice_mut(x, n, 1);
        let par = Par::rayon(0);
        let mut mem = MemBuffer::new(conjugate_gradient_scratch(&precond, &a, 1, par));
        // MaybeNonZero: faer's Zero path can report a spurious non-definite operator.
        let params = CgParams {
            initial_guess: InitialGuessStatus::MaybeNonZero,
            abs_tolerance: 0.0,
            rel_tolerance: self.settings.rel_tolerance,
            max_iters: self.settings.max_iterations,
            ..Default::default()
        };
        let result = conjugate_gradient(
            out,
            &precond,
            &a,
            rhs,
            params,
            |_| {},
            par,
            MemStack::new(&mut mem),
        );
        match result {
            Ok(info) => {
                krylov_report(&name, &self.rows, b, x, info.iter_count, self.settings.rel_tolerance)
            }
            Err(CgError::NoConvergence { rel_residual, .. }) => Err(Error::NotConverged {
                method: name,
                iterations: self.settings.max_iterations,
                residual: rel_residual,
                reason: format!("relative tolerance {:.1e}", self.settings.rel_tolerance),
            }),
            Err(CgError::NonPositiveDefiniteOperator) => Err(Error::Numerical(format!(
                "{name}: breakdown: the matrix is not positive definite"
            ))),
            Err(CgError::NonPositiveDefinitePreconditioner) => Err(Error::Numerical(format!(
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
        let copy = |r: &[f64], o: &mut [f64]| o.copy_from_slice(r);
        let identity = ColumnOp { n, op: &copy };
        let apply_precond = |r: &[f64], o: &mut [f64]| self.preconditioner.apply_column(o, r);
        let precond = ColumnOp { n, op: &apply_precond };
        let multiply = |v: &[f64], o: &mut [f64]| self.rows.apply(v, o);
        let a = ColumnOp { n, op: &multiply };
        let rhs = MatRef::from_column_major_slice(b, n, 1);
        let out = MatMut::from_column_major_slice_mut(x, n, 1);
        let par = Par::rayon(0);
        let mut mem = MemBuffer::new(bicgstab_scratch(&identity, &precond, &a, 1, par));
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
            Ok(info) => {
                krylov_report(&name, &self.rows, b, x, info.iter_count, self.settings.rel_tolerance)
            }
            Err(e) => Err(Error::NotConverged {
                method: name,
                iterations: self.settings.max_iterations,
                residual: f64::NAN,
                reason: format!("{e:?}, relative tolerance {:.1e}", self.settings.rel_tolerance),
            }),
        }
    }
}
