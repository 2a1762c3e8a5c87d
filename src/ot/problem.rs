//! The shape shared by every OT solver: a [`Problem`] (two probability densities on one grid),
//! [`Options`], and a [`Solution`] (the potentials, from which the map, its inverse, the
//! push-forward and W₂² follow), plus the [`Solver`] trait every method implements.
//!
//! Potentials are stored in displacement form: the Brenier potential is
//! `φ(x) = |x|²/2 + p(x)` (so `T(x) = x + ∇p(x)`) and its Legendre transform is
//! `ψ(y) = φ*(y) = |y|²/2 + q(y)` (so `T⁻¹(y) = y + ∇q(y)`). `−p` and `−q` are the Kantorovich
//! potentials; on periodic axes p and q are periodic, which is why this form is the stored one.

use crate::error::{Error, Result};
use crate::field::{ScalarField, VectorField};
use crate::grid::Grid;
use crate::io::{AttrValue, Output};
use crate::operators::gradient;
use crate::ot::verify::Role;
use rayon::prelude::*;

/// Source density μ and target density ν, both probability densities on the same grid.
///
/// The grid's axes are non-periodic (a box, with the second boundary condition `T(X) = X`)
/// or periodic (a torus), or a mix (a box in some directions, periodic in others).
#[derive(Clone, Debug)]
pub struct Problem {
    source: ScalarField,
    target: ScalarField,
    source_mass: f64,
    target_mass: f64,
}

impl Problem {
    /// Checks and normalises the two densities (finite, non-negative, positive mass, same
    /// grid, no Dirichlet axes); the masses they had are kept ([`Problem::masses`]).
    pub fn new(source: &ScalarField, target: &ScalarField) -> Result<Problem> {
        if source.grid() != target.grid() {
            return Err(Error::invalid(format!(
                "source and target densities live on different grids ({} vs {})",
                source.grid(),
                target.grid()
            )));
        }
        Problem::check_grid(source.grid())?;
        let (mu, source_mass) =
            source.to_density().map_err(|e| Error::invalid(format!("source density: {e}")))?;
        let (nu, target_mass) =
            target.to_density().map_err(|e| Error::invalid(format!("target density: {e}")))?;
        Ok(Problem { source: mu, target: nu, source_mass, target_mass })
    }

    /// Whether optimal transport can be posed on `grid`: neumann (box) or periodic axes of at
    /// least 4 cells.
    pub fn check_grid(grid: &Grid) -> Result<()> {
        if grid.boundaries().iter().any(|k| k.prescribes_value()) {
            return Err(Error::invalid(
                "optimal transport needs neumann (box) or periodic axes, not dirichlet",
            ));
        }
        if grid.axes().iter().any(|a| a.cells < 4) {
            return Err(Error::invalid("optimal transport needs at least 4 cells per axis"));
        }
        Ok(())
    }

    /// The grid both densities live on.
    pub fn grid(&self) -> &Grid {
        self.source.grid()
    }

    /// μ, normalised to unit mass.
    pub fn source(&self) -> &ScalarField {
        &self.source
    }

    /// ν, normalised to unit mass.
    pub fn target(&self) -> &ScalarField {
        &self.target
    }

    /// Per axis, the interval spanned by the cells where the `role`'s density is positive,
    /// to their outer faces; `None` on periodic axes.
    pub fn support_box(&self, role: Role) -> Vec<Option<(f64, f64)>> {
        let rho = if role == Role::Source { &self.source } else { &self.target };
        let grid = rho.grid();
        let d = grid.dim();
        let shape = grid.storage_shape();
        // Storage axis k (C order, z y x) is grid axis d − 1 − k.
        let mut first = vec![usize::MAX; d];
        let mut last = vec![0usize; d];
        for (index, &v) in rho.data().indexed_iter() {
            if v > 0.0 {
                for k in 0..d {
                    let a = d - 1 - k;
                    first[a] = first[a].min(index[k]);
                    last[a] = last[a].max(index[k]);
                }
            }
        }
        debug_assert!(shape.len() == d);
        box_of(grid, &first, &last)
    }

