//! The sample side: maps computed on grids applied to points, and one-step generation
//! (exact draws from the source density pushed through the map).

use ndarray::{Array2, Axis};
use otgrid::ot::method::Settings;
use otgrid::ot::{Case, Method, Options};
use otgrid::sample::{draw, GridMap, Interpolation};

/// Deterministic points filling `[lo, hi]^2`.
fn points(n: usize, lo: f64, hi: f64) -> Array2<f64> {
    let mut p = Array2::zeros((n, 2));
    let mut state = 99u64;
    for v in p.iter_mut() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *v = lo + (hi - lo) * ((state >> 11) as f64 / (1u64 << 53) as f64);
    }
    p
}

/// RMS over `p` of `T(x) − exact(x)` for the map `t` (`[n][2]`, T at the rows of `p`).
fn rms_error(p: &Array2<f64>, t: &Array2<f64>, exact: &otgrid::ot::verify::Exact) -> f64 {
    let mut want = [0.0; 2];
    let mut sq = 0.0;
    for (x, tx) in p.axis_iter(Axis(0)).zip(t.axis_iter(Axis(0))) {
        exact.map(&[x[0], x[1]], &mut want);
        sq += (tx[0] - want[0]).powi(2) + (tx[1] - want[1]).powi(2);
    }
    (sq / p.nrows() as f64).sqrt()
}

/// Maps computed by Newton at 64², 128², 256² applied at points between the centres, against
/// their closed forms: on the smooth separable pair the error falls at second order (the
/// computed map's centred differences) with cubic and with linear interpolation, cubic the
/// closer; on the Poisson-sine → uniform pair (density vanishing at the faces, where the
/// solver's own map converges more slowly: orders 1.7, 1.2 at the centres) the error at
/// points stays within 1.3× the error at the centres: the interpolation adds nothing of
/// its own.
#[test]
fn computed_maps_reproduce_the_closed_form_at_points() {
    let solver = Method::NEWTON.configure(&Settings::default()).unwrap();
    let p = points(5000, 0.05, 0.95);
    for case in [Case::Separable2d, Case::PoissonUniform] {
        let exact = case.exact().unwrap();
        let mut errors = [vec![], vec![], vec![]];
        let mut hs = vec![];
        for n in [64, 128, 256] {
            let problem = case.problem(n).unwrap();
            let solution = solver.solve(&problem, &Options::default()).unwrap();
            assert!(solution.converged(), "{n}: {}", solution.stop_reason);
            let disp = solution.displacement(&problem);
            hs.push(problem.grid().max_spacing());
            for (k, interp) in [Interpolation::Cubic, Interpolation::Linear].into_iter().enumerate()
            {
                let map = GridMap::from_displacement(disp.clone(), interp).unwrap();
                errors[k].push(rms_error(&p, &map.apply(p.view()).unwrap(), &exact));
            }
            // At the centres inside the same window.
            let centres =
                otgrid::VectorField::from_fn(problem.grid(), |x, out| out.copy_from_slice(x));
            let c = centres.data().as_slice().unwrap();
            let c = Array2::from_shape_vec((problem.grid().num_cells(), 2), c.to_vec()).unwrap();
            let inside: Vec<usize> = (0..c.nrows())
                .filter(|&i| c.row(i).iter().all(|v| (0.05..=0.95).contains(v)))
                .collect();
            let ci = c.select(Axis(0), &inside);
            let map = solution.map(&problem);
            let m = map.data().as_slice().unwrap();
            let ti = Array2::from_shape_fn((inside.len(), 2), |(r, a)| m[2 * inside[r] + a]);
            errors[2].push(rms_error(&ci, &ti, &exact));
        }
        let orders = |e: &[f64]| -> Vec<f64> {
            (1..e.len()).map(|i| (e[i - 1] / e[i]).ln() / (hs[i - 1] / hs[i]).ln()).collect()
        };
        for (k, name) in ["cubic", "linear", "centres"].iter().enumerate() {
            eprintln!(
                "{}: {name}: RMS map errors {:?}, orders {:?}",
                case.name(),
                errors[k],
                orders(&errors[k])
            );
        }
        if case == Case::Separable2d {
            for (k, name) in ["cubic", "linear"].iter().enumerate() {
                let o = orders(&errors[k]);
                assert!(o.iter().all(|&o| o >= 1.8), "{name}: {:?}, orders {o:?}", errors[k]);
            }
            assert!(errors[0][2] < errors[1][2], "cubic {:?}, linear {:?}", errors[0], errors[1]);
        } else {
            for i in 0..3 {
                assert!(
                    errors[0][i] <= 1.3 * errors[2][i],
                    "points {:?} against centres {:?}",
                    errors[0],
                    errors[2]
                );
            }
        }
    }
}

