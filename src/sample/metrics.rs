//! Distances between point sets (empirical measures with equal weights `1/n`).
//!
//! * [`w2_assignment`]: the exact empirical `W₂` between two sets of n points — the optimal
//!   assignment for the cost `|x_i − y_j|²`, by shortest augmenting paths with dual
//!   potentials (the Hungarian method in the Jonker–Volgenant form, O(n³) time, O(n²) memory
//!   for the cost matrix; refused beyond [`ASSIGNMENT_MAX`] points).
//! * [`sliced_w2`]: `SW₂² = E_θ W₂²(θ·X, θ·Y)` over directions θ on the sphere, each 1D
//!   distance by quantile matching (sorted projections), averaged over K directions drawn
//!   from a seeded ChaCha8 stream (reproducible). Any sizes.
//! * [`mmd_squared`]: the squared maximum mean discrepancy
//!   `MMD² = E k(X, X') + E k(Y, Y') − 2 E k(X, Y)` (V-statistic, all pairs) with a Gaussian
//!   kernel `exp(−|d|²/(2σ²))` or the energy-distance kernel `−|d|`. O(n m) time.
//!
//! Sums are over fixed chunks in order: the same result in every run.

use crate::error::{Error, Result};
use ndarray::{ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The largest point sets [`w2_assignment`] takes (its cost matrix: 8 n² bytes, 200 MB).
pub const ASSIGNMENT_MAX: usize = 5000;

pub(crate) fn check(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Result<()> {
    if a.ncols() != b.ncols() {
        return Err(Error::invalid(format!(
            "point sets of dimension {} and {}",
            a.ncols(),
            b.ncols()
        )));
    }
    if a.nrows() == 0 || b.nrows() == 0 {
        return Err(Error::invalid("an empty point set"));
    }
    if a.iter().chain(b.iter()).any(|v| !v.is_finite()) {
        return Err(Error::invalid("a point set has NaN or infinite coordinates"));
    }
    Ok(())
}

fn squared_distance(x: ndarray::ArrayView1<'_, f64>, y: ndarray::ArrayView1<'_, f64>) -> f64 {
    x.iter().zip(y.iter()).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// The exact `W₂` between the uniform measures on the rows of `a` and of `b` (equal counts
/// n ≤ [`ASSIGNMENT_MAX`]).
pub fn w2_assignment(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Result<f64> {
    check(a, b)?;
    let n = a.nrows();
    if b.nrows() != n {
        return Err(Error::invalid(format!(
            "the assignment W₂ needs equal numbers of points, got {n} and {} (use sliced_w2)",
            b.nrows()
        )));
    }
    if n > ASSIGNMENT_MAX {
        return Err(Error::invalid(format!(
            "the assignment W₂ takes at most {ASSIGNMENT_MAX} points, got {n} (use sliced_w2)"
        )));
    }
    let cost: Vec<f64> =
        (0..n * n).into_par_iter().map(|k| squared_distance(a.row(k / n), b.row(k % n))).collect();
    let assignment = assign(&cost, n);
    let total: f64 = assignment.iter().enumerate().map(|(i, &j)| cost[i * n + j]).sum();
    Ok((total / n as f64).max(0.0).sqrt())
}

/// The minimum-cost perfect assignment of the n × n `cost` (row i → column `result[i]`): for
/// each row in turn a shortest augmenting path (Dijkstra on reduced costs) with dual
/// potentials u (rows), v (columns).
fn assign(cost: &[f64], n: usize) -> Vec<usize> {
    // 1-based columns; column 0 is the virtual start of each path.
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; n + 1]);
    let mut row_of = vec![0usize; n + 1]; // row_of[j]: the row assigned to column j (1-based)
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=n {
                if !used[j] {
                    let reduced = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                    if reduced < min_to[j] {
                        min_to[j] = reduced;
                        way[j] = j0;
                    }
                    if min_to[j] < delta {
                        delta = min_to[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut result = vec![0usize; n];
    for j in 1..=n {
        result[row_of[j] - 1] = j - 1;
    }
    result
}

/// `W₂²` between the uniform measures on the values `x` and `y` (1D, any sizes): the
/// integral of the squared difference of their quantile functions (both sorted in place).
fn w2_squared_1d(x: &mut [f64], y: &mut [f64]) -> f64 {
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    let (n, m) = (x.len(), y.len());
    // Merge the breakpoints k/n and l/m of the two step quantile functions.
    let (mut i, mut j, mut at, mut sum) = (0usize, 0usize, 0.0f64, 0.0);
    while i < n && j < m {
        let next = ((i + 1) as f64 / n as f64).min((j + 1) as f64 / m as f64);
        sum += (next - at) * (x[i] - y[j]).powi(2);
        at = next;
        if (i + 1) as f64 / n as f64 <= next {
            i += 1;
        }
        if (j + 1) as f64 / m as f64 <= next {
            j += 1;
        }
    }
    sum
}

/// The sliced `W₂` over `directions` random directions (seeded) between the rows of `a` and
/// of `b`.
pub fn sliced_w2(
    a: ArrayView2<'_, f64>,
    b: ArrayView2<'_, f64>,
    directions: usize,
    seed: u64,
) -> Result<f64> {
    check(a, b)?;
    if directions == 0 {
        return Err(Error::invalid("sliced W₂ needs at least one direction"));
    }
    let d = a.ncols();
    let thetas: Vec<Vec<f64>> = {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..directions)
            .map(|_| loop {
                // Uniform on the sphere: a normalised Gaussian vector (Box–Muller).
                let v: Vec<f64> = (0..d)
                    .map(|_| {
                        let (u1, u2): (f64, f64) = (rng.random(), rng.random());
                        (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
                    })
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm > 1e-12 {
                    break v.into_iter().map(|x| x / norm).collect();
                }
            })
            .collect()
    };
    let project = |p: ArrayView2<'_, f64>, t: &[f64]| -> Vec<f64> {
        p.axis_iter(Axis(0)).map(|r| r.iter().zip(t).map(|(x, t)| x * t).sum()).collect()
    };
    let per: Vec<f64> =
        thetas.par_iter().map(|t| w2_squared_1d(&mut project(a, t), &mut project(b, t))).collect();
    Ok((per.iter().sum::<f64>() / directions as f64).sqrt())
}

/// The kernel of [`mmd_squared`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MmdKernel {
    /// `exp(−|d|²/(2σ²))`.
    Gaussian(f64),
    /// `−|d|` (MMD² is then the energy distance).
    Energy,
}

impl MmdKernel {
    fn eval(self, d2: f64) -> f64 {
        match self {
            MmdKernel::Gaussian(s) => (-d2 / (2.0 * s * s)).exp(),
            MmdKernel::Energy => -d2.sqrt(),
        }
    }
}

/// `Σ_i Σ_j k(x_i, y_j) / (n m)`, rows summed in order.
fn mean_kernel(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>, k: MmdKernel) -> f64 {
    let rows: Vec<f64> = (0..a.nrows())
        .into_par_iter()
        .map(|i| b.axis_iter(Axis(0)).map(|y| k.eval(squared_distance(a.row(i), y))).sum())
        .collect();
    rows.iter().sum::<f64>() / (a.nrows() * b.nrows()) as f64
}

/// The squared MMD (V-statistic) between the rows of `a` and of `b`.
pub fn mmd_squared(
    a: ArrayView2<'_, f64>,
    b: ArrayView2<'_, f64>,
    kernel: MmdKernel,
) -> Result<f64> {
    check(a, b)?;
    if let MmdKernel::Gaussian(s) = kernel {
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::invalid(format!("MMD: the Gaussian σ must be positive, got {s}")));
        }
    }
    Ok(mean_kernel(a, a, kernel) + mean_kernel(b, b, kernel) - 2.0 * mean_kernel(a, b, kernel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn cloud(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| rng.random::<f64>())
    }

    /// The assignment is optimal: equal to the brute-force minimum over all permutations
    /// (n ≤ 7, 2D and 3D, several seeds) to round-off.
    #[test]
    fn assignment_equals_brute_force() {
        fn permutations(k: usize, p: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            if k == p.len() {
                out.push(p.clone());
                return;
            }
            for i in k..p.len() {
                p.swap(k, i);
                permutations(k + 1, p, out);
                p.swap(k, i);
            }
        }
        for (n, d, seed) in [(1, 2, 1), (3, 2, 2), (5, 3, 3), (7, 2, 4), (7, 3, 5)] {
            let (a, b) = (cloud(n, d, seed), cloud(n, d, seed + 100));
            let mut all = vec![];
            permutations(0, &mut (0..n).collect(), &mut all);
            let best = all
                .iter()
                .map(|p| (0..n).map(|i| squared_distance(a.row(i), b.row(p[i]))).sum::<f64>())
                .fold(f64::INFINITY, f64::min);
            let w2 = w2_assignment(a.view(), b.view()).unwrap();
            assert!(
                (w2 * w2 * n as f64 - best).abs() < 1e-12,
                "n = {n}: {} against {best}",
                w2 * w2 * n as f64
            );
        }
    }

    /// The assignment W₂² equals POT's `ot.emd2` on the stored sets (benches/sample_reference.py
    /// calls POT; n = 40, 30, 64 in 2D / 3D) to 1e-10.
    #[test]
    fn assignment_equals_pots_emd2() {
        let table: serde_json::Value =
            serde_json::from_str(include_str!("../../benches/sample_reference.json")).unwrap();
        for case in table["cases"].as_array().unwrap() {
            let (n, d) =
                (case["n"].as_u64().unwrap() as usize, case["d"].as_u64().unwrap() as usize);
            let points = |key: &str| {
                let rows = case[key].as_array().unwrap();
                Array2::from_shape_fn((n, d), |(i, k)| rows[i][k].as_f64().unwrap())
            };
            let w2 = w2_assignment(points("a").view(), points("b").view()).unwrap();
            let pot = case["emd2"].as_f64().unwrap();
            assert!((w2 * w2 - pot).abs() < 1e-10, "n = {n}: {} against POT {pot}", w2 * w2);
        }
    }

    /// In 1D the assignment pairs sorted points, and the sliced distance of 1D sets is the
    /// same number; a translation by t gives SW₂² = |t|²/d (the mean of (θ·t)² over the
    /// sphere: to the Monte Carlo error of the directions), W₂ = |t|.
    #[test]
    fn closed_forms_one_dimension_and_translations() {
        let (a, b) = (cloud(300, 1, 7), cloud(300, 1, 8));
        let (mut x, mut y) = (a.column(0).to_vec(), b.column(0).to_vec());
        let exact = w2_squared_1d(&mut x, &mut y).sqrt();
        let w2 = w2_assignment(a.view(), b.view()).unwrap();
        assert!((w2 - exact).abs() < 1e-12, "{w2} {exact}");
        assert!((sliced_w2(a.view(), b.view(), 3, 1).unwrap() - exact).abs() < 1e-12);
        let a = cloud(400, 3, 9);
        let t = [0.3, -0.2, 0.1];
        let b = Array2::from_shape_fn((400, 3), |(i, k)| a[[i, k]] + t[k]);
        let norm2: f64 = t.iter().map(|v| v * v).sum();
        let w2 = w2_assignment(a.view(), b.view()).unwrap();
        assert!((w2 * w2 - norm2).abs() < 1e-12, "{w2}");
        let sw = sliced_w2(a.view(), b.view(), 4000, 3).unwrap();
        assert!(
            (sw * sw - norm2 / 3.0).abs() < 0.05 * norm2 / 3.0,
            "{} against {}",
            sw * sw,
            norm2 / 3.0
        );
        // Unequal sizes: a set against itself repeated twice is at distance 0.
        let twice = ndarray::concatenate(Axis(0), &[a.view(), a.view()]).unwrap();
        assert!(sliced_w2(a.view(), twice.view(), 10, 1).unwrap() < 1e-12);
        assert!(w2_assignment(a.view(), twice.view()).is_err());
    }

    /// The empirical W₂ between two independent n-samples of the uniform law decays at the
    /// known rates: n^{−1/2} in 1D, `(log n / n)^{1/2}` in 2D (Ajtai–Komlós–Tusnády). Mean
    /// over 4 seeds at n = 100, 400, 1600; the fitted rate of `W₂` in 1D, and of
    /// `W₂ / (log n)^{1/2}` in 2D, within 0.1 of 1/2.
    #[test]
    fn empirical_w2_decays_at_the_known_rates() {
        for d in [1, 2] {
            let ns = [100usize, 400, 1600];
            let w: Vec<f64> = ns
                .iter()
                .map(|&n| {
                    let mean = (0..4)
                        .map(|s| {
                            let (a, b) = (cloud(n, d, 1000 + s), cloud(n, d, 2000 + s));
                            w2_assignment(a.view(), b.view()).unwrap()
                        })
                        .sum::<f64>()
                        / 4.0;
                    if d == 2 {
                        mean / (n as f64).ln().sqrt()
                    } else {
                        mean
                    }
                })
                .collect();
            let rate = (w[0] / w[2]).ln() / (ns[2] as f64 / ns[0] as f64).ln();
            eprintln!("{d}D: W₂ (2D: / √log n) {w:?}, rate {rate}");
            assert!((rate - 0.5).abs() < 0.1, "{d}D: {w:?}, rate {rate}");
        }
    }

    /// MMD² vanishes between a set and itself, is symmetric and positive otherwise; with the
    /// energy kernel it is the energy distance `2E|X−Y| − E|X−X'| − E|Y−Y'|`; for two points
    /// it is `2 − 2k(x, y)` (Gaussian).
    #[test]
    fn mmd_properties_and_two_point_closed_form() {
        let (a, b) = (cloud(200, 2, 11), cloud(150, 2, 12));
        for k in [MmdKernel::Gaussian(0.2), MmdKernel::Energy] {
            assert!(mmd_squared(a.view(), a.view(), k).unwrap().abs() < 1e-12);
            let ab = mmd_squared(a.view(), b.view(), k).unwrap();
            let ba = mmd_squared(b.view(), a.view(), k).unwrap();
            assert!(ab > 0.0 && (ab - ba).abs() < 1e-12, "{k:?}: {ab} {ba}");
        }
        let x = ndarray::array![[0.0, 0.0]];
        let y = ndarray::array![[0.3, 0.4]];
        let g = mmd_squared(x.view(), y.view(), MmdKernel::Gaussian(0.5)).unwrap();
        assert!((g - (2.0 - 2.0 * (-0.25f64 / 0.5).exp())).abs() < 1e-14);
        let e = mmd_squared(x.view(), y.view(), MmdKernel::Energy).unwrap();
        assert!((e - 1.0).abs() < 1e-14, "{e}"); // 2 · 0.5
        assert!(mmd_squared(x.view(), y.view(), MmdKernel::Gaussian(0.0)).is_err());
    }
}