    /// The map `x + ∇p` of a displacement potential `p` on this problem's grid, projected
    /// on box axes into the box of ν's support (as [`Solution::map`]).
    pub fn map_of(&self, p: &ScalarField) -> VectorField {
        let mut t = identity_plus(gradient(p));
        clamp_to_box(&mut t, &self.support_box(Role::Target));
        t
    }

    /// Checks a starting potential given to `method`: on this problem's grid, finite.
    pub fn check_initial(&self, p0: &ScalarField, method: &str) -> Result<()> {
        if p0.grid() != self.grid() {
            return Err(Error::invalid(format!(
                "{method}: the initial potential lives on another grid than the problem"
            )));
        }
        if p0.first_non_finite().is_some() {
            return Err(Error::invalid(format!(
                "{method}: the initial potential has NaN or infinite values"
            )));
        }
        Ok(())
    }

    /// The smaller of the two densities' `min / max` ratios (0 where one vanishes somewhere).
    pub fn contrast(&self) -> f64 {
        let ratio = |f: &ScalarField| f.min() / f.max();
        ratio(&self.source).min(ratio(&self.target))
    }

    /// The masses (integrals) the densities had before normalisation: (source, target).
    pub fn masses(&self) -> (f64, f64) {
        (self.source_mass, self.target_mass)
    }
}

/// Run controls every solver takes: a wall-clock limit and an observer. The tolerance and
/// the iteration budget are each solver's own parameters (their meaning is the method's:
/// [`super::MethodInfo::stopping_measure`]); a solver resolves them against its defaults on
/// entry ([`Options::stopping`]).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Options {
    /// Give up ([`Outcome::TimeLimit`]) once this many wall-clock seconds have passed;
    /// checked once per iteration, so a run may overrun by one iteration.
    pub time_limit: Option<f64>,
    /// Called after every iteration with its [`Progress`]; `ControlFlow::Break` ends the
    /// solve with [`Outcome::Stopped`]. Progress bars, logging and custom stopping rules
    /// are observers.
    #[serde(skip)]
    pub observer: Option<Observer>,
}

/// The stopping rule of one solve: the solver's tolerance and iteration budget (its own
/// or its method's defaults on the problem's grid) with the run's [`Options`].
#[derive(Clone, Debug)]
pub struct Stopping {
    /// Stopping threshold of the method's own measure.
    pub tolerance: f64,
    /// Iteration budget (all levels together).
    pub max_iterations: usize,
    /// See [`Options::time_limit`].
    pub time_limit: Option<f64>,
    /// See [`Options::observer`].
    pub observer: Option<Observer>,
}

/// What an observer sees after each iteration of an OT solver (every iteration, the last
/// one included).
#[derive(Clone, Copy)]
pub struct Progress<'a> {
    /// The method's registry name.
    pub method: &'static str,
    /// Iterations done so far (all levels together).
    pub iteration: usize,
    /// The iteration's record (its stopping measure, dual value, step).
    pub record: &'a IterationRecord,
    /// The grid of the current level (multilevel methods) or the problem's grid.
    pub grid: &'a Grid,
    /// The iteration budget ([`Stopping::max_iterations`]).
    pub max_iterations: usize,
    /// Seconds since the solve started.
    pub elapsed: f64,
    /// Builds the current displacement potential (see [`Progress::potential`]).
    potential: &'a (dyn Fn() -> ScalarField + 'a),
}

impl Progress<'_> {
    /// The iterate's displacement potential `p` on [`Progress::grid`] (the map is
    /// `x + ∇p`, [`Problem::map_of`]), built when asked for: bfm's `p`, Sinkhorn's `−f`,
    /// Newton's and the flow's `u`.
    pub fn potential(&self) -> ScalarField {
        (self.potential)()
    }
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("method", &self.method)
            .field("iteration", &self.iteration)
            .field("record", self.record)
            .field("grid", self.grid)
            .field("elapsed", &self.elapsed)
            .finish_non_exhaustive()
    }
}

