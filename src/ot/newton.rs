//! Damped Newton method for the Monge–Ampère equation of quadratic-cost OT, for smooth,
//! strictly positive densities, on boxes (second boundary condition) and tori (periodic).
//!
//! Unknown: the displacement potential `u = φ − |x|²/2` at the cell centres. Equation:
//!
//! `F(u) = log det(I + D²u) + log g(x + ∇u) − log f = c`,  `Σ u = 0`,
//!
//! with `c` an unknown constant (the discrete problem is solvable only up to it; `c → 0` as
//! `h → 0`).
//!
//! * Discretisation: central differences — `∇_h` (2 points), `D_kk` (3 points), `D_kl`
//!   (4 diagonal points) — all second order. On a box face the ghost cell mirrors the cell
//!   inside (`∂ₙu = 0`): for a box mapped onto itself that is exactly the second boundary
//!   condition (each face of the box goes to the same face, `T_k = x_k` there). Periodic axes
//!   wrap. `log g` is interpolated multilinearly at `x + ∇_h u`.
//! * Newton step: `J v − δc = −(F(u) − c)` (then `v` made mean-free) with the exact linearisation of the
//!   discrete `F`, `J v = tr((I + D²_h u)⁻¹ D²_h v) + ∇log g(x + ∇_h u)·∇_h v` (the gradient
//!   of the interpolant), a bordered sparse system (one pinned value, one column for `δc`)
//!   factorised by faer's LU (symbolic analysis once, numeric refactorisation per step).
//! * Damping: the step `θ v` starts at `θ = 1` and halves until `I + D²_h u` stays positive
//!   definite in every cell (discrete convexity) and the residual's RMS decreases by the
//!   Armijo factor `1 − 10⁻⁴ θ`.
//! * Stopping: `max |F − mean F| ≤ tolerance`. The residual is the logarithm of the
//!   relative density mismatch `g(T) det DT / f`, i.e. the marginal error of the pull-back
//!   of ν in a relative max norm. Newton converges quadratically near the solution, so the
//!   final residual is usually far below the tolerance.
//!
//! The operator, its linearisation and the step solvers live in [`super::monge_ampere`]
//! (shared with the parabolic flow). The solution's `q` is the c-transform of `p`; the dual
//! value then gives the W₂² estimate as for every method.

use super::lift::{lifted_for, GaussianLift};
pub use super::monge_ampere::NewtonLinearSolver;
use super::monge_ampere::{
    dual_value, initial_state, map_shift_in_cells, mean, pullback_errors, residual_norms, stopping,
    Linearisation, StepSolver, SETTLED_MAP_SHIFT,
};
use super::multilevel::{coarsen, prolong, restrict};
use super::problem::{
    IterationRecord, Options, Outcome, Problem, Solution, Solver, Step, Stopping,
};
use crate::error::Result;
use crate::field::ScalarField;
use rayon::prelude::*;
use std::time::Instant;

/// Newton solver settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Newton {
    /// Stop once the max norm of the Monge–Ampère residual `log(g(∇φ) det D²φ / f)` (a
    /// relative density mismatch) is at most this; `None`: 1e-8 ([`METHOD`]).
    pub tolerance: Option<f64>,
    /// Newton steps allowed (the coarse start's included); `None`: 500.
    pub max_iterations: Option<usize>,
    /// Most halvings of the step in the line search before giving up.
    pub max_halvings: usize,
    /// Starting displacement potential (on the problem's grid, `I + D²_h u` positive
    /// definite); zero when `None`.
    #[serde(skip)]
    pub initial: Option<ScalarField>,
    /// The linear solver of each step.
    pub linear_solver: NewtonLinearSolver,
    /// Without an `initial` potential, start from the solution on the grid with every even
    /// axis halved (recursively, down to [`COARSEST`] cells), prolonged by cubic
    /// interpolation; from zero when that is not discretely convex or the coarse solve fails.
    pub coarse_start: bool,
    /// Applied when a density's `min/max` is below [`super::MIN_CONTRAST`]: the equation is solved
    /// for the lifted pair ([`GaussianLift`]); `None` solves the densities as given.
    pub lift: Option<GaussianLift>,
}

impl Default for Newton {
    fn default() -> Self {
        Newton {
            tolerance: None,
            max_iterations: None,
            max_halvings: 30,
            initial: None,
            linear_solver: NewtonLinearSolver::Auto { direct_cells: 300_000 },
            coarse_start: true,
            lift: Some(GaussianLift::default()),
        }
    }
}

