//! Grid hierarchies for multilevel OT solvers: coarser grids (every even axis halved),
//! densities cell-averaged onto them (mass-conserving restriction) and potentials
//! interpolated back (cubic prolongation, second order in the gradient, i.e. the map).

use crate::error::Result;
use crate::field::ScalarField;
use crate::grid::{Axis, Grid};
use rayon::prelude::*;

/// Cell-averages a density onto `coarse` (each coarse cell covers 2 fine cells per axis that
/// was halved, 1 otherwise).
pub(crate) fn restrict(fine: &ScalarField, coarse: &Grid) -> Result<ScalarField> {
    let fg = fine.grid();
    let d = fg.dim();
    let ratio: Vec<usize> = (0..d).map(|a| fg.axis(a).cells / coarse.axis(a).cells).collect();
    let fshape = fg.shape();
    let cshape = coarse.shape();
    let f = fine.data().as_slice().expect("contiguous");
    let values: Vec<f64> = (0..coarse.num_cells())
        .into_par_iter()
        .map(|flat| cell_average(flat, (&cshape, &fshape), &ratio, |i| f[i]))
        .collect();
    ScalarField::from_vec(coarse, values)
}

/// The mean of the fine cells under coarse cell `flat` (shapes x first; `ratio` fine cells
/// per coarse cell per axis), `fine(i)` the value of fine cell i, summed x fastest.
pub(crate) fn cell_average(
    flat: usize,
    (cshape, fshape): (&[usize], &[usize]),
    ratio: &[usize],
    fine: impl Fn(usize) -> f64,
) -> f64 {
    let d = ratio.len();
    let mut idx = [0usize; 3];
    let mut rest = flat;
    for a in 0..d {
        idx[a] = rest % cshape[a];
        rest /= cshape[a];
    }
    let count: usize = ratio.iter().product();
    let mut sum = 0.0;
    for sub in 0..count {
        let mut r = sub;
        let mut fflat = 0;
        let mut stride = 1;
        for a in 0..d {
            let o = r % ratio[a];
            r /= ratio[a];
            fflat += (idx[a] * ratio[a] + o) * stride;
            stride *= fshape[a];
        }
        sum += fine(fflat);
    }
    sum / count as f64
}

/// Points of [`prolong`]'s stencils: cubic, the gradient (the map) second order.
pub(crate) const PROLONG_POINTS: usize = 4;

/// Points of [`sample`]'s stencils: quintic, sixth order. A coarse Sinkhorn solution meets
/// the coarse densities' marginals, so the finer grid starts at the L1 distance between its
/// densities and the coarse ones interpolated: on the reference Gaussian pair at 128² and
/// ε = 1e-3, 5e-6 with cubic sampling (4 iterations to 1e-6), 6e-7 with quintic (one).
pub(crate) const SAMPLE_POINTS: usize = 6;

/// Point values of a smooth density at the centres of `coarse` (each axis the same or
/// 2^k times fewer cells than `fine`'s), by 6-point quintic interpolation per halving
/// (coarse centres sit midway between two fine ones; one-sided stencils at non-periodic
/// ends), clamped at 0 and normalised to unit mass. Sixth order where [`restrict`]'s cell
/// average is second order: a coarse problem whose solution is a start for a finer one keeps
/// the fine densities' point values, not their blur.
pub(crate) fn sample(fine: &ScalarField, coarse: &Grid) -> Result<ScalarField> {
    let fg = fine.grid();
    let d = fg.dim();
    let mut shape = fg.storage_shape();
    let mut data: Vec<f64> = fine.data().iter().copied().collect();
    for a in 0..d {
        let k = d - 1 - a;
        let periodic = fg.axis(a).boundary.is_periodic();
        while shape[k] > coarse.axis(a).cells {
            // Coarse index i sits at fine coordinate 2i + ½.
            let m = shape[k] / 2;
            data = resample_axis(&data, &shape, k, periodic, SAMPLE_POINTS, m, |i| {
                2.0 * i as f64 + 0.5
            });
            shape[k] = m;
        }
    }
    data.iter_mut().for_each(|v| *v = v.max(0.0));
    let field = ScalarField::from_vec(coarse, data)?;
    let mass = field.integral();
    if !(mass > 0.0 && mass.is_finite()) {
        return restrict(fine, coarse);
    }
    ScalarField::from_vec(coarse, field.data().iter().map(|v| v / mass).collect())
}

