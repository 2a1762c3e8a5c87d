//! The parabolic Monge–Ampère flow: time-stepping
//!
//! `∂ₜu = F(u) − c(t)`,  `F(u) = log det(I + D²u) + log g(x + ∇u) − log f`,
//!
//! for the displacement potential `u = φ − |x|²/2` (second boundary condition on box axes,
//! periodic axes wrap; `c(t) = mean F` keeps `Σ u = 0`). The flow is the gradient flow whose
//! steady state is the Brenier potential; discretised in time it is a mirror-descent
//! refinement of the map, `u_{k+1} = u_k + η_k (F(u_k) − c_k)` (in the dual, with
//! `ρ_k = (∇φ_k)#μ`, `ψ_{k+1} = ψ_k + η_k log(ρ_k/ν)`), the continuous-time limit of
//! Sinkhorn's alternating projections as ε → 0.
//!
//! * Space: the operator `F` of [`super::monge_ampere`] — central differences (`∇_h` 2 points,
//!   `D_kk` 3 points, `D_kl` 4 diagonal points; second order, consistent), mirror ghosts on
//!   box faces, wrapped periodic axes, `log g` interpolated multilinearly at `x + ∇_h u`.
//!   The linearised stencil `A : D²_h v + ∇log g · ∇_h v` (`A = (I + D²_h u)⁻¹`) is
//!   monotone (all off-diagonal weights ≥ 0) when `A_kk/h_k² ≥ Σ_{l≠k} |A_kl|/(h_k h_l)` and
//!   the cell Péclet number `|∂_k log g| h_k / (2 A_kk)` is at most 1 — true near the
//!   solution for smooth densities on fine grids, not for strongly anisotropic Hessians
//!   (a wide-stencil monotone scheme is not implemented).
//! * Time, [`Stepping::Explicit`]: forward Euler, stable and monotone for
//!   `η ≤ η_CFL = min_cells 1 / Σ_k 2 A_kk / h_k²` (from the current Hessian).
//!   [`Stepping::LinearlyImplicit`]: `(I − η J_k) δ = η (F(u_k) − c_k)` with `J_k` the exact
//!   linearisation of the discrete `F`, solved by BiCGSTAB preconditioned with the planned
//!   `(−Δ_h + 1/η)` FFT/DCT solver (relative tolerance 1e-6): unconditionally stable, and as `η → ∞` the step is
//!   Newton's.
//! * Step sizes ([`Schedule`]): constant, `η₀/√(k+1)`, `η₀/(k+1)`, geometric `η₀ rᵏ`, and
//!   CFL-adaptive `θ η_CFL(u_k)`. An implicit step that would leave the discretely convex
//!   set (`I + D²_h u` not positive definite somewhere) is halved until it does not (the
//!   recorded `η` is the one taken); an explicit one stops the run, reported as such.
//! * Diagnostics per iteration (HDF5 `/diagnostics/…`): the residual `max |F − c|` (the
//!   stopping measure, as for Newton), `KL(ρ_k‖ν)`, by the change of variables `y = T(x)`
//!   `∫ f (e^{r} − 1 − r) dx` with `r = F − c` (≥ 0, the generalised KL of the pulled-back
//!   densities), the cumulative regret `Σ_{j≤k} KL(ρ_j‖ν)` and the step `η_k`. Observers
//!   see the potential of every iteration (`otgrid ot` records the map error against a
//!   closed form that way).
//! * Targets known through samples ([`Batches`]): a fresh kernel density estimate of `B`
//!   samples per step in place of ν (see [`batches`]).

pub mod batches;
pub(crate) use batches::Stochastic;
pub use batches::{with_background, Batches, SampleStream};

use super::lift::{lifted_for, GaussianLift};
use super::monge_ampere::{
    dual_value, initial_state, krylov_step, map_shift_in_cells, pullback_errors_with, stopping,
    KrylovStep, KrylovSystem, Linearisation, Rows, StepOps, Term, WholeGrid, KRYLOV_ITERATIONS,
    SETTLED_MAP_SHIFT,
};
pub(crate) use super::monge_ampere::{CellLinearisation, MongeAmpere};
use super::problem::{
    IterationRecord, Options, Outcome, Problem, Solution, Solver, Step, Stopping,
};
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::Grid;
use rayon::prelude::*;
use std::sync::Arc;
use std::time::Instant;

/// Step-size schedule `η_k` of the flow.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `η_k = η`.
    Constant(f64),
    /// `η_k = η₀ / √(k+1)`.
    InverseSqrt(f64),
    /// `η_k = η₀ / (k+1)`.
    Harmonic(f64),
    /// `η_k = η₀ rᵏ`.
    Geometric { initial: f64, ratio: f64 },
    /// `η_k = θ η_CFL(u_k)`, the explicit stability bound from the current Hessian.
    Cfl(f64),
}

