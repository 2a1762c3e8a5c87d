//! Planned FFT/DCT/DST solver for `(−Δ_h + c) u = f` on cell-centred grids.

use super::transform::{eigenvalues, transform_lines, transpose, LineTransform, LineWork, Symbol};
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::Grid;
use rayon::prelude::*;

/// What to do with the constant mode when the operator is singular (c = 0 and every axis
/// periodic or Neumann): the problem has a solution only if the right-hand side has zero mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MeanPolicy {
    /// Return an error if the right-hand side's mean is not zero (to 1e-10 relative).
    #[default]
    Reject,
    /// Remove the right-hand side's mean first (solve the projected problem).
    Project,
}

/// Solves `(−Δ_h + c) u = f` on a 2D/3D cell-centred grid with the grid's boundary kind per
/// axis (periodic, homogeneous Neumann, homogeneous Dirichlet on the faces, mixed freely).
///
/// With [`Symbol::Discrete`] this is the exact inverse of the second-order finite-difference
/// Laplacian (5-point in 2D, 7-point in 3D) used by [`crate::sparse`]. When the operator is
/// singular the returned solution has zero mean.
///
/// Plan once, solve many: construction plans the transforms and allocates the scratch;
/// [`solve`](Self::solve) allocates nothing. Lines are transformed in parallel (rayon).
pub struct PoissonSolver {
    grid: Grid,
    shift: f64,
    symbol: Symbol,
    mean_policy: MeanPolicy,
    transforms: Vec<LineTransform>,
    /// Eigenvalues per axis, x first.
    lambda: Vec<Vec<f64>>,
    /// Product of the per-axis round-trip scales.
    scale: f64,
    singular: bool,
    /// Cells per axis, x first.
    shape: Vec<usize>,
    scratch: Vec<f64>,
    work: Vec<LineWork>,
}

impl std::fmt::Debug for PoissonSolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoissonSolver")
            .field("grid", &self.grid.to_string())
            .field("shift", &self.shift)
            .field("symbol", &self.symbol)
            .finish()
    }
}

/// The per-axis transforms and eigenvalues of `−Δ_h + c` on a grid: what the serial and the
/// distributed ([`crate::distributed::SlabPoissonSolver`]) solvers share.
pub(crate) struct Spectrum {
    pub transforms: Vec<LineTransform>,
    /// Eigenvalues per axis, x first.
    pub lambda: Vec<Vec<f64>>,
    /// Product of the per-axis round-trip scales.
    pub scale: f64,
    /// Whether the constants are the kernel (c = 0, no Dirichlet axis).
    pub singular: bool,
}

impl Spectrum {
    /// Plans the transforms of `grid`'s axes and their eigenvalues for `(−Δ_h + shift)`;
    /// refuses a non-finite shift and a shift that makes the operator singular otherwise.
    pub fn plan(grid: &Grid, shift: f64, symbol: Symbol) -> Result<Spectrum> {
        if !shift.is_finite() {
            return Err(Error::invalid(format!("Poisson shift c = {shift} is not finite")));
        }
        let transforms: Vec<LineTransform> =
            grid.axes().iter().map(|a| LineTransform::plan(a.boundary, a.cells)).collect();
        let lambda: Vec<Vec<f64>> = grid
            .axes()
            .iter()
            .map(|a| eigenvalues(a.boundary, a.cells, a.spacing(), symbol))
            .collect();
        let scale = grid.axes().iter().zip(&transforms).map(|(a, t)| t.scale(a.cells)).product();
        let singular = shift == 0.0 && grid.axes().iter().all(|a| !a.boundary.prescribes_value());
        // Any other zero eigenvalue of −Δ_h + c (c < 0 hitting the spectrum) is singular too.
        let lam_min: f64 =
            lambda.iter().map(|l| l.iter().cloned().fold(f64::INFINITY, f64::min)).sum();
        if !singular
            && (lam_min + shift).abs()
                <= 1e-14 * lambda.iter().map(|l| l.iter().cloned().fold(0.0, f64::max)).sum::<f64>()
        {
            return Err(Error::invalid(format!(
                "(−Δ + c) is singular for c = {shift} on this grid"
            )));
        }
        Ok(Spectrum { transforms, lambda, scale, singular })
    }

