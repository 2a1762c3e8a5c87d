//! Finite-difference assembly of `L u = −∇·(a∇u) + b·∇u + c u − ∇·(D∇u + u∇V − u β)` into
//! a faer sparse matrix.
//!
//! Per axis with cell width h, for cell i and its neighbour j across a face:
//! * diffusion: `(a_f/h²)(u_i − u_j)` with the harmonic face average
//!   `a_f = 2 a_i a_j/(a_i + a_j)` (exact flux continuity for piecewise-constant a); on a
//!   boundary face, a extrapolated to the face `(3a_0 − a_1)/2`;
//! * advection, centred: `b_i (u_{i+1} − u_{i−1})/2h`; upwind: `b_i (u_i − u_{i−1})/h` for
//!   `b_i > 0`, `b_i (u_{i+1} − u_i)/h` otherwise (first order, monotone);
//! * reaction: `c_i u_i`;
//! * drift–diffusion ([`DriftDiffusion`], the Fokker–Planck operator): Scharfetter–Gummel
//!   fluxes. Across the face from cell `lo` to `hi = lo + 1` (width h), with
//!   `δ = (V_hi − V_lo − h β_f)/D` (`β_f` the drift's face average) and the Bernoulli
//!   function `B(z) = z/(eᶻ − 1)`, the flux is `J = (D/h)[B(δ) u_lo − B(−δ) u_hi]` and
//!   `(L u)_i = Σ_faces ±J/h`; no flux crosses a boundary face. Every flux leaves one cell
//!   and enters another, so the columns sum to zero, and `B > 0` makes `I + Δt L` an
//!   M-matrix for every Δt > 0.
//!
//! Across a boundary face the neighbour is the ghost `γ u_i + δ` of [`super::bc`]: its
//! `γ` part goes on the diagonal, its `δ` part (the boundary data) into
//! [`Assembled::boundary_rhs`], so the discrete problem is `A u = s + boundary_rhs`.
//! Every row stores all `2d + 1` stencil entries (explicit zeros included), so the
//! sparsity pattern depends only on the grid: refactorisations can reuse the symbolic
//! analysis when coefficients change.

use super::bc::BoundaryConditions;
use crate::error::{Error, Result};
use crate::field::{ScalarField, VectorField};
use crate::grid::Grid;
use crate::operators::{neighbour, strides};
use faer::sparse::{SparseColMat, Triplet};
use rayon::prelude::*;

/// A cell-wise coefficient: constant or sampled at the cell centres.
#[derive(Clone, Debug)]
pub enum Coefficient {
    Constant(f64),
    Field(ScalarField),
}

impl Coefficient {
    fn at(&self, flat: usize) -> f64 {
        match self {
            Coefficient::Constant(c) => *c,
            Coefficient::Field(f) => f.data().as_slice().expect("contiguous")[flat],
        }
    }

    fn check(&self, grid: &Grid, name: &str, positive: bool) -> Result<()> {
        let values: Box<dyn Iterator<Item = f64>> = match self {
            Coefficient::Constant(c) => Box::new(std::iter::once(*c)),
            Coefficient::Field(f) => {
                if f.grid() != grid {
                    return Err(Error::invalid(format!(
                        "{name} coefficient lives on another grid"
                    )));
                }
                Box::new(f.data().iter().copied())
            }
        };
        for v in values {
            if !v.is_finite() {
                return Err(Error::invalid(format!(
                    "{name} coefficient has a non-finite value {v}"
                )));
            }
            if positive && v <= 0.0 {
                return Err(Error::invalid(format!(
                    "{name} coefficient must be positive, found {v}"
                )));
            }
        }
        Ok(())
    }
}

/// Discretisation of the advection term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdvectionScheme {
    /// First-order upwind (monotone: an M-matrix together with diffusion and c ≥ 0).
    Upwind,
    /// Second-order centred differences.
    Centred,
}

/// `B(z) = z/(eᶻ − 1)`, with `B(0) = 1`.
pub fn bernoulli(z: f64) -> f64 {
    if z.abs() < 1e-8 {
        1.0 - z / 2.0
    } else {
        z / z.exp_m1()
    }
}

/// The drift–diffusion term `−∇·(D∇u + u∇V − u β)` (Scharfetter–Gummel fluxes; see the
/// module documentation).
#[derive(Clone, Debug)]
pub struct DriftDiffusion {
    /// Diffusion coefficient D > 0.
    pub diffusion: f64,
    /// Potential V at the cell centres.
    pub potential: ScalarField,
    /// Extra drift velocity β (u is carried by −∇V + β).
    pub drift: Option<VectorField>,
}

