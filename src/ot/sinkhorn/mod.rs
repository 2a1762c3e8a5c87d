//! Entropic optimal transport on grids: log-domain Sinkhorn with a separable Gibbs kernel.
//!
//! For the cost `c(x, y) = |x − y|²/2` (on periodic axes, the wrapped distance) and
//! cell weights `a_i = μ_i h^d`, `b_j = ν_j h^d`, the entropic dual potentials satisfy
//!
//! `f_i = −ε log Σ_j b_j exp((g_j − c_ij)/ε)`,  `g_j = −ε log Σ_i a_i exp((f_i − c_ij)/ε)`,
//!
//! and Sinkhorn alternates these two updates. `OT_ε(μ, ν) = Σ f a + Σ g b` at the fixed point
//! (the plan `π_ij = a_i b_j exp((f_i + g_j − c_ij)/ε)` then has mass 1).
//!
//! * Separable kernel ([`super::gibbs`]): `exp(−c/ε) = Π_k K_k` with `K_k` the 1D Gaussian kernel of axis k, so
//!   one "soft c-transform" `LSE_ε(h)_i = ε log Σ_j K_ij exp(h_j/ε)` is one pass per axis,
//!   each a dense `n × n` matrix product on blocks of lines (faer's GEMM, `W Kᵀ` on
//!   contiguous lines, `K W` on strided ones — no transposes): `O(N n)` work per axis and
//!   never an `N × N` matrix.
//! * Log-domain stabilisation: each line is shifted by its maximum before exponentiation,
//!   `LSE_ε(h)_i = s + ε log Σ_j K_ij exp((h_j − s)/ε)`; an output whose sum fell below
//!   `1e-280` (the line's mass lies where the kernel underflowed) is recomputed exactly by a
//!   log-sum-exp over the line. Nothing underflows to `log 0`, whatever ε.
//! * ε-scaling: ε halves from `max(ε, ε_start)` down to the target, each stage starting from
//!   the last two stages' potentials extrapolated linearly in ε; intermediate stages stop at
//!   ten times the tolerance; over-relaxation with ω from the observed contraction rate.
//! * Multiscale: a stage runs on the coarsest grid of the hierarchy (every even axis halved
//!   down to 16 cells) whose cells are at most `√ε` wide, with the densities' point
//!   values sampled there (sixth order: the coarse plan is then the fine one to far below
//!   the tolerance, as the kernel's quadrature is spectrally accurate when the blur spans
//!   cells); the final ε then runs to the full tolerance once per finer grid, each started
//!   from the cubic-interpolated coarser g. A converged coarse plan meets the coarse
//!   densities' marginals, so a finer grid starts at the L1 distance between its densities
//!   and the coarse ones interpolated: with fourth-order sampling 5e-6 at 128² and
//!   ε = 1e-3 (four iterations to 1e-6), with sixth-order sampling below the tolerance. On
//!   the reference Gaussian pair at ε = 1e-3 every grid from 128² up then takes one
//!   iteration (68 on 512² without the hierarchy). The divergence's symmetric problems run
//!   coarse to fine too, from `−(ε/2) log a` (their solution up to a constant and O(ε²)).
//! * Stopping: the L1 error of the plan's second marginal after the f-update (the first is
//!   then exact), `Σ_j b_j |exp((g_j − g'_j)/ε) − 1|`.
//!
//! In the shared [`Solution`] the potentials are `p = −f`, `q = −g`; the map `x + ∇p` is the
//! barycentric projection `E_π[y | x]` (to O(h²)), and `2 × dual value` is `2 OT_ε`.

mod divergence;
mod levels;

use super::fastmath::exp_shifted;
use super::gibbs::{update, SoftTransform, TASK_CELLS};
use super::multilevel::{self, After, Hierarchy, Stage};
use super::problem::{
    IterationRecord, Options, Outcome, Problem, Solution, Solver, Step, Stopping,
};
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::Grid;
pub(crate) use levels::Layout;
use levels::{Level, Levels, WholeLayout};
use rayon::prelude::*;
use std::time::Instant;

/// Sinkhorn settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sinkhorn {
    /// Stop once the L1 error of the entropic plan's second marginal is at most this (the
    /// first marginal is exact after each source-side update); `None`: 1e-5 ([`METHOD`]).
    pub tolerance: Option<f64>,
    /// Iterations allowed, every grid and ε stage together; `None`: 2000.
    pub max_iterations: Option<usize>,
    /// Entropic regularisation ε (of the cost |x − y|²/2); `None`: `1e-3 L²` with L the
    /// longest side of the problem's domain (1e-3 on the unit box), the same relative blur
    /// at every scale ([`Sinkhorn::epsilons`]).
    pub epsilon: Option<f64>,
    /// First ε of the ε-scaling (no scaling when not above ε); `None`: `0.1 L²`.
    pub epsilon_start: Option<f64>,
    /// Starting displacement potential `p₀` (on the problem's grid): the iteration starts on
    /// the source side, `f = −p₀`, `g = T_ε(f)`; `None`: from `g = 0`. Started from `p₀`,
    /// k iterations at a fixed ε approximate the parabolic Monge–Ampère flow from `p₀` at
    /// time `kε` (one iteration is `p ← p + ε log(a/μ)`, a forward-Euler step up to O(ε²);
    /// see `docs/sinkhorn-limit.md`).
    #[serde(skip)]
    pub initial: Option<ScalarField>,
    /// Over-relaxation ω ∈ [1, 2): each update is `f ← f + ω (T_ε(g) − f)` (1: plain
    /// Sinkhorn). Falls back to 1 within an ε stage once the error stops falling, and the
    /// stopping test is passed on a plain iteration.
    pub overrelaxation: f64,
    /// Multiscale ε-scaling: stages with a large ε run on coarser grids (each the coarsest
    /// that resolves the stage's blur √ε, densities cell-averaged), and the final ε runs
    /// once per finer grid, each started from the interpolated coarser potential. Ignored
    /// with an `initial` potential.
    pub multiscale: bool,
}

