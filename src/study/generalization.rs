//! Generalization of one-step generators for PDE-induced measures (Lin, Wang, Xin & Zhang):
//! plug-in maps learnt from n samples of a target made by otgrid's PDE solvers
//! ([`GeneralizationStudy::run`]; `otgrid study generalization`).
//!
//! Targets ν on the unit square (cell-centred grid of the study), each the normalised solution
//! of a PDE solved here ([`PdeTarget::density`]):
//! - `elliptic`: `−∇·(a∇u) = 1`, `u = 0` on the boundary, `a = 1 + x/2` (sparse direct solve);
//! - `parabolic`: `∂ₜu = Δu`, `u = 0` on the boundary, `u(0) = exp(−|x − (0.35, 0.4)|²/0.02)`,
//!   at `t = 0.01` (Crank–Nicolson, Δt = 5·10⁻⁴);
//! - `double-well`: Fokker–Planck `∂ₜρ = ∇·(D∇ρ + ρ∇V)`, no flux, `D = 0.3`,
//!   `V = ((4x−2)² − 1)² + 0.3(4x−2) + (3y−1.5)²` (examples/problems/double_well.toml on the
//!   unit square), from the uniform density to `t = 10` (implicit Euler, Δt = 0.02): within
//!   1e-3 in L1 of its stationary density `e^{−V/D}/Z` at 32² (asserted).
//!
//! The source μ is uniform (a generator pushing uniform samples). For each target the map T of
//! the exact density (bfm, default settings) is the reference; for each n and repetition the
//! plug-in map `T̂ₙ` is bfm's map to the KDE of n exact draws from ν (Scott's bandwidth), and
//! the study records `‖T̂ₙ − T‖_{L²(μ)}`, and between `m` generated samples (`T̂ₙ` applied to
//! fresh uniform draws) and `m` held-out draws of ν the assignment W₂ and the energy distance
//! (the same for T itself: the level finite samples allow). Rates are least-squares slopes of
//! the medians over repetitions against n. Also: the Hölder exponent of T
//! ([`crate::sample::holder_exponent`]) and the doubling constant of ν, and the robustness
//! experiment on the elliptic target: `a_δ = (1 + x/2)(1 + δ xy)`, and the fitted exponent of
//! `‖T_δ − T₀‖_{L²(μ)}` against `W₂(ν_δ, ν₀)` (W₂ by bfm between the two densities, as
//! `(2 × dual value)^{1/2}`).

use super::{map_distance, slope};
use crate::error::{Error, Result};
use crate::field::ScalarField;
use crate::grid::{BoundaryKind, Grid};
use crate::ot::method::Settings;
use crate::ot::{Method, Options, Problem, Solution};
use crate::pde::elliptic::{EllipticProblem, LinearMethod};
use crate::pde::fokker_planck::FokkerPlanckProblem;
use crate::pde::parabolic::{integrate, ParabolicProblem, Source, StepControl, TimeSettings};
use crate::pde::stepper::TimeScheme;
use crate::sample::{
    doubling_constant, draw, holder_exponent, kde, mmd_squared, w2_assignment, GridMap,
    Interpolation, MmdKernel,
};
use crate::sparse::{BoundaryConditions, Coefficient, OperatorSpec};

/// The PDE-induced targets of the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PdeTarget {
    Elliptic,
    Parabolic,
    DoubleWell,
}

impl PdeTarget {
    pub const ALL: [PdeTarget; 3] =
        [PdeTarget::Elliptic, PdeTarget::Parabolic, PdeTarget::DoubleWell];