impl DriftDiffusion {
    fn check(&self, grid: &Grid) -> Result<()> {
        check_drift_diffusion(grid, self.diffusion, &self.potential, self.drift.as_ref())
    }
}

/// Rejects a drift–diffusion term's data that is not usable on `grid`: D not positive and
/// finite, a potential or drift on another grid or with non-finite values.
pub(crate) fn check_drift_diffusion(
    grid: &Grid,
    diffusion: f64,
    potential: &ScalarField,
    drift: Option<&VectorField>,
) -> Result<()> {
    if !(diffusion > 0.0 && diffusion.is_finite()) {
        return Err(Error::invalid(format!("diffusion must be positive, got {diffusion}")));
    }
    if potential.grid() != grid {
        return Err(Error::invalid("potential lives on another grid"));
    }
    if potential.first_non_finite().is_some() {
        return Err(Error::invalid("potential has NaN or infinite values"));
    }
    if let Some(b) = drift {
        if b.grid() != grid || b.data().iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("drift is not a finite vector field on the grid"));
        }
    }
    Ok(())
}

/// The terms of `L u = −∇·(a∇u) + b·∇u + c u − ∇·(D∇u + u∇V − u β)`; absent terms are zero.
#[derive(Clone, Debug, Default)]
pub struct OperatorSpec {
    pub diffusion: Option<Coefficient>,
    pub advection: Option<(VectorField, AdvectionScheme)>,
    pub reaction: Option<Coefficient>,
    pub drift_diffusion: Option<DriftDiffusion>,
}

impl OperatorSpec {
    /// `−Δu`.
    pub fn laplacian() -> OperatorSpec {
        OperatorSpec { diffusion: Some(Coefficient::Constant(1.0)), ..Default::default() }
    }

    /// Sets the diffusion coefficient a (must be positive).
    pub fn with_diffusion(mut self, a: Coefficient) -> Self {
        self.diffusion = Some(a);
        self
    }

    /// Sets the advection velocity b and scheme.
    pub fn with_advection(mut self, b: VectorField, scheme: AdvectionScheme) -> Self {
        self.advection = Some((b, scheme));
        self
    }

    /// Sets the reaction coefficient c.
    pub fn with_reaction(mut self, c: Coefficient) -> Self {
        self.reaction = Some(c);
        self
    }

    /// Sets the drift–diffusion (Fokker–Planck) term.
    pub fn with_drift_diffusion(mut self, term: DriftDiffusion) -> Self {
        self.drift_diffusion = Some(term);
        self
    }

    /// Whether the assembled matrix is symmetric (no advection or drift–diffusion term).
    pub fn is_symmetric(&self) -> bool {
        self.advection.is_none() && self.drift_diffusion.is_none()
    }
}

/// The assembled system: `matrix · u = source + boundary_rhs`.
#[derive(Clone, Debug)]
pub struct Assembled {
    pub matrix: SparseColMat<usize, f64>,
    pub boundary_rhs: Vec<f64>,
    pub symmetric: bool,
}