impl Default for Sinkhorn {
    fn default() -> Self {
        Sinkhorn {
            tolerance: None,
            max_iterations: None,
            epsilon: None,
            epsilon_start: None,
            initial: None,
            overrelaxation: OMEGA,
            multiscale: true,
        }
    }
}

/// Default cap of the over-relaxation.
const OMEGA: f64 = 1.9;

/// Iterations over which the contraction rate of the marginal error is measured.
const RATE_WINDOW: usize = 2;

/// `Σ_j w_j |exp((old_j − new_j)/ε) − 1|` over `w_j > 0` and the whole grid: the L1 error of
/// the plan's marginal on the side of the potential `old`, when `new` is that potential's
/// fresh soft c-transform. The terms are written to `terms` (vectorised exponentials;
/// `exp − 1` loses relative but not absolute accuracy near 0, and the sum is compared with
/// tolerances far above 1e-16), then added by `kernel`'s sum — the same to the bit on any
/// decomposition.
fn marginal_error(
    kernel: &dyn SoftTransform,
    (old, new, weights): (&[f64], &[f64], &[f64]),
    terms: &mut Vec<f64>,
) -> f64 {
    let inv_eps = 1.0 / kernel.eps();
    terms.resize(old.len(), 0.0);
    terms
        .par_chunks_mut(TASK_CELLS)
        .zip(old.par_chunks(TASK_CELLS))
        .zip(new.par_chunks(TASK_CELLS))
        .zip(weights.par_chunks(TASK_CELLS))
        .for_each(|(((t, o), n), w)| {
            exp_shifted(o, n, inv_eps, t);
            t.iter_mut().zip(w).for_each(|(t, w)| {
                *t = if *w > 0.0 { w * (*t - 1.0).abs() } else { 0.0 };
            });
        });
    kernel.sum(terms)
}

/// `Σ_l (f_l a_l + g_l b_l)` over the whole grid, each product only where its weight is
/// positive (the dual value: potentials where the measure vanishes do not count; `g` and `b`
/// may be empty, for `Σ f a` alone), the terms written to `terms`, then added by `kernel`'s
/// sum.
fn dual_value(
    kernel: &dyn SoftTransform,
    (f, a): (&[f64], &[f64]),
    (g, b): (&[f64], &[f64]),
    terms: &mut Vec<f64>,
) -> f64 {
    let weighted = |v: &f64, w: &f64| if *w > 0.0 { v * w } else { 0.0 };
    terms.clear();
    if g.is_empty() {
        terms.par_extend(f.par_iter().zip(a).map(|(v, w)| weighted(v, w)));
    } else {
        let pairs = f.par_iter().zip(a).zip(g.par_iter().zip(b));
        terms.par_extend(pairs.map(|((f, a), (g, b))| weighted(f, a) + weighted(g, b)));
    }
    kernel.sum(terms)
}

/// `x ← x + ω (new − x)`.
fn relax(x: &mut [f64], new: &[f64], omega: f64) {
    x.par_chunks_mut(TASK_CELLS)
        .zip(new.par_chunks(TASK_CELLS))
        .for_each(|(x, new)| x.iter_mut().zip(new).for_each(|(x, n)| *x += omega * (n - *x)));
}

/// Coarsest grid of the multiscale hierarchy: at least this many cells per halved axis.
const COARSEST_CELLS: usize = 16;

/// An ε stage runs on the coarsest grid whose cells are at most `√ε / RESOLUTION` wide (the
/// plan's blur `√ε` spans at least this many cells). Measured on the Gaussian pair (plan
/// times, medians of 3): 0.7 against 1 — ε = 1e-3: 128² 3.7 / 4.9 ms, 256² 18 / 15 ms (the
/// same grids); ε = 2e-4 (final ε first on 64² instead of 128²): 128² 29 / 62 ms, 256²
/// 48 / 80 ms; ε = 5e-5: 256² 0.75 / 4.2 s. 0.5 starts the final ε on grids too coarse to
/// carry the plan (ε = 1e-3 on 16²: 38 iterations there and 40 on 32²).
const RESOLUTION: f64 = 0.7;

/// What one ε stage on one level ended with.
struct StageEnd {
    error: f64,
    /// The stage's tolerance was met.
    met: bool,
    /// The observer asked to stop.
    stopped: bool,
}

