//! The discrete Monge–Ampère operator of quadratic-cost OT and its linearisation, shared by
//! the damped Newton method ([`super::newton`]) and the parabolic Monge–Ampère flow
//! ([`super::parabolic`]).
//!
//! Unknown: the displacement potential `u = φ − |x|²/2` at the cell centres;
//! `F(u) = log det(I + D²_h u) + log g(x + ∇_h u) − log f`, with central differences
//! (`∇_h` 2 points, `D_kk` 3 points, `D_kl` 4 diagonal points; mirrored ghost cells on box
//! faces, wrapped periodic axes) and `log g` interpolated multilinearly. Its Jacobian
//! `J v = tr((I + D²_h u)⁻¹ D²_h v) + ∇log g(x + ∇_h u)·∇_h v` is assembled sparse; a
//! [`StepSolver`] solves the steps (bordered LU, or BiCGSTAB preconditioned by the planned
//! Poisson solver). Also here: the residual norms, the pull-back errors, the shared stopping
//! rule and the dual value.

use super::legendre::c_transform;
use super::problem::{IterationRecord, Outcome, Problem, Stopping};
use super::pushforward::interpolate_from;
use crate::error::{Error, Result};
use crate::field::ScalarField;
pub(crate) use crate::field::Term;
use crate::grid::{BoundaryKind, Grid};
use crate::operators::neighbour;
use crate::sparse::{bicgstab, KrylovOps, LinearSolver, Lu};
use crate::spectral::{PoissonSolver, Symbol};
use faer::sparse::{SparseColMat, Triplet};
use rayon::prelude::*;
use std::time::Instant;

/// How each Newton step's linear system is solved.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NewtonLinearSolver {
    /// Sparse LU of the bordered Jacobian (exact Newton steps; fill grows fast in 3D).
    Direct,
    /// BiCGSTAB on `(−J + εI) v = F − c`, right-preconditioned by the planned FFT/DCT solver
    /// of `(−Δ_h + ε)` after a per-cell scaling by the ratio of the diagonals (the
    /// diffusivity `tr A` spans decades where a lifted density's tails are stretched:
    /// Gaussian → uniform at 64², 600–1000 BiCGSTAB iterations per step unscaled, 50–70
    /// scaled). The shift removes J's kernel (the constants) and perturbs the step by
    /// `O(ε/λ₁)` relative, λ₁ ≈ 4π² the first nonzero eigenvalue, so the quadratic
    /// convergence becomes linear with that tiny factor.
    Krylov {
        /// The shift ε.
        shift: f64,
        /// Relative residual tolerance of each linear solve.
        tolerance: f64,
    },
    /// Krylov (ε = 10⁻², tolerance 10⁻⁶); when a Krylov solve fails (strongly anisotropic
    /// Hessians defeat the Laplacian preconditioner), the direct solver on 2D grids of at
    /// most `direct_cells` cells.
    Auto {
        /// Largest 2D grid the fallback solves directly.
        direct_cells: usize,
    },
}

/// Most BiCGSTAB iterations of a Krylov step.
pub(super) const KRYLOV_ITERATIONS: usize = 1000;

/// Most BiCGSTAB iterations of a Krylov step that can fall back to the direct solver.
const KRYLOV_ITERATIONS_BEFORE_DIRECT: usize = 200;

pub(super) const KRYLOV_DEFAULT: NewtonLinearSolver =
    NewtonLinearSolver::Krylov { shift: 1e-2, tolerance: 1e-6 };

/// The state a Newton step linearises around: `F`'s cells, residual and constant `c`.
pub(crate) struct Linearisation<'a> {
    pub(super) ma: &'a MongeAmpere,
    pub(super) cells: &'a [CellLinearisation],
    pub(super) residual: &'a [f64],
    pub(super) c: f64,
}

/// The planned solver of the Newton steps (factorisation and FFT plans kept between steps).
pub(super) struct StepSolver {
    pub(super) choice: NewtonLinearSolver,
    /// Inexact Newton: each Krylov solve stops at the relative residual
    /// `clamp(0.1 · RMS(F − c), tolerance, 10⁻²)` (a forcing term in the manner of
    /// Eisenstat–Walker: loose while the damped phase is far from the solution, the setting's
    /// tolerance once the residual is small, so the final quadratic phase is unchanged).
    pub(super) forcing: bool,
    lu: Option<Lu>,
    /// The Krylov steps' operations (the planned preconditioner kept between steps).
    whole: Option<WholeGrid>,
}

impl StepSolver {
    pub(super) fn new(choice: NewtonLinearSolver) -> StepSolver {
        StepSolver { choice, forcing: false, lu: None, whole: None }
    }

