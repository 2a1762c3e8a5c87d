//! How a decomposed solve cuts a grid over the ranks — slabs along z, or y–z pencils — and
//! the grid operations each cut runs: one enum arm per cut, so a solve written against
//! [`Blocks`] runs on either.

use super::density::{pencil_density, slab_density};
use super::exchange::Exchange;
use super::jacobian::{pencil_change_of_variables, slab_change_of_variables};
use super::legendre::{pencil_c_transform, slab_c_transform};
use super::multilevel::{pencil_prolong, pencil_restrict, slab_prolong, slab_restrict};
use super::operators::{
    pencil_gradient, pencil_weighted_laplacian, slab_gradient, slab_weighted_laplacian,
};
use super::pencil_poisson::PencilPoissonSolver;
use super::poisson::SlabPoissonSolver;
use super::pushforward::{pencil_push_forward, slab_push_forward};
use super::sum::{pencil_sum, slab_sum};
use crate::error::Result;
use crate::field::ScalarField;
use crate::grid::{Grid, PencilDecomposition, SlabDecomposition};
use crate::spectral::{MeanPolicy, Symbol};

/// How a decomposed solve cuts each grid (each level of a hierarchy its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// A balanced slab decomposition along the last axis ([`SlabDecomposition`]).
    Slabs,
    /// Y–z pencils ([`PencilDecomposition::new`]; 3D only).
    Pencils,
}

/// Whether `grid` cuts over `ranks` ranks as `cut` says, with room for every operation of
/// [`Blocks`] (on pencils, the transposed boxes need at least `py` cells along x and `pz`
/// along y); the decomposition's one-line refusal if not.
pub fn fits(grid: &Grid, ranks: usize, cut: Cut) -> Result<()> {
    match Blocks::new(grid, ranks, cut)? {
        Blocks::Slabs(_) => super::pencil_columns(grid.axis(0).cells, ranks).map(|_| ()),
        Blocks::Pencils(p) => super::layout::PencilSpreads::new(&p).map(|_| ()),
    }
}

/// A grid cut over the ranks: which cells each rank holds, and the grid operations on those
/// blocks — each the serial operation's result to the bit.
#[derive(Clone, Debug)]
pub enum Blocks {
    /// Slabs along the last axis.
    Slabs(SlabDecomposition),
    /// Y–z pencils of a 3D grid.
    Pencils(PencilDecomposition),
}

impl Blocks {
    /// `grid` cut over `ranks` ranks as `cut` says.
    pub fn new(grid: &Grid, ranks: usize, cut: Cut) -> Result<Blocks> {
        Ok(match cut {
            Cut::Slabs => Blocks::Slabs(SlabDecomposition::new(grid, ranks)?),
            Cut::Pencils => Blocks::Pencils(PencilDecomposition::new(grid, ranks)?),
        })
    }

    /// Slabs while every rank gets a plane; beyond that y–z pencils on a 3D grid, else (2D)
    /// the slab decomposition's refusal.
    pub fn spread(grid: &Grid, ranks: usize) -> Result<Blocks> {
        match Blocks::new(grid, ranks, Cut::Slabs) {
            Err(e) if grid.dim() == 3 => {
                tracing::info!("{e}: running on y–z pencils");
                Blocks::new(grid, ranks, Cut::Pencils)
            }
            slabs => slabs,
        }
    }

    /// Which cut this is.
    pub fn cut(&self) -> Cut {
        match self {
            Blocks::Slabs(_) => Cut::Slabs,
            Blocks::Pencils(_) => Cut::Pencils,
        }
    }

    /// `rank`'s box: its planes, and on pencils its rows.
    pub fn window(&self, rank: usize) -> crate::grid::Window {
        match self {
            Blocks::Slabs(s) => s.window(rank),
            Blocks::Pencils(p) => p.window(rank),
        }
    }

    /// The planes along the last axis whose cells `rank` holds (some of them, on pencils).
    pub fn planes(&self, rank: usize) -> std::ops::Range<usize> {
        match self {
            Blocks::Slabs(s) => s.planes(rank),
            Blocks::Pencils(p) => p.planes(rank),
        }
    }

