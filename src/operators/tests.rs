use super::*;
use crate::analytic::manufactured::{error_norms, observed_orders, Manufactured};
use crate::grid::Axis;

pub(crate) fn grid_with(kinds: &[BoundaryKind], n: usize) -> Grid {
    // Different extents per axis so that axis mix-ups show.
    let extents = [(0.0, 1.0), (-0.5, 1.5), (0.25, 1.0)];
    Grid::new(
        kinds
            .iter()
            .enumerate()
            .map(|(a, &k)| Axis {
                cells: n * (4 + a) / 4,
                lower: extents[a].0,
                upper: extents[a].1,
                boundary: k,
            })
            .collect(),
    )
    .unwrap()
}

/// Every boundary-kind combination tested: each kind alone, and mixed.
pub(crate) fn kind_sets(dim: usize) -> Vec<Vec<BoundaryKind>> {
    use BoundaryKind::*;
    let mut v: Vec<Vec<BoundaryKind>> = BoundaryKind::ALL.iter().map(|&k| vec![k; dim]).collect();
    v.push([Periodic, Neumann, Dirichlet][..dim].to_vec());
    v.push([Dirichlet, Periodic, Neumann][..dim].to_vec());
    v
}

fn assert_order(what: &str, h: &[f64], e: &[f64], min: f64) {
    let orders = observed_orders(h, e);
    assert!(
        orders.iter().all(|&p| p >= min),
        "{what}: orders {orders:?} (errors {e:?}), need ≥ {min}"
    );
}

#[test]
fn weighted_laplacian_is_second_order_conservative_and_symmetric() {
    for dim in [2, 3] {
        for kinds in kind_sets(dim).into_iter().filter(|k| !k.contains(&BoundaryKind::Dirichlet)) {
            let ns: &[usize] = if dim == 2 { &[32, 64, 128] } else { &[24, 48, 96] };
            let (mut h, mut el2, mut emax) = (vec![], vec![], vec![]);
            for &n in ns {
                let g = grid_with(&kinds, n);
                let m = Manufactured::for_grid(&g);
                let u = ScalarField::from_fn(&g, |p| m.value(p));
                // The weight w = 1 + u² (positive, and with the grid's periodicity or zero
                // normal derivative); −∇·(w∇u) = −w Δu − ∇w·∇u = −w Δu − 2u |∇u|².
                let w = ScalarField::from_fn(&g, |p| 1.0 + m.value(p).powi(2));
                let exact = ScalarField::from_fn(&g, |p| {
                    let u = m.value(p);
                    let mut du = [0.0; 3];
                    m.gradient(p, &mut du[..dim]);
                    let grad2: f64 = du.iter().map(|v| v * v).sum();
                    -(1.0 + u * u) * m.laplacian(p) - 2.0 * u * grad2
                });
                let (ws, us) = (w.data().as_slice().unwrap(), u.data().as_slice().unwrap());
                let mut out = vec![0.0; g.num_cells()];
                apply_weighted_laplacian(&g, ws, us, &mut out);
                let (l2, mx) = error_norms(&g, &out, exact.data().as_slice().unwrap());
                h.push(g.axis(0).spacing());
                el2.push(l2);
                emax.push(mx);
                // Conservative: the image sums to zero (zero-flux or periodic faces only).
                let (total, scale) = out.iter().fold((0.0, 0.0), |(t, s), v| (t + v, s + v.abs()));
                assert!(total.abs() <= 1e-12 * scale, "{kinds:?}: sum {total} of {scale}");
                // Symmetric: ⟨A u, v⟩ = ⟨u, A v⟩.
                let v = ScalarField::from_fn(&g, |p| (3.0 * p[0]).sin() + p[1] * p[1]);
                let mut av = vec![0.0; g.num_cells()];
                apply_weighted_laplacian(&g, ws, v.data().as_slice().unwrap(), &mut av);
                let uav: f64 = us.iter().zip(&av).map(|(a, b)| a * b).sum();
                let vau: f64 = v.data().iter().zip(&out).map(|(a, b)| a * b).sum();
                assert!((uav - vau).abs() <= 1e-10 * uav.abs().max(1.0), "{uav} {vau}");
            }
            assert_order(&format!("{dim}D {kinds:?} L2"), &h, &el2, 1.9);
            assert_order(&format!("{dim}D {kinds:?} max"), &h, &emax, 1.9);
        }
    }
    // A constant weight is the plain Laplacian, on every kind (Dirichlet included).
    for kinds in kind_sets(2) {
        let g = grid_with(&kinds, 16);
        let u = ScalarField::from_fn(&g, |p| (p[0] * 3.0).cos() + p[1]);
        let us = u.data().as_slice().unwrap();
        let (mut a, mut b) = (vec![0.0; g.num_cells()], vec![0.0; g.num_cells()]);
        apply_weighted_laplacian(&g, &vec![2.5; g.num_cells()], us, &mut a);
        apply_shifted_laplacian(&g, 0.0, us, &mut b);
        assert!(a.iter().zip(&b).all(|(a, b)| (a - 2.5 * b).abs() <= 1e-9 * b.abs().max(1.0)));
    }
}