    /// The step `v` (mean-free) with `J v ≈ c − F`, `c = mean F`.
    pub(super) fn step(&mut self, at: &Linearisation, v: &mut Vec<f64>) -> Result<()> {
        match self.choice {
            NewtonLinearSolver::Direct => self.direct(at, v)?,
            NewtonLinearSolver::Krylov { shift, tolerance } => {
                self.krylov(at, v, shift, tolerance, KRYLOV_ITERATIONS, true)?
            }
            NewtonLinearSolver::Auto { direct_cells } => {
                let NewtonLinearSolver::Krylov { shift, tolerance } = KRYLOV_DEFAULT else {
                    unreachable!("the default is a Krylov setting")
                };
                let direct = at.ma.dim <= 2 && at.ma.len() <= direct_cells;
                // With a direct fallback, Krylov gets few iterations (the scaled
                // preconditioner converges in 20–100 where it works; measured on the
                // eight-decade density at 256², the last steps stall it: 36 s with 2×1000
                // iterations before each direct step, 2.2 s direct).
                let (iterations, retry) = if direct {
                    (KRYLOV_ITERATIONS_BEFORE_DIRECT, false)
                } else {
                    (KRYLOV_ITERATIONS, true)
                };
                if let Err(e) = self.krylov(at, v, shift, tolerance, iterations, retry) {
                    if !direct {
                        return Err(e);
                    }
                    tracing::debug!("newton: {e}; falling back to the direct solver");
                    self.direct(at, v)?;
                }
            }
        }
        let shift = mean(v);
        v.iter_mut().for_each(|x| *x -= shift);
        Ok(())
    }

    fn direct(&mut self, at: &Linearisation, v: &mut Vec<f64>) -> Result<()> {
        let (ma, lin, residual, c) = (at.ma, at.cells, at.residual, at.c);
        let n = ma.len();
        let jac = ma.bordered_jacobian(lin)?;
        match self.lu.as_mut() {
            Some(solver) => solver.refactor(&jac)?,
            None => self.lu = Some(Lu::new(&jac)?),
        }
        let mut rhs: Vec<f64> = residual.iter().map(|r| c - r).collect();
        rhs.push(0.0);
        v.clear();
        v.resize(n + 1, 0.0);
        self.lu.as_mut().expect("factorised").solve(&rhs, v)?;
        v.truncate(n);
        Ok(())
    }

    /// BiCGSTAB with the scaled spectral preconditioner, then (`retry`) the plain one.
    fn krylov(
        &mut self,
        at: &Linearisation,
        v: &mut Vec<f64>,
        shift: f64,
        tolerance: f64,
        max_iterations: usize,
        retry: bool,
    ) -> Result<()> {
        let whole = self.whole.get_or_insert_with(|| WholeGrid::new(&at.ma.grid));
        let settings = KrylovStep { tolerance, max_iterations, retry, forcing: self.forcing };
        krylov_step(whole, &KrylovSystem::new(at, shift), v, settings)
    }
}

/// A process's operations for the Krylov steps: the product with the step's rows, the
/// shifted Poisson solve `(−Δ_h + ε)⁻¹` (planned once per shift) and sums over the whole
/// grid in one fixed order, so the ranks of a decomposed grid take one process's steps.
pub(crate) trait StepOps {
    /// `y = rows · x` for this process's `x`.
    fn apply_rows(&mut self, rows: &Rows, x: &[f64], y: &mut [f64]) -> Result<()>;
    /// `z = (−Δ_h + shift)⁻¹ r` (discrete symbol).
    fn poisson(&mut self, shift: f64, r: &[f64], z: &mut [f64]) -> Result<()>;
    /// `Σ term(l)` over this process's cells l and every other process's, added as
    /// [`crate::field::ordered_sum`] adds the whole grid's.
    fn sum(&self, term: &Term) -> f64;
    /// The whole grid's cells.
    fn cells(&self) -> usize;
    /// `Σ a·b` over the whole grid.
    fn dot(&self, a: &[f64], b: &[f64]) -> f64 {
        self.sum(&|i| a[i] * b[i])
    }
    /// The mean over the whole grid.
    fn mean(&self, v: &[f64]) -> f64 {
        self.sum(&|i| v[i]) / self.cells() as f64
    }
}

/// [`StepOps`] of one process holding the whole grid.
pub(crate) struct WholeGrid {
    grid: Grid,
    poisson: Option<PoissonSolver>,
}

impl WholeGrid {
    pub(crate) fn new(grid: &Grid) -> WholeGrid {
        WholeGrid { grid: grid.clone(), poisson: None }
    }
}