/// An observer of OT iterations: `FnMut(&Progress) -> ControlFlow<()>`, shared so that
/// [`Options`] stays cloneable.
#[derive(Clone)]
pub struct Observer(std::sync::Arc<std::sync::Mutex<ObserverFn>>);

type ObserverFn = dyn FnMut(&Progress) -> std::ops::ControlFlow<()> + Send;

impl Observer {
    /// Wraps a callback.
    pub fn new(f: impl FnMut(&Progress) -> std::ops::ControlFlow<()> + Send + 'static) -> Observer {
        Observer(std::sync::Arc::new(std::sync::Mutex::new(f)))
    }

    /// Calls the callback.
    pub fn call(&self, progress: &Progress) -> std::ops::ControlFlow<()> {
        let mut f = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(progress)
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer(..)")
    }
}

impl Options {
    /// These options with `observer` called after every iteration.
    pub fn observed(mut self, observer: Observer) -> Options {
        self.observer = Some(observer);
        self
    }

    /// The stopping rule of a solve by `method` on `grid`: `tolerance` and `max_iterations`
    /// as the solver sets them, else the method's defaults. Rejects a tolerance that is not
    /// positive and finite, a zero iteration budget and a time limit that is not positive.
    pub fn stopping(
        &self,
        method: &super::MethodInfo,
        grid: &Grid,
        tolerance: Option<f64>,
        max_iterations: Option<usize>,
    ) -> Result<Stopping> {
        let tolerance = tolerance.unwrap_or_else(|| (method.default_tolerance)(grid));
        if !(tolerance.is_finite() && tolerance > 0.0) {
            return Err(Error::invalid(format!(
                "tolerance must be positive and finite, got {tolerance}"
            )));
        }
        let max_iterations = max_iterations.unwrap_or(method.max_iterations);
        if max_iterations == 0 {
            return Err(Error::invalid("max_iterations must be at least 1"));
        }
        if let Some(t) = self.time_limit {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::invalid(format!(
                    "time limit must be positive and finite seconds, got {t}"
                )));
            }
        }
        Ok(Stopping {
            tolerance,
            max_iterations,
            time_limit: self.time_limit,
            observer: self.observer.clone(),
        })
    }
}

impl Stopping {
    /// The tolerance.
    pub fn tol(&self) -> f64 {
        self.tolerance
    }

    /// The iteration budget.
    pub fn budget(&self) -> usize {
        self.max_iterations
    }

    /// Whether the time limit has passed since `start`.
    pub fn out_of_time(&self, start: std::time::Instant) -> bool {
        self.time_limit.is_some_and(|t| start.elapsed().as_secs_f64() >= t)
    }

    /// Reports an iteration (its record and a builder of its displacement potential on
    /// `grid`) to the observer; `true` when it asks to stop.
    pub fn stop_requested(
        &self,
        (method, iteration, record): (&'static str, usize, &IterationRecord),
        grid: &Grid,
        potential: &dyn Fn() -> ScalarField,
        start: std::time::Instant,
    ) -> bool {
        self.observer.as_ref().is_some_and(|o| {
            let progress = Progress {
                method,
                iteration,
                record,
                grid,
                max_iterations: self.max_iterations,
                elapsed: start.elapsed().as_secs_f64(),
                potential,
            };
            o.call(&progress).is_break()
        })
    }
}

/// How a solve ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// The stopping measure met the tolerance.
    Converged,
    /// The stopping measure stopped falling above the tolerance, at a level the grid
    /// explains (see [`crate::ot::bfm`]): the answer at this resolution. `floor` is the
    /// smallest value of the stopping measure reached (the returned pair's).
    DiscretisationFloor {
        /// The measured floor of the stopping measure.
        floor: f64,
    },
    /// The iteration budget ([`Stopping::max_iterations`]) ran out first.
    IterationLimit,
    /// `Options::time_limit` passed first.
    TimeLimit,
    /// The iteration stopped making progress well above any grid-scale floor (or a line
    /// search / step control found no acceptable step).
    Stalled,
    /// The iterates stopped being finite.
    Diverged,
    /// The observer ([`Options::observer`]) asked to stop.
    Stopped,
    /// A run of fixed length took every step it was given: the sample-based parabolic flow
    /// ([`crate::ot::parabolic::Batches`]), whose stopping measure does not fall to zero under
    /// sampling noise.
    Completed,
}

