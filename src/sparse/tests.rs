use super::*;
use crate::analytic::manufactured::{error_norms, observed_orders, Manufactured};
use crate::field::{ScalarField, VectorField};
use crate::grid::{BoundaryKind, Grid};
use crate::operators::tests::{grid_with, kind_sets};
use crate::spectral::{PoissonSolver, Symbol};
use std::f64::consts::PI;

/// a(x) = 1.5 + 0.5 Π cos(2π s_a + 0.7): smooth, positive, periodic on every axis, with a
/// non-zero normal derivative on every face (so boundary-face coefficients are exercised).
#[allow(clippy::type_complexity)]
fn diffusivity(
    grid: &Grid,
) -> (impl Fn(&[f64]) -> f64 + Clone, impl Fn(&[f64], &mut [f64]) + Clone) {
    let ax: Vec<(f64, f64)> = grid.axes().iter().map(|a| (a.lower, a.length())).collect();
    let ax2 = ax.clone();
    let a = move |p: &[f64]| {
        1.5 + 0.5
            * ax.iter()
                .enumerate()
                .map(|(k, (lo, l))| (2.0 * PI * (p[k] - lo) / l + 0.7).cos())
                .product::<f64>()
    };
    let grad = move |p: &[f64], g: &mut [f64]| {
        for k in 0..ax2.len() {
            g[k] = -0.5
                * (0..ax2.len())
                    .map(|m| {
                        let (lo, l) = ax2[m];
                        let t = 2.0 * PI * (p[m] - lo) / l + 0.7;
                        if m == k {
                            2.0 * PI / l * t.sin()
                        } else {
                            t.cos()
                        }
                    })
                    .product::<f64>();
        }
    };
    (a, grad)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Face {
    Dirichlet,
    Neumann,
    Robin,
}

/// Boundary conditions with inhomogeneous data taken from the exact solution `m`.
fn exact_bcs(grid: &Grid, m: &Manufactured, face: Face) -> BoundaryConditions {
    let mut bcs = BoundaryConditions::homogeneous(grid);
    for a in 0..grid.dim() {
        if grid.axis(a).boundary == BoundaryKind::Periodic {
            continue;
        }
        for side in 0..2 {
            let m2 = m.clone();
            let m = m.clone();
            let sign = if side == 0 { -1.0 } else { 1.0 };
            let d = grid.dim();
            let dn = move |p: &[f64]| {
                let mut g = [0.0; 3];
                m.gradient(p, &mut g[..d]);
                sign * g[a]
            };
            let cond = match face {
                Face::Dirichlet => {
                    FaceCondition::Dirichlet(BoundaryValue::function(move |p| m2.value(p)))
                }
                Face::Neumann => FaceCondition::Neumann(BoundaryValue::function(dn)),
                Face::Robin => FaceCondition::Robin {
                    alpha: 2.0,
                    value: BoundaryValue::function(move |p| 2.0 * m2.value(p) + dn(p)),
                },
            };
            bcs = bcs.set(a, side, cond);
        }
    }
    bcs
}

/// Solves L u = f + boundary_rhs for the manufactured solution and returns (h, L2, max) error.
fn manufactured_error(
    grid: &Grid,
    face: Face,
    advection: Option<AdvectionScheme>,
    variable: bool,
    reaction: f64,
) -> (f64, f64, f64) {
    let m = Manufactured::generic(grid);
    let (a_fn, grad_a) = diffusivity(grid);
    let bvec = [1.0, -0.7, 0.4];
    let d = grid.dim();
    let mut spec = if variable {
        OperatorSpec::default()
            .with_diffusion(Coefficient::Field(ScalarField::from_fn(grid, a_fn.clone())))
    } else {
        OperatorSpec::laplacian()
    };
    if reaction != 0.0 {
        spec = spec.with_reaction(Coefficient::Constant(reaction));
    }
    if let Some(scheme) = advection {
        spec = spec.with_advection(
            VectorField::from_fn(grid, |_, b| b.copy_from_slice(&bvec[..d])),
            scheme,
        );
    }
    let f = ScalarField::from_fn(grid, |p| {
        let mut gu = [0.0; 3];
        m.gradient(p, &mut gu[..d]);
        let (a, mut ga) = if variable { (a_fn(p), [0.0; 3]) } else { (1.0, [0.0; 3]) };
        if variable {
            grad_a(p, &mut ga[..d]);
        }
        let mut v = -a * m.laplacian(p) + reaction * m.value(p);
        for k in 0..d {
            v -= ga[k] * gu[k];
            if advection.is_some() {
                v += bvec[k] * gu[k];
            }
        }
        v
    });
    let sys = assemble(grid, &spec, &exact_bcs(grid, &m, face)).unwrap();
    let rhs: Vec<f64> = f.data().iter().zip(&sys.boundary_rhs).map(|(a, b)| a + b).collect();
    let mut u = vec![0.0; rhs.len()];
    let report = if sys.symmetric {
        Cholesky::new(&sys.matrix).unwrap().solve(&rhs, &mut u).unwrap()
    } else {
        Lu::new(&sys.matrix).unwrap().solve(&rhs, &mut u).unwrap()
    };
    assert!(report.residual < 1e-10, "direct solve residual {}", report.residual);
    let exact = ScalarField::from_fn(grid, |p| m.value(p));
    let (l2, mx) = error_norms(grid, &u, exact.data().as_slice().unwrap());
    (grid.axis(0).spacing(), l2, mx)
}

fn assert_orders(what: &str, runs: &[(f64, f64, f64)], min: f64) {
    let h: Vec<f64> = runs.iter().map(|r| r.0).collect();
    for (name, e) in [
        ("L2", runs.iter().map(|r| r.1).collect::<Vec<_>>()),
        ("max", runs.iter().map(|r| r.2).collect()),
    ] {
        let orders = observed_orders(&h, &e);
        assert!(orders.iter().all(|&p| p >= min), "{what} {name}: orders {orders:?}, errors {e:?}");
    }
}

/// Variable-coefficient diffusion with harmonic face averages, inhomogeneous Dirichlet /
/// Neumann / Robin data and periodic axes, 2D and 3D, three grids: order ≥ 1.9.
#[test]
fn variable_coefficient_diffusion_is_second_order_for_every_boundary_condition() {
    for dim in [2, 3] {
        for kinds in kind_sets(dim) {
            for face in [Face::Dirichlet, Face::Neumann, Face::Robin] {
                if face != Face::Dirichlet && !kinds.iter().any(|k| *k != BoundaryKind::Periodic) {
                    continue;
                }
                // Pure Neumann/periodic is singular without reaction: add c = 1 there.
                let reaction = if face == Face::Neumann
                    || kinds.iter().all(|k| *k == BoundaryKind::Periodic)
                {
                    1.0
                } else {
                    0.0
                };
                let ns: &[usize] = if dim == 2 { &[32, 64, 128] } else { &[8, 16, 32] };
                let runs: Vec<_> = ns
                    .iter()
                    .map(|&n| manufactured_error(&grid_with(&kinds, n), face, None, true, reaction))
                    .collect();
                if dim == 2 {
                    assert_orders(&format!("{dim}D {kinds:?} {face:?}"), &runs, 1.9);
                } else {
                    // 3D on grids a unit test can afford: the L2 order is ≥ 1.9; the max
                    // norm is still pre-asymptotic at the boundary (corners and edges of
                    // Robin/Neumann faces with variable a), e.g. Robin on all faces measured
                    // 1.83 then 1.90 on 12³/24³/48³, so it must be ≥ 1.75 and rising past 1.85.
                    let h: Vec<f64> = runs.iter().map(|r| r.0).collect();
                    let l2: Vec<f64> = runs.iter().map(|r| r.1).collect();
                    let mx: Vec<f64> = runs.iter().map(|r| r.2).collect();
                    let (ol2, omx) = (observed_orders(&h, &l2), observed_orders(&h, &mx));
                    let what = format!("3D {kinds:?} {face:?}");
                    assert!(
                        ol2.iter().all(|&o| o >= 1.9),
                        "{what} L2 orders {ol2:?}, errors {l2:?}"
                    );
                    assert!(
                        omx.iter().all(|&o| o >= 1.75) && omx[1] >= 1.85,
                        "{what} max orders {omx:?}, errors {mx:?}"
                    );
                }
            }
        }
    }
}

/// Advection: centred differences are second order, upwind first order.
#[test]
fn advection_orders() {
    use BoundaryKind::*;
    for kinds in
        [vec![Dirichlet, Dirichlet], vec![Periodic, Neumann], vec![Neumann, Dirichlet, Periodic]]
    {
        for scheme in [AdvectionScheme::Centred, AdvectionScheme::Upwind] {
            // Upwind is checked in 2D, where its asymptotic first order is reached on grids a
            // direct solver handles quickly; its stencil is the same per axis in 3D, and 3D
            // advection assembly is covered by the centred case.
            let ns: &[usize] = match (kinds.len(), scheme) {
                (2, AdvectionScheme::Centred) => &[32, 64, 128],
                (2, AdvectionScheme::Upwind) => &[64, 128, 256],
                (_, AdvectionScheme::Centred) => &[8, 16, 32],
                (_, AdvectionScheme::Upwind) => continue,
            };
            let runs: Vec<_> = ns
                .iter()
                .map(|&n| {
                    manufactured_error(
                        &grid_with(&kinds, n),
                        Face::Dirichlet,
                        Some(scheme),
                        false,
                        1.0,
                    )
                })
                .collect();
            if scheme == AdvectionScheme::Centred {
                assert_orders(&format!("{kinds:?} {scheme:?}"), &runs, 1.9);
            } else {
                // First order, approached from below (error ≈ C h + D h²).
                assert_orders(&format!("{kinds:?} {scheme:?}"), &runs, 0.8);
                let h: Vec<f64> = runs.iter().map(|r| r.0).collect();
                let e: Vec<f64> = runs.iter().map(|r| r.1).collect();
                let finest = *observed_orders(&h, &e).last().unwrap();
                assert!(finest >= 0.9, "{kinds:?} upwind finest order {finest}");
            }
        }
    }
}

/// The assembled constant-coefficient operator and the spectral solver invert the same
/// discrete operator: their solutions agree to round-off.
#[test]
fn sparse_and_spectral_solvers_agree() {
    for dim in [2, 3] {
        for kinds in kind_sets(dim) {
            let g = grid_with(&kinds, if dim == 2 { 24 } else { 8 });
            let shift = 0.5;
            let spec = OperatorSpec::laplacian().with_reaction(Coefficient::Constant(shift));
            let sys = assemble(&g, &spec, &BoundaryConditions::homogeneous(&g)).unwrap();
            assert!(sys.boundary_rhs.iter().all(|v| *v == 0.0));
            let f: Vec<f64> =
                (0..g.num_cells()).map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0).collect();
            let mut u_sparse = vec![0.0; f.len()];
            Cholesky::new(&sys.matrix).unwrap().solve(&f, &mut u_sparse).unwrap();
            let mut u_spec = vec![0.0; f.len()];
            PoissonSolver::new(&g, shift, Symbol::Discrete)
                .unwrap()
                .solve(&f, &mut u_spec)
                .unwrap();
            let diff = u_sparse.iter().zip(&u_spec).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            let size = u_spec.iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert!(diff < 1e-10 * size, "{dim}D {kinds:?}: sparse vs spectral {diff:e}");
        }
    }
}