    /// The number of cells `rank` holds.
    pub fn len(&self, rank: usize) -> usize {
        match self {
            Blocks::Slabs(s) => s.cells(rank).len(),
            Blocks::Pencils(p) => p.len(rank),
        }
    }

    /// The decomposed grid.
    pub fn grid(&self) -> &Grid {
        match self {
            Blocks::Slabs(s) => s.grid(),
            Blocks::Pencils(p) => p.grid(),
        }
    }

    /// `values` (this rank's block) checked and normalised to unit mass over every rank
    /// ([`slab_density`], [`pencil_density`]): `(density, mass)`.
    pub fn density(
        &self,
        exchange: &impl Exchange,
        values: Vec<f64>,
        what: &str,
    ) -> Result<(Vec<f64>, f64)> {
        match self {
            Blocks::Slabs(s) => slab_density(exchange, s, values, what),
            Blocks::Pencils(p) => pencil_density(exchange, p, values, what),
        }
    }

    /// The whole field whose blocks the ranks hold, on every rank (one `Alltoallv` of N
    /// values per rank: for a one-off whole-grid check only).
    pub fn whole(&self, exchange: &impl Exchange, block: &[f64]) -> Result<ScalarField> {
        let ranks = exchange.size();
        let lens: Vec<usize> = (0..ranks).map(|r| self.len(r)).collect();
        let send: Vec<f64> = (0..ranks).flat_map(|_| block.iter().copied()).collect();
        let all = super::exchange_blocks(exchange, &send, &vec![block.len(); ranks], &lens);
        let mut whole = vec![0.0; self.grid().num_cells()];
        let cells = (0..ranks).flat_map(|r| self.cells(r));
        for (c, v) in cells.zip(all) {
            whole[c] = v;
        }
        ScalarField::from_vec(self.grid(), whole)
    }

    /// The global flat indices of `rank`'s cells, in its storage order.
    pub fn cells(&self, rank: usize) -> Vec<usize> {
        match self {
            Blocks::Slabs(s) => s.cells(rank).collect(),
            Blocks::Pencils(p) => (0..p.len(rank)).map(|k| p.to_global(rank, k)).collect(),
        }
    }

    /// `rank`'s block as a grid.
    pub fn local_grid(&self, rank: usize) -> Result<Grid> {
        match self {
            Blocks::Slabs(s) => s.local_grid(rank),
            Blocks::Pencils(p) => p.local_grid(rank),
        }
    }

    /// `Σ term(i)` over every rank's cells, as [`crate::field::ordered_sum`] adds them.
    pub fn sum(&self, exchange: &impl Exchange, term: impl Fn(usize) -> f64 + Sync) -> f64 {
        match self {
            Blocks::Slabs(s) => slab_sum(exchange, s, term),
            Blocks::Pencils(p) => pencil_sum(exchange, p, term),
        }
    }

    /// The c-transform of `p` ([`crate::ot::c_transform`]).
    pub fn c_transform(
        &self,
        exchange: &impl Exchange,
        grid: &Grid,
        p: &[f64],
    ) -> Result<Vec<f64>> {
        match self {
            Blocks::Slabs(_) => slab_c_transform(exchange, grid, p),
            Blocks::Pencils(_) => pencil_c_transform(exchange, grid, p),
        }
    }

    /// `∇_h u` ([`crate::operators::gradient`]), components interleaved.
    pub fn gradient(&self, exchange: &impl Exchange, grid: &Grid, u: &[f64]) -> Result<Vec<f64>> {
        match self {
            Blocks::Slabs(_) => slab_gradient(exchange, grid, u),
            Blocks::Pencils(_) => pencil_gradient(exchange, grid, u),
        }
    }

    /// The deposit `T#μ` of [`crate::ot::pushforward::push_forward_adaptive`].
    pub fn push_forward(
        &self,
        exchange: &impl Exchange,
        grid: &Grid,
        mu: &[f64],
        map: &[f64],
        subsamples: usize,
    ) -> Result<Vec<f64>> {
        match self {
            Blocks::Slabs(_) => slab_push_forward(exchange, grid, mu, map, subsamples),
            Blocks::Pencils(_) => pencil_push_forward(exchange, grid, mu, map, subsamples),
        }
    }