/// Interpolates a coarse potential onto `fine`, whose axes have the same or twice as many
/// cells, by 4-point cubic Lagrange interpolation per doubled axis (fine centres sit at ±¼
/// of a coarse cell; one-sided stencils at non-periodic ends, wrapped on periodic axes).
/// Cubic accuracy keeps the gradient — the map — second-order accurate; multilinear
/// interpolation would leave an O(h) kink error in the map of every coarse cell.
pub(crate) fn prolong(coarse: &ScalarField, fine: &Grid) -> ScalarField {
    let cg = coarse.grid();
    let d = cg.dim();
    let mut shape = cg.storage_shape();
    let mut data: Vec<f64> = coarse.data().iter().copied().collect();
    for a in 0..d {
        let k = d - 1 - a;
        if fine.axis(a).cells == cg.axis(a).cells {
            continue;
        }
        let periodic = cg.axis(a).boundary.is_periodic();
        // Fine index 2i + s (s = 0, 1) sits at coarse coordinate i − ¼ + s/2.
        let m = 2 * shape[k];
        data = resample_axis(&data, &shape, k, periodic, PROLONG_POINTS, m, |i| {
            (i as f64 - 0.5) / 2.0
        });
        shape[k] = m;
    }
    ScalarField::from_vec(fine, data).expect("prolonged shape matches the fine grid")
}

/// The Lagrange stencil of [`resample_axis`] at source coordinate x on an axis of n points:
/// its first source index (wrapped on a periodic axis) and its `min(points, n)` weights.
pub(crate) fn stencil(n: usize, periodic: bool, points: usize, x: f64) -> (usize, Vec<f64>) {
    let p = points.min(n);
    let base = x.floor() as i64 - (p as i64 - 1) / 2;
    let first = if periodic { base } else { base.clamp(0, (n - p) as i64) };
    let t = x - first as f64;
    let weights = (0..p)
        .map(|j| {
            let others = (0..p).filter(|&l| l != j);
            others.map(|l| (t - l as f64) / (j as f64 - l as f64)).product::<f64>()
        })
        .collect();
    (first.rem_euclid(n as i64) as usize, weights)
}

/// Cells per parallel task of a resampling (a smaller array is resampled as one task).
const TASK_CELLS: usize = 16384;

/// Resamples storage axis `k` (length n) of a C-order array to `m` points, output i at source
/// coordinate `at(i)` (in cells of the source axis), by Lagrange interpolation on
/// `min(points, n)` source points: the stencil centred when possible, shifted inside at
/// non-periodic ends, wrapped on periodic axes.
pub(crate) fn resample_axis(
    data: &[f64],
    shape: &[usize],
    k: usize,
    periodic: bool,
    points: usize,
    m: usize,
    at: impl Fn(usize) -> f64,
) -> Vec<f64> {
    let n = shape[k];
    let inner: usize = shape[k + 1..].iter().product();
    let p = points.min(n);
    // Per output point: the first source index of its stencil, and its p weights.
    let mut firsts = Vec::with_capacity(m);
    let mut weights = Vec::with_capacity(m * p);
    for i in 0..m {
        let (first, w) = stencil(n, periodic, points, at(i));
        firsts.push(first);
        weights.extend(w);
    }
    let stencils = || firsts.iter().zip(weights.chunks(p));
    let mut out = vec![0.0; data.len() / n * m];
    // Per task: whole (outer) slabs of n·inner source values, m·inner output values.
    let slabs = (TASK_CELLS / (m * inner)).max(1);
    out.par_chunks_mut(slabs * m * inner).zip(data.par_chunks(slabs * n * inner)).for_each(
        |(dst, src)| {
            for (dst, src) in dst.chunks_mut(m * inner).zip(src.chunks(n * inner)) {
                if inner == 1 {
                    for (v, (&first, w)) in dst.iter_mut().zip(stencils()) {
                        *v = if first + p <= n {
                            w.iter().zip(&src[first..first + p]).map(|(w, s)| w * s).sum()
                        } else {
                            w.iter().enumerate().map(|(j, w)| w * src[(first + j) % n]).sum()
                        };
                    }
                    continue;
                }
                for (row, (&first, w)) in dst.chunks_mut(inner).zip(stencils()) {
                    row.fill(0.0);
                    for (j, wj) in w.iter().enumerate() {
                        let c = (first + j) % n;
                        let line = &src[c * inner..(c + 1) * inner];
                        row.iter_mut().zip(line).for_each(|(v, s)| *v += wj * s);
                    }
                }
            }
        },
    );
    out
}

