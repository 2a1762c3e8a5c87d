//! One JKO step per energy (`cargo bench --bench flow`): the Ornstein–Uhlenbeck flow
//! (entropy D = 0.05 + V = 2|x − c|², τ = 0.01, the first step of a Gaussian of width 0.1 off
//! centre) and the porous medium (m = 2, τ = 0.002, a compact bump; γ = 0.004 at unit mass:
//! docs/flows.md's `porous:2,0.1` example, whose bump has mass 0.039) at 128² and 256²,
//! each from the explicit start as a flow's first step.

use criterion::{criterion_group, criterion_main, Criterion};
use otgrid::ot::flow::{Energy, Internal, JkoParams, JkoWorkspace};
use otgrid::{BoundaryKind, Grid, ScalarField};

fn unit_mass(mut f: ScalarField) -> ScalarField {
    let m = f.integral();
    f.data_mut().mapv_inplace(|v| v / m);
    f
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("jko step");
    g.sample_size(10);
    for n in [128usize, 256] {
        let grid = Grid::unit(2, n, BoundaryKind::Neumann).unwrap();
        let ou = (
            "entropy + potential",
            Energy::new(
                Internal::Entropy { diffusion: 0.05 },
                Some(ScalarField::from_fn(&grid, |x| {
                    2.0 * ((x[0] - 0.5).powi(2) + (x[1] - 0.5).powi(2))
                })),
            ),
            unit_mass(ScalarField::from_fn(&grid, |x| {
                (-((x[0] - 0.35).powi(2) + (x[1] - 0.4).powi(2)) / 0.02).exp()
            })),
            0.01,
        );
        let pme = (
            "porous medium m=2",
            Energy::new(Internal::PorousMedium { coefficient: 0.004, exponent: 2.0 }, None),
            unit_mass(ScalarField::from_fn(&grid, |x| {
                (0.1 - 4.0 * ((x[0] - 0.5).powi(2) + (x[1] - 0.5).powi(2))).max(0.0)
            })),
            0.002,
        );
        for (name, energy, rho, tau) in [ou, pme] {
            let params = JkoParams { tau, ..Default::default() };
            let start = params.explicit_start(&energy, &rho);
            let mut ws = JkoWorkspace::new(&grid).unwrap();
            g.bench_function(format!("{name} {n}^2"), |b| {
                b.iter(|| params.step(&energy, &rho, &start, &mut ws).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