impl Schedule {
    /// Parses `constant:ETA`, `sqrt:ETA0`, `harmonic:ETA0`, `geometric:ETA0,RATIO` or
    /// `cfl:THETA`.
    pub fn parse(spec: &str) -> Result<Schedule> {
        let bad = || {
            Error::invalid(format!(
                "bad schedule '{spec}' (expected constant:ETA, sqrt:ETA0, harmonic:ETA0, \
                 geometric:ETA0,RATIO or cfl:THETA with positive numbers)"
            ))
        };
        let (kind, args) = spec.split_once(':').ok_or_else(bad)?;
        let numbers: Vec<f64> = args
            .split(',')
            .map(|a| a.trim().parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        if numbers.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(bad());
        }
        match (kind.trim(), numbers.as_slice()) {
            ("constant", [eta]) => Ok(Schedule::Constant(*eta)),
            ("sqrt", [eta]) => Ok(Schedule::InverseSqrt(*eta)),
            ("harmonic", [eta]) => Ok(Schedule::Harmonic(*eta)),
            ("geometric", [eta, ratio]) => Ok(Schedule::Geometric { initial: *eta, ratio: *ratio }),
            ("cfl", [theta]) => Ok(Schedule::Cfl(*theta)),
            _ => Err(bad()),
        }
    }

    /// `η_k`, given the current explicit stability bound.
    pub fn step(&self, k: usize, cfl_bound: f64) -> f64 {
        let k1 = (k + 1) as f64;
        match *self {
            Schedule::Constant(eta) => eta,
            Schedule::InverseSqrt(eta) => eta / k1.sqrt(),
            Schedule::Harmonic(eta) => eta / k1,
            Schedule::Geometric { initial, ratio } => initial * ratio.powi(k.min(1000) as i32),
            Schedule::Cfl(theta) => theta * cfl_bound,
        }
    }
}

/// How a time step is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stepping {
    /// Forward Euler (needs `η ≤ η_CFL`).
    Explicit,
    /// `(I − η J) δ = η (F − c)`, unconditionally stable; Newton as `η → ∞`.
    LinearlyImplicit,
}

/// Parabolic Monge–Ampère solver settings.
#[derive(Clone, serde::Serialize)]
pub struct Parabolic {
    /// Stop once the max norm of the Monge–Ampère residual `log(g(∇φ) det D²φ / f)` is at
    /// most this; `None`: 1e-6 ([`METHOD`]).
    pub tolerance: Option<f64>,
    /// Time steps allowed; `None`: 500.
    pub max_iterations: Option<usize>,
    pub schedule: Schedule,
    pub stepping: Stepping,
    /// Starting displacement potential (discretely convex); zero when `None`.
    #[serde(skip)]
    pub initial: Option<ScalarField>,
    /// Continue a run from its saved state (overrides `initial`); the result equals the
    /// uninterrupted run's.
    #[serde(skip)]
    pub resume: Option<FlowState>,
    /// Every this many iterations, hand the state to `checkpoint`.
    pub checkpoint_every: Option<usize>,
    /// Receives the state every `checkpoint_every` iterations (e.g. writes a file).
    #[serde(skip)]
    pub checkpoint: Option<FlowCheckpoint>,
    /// As [`super::Newton::lift`]: below [`super::MIN_CONTRAST`] the flow runs on the lifted pair
    /// (its residual, KL and regret are the lifted pair's; the dual value and map error are
    /// measured on the densities as given).
    pub lift: Option<GaussianLift>,
    /// Target known through samples: each step uses a fresh batch's density estimate (see
    /// [`Batches`]); the problem's target is then the reference of the diagnostics and of
    /// the stopping measure, and the run takes its whole step budget (outcome `completed`).
    #[serde(skip)]
    pub batches: Option<Batches>,
}

/// The flow's state at the start of iteration `iteration`, from which [`Parabolic::resume`]
/// continues exactly.
#[derive(Clone, Debug)]
pub struct FlowState {
    /// The iteration about to be taken.
    pub iteration: usize,
    /// The displacement potential.
    pub u: ScalarField,
    /// Cumulative regret so far.
    pub regret: f64,
    /// Records of the iterations so far.
    pub history: Vec<IterationRecord>,
    /// KL divergence and cumulative regret per iteration.
    pub kl: Vec<f64>,
    pub regret_history: Vec<f64>,
}

/// Receives [`FlowState`]s (see [`Parabolic::checkpoint`]).
pub type FlowCheckpoint = Arc<dyn Fn(&FlowState) -> Result<()> + Send + Sync>;

