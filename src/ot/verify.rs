//! Errors of a computed map against a closed-form Brenier map, measured as in
//! `../shared/reference/analytic-maps.md`: over the bulk (cells where μ exceeds 1% of its
//! maximum, which excludes the truncated tails of box problems) and weighted by μ.

use super::problem::{Problem, Solution};

/// Map errors over the bulk of μ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapError {
    /// `(∫_bulk |T − T_exact|² dμ / μ(bulk))^{1/2}`.
    pub l2: f64,
    /// `max_bulk |T − T_exact|`.
    pub max: f64,
    /// Fraction of μ's mass in the bulk.
    pub bulk_mass: f64,
}

/// Compares `solution.map()` with `exact` (writes T_exact(x) into its second argument).
pub fn map_error<F>(solution: &Solution, problem: &Problem, exact: F) -> MapError
where
    F: Fn(&[f64], &mut [f64]),
{
    let grid = problem.grid();
    let d = grid.dim();
    let map = solution.map();
    let t = map.data().as_slice().expect("contiguous");
    let mu = problem.source().data().as_slice().expect("contiguous");
    let peak = problem.source().max();
    let shape = grid.storage_shape();
    let (mut num, mut den, mut max, mut total) = (0.0, 0.0, 0.0f64, 0.0);
    let mut index = vec![0usize; d];
    let mut x = [0.0f64; 3];
    let mut y = [0.0f64; 3];
    for (flat, &m) in mu.iter().enumerate() {
        total += m;
        if m <= 0.01 * peak {
            continue;
        }
        let mut rest = flat;
        for k in (0..d).rev() {
            index[k] = rest % shape[k];
            rest /= shape[k];
        }
        grid.cell_center(&index, &mut x);
        exact(&x[..d], &mut y[..d]);
        let e2: f64 = (0..d).map(|a| (t[flat * d + a] - y[a]).powi(2)).sum();
        num += m * e2;
        den += m;
        max = max.max(e2.sqrt());
    }
    MapError { l2: (num / den).sqrt(), max, bulk_mass: den / total }
}