    pub fn name(self) -> &'static str {
        match self {
            PdeTarget::Elliptic => "elliptic",
            PdeTarget::Parabolic => "parabolic",
            PdeTarget::DoubleWell => "double-well",
        }
    }

    /// Parses `elliptic`, `parabolic` or `double-well`.
    pub fn from_name(name: &str) -> Result<PdeTarget> {
        PdeTarget::ALL.into_iter().find(|t| t.name() == name).ok_or_else(|| {
            Error::invalid(format!(
                "unknown PDE target '{name}' (expected elliptic, parabolic or double-well)"
            ))
        })
    }

    /// The target's density (unit mass) on the 2D unit-square `grid`; `delta` perturbs the
    /// elliptic coefficient (`a_δ = (1 + x/2)(1 + δ xy)`) and must be 0 for the others.
    pub fn density(self, grid: &Grid, delta: f64) -> Result<ScalarField> {
        if grid.dim() != 2 {
            return Err(Error::invalid("the generalization study runs on 2D grids"));
        }
        if delta != 0.0 && self != PdeTarget::Elliptic {
            return Err(Error::invalid("only the elliptic target has a perturbed coefficient"));
        }
        let dirichlet = grid.with_boundary(BoundaryKind::Dirichlet);
        let neumann = grid.with_boundary(BoundaryKind::Neumann);
        let u = match self {
            PdeTarget::Elliptic => {
                let a = ScalarField::from_fn(&dirichlet, |x| {
                    (1.0 + 0.5 * x[0]) * (1.0 + delta * x[0] * x[1])
                });
                let problem = EllipticProblem {
                    grid: dirichlet.clone(),
                    operator: OperatorSpec::default().with_diffusion(Coefficient::Field(a)),
                    bcs: BoundaryConditions::homogeneous(&dirichlet),
                    source: ScalarField::from_fn(&dirichlet, |_| 1.0),
                };
                problem.solve(LinearMethod::Direct)?.0
            }
            PdeTarget::Parabolic => {
                let problem = ParabolicProblem {
                    grid: dirichlet.clone(),
                    operator: OperatorSpec::laplacian(),
                    bcs: BoundaryConditions::homogeneous(&dirichlet),
                    source: Source::None,
                    initial: ScalarField::from_fn(&dirichlet, |x| {
                        (-((x[0] - 0.35).powi(2) + (x[1] - 0.4).powi(2)) / 0.02).exp()
                    }),
                };
                let settings = TimeSettings {
                    t_end: 0.01,
                    scheme: TimeScheme::CrankNicolson,
                    control: StepControl::Fixed { dt: 5e-4 },
                    snapshots: 1,
                };
                integrate(&problem, &settings, crate::pde::unobserved)?.last().clone()
            }
            PdeTarget::DoubleWell => {
                let run = double_well(&neumann).run(10.0, 0.02, 1, crate::pde::unobserved)?;
                run.snapshots.last().expect("the final state").1.clone()
            }
        };
        // On the study's (box) grid; Crank–Nicolson's round-off below zero clipped.
        let values: Vec<f64> = u.data().iter().map(|v| v.max(0.0)).collect();
        Ok(ScalarField::from_vec(&neumann, values)?.to_density()?.0)
    }
}

/// The double-well Fokker–Planck problem of the `double-well` target on the unit-square box
/// `grid`: `D = 0.3`, `V = ((4x−2)² − 1)² + 0.3(4x−2) + (3y−1.5)²`, from the uniform density.
fn double_well(grid: &Grid) -> FokkerPlanckProblem {
    FokkerPlanckProblem {
        grid: grid.clone(),
        diffusion: 0.3,
        potential: ScalarField::from_fn(grid, |x| {
            let (p, q) = (4.0 * x[0] - 2.0, 3.0 * x[1] - 1.5);
            (p * p - 1.0).powi(2) + 0.3 * p + q * q
        }),
        drift: None,
        initial: ScalarField::from_fn(grid, |_| 1.0),
    }
}

/// The study's settings; [`GeneralizationStudy::new`] gives the defaults.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GeneralizationStudy {
    pub targets: Vec<PdeTarget>,
    /// Sample sizes n of the plug-in maps.
    pub sizes: Vec<usize>,
    /// Repetitions per n (independent samples); the tables report medians.
    pub repetitions: usize,
    /// Generated and held-out samples compared by W₂ and the energy distance (≤ 5000: the
    /// assignment is O(m³)).
    pub compared: usize,
    /// Coefficient perturbations δ of the robustness experiment.
    pub deltas: Vec<f64>,
    pub seed: u64,
}

impl Default for GeneralizationStudy {
    fn default() -> Self {
        GeneralizationStudy::new()
    }
}

/// One plug-in map.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SizeRow {
    pub target: &'static str,
    pub n: usize,
    pub repetition: usize,
    pub bandwidth: f64,
    pub map_error: f64,
    pub w2: f64,
    pub energy_distance: f64,
}

/// Per target: the exact map's regularity and sample-level references, and the fitted rates.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetSummary {
    pub target: &'static str,
    pub holder_exponent: f64,
    pub doubling_constant: f64,
    /// W₂ and energy distance of T's own generated samples to the held-out ones.
    pub exact_w2: f64,
    pub exact_energy_distance: f64,
    /// Slopes of the medians against n (negative: falling).
    pub rate_map_error: f64,
    pub rate_w2: f64,
    pub rate_energy_distance: f64,
}

/// One perturbation of the robustness experiment.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RobustnessRow {
    pub delta: f64,
    pub map_change: f64,
    pub w2_targets: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GeneralizationResult {
    pub rows: Vec<SizeRow>,
    pub targets: Vec<TargetSummary>,
    pub robustness: Vec<RobustnessRow>,
    /// Slope of `log ‖T_δ − T₀‖` against `log W₂(ν_δ, ν₀)`.
    pub robustness_exponent: f64,
}