/// A grid hierarchy for multilevel solves (bfm, Sinkhorn): a grid and its successive
/// halvings ([`coarsen`]) while an axis keeps at least `coarsest` cells, coarsest first.
pub(crate) struct Hierarchy {
    grids: Vec<Grid>,
}

impl Hierarchy {
    /// The hierarchy below `grid`, or `grid` alone when `multilevel` is false.
    pub(crate) fn new(grid: &Grid, coarsest: usize, multilevel: bool) -> Hierarchy {
        let mut grids = vec![grid.clone()];
        if multilevel {
            while let Some(c) = coarsen(grids.last().expect("non-empty"), coarsest) {
                grids.push(c);
            }
        }
        grids.reverse();
        Hierarchy { grids }
    }

    /// The hierarchy without its coarsest levels while `leave_out` holds for them (the
    /// problem's grid is always kept).
    pub(crate) fn without_coarsest(mut self, leave_out: impl Fn(&Grid) -> bool) -> Hierarchy {
        let drop = self.grids[..self.grids.len() - 1].iter().take_while(|g| leave_out(g)).count();
        self.grids.drain(..drop);
        self
    }

    /// The grids, coarsest first; the last one is the problem's.
    pub(crate) fn grids(&self) -> &[Grid] {
        &self.grids
    }

    /// The index of the finest level.
    pub(crate) fn finest(&self) -> usize {
        self.grids.len() - 1
    }

    /// Values on level `from` interpolated onto level `to` (≥ `from`), one doubling at a
    /// time ([`prolong`]).
    pub(crate) fn lift(&self, mut v: Vec<f64>, from: usize, to: usize) -> Result<Vec<f64>> {
        for l in from..to {
            let coarse = ScalarField::from_vec(&self.grids[l], v)?;
            v = prolong(&coarse, &self.grids[l + 1]).data().iter().copied().collect();
        }
        Ok(v)
    }
}

/// One stage of a multilevel solve: the level of the hierarchy it runs on and the method's
/// setting there (bfm: none, one stage per level; Sinkhorn: the ε of its scaling).
pub(crate) struct Stage<S> {
    pub(crate) level: usize,
    pub(crate) setting: S,
}

/// How a stage ended, for the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// Go on with the next stage.
    Next,
    /// End the schedule (budget, time limit, an observer's stop, divergence): the potential
    /// still goes to the finest level, through [`LevelSolver::finish`].
    Finish,
}

/// A method solved coarse to fine by [`drive`]: it owns its per-level data and state; the
/// driver owns the order of the stages and the transfer of the potential between levels.
pub(crate) trait LevelSolver {
    /// What a stage sets besides its level.
    type Setting;

    /// Runs stage `k` of the schedule (`last`: the final one) from `potential`, values on the
    /// stage's level (the previous stage's end, lifted by the driver if the level rose), and
    /// leaves its end there.
    fn run_stage(
        &mut self,
        k: usize,
        stage: &Stage<Self::Setting>,
        last: bool,
        potential: &mut Vec<f64>,
    ) -> Result<After>;

    /// After a stage below the finest level ended the schedule: `potential` has been lifted to
    /// the finest level; bring the method's state there (e.g. one iteration, unreported).
    fn finish(&mut self, potential: &mut Vec<f64>) -> Result<()>;

    /// `v` on level `from` interpolated onto level `to` ([`Hierarchy::lift`] on the whole
    /// grid; a decomposed solver lifts its own cells).
    fn lift(&self, hierarchy: &Hierarchy, v: Vec<f64>, from: usize, to: usize) -> Result<Vec<f64>> {
        hierarchy.lift(v, from, to)
    }
}

/// Runs `schedule` (levels non-decreasing, the last stage on the finest level) from `potential`
/// on the first stage's level: each stage in turn, lifting the potential ([`Hierarchy::lift`],
/// cubic) whenever the level rises. A stage that ends the schedule below the finest level has
/// its potential lifted to the finest and handed to [`LevelSolver::finish`]. Returns the
/// potential on the finest level.
pub(crate) fn drive<L: LevelSolver>(
    hierarchy: &Hierarchy,
    schedule: &[Stage<L::Setting>],
    mut potential: Vec<f64>,
    solver: &mut L,
) -> Result<Vec<f64>> {
    let finest = hierarchy.finest();
    let mut on = schedule.first().map_or(finest, |s| s.level);
    for (k, stage) in schedule.iter().enumerate() {
        debug_assert!(stage.level >= on, "a schedule's levels do not decrease");
        if stage.level != on {
            potential = solver.lift(hierarchy, potential, on, stage.level)?;
            on = stage.level;
        }
        let last = k + 1 == schedule.len();
        if solver.run_stage(k, stage, last, &mut potential)? == After::Finish && !last {
            if on != finest {
                potential = solver.lift(hierarchy, potential, on, finest)?;
                solver.finish(&mut potential)?;
            }
            return Ok(potential);
        }
    }
    Ok(potential)
}