impl Outcome {
    /// The name stored in files and JSON: `converged`, `discretisation_floor`,
    /// `iteration_limit`, `time_limit`, `stalled`, `diverged`, `stopped`, `completed`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Converged => "converged",
            Outcome::DiscretisationFloor { .. } => "discretisation_floor",
            Outcome::IterationLimit => "iteration_limit",
            Outcome::TimeLimit => "time_limit",
            Outcome::Stalled => "stalled",
            Outcome::Diverged => "diverged",
            Outcome::Stopped => "stopped",
            Outcome::Completed => "completed",
        }
    }

    /// Whether the result is the answer at this resolution (converged, at the floor, or a
    /// fixed-length run completed).
    pub fn is_solved(self) -> bool {
        matches!(
            self,
            Outcome::Converged | Outcome::DiscretisationFloor { .. } | Outcome::Completed
        )
    }

    /// The measured floor, if the outcome is [`Outcome::DiscretisationFloor`].
    pub fn floor(self) -> Option<f64> {
        match self {
            Outcome::DiscretisationFloor { floor } => Some(floor),
            _ => None,
        }
    }
}

/// One iteration's record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IterationRecord {
    /// The method's stopping measure at the start of the iteration (what the tolerance
    /// applies to). bfm: the marginal error in the dual norm of H¹ (a linearised W₂
    /// distance), `max(‖ν − T#μ‖_H⁻¹, ‖μ − T⁻¹#ν‖_H⁻¹)`, `‖r‖²_H⁻¹ = ∫ r (−Δ)⁻¹ r`;
    /// newton: `max |log(g(T) det DT / f)|` (up to the equation's constant).
    pub marginal_error: f64,
    /// The marginals' L1 error. bfm: of the deposits (includes their grid-scale aliasing,
    /// so it levels off near 0.1 rather than tending to zero); newton: of the pull-back,
    /// `∫ |g(T) det DT − f| dx`.
    pub l1_marginal_error: f64,
    /// Dual value `∫(−p) dμ + ∫(−q) dν` (tends to W₂²/2 from below).
    pub dual_value: f64,
    /// The step the iteration took, by kind.
    pub step: Step,
}

/// The step an iteration took, typed by method.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Step {
    /// No step (the iteration only measured, e.g. the last one).
    None,
    /// bfm: the dual ascent steps σ of the forward (in q) and backward (in p) half steps.
    Ascent { forward: f64, backward: f64 },
    /// Newton: the damping θ ∈ (0, 1] of the Newton step.
    Damping(f64),
    /// The parabolic flow: the time step η.
    Time(f64),
    /// Sinkhorn: the entropic regularisation ε of the iteration and its over-relaxation
    /// ω (1: a plain iteration).
    Epsilon { epsilon: f64, relaxation: f64 },
}

impl Step {
    /// The step's main value: σ of the forward half step, θ, η or ε (0 for [`Step::None`]).
    pub fn value(self) -> f64 {
        match self {
            Step::None => 0.0,
            Step::Ascent { forward: v, .. }
            | Step::Damping(v)
            | Step::Time(v)
            | Step::Epsilon { epsilon: v, .. } => v,
        }
    }

    /// What [`Step::value`] is, e.g. `"ascent step sigma"` (stored with the `step`
    /// diagnostic).
    pub fn kind(self) -> &'static str {
        match self {
            Step::None => "none",
            Step::Ascent { .. } => "ascent step sigma",
            Step::Damping(_) => "Newton damping theta",
            Step::Time(_) => "time step eta",
            Step::Epsilon { .. } => "entropic regularisation epsilon",
        }
    }

    /// The step's second value with its diagnostic name, for the kinds that have one: bfm's
    /// backward step, Sinkhorn's over-relaxation.
    pub fn second(self) -> Option<(&'static str, f64)> {
        match self {
            Step::Ascent { backward, .. } => Some(("backward_step", backward)),
            Step::Epsilon { relaxation, .. } => Some(("relaxation", relaxation)),
            Step::None | Step::Damping(_) | Step::Time(_) => None,
        }
    }
}

