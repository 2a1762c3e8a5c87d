//! Spectral Poisson solves: `cargo bench --bench spectral`.

use criterion::{criterion_group, criterion_main, Criterion};
use otgrid::spectral::{MeanPolicy, PoissonSolver, Symbol};
use otgrid::{BoundaryKind, Grid};

fn rhs(n: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5).collect()
}

fn bench(c: &mut Criterion) {
    let cases: Vec<(&str, Grid)> = vec![
        ("periodic 1024^2", Grid::unit(2, 1024, BoundaryKind::Periodic).unwrap()),
        ("neumann 1024^2", Grid::unit(2, 1024, BoundaryKind::Neumann).unwrap()),
        ("dirichlet 1024^2", Grid::unit(2, 1024, BoundaryKind::Dirichlet).unwrap()),
        ("periodic 512^2", Grid::unit(2, 512, BoundaryKind::Periodic).unwrap()),
        ("neumann 512^2", Grid::unit(2, 512, BoundaryKind::Neumann).unwrap()),
        ("periodic 256^3", Grid::unit(3, 256, BoundaryKind::Periodic).unwrap()),
        ("neumann 256^3", Grid::unit(3, 256, BoundaryKind::Neumann).unwrap()),
    ];
    let filter: Option<String> = std::env::var("OTGRID_BENCH_FILTER").ok();
    for (name, grid) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let mut solver = PoissonSolver::new(&grid, 0.0, Symbol::Discrete)
            .unwrap()
            .with_mean_policy(MeanPolicy::Project);
        let f = rhs(grid.num_cells());
        let mut u = vec![0.0; f.len()];
        c.bench_function(&format!("poisson {name}"), |b| {
            b.iter(|| solver.solve(&f, &mut u).unwrap())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