impl StepOps for WholeGrid {
    fn apply_rows(&mut self, rows: &Rows, x: &[f64], y: &mut [f64]) -> Result<()> {
        rows.apply(|c| x[c], y);
        Ok(())
    }

    fn poisson(&mut self, shift: f64, r: &[f64], z: &mut [f64]) -> Result<()> {
        let solver = match self.poisson.take() {
            Some(p) if p.shift() == shift => p,
            _ => PoissonSolver::new(&self.grid, shift, Symbol::Discrete)?,
        };
        let solver = self.poisson.insert(solver);
        solver.solve(r, z)
    }

    fn sum(&self, term: &Term) -> f64 {
        crate::field::ordered_sum(self.grid.num_cells(), |r| r.map(term).sum())
    }

    fn cells(&self) -> usize {
        self.grid.num_cells()
    }
}

/// The settings of one Krylov step ([`krylov_step`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KrylovStep {
    /// Relative residual tolerance (with `forcing`, the floor of the forcing term).
    pub(crate) tolerance: f64,
    pub(crate) max_iterations: usize,
    /// After a failure with the scaled preconditioner, try the plain one.
    pub(crate) retry: bool,
    /// The inexact-Newton forcing term of [`StepSolver::forcing`].
    pub(crate) forcing: bool,
}

/// The system `(εI − J) v = F − c` of a Krylov step on this process's cells: the rows, the
/// preconditioner's scaling ([`MongeAmpere::laplacian_weights`]) and the right-hand side.
pub(crate) struct KrylovSystem {
    shift: f64,
    rows: Rows,
    weights: Vec<f64>,
    rhs: Vec<f64>,
}

impl KrylovSystem {
    /// The system at `at` with the shift ε = `shift`.
    pub(crate) fn new(at: &Linearisation, shift: f64) -> KrylovSystem {
        let (ma, lin, residual, c) = (at.ma, at.cells, at.residual, at.c);
        KrylovSystem {
            shift,
            rows: ma.rows(lin, shift),
            weights: ma.laplacian_weights(lin, shift),
            rhs: residual.iter().map(|r| r - c).collect(),
        }
    }
}

/// `system` solved by BiCGSTAB ([`crate::sparse::bicgstab`]) right-preconditioned with
/// `(−Δ_h + ε)⁻¹ diag(w)`, then (`retry`) with the plain `(−Δ_h + ε)⁻¹`; `v` is this
/// process's part of the step (not made mean-free).
pub(crate) fn krylov_step(
    ops: &mut impl StepOps,
    system: &KrylovSystem,
    v: &mut Vec<f64>,
    settings: KrylovStep,
) -> Result<()> {
    let KrylovStep { tolerance, max_iterations, retry, forcing } = settings;
    let KrylovSystem { shift, rows, weights, rhs } = system;
    let (shift, n) = (*shift, rhs.len());
    let tolerance = if forcing {
        let rms = (ops.dot(rhs, rhs) / ops.cells() as f64).sqrt();
        (0.1 * rms).clamp(tolerance, tolerance.max(1e-2))
    } else {
        tolerance
    };
    // The scaled preconditioner first; where BiCGSTAB stagnates with it (measured once:
    // rotated 3D Gaussians at 48³, no progress in 1000 iterations), the plain one.
    let mut result = Ok(());
    for scaled in [true, false] {
        if !scaled && !retry {
            break;
        }
        let mut system = Preconditioned {
            ops: &mut *ops,
            rows,
            shift,
            weights: scaled.then_some(&weights[..]),
            scaled: vec![0.0; n],
        };
        v.clear();
        v.resize(n, 0.0);
        result = bicgstab(&mut system, rhs, v, tolerance, max_iterations).map(|_| ());
        if result.is_ok() {
            break;
        }
        tracing::debug!("newton step: {:?}; retrying", result);
    }
    result
}

/// `εI − J` with its preconditioner, for [`bicgstab`].
struct Preconditioned<'a, O: StepOps> {
    ops: &'a mut O,
    rows: &'a Rows,
    shift: f64,
    weights: Option<&'a [f64]>,
    scaled: Vec<f64>,
}

impl<O: StepOps> KrylovOps for Preconditioned<'_, O> {
    fn apply(&mut self, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.ops.apply_rows(self.rows, x, y)
    }

    fn precondition(&mut self, r: &[f64], z: &mut [f64]) -> Result<()> {
        match self.weights {
            Some(w) => {
                self.scaled.par_iter_mut().zip(r.par_iter().zip(w)).for_each(|(s, (r, w))| {
                    *s = r * w;
                });
                self.ops.poisson(self.shift, &self.scaled, z)
            }
            None => self.ops.poisson(self.shift, r, z),
        }
    }

    fn dot(&self, a: &[f64], b: &[f64]) -> f64 {
        self.ops.dot(a, b)
    }
}

