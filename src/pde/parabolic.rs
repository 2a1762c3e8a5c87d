//! Parabolic problems `∂ₜu = ∇·(a∇u) − b·∇u − c u + s(x, t)`, i.e. `∂ₜu = −L u + s` with
//! the elliptic operator L of [`crate::sparse::assemble`] and time-independent boundary
//! data, stepped by the θ-scheme (backward Euler or Crank–Nicolson) with a fixed step or an
//! adaptive step controlled by step doubling.

use super::stepper::{ThetaStepper, TimeScheme};
use super::{Checkpointing, StepRecord};
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::Grid;
use crate::sparse::{assemble, BoundaryConditions, OperatorSpec};
use std::ops::ControlFlow;
use std::sync::Arc;

/// A source term s(x, t).
#[derive(Clone)]
pub enum Source {
    None,
    /// Time-independent.
    Field(ScalarField),
    /// Sampled on the grid at time t.
    Function(Arc<dyn Fn(f64) -> Result<ScalarField> + Send + Sync>),
}

impl Source {
    fn at(&self, t: f64) -> Result<Option<ScalarField>> {
        Ok(match self {
            Source::None => None,
            Source::Field(f) => Some(f.clone()),
            Source::Function(f) => Some(f(t)?),
        })
    }
}

/// A parabolic problem.
#[derive(Clone)]
pub struct ParabolicProblem {
    pub grid: Grid,
    pub operator: OperatorSpec,
    pub bcs: BoundaryConditions,
    pub source: Source,
    pub initial: ScalarField,
}

/// Step control.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepControl {
    /// `ceil(t_end/dt)` equal steps (the factorisation is computed once).
    Fixed { dt: f64 },
    /// Step doubling: each step is also taken as two half steps; their difference,
    /// divided by `2^p − 1`, estimates the local error, which is kept below `tolerance`
    /// (max norm); the two-half-step solution is kept.
    Adaptive { dt_initial: f64, tolerance: f64 },
}

/// Time integration settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct TimeSettings {
    pub t_end: f64,
    pub scheme: TimeScheme,
    pub control: StepControl,
    /// Number of snapshots kept besides t = 0 (evenly spaced in time, the last at t_end).
    pub snapshots: usize,
}

/// What a run produces.
#[derive(Clone, Debug)]
pub struct TimeSeries {
    /// `(t, u)` at t = 0 and at each snapshot time.
    pub snapshots: Vec<(f64, ScalarField)>,
    /// Time of each accepted step's end.
    pub times: Vec<f64>,
    /// Accepted step sizes.
    pub dt: Vec<f64>,
    /// Error estimates of accepted steps (adaptive control only).
    pub error_estimates: Vec<f64>,
    /// Rejected steps (adaptive control only).
    pub rejected: usize,
    /// Numeric factorisations performed.
    pub factorisations: usize,
    /// The observer stopped the run before `t_end` (the last snapshot is where it stopped).
    pub stopped: bool,
}

impl TimeSeries {
    /// The solution at the final time.
    pub fn last(&self) -> &ScalarField {
        &self.snapshots.last().expect("at least the initial state").1
    }
}

pub(crate) fn check_time(settings: &TimeSettings) -> Result<()> {
    let t = settings.t_end;
    if !(t > 0.0 && t.is_finite()) {
        return Err(Error::invalid(format!("t_end must be positive, got {t}")));
    }
    match settings.control {
        StepControl::Fixed { dt } | StepControl::Adaptive { dt_initial: dt, .. }
            if !(dt > 0.0 && dt.is_finite()) =>
        {
            Err(Error::invalid(format!("time step dt must be positive, got {dt}")))
        }
        StepControl::Adaptive { tolerance, .. } if !(tolerance > 0.0 && tolerance.is_finite()) => {
            Err(Error::invalid(format!("adaptive tolerance must be positive, got {tolerance}")))
        }
        _ => Ok(()),
    }
}

fn to_vec(f: Option<ScalarField>, bc: &[f64]) -> Vec<f64> {
    match f {
        Some(f) => f.data().iter().zip(bc).map(|(s, b)| s + b).collect(),
        None => bc.to_vec(),
    }
}

fn field(grid: &Grid, v: &[f64]) -> ScalarField {
    ScalarField::from_vec(grid, v.to_vec()).expect("one value per cell")
}

/// The state of a run after an accepted step: [`integrate_from`] continues from it exactly
/// as the uninterrupted run would (same steps, same snapshots, same values).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Time reached.
    pub t: f64,
    /// Accepted steps so far.
    pub step: usize,
    /// The next step size to try (adaptive control; the fixed step otherwise).
    pub dt_next: f64,
    /// Step attempts so far (adaptive control).
    pub attempts: usize,
    /// The solution at `t`.
    pub u: ScalarField,
    /// Index of the next snapshot time to record.
    pub next_snapshot: usize,
    /// Everything recorded so far.
    pub series: TimeSeries,
}