impl Default for Parabolic {
    /// Linearly implicit steps from `η₀ = 0.1`, doubling: the flow at first, Newton-like
    /// once `η` is large.
    fn default() -> Self {
        Parabolic {
            tolerance: None,
            max_iterations: None,
            schedule: Schedule::Geometric { initial: 0.1, ratio: 2.0 },
            stepping: Stepping::LinearlyImplicit,
            initial: None,
            resume: None,
            checkpoint_every: None,
            checkpoint: None,
            lift: Some(GaussianLift::default()),
            batches: None,
        }
    }
}

impl std::fmt::Debug for Parabolic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parabolic")
            .field("schedule", &self.schedule)
            .field("stepping", &self.stepping)
            .field("resume", &self.resume.as_ref().map(|s| s.iteration))
            .field("checkpoint_every", &self.checkpoint_every)
            .field("batch", &self.batches.as_ref().map(|b| b.size))
            .finish()
    }
}

/// Most halvings of an implicit step that would leave the discretely convex set.
const MAX_HALVINGS: usize = 30;

/// The step from which implicit steps count as Newton steps for the floor rule: `η λ₁ ≥ 400`
/// for the first eigenvalue `λ₁ ≈ 4π²` of the linearised operator on a unit box.
const NEWTON_LIKE_STEP: f64 = 10.0;

/// `max_cells Σ_k 2 A_kk / h_k²` on this process's cells: `η_CFL` is its inverse over
/// every process.
fn cfl_rate(ma: &MongeAmpere, cells: &[CellLinearisation]) -> f64 {
    let (d, h) = (ma.dim, ma.spacing);
    cells
        .par_iter()
        .map(|c| (0..d).map(|k| 2.0 * c.inverse_hessian[k][k] / (h[k] * h[k])).sum::<f64>())
        .reduce(|| 0.0, f64::max)
}

/// The registry entry of the parabolic Monge–Ampère flow: tolerance 1e-6 on the max
/// Monge–Ampère residual.
pub const METHOD: super::method::MethodInfo = super::method::MethodInfo {
    name: "parabolic",
    stopping_measure: "max Monge-Ampere residual |log(g(T) det DT / f)|",
    default_tolerance: |_| 1e-6,
    max_iterations: 500,
    unsuited: super::lift::unsuited,
    settings: &[
        super::method::Setting {
            name: "schedule",
            help: "step sizes: constant:ETA, sqrt:ETA0, harmonic:ETA0, geometric:ETA0,RATIO or \
                   cfl:THETA (default geometric:0.1,2; cfl:0.9 when explicit)",
        },
        super::method::Setting {
            name: "explicit",
            help: "true: forward-Euler steps instead of linearly implicit ones (default false)",
        },
    ],
    configure: |settings| {
        let explicit = settings.parse::<bool>("explicit")?.unwrap_or(false);
        let stepping = if explicit { Stepping::Explicit } else { Stepping::LinearlyImplicit };
        let schedule = match (settings.get("schedule"), stepping) {
            (Some(spec), _) => Schedule::parse(spec)?,
            (None, Stepping::Explicit) => Schedule::Cfl(0.9),
            (None, Stepping::LinearlyImplicit) => Parabolic::default().schedule,
        };
        let (tolerance, max_iterations) = settings.stopping()?;
        Ok(Box::new(Parabolic {
            tolerance,
            max_iterations,
            schedule,
            stepping,
            ..Default::default()
        }))
    },
    memory_fields: super::monge_ampere::memory_fields,
};

impl super::method::ConfiguredSolver for Parabolic {
    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn as_flow_mut(&mut self) -> Option<&mut Parabolic> {
        Some(self)
    }
}

/// One process's grid operations for the flow ([`Parabolic::iterate`]): the whole grid
/// ([`WholeFlow`]), or a rank's planes (`crate::distributed::slab_parabolic`). Every call is a
/// collective there, and every process gets the same answer.
pub(crate) trait FlowLayout: StepOps {
    /// The operator on this process's cells.
    fn ma(&self) -> &MongeAmpere;
    /// The grid of this process's values.
    fn local_grid(&self) -> &Grid;
    /// `F(u)` and its linearisation on this process's cells; `None` (on every process) when
    /// `u` is not discretely convex somewhere.
    fn evaluate(&mut self, u: &[f64]) -> Result<Option<Evaluation>>;
    /// The largest of every process's `value`.
    fn max(&self, value: f64) -> f64;
    /// `(∫(−p) dμ + ∫(−q) dν, q)` with `q = p^c`, for the densities as given.
    fn dual_value(&mut self, p: &[f64]) -> Result<(f64, Vec<f64>)>;
    /// [`map_shift_in_cells`] of the step `v`.
    fn map_shift(&mut self, v: &[f64]) -> Result<f64>;
}

/// `F(u)` and the cells' linearisations.
pub(crate) type Evaluation = (Vec<f64>, Vec<CellLinearisation>);