/// What the Jacobian needs from one cell: `(I + D²_h u)⁻¹` and `∇ log g` at `x + ∇_h u`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CellLinearisation {
    pub(super) inverse_hessian: [[f64; 3]; 3],
    pub(super) drift: [f64; 3],
}

/// Which global cells a process holds, in its storage order.
#[derive(Clone, Debug)]
pub(crate) enum OwnedCells {
    /// The contiguous run from this global index: the whole grid (0), or a rank's planes.
    From(usize),
    /// Listed: a rank's y–z pencil block.
    Listed(Vec<usize>),
}

impl OwnedCells {
    /// The global index of local cell `local`.
    #[inline]
    pub(crate) fn global(&self, local: usize) -> usize {
        match self {
            OwnedCells::From(first) => first + local,
            OwnedCells::Listed(cells) => cells[local],
        }
    }
}

/// The discrete operator `F` on one grid, on this process's cells: the whole grid, or a
/// rank's block ([`OwnedCells`]; `log g` then comes from the caller, see
/// [`MongeAmpere::finish`]).
#[derive(Clone)]
pub(crate) struct MongeAmpere {
    grid: Grid,
    pub(crate) dim: usize,
    pub(crate) spacing: [f64; 3],
    cells: [usize; 3],
    strides: [usize; 3],
    periodic: [bool; 3],
    /// `log f` on this process's cells.
    log_f: Vec<f64>,
    /// `log g` on the whole grid (empty on a rank's planes).
    log_g: Vec<f64>,
    /// The global cells this process holds.
    owned: OwnedCells,
}

/// What `F` needs at a cell before `log g` is read: `log det(I + D²_h u)`,
/// `(I + D²_h u)⁻¹` and the mapped point `x + ∇_h u`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CellGeometry {
    log_det: f64,
    inverse_hessian: [[f64; 3]; 3],
    /// The mapped point `x + ∇_h u`.
    pub(crate) point: [f64; 3],
}

/// The rows of `εI − J` on this process's cells (CSR, global column indices in increasing
/// order): the Krylov steps' operator.
pub(crate) struct Rows {
    start: Vec<usize>,
    columns: Vec<usize>,
    values: Vec<f64>,
}

impl Rows {
    /// `y_l = Σ_k values_k x(column_k)` over row l's entries in column order.
    pub(crate) fn apply(&self, x: impl Fn(usize) -> f64 + Sync, y: &mut [f64]) {
        y.par_iter_mut().enumerate().for_each(|(l, y)| {
            let mut acc = 0.0;
            for k in self.start[l]..self.start[l + 1] {
                acc += self.values[k] * x(self.columns[k]);
            }
            *y = acc;
        });
    }
}

