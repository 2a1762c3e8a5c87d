//! Output path throughput: sampling a field on a grid (rayon) and writing HDF5 + XDMF.
//!
//! `cargo bench --bench io`

use criterion::{criterion_group, criterion_main, Criterion};
use otgrid::io::Output;
use otgrid::{BoundaryKind, Grid, ScalarField, VectorField};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let g2 = Grid::unit(2, 1024, BoundaryKind::Neumann).unwrap();
    let g3 = Grid::unit(3, 128, BoundaryKind::Neumann).unwrap();
    let f = |p: &[f64]| p.iter().map(|x| (-x * x).exp()).product::<f64>();
    c.bench_function("sample scalar 1024^2", |b| {
        b.iter(|| black_box(ScalarField::from_fn(&g2, f)))
    });
    c.bench_function("sample scalar 128^3", |b| b.iter(|| black_box(ScalarField::from_fn(&g3, f))));
    let dir = tempfile::tempdir().unwrap();
    for (name, g) in [("1024^2", &g2), ("128^3", &g3)] {
        let mut out = Output::new(g.clone());
        out.add_field("rho", ScalarField::from_fn(g, f)).unwrap();
        out.add_field("map", VectorField::from_fn(g, |p, v| v.copy_from_slice(p))).unwrap();
        let path = dir.path().join("b.h5");
        c.bench_function(&format!("write scalar+vector {name}"), |b| {
            b.iter(|| out.write(&path).unwrap())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