/// The flow's operations on the whole grid.
struct WholeFlow<'a> {
    ma: MongeAmpere,
    problem: &'a Problem,
    steps: WholeGrid,
}

impl StepOps for WholeFlow<'_> {
    fn apply_rows(&mut self, rows: &Rows, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.steps.apply_rows(rows, x, y)
    }
    fn poisson(&mut self, shift: f64, r: &[f64], z: &mut [f64]) -> Result<()> {
        self.steps.poisson(shift, r, z)
    }
    fn sum(&self, term: &Term) -> f64 {
        self.steps.sum(term)
    }
    fn cells(&self) -> usize {
        self.steps.cells()
    }
}

impl FlowLayout for WholeFlow<'_> {
    fn ma(&self) -> &MongeAmpere {
        &self.ma
    }
    fn local_grid(&self) -> &Grid {
        self.problem.grid()
    }
    fn evaluate(&mut self, u: &[f64]) -> Result<Option<Evaluation>> {
        Ok(self.ma.evaluate(u))
    }
    fn max(&self, value: f64) -> f64 {
        value
    }
    fn dual_value(&mut self, p: &[f64]) -> Result<(f64, Vec<f64>)> {
        let (value, q) =
            dual_value(self.problem, &ScalarField::from_vec(self.problem.grid(), p.to_vec())?)?;
        Ok((value, q.data().iter().copied().collect()))
    }
    fn map_shift(&mut self, v: &[f64]) -> Result<f64> {
        Ok(map_shift_in_cells(v, self.problem.grid()))
    }
}

/// `max |r − mean r|` over every process's cells.
fn max_deviation(layout: &impl FlowLayout, r: &[f64]) -> f64 {
    let c = layout.mean(r);
    layout.max(r.par_iter().map(|v| (v - c).abs()).reduce(|| 0.0, f64::max))
}

/// Where a flow starts ([`Parabolic::iterate`]): this process's potential, `F` there and its
/// linearisation, the lifted source's values for the pull-back errors, and the state a
/// resumed run continues from.
pub(crate) struct Start {
    pub(crate) u: Vec<f64>,
    pub(crate) evaluation: Evaluation,
    pub(crate) source: Vec<f64>,
    pub(crate) resumed: Option<FlowState>,
}

impl Solver for Parabolic {
    fn solve(&self, problem: &Problem, options: &Options) -> Result<Solution> {
        let options =
            &options.stopping(&METHOD, problem.grid(), self.tolerance, self.max_iterations)?;
        let start = Instant::now();
        let start_from = self.resume.as_ref().map(|s| &s.u).or(self.initial.as_ref());
        let unsuited = match self.batches {
            Some(_) => super::lift::unsuited_for_samples,
            None => super::lift::unsuited,
        };
        let lifted = lifted_for("parabolic", self.lift, problem, unsuited)?;
        let lift = lifted.as_ref().map(|(l, _)| *l);
        let equation = lifted.as_ref().map_or(problem, |(_, p)| p);
        let (ma, mut u, mut residual, mut lin) = initial_state(equation, start_from, "parabolic")?;
        let f: Vec<f64> = equation.source().data().iter().copied().collect();
        let stochastic = match &self.batches {
            Some(batches) => Some(Stochastic::new(batches, self, problem, &ma)?),
            None => None,
        };
        if let Some(state) = &self.resume {
            // The saved potential exactly (initial_state re-centres it by its round-off mean).
            u = state.u.data().iter().copied().collect();
            (residual, lin) = ma.evaluate(&u).ok_or_else(|| {
                Error::invalid("the saved potential is not discretely convex on this problem")
            })?;
        }
        let steps = WholeGrid::new(problem.grid());
        let mut layout = WholeFlow { ma, problem, steps };
        let begin =
            Start { u, evaluation: (residual, lin), source: f, resumed: self.resume.clone() };
        let mut solution = self.iterate(&mut layout, begin, stochastic, options, start)?;
        solution.scalars =
            lift.map(|l| vec![("lift_mass".to_string(), l.mass)]).unwrap_or_default();
        Ok(solution)
    }
}

