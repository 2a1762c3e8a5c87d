//! Targets known through samples: the parabolic flow with a fresh batch per step.
//!
//! Step k of the sample-based flow draws `B` samples of the target, deposits them by a
//! Gaussian kernel density estimate ([`crate::sample::kde`], Scott's bandwidth on the batch
//! unless one is given) and adds a Gaussian background of mass `m` (the moments of the
//! problem's target, `k = 3` times its covariance: the [`super::GaussianLift`]'s):
//!
//! `ν̂_k = (K_b ∗ ν_B^{(k)} + m L_ν) / (1 + m)`,
//!
//! so `log ν̂_k` is finite where no sample falls. The mirror-descent step of the flow then
//! uses `ν̂_k` in place of ν: `u_{k+1} = u_k + η_k (F_k(u_k) − c_k)` with
//! `F_k(u) = log det(I + D²u) + log ν̂_k(x + ∇u) − log f` (Deb & Liang's no-regret
//! generative modelling by the parabolic Monge–Ampère PDE). `E ν̂_k = K_b ∗ ν` up to the
//! background, so the iterates approach the map of the smoothed target: a bias O(b²) from
//! the bandwidth and O(m) from the background, and a noise floor ∝ η/B under a constant
//! step (the step's noise, of variance ∝ 1/(B b^d), times η), which decreasing schedules
//! and the average iterate remove.

use super::super::lift::GaussianLift;
use super::super::monge_ampere::{mean, pullback_errors, CellLinearisation, MongeAmpere};
use super::super::problem::Problem;
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::Grid;
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Where the target's samples come from.
#[derive(Clone, Debug)]
pub enum SampleStream {
    /// A fixed sample set (rows are points), resampled with replacement per batch.
    Points(Arc<Array2<f64>>),
    /// Exact draws from a density on the flow's grid ([`crate::sample::draw`]): fresh
    /// samples of a known target, for studies.
    Density(ScalarField),
}

/// The sample-based flow's settings ([`super::Parabolic::batches`]).
#[derive(Clone, Debug)]
pub struct Batches {
    pub stream: SampleStream,
    /// Samples per step `B`.
    pub size: usize,
    /// KDE bandwidth; `None`: Scott's rule on each batch (at least one cell).
    pub bandwidth: Option<f64>,
    /// The batches are a function of this seed (and the step) only.
    pub seed: u64,
    /// Return the average iterate `ū_K = (1/K) Σ_{k=1}^{K} u_k` instead of the last.
    pub average: bool,
    /// A fixed potential (of the flow's, possibly lifted, problem) whose per-batch loss the
    /// regret subtracts: `Σ_k KL(ρ_k‖ν̂_k) − KL(ρ*‖ν̂_k)`. Without one the regret diagnostic
    /// is the cumulative online loss `Σ_k KL(ρ_k‖ν̂_k)`, an upper bound on the regret
    /// against any fixed map.
    pub comparator: Option<ScalarField>,
}

impl Batches {
    /// `size` samples per step from `stream`, Scott bandwidth, seed 0, last iterate.
    pub fn new(stream: SampleStream, size: usize) -> Batches {
        Batches { stream, size, bandwidth: None, seed: 0, average: false, comparator: None }
    }

    /// Refuses an empty batch, a bad bandwidth, points of another dimension than `grid`'s
    /// or a density on another grid.
    pub(super) fn check(&self, grid: &Grid) -> Result<()> {
        if self.size < 2 {
            return Err(Error::invalid(format!(
                "a batch needs at least 2 samples (got {})",
                self.size
            )));
        }
        if let Some(b) = self.bandwidth {
            if !(b.is_finite() && b > 0.0) {
                return Err(Error::invalid(format!("KDE bandwidth must be positive, got {b}")));
            }
        }
        match &self.stream {
            SampleStream::Points(p) => {
                if p.nrows() == 0 {
                    return Err(Error::invalid("the target sample set is empty"));
                }
                if p.ncols() != grid.dim() {
                    return Err(Error::invalid(format!(
                        "target samples have {} coordinates but the grid is {}D",
                        p.ncols(),
                        grid.dim()
                    )));
                }
                crate::sample::cloud_in_cell(p.view(), grid).map(|_| ())
            }
            SampleStream::Density(rho) => {
                if rho.grid() != grid {
                    return Err(Error::invalid(
                        "the density to draw target batches from is on another grid",
                    ));
                }
                Ok(())
            }
        }
    }

    /// The seed of step `k`'s batch.
    fn step_seed(&self, k: usize) -> u64 {
        // splitmix64 of (seed, k): unrelated streams for neighbouring steps and seeds.
        let mut z = self.seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Step `k`'s samples (`[B][d]`).
    pub fn samples(&self, k: usize) -> Result<Array2<f64>> {
        let seed = self.step_seed(k);
        match &self.stream {
            SampleStream::Density(rho) => crate::sample::draw(rho, self.size, seed),
            SampleStream::Points(points) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let rows: Vec<usize> =
                    (0..self.size).map(|_| rng.random_range(0..points.nrows())).collect();
                Ok(points.select(Axis(0), &rows))
            }
        }
    }