/// What a solver returns: potentials in displacement form, convergence facts and history.
#[derive(Clone, Debug)]
pub struct Solution {
    /// Registry name of the method that produced it.
    pub method: &'static str,
    /// `p = φ − |x|²/2` on the grid (Brenier potential minus the identity's).
    pub p: ScalarField,
    /// `q = ψ − |y|²/2`, ψ = φ*.
    pub q: ScalarField,
    /// How the solve ended.
    pub outcome: Outcome,
    /// Why the iteration stopped, in words.
    pub stop_reason: String,
    /// Final marginal error (see [`IterationRecord::marginal_error`]).
    pub marginal_error: f64,
    /// Final dual value (`2 × dual_value` is the W₂² estimate, see [`Solution::w2_squared`]).
    pub dual_value: f64,
    /// Iterations performed.
    pub iterations: usize,
    /// Wall-clock seconds spent in the solver.
    pub seconds: f64,
    /// Per-iteration records.
    pub history: Vec<IterationRecord>,
    /// Further per-iteration series of the method (name, one value per record), written to
    /// `/diagnostics/<name>`.
    pub diagnostics: Vec<(String, Vec<f64>)>,
    /// Further scalar results of the method (name, value), written as HDF5 attributes and
    /// printed in the CLI summary (e.g. sinkhorn's `sinkhorn_divergence`).
    pub scalars: Vec<(String, f64)>,
}

/// `|x|²/2` at the cell centres (the potential of the identity map).
pub(crate) fn half_square_norm(grid: &Grid) -> ScalarField {
    ScalarField::from_fn(grid, half_square)
}

/// Per axis of `grid`, the interval from cell `first[a]`'s lower face to cell `last[a]`'s
/// upper face; `None` on periodic axes.
pub(crate) fn box_of(grid: &Grid, first: &[usize], last: &[usize]) -> Vec<Option<(f64, f64)>> {
    (0..grid.dim())
        .map(|a| {
            let axis = grid.axis(a);
            if axis.boundary.is_periodic() {
                return None;
            }
            let h = axis.spacing();
            Some((axis.lower + first[a] as f64 * h, axis.lower + (last[a] + 1) as f64 * h))
        })
        .collect()
}

/// `|x|²/2`.
pub(crate) fn half_square(x: &[f64]) -> f64 {
    x.iter().map(|v| 0.5 * v * v).sum::<f64>()
}

/// Cell i's term `μ_i |v_i|²` of the transport cost (`v` the displacement, d components
/// per cell).
pub(crate) fn transport_term(mu: &[f64], v: &[f64], d: usize, i: usize) -> f64 {
    mu[i] * v[i * d..(i + 1) * d].iter().map(|c| c * c).sum::<f64>()
}

/// Clamps each component of `t` into its axis' interval (`None`: left as it is).
fn clamp_to_box(t: &mut VectorField, bounds: &[Option<(f64, f64)>]) {
    clamp_points(t.as_mut_slice(), bounds);
}

/// Clamps each point's components (d = `bounds.len()` per point) into its axis' interval.
pub(crate) fn clamp_points(v: &mut [f64], bounds: &[Option<(f64, f64)>]) {
    let d = bounds.len();
    if bounds.iter().all(Option::is_none) {
        return;
    }
    v.par_chunks_mut(d).for_each(|y| {
        for (c, b) in y.iter_mut().zip(bounds) {
            if let Some((lo, hi)) = b {
                *c = c.clamp(*lo, *hi);
            }
        }
    });
}

fn identity_plus(displacement: VectorField) -> VectorField {
    let grid = displacement.grid().clone();
    let identity = VectorField::from_fn(&grid, |x, out| out.copy_from_slice(x));
    let mut t = displacement;
    t.data_mut().zip_mut_with(identity.data(), |a, b| *a += b);
    t
}

