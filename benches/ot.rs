//! OT: the discrete Legendre transform, the back-and-forth solver and Newton.
//! `cargo bench --bench ot`

use criterion::{criterion_group, criterion_main, Criterion};
use otgrid::ot::{legendre_transform, Maximum};
use otgrid::{BoundaryKind, Grid, ScalarField};

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

/// The back-and-forth solver on the reference Gaussian pair, default multilevel settings.
fn bench_bfm(c: &mut Criterion) {
    use otgrid::analytic::gaussian::Gaussian;
    use otgrid::ot::{BackAndForth, Options, Problem, Solver};
    let s = Gaussian::new(vec![0.4, 0.45], vec![vec![0.0064, 0.0], vec![0.0, 0.0064]]).unwrap();
    let t = Gaussian::new(vec![0.6, 0.55], vec![vec![0.0036, 0.0], vec![0.0, 0.01]]).unwrap();
    let mut g = c.benchmark_group("bfm gaussians");
    g.sample_size(10);
    for n in [256usize, 512] {
        let grid = Grid::unit(2, n, BoundaryKind::Neumann).unwrap();
        let problem = Problem::new(
            &ScalarField::from_fn(&grid, |p| s.density(p)),
            &ScalarField::from_fn(&grid, |p| t.density(p)),
        )
        .unwrap();
        g.bench_function(format!("{n}^2 tol 1.5e-3"), |b| {
            b.iter(|| BackAndForth::default().solve(&problem, &Options::default()).unwrap())
        });
    }
    g.finish();
}

/// Newton on the manufactured periodic case (2D 256², 512²; 3D 64³), tolerance 1e-8.
fn bench_newton(c: &mut Criterion) {
    use otgrid::ot::{Case, Method, Options, Problem, Role};
    let mut g = c.benchmark_group("newton periodic");
    g.sample_size(10);
    for (case, n) in [(Case::Periodic2d, 256usize), (Case::Periodic2d, 512), (Case::Periodic3d, 64)]
    {
        let grid = case.grid(n).unwrap();
        let problem = Problem::new(
            &case.sample(&grid, Role::Source).unwrap(),
            &case.sample(&grid, Role::Target).unwrap(),
        )
        .unwrap();
        let options =
            Options { tolerance: Method::Newton.default_tolerance(&grid), ..Default::default() };
        g.bench_function(format!("{} n={n}", case.name()), |b| {
            b.iter(|| Method::Newton.solve(&problem, &options).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_bfm, bench_newton);
criterion_main!(benches);
