//! One JKO step by back-and-forth ascent on its dual (Jacobs, Lee & Léger 2021).
//!
//! The step `ρ₁ = argmin_ρ F(ρ) + W₂²(ρ, μ)/(2τ)`, with `F(ρ) = ∫ e(ρ) + Vρ`
//! ([`super::energy`]), times τ and in displacement potentials (the Kantorovich potentials
//! are −p on ρ's side and −q on μ's, `q = p^c` the c-transform of
//! [`crate::ot::c_transform`]), has the concave dual
//!
//! `J(p) = −∫ p^c dμ − τ ∫ e*(p/τ − V) dx`,
//!
//! whose maximiser gives `ρ₁ = (e*)'(p/τ − V)` and the map `x + ∇p` that carries ρ₁ back onto
//! μ. The gradient of J in p is `S#μ − ρ_p` (S = id + ∇p^c) and in q (with `p = q^c`)
//! `T#ρ_p − μ` (T = id + ∇p); the method ascends in p and in q alternately, each step an
//! approximate Newton step (the weighted metric of bfm with the energy's curvature on its
//! diagonal, see [`JkoParams::step`]) with an adaptive step size, and after each step
//! maximises J exactly over constants: the shift of p that gives `ρ_p` unit mass
//! ([`super::energy::Energy::unit_mass_shift`]). The returned density is `ρ_p`: positive
//! where e* is differentiable, unit mass to round-off, whatever the ascent's accuracy.
//! Steps of compact-support energies that move mass by less than a cell push by a deposit
//! exact for the identity and hold the cells the deposit does not reach empty
//! ([`JkoParams::holds_empty_cells`]).
//!
//! Stopping: both H⁻¹ marginal errors `‖ρ_p − S#μ‖` and `‖μ − T#ρ_p‖` at most the tolerance;
//! or the discretisation floor (the push-forward's and the c-transform's error): no fall by
//! 10 % in [`FLOOR_WINDOW`] iterations, or an iteration that neither lowers the error nor
//! finds an ascent at [`MIN_STEP`] of the natural step; it returns the pair of least error.

use super::energy::{Energy, Internal};
use crate::error::{Error, Result};
use crate::field::{ScalarField, VectorField};
use crate::grid::{Axis, Grid};
use crate::operators::gradient;
use crate::ot::bfm::{dot, PushForward};
use crate::ot::legendre::c_transform;
use crate::ot::metric::{floored, WeightedSolver};
use crate::ot::multilevel::{prolong, restrict};
use crate::ot::problem::Outcome;
use crate::ot::pushforward::{
    identity_deposit, push_forward_adaptive, push_forward_by_displacement, JacobianPushForward,
};
use crate::spectral::{MeanPolicy, PoissonSolver, Symbol};
use rayon::prelude::*;

/// A step stops at its floor once the marginal error has not fallen below this fraction of
/// its last marked value for [`FLOOR_WINDOW`] iterations.
const FLOOR_PROGRESS: f64 = 0.9;
/// See [`FLOOR_PROGRESS`]. Measured (multilinear Jacobian push-forward, before the cubic
/// one) on an Ornstein–Uhlenbeck flow at 64² (τ = 0.02, 0.01,
/// 0.005 to T = 0.2): L1 against the Fokker–Planck solve 1.68e-2 / 7.96e-3 / 3.72e-3 with 5
/// (15 iterations per step), 1.66e-2 / 7.60e-3 / 3.75e-3 with 10 (22); 10 fixed iterations
/// 1.72e-2 / 8.97e-3 / 4.02e-3, 3 iterations 2.1e-2 / 2.0e-2 / 2.0e-2 (no convergence in τ).
const FLOOR_WINDOW: usize = 5;
/// The largest H⁻¹ marginal error, in cell widths, that a JKO step's stall may take for its
/// grid's floor (else the step is `Stalled`). Measured floors: at most 0.25 cells (a compact
/// support's first step at 64²; OU, mixtures, narrow Gaussians, the torus, porous media and
/// 3D 1e-3–0.45 cells: `otgrid verify --suite flows`); failed first steps of KL and JS flows
/// stopped at 1.7 and 4 cells, which bfm's 12-cell rule (`bfm::FLOOR_CELLS`, for maps) took
/// for floors.
const FLOOR_CELLS: f64 = 1.0;
/// A step whose floor is above this many cell widths is solved again on the grid refined
/// twice per axis ([`JkoParams::refined_step`]). Measured: the flow zoo's
/// `double-well-large-tau` first step at 64² (W₂ 0.16, the mass splits between two wells)
/// ends at 0.55 cells, refined at 0.12 cells; its density's L1 distance to the same step at
/// 512² (cell-averaged onto 64²) falls from 6.0e-3 to 9.8e-4. A KL step of τ = 0.05 from a
/// Gaussian onto two bumps (64², 0.52 cells): 3.7e-3 → 9.0e-4.
pub const REFINE_FLOOR_CELLS: f64 = 0.5;
/// The most cells a refined step's grid may have (128³, 1448²: its workspace's memory).
pub const REFINE_MAX_CELLS: usize = 1 << 21;
/// The metric's weight floor, relative to the density's peak (as bfm's weighted metric).
const FLOOR: f64 = 0.01;
/// The p side's weight floor (relative to the peak) when the metric is of Schrödinger form
/// ([`schroedinger_form`]): it only keeps the weights positive (1e-8 took 3–5 more
/// iterations on some 256² steps; 1e-4 2–3× the CG iterations).
const TAIL_FLOOR: f64 = 1e-6;
/// The explicit start's floor on the density, relative to its peak
/// ([`JkoParams::explicit_start`]).
const START_FLOOR: f64 = 1e-9;
/// Fitted shifts λ below `SHIFT_GATE / L²` (L the domain's largest side) are weaker than the
/// Laplacian's lowest modes: the diagonal then does not make the operator elliptic.
const SHIFT_GATE: f64 = 100.0;