/// The row-wise weighted Laplacian equals the cell-by-cell flux sum (each cell's faces in
/// axis order, low face first) bit for bit, on every boundary-kind set in 2D and 3D.
#[test]
fn weighted_laplacian_rows_equal_the_cell_by_cell_reference() {
    for dim in [2, 3] {
        for kinds in kind_sets(dim) {
            let g = grid_with(&kinds, 9);
            let n = g.num_cells();
            let w: Vec<f64> = (0..n).map(|i| 1.0 + ((i * 7919) % 101) as f64 / 37.0).collect();
            let u: Vec<f64> = (0..n).map(|i| (((i * 31) % 97) as f64 / 13.0).sin()).collect();
            let mut fast = vec![0.0; n];
            apply_weighted_laplacian(&g, &w, &u, &mut fast);
            let axes = stencil_axes(&g);
            for (flat, f) in fast.iter().enumerate() {
                let mut acc = 0.0;
                for &(n, s, ih2, kind) in &axes {
                    let i = (flat / s) % n;
                    for up in [false, true] {
                        acc += match neighbour(flat, i, n, s, up, kind) {
                            Some(j) => 0.5 * (w[flat] + w[j]) * (u[flat] - u[j]),
                            None => {
                                w[flat] * (u[flat] - scalar_neighbour(&u, flat, i, n, s, up, kind))
                            }
                        } * ih2;
                    }
                }
                assert_eq!(f.to_bits(), acc.to_bits(), "{kinds:?} cell {flat}: {f} against {acc}");
            }
        }
    }
}

#[test]
fn laplacian_is_second_order_for_every_boundary_kind() {
    for dim in [2, 3] {
        for kinds in kind_sets(dim) {
            let ns: &[usize] = if dim == 2 { &[32, 64, 128] } else { &[20, 40, 80] };
            let (mut h, mut el2, mut emax) = (vec![], vec![], vec![]);
            for &n in ns {
                let g = grid_with(&kinds, n);
                let m = Manufactured::for_grid(&g);
                let u = ScalarField::from_fn(&g, |p| m.value(p));
                let exact = ScalarField::from_fn(&g, |p| -m.laplacian(p) + 2.0 * m.value(p));
                let mut out = vec![0.0; g.num_cells()];
                apply_shifted_laplacian(&g, 2.0, u.data().as_slice().unwrap(), &mut out);
                let (l2, mx) = error_norms(&g, &out, exact.data().as_slice().unwrap());
                h.push(g.axis(0).spacing());
                el2.push(l2);
                emax.push(mx);
            }
            // Truncation error: O(h²) in the interior; the ghost-cell Dirichlet face is O(1)
            // locally on one cell layer (global solution error stays O(h²), see spectral tests),
            // so the L2 truncation order there is ≥ 0.5 and we check the interior-sensitive L2
            // order only where no axis is Dirichlet.
            if !kinds.contains(&BoundaryKind::Dirichlet) {
                assert_order(&format!("{dim}D {kinds:?} L2"), &h, &el2, 1.9);
                assert_order(&format!("{dim}D {kinds:?} max"), &h, &emax, 1.9);
            }
        }
    }
}

#[test]
fn gradient_is_second_order_for_every_boundary_kind() {
    for dim in [2, 3] {
        for kinds in kind_sets(dim) {
            let ns: &[usize] = if dim == 2 { &[32, 64, 128] } else { &[20, 40, 80] };
            let (mut h, mut el2, mut emax) = (vec![], vec![], vec![]);
            for &n in ns {
                let g = grid_with(&kinds, n);
                let m = Manufactured::for_grid(&g);
                let u = ScalarField::from_fn(&g, |p| m.value(p));
                let exact = VectorField::from_fn(&g, |p, out| m.gradient(p, out));
                let got = gradient(&u);
                let (l2, mx) = error_norms(
                    &g,
                    got.data().as_slice().unwrap(),
                    exact.data().as_slice().unwrap(),
                );
                h.push(g.axis(0).spacing());
                el2.push(l2);
                emax.push(mx);
            }
            assert_order(&format!("{dim}D {kinds:?} gradient L2"), &h, &el2, 1.9);
            assert_order(&format!("{dim}D {kinds:?} gradient max"), &h, &emax, 1.9);
        }
    }
}

#[test]
fn divergence_of_exact_gradient_is_second_order() {
    for dim in [2, 3] {
        for kinds in kind_sets(dim) {
            let ns: &[usize] = if dim == 2 { &[32, 64, 128] } else { &[20, 40, 80] };
            let (mut h, mut el2) = (vec![], vec![]);
            for &n in ns {
                let g = grid_with(&kinds, n);
                let m = Manufactured::for_grid(&g);
                let v = VectorField::from_fn(&g, |p, out| m.gradient(p, out));
                let exact = ScalarField::from_fn(&g, |p| m.laplacian(p));
                let got = divergence(&v);
                let (l2, _) = error_norms(
                    &g,
                    got.data().as_slice().unwrap(),
                    exact.data().as_slice().unwrap(),
                );
                h.push(g.axis(0).spacing());
                el2.push(l2);
            }
            assert_order(&format!("{dim}D {kinds:?} divergence L2"), &h, &el2, 1.9);
        }
    }
}