/// Cholesky factorisation of a small symmetric matrix: `(log det, inverse)`, or `None` when it
/// is not positive definite.
fn spd_log_det_inverse(a: &[[f64; 3]; 3], d: usize) -> Option<(f64, [[f64; 3]; 3])> {
    let mut l = [[0.0f64; 3]; 3];
    let mut log_det = 0.0;
    for i in 0..d {
        for j in 0..=i {
            let s = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    return None;
                }
                l[i][i] = s.sqrt();
                log_det += 2.0 * l[i][i].ln();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    // Columns of the inverse: solve L Lᵀ x = e_c.
    let mut inv = [[0.0f64; 3]; 3];
    for c in 0..d {
        let mut y = [0.0f64; 3];
        for i in 0..d {
            let rhs = if i == c { 1.0 } else { 0.0 };
            y[i] = (rhs - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
        }
        for i in (0..d).rev() {
            let s = y[i] - (i + 1..d).map(|k| l[k][i] * inv[k][c]).sum::<f64>();
            inv[i][c] = s / l[i][i];
        }
    }
    Some((log_det, inv))
}

impl MongeAmpere {
    pub(super) fn new(problem: &Problem, method: &str) -> Result<MongeAmpere> {
        let grid = problem.grid().clone();
        for (what, density) in [("source", problem.source()), ("target", problem.target())] {
            if density.min() <= 0.0 {
                return Err(Error::invalid(format!(
                    "{method} needs strictly positive densities, but the {what} vanishes \
                     somewhere (use the method bfm)"
                )));
            }
        }
        let log = |f: &ScalarField| f.data().iter().map(|v| v.ln()).collect::<Vec<f64>>();
        let mut ma = MongeAmpere::on_cells(&grid, log(problem.source()), OwnedCells::From(0));
        ma.log_g = log(problem.target());
        Ok(ma)
    }

    /// The operator on `grid`'s cells `owned` with `log f` there (`log g` is the caller's,
    /// see [`MongeAmpere::finish`]).
    pub(crate) fn on_cells(grid: &Grid, log_f: Vec<f64>, owned: OwnedCells) -> MongeAmpere {
        let dim = grid.dim();
        let (mut spacing, mut cells, mut strides, mut periodic) =
            ([1.0; 3], [1; 3], [0; 3], [false; 3]);
        let mut stride = 1;
        for a in 0..dim {
            let axis = grid.axis(a);
            spacing[a] = axis.spacing();
            cells[a] = axis.cells;
            strides[a] = stride;
            stride *= axis.cells;
            periodic[a] = axis.boundary.is_periodic();
        }
        let grid = grid.clone();
        MongeAmpere { grid, dim, spacing, cells, strides, periodic, log_f, log_g: vec![], owned }
    }

    /// The whole grid.
    pub(crate) fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The global cells this process holds.
    pub(crate) fn owned(&self) -> &OwnedCells {
        &self.owned
    }

    /// This process's cells.
    pub(crate) fn len(&self) -> usize {
        self.log_f.len()
    }

    /// Replaces the target density `g` (positive, on this operator's grid).
    pub(super) fn set_target(&mut self, g: &ScalarField) -> Result<()> {
        let positive = g.min() > 0.0;
        if g.grid() != &self.grid || !positive || g.first_non_finite().is_some() {
            return Err(Error::invalid(
                "a Monge–Ampère target must be positive and finite on the operator's grid",
            ));
        }
        self.log_g = g.data().iter().map(|v| v.ln()).collect();
        Ok(())
    }

    fn index(&self, flat: usize) -> [usize; 3] {
        let mut index = [0; 3];
        for a in 0..self.dim {
            index[a] = (flat / self.strides[a]) % self.cells[a];
        }
        index
    }

    /// The neighbour of `flat` one cell up or down axis `a`: wrapped on periodic axes, the
    /// cell itself across a box face (the mirror ghost of `∂ₙu = 0`).
    #[inline]
    fn shift(&self, flat: usize, index: &[usize; 3], a: usize, up: bool) -> usize {
        let kind = if self.periodic[a] { BoundaryKind::Periodic } else { BoundaryKind::Neumann };
        neighbour(flat, index[a], self.cells[a], self.strides[a], up, kind).unwrap_or(flat)
    }

    /// The stencil of cell `flat`: `(column, ∇_h weights per axis, D²_h weights)` are applied
    /// through `visit(column, gradient_weight[a], hessian_weight[a][b])`.
    fn stencil(&self, flat: usize, mut visit: impl FnMut(usize, [f64; 3], [[f64; 3]; 3])) {
        let d = self.dim;
        let index = self.index(flat);
        let h = self.spacing;
        let zero3 = [0.0; 3];
        let zero33 = [[0.0; 3]; 3];
        for a in 0..d {
            for (up, sign) in [(true, 1.0), (false, -1.0)] {
                let nb = self.shift(flat, &index, a, up);
                let mut g = zero3;
                g[a] = sign / (2.0 * h[a]);
                let mut hh = zero33;
                hh[a][a] = 1.0 / (h[a] * h[a]);
                visit(nb, g, hh);
            }
            let mut hh = zero33;
            hh[a][a] = -2.0 / (h[a] * h[a]);
            visit(flat, zero3, hh);
            for b in a + 1..d {
                for (ua, sa) in [(true, 1.0), (false, -1.0)] {
                    for (ub, sb) in [(true, 1.0), (false, -1.0)] {
                        let nb = self.shift(self.shift(flat, &index, a, ua), &index, b, ub);
                        let w = sa * sb / (4.0 * h[a] * h[b]);
                        let mut hh = zero33;
                        hh[a][b] = w;
                        hh[b][a] = w;
                        visit(nb, zero3, hh);
                    }
                }
            }
        }
    }

    /// `F` at this process's cell `local` and its linearisation (u on the whole grid);
    /// `None` where `I + D²_h u` is not positive definite.
    fn cell(&self, u: &[f64], local: usize) -> Option<(f64, CellLinearisation)> {
        let geometry = self.geometry(|c| u[c], self.owned.global(local))?;
        self.finish(&geometry, |c| self.log_g[c], local)
    }

    /// The cell at global index `flat` before `log g` is read, with `u(c)` the potential at
    /// global index c; `None` where `I + D²_h u` is not positive definite.
    pub(crate) fn geometry(&self, u: impl Fn(usize) -> f64, flat: usize) -> Option<CellGeometry> {
        let d = self.dim;
        let mut grad = [0.0f64; 3];
        let mut hess = [[0.0f64; 3]; 3];
        self.stencil(flat, |col, g, hh| {
            let v = u(col);
            for a in 0..d {
                grad[a] += g[a] * v;
                for b in 0..d {
                    hess[a][b] += hh[a][b] * v;
                }
            }
        });
        for (a, row) in hess.iter_mut().enumerate().take(d) {
            row[a] += 1.0;
        }
        let (log_det, inverse_hessian) = spd_log_det_inverse(&hess, d)?;
        let index = self.index(flat);
        let mut point = [0.0f64; 3];
        for a in 0..d {
            point[a] = self.grid.axis(a).center(index[a]) + grad[a];
        }
        Some(CellGeometry { log_det, inverse_hessian, point })
    }

    /// `F` and its linearisation at this process's cell `local` from its geometry, with
    /// `log_g(c)` the target's log at global index c (interpolated multilinearly at the
    /// mapped point); `None` where `F` is not finite.
    pub(crate) fn finish(
        &self,
        geometry: &CellGeometry,
        log_g: impl Fn(usize) -> f64,
        local: usize,
    ) -> Option<(f64, CellLinearisation)> {
        let d = self.dim;
        let mut drift = [0.0f64; 3];
        let value =
            interpolate_from(&self.grid, log_g, &geometry.point[..d], Some(&mut drift[..d]));
        let residual = geometry.log_det + value - self.log_f[local];
        let inverse_hessian = geometry.inverse_hessian;
        residual.is_finite().then_some((residual, CellLinearisation { inverse_hessian, drift }))
    }

    /// Per cell, the ratio of the diagonal of `(−Δ_h + ε)` to that of `(εI − J)`:
    /// `(Σ_k 2/h_k² + ε) / (Σ_k 2A_kk/h_k² + ε)`, `A = (I + D²_h u)⁻¹` (the scaling that makes
    /// `(−Δ_h + ε)⁻¹ diag(w)` a right preconditioner of `εI − J` when `A` is near a multiple of
    /// the identity in each cell).
    pub(super) fn laplacian_weights(&self, lin: &[CellLinearisation], shift: f64) -> Vec<f64> {
        let d = self.dim;
        let inv_h2: Vec<f64> = self.spacing[..d].iter().map(|h| 2.0 / (h * h)).collect();
        let laplacian = inv_h2.iter().sum::<f64>() + shift;
        lin.par_iter()
            .map(|c| {
                let diag: f64 = (0..d).map(|k| c.inverse_hessian[k][k] * inv_h2[k]).sum();
                laplacian / (diag + shift)
            })
            .collect()
    }

    /// `F(u)` and the cells' linearisations; `None` when `u` is not discretely convex.
    pub(super) fn evaluate(&self, u: &[f64]) -> Option<(Vec<f64>, Vec<CellLinearisation>)> {
        let cells: Option<Vec<(f64, CellLinearisation)>> =
            (0..self.len()).into_par_iter().map(|i| self.cell(u, i)).collect();
        Some(cells?.into_iter().unzip())
    }

    /// Row `flat` (a global index) of `J` (`shift = None`) or of `εI − J`
    /// (`shift = Some(ε)`) at the cell linearisation `c`: `(column, weight)` in increasing
    /// column order, a column the stencil visits twice (a box face's mirror) added in visit
    /// order.
    fn row(&self, c: &CellLinearisation, flat: usize, shift: Option<f64>) -> Vec<(usize, f64)> {
        let d = self.dim;
        let mut entries: Vec<(usize, f64)> = Vec::with_capacity(20);
        self.stencil(flat, |col, g, hh| {
            let mut w = 0.0;
            for a in 0..d {
                w += c.drift[a] * g[a];
                for b in 0..d {
                    w += c.inverse_hessian[a][b] * hh[a][b];
                }
            }
            entries.push((col, w));
        });
        // Stable: duplicates keep their visit order.
        entries.sort_by_key(|e| e.0);
        let mut merged: Vec<(usize, f64)> = Vec::with_capacity(entries.len() + 1);
        for (col, w) in entries {
            match merged.last_mut() {
                Some(last) if last.0 == col => last.1 += w,
                _ => merged.push((col, w)),
            }
        }
        if let Some(eps) = shift {
            for e in merged.iter_mut() {
                e.1 = if e.0 == flat { eps - e.1 } else { -e.1 };
            }
        }
        merged
    }

    /// The rows of `εI − J` on this process's cells (`lin` their linearisations).
    pub(crate) fn rows(&self, lin: &[CellLinearisation], shift: f64) -> Rows {
        let rows: Vec<Vec<(usize, f64)>> = (0..self.len())
            .into_par_iter()
            .map(|l| self.row(&lin[l], self.owned.global(l), Some(shift)))
            .collect();
        let mut start = Vec::with_capacity(rows.len() + 1);
        start.push(0);
        for r in &rows {
            start.push(start.last().copied().unwrap_or(0) + r.len());
        }
        let (columns, values) = rows.into_iter().flatten().unzip();
        Rows { start, columns, values }
    }

    /// The bordered Jacobian `[[J, −s·1], [s·e₀ᵀ, 0]]` for the unknowns `(v, δc/s)`: the
    /// last row pins `v₀ = 0` (J's kernel is the constants; the step is made mean-free
    /// afterwards) and the single dense column carries `δc`. It is nonsingular because the
    /// constants are not in J's range. `s = 1/h²` balances the scales. (A dense mean row
    /// instead of the pin made faer's LU fill in: 300 s at 128².) On the whole grid.
    fn bordered_jacobian(&self, lin: &[CellLinearisation]) -> Result<SparseColMat<usize, f64>> {
        let n = self.len();
        let d = self.dim;
        let s = 1.0 / self.spacing[..d].iter().fold(f64::INFINITY, |m, &h| m.min(h * h));
        let rows: Vec<Vec<(usize, f64)>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut merged = self.row(&lin[i], i, None);
                merged.push((n, -s));
                merged
            })
            .collect();
        let mut triplets: Vec<Triplet<usize, usize, f64>> =
            Vec::with_capacity(rows.iter().map(Vec::len).sum::<usize>() + 1);
        for (i, row) in rows.iter().enumerate() {
            triplets.extend(row.iter().map(|&(col, w)| Triplet::new(i, col, w)));
        }
        triplets.push(Triplet::new(n, 0, s));
        SparseColMat::try_new_from_triplets(n + 1, n + 1, &triplets)
            .map_err(|e| Error::Numerical(format!("newton: Jacobian assembly failed: {e:?}")))
    }
}

