//! Regularity estimators for the generalization study: the Hölder exponent of a map and the
//! doubling constant of a density, both from grid values.
//!
//! * [`holder_exponent`]: the oscillation `ω(r) = max_x max_e |T(x + r e) − T(x)|` over
//!   lattice offsets of 2^k cells along the axes and diagonals (4 directions in 2D, 13 in 3D,
//!   each with its opposite implied; a diagonal's difference scaled by r/|offset|), for radii
//!   `r = h·2^k`, and the least-squares slope
//!   of `log ω` against `log r` over the radii given: `ω(r) ≈ C r^α`. A C¹ map gives α = 1;
//!   the map from the uniform density to one ∝ `|x − ½|^a` is `1/(1+a)`-Hölder at x = ½.
//! * [`doubling_constant`]: `max μ(Q(x, 2r)) / μ(Q(x, r))` over cubes Q of half-width r
//!   (a whole number k of cells, centred at the cell corners, inside the box) for the given
//!   k, from a summed-area table of the cell masses (each cube's mass in O(2^d)). A density
//!   bounded between m and M has a constant ≤ 2^d M/m; `|x − ½|^a` in one variable gives
//!   `2^{a+1}` along that axis (and 2 along each other one).

use crate::error::{Error, Result};
use crate::field::{ScalarField, VectorField};

/// The fitted exponent and the oscillations `(r, ω(r))` it was fitted to.
#[derive(Clone, Debug)]
pub struct HolderEstimate {
    pub exponent: f64,
    pub oscillations: Vec<(f64, f64)>,
}

/// Lattice directions (one of each ± pair): the axes and the diagonals.
fn directions(d: usize) -> Vec<[i64; 3]> {
    let mut out = Vec::new();
    let range: &[i64] = &[-1, 0, 1];
    for &z in if d == 3 { range } else { &[0] } {
        for &y in range {
            for &x in range {
                let v = [x, y, z];
                // Keep the first non-zero component positive: one of each ± pair.
                match v.iter().find(|c| **c != 0) {
                    Some(&c) if c > 0 => out.push(v),
                    _ => {}
                }
            }
        }
    }
    out
}