fn test_system(n: usize, kinds: &[BoundaryKind], diffusion: f64) -> (Grid, Assembled, Vec<f64>) {
    let g = grid_with(kinds, n);
    let a = ScalarField::from_fn(&g, |p| diffusion * (1.5 + 0.5 * (3.0 * p[0]).sin() * p[1].cos()));
    let sys = assemble(
        &g,
        &OperatorSpec::default().with_diffusion(Coefficient::Field(a)),
        &BoundaryConditions::homogeneous(&g),
    )
    .unwrap();
    let f: Vec<f64> = (0..g.num_cells()).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
    (g, sys, f)
}

/// Every solver solves the same SPD system to its tolerance and reports it truthfully.
#[test]
fn solvers_agree_and_report() {
    use BoundaryKind::*;
    let (g, sys, f) = test_system(32, &[Dirichlet, Neumann], 1.0);
    let mut reference = vec![0.0; f.len()];
    let r = Cholesky::new(&sys.matrix).unwrap().solve(&f, &mut reference).unwrap();
    assert_eq!((r.iterations, r.reason), (0, Converged::Direct));
    let settings = KrylovSettings { rel_tolerance: 1e-11, max_iterations: 2000 };
    let poisson = PoissonSolver::new(&g, 0.0, Symbol::Discrete).unwrap();
    let mut solvers: Vec<Box<dyn LinearSolver>> = vec![
        Box::new(Lu::new(&sys.matrix).unwrap()),
        Box::new(Cg::new(sys.matrix.clone(), Preconditioner::None, settings)),
        Box::new(Cg::new(
            sys.matrix.clone(),
            Preconditioner::jacobi(&sys.matrix).unwrap(),
            settings,
        )),
        Box::new(Cg::new(sys.matrix.clone(), Preconditioner::spectral(poisson, 1.5), settings)),
        Box::new(BiCgStab::new(
            sys.matrix.clone(),
            Preconditioner::jacobi(&sys.matrix).unwrap(),
            settings,
        )),
    ];
    let mut iterations = std::collections::BTreeMap::new();
    for s in solvers.iter_mut() {
        let mut x = vec![0.0; f.len()];
        let rep = s.solve(&f, &mut x).unwrap();
        assert!(rep.residual <= 1e-10, "{}: residual {}", s.name(), rep.residual);
        let diff = x.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let size = reference.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(diff < 1e-8 * size, "{}: differs from Cholesky by {diff:e}", s.name());
        iterations.insert(s.name(), rep.iterations);
    }
    eprintln!("iterations: {iterations:?}");
    // The spectral (H¹) preconditioner makes CG's iteration count small.
    assert!(iterations["cg+spectral"] < iterations["cg+jacobi"] / 3, "{iterations:?}");
    assert!(iterations["cg+spectral"] < 40, "{iterations:?}");
}

