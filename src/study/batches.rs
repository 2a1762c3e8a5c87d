//! The sample-based parabolic Monge–Ampère flow against a known target: schedules, the
//! bandwidth's bias and the noise floor ([`BatchStudy::run`]; `otgrid study batches`).
//!
//! The target ν is a density on the grid, so batches are exact draws from it
//! ([`SampleStream::Density`]) and every error is measured against the map `T*` of ν itself
//! (Newton on the same grid, the same discrete equation as the flow's steady state):
//!
//! 1. **Schedules**: `constant:η₀`, `sqrt:η₀` (`η₀/√(k+1)`) and `harmonic:η₀` (`η₀/(k+1)`),
//!    linearly implicit steps, `B` samples per step, a fixed bandwidth. Per step:
//!    the μ-weighted L² map error of the last iterate and of the average iterate
//!    `ū_k = (1/k) Σ_{j≤k} u_j`, `KL(ρ_k‖ν)` of both, and the regret
//!    `Σ_k KL(ρ_k‖ν̂_k) − KL(T*#μ‖ν̂_k)` against `T*`.
//! 2. **Bias of the bandwidth**: the flow's fixed point is the map of `K_b ∗ ν`; its
//!    distance to `T*` (deterministic: Newton on the smoothed target) is `O(b²)` — the
//!    fitted order is reported — beside the last iterate of a `sqrt:η₀` run with many
//!    samples per step.
//! 3. **Noise floor**: started at the map of `K_b ∗ ν` (fixed `b`), explicit steps of
//!    constant `η` with `B` samples fluctuate around it; the mean `KL(ρ_k‖K_b ∗ ν)` over the
//!    second half of the run is the floor. Per mode of the linearised operator (eigenvalue
//!    λ) the stationary variance is `η²σ²/((1+ηλ)² − 1)`: `∝ η/B` while `ηλ ≪ 1`, and
//!    independent of η (every step solves its batch's problem) once `ηλ ≫ 1` — hence the
//!    explicit steps `η = θ h²` below the stability bound.

use super::{map_distance, slope};
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::ot::parabolic::{Batches, SampleStream};
use crate::ot::{Newton, Observer, Options, Parabolic, Problem, Schedule, Solver, Stepping};
use crate::sample::smooth;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};

/// The study's default target as an expression of x, y (a density spec): a two-component
/// Gaussian mixture on a uniform floor, min/max 0.14 on the unit square.
pub const MIXTURE_ON_FLOOR: &str = "0.5 + 0.04*exp(-((x-0.35)^2+(y-0.4)^2)/0.0288)/0.0144 \
                                    + 0.03*exp(-((x-0.65)^2+(y-0.62)^2)/0.02)/0.01";

/// [`MIXTURE_ON_FLOOR`] on a 2D grid.
pub fn mixture_on_floor(grid: &crate::grid::Grid) -> ScalarField {
    let g = |x: &[f64], m: [f64; 2], s: f64| {
        (-((x[0] - m[0]).powi(2) + (x[1] - m[1]).powi(2)) / (2.0 * s * s)).exp() / (s * s)
    };
    ScalarField::from_fn(grid, |x| {
        0.5 + 0.04 * g(x, [0.35, 0.4], 0.12) + 0.03 * g(x, [0.65, 0.62], 0.1)
    })
}

/// The study's settings; [`BatchStudy::new`] gives the defaults.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BatchStudy {
    /// Steps of each schedule run.
    pub steps: usize,
    /// Samples per step in the schedule runs.
    pub batch: usize,
    /// `η₀` of the schedules.
    pub eta: f64,
    /// Bandwidths of the bias part, in cells.
    pub bandwidths: Vec<f64>,
    /// Samples per step of the bias part's flow runs.
    pub bias_batch: usize,
    /// Explicit step sizes of the noise part, in units of `h²` (h the largest spacing).
    pub noise_etas: Vec<f64>,
    /// Batch sizes of the noise part.
    pub noise_batches: Vec<usize>,
    /// Steps of each noise run.
    pub noise_steps: usize,
    /// The fixed bandwidth of the schedule and noise parts, in cells (the bias part varies
    /// it).
    pub bandwidth: f64,
    /// Seed of every run's batches.
    pub seed: u64,
}

/// One step of one schedule run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScheduleRow {
    pub schedule: String,
    pub step: usize,
    pub eta: f64,
    pub map_error_last: f64,
    pub map_error_average: f64,
    pub kl_last: f64,
    pub kl_average: f64,
    pub batch_kl: f64,
    pub regret: f64,
}