/// Whether the energy's diagonal is the density times one constant λ above [`SHIFT_GATE`]:
/// the entropy and KL (`(e*)'' = (e*)'/D`, so `d = ρ/(Dτ)`; checked to 1e-9, which also
/// rules out a diagonal capped at a support edge). The p side's operator `−∇·(ρ∇) + λρ` is
/// then `ρ^{1/2}(−Δ + λ + V)ρ^{1/2}` with `V = Δ√ρ/√ρ` bounded against λ on smooth
/// densities: its preconditioner `W^{-1/2}(−Δ + λ)⁻¹W^{-1/2}` needs no floor and the tails
/// keep their own weight (with the 1 % floor, λw overstates the tails' diagonal up to 100×).
/// Measured, OU flow (docs/flows.md), 2 steps: 64³ CG iterations per step 178 / 150 → 36 / 36,
/// back-and-forth iterations 7 / 6 → 4 / 4; 128³ 42.6 → 15.3 s per step (same window). The q
/// side's Hessian is the same operator seen through the map: weight T#ρ_p and diagonal
/// `d(S(x)) det DS(x) = λ T#ρ_p(x)`; it takes them at the solution, where T#ρ_p = μ: weight μ
/// (floored at [`TAIL_FLOOR`]) and diagonal λμ. Measured against μ at 1 % with the cell-wise
/// d (2 steps unless said): 32³ CG iterations 58 → 25, 64³ 72 → 29, 128³ 92 → 30 (16.4 →
/// 13.0–13.2 s per step), 256² (5 steps) 176 → 81; 64² τ = 0.05 (4 steps) 113 → 68. Taking
/// the iterate's own T#ρ_p instead (rough far from the solution, holes included) stalled the
/// first steps of that τ = 0.05 flow and of a two-bump flow. Only where μ > 0 in every cell
/// (a first step from a compact support keeps the 1 % metric on both sides). The other
/// energies keep [`FLOOR`] on both sides: their `d/ρ` varies (lowering it for JS let the
/// energy rise).
fn schroedinger_form(energy: &Energy, d: &[f64], rho: &[f64], grid: &Grid) -> bool {
    if !matches!(energy.internal, Some(Internal::Entropy { .. })) {
        return false;
    }
    let (lo, hi) = d
        .par_iter()
        .zip(rho.par_iter())
        .filter(|(_, r)| **r > 0.0)
        .map(|(d, r)| (d / r, d / r))
        .reduce(|| (f64::INFINITY, 0.0), |a, b| (a.0.min(b.0), a.1.max(b.1)));
    let side = grid.axes().iter().map(|a| a.length()).fold(0.0, f64::max);
    lo.is_finite() && hi <= lo * (1.0 + 1e-9) && lo * side * side >= SHIFT_GATE
}
/// The smallest step size a half step tries, relative to the natural step 1 of its
/// approximate Newton direction. A half step that finds no ascent at this size has a
/// gradient dominated by the push-forward's and the c-transform's error: the step is at its
/// discretisation floor (when its best error is a few cells at most). Measured on an
/// Ornstein–Uhlenbeck flow at 64³ (τ = 0.01): at the floor the line search halved the step
/// from about 1 to 5e-7 before accepting a step that changed nothing, and the iterations that
/// followed did not lower the best error.
const MIN_STEP: f64 = 1e-3;

/// How far below `e'(0)` a held-empty cell's dual variable is put ([`Dual::held`]).
const HELD_DEPTH: f64 = 1e30;
/// Steps whose explicit start moves mass by fewer cells than this hold empty cells and push
/// by the identity-exact deposit ([`JkoParams::holds_empty_cells`]).
const HOLD_REACH_CELLS: f64 = 1.0;

/// A density on `fine` (twice the cells per axis): where it is positive everywhere by cubic
/// interpolation of its logarithm (positive, and exact for Gaussians' tails far below the
/// peak), else by cubic interpolation clamped at 0; unit mass.
fn refine_density(rho: &ScalarField, fine: &Grid) -> ScalarField {
    let mut out = if rho.min() > 0.0 {
        let mut log = rho.clone();
        log.data_mut().mapv_inplace(f64::ln);
        let mut out = prolong(&log, fine);
        out.data_mut().mapv_inplace(f64::exp);
        out
    } else {
        let mut out = prolong(rho, fine);
        out.data_mut().mapv_inplace(|v| v.max(0.0));
        out
    };
    let mass = out.integral();
    out.data_mut().mapv_inplace(|v| v / mass);
    out
}

/// A deposit push-forward `T#ρ` that is exact for the identity.
///
/// The deposit `P_T` with s sub-cells smooths even under the identity: `P_id = D`, D the
/// 3-point stencil of [`identity_deposit`] (`I + h²Δ_h/8` for s = 2), an O(h²) change that
/// a JKO step makes once per step whatever τ. This returns `P_T(2ρ − Dρ) + ρ − D(2ρ − Dρ)`
/// `= (P_T − D)(2ρ − Dρ) + ρ`: exactly ρ for T = id, the smoothing entering only through
/// the moving part `P_T − D`, which vanishes with the step. Mass is kept (D and P_T keep
/// it); `2ρ − Dρ` and the result may be slightly negative next to an edge of ρ.
fn identity_exact_deposit(rho: &ScalarField, map: &VectorField, s: usize) -> Result<ScalarField> {
    let mut sharp = identity_deposit(rho, s);
    sharp.data_mut().zip_mut_with(rho.data(), |d, r| *d = 2.0 * r - *d);
    let mut pushed = push_forward_adaptive(&sharp, map, rho.grid(), s)?;
    let back = identity_deposit(&sharp, s);
    let parts = pushed.as_mut_slice().par_iter_mut().zip(rho.data().as_slice().expect("c"));
    parts.zip(back.data().as_slice().expect("c")).for_each(|((p, r), b)| *p += r - b);
    Ok(pushed)
}

/// `∫ |g|² ρ` (cell sums): the squared transport distance of the displacement g from ρ.
pub(super) fn weighted_square(g: &VectorField, rho: &ScalarField) -> f64 {
    let d = rho.grid().dim();
    let g = g.data();
    let sum: f64 = g
        .as_slice()
        .expect("contiguous")
        .chunks(d)
        .zip(rho.data().iter())
        .map(|(v, r)| r * v.iter().map(|x| x * x).sum::<f64>())
        .sum();
    sum * rho.grid().cell_volume()
}

/// Parameters of a JKO step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct JkoParams {
    /// The time step τ > 0.
    pub tau: f64,
    /// Stop once both H⁻¹ marginal errors are at most this; `None`: [`JkoParams::tol`]'s
    /// default.
    pub tolerance: Option<f64>,
    /// Back-and-forth iterations per step.
    pub max_iterations: usize,
    /// How the dual gradient's push-forwards are computed.
    pub push_forward: PushForward,
    /// Deposit sub-cells per axis ([`push_forward_adaptive`]'s minimum).
    pub subsamples: usize,
}

impl Default for JkoParams {
    fn default() -> Self {
        JkoParams {
            tau: 1e-3,
            tolerance: None,
            max_iterations: 200,
            push_forward: PushForward::Auto,
            subsamples: 2,
        }
    }
}

impl JkoParams {
    /// The tolerance in use on `grid`: the one set, else `min(1e-3 τ, 0.05 h)` — far below
    /// a small step's transport distance (W₂ of order τ), and for large τ (a step that is a
    /// whole transport) a twentieth of a cell.
    pub fn tol(&self, grid: &Grid) -> f64 {
        self.tolerance.unwrap_or((1e-3 * self.tau).min(0.05 * grid.max_spacing()))
    }

    /// Whether the push-forwards are by change of variables: `Auto` where μ is positive
    /// everywhere (the entropy's flows; measured on an Ornstein–Uhlenbeck flow at 64², L1
    /// against Fokker–Planck at τ = 0.02 / 0.01 / 0.005: 1.68e-2 / 7.96e-3 / 3.72e-3, the
    /// deposit 1.66e-2 / 7.49e-3 / 4.57e-3), the deposit where it vanishes somewhere (compact
    /// supports: porous medium; the Jacobian there did not converge in τ, L1 1.3e-2 at 10,
    /// 20 and 40 steps of a Barenblatt flow at 128², the deposit 2.1e-2 / 1.5e-2 / 1.3e-2).
    /// Under `Auto`, a step whose change-of-variables ascent stalls above its grid's floor
    /// goes on with the deposit from its best iterate: the change of variables differentiates
    /// the map, which fails when the step moves mass far. Measured: KL to a two-bump target
    /// from a centred Gaussian (64², τ = 0.01; W₂ 0.11 from the zero start) stalled at an
    /// H⁻¹ error of 2.7e-2 (1.7 cells; 32² to 256²: 3.7e-2, 2.7e-2, 1.9e-2, 0.16, F(ρ₁) 0.41
    /// to 0.26), and with the deposit from the start reaches its floor, 5.5e-3 (1.5e-2 /
    /// 5.5e-3 / 2.0e-3 / 7.2e-4, F(ρ₁) 0.3392 / 0.3336 / 0.3323 / 0.3321); the deposit
    /// throughout was 10–100× less accurate on the other flows of the zoo.
    pub fn uses_jacobian(&self, mu: &ScalarField) -> bool {
        match self.push_forward {
            PushForward::Jacobian => true,
            PushForward::Deposit => false,
            PushForward::Auto => mu.min() > 0.0,
        }
    }