/// For a diffusivity spanning two decades, scaling the spectral preconditioner cell by cell
/// by the ratio of the Laplacian's diagonal to the matrix's
/// ([`Preconditioner::scaled_spectral`]) cuts BiCGSTAB's iterations (measured at 32², relative residual 1e-9: 18
/// against 477), and the solution agrees with Cholesky's.
#[test]
fn the_scaled_spectral_preconditioner_follows_the_diffusivity() {
    let g = grid_with(&[BoundaryKind::Neumann, BoundaryKind::Neumann], 32);
    let a = ScalarField::from_fn(&g, |p| 10f64.powf(2.0 * p[0] * p[1]));
    let shift = 1.0;
    let sys = assemble(
        &g,
        &OperatorSpec::default()
            .with_diffusion(Coefficient::Field(a))
            .with_reaction(Coefficient::Constant(shift)),
        &BoundaryConditions::homogeneous(&g),
    )
    .unwrap();
    let f: Vec<f64> = (0..g.num_cells()).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect();
    let mut reference = vec![0.0; f.len()];
    Cholesky::new(&sys.matrix).unwrap().solve(&f, &mut reference).unwrap();
    let laplacian = g.spacing().iter().map(|h| 2.0 / (h * h)).sum::<f64>() + shift;
    let mut diagonal = vec![0.0; f.len()];
    let m = &sys.matrix;
    let (cp, ri, val) = (m.symbolic().col_ptr(), m.symbolic().row_idx(), m.val());
    for j in 0..m.ncols() {
        for k in cp[j]..cp[j + 1] {
            if ri[k] == j {
                diagonal[j] += val[k];
            }
        }
    }
    let weights: Vec<f64> = diagonal.iter().map(|d| laplacian / d).collect();
    let settings = KrylovSettings { rel_tolerance: 1e-9, max_iterations: 2000 };
    let mut iterations = Vec::new();
    for scaled in [false, true] {
        let poisson = PoissonSolver::new(&g, shift, Symbol::Discrete).unwrap();
        let pre = if scaled {
            Preconditioner::scaled_spectral(poisson, weights.clone())
        } else {
            Preconditioner::spectral(poisson, 1.0)
        };
        let mut solver = BiCgStab::new(sys.matrix.clone(), pre, settings);
        let mut x = vec![0.0; f.len()];
        let rep = solver.solve(&f, &mut x).unwrap();
        assert!(rep.residual <= 1e-9, "residual {}", rep.residual);
        let diff = x.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let size = reference.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(diff < 1e-6 * size, "differs from Cholesky by {diff:e}");
        iterations.push(rep.iterations);
    }
    eprintln!("BiCGSTAB iterations, spectral and scaled spectral: {iterations:?}");
    assert!(2 * iterations[1] < iterations[0], "{iterations:?}");
}