    /// `T#μ` by the change of variables through the inverse map `y + ∇q`
    /// ([`crate::ot::JacobianPushForward::apply`]).
    pub fn change_of_variables(
        &self,
        exchange: &impl Exchange,
        grid: &Grid,
        mu: &[f64],
        q: &[f64],
    ) -> Result<Vec<f64>> {
        match self {
            Blocks::Slabs(_) => slab_change_of_variables(exchange, grid, mu, q),
            Blocks::Pencils(_) => pencil_change_of_variables(exchange, grid, mu, q),
        }
    }

    /// `−∇_h·(w∇_h u) + d u` ([`crate::operators::apply_weighted_laplacian`] plus a diagonal).
    pub fn weighted_laplacian(
        &self,
        exchange: &impl Exchange,
        grid: &Grid,
        w: &[f64],
        diagonal: Option<&[f64]>,
        u: &[f64],
    ) -> Result<Vec<f64>> {
        match self {
            Blocks::Slabs(_) => slab_weighted_laplacian(exchange, grid, w, diagonal, u),
            Blocks::Pencils(_) => pencil_weighted_laplacian(exchange, grid, w, diagonal, u),
        }
    }

    /// The planned `(−Δ_h + shift)⁻¹` (discrete symbol; shift > 0) on these blocks.
    pub fn shifted_poisson(
        &self,
        exchange: &impl Exchange,
        grid: &Grid,
        shift: f64,
    ) -> Result<DecomposedPoisson> {
        Ok(match self {
            Blocks::Slabs(_) => DecomposedPoisson::Slabs(SlabPoissonSolver::new(
                grid,
                shift,
                Symbol::Discrete,
                exchange,
            )?),
            Blocks::Pencils(p) => DecomposedPoisson::Pencils(PencilPoissonSolver::on(
                p.clone(),
                shift,
                Symbol::Discrete,
                exchange,
            )?),
        })
    }

    /// The planned `(−Δ_h)⁻¹` with the mean projected out, on these blocks.
    pub fn poisson(&self, exchange: &impl Exchange, grid: &Grid) -> Result<DecomposedPoisson> {
        Ok(match self {
            Blocks::Slabs(_) => DecomposedPoisson::Slabs(
                SlabPoissonSolver::new(grid, 0.0, Symbol::Discrete, exchange)?
                    .with_mean_policy(MeanPolicy::Project),
            ),
            Blocks::Pencils(p) => DecomposedPoisson::Pencils(
                PencilPoissonSolver::on(p.clone(), 0.0, Symbol::Discrete, exchange)?
                    .with_mean_policy(MeanPolicy::Project),
            ),
        })
    }
}

/// The cell averages of a fine grid's field on a coarser one ([`crate::ot::multilevel`]'s
/// restriction), cut as `cut` says.
pub(crate) fn restrict(
    cut: Cut,
    exchange: &impl Exchange,
    fine: &Grid,
    coarse: &Grid,
    block: &[f64],
) -> Result<Vec<f64>> {
    match cut {
        Cut::Slabs => slab_restrict(exchange, fine, coarse, block),
        Cut::Pencils => pencil_restrict(exchange, fine, coarse, block),
    }
}

/// The cubic prolongation of a coarse grid's field onto a finer one, cut as `cut` says.
pub(crate) fn prolong(
    cut: Cut,
    exchange: &impl Exchange,
    coarse: &Grid,
    fine: &Grid,
    block: &[f64],
) -> Result<Vec<f64>> {
    match cut {
        Cut::Slabs => slab_prolong(exchange, coarse, fine, block),
        Cut::Pencils => pencil_prolong(exchange, coarse, fine, block),
    }
}

/// A planned distributed Poisson solver on either cut.
pub enum DecomposedPoisson {
    /// On slabs.
    Slabs(SlabPoissonSolver),
    /// On y–z pencils.
    Pencils(PencilPoissonSolver),
}

impl DecomposedPoisson {
    /// Solves for this rank's block (see each solver's `solve`). A collective.
    pub fn solve(&mut self, exchange: &impl Exchange, rhs: &[f64], out: &mut [f64]) -> Result<()> {
        match self {
            DecomposedPoisson::Slabs(s) => s.solve(exchange, rhs, out),
            DecomposedPoisson::Pencils(p) => p.solve(exchange, rhs, out),
        }
    }
}