    /// Whether a step holds cells empty and pushes by the identity-exact deposit
    /// (`Dual::held`, `identity_exact_deposit`): for an energy with a finite `e'(0)`
    /// (porous medium, χ²: compact supports) from a μ with empty cells, pushed by the
    /// deposit. The plain deposit smooths ρ by `D = I + h²Δ_h/8` at every push, an O(h²)
    /// change per step that does not shrink with τ, so at a fixed grid small steps drift
    /// from the JKO scheme: Barenblatt flows, L1/M to the exact JKO recursion
    /// ([`crate::analytic::barenblatt::Barenblatt::jko_scale`]), m = 3 at 128² 2.2e-3 /
    /// 5.6e-3 / 8.3e-3 / 4.2e-2 at 10 / 20 / 40 / 80 steps, m = 2 at 64² 3.0e-3 / 7.6e-3 /
    /// 5.2e-2 at 20 / 80 / 320 steps. The identity-exact deposit alone removes the drift but
    /// lights the empty cells (their dual variable sits just below `e'(0)` and the unit-mass
    /// shift lifts it over: a halo of 1e-3 of the peak, 5e-4 of the mass, m = 2 at 64² with
    /// 10 steps); holding the cells outside `supp P_S μ` empty removes the halo without
    /// pinning the front (holding cells dark through p, as a lowered start, pinned it:
    /// 0.10 and 0.55 from the JKO solution at 64² with 320 steps). With both, see
    /// docs/flows.md for the figures.
    ///
    /// Only for steps that move mass by less than `HOLD_REACH_CELLS` (1) cells (the explicit
    /// start's largest displacement): a held cell lights only once the plain deposit reaches
    /// it, so a front that moves several cells in one step lags. Measured, one step of 3e-3
    /// (L1/M to the exact JKO step): m = 2 at 64² (the front moves 6 cells) 2.1e-3 with the
    /// plain deposit, 9.2e-3 with both; at 128² 6.5e-4 against 2.8e-3; m = 3 at 128² 5.2e-4
    /// against 3.1e-3.
    pub fn holds_empty_cells(&self, energy: &Energy, mu: &ScalarField) -> bool {
        let candidate = !self.uses_jacobian(mu)
            && mu.min() <= 0.0
            && energy.internal.is_some_and(|e| e.has_compact_support());
        candidate
            && self.explicit_potential(energy, mu).1 < HOLD_REACH_CELLS * mu.grid().max_spacing()
    }

    /// Checks τ, the tolerance and the budget.
    pub fn validate(&self) -> Result<()> {
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return Err(Error::invalid(format!("τ must be positive and finite, got {}", self.tau)));
        }
        if let Some(tol) = self.tolerance.filter(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(Error::invalid(format!(
                "JKO tolerance must be positive and finite, got {tol}"
            )));
        }
        if self.max_iterations == 0 {
            return Err(Error::invalid("JKO max_iterations must be at least 1"));
        }
        Ok(())
    }
}

/// One solved JKO step.
#[derive(Clone, Debug)]
pub struct JkoStep {
    /// `ρ₁ = (e*)'(p/τ − V)`, unit mass.
    pub density: ScalarField,
    /// The displacement potential on ρ₁'s side: `x + ∇p` carries ρ₁ back onto μ (warm start
    /// of the next step).
    pub p: ScalarField,
    /// How the step's ascent ended.
    pub outcome: Outcome,
    /// Back-and-forth iterations.
    pub iterations: usize,
    /// Preconditioned CG iterations of the metric's solves, summed over the half steps.
    pub cg_iterations: usize,
    /// The larger H⁻¹ marginal error of the returned pair.
    pub marginal_error: f64,
    /// `J(p)/τ`: a lower bound of the step's minimum `F(ρ₁) + W₂²(ρ₁, μ)/(2τ)`.
    pub dual_value: f64,
    /// `∫ |∇p|² ρ₁`: the step's squared transport distance `W₂²(ρ₁, μ)`.
    pub w2_squared: f64,
    /// `F(ρ₁) + W₂²/(2τ) − J(p)/τ` with the W₂² above: how far the returned pair is from
    /// optimal (0 at the exact solution of the discrete step; NaN for a Lagrangian step).
    pub dual_gap: f64,
}

/// The planned operators of a flow's grid, reused by every step.
pub struct JkoWorkspace {
    grid: Grid,
    /// `(−Δ)⁻¹` for the H⁻¹ stopping measure.
    poisson: PoissonSolver,
    /// The preconditioner's `(−Δ + λ)⁻¹` and its λ.
    shifted: Option<(f64, PoissonSolver)>,
    /// The step's metric (planned per step).
    metric: Option<WeightedSolver>,
    norm: Vec<f64>,
    identity: VectorField,
    jacobian: JacobianPushForward,
    residual: Vec<f64>,
    correction: Vec<f64>,
}

impl JkoWorkspace {
    /// Plans the Poisson solver for `grid`.
    pub fn new(grid: &Grid) -> Result<JkoWorkspace> {
        let n = grid.num_cells();
        Ok(JkoWorkspace {
            grid: grid.clone(),
            poisson: PoissonSolver::new(grid, 0.0, Symbol::Discrete)?
                .with_mean_policy(MeanPolicy::Project),
            shifted: None,
            metric: None,
            norm: vec![0.0; n],
            identity: VectorField::from_fn(grid, |x, out| out.copy_from_slice(x)),
            jacobian: JacobianPushForward::new(grid)?,
            residual: vec![0.0; n],
            correction: vec![0.0; n],
        })
    }
}

/// The iterate: p (normalised to unit mass), q = p^c and J(p).
struct Iterate {
    p: ScalarField,
    q: ScalarField,
    value: f64,
}

/// The step's data: energy, μ, τ, and the cells held empty.
struct Dual<'a> {
    energy: &'a Energy,
    mu: &'a ScalarField,
    tau: f64,
    vol: f64,
    /// Cells whose density is held at 0 (their dual variable put [`HELD_DEPTH`] below
    /// `e'(0)` in the density, the dual value and the unit-mass shift; p, its c-transform and
    /// the maps are untouched): `Some` for a compact-support energy with the identity-exact
    /// deposit ([`JkoParams::holds_empty_cells`]), whose forward half steps set it to the
    /// cells outside the plain deposit's support `supp P_S μ`.
    held: Option<Held>,
}

/// The cells a step holds empty ([`Dual::held`]) and, per cell, the ceiling their dual
/// variable is held under (`e'(0) −` [`HELD_DEPTH`]; +∞ for the other cells), computed once
/// per held set.
#[derive(Clone)]
struct Held {
    cells: Vec<bool>,
    ceiling: Vec<f64>,
}