/// Integrates the problem to `t_end`; `observe` sees every accepted step and may stop the
/// run (`ControlFlow::Break`: the series ends there, [`TimeSeries::stopped`] set).
pub fn integrate(
    problem: &ParabolicProblem,
    settings: &TimeSettings,
    observe: impl FnMut(&StepRecord) -> ControlFlow<()>,
) -> Result<TimeSeries> {
    integrate_from(problem, settings, None, observe, None)
}

/// [`integrate`] from a checkpoint of the same problem and settings (or from t = 0), saving
/// checkpoints as `checkpointing` asks.
pub fn integrate_from(
    problem: &ParabolicProblem,
    settings: &TimeSettings,
    resume: Option<Checkpoint>,
    observe: impl FnMut(&StepRecord) -> ControlFlow<()>,
    checkpointing: Option<Checkpointing<Checkpoint>>,
) -> Result<TimeSeries> {
    integrate_steps(problem, settings, resume, observe, checkpointing)
        .map_err(|e| problem.operator.explain(&problem.grid, &problem.bcs, e))
}

/// Snapshot times: `snapshots` evenly spaced, the last at `t_end`.
fn snapshot_times(settings: &TimeSettings) -> Vec<f64> {
    let n = settings.snapshots.max(1);
    (1..=n).map(|k| settings.t_end * k as f64 / n as f64).collect()
}