/// One bandwidth of the bias part.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BiasRow {
    pub bandwidth: f64,
    /// `‖T_b − T*‖` for the map `T_b` of `K_b ∗ ν` (Newton).
    pub smoothing_map_error: f64,
    /// The last iterate's `‖u_K − T*‖` after a `sqrt:η₀` run with `bias_batch` samples per
    /// step.
    pub flow_map_error: f64,
}

/// One (η, B) pair of the noise part.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NoiseRow {
    pub eta: f64,
    pub batch: usize,
    /// Mean `KL(ρ_k‖K_b ∗ ν)` over the second half of the run.
    pub kl_floor: f64,
    /// RMS over the second half of the last iterate's map distance to `T_b`.
    pub map_floor: f64,
}

/// Everything [`BatchStudy::run`] measured, with the fitted exponents.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BatchStudyResult {
    pub schedules: Vec<ScheduleRow>,
    pub bias: Vec<BiasRow>,
    pub noise: Vec<NoiseRow>,
    /// Least-squares slope of `log smoothing_map_error` against `log b`.
    pub bias_order: f64,
    /// Slope of `log kl_floor` against `log η` at the middle batch size.
    pub noise_exponent_eta: f64,
    /// Slope of `log kl_floor` against `log B` at the middle step size.
    pub noise_exponent_batch: f64,
}

impl Default for BatchStudy {
    fn default() -> Self {
        BatchStudy::new()
    }
}

impl BatchStudy {
    /// 200 steps of 1000 samples, `η₀ = 0.01` (below the cap that discrete convexity puts on
    /// steps with noisy targets: at 64² with 1000 samples and a bandwidth of 2 cells, steps
    /// from `η₀ = 1` are halved to 0.004–0.03 whatever the schedule), bandwidth 2 cells; bias at bandwidths 1, 2, 4, 8
    /// cells with 16000 samples per step; noise floors at `η = 0.01, 0.03, 0.1 h²` ×
    /// `B = 1000, 4000, 16000`, 400 steps.
    pub fn new() -> BatchStudy {
        BatchStudy {
            steps: 200,
            batch: 1000,
            eta: 0.01,
            bandwidths: vec![1.0, 2.0, 4.0, 8.0],
            bias_batch: 16000,
            noise_etas: vec![0.01, 0.03, 0.1],
            noise_batches: vec![1000, 4000, 16000],
            noise_steps: 400,
            bandwidth: 2.0,
            seed: 0,
        }
    }