#[test]
fn non_convergence_is_an_error() {
    let (_, sys, f) = test_system(32, &[BoundaryKind::Dirichlet; 2], 1.0);
    let mut cg = Cg::new(
        sys.matrix.clone(),
        Preconditioner::None,
        KrylovSettings { rel_tolerance: 1e-12, max_iterations: 3 },
    );
    let mut x = vec![0.0; f.len()];
    let e = cg.solve(&f, &mut x).unwrap_err().to_string();
    assert!(e.contains("did not converge"), "{e}");
    let mut bi = BiCgStab::new(
        sys.matrix.clone(),
        Preconditioner::None,
        KrylovSettings { rel_tolerance: 1e-12, max_iterations: 2 },
    );
    assert!(bi.solve(&f, &mut x).unwrap_err().to_string().contains("did not converge"));
    // Singular matrix (pure Neumann, no reaction): Cholesky refuses or reports inaccuracy.
    let (_, sing, f2) = test_system(8, &[BoundaryKind::Neumann; 2], 1.0);
    let r = Cholesky::new(&sing.matrix).and_then(|mut c| c.solve(&f2, &mut vec![0.0; f2.len()]));
    assert!(r.is_err(), "singular system must not be reported as solved");
    // Wrong sizes and NaN.
    assert!(cg.solve(&f[1..], &mut x).is_err());
    let mut bad = f.clone();
    bad[0] = f64::NAN;
    assert!(cg.solve(&bad, &mut x).unwrap_err().to_string().contains("NaN"));
}