impl Sinkhorn {
    /// Sinkhorn iterations at one ε on one level from `g` (over-relaxed once the contraction
    /// rate is known) until the marginal error is at most `tol`, the error is no longer
    /// finite, `iterations` reaches the iteration budget or the time limit (counted from
    /// `start`) has passed.
    #[allow(clippy::too_many_arguments)]
    fn iterate(
        &self,
        level: &Level,
        kernel: &dyn SoftTransform,
        f: &mut Vec<f64>,
        g: &mut Vec<f64>,
        tol: f64,
        iterations: &mut usize,
        (options, start): (&Stopping, Instant),
        history: &mut Vec<IterationRecord>,
    ) -> Result<StageEnd> {
        let eps = kernel.eps();
        let (mut f_new, mut g_new) = (Vec::with_capacity(f.len()), Vec::with_capacity(g.len()));
        let mut terms = Vec::with_capacity(g.len());
        // Plain iterations first; then ω from the observed contraction rate r of the
        // marginal error (SOR's optimum for a Gauss–Seidel rate r: 2/(1 + √(1 − r))), at
        // most `self.overrelaxation`; the cap is halved towards 1 whenever the error rises.
        let mut omega = 1.0;
        let mut cap = self.overrelaxation;
        let mut least = f64::INFINITY;
        let mut stage_errors: Vec<f64> = Vec::new();
        loop {
            if omega == 1.0 {
                update(kernel, g, &level.log_b, f)?;
            } else {
                update(kernel, g, &level.log_b, &mut f_new)?;
                relax(f, &f_new, omega);
            }
            update(kernel, f, &level.log_a, &mut g_new)?;
            let error = marginal_error(kernel, (g, &g_new, &level.b), &mut terms);
            tracing::trace!("ε {eps:.1e} n {} ω {omega:.3} error {error:.3e}", g.len());
            if omega == 1.0 {
                std::mem::swap(g, &mut g_new);
            } else {
                relax(g, &g_new, omega);
            }
            *iterations += 1;
            let value = dual_value(kernel, (f, &level.a), (g, &level.b), &mut terms);
            history.push(IterationRecord {
                marginal_error: error,
                l1_marginal_error: error,
                dual_value: value,
                step: Step::Epsilon { epsilon: eps, relaxation: omega },
            });
            let record = history.last().expect("pushed");
            let potential = || {
                let p = f.iter().map(|v| -v).collect();
                ScalarField::from_vec(&level.local, p).expect("one potential value per cell")
            };
            if options.stop_requested(
                ("sinkhorn", *iterations, record),
                &level.local,
                &potential,
                start,
            ) {
                return Ok(StageEnd { error, met: false, stopped: true });
            }
            // An over-relaxed pair's first marginal is not exact: stop only on a plain
            // iteration, and fall back to plain ones if the error rises. (The marginal error
            // of over-relaxed iterations is not monotone; only a rise above twice the least
            // error since ω was set counts.)
            stage_errors.push(error);
            let rose = error > 2.0 * least;
            least = least.min(error);
            if omega != 1.0 && (error <= tol || rose) {
                if rose {
                    cap = 1.0 + 0.5 * (cap - 1.0);
                    tracing::debug!(
                        "sinkhorn ε = {eps:.2e}: error rose under ω = {omega:.3}; cap {cap:.3}"
                    );
                    stage_errors.clear();
                }
                omega = 1.0;
                continue;
            }
            let k = stage_errors.len();
            if omega == 1.0 && cap > 1.0 && k >= RATE_WINDOW + 2 {
                let r = (stage_errors[k - 1] / stage_errors[k - 1 - RATE_WINDOW])
                    .powf(1.0 / RATE_WINDOW as f64);
                // (Not when two more plain iterations will do: an over-relaxed pair must be
                // followed by a plain one before stopping.)
                if r.is_finite() && r > 0.2 && r < 1.0 && error * r * r > tol {
                    omega = (2.0 / (1.0 + (1.0 - r).sqrt())).min(cap);
                    least = error;
                    tracing::debug!("sinkhorn ε = {eps:.2e}: contraction {r:.3}, ω = {omega:.3}");
                }
            }
            if error <= tol
                || *iterations >= options.budget()
                || !error.is_finite()
                || options.out_of_time(start)
            {
                return Ok(StageEnd { error, met: error <= tol, stopped: false });
            }
        }
    }
}

/// The stages of one Sinkhorn solve, run by [`multilevel::drive`]: the potential the driver
/// carries is g; f restarts from it on each level (the first update computes it).
struct Stages<'a> {
    solver: &'a Sinkhorn,
    levels: Levels<'a>,
    options: &'a Stopping,
    start: Instant,
    /// The target ε.
    epsilon: f64,
    f: Vec<f64>,
    /// The level of the last stage.
    on: usize,
    /// The g of the ε stage before the last one, and its level.
    older: Option<(Vec<f64>, usize)>,
    previous_epsilon: Option<f64>,
    history: Vec<IterationRecord>,
    iterations: usize,
    error: f64,
    converged: bool,
    stopped: bool,
}

impl multilevel::LevelSolver for Stages<'_> {
    type Setting = f64;

    fn run_stage(
        &mut self,
        k: usize,
        stage: &Stage<f64>,
        last: bool,
        g: &mut Vec<f64>,
    ) -> Result<After> {
        let (l, eps) = (stage.level, stage.setting);
        let (hierarchy, layout) = (self.levels.hierarchy(), self.levels.layout());
        if l != self.on {
            // Onto the finer level (g lifted by the driver; f follows from it in the first
            // update).
            self.f = vec![0.0; g.len()];
            self.on = l;
        }
        let scaled = self.previous_epsilon.is_some_and(|e| e != eps);
        self.previous_epsilon = Some(eps);
        if scaled {
            // The potentials are linear in ε to first order: from g(2ε) and g(4ε),
            // g(ε) ≈ g(2ε) + (g(2ε) − g(4ε))/2. (Kept only at an ε step: the next step
            // extrapolates from it.)
            let previous = (g.clone(), l);
            if let Some((g4, l4)) = self.older.take() {
                let g4 = layout.lift(hierarchy, g4, l4, l)?;
                g.iter_mut().zip(&g4).for_each(|(g, o)| *g += 0.5 * (*g - o));
            }
            self.older = Some(previous);
        }
        let options = self.options;
        let level = self.levels.at(l)?;
        let (stage_start, stage_first) = (Instant::now(), self.iterations);
        let kernel = layout.kernel(&level.grid, eps)?;
        if k == 0 && self.solver.initial.is_some() {
            update(kernel.as_ref(), &self.f, &level.log_a, g)?;
        }
        // (At the final ε every level converges fully: the next one starts from its error.)
        let tol = if eps == self.epsilon { options.tol() } else { 10.0 * options.tol() };
        let end = self.solver.iterate(
            level,
            kernel.as_ref(),
            &mut self.f,
            g,
            tol,
            &mut self.iterations,
            (options, self.start),
            &mut self.history,
        )?;
        self.error = end.error;
        self.converged = last && end.met;
        self.stopped = end.stopped;
        tracing::debug!(
            "sinkhorn ε = {eps:.2e} on {}: {} iterations, {:.2} ms, marginal error {:.2e}",
            level.grid,
            self.iterations - stage_first,
            1e3 * stage_start.elapsed().as_secs_f64(),
            self.error
        );
        let ended = self.iterations >= options.budget()
            || !self.error.is_finite()
            || options.out_of_time(self.start)
            || self.stopped;
        Ok(if ended { After::Finish } else { After::Next })
    }

    /// One Sinkhorn iteration at the target ε on the problem's grid from the lifted g.
    fn finish(&mut self, g: &mut Vec<f64>) -> Result<()> {
        let (finest, layout) = (self.levels.hierarchy().finest(), self.levels.layout());
        let level = self.levels.at(finest)?;
        let kernel = layout.kernel(&level.grid, self.epsilon)?;
        self.f = Vec::with_capacity(g.len());
        update(kernel.as_ref(), g, &level.log_b, &mut self.f)?;
        let mut g_new = Vec::new();
        update(kernel.as_ref(), &self.f, &level.log_a, &mut g_new)?;
        self.error = marginal_error(kernel.as_ref(), (g, &g_new, &level.b), &mut Vec::new());
        *g = g_new;
        Ok(())
    }

    fn lift(&self, hierarchy: &Hierarchy, v: Vec<f64>, from: usize, to: usize) -> Result<Vec<f64>> {
        self.levels.layout().lift(hierarchy, v, from, to)
    }
}