impl GeneralizationStudy {
    /// All three targets, n = 10², 10³, 10⁴, 10⁵, 3 repetitions, 1000 compared samples,
    /// δ = 0.05, 0.1, 0.2, 0.4.
    pub fn new() -> GeneralizationStudy {
        GeneralizationStudy {
            targets: PdeTarget::ALL.to_vec(),
            sizes: vec![100, 1_000, 10_000, 100_000],
            repetitions: 3,
            compared: 1000,
            deltas: vec![0.05, 0.1, 0.2, 0.4],
            seed: 0,
        }
    }

    fn check(&self, grid: &Grid) -> Result<()> {
        if grid.dim() != 2 || grid.axes().iter().any(|a| a.boundary.is_periodic()) {
            return Err(Error::invalid("the generalization study runs on a 2D box grid"));
        }
        if self.targets.is_empty() || self.sizes.len() < 2 || self.repetitions == 0 {
            return Err(Error::invalid(
                "the generalization study needs a target, two sample sizes or more and a repetition",
            ));
        }
        if self.sizes.iter().any(|&n| n < 2) || !(2..=5000).contains(&self.compared) {
            return Err(Error::invalid(
                "sample sizes must be ≥ 2 and the compared samples between 2 and 5000",
            ));
        }
        if self.deltas.iter().any(|d| !(d.is_finite() && *d > 0.0)) {
            return Err(Error::invalid("the perturbations δ must be positive"));
        }
        Ok(())
    }

