//! One JKO step per energy (`cargo bench --bench flow`): the Ornstein–Uhlenbeck flow
//! (entropy D = 0.05 + V = 2|x − c|², τ = 0.01, the first step of a Gaussian of width 0.1 off
//! centre) and the porous medium (m = 2, τ = 0.002, a compact bump; γ = 0.004 at unit mass:
//! docs/flows.md's `porous:2,0.1` example, whose bump has mass 0.039) at 128² and 256²,
//! each from the explicit start as a flow's first step; the squared Hellinger distance to a
//! Gaussian on a floor (τ = 0.004); and whole one-step flows (set-up, explicit start and the
//! semi-implicit fixed point) with non-local terms: the energy-distance MMD to a Gaussian
//! (Lagrangian steps, τ = 0.02) and entropy + quadratic interaction (τ = 0.05); the OU flow's
//! first two steps by the JKO and the BDF2 time scheme. The group
//! `convolution` times one FFT kernel convolution (zero-padded, 2n per axis).

use criterion::{criterion_group, criterion_main, Criterion};
use otgrid::ot::flow::{
    Divergence, Energy, GradientFlow, Internal, JkoParams, JkoWorkspace, Kernel, Nonlocal,
    TimeScheme,
};
use otgrid::spectral::Convolution;
use otgrid::{BoundaryKind, Grid, ScalarField};
use std::ops::ControlFlow;

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
        let floor_gaussian = |c: [f64; 2], s2: f64| {
            unit_mass(ScalarField::from_fn(&grid, move |x| {
                0.2 + (-((x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2)) / (2.0 * s2)).exp()
            }))
        };
        let hellinger = (
            "hellinger",
            Energy {
                internal: Some(Internal::Divergence(Divergence::Hellinger)),
                potential: None,
                reference: Some(floor_gaussian([0.55, 0.5], 0.015)),
                nonlocal: Vec::new(),
            },
            floor_gaussian([0.4, 0.45], 0.01),
            0.004,
        );
        for (name, energy, rho, tau) in [ou, pme, hellinger] {
            let params = JkoParams { tau, ..Default::default() };
            let start = params.explicit_start(&energy, &rho);
            let mut ws = JkoWorkspace::new(&grid).unwrap();
            g.bench_function(format!("{name} {n}^2"), |b| {
                b.iter(|| params.step(&energy, &rho, &start, &mut ws).unwrap())
            });
        }
    }
    let gaussian = |grid: &Grid, c: [f64; 2], s2: f64| {
        unit_mass(ScalarField::from_fn(grid, move |x| {
            (-((x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2)) / (2.0 * s2)).exp()
        }))
    };
    for n in [128usize, 256] {
        let grid = Grid::unit(2, n, BoundaryKind::Neumann).unwrap();
        let initial = gaussian(&grid, [0.3, 0.3], 0.005);
        let mmd = Nonlocal::mmd(Kernel::Distance, &gaussian(&grid, [0.7, 0.6], 0.01)).unwrap();
        let mmd_flow = GradientFlow {
            energy: Energy {
                internal: None,
                potential: None,
                reference: None,
                nonlocal: vec![mmd],
            },
            jko: JkoParams { tau: 0.02, ..Default::default() },
            steps: 1,
            scheme: TimeScheme::Jko,
        };
        let interaction =
            Nonlocal::interaction("0.5*(x^2+y^2)".parse::<Kernel>().unwrap(), &grid).unwrap();
        let mut energy = Energy::new(Internal::Entropy { diffusion: 0.002 }, None);
        energy.nonlocal.push(interaction);
        let aggregation = GradientFlow {
            energy,
            jko: JkoParams { tau: 0.05, ..Default::default() },
            steps: 1,
            scheme: TimeScheme::Jko,
        };
        for (name, flow) in [("mmd distance", mmd_flow), ("entropy + interaction", aggregation)] {
            g.bench_function(format!("{name} (one-step flow) {n}^2"), |b| {
                b.iter(|| flow.run(&initial, 1, |_| ControlFlow::Continue(())).unwrap())
            });
        }
        // The OU flow's first two steps by each time scheme (BDF2's second step extrapolates
        // and takes a JKO step of 2τ/3).
        let ou = gaussian(&grid, [0.35, 0.4], 0.01);
        let v =
            ScalarField::from_fn(&grid, |x| 2.0 * ((x[0] - 0.5).powi(2) + (x[1] - 0.5).powi(2)));
        for scheme in [TimeScheme::Jko, TimeScheme::Bdf2] {
            let flow = GradientFlow {
                energy: Energy::new(Internal::Entropy { diffusion: 0.05 }, Some(v.clone())),
                jko: JkoParams { tau: 0.01, ..Default::default() },
                steps: 2,
                scheme,
            };
            g.bench_function(format!("OU two-step flow, {scheme} {n}^2"), |b| {
                b.iter(|| flow.run(&ou, 1, |_| ControlFlow::Continue(())).unwrap())
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("convolution");
    g.sample_size(20);
    for n in [256usize, 512] {
        let grid = Grid::unit(2, n, BoundaryKind::Neumann).unwrap();
        let conv =
            Convolution::new(&grid, |d| (-(d[0] * d[0] + d[1] * d[1]) / 0.02).exp()).unwrap();
        let f: Vec<f64> = (0..grid.num_cells()).map(|i| (i % 17) as f64).collect();
        let mut out = vec![0.0; f.len()];
        g.bench_function(format!("gaussian kernel {n}^2"), |b| {
            b.iter(|| conv.apply(&f, &mut out).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