/// The registry entry of Sinkhorn: tolerance 1e-5 on the L1 error of the plan's second
/// marginal.
pub const METHOD: super::method::MethodInfo = super::method::MethodInfo {
    name: "sinkhorn",
    stopping_measure: "L1 error of the entropic plan's second marginal",
    default_tolerance: |_| 1e-5,
    // Iterations on every grid and ε of the scaling count, most of them on coarse grids
    // (0.01–0.1 ms each at 16²–32²): the double-well → uniform pair at 128² takes 500–700
    // and image-like blocks ("shapes") up to 470 at 256².
    max_iterations: 2000,
    unsuited: |_| None,
    settings: &[
        super::method::Setting {
            name: "epsilon",
            help: "the entropic regularisation ε (default 1e-3 L², L the domain's longest side)",
        },
        super::method::Setting {
            name: "multiscale",
            help: "true (default: coarse grids first) or false (the finest grid only)",
        },
    ],
    configure: |settings| Ok(Box::new(Sinkhorn::from_settings(settings)?)),
    memory_fields: |_| 32.0,
};

impl super::method::ConfiguredSolver for Sinkhorn {
    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl Sinkhorn {
    /// The solver the registry's settings give (`epsilon`, `multiscale`, the stopping
    /// settings); the defaults elsewhere.
    pub fn from_settings(settings: &super::method::Settings) -> Result<Sinkhorn> {
        let defaults = Sinkhorn::default();
        let (tolerance, max_iterations) = settings.stopping()?;
        Ok(Sinkhorn {
            tolerance,
            max_iterations,
            epsilon: settings.parse("epsilon")?.or(defaults.epsilon),
            multiscale: settings.parse("multiscale")?.unwrap_or(defaults.multiscale),
            ..defaults
        })
    }
}

impl Solver for Sinkhorn {
    /// Runs on a rayon worker thread, so that the many small parallel loops of the coarse
    /// levels fork and join inside the pool instead of handing off from outside it.
    fn solve(&self, problem: &Problem, options: &Options) -> Result<Solution> {
        let stopping =
            &options.stopping(&METHOD, problem.grid(), self.tolerance, self.max_iterations)?;
        rayon::scope(|_| self.solve_in_pool(problem, stopping))
    }
}

impl Sinkhorn {
    /// `(ε, ε_start)` on `grid`: the ones set, else `1e-3 L²` and `0.1 L²` with L the longest
    /// side of the domain. Measured on the double-well pairs ([-2, 2] × [-1.5, 1.5], L = 4):
    /// with the unit box's absolute ε = 1e-3 the ε-scaling ran out of its 500 iterations
    /// before the final ε (stages of 150–180 iterations: Sinkhorn contracts like
    /// `1 − O(ε/L²)`), W₂² off by 2 %; with ε = 1.6e-2 they converge like the unit-box pairs.
    pub fn epsilons(&self, grid: &Grid) -> (f64, f64) {
        let side = grid.axes().iter().map(|a| a.length()).fold(0.0, f64::max);
        let scale = side * side;
        (self.epsilon.unwrap_or(1e-3 * scale), self.epsilon_start.unwrap_or(0.1 * scale))
    }

    fn solve_in_pool(&self, problem: &Problem, options: &Stopping) -> Result<Solution> {
        if let Some(p0) = &self.initial {
            problem.check_initial(p0, "sinkhorn")?;
        }
        let grid = problem.grid();
        // The grid hierarchy, coarsest first (only the problem's grid from a given start).
        let hierarchy =
            Hierarchy::new(grid, COARSEST_CELLS, self.multiscale && self.initial.is_none());
        let levels = Levels::new(&hierarchy, &WholeLayout, [problem.source(), problem.target()]);
        self.run(&hierarchy, levels, options)
    }

    /// This rank's part of the solve on a decomposed grid (`crate::distributed::slab_sinkhorn`
    /// checks and normalises the densities): `local` are the rank's blocks of μ and ν on
    /// `layout`'s part of `domain`, the whole grid. The serial solve's levels and stages,
    /// except that levels `layout` cannot hold (fewer planes than ranks) are left out, with
    /// a warning: the stages they would run take the coarsest level kept. The potentials
    /// returned are the rank's blocks.
    pub(crate) fn solve_part(
        &self,
        domain: &Grid,
        local: [&ScalarField; 2],
        layout: &dyn Layout,
        options: &Options,
    ) -> Result<Solution> {
        if self.initial.is_some() {
            return Err(Error::invalid(
                "sinkhorn on a decomposed grid: a starting potential is not supported yet",
            ));
        }
        let stopping = options.stopping(&METHOD, domain, self.tolerance, self.max_iterations)?;
        let whole = Hierarchy::new(domain, COARSEST_CELLS, self.multiscale);
        let coarsest = whole.grids()[0].clone();
        let hierarchy = whole.without_coarsest(|g| layout.local_grid(g).is_err());
        if hierarchy.grids()[0] != coarsest {
            tracing::warn!(
                "sinkhorn: the multiscale levels from {coarsest} below {} have fewer planes than \
                 ranks and are left out (the serial solve starts on {coarsest}: the results agree \
                 to the tolerance, not to round-off)",
                hierarchy.grids()[0]
            );
        }
        let levels = Levels::new(&hierarchy, layout, local);
        self.run(&hierarchy, levels, &stopping)
    }