    /// Runs the study on the unit-square box `grid`; `progress` receives one line per step.
    pub fn run(&self, grid: &Grid, progress: &dyn Fn(&str)) -> Result<GeneralizationResult> {
        self.check(grid)?;
        let grid = grid.with_boundary(BoundaryKind::Neumann);
        let uniform = ScalarField::from_fn(&grid, |_| 1.0);
        let solve = |nu: &ScalarField| -> Result<(Problem, Solution)> {
            let problem = Problem::new(&uniform, nu)?;
            let solution = Method::BFM
                .configure(&Settings::default())?
                .solve(&problem, &Options::default())?;
            if !solution.solved() {
                return Err(Error::invalid(format!(
                    "bfm did not solve a study map: {}",
                    solution.stop_reason
                )));
            }
            Ok((problem, solution))
        };
        let (mut rows, mut targets) = (Vec::new(), Vec::new());
        for (t, &target) in self.targets.iter().enumerate() {
            progress(&format!("{}: solving the PDE and the exact density's map", target.name()));
            let nu = target.density(&grid, 0.0)?;
            let (problem, exact) = solve(&nu)?;
            let t_map = exact.map(&problem);
            let generator = GridMap::from_map(&t_map, Interpolation::Cubic)?;
            let seed = |k: u64| self.seed ^ ((t as u64 + 1) << 40) ^ k;
            let held_out = draw(&nu, self.compared, seed(1))?;
            let generate = |map: &GridMap, k: u64| -> Result<(f64, f64)> {
                let y = map.apply(draw(&uniform, self.compared, seed(k))?.view())?;
                Ok((
                    w2_assignment(y.view(), held_out.view())?,
                    mmd_squared(y.view(), held_out.view(), MmdKernel::Energy)?,
                ))
            };
            let (exact_w2, exact_energy) = generate(&generator, 2)?;
            let target_rows = rows.len();
            for &n in &self.sizes {
                progress(&format!("{}: n = {n}, {} repetitions", target.name(), self.repetitions));
                for r in 0..self.repetitions {
                    let k = 16 + 2 * (n as u64 * 64 + r as u64);
                    let samples = draw(&nu, n, seed(k))?;
                    let (plug_in, bandwidth) = kde(samples.view(), &grid, None)?;
                    let (_, learnt) = solve(&plug_in)?;
                    let map = learnt.map(&problem);
                    let (w2, energy) =
                        generate(&GridMap::from_map(&map, Interpolation::Cubic)?, k + 1)?;
                    rows.push(SizeRow {
                        target: target.name(),
                        n,
                        repetition: r,
                        bandwidth,
                        map_error: map_distance(&problem, &map, &t_map),
                        w2,
                        energy_distance: energy,
                    });
                }
            }
            let medians = |f: fn(&SizeRow) -> f64| -> Vec<(f64, f64)> {
                self.sizes
                    .iter()
                    .map(|&n| {
                        let v: Vec<f64> =
                            rows[target_rows..].iter().filter(|r| r.n == n).map(f).collect();
                        (n as f64, median(v))
                    })
                    .collect()
            };
            // Radii up to a quarter of the grid: 2, 4, 8, 16 cells (Hölder), 1, 2, 4, 8 cells
            // (doubling cubes of twice that half-width).
            let cells = grid.axes().iter().map(|a| a.cells).min().unwrap_or(0);
            let holder_ks: Vec<u32> = (1..=4).filter(|k| 4usize << k <= cells).collect();
            let doubling_ks: Vec<usize> =
                [1, 2, 4, 8].into_iter().filter(|k| 4 * k <= cells).collect();
            targets.push(TargetSummary {
                target: target.name(),
                holder_exponent: holder_exponent(&t_map, &holder_ks)?.exponent,
                doubling_constant: doubling_constant(&nu, &doubling_ks)?,
                exact_w2,
                exact_energy_distance: exact_energy,
                rate_map_error: slope(&medians(|r| r.map_error)),
                rate_w2: slope(&medians(|r| r.w2)),
                rate_energy_distance: slope(&medians(|r| r.energy_distance)),
            });
        }
        progress("robustness: perturbed elliptic coefficients");
        let mut robustness = Vec::new();
        if !self.deltas.is_empty() {
            let nu0 = PdeTarget::Elliptic.density(&grid, 0.0)?;
            let (problem, base) = solve(&nu0)?;
            let t0 = base.map(&problem);
            for &delta in &self.deltas {
                let nu = PdeTarget::Elliptic.density(&grid, delta)?;
                let (_, perturbed) = solve(&nu)?;
                let between = Problem::new(&nu0, &nu)?;
                let w2 = Method::BFM
                    .configure(&Settings::default())?
                    .solve(&between, &Options::default())?
                    .w2_squared()
                    .max(0.0)
                    .sqrt();
                robustness.push(RobustnessRow {
                    delta,
                    map_change: map_distance(&problem, &perturbed.map(&problem), &t0),
                    w2_targets: w2,
                });
            }
        }
        let points: Vec<(f64, f64)> =
            robustness.iter().map(|r| (r.w2_targets, r.map_change)).collect();
        let robustness_exponent = slope(&points);
        Ok(GeneralizationResult { rows, targets, robustness, robustness_exponent })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PDE targets are unit-mass densities (non-negative); the double well has relaxed to
    /// its stationary density `e^{−V/D}/Z` (L1 ≤ 1e-3); δ perturbs the elliptic target only.
    #[test]
    fn pde_targets_are_densities() {
        let grid = Grid::unit(2, 32, BoundaryKind::Neumann).unwrap();
        for target in PdeTarget::ALL {
            let rho = target.density(&grid, 0.0).unwrap();
            assert!((rho.integral() - 1.0).abs() < 1e-12 && rho.min() >= 0.0, "{target:?}");
        }
        let well = PdeTarget::DoubleWell.density(&grid, 0.0).unwrap();
        let stationary = double_well(&grid).stationary_state();
        let l1: f64 =
            well.data().iter().zip(stationary.data()).map(|(a, b)| (a - b).abs()).sum::<f64>()
                * grid.cell_volume();
        assert!(l1 < 1e-3, "double well L1 {l1:.3e} from stationary");
        assert!(PdeTarget::Parabolic.density(&grid, 0.1).is_err());
        assert!(PdeTarget::from_name("hyperbolic").is_err());
    }

    /// A small study at 32²: every target's plug-in maps approach the exact density's map as
    /// n grows (rate of the median map error ≤ −0.2), the Hölder exponents lie in (0, 1.05],
    /// and the map moves with the target like W₂ (robustness exponent within 0.2 of 1).
    #[test]
    fn plug_in_maps_of_pde_targets_converge() {
        let grid = Grid::unit(2, 32, BoundaryKind::Neumann).unwrap();
        let study = GeneralizationStudy {
            sizes: vec![100, 1000, 10000],
            repetitions: 1,
            compared: 300,
            deltas: vec![0.1, 0.2, 0.4],
            ..GeneralizationStudy::new()
        };
        let r = study.run(&grid, &|_| {}).unwrap();
        for t in &r.targets {
            eprintln!(
                "{}: map-error rate {:.2}, Hölder {:.2}, doubling {:.2}",
                t.target, t.rate_map_error, t.holder_exponent, t.doubling_constant
            );
            assert!(t.rate_map_error <= -0.2, "{}: {}", t.target, t.rate_map_error);
            assert!(t.holder_exponent > 0.0 && t.holder_exponent <= 1.05, "{}", t.target);
        }
        eprintln!("robustness exponent {:.3}", r.robustness_exponent);
        assert!((r.robustness_exponent - 1.0).abs() < 0.2, "{}", r.robustness_exponent);
        assert_eq!(r.rows.len(), 3 * 3);
        let bad = GeneralizationStudy { sizes: vec![100], ..GeneralizationStudy::new() };
        assert!(bad.run(&grid, &|_| {}).is_err());
    }
}
