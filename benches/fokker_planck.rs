//! One implicit (backward Euler) Fokker–Planck step, Scharfetter–Gummel fluxes, OU potential:
//! 512² (sparse LU, factorised once) and 128³ (BiCGSTAB + Jacobi, warm start).
//! `cargo bench --bench fokker_planck`

use criterion::{criterion_group, criterion_main, Criterion};
use otgrid::pde::{FokkerPlanckProblem, ThetaStepper};
use otgrid::{BoundaryKind, Grid, ScalarField};

fn problem(grid: &Grid) -> FokkerPlanckProblem {
    FokkerPlanckProblem {
        grid: grid.clone(),
        diffusion: 1.0,
        potential: ScalarField::from_fn(grid, |p| 0.5 * p.iter().map(|x| x * x).sum::<f64>()),
        drift: None,
        initial: ScalarField::from_fn(grid, |p| {
            (-(p.iter()
                .enumerate()
                .map(|(a, x)| (x - if a == 0 { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>())
                / 0.5)
                .exp()
        }),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fokker-planck implicit step");
    g.sample_size(10);
    for (name, grid) in [
        (
            "512^2",
            Grid::uniform(&[512, 512], &[-4.0; 2], &[4.0; 2], BoundaryKind::Neumann).unwrap(),
        ),
        (
            "128^3",
            Grid::uniform(&[128, 128, 128], &[-4.0; 3], &[4.0; 3], BoundaryKind::Neumann).unwrap(),
        ),
    ] {
        let fp = problem(&grid);
        g.bench_function(format!("{name} assemble the generator"), |b| {
            b.iter(|| fp.generator().unwrap())
        });
        let k = fp.generator().unwrap();
        let iterative = ThetaStepper::prefers_iterative(grid.dim(), grid.num_cells());
        if !iterative {
            g.bench_function(format!("{name} factorise (LU)"), |b| {
                b.iter(|| ThetaStepper::new(&k, false, 1.0, 0.01, false).unwrap())
            });
        }
        let mut stepper = ThetaStepper::new(&k, false, 1.0, 0.01, iterative).unwrap();
        let mut rho: Vec<f64> = fp.initial.data().iter().copied().collect();
        g.bench_function(
            format!(
                "{name} step dt=0.01 ({})",
                if iterative { "bicgstab+jacobi" } else { "lu solve" }
            ),
            |b| b.iter(|| stepper.step(&mut rho, None, None).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