impl Held {
    fn new(energy: &Energy, cells: Vec<bool>) -> Held {
        let ceiling = cells
            .par_iter()
            .enumerate()
            .map(
                |(i, &held)| {
                    if held {
                        energy.derivative_at(i, 0.0) - HELD_DEPTH
                    } else {
                        f64::INFINITY
                    }
                },
            )
            .collect();
        Held { cells, ceiling }
    }
}

impl Dual<'_> {
    /// `s = p/τ − V`.
    fn dual_variable(&self, p: &ScalarField) -> Vec<f64> {
        self.dual_variable_slice(p.data().as_slice().expect("contiguous"))
    }

    /// [`Self::dual_variable`] of cell values.
    fn dual_variable_slice(&self, p: &[f64]) -> Vec<f64> {
        let tau = self.tau;
        let mut s: Vec<f64> = match &self.energy.potential {
            Some(v) => {
                let v = v.data().as_slice().expect("contiguous");
                p.par_iter().zip(v.par_iter()).map(|(p, v)| p / tau - v).collect()
            }
            None => p.par_iter().map(|p| p / tau).collect(),
        };
        if let Some(held) = &self.held {
            let cells = held.cells.par_iter().zip(held.ceiling.par_iter());
            s.par_iter_mut().zip(cells).for_each(|(s, (held, ceiling))| {
                if *held {
                    *s = s.min(*ceiling);
                }
            });
        }
        s
    }

    /// Shifts p so that `ρ_p` has unit mass; returns the shift.
    fn normalise(&self, p: &mut ScalarField) -> Result<f64> {
        let s = self.dual_variable(p);
        let shift = self.tau * self.energy.unit_mass_shift(&s, self.vol)?;
        p.as_mut_slice().par_iter_mut().for_each(|v| *v += shift);
        Ok(shift)
    }

    /// `ρ_p = (e*)'(p/τ − V)`.
    fn density(&self, p: &ScalarField) -> Result<ScalarField> {
        let e = self.energy;
        let rho: Vec<f64> = self
            .dual_variable(p)
            .into_par_iter()
            .enumerate()
            .map(|(i, s)| e.density_at(i, s))
            .collect();
        ScalarField::from_vec(p.grid(), rho)
    }

    /// `J = −∫ q dμ − τ ∫ e*(p/τ − V)`.
    fn value(&self, p: &ScalarField, q: &ScalarField) -> f64 {
        let e = self.energy;
        let s = self.dual_variable(p);
        let conj: f64 = crate::field::ordered_sum(s.len(), |r| {
            s[r.clone()].iter().zip(r).map(|(&v, i)| e.conjugate_at(i, v)).sum()
        });
        let qmu = dot(
            q.data().as_slice().expect("contiguous"),
            self.mu.data().as_slice().expect("contiguous"),
        );
        -(qmu + self.tau * conj) * self.vol
    }

    /// `p − σc`, the forward half step's candidate; given the iterate's dual variable s (for
    /// an energy with a domain edge, [`Self::has_edge`]) a cell where s rises takes the
    /// linearised density instead:
    /// `s₁ = e'(ρ + (e*)''(s) Δs)` with `Δs = −σc/τ` (`s₁ ≤ s + Δs`, as ρ(s) is convex), the
    /// same direction to first order in σ. Near the domain's edge ρ(s) grows like
    /// 1/(edge − s): a step of s that the quadratic model takes for a doubling of ρ reaches
    /// the edge. Measured: Jensen–Shannon between two Gaussians (32², τ = 0.01), step sizes
    /// ~1e-3 of the natural one and the first step stalled at an H⁻¹ error of 7.3e-2 (2.3
    /// cells); with the linearised density 5.4e-4.
    fn step_p(
        &self,
        out: &mut ScalarField,
        p: &ScalarField,
        s: Option<&[f64]>,
        correction: &[f64],
        sigma: f64,
    ) {
        let e = self.energy;
        let out = out.as_mut_slice();
        let p = p.data();
        let p = p.as_slice().expect("contiguous");
        let Some(s) = s else {
            out.par_iter_mut()
                .zip(p.par_iter().zip(correction.par_iter()))
                .for_each(|(o, (p, c))| *o = p - sigma * c);
            return;
        };
        let tau = self.tau;
        out.par_iter_mut()
            .zip(p.par_iter().zip(correction.par_iter()).zip(s.par_iter()))
            .enumerate()
            .for_each(|(i, (o, ((p, c), s)))| {
                let rise = -sigma * c / tau;
                *o = if rise > 0.0 {
                    let linear = e.density_at(i, *s) + e.curvature_at(i, *s) * rise;
                    p + tau * (e.derivative_at(i, linear) - s).min(rise)
                } else {
                    p - sigma * c
                };
            });
    }

    /// Whether the energy's density blows up at a finite dual value (`sup dom e* < ∞`: the
    /// divergences Jensen–Shannon, Hellinger, reverse KL). Their curvature `(e*)''` changes
    /// by orders of magnitude within a step, so their forward half steps rebuild the p side's
    /// metric at the iterate — weight `max(ρ_p, S#μ)` (the transport Hessian's weight is
    /// S#μ, which a start far from the solution misses) floored at 1 %, diagonal
    /// `(e*)''(s)/τ` — and take the linearised density where s rises ([`Self::step_p`]).
    /// Measured, 32², τ = 0.01, from a Gaussian to another: reverse KL's first step stalled
    /// at an H⁻¹ error of 4.1e-2 before, 2.7e-3 with both (with the linearised density alone
    /// it still stalled; with the metric alone a later step ended above half a cell);
    /// Hellinger 1.4e-2 → 7.7e-4; Jensen–Shannon to a
    /// two-bump target at 128² (one step): dual gap −4.4e-3 with H⁻¹ error 2.5e-3 (taken for
    /// the floor but not solved) → −2.1e-4 with 1.9e-4. The entropy, χ² and porous media keep
    /// the step's metric (porous m = 2 from a compact support: 47 → 13 iterations, but its
    /// error 1.9e-3 → 2.8e-3).
    fn has_edge(&self) -> bool {
        self.energy.internal.as_ref().is_some_and(|e| e.max_dual().is_finite())
    }

    /// The iterate at p: normalised, with its c-transform and value.
    fn iterate(&self, mut p: ScalarField) -> Result<Iterate> {
        self.normalise(&mut p)?;
        let q = c_transform(&p, p.grid())?;
        let value = self.value(&p, &q);
        Ok(Iterate { p, q, value })
    }
}

impl JkoParams {
    /// The explicit start `p₀ = τ(e'(μ) + V)`: `ρ_{p₀} = μ`, and `x + ∇p₀` moves μ by one
    /// explicit Euler step of the flow backwards (the first step's start, and the start
    /// after an entropic step; other steps start from the previous step's p).
    /// When that step would move mass by more than a quarter of the domain (large τ: it is
    /// no longer a small step), the start is zero instead: `ρ₀` is then the energy's own
    /// minimiser over densities and the transport part starts from the identity.
    ///
    /// For the entropy and KL, μ is floored at [`START_FLOOR`] of its peak first and the
    /// displacement is measured in the mean, `(∫|∇p₀|²μ / ∫μ)^{1/2}`: `log μ` jumps where μ
    /// is cut off — by −708 (the clamped `log 0`) at a compact support's edge, by 20 at a
    /// torus' seam under a Gaussian whose tails do not wrap — and the jumps' large `∇p₀` sit
    /// on light cells. Measured: 64² torus, a Gaussian of width 0.1 at (0.3, 0.6), D = 0.05,
    /// τ = 0.01 — with the largest displacement as the test (0.6 at the seam, on cells of
    /// 1 % of the peak) the start was zero and the first step stalled at an H⁻¹ error of
    /// 0.13 with its energy risen, now 2.2e-3; a heat flow from a compact support (64²,
    /// D = 0.01, τ = 0.005) with the mean test and no floor stalled at 0.5, now 3.9e-3. The
    /// other energies keep the largest displacement and no floor (both changes raised
    /// Jensen–Shannon and Hellinger flows' energies).
    pub fn explicit_start(&self, energy: &Energy, mu: &ScalarField) -> ScalarField {
        let (p, reach) = self.explicit_potential(energy, mu);
        let side = mu.grid().axes().iter().map(|a| a.length()).fold(0.0, f64::max);
        if reach <= 0.25 * side {
            p
        } else {
            // (also for a non-finite reach)
            ScalarField::zeros(mu.grid())
        }
    }

