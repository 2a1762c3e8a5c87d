//! Sparse direct and preconditioned iterative solves of a variable-coefficient
//! `−∇·(a∇u) = f` on 512² (Dirichlet): `cargo bench --bench sparse`.

use criterion::{criterion_group, criterion_main, Criterion};
use otgrid::sparse::{
    assemble, BoundaryConditions, Cg, Cholesky, Coefficient, KrylovSettings, LinearSolver,
    OperatorSpec, Preconditioner,
};
use otgrid::spectral::{PoissonSolver, Symbol};
use otgrid::{BoundaryKind, Grid, ScalarField};

fn bench(c: &mut Criterion) {
    let grid = Grid::unit(2, 512, BoundaryKind::Dirichlet).unwrap();
    let a = ScalarField::from_fn(&grid, |p| 1.5 + 0.5 * (6.0 * p[0]).sin() * (4.0 * p[1]).cos());
    let spec = OperatorSpec::default().with_diffusion(Coefficient::Field(a));
    let sys = assemble(&grid, &spec, &BoundaryConditions::homogeneous(&grid)).unwrap();
    let a2 = ScalarField::from_fn(&grid, |p| 2.0 + (3.0 * p[0] * p[1]).cos());
    let sys2 = assemble(
        &grid,
        &OperatorSpec::default().with_diffusion(Coefficient::Field(a2)),
        &BoundaryConditions::homogeneous(&grid),
    )
    .unwrap();
    let f: Vec<f64> = (0..grid.num_cells()).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
    let mut g = c.benchmark_group("sparse 512^2 variable coefficient");
    g.sample_size(10);
    g.bench_function("assemble", |b| {
        b.iter(|| assemble(&grid, &spec, &BoundaryConditions::homogeneous(&grid)).unwrap())
    });
    g.bench_function("cholesky factor (symbolic + numeric)", |b| {
        b.iter(|| Cholesky::new(&sys.matrix).unwrap())
    });
    let mut chol = Cholesky::new(&sys.matrix).unwrap();
    g.bench_function("cholesky refactor (reused symbolic)", |b| {
        b.iter(|| chol.refactor(&sys2.matrix).unwrap())
    });
    let mut x = vec![0.0; f.len()];
    g.bench_function("cholesky solve", |b| b.iter(|| chol.solve(&f, &mut x).unwrap()));
    let settings = KrylovSettings { rel_tolerance: 1e-8, max_iterations: 1000 };
    let poisson = PoissonSolver::new(&grid, 0.0, Symbol::Discrete).unwrap();
    let mut cg = Cg::new(sys2.matrix.clone(), Preconditioner::spectral(poisson, 2.0), settings);
    g.bench_function("cg + spectral preconditioner, rtol 1e-8", |b| {
        b.iter(|| {
            x.iter_mut().for_each(|v| *v = 0.0);
            cg.solve(&f, &mut x).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