    /// Scratch for the parallel line transforms: one per group of lines (two groups per
    /// rayon thread), each sized for the longest axis.
    pub fn work(&self, grid: &Grid) -> Vec<LineWork> {
        let groups = (2 * rayon::current_num_threads()).max(1);
        let mut work: Vec<LineWork> = (0..groups).map(|_| LineWork::new()).collect();
        for (a, t) in grid.axes().iter().zip(&self.transforms) {
            for w in &mut work {
                t.reserve(a.cells, w);
            }
        }
        work
    }
}

impl PoissonSolver {
    /// Plans a solver for `(−Δ_h + shift) u = f` on `grid`.
    pub fn new(grid: &Grid, shift: f64, symbol: Symbol) -> Result<PoissonSolver> {
        let spectrum = Spectrum::plan(grid, shift, symbol)?;
        let work = spectrum.work(grid);
        let Spectrum { transforms, lambda, scale, singular } = spectrum;
        Ok(PoissonSolver {
            grid: grid.clone(),
            shift,
            symbol,
            mean_policy: MeanPolicy::Reject,
            transforms,
            lambda,
            scale,
            singular,
            shape: grid.shape(),
            scratch: vec![0.0; grid.num_cells()],
            work,
        })
    }

    /// Sets how a non-zero mean is handled when the operator is singular.
    pub fn with_mean_policy(mut self, policy: MeanPolicy) -> Self {
        self.mean_policy = policy;
        self
    }

    /// The grid the solver was planned for.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The shift c.
    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// Whether the operator has the constants as kernel (c = 0, no Dirichlet axis).
    pub fn is_singular(&self) -> bool {
        self.singular
    }

    /// Which eigenvalues the solver divides by.
    pub fn symbol(&self) -> Symbol {
        self.symbol
    }

    /// Solves into `out` for the right-hand side `rhs`, both C-order `[z][y][x]` slices of
    /// `grid.num_cells()` values. Allocation-free.
    pub fn solve(&mut self, rhs: &[f64], out: &mut [f64]) -> Result<()> {
        let n = self.grid.num_cells();
        if rhs.len() != n || out.len() != n {
            return Err(Error::invalid(format!(
                "Poisson solve: right-hand side has {} values and output {}, grid has {n} cells",
                rhs.len(),
                out.len()
            )));
        }
        let (sum, abs_sum) = rhs
            .par_iter()
            .fold(|| (0.0, 0.0), |(s, a), v| (s + v, a + v.abs()))
            .reduce(|| (0.0, 0.0), |x, y| (x.0 + y.0, x.1 + y.1));
        check_right_hand_side(sum, abs_sum, n, self.singular, self.mean_policy)?;
        self.diagonalised(rhs, out, Diagonal::Inverse);
        Ok(())
    }

    /// The heat semigroup `out = e^{tΔ} f` (`t ≥ 0`) with the solver's symbol and boundary
    /// kinds (the shift plays no part): with [`Symbol::Continuous`] on Neumann axes, the
    /// convolution with the Gaussian of variance `2t` reflected at the faces; on periodic
    /// axes, wrapped. Conserves the sum of `f` on periodic and Neumann axes. Allocation-free.
    pub fn heat(&mut self, t: f64, f: &[f64], out: &mut [f64]) -> Result<()> {
        let n = self.grid.num_cells();
        if f.len() != n || out.len() != n {
            return Err(Error::invalid(format!(
                "heat semigroup: input has {} values and output {}, grid has {n} cells",
                f.len(),
                out.len()
            )));
        }
        let finite_time = t.is_finite() && t >= 0.0;
        if !finite_time {
            return Err(Error::invalid(format!("heat semigroup time must be ≥ 0, got {t}")));
        }
        self.diagonalised(f, out, Diagonal::Heat(t));
        Ok(())
    }

    /// `out = V D V⁻¹ rhs` for the diagonal `D` of `op` in the solver's eigenbasis.
    fn diagonalised(&mut self, rhs: &[f64], out: &mut [f64], op: Diagonal) {
        out.copy_from_slice(rhs);
        let singular = self.singular;
        let shift = self.shift;
        let scale = self.scale;
        let PoissonSolver { transforms, lambda, scratch, work, shape, .. } = self;
        let diagonal = |data: &mut [f64], lambda: &[Vec<f64>]| match op {
            Diagonal::Inverse => divide(data, lambda, shift, scale, singular),
            Diagonal::Heat(t) => heat(data, lambda, t, scale),
        };
        let (nx, ny) = (shape[0], shape[1]);
        let scratch = scratch.as_mut_slice();
        transform_lines(out, nx, &transforms[0], true, work);
        if shape.len() == 2 {
            transpose(out, scratch, 1, ny, nx); // [y][x] → [x][y]
            transform_lines(scratch, ny, &transforms[1], true, work);
            diagonal(scratch, lambda);
            transform_lines(scratch, ny, &transforms[1], false, work);
            transpose(scratch, out, 1, nx, ny);
        } else {
            let nz = shape[2];
            transpose(out, scratch, nz, ny, nx); // [z][y][x] → [z][x][y]
            transform_lines(scratch, ny, &transforms[1], true, work);
            transpose(scratch, out, 1, nz, nx * ny); // → [x][y][z]
            transform_lines(out, nz, &transforms[2], true, work);
            diagonal(out, lambda);
            transform_lines(out, nz, &transforms[2], false, work);
            transpose(out, scratch, 1, nx * ny, nz); // → [z][x][y]
            transform_lines(scratch, ny, &transforms[1], false, work);
            transpose(scratch, out, nz, nx, ny); // → [z][y][x]
        }
        transform_lines(out, nx, &transforms[0], false, work);
    }

