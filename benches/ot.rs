//! OT building blocks: the discrete Legendre transform. `cargo bench --bench ot`

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

criterion_group!(benches, bench);
criterion_main!(benches);