pub(super) fn mean(v: &[f64]) -> f64 {
    crate::field::ordered_sum(v.len(), |r| v[r].iter().sum()) / v.len() as f64
}

/// Cells per chunk of the deterministic reductions below.
const CHUNK: usize = 4096;

/// `(max |r|, RMS r)` of `r = F − mean F`.
pub(super) fn residual_norms(f: &[f64]) -> (f64, f64) {
    let c = mean(f);
    // One pass in fixed chunks, added in chunk order: the same sums whatever the schedule.
    let parts: Vec<(f64, f64)> = f
        .par_chunks(CHUNK)
        .map(|part| {
            part.iter()
                .fold((0.0f64, 0.0), |(m, s), v| ((v - c).abs().max(m), s + (v - c) * (v - c)))
        })
        .collect();
    let (max, sq) = parts.iter().fold((0.0f64, 0.0), |(m, s), p| (m.max(p.0), s + p.1));
    (max, (sq / f.len() as f64).sqrt())
}

/// With `r = F − c` the log of the density ratio of the pulled-back target to the source:
/// `(∫ f |e^r − 1| dx, ∫ f (e^r − 1 − r) dx)` — the pull-back's L1 marginal error and
/// KL(T#μ‖ν) by the change of variables y = T(x) (≥ 0).
pub(super) fn pullback_errors(residual: &[f64], c: f64, f: &[f64], vol: f64) -> (f64, f64) {
    let sum = |t: &Term| crate::field::ordered_sum(residual.len(), |r| r.map(t).sum());
    pullback_errors_with(&sum, residual, c, f, vol)
}

