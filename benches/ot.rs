//! OT: the discrete Legendre transform, the deposit push-forward, the back-and-forth solver,
//! Newton, the parabolic flow and Sinkhorn.
//! `cargo bench --bench ot`

use criterion::{criterion_group, criterion_main, Criterion};
use otgrid::ot::{legendre_transform, push_forward_adaptive, Maximum};
use otgrid::{BoundaryKind, Grid, ScalarField, VectorField};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("legendre transform");
    g.sample_size(10);
    for (name, grid) in [
        ("512^2", Grid::unit(2, 512, BoundaryKind::Neumann).unwrap()),
        ("1024^2", Grid::unit(2, 1024, BoundaryKind::Neumann).unwrap()),
        ("128^3", Grid::unit(3, 128, BoundaryKind::Neumann).unwrap()),
    ] {
        let phi = ScalarField::from_fn(&grid, |p| {
            0.5 * p.iter().map(|x| x * x).sum::<f64>()
                + 0.01 * (7.0 * p[0]).sin() * (5.0 * p[1]).cos()
        });
        g.bench_function(name, |b| {
            b.iter(|| legendre_transform(&phi, &grid, Maximum::Discrete).unwrap())
        });
    }
    g.finish();
}

/// The deposit push-forward (bfm's and the JKO steps' default) of a Gaussian by a smooth
/// map that shifts and stretches it, with bfm's sub-cell counts (2 in 2D, 1 in 3D).
fn bench_push_forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("push-forward deposit");
    g.sample_size(10);
    for (name, grid, subcells) in [
        ("512^2", Grid::unit(2, 512, BoundaryKind::Neumann).unwrap(), 2),
        ("128^3", Grid::unit(3, 128, BoundaryKind::Neumann).unwrap(), 1),
    ] {
        let mu = ScalarField::from_fn(&grid, |p| {
            (-p.iter().map(|x| (x - 0.45) * (x - 0.45)).sum::<f64>() / 0.02).exp()
        });
        let map = VectorField::from_fn(&grid, |p, out| {
            for (o, x) in out.iter_mut().zip(p) {
                *o = 0.5 + 1.3 * (x - 0.45) + 0.02 * (5.0 * x).sin();
            }
        });
        g.bench_function(name, |b| {
            b.iter(|| push_forward_adaptive(&mu, &map, &grid, subcells).unwrap())
        });
    }
    g.finish();
}

/// The back-and-forth solver on the reference Gaussian pairs, default multilevel settings
/// (weighted metric) at 256², 512², 1024², 64³ and 128³, and the H¹ metric at 512² for the
/// ratio.
fn bench_bfm(c: &mut Criterion) {
    use otgrid::ot::{BackAndForth, Case, Method, Metric, Options, Solver};
    let mut g = c.benchmark_group("bfm gaussians");
    g.sample_size(10);
    for (n, metric) in [
        (256usize, Metric::default()),
        (512, Metric::default()),
        (1024, Metric::default()),
        (512, Metric::Laplacian),
    ] {
        // The reference Gaussian pair (verify's gaussian-2d).
        let problem = Case::Gaussian2d.problem(n).unwrap();
        let name = match metric {
            Metric::Laplacian => "H1 metric",
            Metric::Weighted { .. } => "weighted metric",
        };
        g.bench_function(format!("{n}^2 tol 1.5e-3 {name}"), |b| {
            let solver = BackAndForth { metric, tolerance: Some(1.5e-3), ..Default::default() };
            let options = Options::default();
            b.iter(|| solver.solve(&problem, &options).unwrap())
        });
    }
    for n in [64, 128] {
        bench_case(&mut g, Method::BFM, Case::Gaussian3d, n);
    }
    g.finish();
}

/// Sinkhorn on the reference Gaussian pair of `benches/compare_pot.py` (tolerance 1e-6 on the
/// plan's L1 marginal error, default multiscale ε-scaling, Sinkhorn divergence included) at
/// ε = 1e-3 on 64², 128², 256², 512² and ε = 2e-4 on 256².
fn bench_sinkhorn(c: &mut Criterion) {
    use otgrid::ot::{Case, Options, Sinkhorn, Solver};
    let mut g = c.benchmark_group("sinkhorn gaussians");
    g.sample_size(10);
    for (n, epsilon) in [(64usize, 1e-3), (128, 1e-3), (256, 1e-3), (512, 1e-3), (256, 2e-4)] {
        // The reference Gaussian pair (verify's gaussian-2d).
        let problem = Case::Gaussian2d.problem(n).unwrap();
        let options = Options::default();
        let solver = Sinkhorn {
            epsilon: Some(epsilon),
            tolerance: Some(1e-6),
            max_iterations: Some(5000),
            ..Default::default()
        };
        g.bench_function(format!("{n}^2 eps {epsilon:e}"), |b| {
            b.iter(|| solver.solve(&problem, &options).unwrap())
        });
    }
    g.finish();
}

/// Newton and the (linearly implicit) parabolic flow on the manufactured periodic case (2D
/// 256², 512²; 3D 64³), each at its default tolerance; Sinkhorn (ε = 1e-3, tolerance 1e-6)
/// on the same case at 128².
fn bench_newton(c: &mut Criterion) {
    use otgrid::ot::{Case, Method};
    for method in [Method::NEWTON, Method::PARABOLIC, Method::SINKHORN] {
        let mut g = c.benchmark_group(format!("{} periodic", method.name()));
        g.sample_size(10);
        let sizes: &[(Case, usize)] = if method == Method::SINKHORN {
            &[(Case::Periodic2d, 128)]
        } else {
            &[(Case::Periodic2d, 256), (Case::Periodic2d, 512), (Case::Periodic3d, 64)]
        };
        for &(case, n) in sizes {
            bench_case(&mut g, method, case, n);
        }
        g.finish();
    }
    // Newton on the reference Gaussian pair (through the Gaussian lift and the coarse start).
    let mut g = c.benchmark_group("newton gaussian");
    g.sample_size(10);
    bench_case(&mut g, Method::NEWTON, Case::Gaussian2d, 256);
    g.finish();
}

fn bench_case(
    g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    method: otgrid::ot::Method,
    case: otgrid::ot::Case,
    n: usize,
) {
    use otgrid::ot::method::Settings;
    use otgrid::ot::{Method, Options, Problem, Role};
    let grid = case.grid(n).unwrap();
    let problem = Problem::new(
        &case.sample(&grid, Role::Source).unwrap(),
        &case.sample(&grid, Role::Target).unwrap(),
    )
    .unwrap();
    let tolerance = if method == Method::SINKHORN { 1e-6 } else { method.default_tolerance(&grid) };
    let mut settings = Settings::default();
    settings.set("tolerance", &tolerance.to_string()).set("max-iterations", "2000");
    let solver = method.configure(&settings).unwrap();
    let options = Options::default();
    g.bench_function(format!("{} n={n}", case.name()), |b| {
        b.iter(|| solver.solve(&problem, &options).unwrap())
    });
}

criterion_group!(benches, bench, bench_push_forward, bench_bfm, bench_sinkhorn, bench_newton);
criterion_main!(benches);