/// One stage per level of `hierarchy`, coarsest first (the schedule of a method whose
/// levels differ only in their grid).
pub(crate) fn per_level(hierarchy: &Hierarchy) -> Vec<Stage<()>> {
    (0..hierarchy.grids().len()).map(|level| Stage { level, setting: () }).collect()
}

/// The grid with every axis of more than `2·min` cells (and even) halved.
pub(crate) fn coarsen(grid: &Grid, min: usize) -> Option<Grid> {
    let mut halved = false;
    let axes: Vec<Axis> = grid
        .axes()
        .iter()
        .map(|a| {
            if a.cells % 2 == 0 && a.cells / 2 >= min {
                halved = true;
                Axis { cells: a.cells / 2, ..a.clone() }
            } else {
                a.clone()
            }
        })
        .collect();
    if !halved {
        return None;
    }
    Grid::new(axes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::BoundaryKind;
    use crate::operators::gradient;
    use std::f64::consts::PI;

    /// Records what the driver hands each stage; ends the schedule at stage `end`.
    struct Recorder {
        end: Option<usize>,
        seen: Vec<(usize, usize, usize, f64)>,
        finished: Option<usize>,
    }

    impl LevelSolver for Recorder {
        type Setting = f64;
        fn run_stage(
            &mut self,
            k: usize,
            stage: &Stage<f64>,
            _: bool,
            potential: &mut Vec<f64>,
        ) -> Result<After> {
            self.seen.push((k, stage.level, potential.len(), stage.setting));
            // Each stage adds one: a lifted constant stays constant.
            potential.iter_mut().for_each(|v| *v += 1.0);
            Ok(if Some(k) == self.end { After::Finish } else { After::Next })
        }
        fn finish(&mut self, potential: &mut Vec<f64>) -> Result<()> {
            self.finished = Some(potential.len());
            Ok(())
        }
    }

    /// The driver runs the stages in order, lifts the potential exactly when the level
    /// rises (a constant stays constant under the cubic prolongation), and after an early
    /// end below the finest level lifts it to the finest and calls `finish` (not when the
    /// end is on the finest level).
    #[test]
    fn driver_runs_stages_in_order_and_lifts_between_levels() {
        let grid = Grid::unit(2, 64, BoundaryKind::Neumann).unwrap();
        let hierarchy = Hierarchy::new(&grid, 16, true);
        assert_eq!(hierarchy.grids().len(), 3);
        let cells: Vec<usize> = hierarchy.grids().iter().map(|g| g.num_cells()).collect();
        let schedule: Vec<Stage<f64>> = [(0, 0.4), (0, 0.2), (1, 0.1), (2, 0.1)]
            .iter()
            .map(|&(level, setting)| Stage { level, setting })
            .collect();
        let mut all = Recorder { end: None, seen: Vec::new(), finished: None };
        let end = drive(&hierarchy, &schedule, vec![0.0; cells[0]], &mut all).unwrap();
        let expected: Vec<_> = schedule
            .iter()
            .enumerate()
            .map(|(k, s)| (k, s.level, cells[s.level], s.setting))
            .collect();
        assert_eq!(all.seen, expected);
        assert_eq!(all.finished, None);
        assert_eq!(end.len(), cells[2]);
        assert!(end.iter().all(|v| (v - 4.0).abs() < 1e-12));

        let mut early = Recorder { end: Some(1), seen: Vec::new(), finished: None };
        let end = drive(&hierarchy, &schedule, vec![0.0; cells[0]], &mut early).unwrap();
        assert_eq!(early.seen.len(), 2);
        assert_eq!(early.finished, Some(cells[2]));
        assert!(end.len() == cells[2] && end.iter().all(|v| (v - 2.0).abs() < 1e-12));

        let mut at_finest = Recorder { end: Some(3), seen: Vec::new(), finished: None };
        drive(&hierarchy, &schedule, vec![0.0; cells[0]], &mut at_finest).unwrap();
        assert_eq!((at_finest.seen.len(), at_finest.finished), (4, None));
        assert_eq!(per_level(&hierarchy).iter().map(|s| s.level).collect::<Vec<_>>(), [0, 1, 2]);
    }

    /// Sampling onto a grid 4× coarser per axis reproduces the point values of a smooth
    /// density at sixth order (box and torus; the cell average is second order), keeps unit
    /// mass to round-off, and clamps the undershoot of a density with a hard edge at zero.
    #[test]
    fn sampling_is_sixth_order_and_keeps_mass_and_sign() {
        for kind in [BoundaryKind::Neumann, BoundaryKind::Periodic] {
            let rho = |x: &[f64]| {
                1.0 + 0.5 * (2.0 * PI * x[0]).sin() * (2.0 * PI * x[1]).cos()
                    + 0.2 * (4.0 * PI * x[1]).cos()
            };
            let errors: Vec<f64> = [24usize, 48, 96]
                .iter()
                .map(|&n| {
                    let fine = Grid::unit(2, 4 * n, kind).unwrap();
                    let coarse = Grid::unit(2, n, kind).unwrap();
                    let (density, mass) = ScalarField::from_fn(&fine, rho).to_density().unwrap();
                    let sampled = sample(&density, &coarse).unwrap();
                    assert!((sampled.integral() - 1.0).abs() < 1e-13);
                    let exact = ScalarField::from_fn(&coarse, rho);
                    sampled
                        .data()
                        .iter()
                        .zip(exact.data().iter())
                        .map(|(s, e)| (s * mass - e).abs())
                        .fold(0.0, f64::max)
                })
                .collect();
            for w in errors.windows(2) {
                let order = (w[0] / w[1]).log2();
                assert!(order >= 5.5, "{kind:?}: order {order} from {errors:?}");
            }
        }
        let fine = Grid::unit(2, 64, BoundaryKind::Neumann).unwrap();
        let coarse = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
        let edge = ScalarField::from_fn(&fine, |x| if x[0] < 0.5 { 1.0 } else { 0.0 });
        let sampled = sample(&edge.to_density().unwrap().0, &coarse).unwrap();
        assert!(sampled.data().iter().all(|v| *v >= 0.0));
        assert!((sampled.integral() - 1.0).abs() < 1e-13);
    }

    /// Cubic prolongation reproduces cubics per axis (one-sided stencils at the box's ends
    /// included), converges at fourth order in the values (torus) and keeps the gradient —
    /// the map the next level starts from — second-order accurate.
    #[test]
    fn cubic_prolongation_is_exact_for_cubics_and_of_its_order() {
        let cubic = |x: &[f64]| x[0].powi(3) - 2.0 * x[0] * x[1] * x[1] + 0.5 * x[1];
        let coarse = Grid::unit(2, 16, BoundaryKind::Neumann).unwrap();
        let fine = Grid::unit(2, 32, BoundaryKind::Neumann).unwrap();
        let p = prolong(&ScalarField::from_fn(&coarse, cubic), &fine);
        let exact = ScalarField::from_fn(&fine, cubic);
        let diff = p.data().iter().zip(exact.data().iter()).map(|(a, b)| (a - b).abs());
        assert!(diff.fold(0.0, f64::max) < 1e-13);
        let f = |x: &[f64]| (2.0 * PI * x[0]).sin() * (2.0 * PI * x[1]).cos();
        let max_diff = |a: ndarray::iter::Iter<'_, f64, _>, b: ndarray::iter::Iter<'_, f64, _>| {
            a.zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
        };
        let (mut values, mut gradients) = (Vec::new(), Vec::new());
        for n in [16usize, 32, 64] {
            let c = Grid::unit(2, n, BoundaryKind::Periodic).unwrap();
            let fg = Grid::unit(2, 2 * n, BoundaryKind::Periodic).unwrap();
            let p = prolong(&ScalarField::from_fn(&c, f), &fg);
            let exact = ScalarField::from_fn(&fg, f);
            values.push(max_diff(p.data().iter(), exact.data().iter()));
            let (g, ge) = (gradient(&p), gradient(&exact));
            gradients.push(max_diff(g.data().iter(), ge.data().iter()));
        }
        for (w, g) in values.windows(2).zip(gradients.windows(2)) {
            let order = (w[0] / w[1]).log2();
            assert!(order >= 3.85, "values: order {order} from {values:?}");
            let order = (g[0] / g[1]).log2();
            assert!(order >= 1.9, "gradient: order {order} from {gradients:?}");
        }
    }
}