/// 10⁵ exact draws from the source Gaussian pushed through Newton's computed Gaussian → Gaussian
/// map have the target's mean and covariance (the target as sampled on the grid) within 3
/// standard errors; the inverse map brings them back.
#[test]
fn generated_samples_have_the_targets_moments() {
    let case = Case::Gaussian2d;
    let problem = case.problem(256).unwrap();
    // Newton: its map is accurate to ~1e-5, far below the samples' standard errors (bfm's,
    // at its default tolerance, moves the x variance by ~1 %: about 3 standard errors).
    let solver = Method::NEWTON.configure(&Settings::default()).unwrap();
    let solution = solver.solve(&problem, &Options::default()).unwrap();
    let map =
        GridMap::from_displacement(solution.displacement(&problem), Interpolation::Cubic).unwrap();
    let n = 100_000;
    let x = draw(problem.source(), n, 11).unwrap();
    let y = map.apply(x.view()).unwrap();
    // The target's moments on the grid (piecewise-constant cells: + h²/12 on the variances).
    let grid = problem.grid();
    let nu = problem.target();
    let mass = nu.integral();
    let centres = otgrid::VectorField::from_fn(grid, |p, out| out.copy_from_slice(p));
    let c = centres.data().as_slice().unwrap();
    let w = nu.data().as_slice().unwrap();
    let mut mean = [0.0; 2];
    for (i, wi) in w.iter().enumerate() {
        for a in 0..2 {
            mean[a] += wi * c[2 * i + a] * grid.cell_volume() / mass;
        }
    }
    let mut cov = [[0.0; 2]; 2];
    for (i, wi) in w.iter().enumerate() {
        for a in 0..2 {
            for b in 0..2 {
                cov[a][b] +=
                    wi * (c[2 * i + a] - mean[a]) * (c[2 * i + b] - mean[b]) * grid.cell_volume()
                        / mass;
            }
        }
    }
    for (a, row) in cov.iter_mut().enumerate() {
        row[a] += grid.axis(a).spacing().powi(2) / 12.0;
    }
    let nf = n as f64;
    let sm: Vec<f64> = (0..2).map(|a| y.column(a).sum() / nf).collect();
    for a in 0..2 {
        let var = y.column(a).iter().map(|v| (v - sm[a]).powi(2)).sum::<f64>() / nf;
        let se = (var / nf).sqrt();
        assert!((sm[a] - mean[a]).abs() < 3.0 * se, "mean {a}: {} against {}", sm[a], mean[a]);
        for b in 0..2 {
            let prods: Vec<f64> =
                y.axis_iter(Axis(0)).map(|r| (r[a] - sm[a]) * (r[b] - sm[b])).collect();
            let sc = prods.iter().sum::<f64>() / nf;
            let var_c = prods.iter().map(|v| (v - sc).powi(2)).sum::<f64>() / nf;
            let se_c = (var_c / nf).sqrt();
            assert!(
                (sc - cov[a][b]).abs() < 3.0 * se_c,
                "cov {a}{b}: {sc} against {} (standard error {se_c:e})",
                cov[a][b]
            );
        }
    }
    let inverse = GridMap::from_map(&solution.inverse_map(&problem), Interpolation::Cubic).unwrap();
    let back = inverse.apply(y.view()).unwrap();
    let mut gaps: Vec<f64> = x
        .axis_iter(Axis(0))
        .zip(back.axis_iter(Axis(0)))
        .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
        .collect();
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    assert!(median < 1e-4, "median |T⁻¹(T(x)) − x| = {median:e}");
}

