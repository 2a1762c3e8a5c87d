//! Distributed runs: a grid decomposed over ranks and solvers whose ranks exchange data
//! through one collective transport (issue #23).
//!
//! - [`density`]: a density sampled on slabs, checked and normalised as the serial run does
//!   (to the bit, the same verdict on every rank);
//! - [`exchange`]: the collectives a solver needs ([`Exchange`]): one rank, P threads of one
//!   process (tests), or an MPI communicator (`distributed` feature, [`mpi`]);
//! - [`poisson`]: the FFT/DCT/DST Poisson solver on slabs, equal to the serial one to
//!   round-off; [`pencil_poisson`]: the same on y–z pencils (more ranks than z planes), the
//!   serial solve to the bit;
//! - [`legendre`]: the c-transform of the quadratic cost on slabs (bfm's kernel), equal to
//!   [`crate::ot::c_transform`] to round-off;
//! - [`gibbs`]: the soft c-transform `LSE_ε` of the separable Gibbs kernel on slabs and
//!   pencils (Sinkhorn's kernel), the serial one on whole lines — to the bit;
//! - [`sinkhorn`]: the Sinkhorn solver on slabs and pencils (its multiscale levels each on
//!   their own blocks, its sums in the serial order), the serial solve to the bit;
//! - [`operators`]: matrix-free finite differences on slabs with one-plane halos (`−Δ_h + c`
//!   and the weighted `−∇·(w∇) + d`, the gradient, the divergence), equal to
//!   [`crate::operators`]' to the bit;
//! - [`metric`]: the weighted metric's preconditioned CG (bfm's and the JKO steps') on
//!   slabs, the serial solver's iterations and solution to the bit;
//! - [`pushforward`]: the deposit push-forward `T#μ` on slabs (bfm's and the JKO steps'),
//!   the serial deposit to the bit (both add in fixed point);
//! - [`sum`]: dot products over the ranks that add as the serial ones, to the bit.
//!
//! - [`multilevel`]: restriction, sampling and prolongation between the levels of a
//!   hierarchy on slabs, the serial ones to the bit;
//! - [`bfm`]: the back-and-forth method on slabs (its levels, the deposit push-forward): the
//!   serial levels and loop on the slab operations above, the serial solve's potentials to
//!   the bit on a box slab axis.
//!
//! - [`solution`]: one rank's part of a distributed solve's results file (the serial
//!   file's fields, diagnostics and attributes, computed on the slabs).
//!
//! - [`output`] (`distributed` and `hdf5` features): one HDF5 file written collectively
//!   (parallel HDF5), the serial writer's layout and XDMF.
//!
//! The decompositions themselves are [`crate::grid::SlabDecomposition`] and
//! [`crate::grid::PencilDecomposition`].

pub mod bfm;
pub mod blocks;
pub mod density;
pub mod exchange;
pub mod gibbs;
pub mod jacobian;
pub(crate) mod layout;
pub mod legendre;
pub mod metric;
#[cfg(feature = "distributed")]
pub mod mpi;
pub mod multilevel;
pub mod operators;
#[cfg(all(feature = "distributed", feature = "hdf5"))]
pub mod output;
pub mod parabolic;
pub mod pencil_poisson;
pub mod poisson;
pub mod pushforward;
pub mod sinkhorn;
pub mod solution;
pub mod sum;

use std::ops::Range;

pub use bfm::{pencil_bfm, slab_bfm, DecomposedLevel};
pub use blocks::{Blocks, Cut, DecomposedPoisson};
pub use density::{pencil_density, slab_density};
pub use exchange::{agree, Exchange, LocalExchange, LocalWorld, Single};
pub use gibbs::{slab_soft_transform, PencilGibbs, SlabGibbs};
pub use jacobian::{pencil_change_of_variables, slab_change_of_variables};
pub use legendre::{pencil_c_transform, slab_c_transform};
pub use metric::DecomposedMetric;
pub use multilevel::{
    pencil_prolong, pencil_restrict, pencil_sample, slab_prolong, slab_restrict, slab_sample,
};
pub use operators::{
    pencil_gradient, pencil_weighted_laplacian, slab_divergence, slab_gradient,
    slab_shifted_laplacian, slab_weighted_laplacian,
};
#[cfg(all(feature = "distributed", feature = "hdf5"))]
pub use output::write_collective;
pub use parabolic::{pencil_parabolic, slab_parabolic};
pub use pencil_poisson::PencilPoissonSolver;
pub use poisson::SlabPoissonSolver;
pub use pushforward::{pencil_push_forward, slab_push_forward};
pub use sinkhorn::{pencil_sinkhorn, slab_sinkhorn};
pub use solution::{pencil_output, slab_output};
pub use sum::{pencil_dot, pencil_sum, slab_dot, slab_sum};

pub(crate) use crate::grid::decomposition::balanced;

/// The x-range of every rank's pencil: [`balanced`] over the x cells; refused with more ranks
/// than cells along x.
pub(crate) fn pencil_columns(nx: usize, ranks: usize) -> crate::Result<Vec<Range<usize>>> {
    if ranks > nx {
        return Err(crate::Error::invalid(format!(
            "{ranks} ranks for {nx} cells along x: the transposed pencils need a column each \
             (use at most {nx} ranks)"
        )));
    }
    Ok(balanced(nx, ranks))
}

/// `grid` with `cells` cells along its slab (last) axis.
pub(crate) fn with_slab_cells(
    grid: &crate::grid::Grid,
    cells: usize,
) -> crate::Result<crate::grid::Grid> {
    let mut axes = grid.axes().to_vec();
    let last = axes.len() - 1;
    axes[last].cells = cells;
    crate::grid::Grid::new(axes)
}

