//! The sample side: `cargo bench --bench sample`. Pushing 10⁶ points through a 512² map
//! (target ≤ 0.3 s on 2 cores) and drawing 10⁶ exact samples from a 512² density.

use criterion::{criterion_group, criterion_main, Criterion};
use otgrid::sample::{draw, GridMap, Interpolation};
use otgrid::{BoundaryKind, Grid, ScalarField, VectorField};

fn bench(c: &mut Criterion) {
    let grid = Grid::unit(2, 512, BoundaryKind::Neumann).unwrap();
    // A smooth displacement (a Gaussian → Gaussian map's affine part plus a wiggle).
    let disp = VectorField::from_fn(&grid, |x, out| {
        out[0] = -0.25 * (x[0] - 0.4) + 0.2 + 0.01 * (6.0 * x[1]).sin();
        out[1] = 0.25 * (x[1] - 0.45) + 0.1 + 0.01 * (5.0 * x[0]).cos();
    });
    let rho = ScalarField::from_fn(&grid, |x| {
        (-((x[0] - 0.4).powi(2) + (x[1] - 0.45).powi(2)) / 0.0128).exp()
    });
    let points = draw(&rho, 1_000_000, 1).unwrap();
    for interp in [Interpolation::Cubic, Interpolation::Linear] {
        let map = GridMap::from_displacement(disp.clone(), interp).unwrap();
        c.bench_function(&format!("push 10^6 points 512^2 {interp:?}"), |b| {
            b.iter(|| map.apply(points.view()).unwrap())
        });
    }
    c.bench_function("draw 10^6 samples 512^2", |b| b.iter(|| draw(&rho, 1_000_000, 7).unwrap()));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