    /// [`Self::explicit_start`]'s potential `τ(e'(μ) + V)` and the reach of its
    /// displacement on μ's support: the mean for the entropy and KL (μ floored), else the
    /// largest.
    fn explicit_potential(&self, energy: &Energy, mu: &ScalarField) -> (ScalarField, f64) {
        let mut p = mu.clone();
        let entropy = matches!(energy.internal, Some(Internal::Entropy { .. }));
        let floor =
            if entropy { START_FLOOR * mu.data().iter().copied().fold(0.0, f64::max) } else { 0.0 };
        match energy.internal {
            Some(_) => p.as_mut_slice().iter_mut().enumerate().for_each(|(i, v)| {
                *v = self.tau * energy.derivative_at(i, v.max(floor));
            }),
            None => p.as_mut_slice().fill(0.0),
        }
        if let Some(v) = &energy.potential {
            p.data_mut().zip_mut_with(v.data(), |p, v| *p += self.tau * v);
        }
        let g = gradient(&p);
        let d = mu.grid().dim();
        let (moved, mass, largest) = g
            .data()
            .as_slice()
            .expect("contiguous")
            .chunks(d)
            .zip(mu.data().iter())
            .filter(|(_, m)| **m > 0.0)
            .fold((0.0, 0.0, 0.0_f64), |(a, b, c), (v, m)| {
                let square = v.iter().map(|x| x * x).sum::<f64>();
                (a + m * square, b + m, c.max(square.sqrt()))
            });
        let reach = if entropy { (moved / mass).sqrt() } else { largest };
        (p, reach)
    }

    /// `T#μ` for `T = id + v`, a displacement v of a fraction of a cell (BDF2's
    /// extrapolation, [`super::TimeScheme::Bdf2`]; v need not be a gradient). A positive μ is
    /// pushed by change of variables ([`push_forward_by_displacement`]: smooth and positive,
    /// so the step from it keeps the change-of-variables push-forward); where that fails (T not
    /// invertible on the grid), or μ has empty cells, by the deposit — identity-exact where a
    /// step from μ holds empty cells ([`Self::holds_empty_cells`]; the plain deposit smooths
    /// by `D = I + h²Δ_h/8` once per step), raised to 0 (or to half of a positive μ) where
    /// it is signed, and the mass restored by a scale. Measured on the flow zoo's `narrow`
    /// and `two-bumps` BDF2 flows before the warm start was scaled to the step's τ: with the
    /// deposit for positive μ the steps from its aliased ρ̃ ended at H⁻¹ errors of 4.1e-3
    /// and 1.1e-2 (above the zoo's half cell), with the change of variables at 3.0e-3 and
    /// 6.7e-3; with the scaled warm start as well at 8.9e-5 and 9.9e-5, the JKO steps' own.
    pub fn push_near_identity(
        &self,
        energy: &Energy,
        mu: &ScalarField,
        displacement: &VectorField,
    ) -> Result<ScalarField> {
        let grid = mu.grid();
        if mu.min() > 0.0 {
            if let Some(out) = push_forward_by_displacement(mu, displacement) {
                return Ok(out);
            }
        }
        let mut map = VectorField::from_fn(grid, |x, o| o.copy_from_slice(x));
        map.data_mut().zip_mut_with(displacement.data(), |m, v| *m += v);
        if !(mu.min() > 0.0 || self.holds_empty_cells(energy, mu)) {
            return push_forward_adaptive(mu, &map, grid, self.subsamples);
        }
        let mut out = identity_exact_deposit(mu, &map, self.subsamples)?;
        let floor = if mu.min() > 0.0 { 0.5 } else { 0.0 };
        out.data_mut().zip_mut_with(mu.data(), |o, m| *o = o.max(floor * m));
        let (before, after) = (mu.integral(), out.integral());
        if after > 0.0 {
            out.data_mut().mapv_inplace(|v| v * before / after);
        }
        Ok(out)
    }

    /// The step of an energy without internal part, `F(ρ) = ∫ V ρ` (the non-local terms
    /// frozen into V): `ρ₁ = T#μ` with `T = id − τ∇V` (central differences), deposited with
    /// [`push_forward_adaptive`] — mass kept to round-off, ρ₁ ≥ 0, mass that T carries past a
    /// box face stays in the boundary cell. JKO's optimality condition is `T = id − τ∇V∘T`;
    /// taking ∇V at x changes the step at O(τ²), so the scheme stays first order in τ.
    /// `p = τV` (`x + ∇p` carries ρ₁ back to first order).
    pub fn lagrangian_step(&self, energy: &Energy, mu: &ScalarField) -> Result<JkoStep> {
        self.validate()?;
        let grid = mu.grid();
        let tau = self.tau;
        let (density, w2_squared, p) = match &energy.potential {
            None => (mu.clone(), 0.0, ScalarField::zeros(grid)),
            Some(v) => {
                if v.grid() != grid {
                    return Err(Error::invalid("JKO step: density or potential on another grid"));
                }
                let g = gradient(v);
                let mut map = VectorField::from_fn(grid, |x, out| out.copy_from_slice(x));
                map.data_mut().zip_mut_with(g.data(), |m, g| *m -= tau * g);
                let w2 = tau * tau * weighted_square(&g, mu);
                let rho = push_forward_adaptive(mu, &map, grid, self.subsamples)?;
                let mut p = v.clone();
                p.data_mut().mapv_inplace(|x| tau * x);
                (rho, w2, p)
            }
        };
        Ok(JkoStep {
            density,
            p,
            outcome: Outcome::Converged,
            iterations: 0,
            cg_iterations: 0,
            marginal_error: 0.0,
            dual_value: f64::NAN,
            w2_squared,
            dual_gap: f64::NAN,
        })
    }

