//! The Sinkhorn divergence's symmetric problems: `S_ε(μ, ν) = OT_ε(μ, ν) − (OT_ε(μ, μ) +
//! OT_ε(ν, ν))/2` removes the entropic bias (S_ε ≥ 0, zero iff μ = ν; for the cost
//! |x−y|²/2, `2 S_ε → W₂²` with an O(ε²) error where `2 OT_ε` has an O(ε log ε) one).

use super::super::gibbs::{update, SoftTransform, TASK_CELLS};
use super::levels::Levels;
use super::{dual_value, marginal_error};
use crate::error::Result;
use rayon::prelude::*;

/// Most iterations of the symmetric problems behind the Sinkhorn divergence.
const SYMMETRIC_ITERATIONS: usize = 1000;

/// `OT_ε(α, α)` by the averaged symmetric iteration `f ← (f + T_ε(f))/2` (Feydy et al.,
/// AISTATS 2019), which converges fast, from `f` (updated in place); `OT_ε(α, α) = 2 Σ f a`.
/// Stops when the marginal error `Σ a |exp((f − T_ε f)/ε) − 1|` is at most `tolerance`.
pub(super) fn symmetric_ot(
    kernel: &dyn SoftTransform,
    log_a: &[f64],
    a: &[f64],
    tolerance: f64,
    f: &mut [f64],
) -> Result<f64> {
    let (mut t, mut terms) = (Vec::with_capacity(f.len()), Vec::with_capacity(f.len()));
    for _ in 0..SYMMETRIC_ITERATIONS {
        update(kernel, f, log_a, &mut t)?;
        let error = marginal_error(kernel, (f, &t, a), &mut terms);
        tracing::trace!("symmetric problem: marginal error {error:.3e}");
        f.par_chunks_mut(TASK_CELLS)
            .zip(t.par_chunks(TASK_CELLS))
            .for_each(|(f, t)| f.iter_mut().zip(t).for_each(|(f, t)| *f = 0.5 * (*f + t)));
        if error <= tolerance {
            break;
        }
    }
    Ok(2.0 * dual_value(kernel, (f, a), (&[], &[]), &mut terms))
}

/// `(OT_ε(μ, μ), OT_ε(ν, ν))` at `epsilon`, solved on `final_levels` coarse to fine (each
/// from the interpolated coarser potential; the first from `−(ε/2) log α`), to `tolerance`
/// on the finest level and ten times it on coarser ones.
pub(super) fn self_transport(
    levels: &mut Levels,
    final_levels: &[usize],
    epsilon: f64,
    tolerance: f64,
) -> Result<(f64, f64)> {
    // (At least 1e-10: a run stopped by its iteration limit may pass a tolerance of 0.)
    let symmetric_tolerance = tolerance.max(1e-10);
    let (hierarchy, layout) = (levels.hierarchy(), levels.layout());
    let finest = hierarchy.finest();
    let mut values = [0.0; 2];
    let mut sym: [Vec<f64>; 2] = Default::default();
    for (i, &l) in final_levels.iter().enumerate() {
        let level = levels.at(l)?;
        let kernel = layout.kernel(&level.grid, epsilon)?;
        let tol = if l == finest { symmetric_tolerance } else { 10.0 * symmetric_tolerance };
        for (side, f) in sym.iter_mut().enumerate() {
            let (log_w, w) =
                if side == 0 { (&level.log_a, &level.a) } else { (&level.log_b, &level.b) };
            *f = if i == 0 {
                // OT_ε(α, α)'s potential is −(ε/2) log α up to a constant and O(ε²) where α
                // is smooth (the plan is α blurred by the kernel); where α vanishes the
                // potential does not enter the iteration.
                let half = -0.5 * epsilon;
                log_w.iter().map(|l| if l.is_finite() { half * l } else { 0.0 }).collect()
            } else {
                layout.lift(hierarchy, std::mem::take(f), final_levels[i - 1], l)?
            };
            values[side] = symmetric_ot(kernel.as_ref(), log_w, w, tol, f)?;
        }
    }
    Ok((values[0], values[1]))
}
