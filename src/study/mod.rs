//! Studies that combine the solvers into experiments with fitted rates: the sample-based
//! parabolic flow against a known target ([`batches`]), and the generalization of plug-in
//! maps for PDE-induced measures ([`generalization`]).

pub mod batches;
pub mod generalization;

pub use batches::{BatchStudy, BatchStudyResult};
pub use generalization::{GeneralizationResult, GeneralizationStudy, PdeTarget};

use crate::field::VectorField;
use crate::ot::Problem;

/// `(∫ |T − S|² dμ)^{1/2}` between two maps on `problem`'s grid.
pub(crate) fn map_distance(problem: &Problem, t: &VectorField, s: &VectorField) -> f64 {
    let d = problem.grid().dim();
    let (t, s) = (t.data(), s.data());
    let (t, s) = (t.as_slice().expect("contiguous"), s.as_slice().expect("contiguous"));
    let sum: f64 = problem
        .source()
        .data()
        .iter()
        .zip(t.chunks_exact(d).zip(s.chunks_exact(d)))
        .map(|(w, (a, b))| w * a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>())
        .sum();
    (sum * problem.grid().cell_volume()).sqrt()
}

/// Least-squares slope of `log y` against `log x` over the positive points.
pub(crate) fn slope(points: &[(f64, f64)]) -> f64 {
    let p: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if p.len() < 2 {
        return f64::NAN;
    }
    let n = p.len() as f64;
    let (mx, my) = p.iter().fold((0.0, 0.0), |a, q| (a.0 + q.0 / n, a.1 + q.1 / n));
    let sxy: f64 = p.iter().map(|q| (q.0 - mx) * (q.1 - my)).sum();
    let sxx: f64 = p.iter().map(|q| (q.0 - mx).powi(2)).sum();
    sxy / sxx
}