impl Solution {
    /// Whether the stopping criterion was met ([`Outcome::Converged`]).
    pub fn converged(&self) -> bool {
        self.outcome == Outcome::Converged
    }

    /// Whether the result is the answer at this resolution ([`Outcome::is_solved`]).
    pub fn solved(&self) -> bool {
        self.outcome.is_solved()
    }

    /// The W₂² estimate: twice the dual value `2 (∫(−p) dμ + ∫(−q) dν)`; for Sinkhorn the
    /// debiased `2 S_ε` (the scalar `sinkhorn_divergence`: error O(ε²)), not twice its dual
    /// value `2 OT_ε` (the entropic cost, biased by O(ε log ε); the scalar
    /// `twice_entropic_cost`).
    pub fn w2_squared(&self) -> f64 {
        self.scalar("sinkhorn_divergence").map_or(2.0 * self.dual_value, |s| 2.0 * s)
    }

    /// The method's scalar result `name` ([`Solution::scalars`]), if it reports one.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        self.scalars.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The Brenier potential `φ = |x|²/2 + p` (unwrapped on periodic axes).
    pub fn potential(&self) -> ScalarField {
        let mut phi = half_square_norm(self.p.grid());
        phi.data_mut().zip_mut_with(self.p.data(), |a, b| *a += b);
        phi
    }

    /// Its Legendre transform `ψ = |y|²/2 + q`.
    pub fn conjugate_potential(&self) -> ScalarField {
        let mut psi = half_square_norm(self.q.grid());
        psi.data_mut().zip_mut_with(self.q.data(), |a, b| *a += b);
        psi
    }

    /// The displacement `T(x) − x` of [`Solution::map`].
    pub fn displacement(&self, problem: &Problem) -> VectorField {
        let mut d = self.map(problem);
        let identity = VectorField::from_fn(problem.grid(), |x, out| out.copy_from_slice(x));
        d.data_mut().zip_mut_with(identity.data(), |a, b| *a -= b);
        d
    }

    /// The map `T = ∇φ = x + ∇p` (second-order differences; on periodic axes not wrapped
    /// back into the period), projected on box axes into the box of ν's support (the cells
    /// where ν > 0, to their faces). The projection only acts where μ vanishes or at a tear,
    /// where the gradient of the c-transform points anywhere in the domain (measured on the
    /// disjoint squares at 64²: 3857 of 4096 cells mapped outside ν's support box, 19 of
    /// them with μ > 0).
    pub fn map(&self, problem: &Problem) -> VectorField {
        problem.map_of(&self.p)
    }

    /// The inverse map `T⁻¹ = ∇ψ`, projected on box axes into the box of μ's support.
    pub fn inverse_map(&self, problem: &Problem) -> VectorField {
        let mut t = identity_plus(gradient(&self.q));
        clamp_to_box(&mut t, &problem.support_box(Role::Source));
        t
    }

    /// `T#μ` on the grid, by the back-and-forth solver's mass-conserving deposit: each cell
    /// split into sub-cells (at least 2×2 in 2D, 1 in 3D; more where T stretches the cell
    /// over several target cells, so the image has no holes). With a fixed 2×2 split the
    /// written push-forward had holes and spikes where the map stretches (Gaussian → uniform
    /// at 256²: max |T#μ − ν| 7× max ν, L1 0.32).
    pub fn push_forward(&self, problem: &Problem) -> Result<ScalarField> {
        let s = if problem.grid().dim() == 2 { 2 } else { 1 };
        super::pushforward::push_forward_adaptive(
            problem.source(),
            &self.map(problem),
            problem.grid(),
            s,
        )
    }

    /// The primal cost of the computed map, `∫ |T(x) − x|² dμ` (an upper-side W₂² estimate
    /// when T pushes μ to ν exactly).
    pub fn transport_cost(&self, problem: &Problem) -> f64 {
        let disp = self.displacement(problem);
        let d = disp.grid().dim();
        let v = disp.data().as_slice().expect("contiguous");
        let mu = problem.source().data().as_slice().expect("contiguous");
        let sum =
            crate::field::ordered_sum(mu.len(), |r| r.map(|i| transport_term(mu, v, d, i)).sum());
        sum * problem.grid().cell_volume()
    }