    /// Convenience: solves for a field on the solver's grid, returning a new field.
    pub fn solve_field(&mut self, rhs: &ScalarField) -> Result<ScalarField> {
        if rhs.grid() != &self.grid {
            return Err(Error::invalid(format!(
                "right-hand side lives on {} but the solver was planned for {}",
                rhs.grid(),
                self.grid
            )));
        }
        let mut out = ScalarField::zeros(&self.grid);
        let rhs_slice = rhs.data().as_slice().expect("fields are contiguous");
        self.solve(rhs_slice, out.as_mut_slice())?;
        Ok(out)
    }
}

/// Checks a right-hand side of `n` values from its sum and the sum of its absolute values:
/// finite, and of zero mean where the operator is singular and the policy rejects a mean.
pub(crate) fn check_right_hand_side(
    sum: f64,
    abs_sum: f64,
    n: usize,
    singular: bool,
    policy: MeanPolicy,
) -> Result<()> {
    if !sum.is_finite() || !abs_sum.is_finite() {
        return Err(Error::invalid("Poisson solve: right-hand side has NaN or infinite values"));
    }
    if singular && policy == MeanPolicy::Reject && sum.abs() > 1e-10 * abs_sum {
        return Err(Error::invalid(format!(
            "right-hand side has mean {:.3e} ≠ 0, but (−Δ)u = f with only periodic/Neumann \
             boundaries and c = 0 needs zero mean (remove it, or use MeanPolicy::Project)",
            sum / n as f64
        )));
    }
    Ok(())
}

/// The diagonal operators applied in the eigenbasis.
#[derive(Clone, Copy)]
enum Diagonal {
    /// `(−Δ_h + c)⁻¹`.
    Inverse,
    /// `e^{tΔ}`.
    Heat(f64),
}

/// Applies `op(v, (λ_x + offset) + λ_y [+ λ_z])` to every value `v` of the spectrum, laid out
/// x-major (`[x][y]` or `[x][y][z]`).
fn each_mode(
    data: &mut [f64],
    lambda: &[Vec<f64>],
    offset: f64,
    op: impl Fn(&mut f64, f64) + Sync,
) {
    let lx = &lambda[0];
    let rest: usize = lambda[1..].iter().map(Vec::len).product();
    data.par_chunks_mut(rest).enumerate().for_each(|(ix, chunk)| {
        let base = lx[ix] + offset;
        if lambda.len() == 2 {
            for (v, ly) in chunk.iter_mut().zip(&lambda[1]) {
                op(v, base + ly);
            }
        } else {
            let nz = lambda[2].len();
            for (iy, row) in chunk.chunks_exact_mut(nz).enumerate() {
                let b = base + lambda[1][iy];
                for (v, lz) in row.iter_mut().zip(&lambda[2]) {
                    op(v, b + lz);
                }
            }
        }
    });
}

/// Divides the spectrum by `(Σλ + c)·scale`; the constant mode is set to zero when the
/// operator is singular.
pub(crate) fn divide(
    data: &mut [f64],
    lambda: &[Vec<f64>],
    shift: f64,
    scale: f64,
    singular: bool,
) {
    each_mode(data, lambda, shift, |v, s| *v /= s * scale);
    if singular {
        data[0] = 0.0;
    }
}

/// Multiplies the spectrum by `e^{−tΣλ}/scale`.
fn heat(data: &mut [f64], lambda: &[Vec<f64>], t: f64, scale: f64) {
    each_mode(data, lambda, 0.0, |v, s| *v *= (-t * s).exp() / scale);
}