fn integrate_steps(
    problem: &ParabolicProblem,
    settings: &TimeSettings,
    resume: Option<Checkpoint>,
    mut observe: impl FnMut(&StepRecord) -> ControlFlow<()>,
    mut checkpointing: Option<Checkpointing<Checkpoint>>,
) -> Result<TimeSeries> {
    check_time(settings)?;
    if problem.initial.grid() != &problem.grid {
        return Err(Error::invalid("initial condition lives on another grid"));
    }
    let sys = assemble(&problem.grid, &problem.operator, &problem.bcs)?;
    let forced =
        !matches!(problem.source, Source::None) || sys.boundary_rhs.iter().any(|v| *v != 0.0);
    let forcing = |t: f64| -> Result<Option<Vec<f64>>> {
        if forced {
            Ok(Some(to_vec(problem.source.at(t)?, &sys.boundary_rhs)))
        } else {
            Ok(None)
        }
    };
    let grid = &problem.grid;
    let snap_times = snapshot_times(settings);
    let fresh = TimeSeries {
        snapshots: vec![(0.0, problem.initial.clone())],
        times: Vec::new(),
        dt: Vec::new(),
        error_estimates: Vec::new(),
        rejected: 0,
        factorisations: 0,
        stopped: false,
    };
    let (mut u, mut series, mut next_snap, mut t, first_step, dt_next, mut attempts) = match resume
    {
        None => {
            let u: Vec<f64> = problem.initial.data().iter().copied().collect();
            let dt0 = match settings.control {
                StepControl::Fixed { dt } => dt,
                StepControl::Adaptive { dt_initial, .. } => dt_initial.min(settings.t_end),
            };
            (u, fresh, 0, 0.0, 0, dt0, 0)
        }
        Some(c) => {
            if c.u.grid() != grid || c.next_snapshot > snap_times.len() || c.t > settings.t_end {
                return Err(Error::invalid(
                        "the checkpoint does not belong to this problem (grid, snapshots or t_end differ)",
                    ));
            }
            let u = c.u.data().iter().copied().collect();
            (u, c.series, c.next_snapshot, c.t, c.step, c.dt_next, c.attempts)
        }
    };
    // Records an accepted step ending at t and, at most once per step, a snapshot when t
    // reached the next snapshot time (further snapshot times passed by the step are skipped).
    let t_end = settings.t_end;
    let record =
        |series: &mut TimeSeries, next: &mut usize, snaps: &[f64], t: f64, dt: f64, u: &[f64]| {
            series.times.push(t);
            series.dt.push(dt);
            if *next < snaps.len() && t >= snaps[*next] - 1e-12 * t_end {
                series.snapshots.push((t, field(grid, u)));
                while *next < snaps.len() && t >= snaps[*next] - 1e-12 * t_end {
                    *next += 1;
                }
            }
        };
    let mut save = |step: usize,
                    t: f64,
                    dt_next: f64,
                    attempts: usize,
                    u: &[f64],
                    next: usize,
                    series: &TimeSeries|
     -> Result<()> {
        if let Some(c) = checkpointing.as_mut() {
            if c.every > 0 && step % c.every == 0 && t < t_end * (1.0 - 1e-12) {
                (c.save)(&Checkpoint {
                    t,
                    step,
                    dt_next,
                    attempts,
                    u: field(grid, u),
                    next_snapshot: next,
                    series: series.clone(),
                })?;
            }
        }
        Ok(())
    };
    let theta = settings.scheme.theta();
    let mut g_old = forcing(t)?;
    let factorised_before = series.factorisations;
    match settings.control {
        StepControl::Fixed { dt } => {
            let n = (settings.t_end / dt).ceil().max(1.0) as usize;
            let dt = settings.t_end / n as f64;
            let iterative = ThetaStepper::prefers_iterative(grid.dim(), grid.num_cells());
            let mut stepper = ThetaStepper::new(&sys.matrix, sys.symmetric, theta, dt, iterative)?;
            for k in first_step + 1..=n {
                let t_new = settings.t_end * k as f64 / n as f64;
                let g_new = forcing(t_new)?;
                stepper.step(&mut u, g_old.as_deref(), g_new.as_deref())?;
                g_old = g_new;
                t = t_new;
                record(&mut series, &mut next_snap, &snap_times, t, dt, &u);
                series.factorisations = factorised_before + stepper.factorisations;
                save(k, t, dt, 0, &u, next_snap, &series)?;
                if observe(&StepRecord { step: k, t, dt, t_end }).is_break() {
                    series.stopped = true;
                    if series.snapshots.last().map(|(s, _)| *s) != Some(t) {
                        series.snapshots.push((t, field(grid, &u)));
                    }
                    break;
                }
            }
            series.factorisations = factorised_before + stepper.factorisations;
        }
        StepControl::Adaptive { dt_initial, tolerance } => {
            let p = settings.scheme.order() as i32;
            let mut dt = dt_next;
            let iterative = ThetaStepper::prefers_iterative(grid.dim(), grid.num_cells());
            let mut full = ThetaStepper::new(&sys.matrix, sys.symmetric, theta, dt, iterative)?;
            let mut half =
                ThetaStepper::new(&sys.matrix, sys.symmetric, theta, dt / 2.0, iterative)?;
            let mut step = first_step;
            while t < settings.t_end * (1.0 - 1e-12) {
                attempts += 1;
                if attempts > 1_000_000 {
                    return Err(Error::Numerical(
                        "adaptive stepping took over a million steps".into(),
                    ));
                }
                // Do not step past the next snapshot time.
                let target = snap_times.get(next_snap).copied().unwrap_or(settings.t_end);
                let h = dt.min(target - t);
                full.set_dt(h)?;
                half.set_dt(h / 2.0)?;
                let g_mid = forcing(t + h / 2.0)?;
                let g_new = forcing(t + h)?;
                let mut u_full = u.clone();
                full.step(&mut u_full, g_old.as_deref(), g_new.as_deref())?;
                let mut u_half = u.clone();
                half.step(&mut u_half, g_old.as_deref(), g_mid.as_deref())?;
                half.step(&mut u_half, g_mid.as_deref(), g_new.as_deref())?;
                let err =
                    u_full.iter().zip(&u_half).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
                        / ((1 << p) - 1) as f64;
                let factor = 0.9 * (tolerance / err.max(1e-300)).powf(1.0 / (p as f64 + 1.0));
                if !err.is_finite() {
                    return Err(Error::Numerical(
                        "adaptive step produced non-finite values".into(),
                    ));
                }
                if err <= tolerance || h < 1e-14 * settings.t_end {
                    u = u_half;
                    t += h;
                    g_old = g_new;
                    step += 1;
                    series.error_estimates.push(err);
                    record(&mut series, &mut next_snap, &snap_times, t, h, &u);
                    if observe(&StepRecord { step: step + 1, t, dt: h, t_end }).is_break() {
                        series.stopped = true;
                        if series.snapshots.last().map(|(s, _)| *s) != Some(t) {
                            series.snapshots.push((t, field(grid, &u)));
                        }
                        break;
                    }
                    dt = h * factor.clamp(0.2, 2.0);
                    // Quantise to powers of 2 of dt_initial so refactorisations repeat rarely.
                    dt = dt_initial * 2f64.powf((dt / dt_initial).log2().floor());
                    series.factorisations =
                        factorised_before + full.factorisations + half.factorisations;
                    save(step, t, dt, attempts, &u, next_snap, &series)?;
                } else {
                    series.rejected += 1;
                    dt = h * factor.clamp(0.1, 0.9);
                }
            }
            series.factorisations = factorised_before + full.factorisations + half.factorisations;
        }
    }
    Ok(series)
}
