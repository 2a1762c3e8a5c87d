//! The solver surface: every OT method and PDE time stepper reports each iteration (step) to
//! an observer that can stop it (typed outcome `Stopped`); errors are typed variants callers
//! can match; a new OT method is one `Solver` implementation (here a toy one, in this file).

use otgrid::error::{Error, FactorisationFailure};
use otgrid::ot::method::{ConfiguredSolver, Setting, Settings};
use otgrid::ot::{
    Case, IterationRecord, Method, Observer, Options, Outcome, Problem, Progress, Solution, Solver,
    Step,
};
use otgrid::pde::{integrate, ParabolicProblem, Source, StepControl, StepRecord, TimeSettings};
use otgrid::sparse::{BoundaryConditions, Coefficient, OperatorSpec};
use otgrid::{BoundaryKind, Grid, ScalarField};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

/// (iteration, marginal error) pairs an observer saw.
type Seen = Arc<Mutex<Vec<(usize, f64)>>>;

/// An observer that records the iterations it saw and asks to stop after `stop_after`.
fn stopping_observer(stop_after: usize) -> (Observer, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let observer = Observer::new(move |p: &Progress| {
        log.lock().unwrap().push((p.iteration, p.record.marginal_error));
        if p.iteration >= stop_after {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    (observer, seen)
}

#[test]
fn every_ot_method_reports_to_its_observer_and_stops_when_asked() {
    let problem = Case::Periodic2d.problem(32).unwrap();
    for method in Method::all() {
        let (observer, seen) = stopping_observer(3);
        let mut settings = Settings::default();
        settings.set("tolerance", "1e-14").set("max-iterations", "200");
        let solver = method.configure(&settings).unwrap();
        let options = Options::default().observed(observer);
        let solution = solver.solve(&problem, &options).unwrap();
        assert_eq!(
            solution.outcome,
            Outcome::Stopped,
            "{}: {}",
            method.name(),
            solution.stop_reason
        );
        assert_eq!(
            solution.p.grid(),
            problem.grid(),
            "{}: potentials on the problem's grid",
            method.name()
        );
        let seen = seen.lock().unwrap();
        let iterations: Vec<usize> = seen.iter().map(|(k, _)| *k).collect();
        assert_eq!(iterations, vec![1, 2, 3], "{}: {seen:?}", method.name());
        assert!(seen.iter().all(|(_, e)| e.is_finite()));
        // Without an observer the same solve runs on.
        settings.set("max-iterations", "5");
        let free =
            method.configure(&settings).unwrap().solve(&problem, &Options::default()).unwrap();
        assert_ne!(free.outcome, Outcome::Stopped);
    }
}

#[test]
fn time_steppers_report_every_step_and_stop_when_asked() {
    let grid = Grid::unit(2, 16, BoundaryKind::Dirichlet).unwrap();
    let problem = ParabolicProblem {
        operator: OperatorSpec::laplacian(),
        bcs: BoundaryConditions::homogeneous(&grid),
        source: Source::None,
        initial: ScalarField::from_fn(&grid, |p| (std::f64::consts::PI * p[0]).sin()),
        grid: grid.clone(),
    };
    let settings = TimeSettings {
        t_end: 0.1,
        scheme: otgrid::pde::TimeScheme::BackwardEuler,
        control: StepControl::Fixed { dt: 0.01 },
        snapshots: 4,
    };
    let mut steps: Vec<StepRecord> = Vec::new();
    let full = integrate(&problem, &settings, |r| {
        steps.push(*r);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(steps.len(), 10);
    assert!(!full.stopped && (steps[9].t - 0.1).abs() < 1e-15 && steps[0].step == 1);
    let stopped = integrate(&problem, &settings, |r| {
        if r.step == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert!(stopped.stopped && stopped.times.len() == 3);
    assert!((stopped.snapshots.last().unwrap().0 - 0.03).abs() < 1e-15);
}

#[test]
fn errors_are_typed() {
    // A negative reaction: the Cholesky factorisation's failure is a matchable variant,
    // explained in the problem's terms.
    let grid = Grid::unit(2, 8, BoundaryKind::Dirichlet).unwrap();
    let sys = otgrid::sparse::assemble(
        &grid,
        &OperatorSpec::laplacian().with_reaction(Coefficient::Constant(-1e4)),
        &BoundaryConditions::homogeneous(&grid),
    )
    .unwrap();
    match otgrid::sparse::Cholesky::new(&sys.matrix) {
        Err(Error::Factorisation { kind: FactorisationFailure::NotPositiveDefinite, .. }) => {}
        other => panic!("{:?}", other.err()),
    }
    // Newton on densities with zero regions: `UnsuitedMethod`, naming the method to use.
    let problem = Case::DiskAnnulus.problem(16).unwrap();
    match Method::NEWTON.check(&problem) {
        Err(Error::UnsuitedMethod { method: "newton", suggestion, .. }) => {
            assert!(suggestion.contains("bfm"))
        }
        other => panic!("{other:?}"),
    }
    // Names parse through FromStr.
    assert_eq!("sinkhorn".parse::<Method>().unwrap(), Method::SINKHORN);
    assert!(matches!("nope".parse::<Method>(), Err(Error::Invalid(_))));
    assert!("laplacian".parse::<otgrid::ot::metric::Metric>().is_ok());
}

/// A toy OT method, added without touching the library: the identity map, "converged" when
/// the two densities already agree (in the L1 or the max norm, its one setting). One `Solver`
/// implementation and one `MethodInfo` are all a method needs to run through the shared
/// surface: `Method`, settings, verification, memory estimate, `Problem` → `Solution`,
/// output.
#[derive(serde::Serialize)]
struct Identity {
    /// The gap below which the densities count as equal; `None`: 1e-12.
    tolerance: Option<f64>,
    max_norm: bool,
}

impl Solver for Identity {
    fn solve(&self, problem: &Problem, options: &Options) -> otgrid::Result<Solution> {
        let grid = problem.grid();
        let diffs =
            problem.source().data().iter().zip(problem.target().data()).map(|(a, b)| (a - b).abs());
        let gap = if self.max_norm {
            diffs.fold(0.0, f64::max)
        } else {
            diffs.sum::<f64>() * grid.cell_volume()
        };
        let record = IterationRecord {
            marginal_error: gap,
            l1_marginal_error: gap,
            dual_value: 0.0,
            step: Step::None,
        };
        let start = std::time::Instant::now();
        let stopping = options.stopping(&IDENTITY, grid, self.tolerance, None)?;
        let identity = || ScalarField::zeros(grid);
        let stopped = stopping.stop_requested(("identity", 1, &record), grid, &identity, start);
        let outcome = if stopped {
            Outcome::Stopped
        } else if gap <= stopping.tolerance {
            Outcome::Converged
        } else {
            Outcome::Stalled
        };
        Ok(Solution {
            method: "identity",
            p: ScalarField::zeros(grid),
            q: ScalarField::zeros(grid),
            outcome,
            stop_reason: format!("gap {gap:.3e}"),
            marginal_error: gap,
            dual_value: 0.0,
            iterations: 1,
            seconds: start.elapsed().as_secs_f64(),
            history: vec![record],
            diagnostics: Vec::new(),
            scalars: Vec::new(),
        })
    }
}

impl ConfiguredSolver for Identity {
    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap()
    }
}

/// The toy method's registry entry: what `otgrid::ot::method::REGISTRY` holds per method.
static IDENTITY: otgrid::ot::MethodInfo = otgrid::ot::MethodInfo {
    name: "identity",
    stopping_measure: "L1 (or max) gap between the densities",
    default_tolerance: |_| 1e-12,
    max_iterations: 1,
    unsuited: |_| None,
    settings: &[Setting { name: "norm", help: "l1 (default) or max" }],
    configure: |settings| {
        let max_norm = match settings.get("norm") {
            None | Some("l1") => false,
            Some("max") => true,
            Some(other) => return Err(otgrid::Error::invalid(format!("unknown norm '{other}'"))),
        };
        let (tolerance, _) = settings.stopping()?;
        Ok(Box::new(Identity { tolerance, max_norm }))
    },
    memory_fields: |_| 4.0,
};

#[test]
fn a_new_method_is_one_solver_and_one_registry_entry() {
    let identity = Method::new(&IDENTITY);
    let grid = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
    let rho = ScalarField::from_fn(&grid, |p| 1.0 + 0.5 * p[0]);
    let same = Problem::new(&rho, &rho).unwrap();
    let solution = identity.solve(&same, &Options::default()).unwrap();
    assert_eq!(solution.outcome, Outcome::Converged);
    assert!(solution.w2_squared().abs() < 1e-12);
    let out = solution.to_output(&same).unwrap();
    assert!(out.fields().contains_key("map") && out.fields().contains_key("push_forward"));
    // Its setting, and the shared refusal of one it does not take.
    let mut settings = Settings::default();
    settings.set("norm", "max");
    let max = identity.configure(&settings).unwrap();
    assert_eq!(max.parameters(), serde_json::json!({ "tolerance": null, "max_norm": true }));
    // The stopping settings every method takes: a looser tolerance makes a near pair equal.
    let near =
        Problem::new(&rho, &ScalarField::from_fn(&grid, |p| 1.0 + 0.5 * p[0] + 1e-4)).unwrap();
    assert_eq!(identity.solve(&near, &Options::default()).unwrap().outcome, Outcome::Stalled);
    settings.set("tolerance", "1e-3");
    let loose = identity.configure(&settings).unwrap();
    assert_eq!(loose.solve(&near, &Options::default()).unwrap().outcome, Outcome::Converged);
    settings.set("epsilon", "1e-3");
    let refused = identity.configure(&settings).err().expect("epsilon is not its setting");
    assert!(refused.to_string().contains("it applies to sinkhorn"), "{refused}");
    // The memory guard and the verification suite take it like a built-in method.
    let estimate = otgrid::resources::MemoryEstimate::ot(&grid, Some(identity), "identity");
    assert!(estimate.bytes > 0);
    let rows = otgrid::ot::verify::verify_case(
        otgrid::ot::Case::Gaussian2d,
        Some(identity),
        &[16],
        otgrid::ot::verify::Suite::Zoo,
    )
    .unwrap();
    assert_eq!(rows[0].method, "identity");
    assert!(!rows[0].solved, "two different Gaussians are not the identity's to solve");
    // Observers stop it as they stop the others.
    let other = Problem::new(&rho, &ScalarField::from_fn(&grid, |_| 1.0)).unwrap();
    let (observer, _) = stopping_observer(1);
    let stopped = identity.solve(&other, &Options::default().observed(observer)).unwrap();
    assert_eq!(stopped.outcome, Outcome::Stopped);
}

/// Problem files become problems in the library, as in the CLI: the shipped Poisson example
/// parsed, built and solved from Rust, second-order close to its exact solution.
#[test]
fn problem_files_build_problems_in_the_library() {
    use otgrid::io::config::{parse_problem, DiffusionProblemFile};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/problems");
    let path = dir.join("poisson_sine.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file: DiffusionProblemFile = parse_problem(&text, &path).unwrap();
    let grid = file.grid.grid(&dir).unwrap();
    let inputs = otgrid::io::Inputs::new(&dir);
    let problem = file.elliptic(&grid, &inputs).unwrap();
    let (u, report) = problem.solve(file.linear_method().unwrap()).unwrap();
    assert!(report.residual < 1e-10);
    let pi = std::f64::consts::PI;
    let exact = ScalarField::from_fn(&grid, |p| (pi * p[0]).sin() * (pi * p[1]).sin());
    let err = u.data().iter().zip(exact.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-4, "max error {err:e} at 128²");
    // The same file is not a parabolic problem (no initial value).
    match file.parabolic(&grid, &inputs) {
        Err(e) => assert!(e.to_string().contains("initial"), "{e}"),
        Ok(_) => panic!("a file without initial is not a parabolic problem"),
    }
}

/// Each solver owns its tolerance: unset, it stops at its method's default on the problem's
/// grid (Newton's residual 1e-8, bfm's H⁻¹ error 1.5e-3 · 256/n), not at one number meant
/// for another method's measure; `Options` carries only the run's controls. Each record's
/// step says what it is.
#[test]
fn default_options_take_each_method_default_tolerance() {
    let problem = Case::Periodic2d.problem(32).unwrap();
    for method in [Method::NEWTON, Method::BFM] {
        let solution = method.solve(&problem, &Options::default()).unwrap();
        let tolerance = method.default_tolerance(problem.grid());
        assert_eq!(solution.outcome, Outcome::Converged, "{}", method.name());
        assert!(
            solution.marginal_error <= tolerance,
            "{}: {}",
            method.name(),
            solution.stop_reason
        );
        assert!(
            solution.stop_reason.contains(&format!("{tolerance:.3e}")),
            "{}",
            solution.stop_reason
        );
        // Typed steps: bfm's records carry its ascent step, Newton's its damping (the last
        // record, which only measures, none).
        let kinds: Vec<_> = solution.history.iter().map(|r| r.step.kind()).collect();
        let expected =
            if method == Method::BFM { "ascent step sigma" } else { "Newton damping theta" };
        assert!(kinds[..kinds.len() - 1].iter().all(|k| *k == expected), "{kinds:?}");
    }
    let newton = Method::NEWTON.solve(&problem, &Options::default()).unwrap();
    assert_eq!(newton.history.last().unwrap().step, Step::None);
    assert_eq!(Method::NEWTON.default_tolerance(problem.grid()), 1e-8);
    // Set on the solver, the tolerance is the solver's (here looser: fewer Newton steps).
    let loose = otgrid::ot::Newton { tolerance: Some(1e-3), ..Default::default() };
    let s = loose.solve(&problem, &Options::default()).unwrap();
    assert!(s.converged() && s.iterations < newton.iterations, "{}", s.stop_reason);
    assert!(s.stop_reason.contains("1.000e-3"), "{}", s.stop_reason);
}

/// Every method checks a starting potential the same way: on the problem's grid and finite
/// (a one-line error naming the method).
#[test]
fn every_method_refuses_a_bad_initial_potential() {
    use otgrid::ot::{BackAndForth, Newton, Parabolic, Sinkhorn};
    let problem = Case::Periodic2d.problem(16).unwrap();
    let other = ScalarField::zeros(&Case::Periodic2d.grid(8).unwrap());
    let mut nan = ScalarField::zeros(problem.grid());
    nan.data_mut()[[3, 4]] = f64::NAN;
    for (p0, needle) in [(other, "another grid"), (nan, "NaN")] {
        let solvers: [(&str, Box<dyn Solver>); 4] = [
            ("bfm", Box::new(BackAndForth { initial: Some(p0.clone()), ..Default::default() })),
            ("newton", Box::new(Newton { initial: Some(p0.clone()), ..Default::default() })),
            ("parabolic", Box::new(Parabolic { initial: Some(p0.clone()), ..Default::default() })),
            ("sinkhorn", Box::new(Sinkhorn { initial: Some(p0.clone()), ..Default::default() })),
        ];
        for (name, solver) in solvers {
            let Err(e) = solver.solve(&problem, &Options::default()) else {
                panic!("{name} accepted a bad initial potential")
            };
            let e = e.to_string();
            assert!(e.starts_with(name) && e.contains(needle) && !e.contains('\n'), "{e}");
        }
    }
}