    /// Runs the three parts on `problem` (ν its target, known); `progress` receives one line
    /// per run.
    pub fn run(&self, problem: &Problem, progress: &dyn Fn(&str)) -> Result<BatchStudyResult> {
        self.check()?;
        let grid = problem.grid();
        let h = grid.max_spacing();
        let options = Options::default();
        let truth = solve_exactly(problem, &options)?;
        let t_star = problem.map_of(&truth);
        let error = |p: &ScalarField| map_distance(problem, &problem.map_of(p), &t_star);
        let stream = SampleStream::Density(problem.target().clone());

        let mut schedules = Vec::new();
        for (name, schedule) in [
            ("constant", Schedule::Constant(self.eta)),
            ("sqrt", Schedule::InverseSqrt(self.eta)),
            ("harmonic", Schedule::Harmonic(self.eta)),
        ] {
            let spec = format!("{name}:{}", self.eta);
            progress(&format!("schedule {spec}: {} steps of {} samples", self.steps, self.batch));
            let mut batches = Batches::new(stream.clone(), self.batch);
            batches.bandwidth = Some(self.bandwidth * h);
            batches.seed = self.seed;
            batches.comparator = Some(truth.clone());
            let flow = Parabolic {
                schedule,
                max_iterations: Some(self.steps),
                batches: Some(batches),
                ..Default::default()
            };
            let (solution, errors) = solve_tracking(&flow, problem, &options, &error)?;
            let diagnostic = |name: &str| -> Vec<f64> {
                solution
                    .diagnostics
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let (kl, kl_average) =
                (diagnostic("kl_divergence"), diagnostic("average_kl_divergence"));
            let (batch_kl, regret) = (diagnostic("batch_kl"), diagnostic("cumulative_regret"));
            // Row k: the iterate after k steps (k ≥ 1), the step that led there.
            for k in 1..errors.len() {
                schedules.push(ScheduleRow {
                    schedule: spec.clone(),
                    step: k,
                    eta: solution.history[k - 1].step.value(),
                    map_error_last: errors[k].0,
                    map_error_average: errors[k].1,
                    kl_last: kl.get(k).copied().unwrap_or(f64::NAN),
                    kl_average: kl_average.get(k - 1).copied().unwrap_or(f64::NAN),
                    batch_kl: batch_kl.get(k - 1).copied().unwrap_or(f64::NAN),
                    regret: regret.get(k - 1).copied().unwrap_or(f64::NAN),
                });
            }
        }

        let mut bias = Vec::new();
        for &cells in &self.bandwidths {
            let b = cells * h;
            progress(&format!(
                "bias: bandwidth {cells} cells, {} samples per step",
                self.bias_batch
            ));
            let smoothed = Problem::new(problem.source(), &smooth(problem.target(), b)?)?;
            let t_b = solve_exactly(&smoothed, &options)?;
            let mut batches = Batches::new(stream.clone(), self.bias_batch);
            batches.bandwidth = Some(b);
            batches.seed = self.seed;
            let flow = Parabolic {
                schedule: Schedule::InverseSqrt(self.eta),
                max_iterations: Some(self.steps),
                batches: Some(batches),
                ..Default::default()
            };
            let s = flow.solve(problem, &options)?;
            bias.push(BiasRow {
                bandwidth: b,
                smoothing_map_error: error(&t_b),
                flow_map_error: error(&s.p),
            });
        }
        let bias_order =
            slope(&bias.iter().map(|r| (r.bandwidth, r.smoothing_map_error)).collect::<Vec<_>>());

        let mut noise = Vec::new();
        let b = self.bandwidth * h;
        let smoothed = Problem::new(problem.source(), &smooth(problem.target(), b)?)?;
        let t_b = solve_exactly(&smoothed, &options)?;
        let t_b_map = smoothed.map_of(&t_b);
        for &theta in &self.noise_etas {
            for &size in &self.noise_batches {
                let eta = theta * h * h;
                progress(&format!("noise: η = {theta} h², {size} samples per step"));
                let mut batches = Batches::new(stream.clone(), size);
                batches.bandwidth = Some(b);
                batches.seed = self.seed;
                let flow = Parabolic {
                    schedule: Schedule::Constant(eta),
                    stepping: Stepping::Explicit,
                    max_iterations: Some(self.noise_steps),
                    initial: Some(t_b.clone()),
                    batches: Some(batches),
                    ..Default::default()
                };
                let distance =
                    |p: &ScalarField| map_distance(&smoothed, &smoothed.map_of(p), &t_b_map);
                let (s, errors) = solve_tracking(&flow, &smoothed, &options, &distance)?;
                if s.iterations < self.noise_steps {
                    return Err(Error::invalid(format!(
                        "noise run η = {theta} h², B = {size} ended early: {}",
                        s.stop_reason
                    )));
                }
                let kl = s
                    .diagnostics
                    .iter()
                    .find(|(n, _)| n == "kl_divergence")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let half = &kl[kl.len() / 2..];
                let tail = &errors[errors.len() / 2..];
                noise.push(NoiseRow {
                    eta,
                    batch: size,
                    kl_floor: half.iter().sum::<f64>() / half.len() as f64,
                    map_floor: (tail.iter().map(|e| e.0 * e.0).sum::<f64>() / tail.len() as f64)
                        .sqrt(),
                });
            }
        }
        let middle_batch = self.noise_batches[self.noise_batches.len() / 2];
        let middle_eta = self.noise_etas[self.noise_etas.len() / 2] * h * h;
        let noise_exponent_eta = slope(
            &noise
                .iter()
                .filter(|r| r.batch == middle_batch)
                .map(|r| (r.eta, r.kl_floor))
                .collect::<Vec<_>>(),
        );
        let noise_exponent_batch = slope(
            &noise
                .iter()
                .filter(|r| (r.eta / middle_eta - 1.0).abs() < 1e-12)
                .map(|r| (r.batch as f64, r.kl_floor))
                .collect::<Vec<_>>(),
        );
        Ok(BatchStudyResult {
            schedules,
            bias,
            noise,
            bias_order,
            noise_exponent_eta,
            noise_exponent_batch,
        })
    }

    fn check(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if self.steps == 0 || self.noise_steps < 2 || self.batch < 2 || self.bias_batch < 2 {
            return Err(Error::invalid("the batch study needs steps ≥ 1 and batches ≥ 2"));
        }
        if !positive(self.eta)
            || !positive(self.bandwidth)
            || self.bandwidths.iter().any(|&b| !positive(b))
            || self.noise_etas.iter().any(|&e| !positive(e))
        {
            return Err(Error::invalid(
                "the batch study's step sizes and bandwidths must be positive",
            ));
        }
        if self.bandwidths.len() < 2 || self.noise_etas.is_empty() || self.noise_batches.is_empty()
        {
            return Err(Error::invalid(
                "the batch study needs two bandwidths or more, and step sizes and batch sizes",
            ));
        }
        if self.noise_batches.iter().any(|&b| b < 2) {
            return Err(Error::invalid("every batch needs at least 2 samples"));
        }
        Ok(())
    }
}

/// The Monge–Ampère solution of `problem` (Newton to its default tolerance or floor).
fn solve_exactly(problem: &Problem, options: &Options) -> Result<ScalarField> {
    let s = Newton::default().solve(problem, options)?;
    if !s.solved() {
        return Err(Error::invalid(format!(
            "the reference map of the study's target did not converge: {}",
            s.stop_reason
        )));
    }
    Ok(s.p)
}

/// Solves with an observer that measures, per iterate `u_k`, `(error(u_k), error(ū_k))`
/// (`ū_k` the mean of `u_1 … u_k`; `ū_0 = u_0`).
fn solve_tracking(
    flow: &Parabolic,
    problem: &Problem,
    options: &Options,
    error: &(dyn Fn(&ScalarField) -> f64 + Sync),
) -> Result<(crate::ot::Solution, Vec<(f64, f64)>)> {
    let potentials: Arc<Mutex<Vec<ScalarField>>> = Arc::default();
    let recorded = Arc::clone(&potentials);
    let grid = problem.grid().clone();
    let options = Options {
        observer: Some(Observer::new(move |p| {
            if p.grid == &grid {
                recorded.lock().unwrap_or_else(PoisonError::into_inner).push(p.potential());
            }
            ControlFlow::Continue(())
        })),
        ..options.clone()
    };
    let solution = flow.solve(problem, &options)?;
    let potentials =
        std::mem::take(&mut *potentials.lock().unwrap_or_else(PoisonError::into_inner));
    let mut errors = Vec::with_capacity(potentials.len());
    let mut sum: Option<ScalarField> = None;
    for (k, u) in potentials.iter().enumerate() {
        let average = if k == 0 {
            u.clone()
        } else {
            let s = sum.get_or_insert_with(|| ScalarField::zeros(u.grid()));
            s.data_mut().zip_mut_with(u.data(), |a, b| *a += b);
            let mut mean = s.clone();
            mean.data_mut().mapv_inplace(|v| v / k as f64);
            mean
        };
        errors.push((error(u), error(&average)));
    }
    Ok((solution, errors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{BoundaryKind, Grid};

    /// A small study at 32² shows each law it reports: the bias of the bandwidth of order ≥ 1.5
    /// in b (2 expected), the KL noise floor growing with η (exponent ≥ 0.7, 1 expected) and
    /// falling with B (exponent ≤ −0.7, −1 expected), and the 1/√k step's last iterate
    /// closer to the map than the constant step's (which stays at its noise floor).
    #[test]
    fn the_batch_study_measures_its_laws() {
        let grid = Grid::unit(2, 32, BoundaryKind::Neumann).unwrap();
        let nu = mixture_on_floor(&grid);
        let spec = crate::ot::DensitySpec::parse(MIXTURE_ON_FLOOR, "target").unwrap();
        let inputs = crate::io::Inputs { base: ".".into(), resample: false };
        let parsed = spec.sample(&grid, "target", &inputs).unwrap();
        let worst = parsed.data().iter().zip(nu.data()).map(|(a, b)| (a - b).abs());
        assert!(worst.fold(0.0, f64::max) < 1e-12, "the expression and the function differ");
        let problem = Problem::new(&ScalarField::from_fn(&grid, |_| 1.0), &nu).unwrap();
        let study = BatchStudy {
            steps: 150,
            bandwidths: vec![1.0, 2.0, 4.0],
            bias_batch: 4000,
            noise_etas: vec![0.01, 0.1],
            noise_batches: vec![1000, 8000],
            noise_steps: 200,
            ..BatchStudy::new()
        };
        let r = study.run(&problem, &|_| {}).unwrap();
        let constant = r.schedules.iter().rfind(|s| s.schedule.starts_with("constant")).unwrap();
        eprintln!(
            "bias order {:.2}, noise exponents {:.2} (η) {:.2} (B); constant step: last {:.3e}, \
             average {:.3e}",
            r.bias_order,
            r.noise_exponent_eta,
            r.noise_exponent_batch,
            constant.map_error_last,
            constant.map_error_average
        );
        assert_eq!(r.schedules.len(), 3 * 150);
        assert!(r.bias_order >= 1.5, "{}", r.bias_order);
        assert!(r.noise_exponent_eta >= 0.7, "{}", r.noise_exponent_eta);
        assert!(r.noise_exponent_batch <= -0.7, "{}", r.noise_exponent_batch);
        let sqrt = r.schedules.iter().rfind(|s| s.schedule.starts_with("sqrt")).unwrap();
        eprintln!("1/√k step: last {:.3e}", sqrt.map_error_last);
        assert!(sqrt.map_error_last < constant.map_error_last);
        let bad = BatchStudy { bandwidths: vec![1.0], ..BatchStudy::new() };
        assert!(bad.run(&problem, &|_| {}).is_err());
    }
}