impl Parabolic {
    /// The flow's time steps on `layout`'s cells from `begin` (see the module's description);
    /// `stochastic`: the sample-based flow's batches (the whole grid only). The solution's
    /// fields are this process's values on [`FlowLayout::local_grid`].
    pub(crate) fn iterate<L: FlowLayout>(
        &self,
        layout: &mut L,
        begin: Start,
        mut stochastic: Option<Stochastic>,
        options: &Stopping,
        start: Instant,
    ) -> Result<Solution> {
        let grid = layout.local_grid().clone();
        let vol = layout.ma().grid().cell_volume();
        let Start { mut u, evaluation: (mut residual, mut lin), source: f, resumed } = begin;
        let mut history = Vec::new();
        let (mut kl_history, mut regret_history) = (vec![], vec![]);
        let mut regret = 0.0;
        let mut settled_at = false;
        let mut first = 0;
        if let Some(state) = &resumed {
            history.clone_from(&state.history);
            kl_history.clone_from(&state.kl);
            regret_history.clone_from(&state.regret_history);
            regret = state.regret;
            first = state.iteration;
        }
        let (mut outcome, mut stop_reason, mut error) =
            (Outcome::Stalled, String::new(), f64::INFINITY);
        let mut delta = Vec::with_capacity(u.len());
        let mut q = Vec::new();
        for k in first..=options.budget() {
            if let (Some(every), Some(save)) = (self.checkpoint_every, &self.checkpoint) {
                if every > 0 && k > first && k % every == 0 {
                    save(&FlowState {
                        iteration: k,
                        u: ScalarField::from_vec(&grid, u.clone())?,
                        regret,
                        history: history.clone(),
                        kl: kl_history.clone(),
                        regret_history: regret_history.clone(),
                    })?;
                }
            }
            let max = max_deviation(layout, &residual);
            error = max;
            let c = layout.mean(&residual);
            let (l1, kl) = pullback_errors_with(&|t| layout.sum(t), &residual, c, &f, vol);
            if stochastic.is_none() {
                regret += kl;
            }
            let dual;
            (dual, q) = layout.dual_value(&u)?;
            let p = ScalarField::from_vec(&grid, u.clone())?;
            history.push(IterationRecord {
                marginal_error: max,
                l1_marginal_error: l1,
                dual_value: dual,
                step: Step::None,
            });
            kl_history.push(kl);
            if stochastic.is_none() {
                regret_history.push(regret);
            }
            let record = history.last().expect("pushed");
            let stop = stopping(max, k, options, start, ("parabolic", record, &p))
                // A sample-based run takes its whole budget: the residual against the
                // problem's target is not its stopping measure.
                .filter(|(end, _)| !(stochastic.is_some() && *end == Outcome::Converged));
            if let Some((end, reason)) = stop {
                (outcome, stop_reason) = (end, reason);
                if let (Outcome::IterationLimit, Some(s)) = (outcome, &stochastic) {
                    outcome = Outcome::Completed;
                    stop_reason = format!(
                        "took {k} steps with batches of {} samples (a sample-based flow runs \
                         its step budget; residual against the problem's target {max:.3e})",
                        s.batches.size
                    );
                }
                break;
            }
            if settled_at {
                outcome = Outcome::DiscretisationFloor { floor: max };
                stop_reason = format!(
                    "the Monge–Ampère residual stopped falling at {max:.3e} (tolerance {:.3e}) \
                     with a step that moved the map by at most {SETTLED_MAP_SHIFT} cells: the \
                     floor of the discrete equation",
                    options.tol()
                );
                break;
            }
            let cfl = 1.0 / layout.max(cfl_rate(layout.ma(), &lin));
            let mut eta = self.schedule.step(k, cfl);
            // Implicit steps grow at most twofold from the last accepted one: after a
            // halving the schedule resumes from there (the lifted reference pair at 64²:
            // stalled at residual 8.5 with η jumping back to the schedule's; converged in
            // 63 steps with the cap). A ratio-2 geometric schedule without halvings is
            // unaffected.
            if self.stepping == Stepping::LinearlyImplicit {
                if let Some(last) = history.len().checked_sub(2).map(|j| history[j].step.value()) {
                    eta = eta.min(2.0 * last);
                }
            }
            // The step's operator: this step's batch target, or the problem's.
            let batch = match &mut stochastic {
                Some(s) => Some(s.step(k, &u, &f, vol)?),
                None => None,
            };
            if let (Some((_, _, _, loss)), Some(s)) = (&batch, &stochastic) {
                regret += loss;
                regret_history.push(regret);
                debug_assert!(s.losses.len() == regret_history.len());
            }
            let mut accepted = None;
            for _ in 0..=MAX_HALVINGS {
                match self.stepping {
                    Stepping::Explicit => {
                        let (step_residual, step_c) = match &batch {
                            Some((r, _, cb, _)) => (r, *cb),
                            None => (&residual, c),
                        };
                        delta.clear();
                        delta.extend(step_residual.iter().map(|r| eta * (r - step_c)));
                    }
                    Stepping::LinearlyImplicit => {
                        // (1/η − J) δ = F − c.
                        let settings = KrylovStep {
                            tolerance: 1e-6,
                            max_iterations: KRYLOV_ITERATIONS,
                            retry: true,
                            forcing: false,
                        };
                        let at = match (&batch, &stochastic) {
                            (Some((r, l, cb, _)), Some(s)) => {
                                Linearisation { ma: &s.ma, cells: l, residual: r, c: *cb }
                            }
                            _ => Linearisation {
                                ma: layout.ma(),
                                cells: &lin,
                                residual: &residual,
                                c,
                            },
                        };
                        let system = KrylovSystem::new(&at, 1.0 / eta);
                        let solved = krylov_step(layout, &system, &mut delta, settings);
                        if let Err(e) = solved {
                            // A smaller η makes the system more diagonally dominant.
                            tracing::debug!("parabolic: η = {eta:.3e}: {e}; halving η");
                            eta *= 0.5;
                            continue;
                        }
                        let shift = layout.mean(&delta);
                        delta.iter_mut().for_each(|x| *x -= shift);
                    }
                }
                let trial: Vec<f64> =
                    u.par_iter().zip(delta.par_iter()).map(|(a, b)| a + b).collect();
                if let Some((r, l)) = layout.evaluate(&trial)? {
                    accepted = Some((trial, r, l));
                    break;
                }
                // Explicit steps follow the schedule exactly; implicit ones are damped (as
                // when their linear solve fails).
                if self.stepping == Stepping::Explicit {
                    break;
                }
                eta *= 0.5;
            }
            history.last_mut().expect("recorded").step = Step::Time(eta);
            // At Newton-like steps (η ≥ NEWTON_LIKE_STEP) a step that moved the map by a
            // negligible fraction of a cell without halving the residual has met the floor
            // of the discrete equation (as Newton's rule).
            let settled = match &accepted {
                Some((_, r, _))
                    if self.stepping == Stepping::LinearlyImplicit
                        && stochastic.is_none()
                        && eta >= NEWTON_LIKE_STEP =>
                {
                    max_deviation(layout, r) > 0.5 * max
                        && layout.map_shift(&delta)? <= SETTLED_MAP_SHIFT
                }
                _ => false,
            };
            match accepted {
                Some((trial, r, l)) => {
                    u = trial;
                    residual = r;
                    lin = l;
                    settled_at |= settled;
                    if let Some(s) = &mut stochastic {
                        s.accumulate(&u, layout.ma(), &f, vol);
                    }
                }
                None if self.stepping == Stepping::Explicit => {
                    stop_reason = format!(
                        "step {k} (η = {eta:.3e}) left the discretely convex set with residual \
                         {max:.3e}; explicit steps need η ≤ η_CFL = {cfl:.3e}"
                    );
                    break;
                }
                None => {
                    stop_reason = format!(
                        "step {k}: no implicit step down to η = {eta:.3e} keeps the potential \
                         discretely convex (residual {max:.3e})"
                    );
                    break;
                }
            }
            tracing::debug!("parabolic: iteration {k}: residual {max:.3e}, η {eta:.3e}");
        }
        let mut diagnostics = vec![
            ("kl_divergence".to_string(), kl_history),
            ("cumulative_regret".to_string(), regret_history),
        ];
        let mut dual = history.last().map_or(0.0, |r| r.dual_value);
        if let Some(s) = stochastic {
            if let Some(average) = s.average().filter(|_| s.batches.average) {
                // The answer is the average iterate: its residual and dual value.
                let (r, _) = layout.evaluate(&average)?.expect("averages of convex potentials are");
                error = max_deviation(layout, &r);
                u = average;
                (dual, q) = layout.dual_value(&u)?;
            }
            diagnostics.push(("batch_kl".to_string(), s.losses));
            diagnostics.push(("average_kl_divergence".to_string(), s.average_kl));
        }
        Ok(Solution {
            method: "parabolic",
            outcome,
            stop_reason,
            marginal_error: error,
            dual_value: dual,
            iterations: history.len() - 1,
            seconds: start.elapsed().as_secs_f64(),
            history,
            diagnostics,
            scalars: vec![],
            p: ScalarField::from_vec(&grid, u)?,
            q: ScalarField::from_vec(&grid, q)?,
        })
    }
}