/// A residual `max |log(g(T) det DT / f)|` below which Newton's failure to make progress is
/// the round-off floor of the discrete equation, not a stall: a relative density mismatch of
/// 1e-5, far below any discretisation error. Measured on the reference Gaussian pair (tails
/// of 1e-30): quadratic convergence to 3.3e-7 at 128², then no step reduces the residual
/// (7 more iterations of 30 halvings each, 37 s in all, before this rule).
const ROUND_OFF_FLOOR: f64 = 1e-5;

/// The registry entry of Newton's method: tolerance 1e-8 on the max Monge–Ampère residual
/// (Newton converges quadratically, so a tight tolerance costs one or two steps).
pub const METHOD: super::method::MethodInfo = super::method::MethodInfo {
    name: "newton",
    stopping_measure: "max Monge-Ampere residual |log(g(T) det DT / f)|",
    default_tolerance: |_| 1e-8,
    max_iterations: 500,
    unsuited: super::lift::unsuited,
    settings: &[],
    configure: |settings| {
        let (tolerance, max_iterations) = settings.stopping()?;
        Ok(Box::new(Newton { tolerance, max_iterations, ..Newton::default() }))
    },
    memory_fields: super::monge_ampere::memory_fields,
};

impl super::method::ConfiguredSolver for Newton {
    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Fewest cells per axis of a coarse start's grid.
pub const COARSEST: usize = 32;

impl Newton {
    /// The fine potential prolonged from the solve on the coarser grid, if there is one and
    /// that solve succeeds.
    fn coarse_start(
        &self,
        problem: &Problem,
        options: &Stopping,
        start: Instant,
    ) -> Option<ScalarField> {
        let coarse_grid = coarsen(problem.grid(), COARSEST)?;
        let restricted = |rho: &ScalarField| restrict(rho, &coarse_grid);
        let coarse =
            Problem::new(&restricted(problem.source()).ok()?, &restricted(problem.target()).ok()?)
                .ok()?;
        let remaining = options.time_limit.map(|t| t - start.elapsed().as_secs_f64());
        if remaining.is_some_and(|t| t <= 0.0) {
            return None;
        }
        let coarse_options = Options { time_limit: remaining, observer: None };
        let coarse_solver = Newton {
            tolerance: Some(options.tol().max(1e-6)),
            max_iterations: Some(options.budget()),
            initial: None,
            ..self.clone()
        };
        let solution = coarse_solver.solve(&coarse, &coarse_options).ok()?;
        solution.solved().then(|| prolong(&solution.p, problem.grid()))
    }
}

impl Solver for Newton {
    fn solve(&self, problem: &Problem, options: &Options) -> Result<Solution> {
        let options =
            &options.stopping(&METHOD, problem.grid(), self.tolerance, self.max_iterations)?;
        let start = Instant::now();
        let lifted = lifted_for("newton", self.lift, problem, super::lift::unsuited)?;
        let lift = lifted.as_ref().map(|(l, _)| *l);
        let equation = lifted.as_ref().map_or(problem, |(_, p)| p);
        let guess = match &self.initial {
            Some(p) => Some(p.clone()),
            None if self.coarse_start => self.coarse_start(problem, options, start),
            None => None,
        };
        let mut state = initial_state(equation, guess.as_ref(), "newton");
        // A coarse start that is not discretely convex on this grid: a fraction of it, else
        // zero.
        if let (Err(_), Some(g), None) = (&state, &guess, &self.initial) {
            for fraction in [0.5, 0.25] {
                let mut scaled = g.clone();
                scaled.data_mut().mapv_inplace(|v| v * fraction);
                state = initial_state(equation, Some(&scaled), "newton");
                if state.is_ok() {
                    break;
                }
            }
            if state.is_err() {
                state = initial_state(equation, None, "newton");
            }
        }
        let (ma, mut u, mut residual, mut lin) = state?;
        let mut step_solver = StepSolver::new(self.linear_solver);
        step_solver.forcing = true;
        let grid = problem.grid().clone();
        let n = ma.len();
        let f = equation.source().data().iter().copied().collect::<Vec<f64>>();
        let vol = grid.cell_volume();
        let mut history = Vec::new();
        let mut outcome = Outcome::Stalled;
        let mut stop_reason = String::new();
        let mut error = f64::INFINITY;
        let mut step_solution = Vec::with_capacity(n + 1);
        let mut q = ScalarField::zeros(&grid);
        for iteration in 0..=options.budget() {
            let (max, rms) = residual_norms(&residual);
            error = max;
            let c = mean(&residual);
            let (l1, _) = pullback_errors(&residual, c, &f, vol);
            let p = ScalarField::from_vec(&grid, u.clone())?;
            let (dual_value, conjugate) = dual_value(problem, &p)?;
            q = conjugate;
            history.push(IterationRecord {
                marginal_error: max,
                l1_marginal_error: l1,
                dual_value,
                step: Step::None,
            });
            let record = history.last().expect("pushed");
            if let Some((end, reason)) =
                stopping(max, iteration, options, start, ("newton", record, &p))
            {
                (outcome, stop_reason) = (end, reason);
                break;
            }
            let at = Linearisation { ma: &ma, cells: &lin, residual: &residual, c };
            if let Err(e) = step_solver.step(&at, &mut step_solution) {
                stop_reason = format!("the linear solve of step {iteration} failed: {e}");
                break;
            }
            let v = &step_solution;
            // Settled: the residual is below the round-off floor of F, or the full Newton
            // step would move the map by a negligible fraction of a cell. Then a step that
            // no longer halves the residual, or a failed line search, has met the floor of
            // the discrete equation (a tolerance the grid or the arithmetic cannot reach).
            // (The map motion costs a gradient: measured only when a stop depends on it.)
            let motion = std::cell::OnceCell::new();
            let moves = || *motion.get_or_init(|| map_shift_in_cells(v, &grid));
            let settled = || max <= ROUND_OFF_FLOOR || moves() <= SETTLED_MAP_SHIFT;
            let floor_reason = |what: &str| {
                format!(
                    "{what} at residual {max:.3e} (tolerance {:.3e}), where a full Newton step \
                     moves the map by {:.1e} cells: the floor of the discrete equation",
                    options.tol(),
                    moves()
                )
            };
            let previous = history.len().checked_sub(2).map(|k| history[k].marginal_error);
            if previous.is_some_and(|p| max > 0.5 * p) && settled() {
                outcome = Outcome::DiscretisationFloor { floor: max };
                stop_reason = floor_reason("the Monge–Ampère residual stopped falling");
                break;
            }
            let mut theta = 1.0;
            let mut accepted = None;
            for _ in 0..=self.max_halvings {
                let trial: Vec<f64> =
                    u.par_iter().zip(v.par_iter()).map(|(a, b)| a + theta * b).collect();
                if let Some((r, l)) = ma.evaluate(&trial) {
                    if residual_norms(&r).1 <= (1.0 - 1e-4 * theta) * rms {
                        accepted = Some((trial, r, l));
                        break;
                    }
                }
                theta *= 0.5;
            }
            match accepted {
                Some((trial, r, l)) => {
                    u = trial;
                    residual = r;
                    lin = l;
                    history.last_mut().expect("recorded").step = Step::Damping(theta);
                }
                None if settled() => {
                    outcome = Outcome::DiscretisationFloor { floor: max };
                    stop_reason = floor_reason("the line search failed");
                    break;
                }
                None => {
                    stop_reason = format!(
                        "line search failed after {} halvings with residual {max:.3e}",
                        self.max_halvings
                    );
                    break;
                }
            }
        }
        // u was recorded (mean-free, with its c-transform q) at the last iteration.
        let p = ScalarField::from_vec(&grid, u)?;
        let dual_value = history.last().map_or(0.0, |r| r.dual_value);
        Ok(Solution {
            method: "newton",
            outcome,
            stop_reason,
            marginal_error: error,
            dual_value,
            iterations: history.len() - 1,
            seconds: start.elapsed().as_secs_f64(),
            history,
            diagnostics: Vec::new(),
            scalars: lift.map(|l| vec![("lift_mass".to_string(), l.mass)]).unwrap_or_default(),
            p,
            q,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytic::manufactured::observed_orders;
    use crate::analytic::maps::{PeriodicManufactured, Separable};
    use crate::grid::{BoundaryKind, Grid};
    use crate::ot::monge_ampere::KRYLOV_DEFAULT;
    use crate::ot::verify::map_error;

    fn problem_on(
        grid: &Grid,
        f: impl Fn(&[f64]) -> f64 + Sync,
        g: impl Fn(&[f64]) -> f64 + Sync,
    ) -> Problem {
        Problem::new(&ScalarField::from_fn(grid, f), &ScalarField::from_fn(grid, g)).unwrap()
    }

    /// Newton to a residual of 1e-10 in at most 50 steps.
    fn tight() -> Newton {
        Newton { tolerance: Some(1e-10), max_iterations: Some(50), ..Default::default() }
    }

    /// No time limit, no observer.
    fn plain() -> Options {
        Options::default()
    }

    /// μ-weighted L2 map errors of the manufactured periodic case on `sizes`, with their orders.
    fn periodic_orders(dim: usize, sizes: &[usize]) -> (Vec<f64>, Vec<f64>) {
        let case = PeriodicManufactured::standard(dim);
        let (mut hs, mut errors) = (Vec::new(), Vec::new());
        for &n in sizes {
            let grid = Grid::unit(dim, n, BoundaryKind::Periodic).unwrap();
            let problem = problem_on(&grid, |x| case.source_density(x), |y| case.target_density(y));
            let solution = tight().solve(&problem, &plain()).unwrap();
            assert!(solution.converged(), "{dim}D {n}: {}", solution.stop_reason);
            // Newton: a handful of steps, full steps near the solution.
            assert!(solution.iterations <= 8, "{dim}D {n}: {} iterations", solution.iterations);
            let e = map_error(&solution, &problem, |x, y| case.map(x, y));
            hs.push(1.0 / n as f64);
            errors.push(e.l2);
        }
        (observed_orders(&hs, &errors), errors)
    }

    /// The manufactured periodic case (source and target both non-uniform): the map error
    /// converges at second order (measured 1.99, 1.99), and W₂² matches the closed form.
    #[test]
    fn periodic_manufactured_case_converges_at_second_order() {
        let (orders, errors) = periodic_orders(2, &[32, 64, 128]);
        assert!(orders.iter().all(|&o| o >= 1.9), "{orders:?} {errors:?}");
        assert!(errors[2] < 2e-5, "{errors:?}");
        let case = PeriodicManufactured::standard(2);
        let grid = Grid::unit(2, 128, BoundaryKind::Periodic).unwrap();
        let problem = problem_on(&grid, |x| case.source_density(x), |y| case.target_density(y));
        let solution = tight().solve(&problem, &plain()).unwrap();
        let rel = (solution.w2_squared() - case.w2_squared()).abs() / case.w2_squared();
        assert!(rel < 1e-4, "W2² {} vs {}", solution.w2_squared(), case.w2_squared());
        // The residual falls superlinearly: each of the last steps gains > 2 digits.
        let h = &solution.history;
        let k = h.len() - 1;
        assert!(h[k].marginal_error < 1e-2 * h[k - 1].marginal_error, "{h:?}");
    }

    /// The same in 3D (Krylov steps): measured orders 1.98, 1.97 on 24³, 32³, 48³.
    #[test]
    fn periodic_manufactured_case_in_3d_converges_at_second_order() {
        let (orders, errors) = periodic_orders(3, &[24, 32, 48]);
        assert!(orders.iter().all(|&o| o >= 1.9), "{orders:?} {errors:?}");
    }

    /// Separable products on the box (second boundary condition as a mirror ghost): second
    /// order in the μ-weighted L2 norm (measured 1.96, 1.97); the direct and Krylov steps
    /// agree.
    #[test]
    fn separable_box_case_converges_at_second_order() {
        let case = Separable::standard(2);
        let (mut hs, mut errors) = (Vec::new(), Vec::new());
        for n in [32, 64, 128] {
            let grid = Grid::unit(2, n, BoundaryKind::Neumann).unwrap();
            let problem = problem_on(&grid, |x| case.source_density(x), |y| case.target_density(y));
            let direct = Newton { linear_solver: NewtonLinearSolver::Direct, ..tight() };
            let solution = direct.solve(&problem, &plain()).unwrap();
            assert!(solution.converged(), "{n}: {}", solution.stop_reason);
            let e = map_error(&solution, &problem, |x, y| case.map(x, y));
            hs.push(1.0 / n as f64);
            errors.push(e.l2);
            if n == 64 {
                let krylov = Newton { linear_solver: KRYLOV_DEFAULT, ..tight() };
                let other = krylov.solve(&problem, &plain()).unwrap();
                let diff = other.p.data() - solution.p.data();
                assert!(diff.iter().all(|d| d.abs() < 1e-9), "direct and Krylov steps differ");
                let rel = (solution.w2_squared() - case.w2_squared()).abs() / case.w2_squared();
                assert!(rel < 1e-3, "W2² {} vs {}", solution.w2_squared(), case.w2_squared());
            }
        }
        let orders = observed_orders(&hs, &errors);
        assert!(orders.iter().all(|&o| o >= 1.9), "{orders:?} {errors:?}");
    }

    #[test]
    fn vanishing_densities_and_unconverged_runs_are_reported() {
        let grid = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
        let problem = problem_on(&grid, |x| if x[0] < 0.3 { 0.0 } else { 1.0 }, |_| 1.0);
        let msg = tight().solve(&problem, &plain()).unwrap_err().to_string();
        assert!(msg.contains("zero regions") && msg.contains("source"), "{msg}");
        let unlifted = Newton { lift: None, ..tight() };
        let msg = unlifted.solve(&problem, &plain()).unwrap_err().to_string();
        assert!(msg.contains("strictly positive") && msg.contains("source"), "{msg}");
        let case = Separable::standard(2);
        let problem = problem_on(&grid, |x| case.source_density(x), |y| case.target_density(y));
        let one = Newton { max_iterations: Some(1), ..tight() };
        let solution = one.solve(&problem, &plain()).unwrap();
        assert!(!solution.converged() && solution.stop_reason.contains("iteration limit"));
        assert_eq!(solution.iterations, 1);
    }

    /// The reference Gaussian pair (tails down to 1e-28 of the peak) through the Gaussian
    /// lift and the coarse start: converged at 64² and 128² with map errors 1.65e-5 and
    /// 6.8e-6 (bfm: 6.5e-4 and 2.3e-4), W₂² within 2e-5; at most 8 steps on the finest
    /// grid from the coarse start; the lift is reported. Without the lift the discrete
    /// solution is poor (1.1e-2 at 128² in the measurements behind [`GaussianLift`]).
    #[test]
    fn the_reference_gaussian_pair_converges_through_the_lift() {
        let case = crate::ot::Case::Gaussian2d;
        let exact = case.exact().unwrap();
        for (n, bound) in [(64, 3e-5), (128, 1.5e-5)] {
            let problem = case.problem(n).unwrap();
            assert!(problem.contrast() < 1e-20);
            let s = Newton { tolerance: Some(1e-8), ..tight() }.solve(&problem, &plain()).unwrap();
            assert!(s.converged(), "{n}: {}", s.stop_reason);
            assert!(s.iterations <= 8, "{n}: {} steps on the finest grid", s.iterations);
            assert_eq!(s.scalar("lift_mass"), Some(GaussianLift::default().mass));
            let e = map_error(&s, &problem, |x, y| exact.map(x, y));
            let w2 = (s.w2_squared() - exact.w2_squared()).abs() / exact.w2_squared();
            assert!(e.l2 < bound && w2 < 2e-5, "{n}: L2 {:.3e}, W2² {w2:.2e}", e.l2);
        }
    }

    /// Gaussians in 3D with full, rotated covariances (Krylov steps with the scaled
    /// spectral preconditioner): converged at 32³ with map error 1.1e-4 (bfm: 3.2e-3).
    #[test]
    fn rotated_3d_gaussians_converge() {
        let case = crate::ot::Case::Gaussian3dRotated;
        let exact = case.exact().unwrap();
        let problem = case.problem(32).unwrap();
        let s = Newton { tolerance: Some(1e-8), ..tight() }.solve(&problem, &plain()).unwrap();
        assert!(s.converged(), "{}", s.stop_reason);
        let e = map_error(&s, &problem, |x, y| exact.map(x, y));
        assert!(e.l2 < 2e-4, "L2 {:.3e}", e.l2);
    }

    /// A tolerance below round-off (1e-17) ends at the round-off floor after the quadratic
    /// phase (measured: separable-2d at 32², 8 iterations, floor 3.1e-13; periodic-2d 7,
    /// 1.5e-14), typed as [`Outcome::DiscretisationFloor`], not after 30 halvings per step
    /// as a stall.
    #[test]
    fn an_unreachable_tolerance_ends_at_the_round_off_floor() {
        for case in [crate::ot::Case::Separable2d, crate::ot::Case::Periodic2d] {
            let problem = case.problem(32).unwrap();
            let s = Newton { tolerance: Some(1e-17), ..tight() }.solve(&problem, &plain()).unwrap();
            let floor = s.outcome.floor().unwrap_or_else(|| panic!("{:?}", s.outcome));
            assert!(floor < 1e-11 && s.iterations <= 10, "{floor} after {}", s.iterations);
            assert!(s.solved() && !s.converged());
        }
    }
}