    /// The step from μ again on the grid refined twice per axis, for a `coarse` step whose
    /// floor is above [`REFINE_FLOOR_CELLS`] of its cells: μ and the energy's fields
    /// interpolated onto it ([`refine_density`]; potentials by cubic interpolation), the
    /// ascent warm-started from the coarse p interpolated, and the density and p
    /// cell-averaged back (unit mass, non-negative). Its floor in the coarse grid's cells is
    /// about a quarter of the coarse step's: the floors of such steps — large steps that tear
    /// the mass apart — fall as h². `None` where the refined grid would exceed
    /// [`REFINE_MAX_CELLS`] or its ascent does not reach a floor either. Not for non-local
    /// energies (their kernels are planned on the flow's grid).
    pub fn refined_step(
        &self,
        energy: &Energy,
        mu: &ScalarField,
        coarse: &JkoStep,
    ) -> Result<Option<JkoStep>> {
        let grid = mu.grid();
        let axes = grid.axes().iter().map(|a| Axis { cells: 2 * a.cells, ..a.clone() }).collect();
        let fine = Grid::new(axes)?;
        if fine.num_cells() > REFINE_MAX_CELLS || !energy.nonlocal.is_empty() {
            return Ok(None);
        }
        let mut refined = energy.clone();
        refined.potential = energy.potential.as_ref().map(|v| prolong(v, &fine));
        refined.reference = energy.reference.as_ref().map(|nu| refine_density(nu, &fine));
        let mu_fine = refine_density(mu, &fine);
        let mut ws = JkoWorkspace::new(&fine)?;
        let step = self.step(&refined, &mu_fine, &prolong(&coarse.p, &fine), &mut ws)?;
        if !matches!(step.outcome, Outcome::Converged | Outcome::DiscretisationFloor { .. })
            || step.marginal_error >= coarse.marginal_error
        {
            return Ok(None);
        }
        let mut density = restrict(&step.density, grid)?;
        let mass = density.integral();
        density.data_mut().mapv_inplace(|v| v / mass);
        Ok(Some(JkoStep {
            density,
            p: restrict(&step.p, grid)?,
            iterations: coarse.iterations + step.iterations,
            cg_iterations: coarse.cg_iterations + step.cg_iterations,
            ..step
        }))
    }

    /// Solves one step from μ with energy `energy`, starting from the potential `start` (the
    /// previous step's p, or [`Self::explicit_start`]). Runs on a rayon worker thread, so
    /// that its many small parallel loops fork and join inside the pool (called from outside
    /// it, each loop paid a cross-thread hand-off: 70 % of the time at 32²).
    pub fn step(
        &self,
        energy: &Energy,
        mu: &ScalarField,
        start: &ScalarField,
        ws: &mut JkoWorkspace,
    ) -> Result<JkoStep> {
        rayon::scope(|_| self.step_in_pool(energy, mu, start, ws))
    }

    fn step_in_pool(
        &self,
        energy: &Energy,
        mu: &ScalarField,
        start: &ScalarField,
        ws: &mut JkoWorkspace,
    ) -> Result<JkoStep> {
        self.validate()?;
        if energy.internal.is_none() {
            return Err(Error::invalid(
                "JKO step: the dual step needs an internal energy (entropy, porous medium or a \
                 divergence)",
            ));
        }
        let grid = ws.grid.clone();
        if mu.grid() != &grid || start.grid() != &grid {
            return Err(Error::invalid("JKO step: density or potential on another grid"));
        }
        let held = self
            .holds_empty_cells(energy, mu)
            .then(|| Held::new(energy, vec![false; grid.num_cells()]));
        let mut dual = Dual { energy, mu, tau: self.tau, vol: grid.cell_volume(), held };
        let tol = self.tol(&grid);
        // A start whose density no shift gives unit mass in double precision (a divergence's
        // dual variable against its edge) falls back to the zero start.
        let mut it = match dual.iterate(start.clone()) {
            Ok(it) => it,
            Err(e) => {
                tracing::debug!("JKO step: the start is not usable ({e}); starting from zero");
                dual.iterate(ScalarField::zeros(&grid))?
            }
        };
        self.build_metric(&dual, &it, ws)?;
        let mut sigma = [1.0; 2];
        // (error, p, held cells) of the best iterate.
        let mut best: Option<(f64, ScalarField, Option<Held>)> = None;
        let (mut mark, mut mark_at) = (f64::INFINITY, 0usize);
        let mut outcome = Outcome::IterationLimit;
        let mut iterations = 0;
        let mut cg_iterations = 0;
        let mut last_error = f64::INFINITY;
        let mut jacobian = self.uses_jacobian(mu);
        for k in 0..self.max_iterations {
            iterations = k + 1;
            let (h_f, ascent_f, cg_f) =
                self.half_step(&mut dual, &mut it, &mut sigma[0], true, jacobian, ws)?;
            let (h_b, ascent_b, cg_b) =
                self.half_step(&mut dual, &mut it, &mut sigma[1], false, jacobian, ws)?;
            cg_iterations += cg_f + cg_b;
            let error = h_f.max(h_b);
            tracing::trace!(
                "JKO iteration {k}: H⁻¹ marginal errors {h_f:.3e} / {h_b:.3e}, J {:.10e}, steps \
                 {:.3e} / {:.3e}",
                it.value,
                sigma[0],
                sigma[1]
            );
            last_error = error;
            if !error.is_finite() || !it.value.is_finite() {
                outcome = Outcome::Diverged;
                break;
            }
            if best.as_ref().is_none_or(|b| error < b.0) {
                best = Some((error, it.p.clone(), dual.held.clone()));
            }
            if error <= tol {
                outcome = Outcome::Converged;
                break;
            }
            if error < FLOOR_PROGRESS * mark {
                (mark, mark_at) = (error, k);
            }
            // A floor is [`FLOOR_CELLS`] cell widths at most; a stall above that is a failed
            // ascent. At the floor, an iteration that neither lowers the error's mark nor
            // finds an ascent at [`MIN_STEP`] ends the step at once.
            let floor = best.as_ref().map_or(error, |b| b.0);
            let at_floor = floor <= FLOOR_CELLS * grid.max_spacing();
            if at_floor && k > mark_at && !(ascent_f && ascent_b) {
                outcome = Outcome::DiscretisationFloor { floor };
                break;
            }
            if k >= mark_at + FLOOR_WINDOW {
                if !at_floor && jacobian && self.push_forward == PushForward::Auto {
                    // See [`JkoParams::uses_jacobian`]: the rest of the step deposits, from
                    // the best iterate, with its own error record.
                    tracing::debug!(
                        "JKO step: the change-of-variables push-forward stalled at an H⁻¹ \
                         error of {floor:.2e}; the step goes on with the deposit"
                    );
                    jacobian = false;
                    it = dual.iterate(best.take().expect("an error was recorded").1)?;
                    sigma = [1.0; 2];
                    (mark, mark_at) = (f64::INFINITY, k);
                    continue;
                }
                outcome = if at_floor {
                    Outcome::DiscretisationFloor { floor }
                } else {
                    Outcome::Stalled
                };
                break;
            }
        }
        let (marginal_error, p) = match (outcome, best) {
            (Outcome::Converged, _) | (_, None) => (last_error, it.p),
            (_, Some((e, p, held))) => {
                dual.held = held;
                (e, p)
            }
        };
        let it = dual.iterate(p)?;
        let mut density = dual.density(&it.p)?;
        // Unit mass to round-off (the shift's mass may miss 1 by up to 1e-8 near an edge).
        let mass = density.integral();
        density.data_mut().mapv_inplace(|v| v / mass);
        let w2 = weighted_square(&gradient(&it.p), &density);
        let dual_value = it.value / self.tau;
        let primal = energy.value(&density)? + w2 / (2.0 * self.tau);
        Ok(JkoStep {
            density,
            p: it.p,
            outcome,
            iterations,
            cg_iterations,
            marginal_error,
            dual_value,
            w2_squared: w2,
            dual_gap: primal - dual_value,
        })
    }