    /// The solve on `hierarchy` (the problem's grid finest) with `levels`, this process's cells
    /// of each level. The potentials returned are this process's cells of the finest level.
    fn run<'a>(
        &'a self,
        hierarchy: &'a Hierarchy,
        levels: Levels<'a>,
        options: &'a Stopping,
    ) -> Result<Solution> {
        let layout = levels.layout();
        let (epsilon, epsilon_start) = self.epsilons(&hierarchy.grids()[hierarchy.finest()]);
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(Error::invalid(format!(
                "sinkhorn: ε must be positive and finite, got {epsilon}"
            )));
        }
        let start = Instant::now();
        let grids = hierarchy.grids();
        let finest = hierarchy.finest();
        let grid = layout.local_grid(&grids[finest])?;
        // ε-scaling stages: ε halves from max(ε, ε_start) down to the target.
        let mut stages = vec![epsilon];
        while stages.last().copied().unwrap_or(0.0) * 2.0 <= epsilon_start {
            stages.push(stages.last().expect("non-empty") * 2.0);
        }
        stages.reverse();
        // Work plan: (level, ε) pairs. Each stage runs on the coarsest level that resolves
        // its blur √ε (never coarser than the stage before); the final ε then runs on every
        // finer level in turn, each starting from the interpolated coarser potential.
        let spacing = |l: usize| grids[l].axes().iter().map(|a| a.spacing()).fold(0.0, f64::max);
        let mut plan: Vec<Stage<f64>> = Vec::new();
        let mut current = 0;
        for &eps in &stages {
            while current < finest && spacing(current) > eps.sqrt() / RESOLUTION {
                current += 1;
            }
            plan.push(Stage { level: current, setting: eps });
        }
        plan.extend((current + 1..=finest).map(|level| Stage { level, setting: epsilon }));
        let n0 = layout.local_grid(&grids[plan[0].level])?.num_cells();
        let mut run = Stages {
            solver: self,
            levels,
            options,
            start,
            epsilon,
            f: vec![0.0; n0],
            on: plan[0].level,
            older: None,
            previous_epsilon: None,
            history: Vec::new(),
            iterations: 0,
            error: f64::INFINITY,
            converged: false,
            stopped: false,
        };
        if let Some(p0) = &self.initial {
            run.f.iter_mut().zip(p0.data().iter()).for_each(|(f, p)| *f = -p);
        }
        let g = multilevel::drive(hierarchy, &plan, vec![0.0; n0], &mut run)?;
        let Stages { mut levels, f, history, iterations, error, converged, stopped, .. } = run;
        let (outcome, stop_reason) = if converged {
            (
                Outcome::Converged,
                format!(
                    "marginal error {error:.3e} ≤ tolerance {:.3e} at ε = {}",
                    options.tol(),
                    epsilon
                ),
            )
        } else if !error.is_finite() {
            (Outcome::Diverged, "the marginal error is no longer finite".to_string())
        } else if stopped {
            (Outcome::Stopped, format!("stopped by the observer at marginal error {error:.3e}"))
        } else if iterations < options.budget() && options.out_of_time(start) {
            (
                Outcome::TimeLimit,
                format!(
                    "time limit {:.3} s reached with marginal error {error:.3e} > tolerance {:.3e}",
                    options.time_limit.unwrap_or(0.0),
                    options.tol()
                ),
            )
        } else {
            (
                Outcome::IterationLimit,
                format!(
                    "iteration limit {} reached with marginal error {error:.3e} > tolerance {:.3e}",
                    options.budget(),
                    options.tol()
                ),
            )
        };
        // Potentials where a density vanishes are those of the soft transform (finite).
        let neg = |v: &[f64]| ScalarField::from_vec(&grid, v.iter().map(|x| -x).collect());
        let dual_value = history.last().map_or(0.0, |r| r.dual_value);
        // The symmetric problems at the final ε, coarse to fine like the main one.
        let divergence_start = Instant::now();
        let mut final_levels: Vec<usize> =
            plan.iter().filter(|s| s.setting == epsilon).map(|s| s.level).collect();
        final_levels.dedup();
        let (self_source, self_target) =
            divergence::self_transport(&mut levels, &final_levels, epsilon, options.tol())?;
        let divergence = dual_value - 0.5 * (self_source + self_target);
        let divergence_seconds = divergence_start.elapsed().as_secs_f64();
        tracing::debug!(
            "sinkhorn divergence: symmetric problems in {:.2} ms",
            1e3 * divergence_seconds
        );
        Ok(Solution {
            method: "sinkhorn",
            outcome,
            stop_reason,
            marginal_error: error,
            dual_value,
            iterations,
            seconds: start.elapsed().as_secs_f64(),
            history,
            diagnostics: Vec::new(),
            scalars: vec![
                // The ε solved for (the default scales with the domain).
                ("epsilon".to_string(), epsilon),
                ("sinkhorn_divergence".to_string(), divergence),
                // 2 OT_ε, the entropic cost: the W₂² estimate is 2 S_ε instead.
                ("twice_entropic_cost".to_string(), 2.0 * dual_value),
                // (Part of `seconds`: the plan alone took the rest.)
                ("divergence_seconds".to_string(), divergence_seconds),
            ],
            p: neg(&f)?,
            q: neg(&g)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::grid::BoundaryKind;
    use crate::ot::verify::map_error;

    /// Sinkhorn stopping at `tolerance` or after `iterations`.
    fn limited(tolerance: f64, iterations: usize) -> Sinkhorn {
        Sinkhorn {
            tolerance: Some(tolerance),
            max_iterations: Some(iterations),
            ..Default::default()
        }
    }

    fn problem(grid: &Grid, seed: f64) -> Problem {
        let mu = ScalarField::from_fn(grid, |x| {
            1.0 + 0.5
                * (3.0 * x[0] + seed).sin()
                * x.iter().skip(1).map(|v| v.cos()).product::<f64>()
        });
        let nu =
            ScalarField::from_fn(grid, |x| 0.2 + x.iter().map(|v| (v - 0.6).powi(2)).sum::<f64>());
        Problem::new(&mu, &nu).unwrap()
    }

    /// Dense log-domain Sinkhorn with the full cost matrix: the reference.
    fn dense(problem: &Problem, eps: f64, iterations: usize) -> (Vec<f64>, Vec<f64>) {
        let grid = problem.grid();
        let n = grid.num_cells();
        let d = grid.dim();
        let vol = grid.cell_volume();
        let centres: Vec<Vec<f64>> = {
            let f = crate::field::VectorField::from_fn(grid, |x, out| out.copy_from_slice(x));
            let v = f.data().as_slice().unwrap().to_vec();
            v.chunks(d).map(|c| c.to_vec()).collect()
        };
        let cost = |i: usize, j: usize| -> f64 {
            (0..d)
                .map(|a| {
                    let ax = grid.axis(a);
                    let mut t = (centres[i][a] - centres[j][a]).abs();
                    if ax.boundary.is_periodic() {
                        t = t.min(ax.upper - ax.lower - t);
                    }
                    0.5 * t * t
                })
                .sum()
        };
        let la: Vec<f64> = problem.source().data().iter().map(|v| (v * vol).ln()).collect();
        let lb: Vec<f64> = problem.target().data().iter().map(|v| (v * vol).ln()).collect();
        let lse = |pot: &[f64], lw: &[f64], i: usize| -> f64 {
            let t: Vec<f64> = (0..n).map(|j| pot[j] + eps * lw[j] - cost(i, j)).collect();
            let m = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            m + eps * t.iter().map(|v| ((v - m) / eps).exp()).sum::<f64>().ln()
        };
        let (mut f, mut g) = (vec![0.0; n], vec![0.0; n]);
        for _ in 0..iterations {
            f = (0..n).map(|i| -lse(&g, &lb, i)).collect();
            g = (0..n).map(|j| -lse(&f, &la, j)).collect();
        }
        (f, g)
    }

    /// The separable, shifted GEMM evaluation equals the dense log-sum-exp (2D box, 2D torus,
    /// 3D box), potentials to 1e-9 after the same iterations from zero (no ε-scaling).
    #[test]
    fn separable_kernel_matches_dense_sinkhorn() {
        for (shape, kind) in [
            (vec![8usize, 6], BoundaryKind::Neumann),
            (vec![8, 6], BoundaryKind::Periodic),
            (vec![5, 4, 4], BoundaryKind::Neumann),
        ] {
            let grid =
                Grid::uniform(&shape, &vec![0.0; shape.len()], &vec![1.0; shape.len()], kind)
                    .unwrap();
            let p = problem(&grid, 0.3);
            let eps = 0.02;
            let s = Sinkhorn {
                epsilon: Some(eps),
                epsilon_start: Some(eps),
                overrelaxation: 1.0,
                ..limited(1e-300, 40)
            }
            .solve(&p, &Options::default())
            .unwrap();
            let (f, g) = dense(&p, eps, 40);
            let worst =
                s.p.data()
                    .iter()
                    .zip(&f)
                    .chain(s.q.data().iter().zip(&g))
                    .map(|(a, b)| (a + b).abs())
                    .fold(0.0, f64::max);
            assert!(worst < 1e-9, "{shape:?} {kind:?}: {worst}");
        }
    }

    /// The shifted GEMM soft transform equals the exact log-sum-exp on a potential that
    /// varies by 4000ε along a line (ε = 1e-4, box and torus), with the steep axis
    /// contiguous (x of a 100 × 3 grid: the row pass), strided (y of 3 × 100: the column
    /// pass) and in the middle of a 3D array (3 × 100 × 2): outputs whose dominant term lies
    /// where the kernel underflows (|x − y| > 0.38) take the exact fallback, which must not be
    /// fooled by the kernel's underflow. (A per-segment shift, tried for speed, got cell 41
    /// wrong here: −0.148 against −0.067.)
    #[test]
    fn soft_transform_matches_the_exact_log_sum_exp_at_small_epsilon() {
        for (cells, steep) in [(vec![100usize, 3], 0), (vec![3, 100], 1), (vec![3, 100, 2], 1)] {
            for kind in [BoundaryKind::Neumann, BoundaryKind::Periodic] {
                let d = cells.len();
                let grid = Grid::uniform(&cells, &vec![0.0; d], &vec![1.0; d], kind).unwrap();
                let eps = 1e-4;
                let kernel = crate::ot::gibbs::GibbsKernel::new(&grid, eps);
                let shape = grid.storage_shape();
                // Grid index of flat cell k (axis 0 = x fastest).
                let index = |k: usize| -> Vec<usize> {
                    let mut rest = k;
                    cells
                        .iter()
                        .map(|&n| {
                            let i = rest % n;
                            rest /= n;
                            i
                        })
                        .collect()
                };
                // A steep, wavy potential along the steep axis, with a hole of −∞ (zero mass).
                let h: Vec<f64> = (0..grid.num_cells())
                    .map(|k| {
                        let i = index(k);
                        let t = i[steep] as f64 / 100.0;
                        let other: usize = i.iter().sum::<usize>() - i[steep];
                        if (0.3..0.35).contains(&t) {
                            f64::NEG_INFINITY
                        } else {
                            -0.4 * t + 0.02 * (17.0 * t + other as f64).sin()
                        }
                    })
                    .collect();
                let mut fast = h.clone();
                kernel.soft_transform(&mut fast, &shape);
                for i in 0..grid.num_cells() {
                    let ii = index(i);
                    let terms: Vec<f64> = (0..grid.num_cells())
                        .map(|j| {
                            let jj = index(j);
                            let cost: f64 =
                                (0..d).map(|a| kernel.costs[a][ii[a] * cells[a] + jj[a]]).sum();
                            h[j] - cost
                        })
                        .collect();
                    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let exact =
                        m + eps * terms.iter().map(|t| ((t - m) / eps).exp()).sum::<f64>().ln();
                    assert!(
                        (fast[i] - exact).abs() < 1e-12,
                        "{cells:?} {kind:?} cell {i}: {} vs {exact}",
                        fast[i]
                    );
                }
            }
        }
    }

    /// The multiscale solve (coarse grids for the large-ε stages, then the final ε coarse to
    /// fine) converges to the single-grid solution: same potentials (up to the constant
    /// shared by f and −g) and map to the tolerance's order, box and torus, 2D and 3D, and on
    /// a grid that cannot be halved (odd cells: one level).
    #[test]
    fn multiscale_converges_to_the_single_grid_solution() {
        use crate::ot::verify::Case;
        for (case, n) in [
            (Case::Gaussian2d, 128),
            (Case::Periodic2d, 64),
            (Case::Gaussian3d, 32),
            (Case::Gaussian2d, 45),
        ] {
            let p = case.problem(n).unwrap();
            let options = Options::default();
            let single = Sinkhorn { multiscale: false, ..limited(1e-8, 5000) };
            let (a, b) = (
                single.solve(&p, &options).unwrap(),
                limited(1e-8, 5000).solve(&p, &options).unwrap(),
            );
            assert!(a.converged() && b.converged(), "{case:?} {n}");
            let (da, db) = (a.displacement(&p), b.displacement(&p));
            let worst = da
                .data()
                .iter()
                .zip(db.data().iter())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-6, "{case:?} {n}: maps differ by {worst}");
            let rel = (a.dual_value - b.dual_value).abs() / a.dual_value.abs();
            assert!(rel < 1e-8, "{case:?} {n}: dual values {} vs {}", a.dual_value, b.dual_value);
            let divergence = |s: &Solution| s.scalar("sinkhorn_divergence").expect("reported");
            let (sa, sb) = (divergence(&a), divergence(&b));
            assert!((sa - sb).abs() < 1e-8, "{case:?} {n}: divergences {sa} vs {sb}");
        }
    }

    /// A finer grid starts from the coarser grid's converged potential, whose plan meets the
    /// coarse densities sampled at sixth order: one iteration confirms it. Doubling the
    /// Gaussian pair's grid from 64² up to 512² at ε = 1e-3 adds one grid to the hierarchy
    /// and at most two iterations each (measured: one; four with fourth-order sampling).
    #[test]
    fn each_finer_grid_starts_converged() {
        let options = Options::default();
        let iterations: Vec<usize> = [64usize, 128, 256, 512]
            .iter()
            .map(|&n| {
                let p = crate::ot::verify::Case::Gaussian2d.problem(n).unwrap();
                let s = limited(1e-6, 5000).solve(&p, &options).unwrap();
                assert!(s.converged());
                s.iterations
            })
            .collect();
        for w in iterations.windows(2) {
            assert!(w[1] <= w[0] + 2, "iterations per grid size: {iterations:?}");
        }
    }

    /// A run stopped by its iteration limit on a coarse grid (several halvings below the
    /// problem's) still returns finite potentials on the problem's grid, unconverged.
    #[test]
    fn iteration_limit_on_a_coarse_grid_returns_the_problem_grid() {
        let p = crate::ot::verify::Case::Gaussian2d.problem(128).unwrap();
        let s = limited(1e-6, 5).solve(&p, &Options::default()).unwrap();
        assert!(!s.converged() && s.iterations == 5);
        assert_eq!(s.p.grid(), p.grid());
        assert!(s.p.first_non_finite().is_none() && s.q.first_non_finite().is_none());
        assert!(s.marginal_error.is_finite());
    }

    /// Over-relaxation (default cap 1.9, ω from the observed contraction rate) reaches the
    /// same solution as plain Sinkhorn in fewer iterations (measured on the Gaussian pair at
    /// 128²: 68 instead of 93 at ε = 1e-3, 154 instead of 366 at ε = 2e-4).
    #[test]
    fn overrelaxation_converges_to_the_same_plan_faster() {
        let p = crate::ot::verify::Case::Gaussian2d.problem(64).unwrap();
        let options = Options::default();
        let plain = Sinkhorn { epsilon: Some(5e-4), overrelaxation: 1.0, ..limited(1e-7, 5000) };
        let fast = Sinkhorn { epsilon: Some(5e-4), ..limited(1e-7, 5000) };
        let (a, b) = (plain.solve(&p, &options).unwrap(), fast.solve(&p, &options).unwrap());
        assert!(a.converged() && b.converged());
        assert!(
            (b.iterations as f64) < 0.8 * a.iterations as f64,
            "{} vs {}",
            b.iterations,
            a.iterations
        );
        let (da, db) = (a.displacement(&p), b.displacement(&p));
        let worst =
            da.data().iter().zip(db.data().iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-5, "maps differ by {worst}");
    }

    /// The Sinkhorn → parabolic Monge–Ampère limit: started from the zero potential at a
    /// fixed ε, k = T/ε iterations approximate the flow from zero at time T, with a gap
    /// proportional to ε (one iteration is a forward-Euler step up to O(ε²)). Manufactured
    /// torus case at 48², T = 0.02, reference by 800 implicit steps: the gap must halve with
    /// ε (ratio ≥ 1.8; measured 1.9–2.0 at 64² and 128²) and be well below the distance the
    /// flow has travelled.
    #[test]
    fn fixed_epsilon_iterations_follow_the_parabolic_flow() {
        use crate::ot::verify::Case;
        use crate::ot::{Parabolic, Schedule, Stepping};
        let case = Case::Periodic2d;
        let problem = case.problem(48).unwrap();
        let grid = problem.grid().clone();
        let t = 0.02;
        let steps = 800;
        let flow = Parabolic {
            tolerance: Some(1e-300),
            max_iterations: Some(steps),
            schedule: Schedule::Constant(t / steps as f64),
            stepping: Stepping::LinearlyImplicit,
            ..Default::default()
        };
        let reference = flow.solve(&problem, &Options::default()).unwrap();
        let centred = |u: &ScalarField| {
            let m = u.data().mean().unwrap();
            u.data().mapv(|v| v - m)
        };
        let gap = |u: &ScalarField| {
            let d = centred(u) - centred(&reference.p);
            (d.mapv(|v| v * v).sum() * grid.cell_volume()).sqrt()
        };
        let zero = ScalarField::zeros(&grid);
        let travelled = gap(&zero);
        let mut gaps = Vec::new();
        for eps in [2e-3, 1e-3, 5e-4] {
            let k = (t / eps).round() as usize;
            let s = Sinkhorn {
                epsilon: Some(eps),
                epsilon_start: Some(eps),
                initial: Some(zero.clone()),
                overrelaxation: 1.0,
                multiscale: false,
                ..limited(1e-300, k)
            }
            .solve(&problem, &Options::default())
            .unwrap();
            assert_eq!(s.iterations, k);
            gaps.push(gap(&s.p));
        }
        for w in gaps.windows(2) {
            assert!(w[0] / w[1] >= 1.8, "gaps {gaps:?}");
        }
        assert!(gaps[2] < 0.05 * travelled, "gaps {gaps:?}, travelled {travelled}");
    }

    /// Small ε where the linear-domain kernel underflows (exp(−1/(2ε)) = 0 in f64 for
    /// ε = 2e-4): still finite potentials and converged marginals; and the entropic map
    /// approaches the Brenier map as ε decreases (error roughly ∝ ε: ratio ≥ 2.5 per ε/4).
    #[test]
    fn small_epsilon_is_stable_and_the_map_converges_as_epsilon_falls() {
        let case = crate::ot::verify::Case::Gaussian2d;
        let p = case.problem(64).unwrap();
        let Some(crate::ot::verify::Exact::Gaussian(exact)) = case.exact() else { unreachable!() };
        let options = Options::default();
        let mut errors = Vec::new();
        let w2 = exact.w2_squared();
        for eps in [4e-3, 1e-3, 2.5e-4] {
            let sol =
                Sinkhorn { epsilon: Some(eps), ..limited(1e-6, 3000) }.solve(&p, &options).unwrap();
            assert!(sol.converged(), "ε {eps}: {}", sol.stop_reason);
            errors.push(map_error(&sol, &p, |x, y| exact.apply(x, y)).l2);
            // The Sinkhorn divergence removes the entropic bias: 2 S_ε is within 1e-4 of W₂²
            // (measured at 128²: 4.3e-5 at ε = 4e-3 where 2 OT_ε is off by 1.3e-2) and at
            // least 20× closer than 2 OT_ε.
            let divergence = sol.scalar("sinkhorn_divergence").expect("reported");
            assert_eq!(sol.w2_squared(), 2.0 * divergence);
            let biased = (sol.scalar("twice_entropic_cost").expect("reported") - w2).abs();
            let debiased = (sol.w2_squared() - w2).abs();
            assert!(debiased < 1e-4 && 20.0 * debiased < biased, "ε {eps}: {debiased} vs {biased}");
        }
        for w in errors.windows(2) {
            assert!(w[0] / w[1] >= 2.5, "{errors:?}");
        }
        // Between equal measures the divergence vanishes (OT_ε alone does not).
        let same = Problem::new(p.source(), p.source()).unwrap();
        let sol = Sinkhorn::default().solve(&same, &options).unwrap();
        let divergence = sol.scalar("sinkhorn_divergence").expect("reported");
        assert!(
            divergence.abs() < 1e-10 && sol.dual_value > 1e-4,
            "{divergence} {}",
            sol.dual_value
        );
        let coarse = Grid::unit(2, 32, BoundaryKind::Neumann).unwrap();
        let q = problem(&coarse, 0.1);
        let sol =
            Sinkhorn { epsilon: Some(2e-4), ..Default::default() }.solve(&q, &options).unwrap();
        // (ε ≪ h²/2 here: the plan is nearly the discrete one and Sinkhorn slows down; the
        // marginal error was 1.2e-4 after 3000 iterations.)
        assert!(sol.marginal_error < 1e-3, "{}", sol.stop_reason);
        assert!(sol.p.first_non_finite().is_none() && sol.q.first_non_finite().is_none());
    }

    /// The default ε scales with the domain (1e-3 L², ε-scaling from 0.1 L²): on the
    /// double-well → uniform pair ([-2, 2] × [-1.5, 1.5]) the unit box's absolute 1e-3
    /// needs 3.6× the iterations (1739, past the old budget of 500) for a blur 16× narrower
    /// relative to the domain; the scaled default converges, with the W₂² estimate 2 S_ε
    /// within 0.1 % of the pair's closed form.
    #[test]
    fn default_epsilon_scales_with_the_domain() {
        use crate::ot::verify::Case;
        let unit = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
        assert_eq!(Sinkhorn::default().epsilons(&unit), (1e-3, 0.1));
        let case = Case::DoubleWellUniform;
        let problem = case.problem(64).unwrap();
        let (eps, start) = Sinkhorn::default().epsilons(problem.grid());
        assert!((eps - 1.6e-2).abs() < 1e-15 && (start - 1.6).abs() < 1e-12, "{eps} {start}");
        let s = Sinkhorn::default().solve(&problem, &Options::default()).unwrap();
        assert_eq!(s.outcome, Outcome::Converged, "{}", s.stop_reason);
        let exact = case.exact().expect("product closed form").w2_squared();
        let rel = (s.w2_squared() - exact).abs() / exact;
        assert!(rel < 1e-3, "W₂² relative error {rel:e}");
        let absolute =
            Sinkhorn { epsilon: Some(1e-3), epsilon_start: Some(0.1), ..Default::default() };
        let fixed = absolute.solve(&problem, &Options::default()).unwrap();
        // (Measured: 486 against 1739 iterations, 0.03 against 1.1 s.)
        assert!(fixed.iterations > 3 * s.iterations, "{} vs {}", fixed.iterations, s.iterations);
    }

    #[test]
    fn bad_epsilon_is_rejected() {
        let grid = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let p = problem(&grid, 0.0);
        for eps in [0.0, -1.0, f64::NAN] {
            let s = Sinkhorn { epsilon: Some(eps), ..Default::default() };
            assert!(s.solve(&p, &Options::default()).is_err());
        }
    }
}