/// The regrouping of slab data `[s_local][rows][x]` (this rank's planes of the slab axis S,
/// whole lines along x) into x-pencils `[S][rows][x_mine]` (every plane, this rank's range of
/// x) and back: one `Alltoallv` each way. `rows` is the number of lines per plane (ny in 3D,
/// 1 in 2D).
pub(crate) struct XPencils {
    columns: Vec<Range<usize>>,
    rank: usize,
    nx: usize,
    send_counts: Vec<usize>,
    recv_counts: Vec<usize>,
}

impl XPencils {
    /// The regrouping for `rank` of `ranks` on `slabs`; refused with more ranks than cells
    /// along x.
    pub(crate) fn new(
        slabs: &crate::grid::SlabDecomposition,
        rank: usize,
        nx: usize,
        rows: usize,
    ) -> crate::Result<XPencils> {
        let ranks = slabs.ranks();
        let columns = pencil_columns(nx, ranks)?;
        let sl = slabs.planes(rank).len();
        let mine = columns[rank].len();
        let send_counts = columns.iter().map(|c| sl * rows * c.len()).collect();
        let recv_counts = (0..ranks).map(|r| slabs.planes(r).len() * rows * mine).collect();
        Ok(XPencils { columns, rank, nx, send_counts, recv_counts })
    }

    /// This rank's range of x in the pencils.
    pub(crate) fn mine(&self) -> Range<usize> {
        self.columns[self.rank].clone()
    }

    /// Slab `[s_local][rows][x]` → pencil `[S][rows][x_mine]`.
    pub(crate) fn to_pencils(&self, exchange: &impl Exchange, slab: &[f64]) -> Vec<f64> {
        let mut send = Vec::with_capacity(slab.len());
        for c in &self.columns {
            for line in slab.chunks_exact(self.nx) {
                send.extend_from_slice(&line[c.clone()]);
            }
        }
        let mut pencil = vec![0.0; self.recv_counts.iter().sum()];
        exchange.all_to_all_v(
            &send,
            &self.send_counts,
            &displacements(&self.send_counts),
            &mut pencil,
            &self.recv_counts,
            &displacements(&self.recv_counts),
        );
        pencil
    }

    /// Pencil `[S][rows][x_mine]` → slab `[s_local][rows][x]`.
    pub(crate) fn to_slabs(&self, exchange: &impl Exchange, pencil: &[f64]) -> Vec<f64> {
        let local: usize = self.send_counts.iter().sum();
        let mut recv = vec![0.0; local];
        exchange.all_to_all_v(
            pencil,
            &self.recv_counts,
            &displacements(&self.recv_counts),
            &mut recv,
            &self.send_counts,
            &displacements(&self.send_counts),
        );
        let mut slab = vec![0.0; local];
        let mut at = 0;
        for c in &self.columns {
            for line in slab.chunks_exact_mut(self.nx) {
                line[c.clone()].copy_from_slice(&recv[at..at + c.len()]);
                at += c.len();
            }
        }
        slab
    }
}

/// One `Alltoallv` of consecutive blocks: `send_counts[q]` values of `send` to rank q (in
/// rank order), `recv_counts[s]` from rank s, returned in rank order.
pub(crate) fn exchange_blocks(
    exchange: &impl Exchange,
    send: &[f64],
    send_counts: &[usize],
    recv_counts: &[usize],
) -> Vec<f64> {
    let mut recv = vec![0.0; recv_counts.iter().sum()];
    exchange.all_to_all_v(
        send,
        send_counts,
        &displacements(send_counts),
        &mut recv,
        recv_counts,
        &displacements(recv_counts),
    );
    recv
}

/// Every rank's list `mine` (indices), on every rank, in rank order: two `Alltoallv`s (the
/// lengths, then the lists).
pub(crate) fn all_lists(exchange: &impl Exchange, mine: &[usize]) -> Vec<Vec<usize>> {
    let ranks = exchange.size();
    let ones = vec![1; ranks];
    let lengths = exchange_blocks(exchange, &vec![mine.len() as f64; ranks], &ones, &ones);
    let counts: Vec<usize> = lengths.iter().map(|&v| v as usize).collect();
    let send: Vec<f64> = (0..ranks).flat_map(|_| mine.iter().map(|&j| j as f64)).collect();
    let all = exchange_blocks(exchange, &send, &vec![mine.len(); ranks], &counts);
    let starts = displacements(&counts);
    counts
        .iter()
        .zip(starts)
        .map(|(&c, at)| all[at..at + c].iter().map(|&v| v as usize).collect())
        .collect()
}

/// Prefix sums: the displacements of consecutive blocks of `counts`.
pub(crate) fn displacements(counts: &[usize]) -> Vec<usize> {
    counts
        .iter()
        .scan(0, |acc, c| {
            let d = *acc;
            *acc += c;
            Some(d)
        })
        .collect()
}

/// A test grid of `shape` cells with `kinds` per axis, axis a spanning [0, 1 + a/4] (unequal
/// spacings, so that mixing axes up shows).
#[cfg(test)]
pub(crate) fn test_grid(shape: &[usize], kinds: &[crate::grid::BoundaryKind]) -> crate::grid::Grid {
    let axes = (0..shape.len())
        .map(|a| crate::grid::Axis {
            cells: shape[a],
            lower: 0.0,
            upper: 1.0 + 0.25 * a as f64,
            boundary: kinds[a],
        })
        .collect();
    crate::grid::Grid::new(axes).expect("a valid test grid")
}