/// Plug-in maps: bfm between the source density and a KDE of n target samples (exact draws
/// from the target Gaussian on the grid) converges to the exact Gaussian map as n grows —
/// the map error (L2 over μ's bulk) falls with n: at 128², 8.4e-3 / 4.7e-3 / 1.9e-3 at
/// n = 10³ / 10⁴ / 10⁵, rate 0.32 (the KDE's n^{−1/3}; asserted ≥ 0.25; at 64² the bandwidth
/// reaches its one-cell floor by 10⁵ and the rate falls to 0.21).
#[test]
fn plug_in_maps_from_samples_converge_to_the_map() {
    use otgrid::ot::verify::map_error;
    let case = Case::Gaussian2d;
    let problem = case.problem(128).unwrap();
    let Some(otgrid::ot::verify::Exact::Gaussian(exact)) = case.exact() else { panic!() };
    let solver = Method::BFM.configure(&Settings::default()).unwrap();
    let (mut ns, mut errors) = (vec![], vec![]);
    for n in [1_000usize, 10_000, 100_000] {
        let y = draw(problem.target(), n, 21).unwrap();
        let (nu, _) = otgrid::sample::kde(y.view(), problem.grid(), None).unwrap();
        let plug_in = otgrid::ot::Problem::new(problem.source(), &nu).unwrap();
        let solution = solver.solve(&plug_in, &Options::default()).unwrap();
        let e = map_error(&solution, &problem, |x, out| exact.apply(x, out));
        ns.push(n as f64);
        errors.push(e.l2);
    }
    let overall = (errors[0] / errors[2]).ln() / (ns[2] / ns[0]).ln();
    eprintln!("plug-in map L2 errors {errors:?} at n = 1e3, 1e4, 1e5: rate {overall}");
    assert!(errors[1] < errors[0] && errors[2] < errors[1] && overall >= 0.25, "{errors:?}");
}

/// The sample-based parabolic flow (a fresh batch of 4000 exact samples per step, KDE of one
/// cell, `η_k = 0.01/√(k+1)`) on a Gaussian mixture over a uniform floor at 32² converges to
/// the map of the true density: the last iterate's μ-weighted L² distance to bfm's map falls
/// with the steps and ends within 1.5× bfm's own distance to Newton's map (the two
/// discretisations' difference) plus the bandwidth's bias (the map of `K_b ∗ ν` against
/// Newton's), and its distance to Newton's map (the flow's own discrete equation) ends below
/// twice that bias.
#[test]
fn the_sample_based_flow_converges_to_the_map_of_the_true_density() {
    use otgrid::field::ScalarField;
    use otgrid::grid::{BoundaryKind, Grid};
    use otgrid::ot::parabolic::{Batches, SampleStream};
    use otgrid::ot::{Newton, Parabolic, Problem, Schedule, Solver};
    let grid = Grid::unit(2, 32, BoundaryKind::Neumann).unwrap();
    let nu = otgrid::study::batches::mixture_on_floor(&grid);
    let problem = Problem::new(&ScalarField::from_fn(&grid, |_| 1.0), &nu).unwrap();
    let options = Options::default();
    let newton = Newton::default().solve(&problem, &options).unwrap();
    let bfm =
        Method::BFM.configure(&Settings::default()).unwrap().solve(&problem, &options).unwrap();
    assert!(newton.solved() && bfm.solved());
    let (t_newton, t_bfm) = (problem.map_of(&newton.p), problem.map_of(&bfm.p));
    let distance = |p: &ScalarField, t: &otgrid::field::VectorField| -> f64 {
        let m = problem.map_of(p);
        let sq: f64 = m.data().iter().zip(t.data().iter()).map(|(a, b)| (a - b).powi(2)).sum();
        (sq / grid.num_cells() as f64).sqrt() // μ uniform of unit mass on the unit square
    };
    let b = grid.max_spacing();
    let smoothed =
        Problem::new(problem.source(), &otgrid::sample::smooth(problem.target(), b).unwrap())
            .unwrap();
    let bias = distance(&Newton::default().solve(&smoothed, &options).unwrap().p, &t_newton);
    let discretisations = distance(&bfm.p, &t_newton);
    let (mut to_bfm, mut to_newton) = (vec![], vec![]);
    for steps in [25, 50, 200] {
        let mut batches = Batches::new(SampleStream::Density(nu.clone()), 4000);
        batches.bandwidth = Some(b);
        let flow = Parabolic {
            schedule: Schedule::InverseSqrt(0.01),
            max_iterations: Some(steps),
            batches: Some(batches),
            ..Default::default()
        };
        let s = flow.solve(&problem, &options).unwrap();
        assert_eq!(s.iterations, steps);
        to_bfm.push(distance(&s.p, &t_bfm));
        to_newton.push(distance(&s.p, &t_newton));
    }
    eprintln!(
        "sample-based flow after 25/50/200 steps: to bfm's map {to_bfm:?}, to Newton's \
         {to_newton:?}; bfm–Newton {discretisations:.3e}, bandwidth bias {bias:.3e}"
    );
    assert!(to_bfm[1] < to_bfm[0] && to_bfm[2] < to_bfm[1], "{to_bfm:?}");
    assert!(to_bfm[2] < 1.5 * (discretisations + bias), "{to_bfm:?}");
    assert!(to_newton[2] < 2.0 * bias, "{to_newton:?} against bias {bias}");
}