/// [`pullback_errors`] with `sum` adding a term over every process's cells in one fixed
/// order (this process's values given).
pub(super) fn pullback_errors_with(
    sum: &dyn Fn(&Term) -> f64,
    residual: &[f64],
    c: f64,
    f: &[f64],
    vol: f64,
) -> (f64, f64) {
    let l1 = sum(&|i| f[i] * (residual[i] - c).exp_m1().abs());
    let kl = sum(&|i| {
        let x = residual[i] - c;
        f[i] * (x.exp_m1() - x)
    });
    (l1 * vol, kl * vol)
}

/// Whether a Monge–Ampère iteration of `method` stops at iteration `k` with residual `max`
/// and potential `u`: `Some((outcome, reason))`. The observer sees every iteration (its
/// record and `u`); its request to stop counts after the other stopping rules.
pub(super) fn stopping(
    max: f64,
    k: usize,
    options: &Stopping,
    start: Instant,
    (method, record, u): (&'static str, &IterationRecord, &ScalarField),
) -> Option<(Outcome, String)> {
    let stop = options.stop_requested((method, k + 1, record), u.grid(), &|| u.clone(), start);
    if max <= options.tol() {
        Some((
            Outcome::Converged,
            format!("Monge–Ampère residual {max:.3e} ≤ tolerance {:.3e}", options.tol()),
        ))
    } else if !max.is_finite() {
        Some((Outcome::Diverged, "the Monge–Ampère residual is no longer finite".into()))
    } else if options.out_of_time(start) {
        Some((
            Outcome::TimeLimit,
            format!(
                "time limit {:.3} s reached with residual {max:.3e} > tolerance {:.3e}",
                options.time_limit.unwrap_or(0.0),
                options.tol()
            ),
        ))
    } else if k == options.budget() {
        Some((
            Outcome::IterationLimit,
            format!(
                "iteration limit {} reached with residual {max:.3e} > tolerance {:.3e}",
                options.budget(),
                options.tol()
            ),
        ))
    } else if stop {
        Some((Outcome::Stopped, format!("stopped by the observer at residual {max:.3e}")))
    } else {
        None
    }
}

/// The operator of `problem`, the starting potential (`initial` or zero, made mean-free),
/// and `F` with its linearisation there; `method` names the caller in errors.
#[allow(clippy::type_complexity)]
pub(super) fn initial_state(
    problem: &Problem,
    initial: Option<&ScalarField>,
    method: &str,
) -> Result<(MongeAmpere, Vec<f64>, Vec<f64>, Vec<CellLinearisation>)> {
    let ma = MongeAmpere::new(problem, method)?;
    let mut u = match initial {
        Some(p) => {
            problem.check_initial(p, method)?;
            p.data().iter().copied().collect::<Vec<f64>>()
        }
        None => vec![0.0; ma.len()],
    };
    let shift = mean(&u);
    u.iter_mut().for_each(|v| *v -= shift);
    let (residual, lin) = ma.evaluate(&u).ok_or_else(|| {
        Error::invalid(format!("{method}: the initial potential is not discretely convex"))
    })?;
    Ok((ma, u, residual, lin))
}

/// `(∫(−p) dμ + ∫(−q) dν, q)` with `q = p^c` (sums in [`crate::field::ordered_sum`]'s
/// order).
pub(super) fn dual_value(problem: &Problem, p: &ScalarField) -> Result<(f64, ScalarField)> {
    let q = c_transform(p, problem.grid())?;
    let dot = |a: &ScalarField, w: &ScalarField| -> f64 {
        let (a, w) =
            (a.data().as_slice().expect("contiguous"), w.data().as_slice().expect("contiguous"));
        crate::ot::bfm::dot(a, w)
    };
    let value =
        -(dot(p, problem.source()) + dot(&q, problem.target())) * problem.grid().cell_volume();
    Ok((value, q))
}

/// A full Newton step that moves the map `x + ∇_h u` by at most this many cells (max over
/// cells and axes) leaves the answer unchanged at the grid's resolution. Measured on the
/// eight-decade density → uniform at 256² (Newton's residual stops at 2.8e-5, 6.8e-6 at
/// 128²: F is only piecewise smooth where `x + ∇_h u` crosses cells of the interpolated
/// `log g` and the box's faces), where the next full step would move the map by 3e-9 cells;
/// genuine stalls (the zoo's mixtures before they were refused) have steps of 1–70 cells.
/// Newton and (at Newton-like steps) the parabolic flow use it.
pub(super) const SETTLED_MAP_SHIFT: f64 = 1e-2;

/// `max_{cells, k} |∂_k v| / h_k`: how far the step `v` (one value per cell of `grid`) moves
/// the map `x + ∇_h u`, in cells (central differences, as the operator's gradient).
pub(super) fn map_shift_in_cells(v: &[f64], grid: &crate::grid::Grid) -> f64 {
    let field = ScalarField::from_vec(grid, v.to_vec()).expect("one step value per cell");
    let g = crate::operators::gradient(&field);
    let d = grid.dim();
    let h = grid.spacing();
    let data = g.data().as_slice().expect("contiguous");
    data.par_chunks(d)
        .map(|c| c.iter().zip(&h).map(|(x, h)| (x / h).abs()).fold(0.0, f64::max))
        .reduce(|| 0.0, f64::max)
}

/// Peak memory of a Newton or parabolic-flow solve in f64 fields of `grid`: 24 + 8 log₂ N in
/// 2D (the sparse LU's fill), 64 in 3D (Krylov steps); calibrated in [`crate::resources`].
pub(super) fn memory_fields(grid: &Grid) -> f64 {
    if grid.dim() == 2 {
        24.0 + 8.0 * (grid.num_cells() as f64).log2()
    } else {
        64.0
    }
}