    /// Everything as an [`Output`]: fields `source`, `target`, `phi`, `psi`, `map`,
    /// `displacement`, `inverse_map`, `push_forward`; diagnostics `marginal_error`,
    /// `dual_value`, `step`; attributes `method`, `converged`, `outcome` (with `discretisation_floor` at the floor), `iterations`, `w2_squared`,
    /// `transport_cost`, `marginal_error`, `seconds`, `stop_reason`, the masses.
    pub fn to_output(&self, problem: &Problem) -> Result<Output> {
        let mut out = Output::new(problem.grid().clone());
        out.add_field("source", problem.source().clone())?;
        out.add_field("target", problem.target().clone())?;
        out.add_field("phi", self.potential())?;
        out.add_field("psi", self.conjugate_potential())?;
        out.add_field("map", self.map(problem))?;
        out.add_field("displacement", self.displacement(problem))?;
        out.add_field("inverse_map", self.inverse_map(problem))?;
        out.add_field("push_forward", self.push_forward(problem)?)?;
        self.add_summary(&mut out, self.transport_cost(problem), problem.masses())?;
        Ok(out)
    }
}

impl Solution {
    /// The results file's diagnostics (the iteration history, [`Solution::diagnostics`])
    /// and attributes (outcome, iterations, W₂², the transport cost given, the masses given,
    /// [`Solution::scalars`]): [`Solution::to_output`] without its fields, shared with the
    /// distributed writer.
    pub fn add_summary(
        &self,
        out: &mut Output,
        transport_cost: f64,
        masses: (f64, f64),
    ) -> Result<()> {
        let column = |f: fn(&IterationRecord) -> f64| self.history.iter().map(f).collect();
        out.add_diagnostic("marginal_error", column(|r| r.marginal_error))?;
        out.add_diagnostic("l1_marginal_error", column(|r| r.l1_marginal_error))?;
        out.add_diagnostic("dual_value", column(|r| r.dual_value))?;
        out.add_diagnostic("step", column(|r| r.step.value()))?;
        if let Some(kind) = self.history.iter().map(|r| r.step).find(|s| *s != Step::None) {
            out.set_attribute("step_kind", AttrValue::Text(kind.kind().to_string()))?;
        }
        if let Some((name, _)) = self.history.iter().find_map(|r| r.step.second()) {
            out.add_diagnostic(name, column(|r| r.step.second().map_or(0.0, |(_, v)| v)))?;
        }
        for (name, values) in &self.diagnostics {
            out.add_diagnostic(name, values.clone())?;
        }
        let (ms, mt) = masses;
        for (k, v) in [
            ("method", AttrValue::Text(self.method.into())),
            ("converged", AttrValue::Integer(self.converged() as i64)),
            ("outcome", AttrValue::Text(self.outcome.name().into())),
            ("stop_reason", AttrValue::Text(self.stop_reason.clone())),
            ("iterations", AttrValue::Integer(self.iterations as i64)),
            ("w2_squared", AttrValue::Number(self.w2_squared())),
            ("transport_cost", AttrValue::Number(transport_cost)),
            ("marginal_error", AttrValue::Number(self.marginal_error)),
            ("seconds", AttrValue::Number(self.seconds)),
            ("source_mass", AttrValue::Number(ms)),
            ("target_mass", AttrValue::Number(mt)),
        ] {
            out.set_attribute(k, v)?;
        }
        if let Some(floor) = self.outcome.floor() {
            out.set_attribute("discretisation_floor", AttrValue::Number(floor))?;
        }
        for (k, v) in &self.scalars {
            out.set_attribute(k, AttrValue::Number(*v))?;
        }
        Ok(())
    }
}

/// An OT solver: one file per method under `ot/`, registered in [`super::method`].
pub trait Solver {
    /// Solves `problem`; an unfinished run returns `Ok` with its [`Outcome`], and errors
    /// are reserved for input that cannot be solved at all.
    fn solve(&self, problem: &Problem, options: &Options) -> Result<Solution>;
}