    /// The energy's part of J's Hessian at the dual variable s (density ρ = ρ_p): the
    /// diagonal `(e*)''(s)/τ`, with the support's mean off a compact support and, where
    /// the support has an edge, capped at 4× that mean.
    fn curvature_diagonal(&self, dual: &Dual, s: &[f64], rho: &[f64]) -> Vec<f64> {
        let mut d: Vec<f64> =
            s.iter().enumerate().map(|(i, s)| dual.energy.curvature_at(i, *s) / self.tau).collect();
        // Off the support (compact supports: porous medium) e*'s curvature is 0, but a
        // step that raises s above 0 there meets the support's curvature at once: the
        // metric takes the support's mean there. Measured on Barenblatt flows (m = 2;
        // 32², 64², 128² with 10, 20, 40 steps): L1 2.5e-2 / 1.2e-2 / 4.8e-3, against
        // 9.6e-2 / 3.0e-2 / 1.3e-2 with 0 off the support (spurious mass up to 0.5 of a
        // cell's peak outside the support).
        let (sum, count) = d
            .iter()
            .zip(rho.iter())
            .filter(|(_, r)| **r > 0.0)
            .fold((0.0, 0usize), |(a, c), (d, _)| (a + d, c + 1));
        let mean = sum / count.max(1) as f64;
        // At a support's edge the curvature may be unbounded (m > 2: (e*)' ∝ s^{1/(m−1)}),
        // which freezes the steps there: with a support edge the diagonal is capped at 4×
        // the support's mean (Barenblatt, m = 3, support inside the box, 32² / 64² / 128²
        // with 10 / 20 / 40 steps: L1/M 2.17e-2 / 1.15e-2 / 1.05e-2, against 2.16e-2 /
        // 1.74e-2 / 2.20e-2 uncapped; m = 2, whose curvature is constant on the support,
        // unchanged).
        let edge = count < d.len();
        d.iter_mut().zip(rho.iter()).for_each(|(d, r)| {
            if *r <= 0.0 {
                *d = mean;
            } else if edge {
                *d = d.min(4.0 * mean);
            }
        });
        d
    }

    /// Plans the step's metric at the start iterate: J's Hessian in p is about −(−∇·(ρ∇) + (e*)''(s)/τ) (the transport part,
    /// then the energy's), in q the same with μ's weight: steps solve that weighted,
    /// shifted operator by preconditioned CG (W^{-1/2}(−Δ + λ)⁻¹W^{-1/2}, λ = Σ d w / Σ w²:
    /// 1/(Dτ) for the entropy), approximate Newton steps of natural size 1. With the plain
    /// H¹ metric the condition number grows like 1/(Dτ) times the density's contrast
    /// (measured: an Ornstein–Uhlenbeck step from a zero start stalled at an H⁻¹ error of
    /// 1.3e-2 after 52 iterations).
    /// Built once per step (but see [`Dual::has_edge`]).
    fn build_metric(&self, dual: &Dual, it: &Iterate, ws: &mut JkoWorkspace) -> Result<()> {
        let grid = ws.grid.clone();
        let rho = dual.density(&it.p)?;
        let s = dual.dual_variable(&it.p);
        let d = self.curvature_diagonal(dual, &s, rho.data().as_slice().expect("contiguous"));
        let slices = [rho.data(), dual.mu.data()];
        let slices = [slices[0].as_slice().expect("c"), slices[1].as_slice().expect("c")];
        let fit = |w: &[f64]| {
            let (num, den) =
                w.iter().zip(&d).fold((0.0, 0.0), |(n, m), (w, d)| (n + d * w, m + w * w));
            (num / den).max(0.0)
        };
        let positive = slices[1].par_iter().all(|m| *m > 0.0);
        let metric = if positive && schroedinger_form(dual.energy, &d, slices[0], &grid) {
            // The q side's operator at the solution, where T#ρ_p = μ: weight μ and the
            // diagonal pulled back through the map, d(S(x)) det DS(x) = λμ(x).
            let lambda = fit(slices[0]);
            let q_diagonal = slices[1].iter().map(|m| lambda * m).collect();
            WeightedSolver::with_weights([
                floored(slices[0], TAIL_FLOOR),
                floored(slices[1], TAIL_FLOOR),
            ])
            .with_diagonals([d.clone(), q_diagonal])
        } else {
            WeightedSolver::with_weights([floored(slices[0], FLOOR), floored(slices[1], FLOOR)])
                .with_diagonals([d.clone(), d.clone()])
        };
        let lambda = fit(metric.weights(0));
        let replan = ws.shifted.as_ref().is_none_or(|(l, _)| (l - lambda).abs() > 1e-3 * lambda);
        if replan {
            let solver = PoissonSolver::new(&grid, lambda, Symbol::Discrete)?
                .with_mean_policy(MeanPolicy::Project);
            ws.shifted = Some((lambda, solver));
        }
        ws.metric = Some(metric);
        Ok(())
    }

