use super::*;
use crate::analytic::manufactured::{error_norms, observed_orders, Manufactured};
use crate::field::ScalarField;
use crate::grid::{BoundaryKind, Grid};
use crate::operators::apply_shifted_laplacian;
use crate::operators::tests::{grid_with, kind_sets};

fn pseudo_random(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
        .collect()
}

/// The spectral solve is the exact inverse of the FD operator: ‖(−Δ_h + c)u − f‖ ≈ 1e-12 ‖f‖,
/// for every boundary mix, 2D and 3D, even and odd sizes, singular and shifted.
#[test]
fn solve_inverts_the_finite_difference_operator() {
    for dim in [2, 3] {
        for kinds in kind_sets(dim) {
            for n in [12usize, 15] {
                let g = grid_with(&kinds, n);
                for shift in [0.0, 1.5] {
                    let mut solver = PoissonSolver::new(&g, shift, Symbol::Discrete).unwrap();
                    let mut f = pseudo_random(g.num_cells(), n as u64);
                    if solver.is_singular() {
                        let mean = f.iter().sum::<f64>() / f.len() as f64;
                        f.iter_mut().for_each(|v| *v -= mean);
                    }
                    let mut u = vec![0.0; f.len()];
                    solver.solve(&f, &mut u).unwrap();
                    let mut back = vec![0.0; f.len()];
                    apply_shifted_laplacian(&g, shift, &u, &mut back);
                    let err = back.iter().zip(&f).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                    let scale = f.iter().map(|v| v.abs()).fold(0.0, f64::max);
                    assert!(
                        err < 1e-11 * scale,
                        "{dim}D {kinds:?} n={n} c={shift}: residual {err:e}"
                    );
                    if solver.is_singular() {
                        let mean = u.iter().sum::<f64>() / u.len() as f64;
                        assert!(
                            mean.abs() < 1e-12,
                            "singular solve returns the zero-mean solution"
                        );
                    }
                }
            }
        }
    }
}

/// Manufactured solutions, every boundary kind and mix, 2D and 3D, three grids:
/// observed order of the L2 and max error ≥ 1.9.
#[test]
fn manufactured_solutions_converge_at_second_order() {
    for dim in [2, 3] {
        for kinds in kind_sets(dim) {
            for shift in [0.0, 1.0] {
                let ns: &[usize] = if dim == 2 { &[32, 64, 128] } else { &[16, 32, 64] };
                let (mut h, mut el2, mut emax) = (vec![], vec![], vec![]);
                for &n in ns {
                    let g = grid_with(&kinds, n);
                    let m = Manufactured::for_grid(&g);
                    let mut solver = PoissonSolver::new(&g, shift, Symbol::Discrete)
                        .unwrap()
                        .with_mean_policy(MeanPolicy::Project);
                    let f = ScalarField::from_fn(&g, |p| -m.laplacian(p) + shift * m.value(p));
                    let mut exact = ScalarField::from_fn(&g, |p| m.value(p));
                    let u = solver.solve_field(&f).unwrap();
                    if solver.is_singular() {
                        crate::operators::remove_mean(exact.data_mut().view_mut());
                    }
                    let (l2, mx) = error_norms(
                        &g,
                        u.data().as_slice().unwrap(),
                        exact.data().as_slice().unwrap(),
                    );
                    h.push(g.axis(0).spacing());
                    el2.push(l2);
                    emax.push(mx);
                }
                for (what, e) in [("L2", &el2), ("max", &emax)] {
                    let orders = observed_orders(&h, e);
                    assert!(
                        orders.iter().all(|&p| p >= 1.9),
                        "{dim}D {kinds:?} c={shift} {what}: orders {orders:?}, errors {e:?}"
                    );
                }
            }
        }
    }
}

/// With the continuous symbol on a periodic box, a smooth periodic solution is recovered to
/// spectral accuracy.
#[test]
fn continuous_symbol_is_spectrally_accurate_on_the_torus() {
    for dim in [2, 3] {
        let g = grid_with(&vec![BoundaryKind::Periodic; dim], 32);
        let m = Manufactured::for_grid(&g);
        let mut solver = PoissonSolver::new(&g, 1.0, Symbol::Continuous).unwrap();
        let f = ScalarField::from_fn(&g, |p| -m.laplacian(p) + m.value(p));
        let exact = ScalarField::from_fn(&g, |p| m.value(p));
        let u = solver.solve_field(&f).unwrap();
        let (_, mx) =
            error_norms(&g, u.data().as_slice().unwrap(), exact.data().as_slice().unwrap());
        assert!(mx < 1e-10, "{dim}D spectral error {mx:e}");
    }
}