/// Refactorisation reuses the symbolic analysis and gives the new matrix's solution.
#[test]
fn refactor_reuses_the_pattern() {
    use BoundaryKind::*;
    let (_, sys1, f) = test_system(24, &[Dirichlet, Periodic], 1.0);
    let (_, sys2, _) = test_system(24, &[Dirichlet, Periodic], 3.0);
    let mut chol = Cholesky::new(&sys1.matrix).unwrap();
    let mut x1 = vec![0.0; f.len()];
    chol.solve(&f, &mut x1).unwrap();
    chol.refactor(&sys2.matrix).unwrap();
    let mut x2 = vec![0.0; f.len()];
    chol.solve(&f, &mut x2).unwrap();
    // a scaled by 3 ⇒ u scaled by 1/3.
    for (a, b) in x1.iter().zip(&x2) {
        assert!((a / 3.0 - b).abs() < 1e-10 * a.abs().max(1e-3));
    }
    let mut lu = Lu::new(&sys1.matrix).unwrap();
    lu.refactor(&sys2.matrix).unwrap();
    // The solve after a refactorisation is checked against the new matrix (it once was
    // checked against the first one and reported a spurious inaccuracy).
    let mut x3 = vec![0.0; f.len()];
    let report = lu.solve(&f, &mut x3).unwrap();
    assert!(report.residual < 1e-12);
    for (a, b) in x2.iter().zip(&x3) {
        assert!((a - b).abs() < 1e-10 * a.abs().max(1e-3));
    }
    let (_, other, _) = test_system(24, &[Dirichlet, Neumann], 1.0);
    assert!(chol.refactor(&other.matrix).is_err(), "different pattern");
}

#[test]
fn bad_operator_input_is_rejected() {
    use BoundaryKind::*;
    let g = grid_with(&[Neumann, Periodic], 8);
    let neg = OperatorSpec::default().with_diffusion(Coefficient::Constant(-1.0));
    let e = assemble(&g, &neg, &BoundaryConditions::homogeneous(&g)).unwrap_err().to_string();
    assert!(e.contains("diffusion coefficient must be positive"), "{e}");
    let bad_bc = BoundaryConditions::homogeneous(&g).set(
        1,
        0,
        FaceCondition::Dirichlet(BoundaryValue::Constant(0.0)),
    );
    let e = assemble(&g, &OperatorSpec::laplacian(), &bad_bc).unwrap_err().to_string();
    assert!(e.contains("axis y is periodic"), "{e}");
    let nan = OperatorSpec::laplacian().with_reaction(Coefficient::Constant(f64::NAN));
    assert!(assemble(&g, &nan, &BoundaryConditions::homogeneous(&g)).is_err());
    let other = grid_with(&[Neumann, Periodic], 16);
    let wrong =
        OperatorSpec::default().with_diffusion(Coefficient::Field(ScalarField::zeros(&other)));
    assert!(assemble(&g, &wrong, &BoundaryConditions::homogeneous(&g)).is_err());
}