    /// One half step: `forward` ascends in p (matching ρ_p to S#μ), else in q (matching
    /// T#ρ_p to μ). Returns the H⁻¹ marginal error measured before the step, whether J rose
    /// at a step size of at least [`MIN_STEP`] (else the iterate is left unchanged) and the
    /// metric's CG iterations.
    fn half_step(
        &self,
        dual: &mut Dual,
        it: &mut Iterate,
        sigma: &mut f64,
        forward: bool,
        jacobian: bool,
        ws: &mut JkoWorkspace,
    ) -> Result<(f64, bool, usize)> {
        let grid = &ws.grid;
        let vol = dual.vol;
        // (moving potential, its c-transform) and the residual target − pushed.
        let (target, pushed) = if forward {
            let pushed = if jacobian {
                let inverse = c_transform(&it.q, grid)?;
                let mut out = ScalarField::zeros(grid);
                ws.jacobian.apply_cubic(
                    dual.mu,
                    inverse.data().as_slice().expect("c"),
                    out.as_mut_slice(),
                );
                out
            } else {
                let mut map = gradient(&it.q);
                map.data_mut().zip_mut_with(ws.identity.data(), |a, b| *a += b);
                if dual.held.is_some() {
                    let plain = push_forward_adaptive(dual.mu, &map, grid, self.subsamples)?;
                    let held: Vec<bool> = plain.data().iter().map(|v| *v <= 0.0).collect();
                    if dual.held.as_ref().map(|h| &h.cells) != Some(&held) {
                        // J changes with the held cells: the iterate is renormalised.
                        let before = dual.held.replace(Held::new(dual.energy, held));
                        match dual.iterate(it.p.clone()) {
                            Ok(next) => *it = next,
                            Err(_) => dual.held = before,
                        }
                    }
                    identity_exact_deposit(dual.mu, &map, self.subsamples)?
                } else {
                    push_forward_adaptive(dual.mu, &map, grid, self.subsamples)?
                }
            };
            (dual.density(&it.p)?, pushed)
        } else {
            // The q side: J(q) sees p = q^c (c-concave, normalised).
            if let Ok(next) = dual.iterate(c_transform(&it.q, grid)?) {
                *it = next;
            }
            let rho = dual.density(&it.p)?;
            let pushed = if jacobian {
                let mut out = ScalarField::zeros(grid);
                ws.jacobian.apply_cubic(
                    &rho,
                    it.q.data().as_slice().expect("c"),
                    out.as_mut_slice(),
                );
                out
            } else {
                let mut map = gradient(&it.p);
                map.data_mut().zip_mut_with(ws.identity.data(), |a, b| *a += b);
                if dual.held.is_some() {
                    identity_exact_deposit(&rho, &map, self.subsamples)?
                } else {
                    push_forward_adaptive(&rho, &map, grid, self.subsamples)?
                }
            };
            (dual.mu.clone(), pushed)
        };
        let (t, r) = (target.data(), pushed.data());
        let (t, r) = (t.as_slice().expect("contiguous"), r.as_slice().expect("contiguous"));
        ws.residual
            .par_iter_mut()
            .zip(t.par_iter().zip(r.par_iter()))
            .for_each(|(out, (t, r))| *out = t - r);
        let (_, shifted) = ws.shifted.as_mut().expect("planned on entry");
        let metric = ws.metric.as_mut().expect("planned on entry");
        // The iterate's dual variable, for an energy with an edge ([`Dual::has_edge`]): the
        // p side's metric at the iterate and the candidates' linearised density.
        let s_iterate = (forward && dual.has_edge()).then(|| dual.dual_variable(&it.p));
        if let Some(s) = &s_iterate {
            let w: Vec<f64> = t.par_iter().zip(r.par_iter()).map(|(a, b)| a.max(*b)).collect();
            let d = self.curvature_diagonal(dual, s, t);
            metric.set_side(0, floored(&w, FLOOR), Some(d));
        }
        let k = if forward { 0 } else { 1 };
        let cg = metric.solve(grid, shifted, k, &ws.residual, &mut ws.correction)?;
        tracing::trace!("JKO metric: {cg} CG iterations");
        let predicted = dot(&ws.residual, &ws.correction) * vol;
        ws.poisson.solve(&ws.residual, &mut ws.norm)?;
        let error = (dot(&ws.residual, &ws.norm) * vol).max(0.0).sqrt();
        let before = it.value;
        while *sigma >= MIN_STEP {
            let candidate = if forward {
                let mut p = it.p.clone();
                let s = *sigma;
                dual.step_p(&mut p, &it.p, s_iterate.as_deref(), &ws.correction, s);
                dual.iterate(p)
            } else {
                let mut q = it.q.clone();
                let s = *sigma;
                q.as_mut_slice()
                    .par_iter_mut()
                    .zip(ws.correction.par_iter())
                    .for_each(|(v, c)| *v -= s * c);
                dual.iterate(c_transform(&q, grid)?)
            };
            let Ok(candidate) = candidate else {
                *sigma *= 0.5;
                continue;
            };
            let rise = candidate.value - before;
            if rise.is_finite() && rise >= -1e-14 * before.abs() {
                if rise > 0.75 * *sigma * predicted {
                    *sigma *= 1.25;
                } else if rise < 0.25 * *sigma * predicted {
                    *sigma *= 0.8;
                }
                *it = candidate;
                return Ok((error, true, cg));
            }
            *sigma *= 0.5;
        }
        *sigma = MIN_STEP;
        Ok((error, false, cg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;
    use crate::ot::flow::energy::Divergence;

    /// The forward candidate of a divergence with a domain edge (Jensen–Shannon, edge
    /// ½ log 2): where s rises, the new density is the linearised one, `ρ + (e*)''(s)Δs`,
    /// however close s is to the edge (the plain step `s + Δs` crosses it); where s falls,
    /// and for energies without an edge (χ²), the candidate is `p − σc`.
    #[test]
    fn rising_cells_take_the_linearised_density() {
        let grid = Grid::unit(2, 4, BoundaryKind::Neumann).unwrap();
        let n = grid.num_cells();
        let nu = ScalarField::from_fn(&grid, |x| 0.5 + x[0]);
        let mut energy = Energy::new(Internal::Divergence(Divergence::JensenShannon), None);
        energy.reference = Some(nu);
        let mu = ScalarField::from_fn(&grid, |_| 1.0);
        let tau = 0.01;
        let edge = 0.5 * std::f64::consts::LN_2;
        // s = edge − gap: densities from ν/3 (gap 0.1) to ~ν·1e5 (gap 1e-5).
        let gaps: Vec<f64> = (0..n).map(|i| 10f64.powi(-1 - (i % 5) as i32)).collect();
        let p =
            ScalarField::from_vec(&grid, gaps.iter().map(|g| tau * (edge - g)).collect()).unwrap();
        // Rises of 10 gaps in even cells (past the edge for the plain step), falls in odd.
        let correction: Vec<f64> = (0..n)
            .map(|i| if i % 2 == 0 { 10.0 * tau * gaps[i] } else { -tau * gaps[i] })
            .collect();
        let sigma = 1.0;
        let dual = Dual { energy: &energy, mu: &mu, tau, vol: grid.cell_volume(), held: None };
        let mut out = ScalarField::zeros(&grid);
        assert!(dual.has_edge());
        let s = dual.dual_variable(&p);
        dual.step_p(&mut out, &p, Some(&s), &correction, sigma);
        let (p, out) = (p.data().as_slice().unwrap(), out.data().as_slice().unwrap());
        for i in 0..n {
            let (s0, s1) = (p[i] / tau, out[i] / tau);
            let rise = -sigma * correction[i] / tau;
            if rise > 0.0 {
                let linear = energy.density_at(i, s0) + energy.curvature_at(i, s0) * rise;
                assert!(s1 < edge && s1 <= s0 + rise, "cell {i}: s {s0} → {s1}");
                let rho = energy.density_at(i, s1);
                assert!((rho - linear).abs() <= 1e-6 * linear, "cell {i}: {rho} vs {linear}");
            } else {
                assert_eq!(out[i], p[i] - sigma * correction[i], "cell {i}");
            }
        }
        let chi2 = Energy::new(Internal::Divergence(Divergence::ChiSquared), None);
        let dual = Dual { energy: &chi2, mu: &mu, tau, vol: grid.cell_volume(), held: None };
        let q = ScalarField::from_vec(&grid, p.to_vec()).unwrap();
        let mut out = ScalarField::zeros(&grid);
        assert!(!dual.has_edge());
        dual.step_p(&mut out, &q, None, &correction, sigma);
        for (i, o) in out.data().iter().enumerate() {
            assert_eq!(*o, p[i] - sigma * correction[i]);
        }
    }

    /// The tails keep their weight only for an entropy-like curvature `d = λρ` with λ large
    /// against the box's lowest modes: not for a varying `d/ρ`, a small λ or a capped diagonal.
    #[test]
    fn only_an_entropy_curvature_above_the_gate_is_of_schroedinger_form() {
        let grid = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let rho: Vec<f64> = (0..64).map(|i| (-(i as f64) / 4.0).exp()).collect();
        let entropy = Energy::new(Internal::Entropy { diffusion: 0.05 }, None);
        let d = |lambda: f64| rho.iter().map(|r| lambda * r).collect::<Vec<f64>>();
        assert!(schroedinger_form(&entropy, &d(2000.0), &rho, &grid));
        assert!(!schroedinger_form(&entropy, &d(50.0), &rho, &grid), "below the gate");
        let mut capped = d(2000.0);
        capped[0] *= 0.5;
        assert!(!schroedinger_form(&entropy, &capped, &rho, &grid), "a capped diagonal");
        let mut hellinger = entropy.clone();
        hellinger.internal = Some(Internal::Divergence(Divergence::Hellinger));
        assert!(!schroedinger_form(&hellinger, &d(2000.0), &rho, &grid), "not an entropy");
    }
}