#[test]
fn nonzero_mean_is_rejected_or_projected() {
    let g = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
    let f = vec![1.0; g.num_cells()];
    let mut u = vec![0.0; g.num_cells()];
    let mut s = PoissonSolver::new(&g, 0.0, Symbol::Discrete).unwrap();
    let e = s.solve(&f, &mut u).unwrap_err().to_string();
    assert!(e.contains("mean") && e.contains("zero mean"), "{e}");
    let mut s = s.with_mean_policy(MeanPolicy::Project);
    s.solve(&f, &mut u).unwrap();
    assert!(u.iter().all(|v| v.abs() < 1e-14), "constant rhs projects to zero");
    // Dirichlet somewhere: not singular, any mean is fine.
    let gd = g.with_boundary(BoundaryKind::Dirichlet);
    let mut s = PoissonSolver::new(&gd, 0.0, Symbol::Discrete).unwrap();
    assert!(!s.is_singular());
    s.solve(&f, &mut u).unwrap();
    // Bad sizes and NaN are errors, not panics.
    assert!(s.solve(&f[1..], &mut u).is_err());
    let mut bad = f.clone();
    bad[3] = f64::NAN;
    assert!(s.solve(&bad, &mut u).unwrap_err().to_string().contains("NaN"));
    assert!(PoissonSolver::new(&g, f64::INFINITY, Symbol::Discrete).is_err());
}

/// A shift that lands exactly on an eigenvalue is reported as singular.
#[test]
fn shift_on_the_spectrum_is_refused() {
    let g = Grid::unit(2, 8, BoundaryKind::Dirichlet).unwrap();
    let h = g.axis(0).spacing();
    let lam0 = 2.0 * 4.0 / (h * h) * (std::f64::consts::PI / 16.0).sin().powi(2);
    let e = PoissonSolver::new(&g, -lam0, Symbol::Discrete).unwrap_err();
    assert!(e.to_string().contains("singular"));
}

/// The heat semigroup equals its dense reference `V e^{−tΛ} V⁻¹ f` built from the explicit
/// eigenvectors (cosines on Neumann axes, Fourier modes on periodic ones, continuous symbol)
/// to round-off, on mixed 2D grids of odd and even sizes; it keeps the sum, and
/// `t = 0` is the identity.
#[test]
fn heat_semigroup_matches_the_dense_eigen_reference() {
    use std::f64::consts::PI;
    for (kinds, nx, ny) in [
        ([BoundaryKind::Neumann, BoundaryKind::Neumann], 9usize, 8usize),
        ([BoundaryKind::Periodic, BoundaryKind::Neumann], 8, 7),
        ([BoundaryKind::Periodic, BoundaryKind::Periodic], 7, 10),
    ] {
        let axes = kinds
            .iter()
            .zip([nx, ny])
            .map(|(&k, n)| crate::grid::Axis { cells: n, lower: 0.0, upper: 1.3, boundary: k })
            .collect();
        let grid = Grid::new(axes).unwrap();
        let f = pseudo_random(nx * ny, 5);
        let t = 0.004;
        // Per axis: the dense 1D semigroup matrix from orthonormal eigenvectors.
        let dense_1d = |kind: BoundaryKind, n: usize| -> Vec<Vec<f64>> {
            let l = 1.3;
            let mut basis: Vec<(Vec<f64>, f64)> = Vec::new();
            match kind {
                BoundaryKind::Neumann => {
                    for k in 0..n {
                        let v: Vec<f64> = (0..n)
                            .map(|i| (PI * k as f64 * (i as f64 + 0.5) / n as f64).cos())
                            .collect();
                        basis.push((v, (PI * k as f64 / l).powi(2)));
                    }
                }
                _ => {
                    for k in 0..n {
                        let m = k.min(n - k) as f64;
                        let v: Vec<f64> = (0..n)
                            .map(|i| {
                                let a = 2.0 * PI * k as f64 * i as f64 / n as f64;
                                if k <= n / 2 {
                                    a.cos()
                                } else {
                                    a.sin()
                                }
                            })
                            .collect();
                        basis.push((v, (2.0 * PI * m / l).powi(2)));
                    }
                }
            }
            let mut h = vec![vec![0.0; n]; n];
            for (v, lambda) in &basis {
                let norm: f64 = v.iter().map(|x| x * x).sum();
                for i in 0..n {
                    for j in 0..n {
                        h[i][j] += (-t * lambda).exp() * v[i] * v[j] / norm;
                    }
                }
            }
            h
        };
        let (hx, hy) = (dense_1d(kinds[0], nx), dense_1d(kinds[1], ny));
        let mut reference = vec![0.0; nx * ny];
        for iy in 0..ny {
            for ix in 0..nx {
                let mut s = 0.0;
                for jy in 0..ny {
                    for jx in 0..nx {
                        s += hy[iy][jy] * hx[ix][jx] * f[jy * nx + jx];
                    }
                }
                reference[iy * nx + ix] = s;
            }
        }
        let mut solver = PoissonSolver::new(&grid, 0.0, Symbol::Continuous).unwrap();
        let mut out = vec![0.0; nx * ny];
        solver.heat(t, &f, &mut out).unwrap();
        let worst = out.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-13, "{kinds:?}: {worst}");
        let (sum_in, sum_out) = (f.iter().sum::<f64>(), out.iter().sum::<f64>());
        assert!((sum_in - sum_out).abs() < 1e-13, "{sum_in} {sum_out}");
        solver.heat(0.0, &f, &mut out).unwrap();
        assert!(out.iter().zip(&f).all(|(a, b)| (a - b).abs() < 1e-14));
        assert!(solver.heat(-1.0, &f, &mut out).is_err());
    }
}