/// The Hölder exponent of the map `t` (values at the cell centres) from its oscillation at
/// offsets of `2^k` cells for each k in `ks` (at least two; offsets along the box, not
/// wrapped: the grid's periodicity is not used).
pub fn holder_exponent(t: &VectorField, ks: &[u32]) -> Result<HolderEstimate> {
    let grid = t.grid();
    let d = grid.dim();
    if ks.len() < 2 {
        return Err(Error::invalid("the Hölder fit needs at least two radii"));
    }
    let h = grid.max_spacing();
    let shape: Vec<usize> = grid.axes().iter().map(|a| a.cells).collect();
    let data = t.data().as_slice().expect("contiguous");
    let strides = crate::operators::strides(grid);
    let mut oscillations = Vec::new();
    for &k in ks {
        let step = 1i64 << k;
        if shape.iter().any(|&n| step as usize >= n) {
            return Err(Error::invalid(format!("an offset of {step} cells does not fit the grid")));
        }
        let mut omega: f64 = 0.0;
        for e in directions(d) {
            let off: Vec<i64> = (0..d).map(|a| e[a] * step).collect();
            let dist = (0..d)
                .map(|a| (off[a] as f64 * grid.axis(a).spacing()).powi(2))
                .sum::<f64>()
                .sqrt();
            for flat in 0..grid.num_cells() {
                let mut rest = flat;
                let mut other = 0i64;
                let mut inside = true;
                for a in 0..d {
                    let i = (rest % shape[a]) as i64;
                    rest /= shape[a];
                    let j = i + off[a];
                    if j < 0 || j >= shape[a] as i64 {
                        inside = false;
                        break;
                    }
                    other += j * strides[a] as i64;
                }
                if !inside {
                    continue;
                }
                let o = other as usize;
                let diff = (0..d)
                    .map(|c| (data[flat * d + c] - data[o * d + c]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                // Normalised to the nominal radius r = 2^k h (diagonals are √d longer).
                omega = omega.max(diff * (step as f64 * h / dist));
            }
        }
        if omega <= 0.0 {
            return Err(Error::invalid("the map does not vary: no Hölder exponent"));
        }
        oscillations.push((step as f64 * h, omega));
    }
    let n = oscillations.len() as f64;
    let (sx, sy) = oscillations.iter().fold((0.0, 0.0), |(a, b), (r, w)| (a + r.ln(), b + w.ln()));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = oscillations.iter().fold((0.0, 0.0), |(a, b), (r, w)| {
        (a + (r.ln() - mx) * (w.ln() - my), b + (r.ln() - mx).powi(2))
    });
    Ok(HolderEstimate { exponent: num / den, oscillations })
}

/// The doubling constant of the density `rho` over cubes of half-width k and 2k cells for
/// each k in `ks` (see the module documentation).
pub fn doubling_constant(rho: &ScalarField, ks: &[usize]) -> Result<f64> {
    let grid = rho.grid();
    let d = grid.dim();
    if rho.min() < 0.0 || rho.first_non_finite().is_some() {
        return Err(Error::invalid("the density must be finite and non-negative"));
    }
    let shape: Vec<usize> = grid.axes().iter().map(|a| a.cells).collect();
    // Summed-area table S with one extra row per axis: S[i] = Σ_{j < i} m_j (cell masses).
    let ext: Vec<usize> = shape.iter().map(|n| n + 1).collect();
    let ext_strides: Vec<usize> = (0..d).map(|a| ext[..a].iter().product::<usize>()).collect();
    let total: usize = ext.iter().product();
    let mut table = vec![0.0f64; total];
    let values = rho.data().as_slice().expect("contiguous");
    let strides = crate::operators::strides(grid);
    for flat in 0..total {
        let mut rest = flat;
        let mut idx = [0usize; 3];
        for a in 0..d {
            idx[a] = rest % ext[a];
            rest /= ext[a];
        }
        if idx[..d].contains(&0) {
            continue;
        }
        // Inclusion–exclusion over the 2^d − 1 lower neighbours, plus the cell itself.
        let cell: usize = (0..d).map(|a| (idx[a] - 1) * strides[a]).sum();
        let mut sum = values[cell] * grid.cell_volume();
        for corner in 1..(1usize << d) {
            let mut at = flat;
            for a in 0..d {
                if (corner >> a) & 1 == 1 {
                    at -= ext_strides[a];
                }
            }
            let sign = if corner.count_ones() % 2 == 1 { 1.0 } else { -1.0 };
            sum += sign * table[at];
        }
        table[flat] = sum;
    }
    // Mass of the cube of cells [lo, hi) per axis.
    let mass = |lo: &[usize], hi: &[usize]| -> f64 {
        let mut m = 0.0;
        for corner in 0..(1usize << d) {
            let mut at = 0;
            let mut lows = 0;
            for a in 0..d {
                if (corner >> a) & 1 == 1 {
                    at += lo[a] * ext_strides[a];
                    lows += 1;
                } else {
                    at += hi[a] * ext_strides[a];
                }
            }
            m += if lows % 2 == 0 { table[at] } else { -table[at] };
        }
        m
    };
    let mut worst: f64 = 0.0;
    for &k in ks {
        if k == 0 || shape.iter().any(|&n| 4 * k > n) {
            return Err(Error::invalid(format!("a cube of 4×{k} cells does not fit the grid")));
        }
        // Centres: the cell corners c with the doubled cube [c − 2k, c + 2k) inside.
        let corners: Vec<usize> = shape.iter().map(|n| n - 4 * k + 1).collect();
        let count: usize = corners.iter().product();
        for flat in 0..count {
            let mut rest = flat;
            let (mut lo1, mut hi1, mut lo2, mut hi2) = ([0; 3], [0; 3], [0; 3], [0; 3]);
            for a in 0..d {
                let c = rest % corners[a] + 2 * k;
                rest /= corners[a];
                (lo1[a], hi1[a], lo2[a], hi2[a]) = (c - k, c + k, c - 2 * k, c + 2 * k);
            }
            let small = mass(&lo1[..d], &hi1[..d]);
            if small > 0.0 {
                worst = worst.max(mass(&lo2[..d], &hi2[..d]) / small);
            }
        }
    }
    if worst == 0.0 {
        return Err(Error::invalid("the density has no mass in any cube"));
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{BoundaryKind, Grid};

    /// The map from the uniform density to one ∝ |x − ½|^a (x only; y the identity):
    /// `T(u) = ½ + sign(u − ½)|2u − 1|^{1/(1+a)}/2`.
    fn power_map(a: f64) -> impl Fn(&[f64], &mut [f64]) {
        move |x, out| {
            let s = 2.0 * x[0] - 1.0;
            out[0] = 0.5 + 0.5 * s.signum() * s.abs().powf(1.0 / (1.0 + a));
            out[1] = x[1];
        }
    }

    /// Exponent 1 on a smooth map (affine plus a wiggle) and `1/(1+a)` on the power maps
    /// (a = 1, 2, 3), within 0.05, at 256².
    #[test]
    fn holder_exponents_of_closed_form_maps() {
        let g = Grid::unit(2, 256, BoundaryKind::Neumann).unwrap();
        let smooth = VectorField::from_fn(&g, |x, out| {
            out[0] = 0.8 * x[0] + 0.05 * (3.0 * x[1]).sin();
            out[1] = 1.2 * x[1] + 0.1 * x[0] * x[0];
        });
        let e = holder_exponent(&smooth, &[1, 2, 3, 4, 5]).unwrap();
        assert!((e.exponent - 1.0).abs() < 0.05, "smooth: {e:?}");
        for a in [1.0, 2.0, 3.0] {
            let t = VectorField::from_fn(&g, power_map(a));
            let e = holder_exponent(&t, &[1, 2, 3, 4, 5]).unwrap();
            eprintln!("a = {a}: exponent {:.4} (exact {:.4})", e.exponent, 1.0 / (1.0 + a));
            assert!((e.exponent - 1.0 / (1.0 + a)).abs() < 0.05, "a = {a}: {e:?}");
        }
        assert!(holder_exponent(&smooth, &[3]).is_err());
        assert!(holder_exponent(&smooth, &[3, 9]).is_err());
    }

    /// The doubling constant: 2^d = 4 for the uniform density, `2^{a+1} · 2` for `|x − ½|^a`
    /// (cubes centred at the singular line; the midpoint-sampled cells make it approximate:
    /// within 10 %), and at most `4 M/m` for a density between m and M.
    #[test]
    fn doubling_constants_of_closed_forms() {
        let g = Grid::unit(2, 128, BoundaryKind::Neumann).unwrap();
        let uniform = ScalarField::from_fn(&g, |_| 1.0);
        let c = doubling_constant(&uniform, &[1, 4, 16]).unwrap();
        assert!((c - 4.0).abs() < 1e-9, "{c}");
        for a in [1.0, 2.0] {
            let rho = ScalarField::from_fn(&g, |x| (x[0] - 0.5).abs().powf(a));
            let c = doubling_constant(&rho, &[4, 8, 16]).unwrap();
            let exact = 2f64.powf(a + 1.0) * 2.0;
            eprintln!("a = {a}: doubling {c:.4} (exact {exact})");
            assert!((c - exact).abs() < 0.1 * exact, "a = {a}: {c} against {exact}");
        }
        let bounded = ScalarField::from_fn(&g, |x| 1.0 + 0.5 * (6.0 * x[0]).sin() * x[1]);
        let c = doubling_constant(&bounded, &[1, 4, 16]).unwrap();
        assert!((4.0 - 1e-9..=4.0 * 1.5 / 0.5).contains(&c), "{c}");
        assert!(doubling_constant(&uniform, &[40]).is_err());
    }
}

#[cfg(test)]
mod computed {
    use super::*;
    use crate::grid::{BoundaryKind, Grid};
    use crate::ot::method::Settings;
    use crate::ot::{Method, Options, Problem};

    /// The exponent of the map bfm computes from the uniform density to one ∝ |x − ½|^a
    /// (a = 1, 2) at 256²: the closed form's `1/(1+a)` within 0.05.
    #[test]
    fn holder_exponent_of_a_computed_map() {
        let g = Grid::unit(2, 256, BoundaryKind::Neumann).unwrap();
        let bfm = Method::BFM.configure(&Settings::default()).unwrap();
        for a in [1.0, 2.0] {
            let mu = ScalarField::from_fn(&g, |_| 1.0);
            let nu = ScalarField::from_fn(&g, |x| (x[0] - 0.5).abs().powf(a));
            let problem = Problem::new(&mu, &nu).unwrap();
            let solution = bfm.solve(&problem, &Options::default()).unwrap();
            // (From 2 cells up: below, the grid smooths the singularity.)
            let e = holder_exponent(&solution.map(&problem), &[2, 3, 4, 5]).unwrap();
            eprintln!(
                "computed, a = {a}: exponent {:.4} (exact {:.4}); {:?}",
                e.exponent,
                1.0 / (1.0 + a),
                e.oscillations
            );
            assert!((e.exponent - 1.0 / (1.0 + a)).abs() < 0.05, "a = {a}: {e:?}");
        }
    }
}