/// Assembles `spec` on `grid` with boundary conditions `bcs`.
pub fn assemble(grid: &Grid, spec: &OperatorSpec, bcs: &BoundaryConditions) -> Result<Assembled> {
    bcs.validate(grid)?;
    if let Some(a) = &spec.diffusion {
        a.check(grid, "diffusion", true)?;
    }
    if let Some(c) = &spec.reaction {
        c.check(grid, "reaction", false)?;
    }
    if let Some(term) = &spec.drift_diffusion {
        term.check(grid)?;
    }
    if let Some((b, _)) = &spec.advection {
        if b.grid() != grid {
            return Err(Error::invalid("advection velocity lives on another grid"));
        }
        if b.data().iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("advection velocity has non-finite values"));
        }
    }
    let d = grid.dim();
    let n = grid.num_cells();
    let slots = 2 * d + 1;
    let st = strides(grid);
    let bvel = spec.advection.as_ref().map(|(b, s)| (b.data().as_slice().expect("contiguous"), *s));
    let drift_diffusion = spec.drift_diffusion.as_ref().map(|t| {
        let v = t.potential.data().as_slice().expect("contiguous");
        (t.diffusion, v, t.drift.as_ref().map(|b| b.data().as_slice().expect("contiguous")))
    });

    // Row-wise: (column, value) in fixed slots [diag, lower_0, upper_0, lower_1, …], plus
    // the boundary right-hand side.
    let mut cols = vec![0usize; n * slots];
    let mut vals = vec![0.0f64; n * slots];
    let mut brhs = vec![0.0f64; n];
    cols.par_chunks_mut(slots)
        .zip(vals.par_chunks_mut(slots))
        .zip(brhs.par_iter_mut())
        .enumerate()
        .for_each(|(row, ((c, v), rhs))| {
            c[0] = row;
            let mut point = [0.0; 3];
            for (a, ax) in grid.axes().iter().enumerate() {
                let (cells, s, h) = (ax.cells, st[a], ax.spacing());
                let i = (row / s) % cells;
                // Stencil weights on u_{i−1}, u_i, u_{i+1} along this axis.
                let mut w = [0.0f64; 3];
                if let Some(acoef) = &spec.diffusion {
                    let ai = acoef.at(row);
                    for side in 0..2 {
                        let af = match neighbour(row, i, cells, s, side == 1, ax.boundary) {
                            Some(j) => {
                                let aj = acoef.at(j);
                                2.0 * ai * aj / (ai + aj)
                            }
                            // A boundary face: a extrapolated to the face at second order,
                            // (3a_0 − a_1)/2 from the two cells inside (a_0 if that is not
                            // positive). The cell value alone would make the boundary flux,
                            // and so the solution, only first-order accurate.
                            None => match neighbour(row, i, cells, s, side == 0, ax.boundary) {
                                Some(j) => {
                                    let e = 1.5 * ai - 0.5 * acoef.at(j);
                                    if e > 0.0 {
                                        e
                                    } else {
                                        ai
                                    }
                                }
                                None => ai,
                            },
                        };
                        w[1] += af / (h * h);
                        w[2 * side] -= af / (h * h);
                    }
                }
                if let Some((b, scheme)) = bvel {
                    let bi = b[row * d + a];
                    match scheme {
                        AdvectionScheme::Centred => {
                            w[0] -= bi / (2.0 * h);
                            w[2] += bi / (2.0 * h);
                        }
                        AdvectionScheme::Upwind if bi > 0.0 => {
                            w[1] += bi / h;
                            w[0] -= bi / h;
                        }
                        AdvectionScheme::Upwind => {
                            w[2] += bi / h;
                            w[1] -= bi / h;
                        }
                    }
                }
                if let Some((dc, pot, beta)) = drift_diffusion {
                    let k = dc / (h * h);
                    for side in 0..2 {
                        // No flux across a boundary face, nor along a one-cell periodic axis.
                        let Some(j) = neighbour(row, i, cells, s, side == 1, ax.boundary)
                            .filter(|&j| j != row)
                        else {
                            continue;
                        };
                        // The face oriented from `lo` to `hi` along +axis.
                        let (lo, hi) = if side == 1 { (row, j) } else { (j, row) };
                        let bf = beta.map_or(0.0, |b| 0.5 * (b[lo * d + a] + b[hi * d + a]));
                        let delta = (pot[hi] - pot[lo] - h * bf) / dc;
                        // Row `row` gains +J/h on its upper face, −J/h on its lower one.
                        let (own, other) =
                            if side == 1 { (delta, -delta) } else { (-delta, delta) };
                        w[1] += k * bernoulli(own);
                        w[2 * side] -= k * bernoulli(other);
                    }
                }
                v[0] += w[1];
                for side in 0..2 {
                    let slot = 1 + 2 * a + side;
                    let weight = w[2 * side];
                    match neighbour(row, i, cells, s, side == 1, ax.boundary) {
                        Some(j) => {
                            c[slot] = j;
                            v[slot] = weight;
                        }
                        None => {
                            // Ghost γ u_i + δ: γ·weight on the diagonal, −δ·weight to the rhs.
                            grid.cell_center(&storage_index(grid, row), &mut point);
                            point[a] = if side == 0 { ax.lower } else { ax.upper };
                            let face = bcs.face(a, side);
                            let g = face.value().map_or(0.0, |bv| bv.at(&point[..d]));
                            let (gamma, delta) = face.ghost(h, g);
                            v[0] += gamma * weight;
                            *rhs -= delta * weight;
                            c[slot] = row;
                            v[slot] = 0.0;
                        }
                    }
                }
            }
            if let Some(cc) = &spec.reaction {
                v[0] += cc.at(row);
            }
        });
    let triplets: Vec<Triplet<usize, usize, f64>> =
        (0..n * slots).map(|k| Triplet::new(k / slots, cols[k], vals[k])).collect();
    let matrix = SparseColMat::try_new_from_triplets(n, n, &triplets)
        .map_err(|e| Error::invalid(format!("sparse assembly failed: {e:?}")))?;
    Ok(Assembled { matrix, boundary_rhs: brhs, symmetric: spec.is_symmetric() })
}

/// C-order storage index of flat cell `flat`.
fn storage_index(grid: &Grid, flat: usize) -> Vec<usize> {
    let shape = grid.storage_shape();
    let mut idx = vec![0; shape.len()];
    crate::grid::unflatten(flat, &shape, &mut idx, 0);
    idx
}