/// The drift–diffusion term against the Scharfetter–Gummel fluxes written out face by face
/// (a periodic and a no-flux axis, a potential and a drift): `L ρ` agrees to round-off, the
/// columns sum to zero (mass), the off-diagonal entries are non-positive (M-matrix), and
/// with β = 0 the profile `e^{−V/D}` is in the kernel.
#[test]
fn drift_diffusion_matches_the_face_fluxes() {
    use crate::grid::Axis;
    let grid = Grid::new(vec![
        Axis { cells: 7, lower: 0.0, upper: 1.0, boundary: BoundaryKind::Periodic },
        Axis { cells: 5, lower: -1.0, upper: 0.5, boundary: BoundaryKind::Neumann },
    ])
    .unwrap();
    let dc = 0.3;
    let potential = ScalarField::from_fn(&grid, |p| (2.0 * PI * p[0]).sin() + p[1] * p[1]);
    let drift = VectorField::from_fn(&grid, |p, v| {
        v[0] = 0.4 + p[1];
        v[1] = -0.2 * p[0];
    });
    let rho = ScalarField::from_fn(&grid, |p| 1.0 + 0.5 * (3.0 * p[0] + p[1]).cos());
    let term = DriftDiffusion { diffusion: dc, potential: potential.clone(), drift: Some(drift) };
    let spec = OperatorSpec::default().with_drift_diffusion(term.clone());
    let k = assemble(&grid, &spec, &BoundaryConditions::homogeneous(&grid)).unwrap().matrix;
    let mut lr = vec![0.0; grid.num_cells()];
    matvec(&k, rho.data().as_slice().unwrap(), &mut lr);
    // Reference: every face once, its flux leaving `lo` and entering `hi`.
    let (v, r) = (potential.data(), rho.data());
    let b = term.drift.as_ref().unwrap().data();
    let mut reference = vec![0.0; grid.num_cells()];
    // Faces: along x every cell to its periodic right neighbour (h = 1/7); along y every
    // cell to the one above, the boundary faces carrying nothing (h = 0.3).
    let mut faces = Vec::new();
    for j in 0..5 {
        for i in 0..7 {
            faces.push(((j, i), (j, (i + 1) % 7), 0, 1.0 / 7.0));
            if j + 1 < 5 {
                faces.push(((j, i), (j + 1, i), 1, 0.3));
            }
        }
    }
    for ((lj, li), (hj, hi), a, h) in faces {
        let beta = 0.5 * (b[[lj, li, a]] + b[[hj, hi, a]]);
        let delta = (v[[hj, hi]] - v[[lj, li]] - h * beta) / dc;
        let flux = dc / h * (bernoulli(delta) * r[[lj, li]] - bernoulli(-delta) * r[[hj, hi]]);
        reference[lj * 7 + li] += flux / h;
        reference[hj * 7 + hi] -= flux / h;
    }
    let scale = reference.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (x, y) in lr.iter().zip(&reference) {
        assert!((x - y).abs() < 1e-12 * scale, "{x} vs {y}");
    }
    let mut columns = vec![0.0; grid.num_cells()];
    for (col, column) in columns.iter_mut().enumerate() {
        let range = k.col_ptr()[col]..k.col_ptr()[col + 1];
        for idx in range {
            let (row, value) = (k.row_idx()[idx], k.val()[idx]);
            *column += value;
            assert!(row == col || value <= 0.0, "positive off-diagonal ({row}, {col})");
        }
    }
    let largest = k.val().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(columns.iter().all(|c| c.abs() < 1e-13 * largest), "column sums {columns:?}");
    let still = DriftDiffusion { drift: None, ..term };
    let k = assemble(
        &grid,
        &OperatorSpec::default().with_drift_diffusion(still),
        &BoundaryConditions::homogeneous(&grid),
    )
    .unwrap()
    .matrix;
    let stationary =
        ScalarField::from_fn(&grid, |p| (-((2.0 * PI * p[0]).sin() + p[1] * p[1]) / dc).exp());
    matvec(&k, stationary.data().as_slice().unwrap(), &mut lr);
    let size = stationary.max() * largest;
    assert!(lr.iter().all(|x| x.abs() < 1e-13 * size), "stationary residual");
}