    /// Step `k`'s target `ν̂_k = (KDE + m L)/(1 + m)` (unit mass), given the background `L`
    /// (unit mass) and its weight `m`.
    pub(super) fn target(
        &self,
        k: usize,
        grid: &Grid,
        background: &ScalarField,
        m: f64,
    ) -> Result<ScalarField> {
        let samples = self.samples(k)?;
        let (mut rho, _) = crate::sample::kde(samples.view(), grid, self.bandwidth)?;
        rho.data_mut().zip_mut_with(background.data(), |a, b| *a = (*a + m * b) / (1.0 + m));
        Ok(rho)
    }
}

/// `(ρ + m L_ρ)/(1 + m)`: `rho` (unit mass) with the Gaussian background of mass `m` that
/// every batch target carries (`L_ρ` of `rho`'s moments, `lift.width` times its standard
/// deviations, `m = lift.mass`) — positive everywhere: the reference target of a sample-based
/// run whose deposit of all samples vanishes far from them.
pub fn with_background(rho: &ScalarField, lift: GaussianLift) -> Result<ScalarField> {
    let background = lift.gaussian_like(rho)?;
    let mass = rho.integral();
    let mut out = rho.clone();
    out.data_mut().zip_mut_with(background.data(), |a, b| {
        *a = (*a / mass + lift.mass * b) / (1.0 + lift.mass)
    });
    Ok(out)
}

/// The sample-based flow's working state inside [`super::Parabolic`]'s solve.
pub(crate) struct Stochastic<'a> {
    pub(super) batches: &'a Batches,
    /// The operator with the current batch's target.
    pub(super) ma: MongeAmpere,
    background: ScalarField,
    weight: f64,
    comparator: Option<Vec<f64>>,
    sum: Vec<f64>,
    count: usize,
    /// `KL(ρ_k‖ν̂_k)` per step.
    pub(super) losses: Vec<f64>,
    /// `KL((∇φ̄_k)#μ‖ν)` of the average iterate after each step (ν the problem's target).
    pub(super) average_kl: Vec<f64>,
}

