//! The grids of Sinkhorn's multiscale hierarchy with both measures' cell weights on them,
//! built when first needed.

use super::super::fastmath::shift_ln;
use super::super::gibbs::TASK_CELLS;
use super::super::multilevel::{sample, Hierarchy};
use crate::error::Result;
use crate::field::ScalarField;
use crate::grid::Grid;
use rayon::prelude::*;

/// One grid of the multiscale hierarchy with the cell weights of both measures on it.
pub(super) struct Level {
    pub(super) grid: Grid,
    pub(super) log_a: Vec<f64>,
    pub(super) log_b: Vec<f64>,
    pub(super) a: Vec<f64>,
    pub(super) b: Vec<f64>,
}

impl Level {
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
        Level { grid: grid.clone(), log_a, log_b, a, b }
    }
}

/// The levels of a hierarchy for one problem: the finest carries the problem's densities,
/// the coarser ones their point values sampled there ([`sample`]).
pub(super) struct Levels<'a> {
    hierarchy: &'a Hierarchy,
    /// The source and target densities on the finest grid.
    densities: [&'a ScalarField; 2],
    built: Vec<Option<Level>>,
}

impl<'a> Levels<'a> {
    pub(super) fn new(hierarchy: &'a Hierarchy, densities: [&'a ScalarField; 2]) -> Levels<'a> {
        Levels { hierarchy, densities, built: hierarchy.grids().iter().map(|_| None).collect() }
    }

    /// Level `l` (built on first use).
    pub(super) fn at(&mut self, l: usize) -> Result<&Level> {
        if self.built[l].is_none() {
            let grid = &self.hierarchy.grids()[l];
            let [source, target] = self.densities;
            let level = if l == self.hierarchy.finest() {
                Level::new(grid, source, target)
            } else {
                let mu = sample(source, grid)?;
                let nu = sample(target, grid)?;
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