impl std::str::FromStr for Schedule {
    type Err = crate::error::Error;
    /// Same as the inherent parser.
    fn from_str(s: &str) -> Result<Schedule, Self::Err> {
        Schedule::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{BoundaryKind, Grid};
    use crate::ot::verify::{verify_case, Case};
    use crate::ot::Method;
    use std::f64::consts::PI;

    /// A 1D problem embedded in a `n × 4` box (densities depend on x only, so the map is the
    /// 1D quantile map in x and the identity in y).
    fn quasi_1d(n: usize, f: fn(f64) -> f64, g: fn(f64) -> f64) -> Problem {
        let grid = Grid::uniform(&[n, 4], &[0.0, 0.0], &[1.0, 1.0], BoundaryKind::Neumann).unwrap();
        Problem::new(
            &ScalarField::from_fn(&grid, |x| f(x[0])),
            &ScalarField::from_fn(&grid, |x| g(x[0])),
        )
        .unwrap()
    }

    fn run(problem: &Problem, solver: &Parabolic, tol: f64, iterations: usize) -> Solution {
        let solver =
            Parabolic { tolerance: Some(tol), max_iterations: Some(iterations), ..solver.clone() };
        solver.solve(problem, &Options::default()).unwrap()
    }

    /// 1D: the flow converges to the quantile map `G⁻¹ ∘ F`; max error ≤ 1e-3 at h = 1/200
    /// (second-order scheme: measured well below).
    #[test]
    fn one_dimensional_flow_converges_to_the_quantile_map() {
        let f = |x: f64| 1.0 + 0.5 * (PI * x).cos();
        let g = |y: f64| 1.0 + 0.3 * (2.0 * PI * y).cos();
        let cdf_f = |x: f64| x + 0.5 * (PI * x).sin() / PI;
        let cdf_g = |y: f64| y + 0.3 * (2.0 * PI * y).sin() / (2.0 * PI);
        let problem = quasi_1d(200, f, g);
        let solution = run(&problem, &Parabolic::default(), 1e-9, 100);
        assert!(solution.converged(), "{}", solution.stop_reason);
        let map = solution.map(&problem);
        let grid = problem.grid();
        let mut worst: f64 = 0.0;
        for i in 0..200 {
            let x = grid.axis(0).center(i);
            let target = cdf_f(x);
            let (mut lo, mut hi) = (0.0, 1.0);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if cdf_g(mid) < target {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            for j in 0..4 {
                let t = map.data()[[j, i, 0]];
                worst = worst.max((t - 0.5 * (lo + hi)).abs());
                assert!((map.data()[[j, i, 1]] - grid.axis(1).center(j)).abs() < 1e-9);
            }
        }
        assert!(worst <= 1e-3, "max map error {worst}");
    }

    /// Fits `log r_k ≈ a − λ t_k` (t_k = Σ η) over the iterations `from..`; returns (λ, R²).
    fn decay_rate(solution: &Solution, from: usize) -> (f64, f64) {
        let mut t = 0.0;
        let mut points = Vec::new();
        for (k, rec) in solution.history.iter().enumerate() {
            if k >= from {
                points.push((t, rec.marginal_error.ln()));
            }
            t += rec.step.value();
        }
        let n = points.len() as f64;
        let (mx, my) = points.iter().fold((0.0, 0.0), |a, p| (a.0 + p.0 / n, a.1 + p.1 / n));
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
        (-sxy / sxx, sxy * sxy / (sxx * syy))
    }

    /// Under a constant admissible explicit step the residual decays exponentially (fit R² ≥
    /// 0.999); the rate per unit time is the same for η and η/2 (the time-continuous flow,
    /// within 3 %) and close to the first eigenvalue π² of the linearised operator (here
    /// `A ∂²ₓ` with A ≈ 1/f ∈ [0.83, 1.25] and Neumann ends: within 25 %).
    #[test]
    fn explicit_constant_step_decays_exponentially_at_the_predicted_rate() {
        let problem = quasi_1d(48, |x| 1.0 + 0.2 * (PI * x).cos(), |_| 1.0);
        let h = 1.0 / 48.0;
        let eta = 0.4 * h * h; // η_CFL ≈ h²/(2 A) ≥ 0.4 h²
        let mut rates = Vec::new();
        for (eta, iterations) in [(eta, 3000), (0.5 * eta, 6000)] {
            let solver = Parabolic {
                schedule: Schedule::Constant(eta),
                stepping: Stepping::Explicit,
                ..Default::default()
            };
            let solution = run(&problem, &solver, 1e-300, iterations);
            assert!(solution.history.len() == iterations + 1, "{}", solution.stop_reason);
            let (rate, r2) = decay_rate(&solution, iterations / 3);
            assert!(r2 > 0.999, "R² {r2}");
            rates.push(rate);
        }
        assert!((rates[0] / rates[1] - 1.0).abs() < 0.03, "rates {rates:?}");
        let lambda = PI * PI;
        assert!((rates[0] / lambda - 1.0).abs() < 0.25, "rate {} vs π² {lambda}", rates[0]);
    }

    /// After the same number of explicit steps from the same η₀, the residual orders as the
    /// elapsed time Σ η_k says: constant < η₀/√(k+1) < η₀/(k+1); the CFL-adaptive schedule
    /// and the linearly implicit geometric one converge; KL ≥ 0 and falls, regret grows.
    #[test]
    fn schedules_order_as_their_elapsed_time() {
        let case = Case::Periodic2d;
        let problem = case.problem(32).unwrap();
        let h = 1.0 / 32.0;
        let eta = 0.1 * h * h; // below η_CFL ≥ h²/8 along the path (A_kk ≤ 2)
        let final_residual = |schedule: Schedule| {
            let solver = Parabolic { schedule, stepping: Stepping::Explicit, ..Default::default() };
            run(&problem, &solver, 1e-300, 300).marginal_error
        };
        let constant = final_residual(Schedule::Constant(eta));
        let sqrt = final_residual(Schedule::InverseSqrt(eta));
        let harmonic = final_residual(Schedule::Harmonic(eta));
        assert!(constant < sqrt && sqrt < harmonic, "{constant} {sqrt} {harmonic}");
        let explicit_cfl = Parabolic {
            schedule: Schedule::Cfl(0.9),
            stepping: Stepping::Explicit,
            ..Default::default()
        };
        let solution = run(&problem, &explicit_cfl, 1e-6, 5000);
        assert!(solution.converged(), "{}", solution.stop_reason);
        let implicit = run(&problem, &Parabolic::default(), 1e-9, 30);
        assert!(implicit.converged() && implicit.iterations <= 15, "{}", implicit.iterations);
        let kl = &implicit.diagnostics[0].1;
        let regret = &implicit.diagnostics[1].1;
        assert!(kl.iter().all(|&v| v >= 0.0) && kl.last().unwrap() < &(1e-6 * kl[0]));
        assert!(regret.windows(2).all(|w| w[1] >= w[0]));
    }

    /// The flow's steady state is the discrete Monge–Ampère solution: second-order map
    /// convergence on the verification suite's separable box case and periodic case.
    #[test]
    fn converges_to_the_analytic_maps_at_second_order() {
        for case in [Case::Separable2d, Case::Periodic2d] {
            let rows = verify_case(
                case,
                Some(Method::PARABOLIC),
                &[32, 64, 128],
                crate::ot::verify::Suite::Classic,
            )
            .unwrap();
            for row in &rows {
                assert!(row.outcome == "converged", "{case:?} {}", row.cells);
            }
            for row in &rows[1..] {
                let order = row.order.unwrap();
                assert!(order >= 1.9, "{case:?} order {order} at {}", row.cells);
            }
        }
    }

    /// A step that leaves the discretely convex set stops the run, reported as such; a
    /// vanishing density and malformed schedules are one-line errors.
    #[test]
    fn bad_steps_and_inputs_are_reported() {
        let problem = quasi_1d(32, |x| 1.0 + 0.8 * (PI * x).cos(), |_| 1.0);
        let solver = Parabolic {
            schedule: Schedule::Constant(10.0),
            stepping: Stepping::Explicit,
            ..Default::default()
        };
        let solution = run(&problem, &solver, 1e-8, 50);
        assert!(!solution.converged());
        assert!(solution.stop_reason.contains("convex"), "{}", solution.stop_reason);
        let zero = quasi_1d(32, |x| if x < 0.5 { 0.0 } else { 1.0 }, |_| 1.0);
        let e = Parabolic::default().solve(&zero, &Options::default()).unwrap_err();
        assert!(e.to_string().contains("zero regions"), "{e}");
        let unlifted = Parabolic { lift: None, ..Default::default() };
        let e = unlifted.solve(&zero, &Options::default()).unwrap_err();
        assert!(e.to_string().contains("positive"), "{e}");
        for bad in ["constant", "constant:-1", "sqrt:a", "geometric:1", "warp:1", "cfl:nan"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Schedule::parse("geometric:0.1,2").unwrap(),
            Schedule::Geometric { initial: 0.1, ratio: 2.0 }
        );
    }

    /// The reference Gaussian pair (tails 1e-28 of the peak) through the Gaussian lift,
    /// from zero with the default schedule: converged at 64² in 63 steps with Newton's map
    /// error (1.65e-5; the same discrete equation), and the eight-decade density ends at the
    /// floor of the discrete equation (residual 1.4e-6) instead of running into the limits.
    #[test]
    fn low_contrast_pairs_flow_through_the_lift() {
        use crate::ot::verify::map_error;
        let case = crate::ot::Case::Gaussian2d;
        let problem = case.problem(64).unwrap();
        let exact = case.exact().unwrap();
        let flow = Parabolic { max_iterations: Some(200), ..Default::default() };
        let options = Options::default();
        let s = flow.solve(&problem, &options).unwrap();
        assert!(s.converged() && s.iterations <= 80, "{} after {}", s.stop_reason, s.iterations);
        let e = map_error(&s, &problem, |x, y| exact.map(x, y));
        assert!(e.l2 < 3e-5, "L2 {:.3e}", e.l2);
        assert!(s.scalar("lift_mass").is_some());
        let problem = crate::ot::Case::EightDecades.problem(64).unwrap();
        let s = flow.solve(&problem, &options).unwrap();
        let floor =
            s.outcome.floor().unwrap_or_else(|| panic!("{:?}: {}", s.outcome, s.stop_reason));
        assert!(floor < 1e-5, "{floor}");
    }
}