impl<'a> Stochastic<'a> {
    pub(super) fn new(
        batches: &'a Batches,
        flow: &super::Parabolic,
        problem: &Problem,
        ma: &MongeAmpere,
    ) -> Result<Stochastic<'a>> {
        let grid = problem.grid();
        batches.check(grid)?;
        if flow.resume.is_some() || flow.checkpoint_every.is_some() {
            return Err(Error::invalid(
                "the sample-based parabolic flow cannot be checkpointed or resumed",
            ));
        }
        let lift = flow.lift.unwrap_or_default();
        let background = lift.gaussian_like(problem.target())?;
        let comparator = match &batches.comparator {
            Some(c) => {
                problem.check_initial(c, "parabolic (the regret's comparator)")?;
                let v: Vec<f64> = c.data().iter().copied().collect();
                if ma.evaluate(&v).is_none() {
                    return Err(Error::invalid(
                        "the regret's comparator potential is not discretely convex",
                    ));
                }
                Some(v)
            }
            None => None,
        };
        Ok(Stochastic {
            batches,
            ma: ma.clone(),
            background,
            weight: lift.mass,
            comparator,
            sum: vec![0.0; grid.num_cells()],
            count: 0,
            losses: Vec::new(),
            average_kl: Vec::new(),
        })
    }

    /// Sets step `k`'s batch target and evaluates it at `u`: `(F_k(u), its linearisation,
    /// c_k = mean F_k(u), the regret's increment)`; records the loss `KL(ρ_k‖ν̂_k)`.
    #[allow(clippy::type_complexity)]
    pub(super) fn step(
        &mut self,
        k: usize,
        u: &[f64],
        f: &[f64],
        vol: f64,
    ) -> Result<(Vec<f64>, Vec<CellLinearisation>, f64, f64)> {
        let grid = self.ma_grid();
        let g = self.batches.target(k, &grid, &self.background, self.weight)?;
        self.ma.set_target(&g)?;
        // Convexity does not depend on the target: u passed the problem's operator.
        let (r, l) = self.ma.evaluate(u).expect("the iterate is discretely convex");
        let c = mean(&r);
        let (_, loss) = pullback_errors(&r, c, f, vol);
        let reference = match &self.comparator {
            Some(star) => {
                let (r, _) = self.ma.evaluate(star).expect("checked convex");
                pullback_errors(&r, mean(&r), f, vol).1
            }
            None => 0.0,
        };
        self.losses.push(loss);
        Ok((r, l, c, loss - reference))
    }

    fn ma_grid(&self) -> Grid {
        self.background.grid().clone()
    }

    /// Adds the new iterate `u` to the average and records the average's KL to the
    /// problem's (`ma`'s) target.
    pub(super) fn accumulate(&mut self, u: &[f64], ma: &MongeAmpere, f: &[f64], vol: f64) {
        self.sum.iter_mut().zip(u).for_each(|(s, v)| *s += v);
        self.count += 1;
        let average = self.average().expect("one iterate added");
        // A mean of discretely convex potentials is discretely convex (I + D²_h u is linear in u).
        let kl = ma.evaluate(&average).map_or(f64::NAN, |(r, _)| {
            let c = mean(&r);
            pullback_errors(&r, c, f, vol).1
        });
        self.average_kl.push(kl);
    }

    /// The average of the iterates after each step so far.
    pub(super) fn average(&self) -> Option<Vec<f64>> {
        let n = self.count as f64;
        (self.count > 0).then(|| self.sum.iter().map(|s| s / n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;
    use crate::ot::{Options, Parabolic, Solver};

    use crate::study::batches::mixture_on_floor as mixture;

    /// A batch target has unit mass and is positive; batches depend on (seed, step) only:
    /// the same for the same pair, different for another step or seed; resampled points
    /// come from the given set.
    #[test]
    fn batch_targets_are_unit_mass_positive_and_reproducible() {
        let grid = Grid::unit(2, 32, BoundaryKind::Neumann).unwrap();
        let nu = mixture(&grid);
        let background = GaussianLift::default().gaussian_like(&nu).unwrap();
        let b = Batches::new(SampleStream::Density(nu.clone()), 500);
        let t0 = b.target(0, &grid, &background, 1e-4).unwrap();
        assert!((t0.integral() - 1.0).abs() < 1e-12 && t0.min() > 0.0);
        assert_eq!(b.samples(3).unwrap(), b.samples(3).unwrap());
        assert_ne!(b.samples(3).unwrap(), b.samples(4).unwrap());
        let other = Batches { seed: 7, ..b.clone() };
        assert_ne!(b.samples(3).unwrap(), other.samples(3).unwrap());
        let set = Arc::new(crate::sample::draw(&nu, 50, 1).unwrap());
        let resampled = Batches::new(SampleStream::Points(set.clone()), 200).samples(0).unwrap();
        assert_eq!(resampled.nrows(), 200);
        for row in resampled.rows() {
            assert!(set.rows().into_iter().any(|r| r == row));
        }
    }

    /// Bad settings are one-line errors: a batch of one sample, points of another dimension,
    /// a density on another grid, a bad bandwidth, checkpoints.
    #[test]
    fn bad_batches_are_refused() {
        let grid = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
        let nu = mixture(&grid);
        let problem = Problem::new(&ScalarField::from_fn(&grid, |_| 1.0), &nu).unwrap();
        let run = |b: Batches| {
            let flow =
                Parabolic { batches: Some(b), max_iterations: Some(2), ..Default::default() };
            flow.solve(&problem, &Options::default()).map(|_| ()).unwrap_err().to_string()
        };
        let stream = SampleStream::Density(nu.clone());
        assert!(run(Batches::new(stream.clone(), 1)).contains("at least 2"));
        let points = Arc::new(Array2::from_elem((10, 3), 0.5));
        assert!(run(Batches::new(SampleStream::Points(points), 10)).contains("coordinates"));
        let coarse = Grid::unit(2, 8, BoundaryKind::Neumann).unwrap();
        let elsewhere = SampleStream::Density(mixture(&coarse));
        assert!(run(Batches::new(elsewhere, 10)).contains("another grid"));
        let bad = Batches { bandwidth: Some(-1.0), ..Batches::new(stream.clone(), 10) };
        assert!(run(bad).contains("bandwidth"));
        let flow = Parabolic {
            batches: Some(Batches::new(stream, 10)),
            checkpoint_every: Some(1),
            ..Default::default()
        };
        let e = flow.solve(&problem, &Options::default()).unwrap_err().to_string();
        assert!(e.contains("checkpointed"), "{e}");
    }

    /// The run takes its whole budget (outcome `completed`, even from the exact solution);
    /// its diagnostics have one value per step; the same seed gives the same potential.
    #[test]
    fn a_sample_based_run_takes_its_budget_and_is_reproducible() {
        let grid = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
        let problem = Problem::new(&ScalarField::from_fn(&grid, |_| 1.0), &mixture(&grid)).unwrap();
        let exact = crate::ot::Newton::default().solve(&problem, &Options::default()).unwrap();
        let flow = Parabolic {
            batches: Some(Batches::new(SampleStream::Density(problem.target().clone()), 400)),
            schedule: crate::ot::Schedule::InverseSqrt(0.01),
            max_iterations: Some(12),
            initial: Some(exact.p),
            ..Default::default()
        };
        let a = flow.solve(&problem, &Options::default()).unwrap();
        assert_eq!(a.outcome, crate::ot::Outcome::Completed);
        assert_eq!(a.iterations, 12);
        assert!(a.solved());
        for (name, len) in [
            ("kl_divergence", 13),
            ("batch_kl", 12),
            ("cumulative_regret", 12),
            ("average_kl_divergence", 12),
        ] {
            let d = &a.diagnostics.iter().find(|(n, _)| n == name).unwrap().1;
            assert_eq!(d.len(), len, "{name}");
        }
        let b = flow.solve(&problem, &Options::default()).unwrap();
        assert_eq!(a.p.data(), b.p.data());
    }
}
