//! The grids of Sinkhorn's multiscale hierarchy with both measures' cell weights on them,
//! built when first needed, and where they live ([`Layout`]: the whole grid, or one rank's
//! slabs).

use super::super::fastmath::shift_ln;
use super::super::gibbs::{SoftTransform, WholeGrid, TASK_CELLS};
use super::super::multilevel::{sample, Hierarchy};
use crate::error::Result;
use crate::field::ScalarField;
use crate::grid::Grid;
use rayon::prelude::*;

/// Where a Sinkhorn solve's levels live: the whole grid ([`WholeLayout`]) or one rank's
/// slabs (`distributed::slab_sinkhorn`'s layout) — each level's cells in this process, its
/// sampled densities, its soft c-transform and the potentials' interpolation between levels.
/// Grids passed in are levels of the whole problem's hierarchy.
pub(crate) trait Layout {
    /// This process's part of `grid`.
    fn local_grid(&self, grid: &Grid) -> Result<Grid>;

    /// This process's cells of [`sample`]`(density, coarse)`, `density` this process's cells
    /// of the density on `fine`.
    fn sample(&self, fine: &Grid, density: &ScalarField, coarse: &Grid) -> Result<ScalarField>;

    /// The soft c-transform on `grid` at ε (a collective where the grid is decomposed).
    fn kernel(&self, grid: &Grid, eps: f64) -> Result<Box<dyn SoftTransform + '_>>;

    /// `v` (this process's cells of level `from`) interpolated onto level `to`.
    fn lift(&self, hierarchy: &Hierarchy, v: Vec<f64>, from: usize, to: usize) -> Result<Vec<f64>>;
}

/// Every level on the whole grid, in this process.
pub(super) struct WholeLayout;

impl Layout for WholeLayout {
    fn local_grid(&self, grid: &Grid) -> Result<Grid> {
        Ok(grid.clone())
    }

    fn sample(&self, _: &Grid, density: &ScalarField, coarse: &Grid) -> Result<ScalarField> {
        sample(density, coarse)
    }

    fn kernel(&self, grid: &Grid, eps: f64) -> Result<Box<dyn SoftTransform + '_>> {
        Ok(Box::new(WholeGrid::new(grid, eps)))
    }

    fn lift(&self, hierarchy: &Hierarchy, v: Vec<f64>, from: usize, to: usize) -> Result<Vec<f64>> {
        hierarchy.lift(v, from, to)
    }
}

/// One grid of the multiscale hierarchy with the cell weights of both measures on it (this
/// process's cells).
pub(super) struct Level {
    /// The level's grid (the whole problem's).
    pub(super) grid: Grid,
    /// This process's part of it.
    pub(super) local: Grid,
    pub(super) log_a: Vec<f64>,
    pub(super) log_b: Vec<f64>,
    pub(super) a: Vec<f64>,
    pub(super) b: Vec<f64>,
}

impl Level {
    /// The level on `grid` from this process's cells of both densities (fields on its part of
    /// `grid`).
    pub(super) fn new(grid: &Grid, source: &ScalarField, target: &ScalarField) -> Level {
        let vol = grid.cell_volume();
        // Weights and their logarithms (vectorised; zero weights give −∞, and the rare
        // subnormal ones libm's ln).
        let weights = |f: &ScalarField| -> (Vec<f64>, Vec<f64>) {
            let w: Vec<f64> =
                f.data().iter().map(|v| if *v > 0.0 { v * vol } else { 0.0 }).collect();
            let mut log = vec![0.0; w.len()];
            w.par_chunks(TASK_CELLS).zip(log.par_chunks_mut(TASK_CELLS)).for_each(|(w, l)| {
                shift_ln(w, 0.0, 1.0, l);
                for (l, w) in l.iter_mut().zip(w) {
                    if *w > 0.0 && *w < f64::MIN_POSITIVE {
                        *l = w.ln();
                    }
                }
            });
            (w, log)
        };
        let ((a, log_a), (b, log_b)) = (weights(source), weights(target));
        Level { grid: grid.clone(), local: source.grid().clone(), log_a, log_b, a, b }
    }
}

/// The levels of a hierarchy for one problem: the finest carries the problem's densities,
/// the coarser ones their point values sampled there ([`sample`]).
pub(super) struct Levels<'a> {
    hierarchy: &'a Hierarchy,
    layout: &'a dyn Layout,
    /// This process's cells of the source and target densities on the finest grid.
    densities: [&'a ScalarField; 2],
    built: Vec<Option<Level>>,
}

impl<'a> Levels<'a> {
    pub(super) fn new(
        hierarchy: &'a Hierarchy,
        layout: &'a dyn Layout,
        densities: [&'a ScalarField; 2],
    ) -> Levels<'a> {
        let built = hierarchy.grids().iter().map(|_| None).collect();
        Levels { hierarchy, layout, densities, built }
    }

    /// Where the levels live.
    pub(super) fn layout(&self) -> &'a dyn Layout {
        self.layout
    }

    /// Level `l` (built on first use).
    pub(super) fn at(&mut self, l: usize) -> Result<&Level> {
        if self.built[l].is_none() {
            let grid = &self.hierarchy.grids()[l];
            let [source, target] = self.densities;
            let level = if l == self.hierarchy.finest() {
                Level::new(grid, source, target)
            } else {
                let fine = &self.hierarchy.grids()[self.hierarchy.finest()];
                let mu = self.layout.sample(fine, source, grid)?;
                let nu = self.layout.sample(fine, target, grid)?;
                Level::new(grid, &mu, &nu)
            };
            self.built[l] = Some(level);
        }
        Ok(self.built[l].as_ref().expect("built"))
    }

    /// The hierarchy.
    pub(super) fn hierarchy(&self) -> &'a Hierarchy {
        self.hierarchy
    }
}
