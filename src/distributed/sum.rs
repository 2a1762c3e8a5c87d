//! Sums over a slab-decomposed grid that equal the serial sums to the bit.
//!
//! [`crate::field::ordered_sum`] adds the whole grid's values in fixed chunks of
//! [`SUM_CHUNK`] cells (each chunk in index order), then the chunk sums in chunk order. On
//! slabs a chunk may straddle ranks: each rank sends the cells of its first chunk that began
//! on an earlier rank to that chunk's first rank (one `Alltoallv`, fewer than `SUM_CHUNK`
//! values), which adds the whole chunk in index order; then every rank gathers every chunk's
//! sum (one `Alltoallv`: `n / SUM_CHUNK` values per rank) and adds them in chunk order. The
//! result is the serial one to the bit on every rank — a reduction tree would send less but
//! add in another order.

use super::exchange::Exchange;
use super::exchange_blocks;
use crate::field::SUM_CHUNK;
use crate::grid::{PencilDecomposition, SlabDecomposition};
use rayon::prelude::*;
use std::ops::Range;

/// `Σ a·b` over every rank's cells (`a`, `b`: this rank's blocks), as
/// [`crate::ot::bfm::dot`] sums the whole grid's — to the bit, on every rank. A collective.
pub fn slab_dot(exchange: &impl Exchange, slabs: &SlabDecomposition, a: &[f64], b: &[f64]) -> f64 {
    slab_sum(exchange, slabs, |i| a[i] * b[i])
}

/// `Σ term(i)` over this rank's cells i (local indices) and every other rank's, added as
/// [`crate::field::ordered_sum`] adds the whole grid's terms (a chunk's part the sequential
/// `sum` of its terms) — to the bit, on every rank. A collective.
pub fn slab_sum(
    exchange: &impl Exchange,
    slabs: &SlabDecomposition,
    term: impl Fn(usize) -> f64 + Sync,
) -> f64 {
    let rank = exchange.rank();
    let ranks = slabs.ranks();
    let plane = slabs.plane_cells();
    let mine = slabs.cells(rank);
    let owner = |cell: usize| slabs.owner(cell / plane);
    let chunk_start = |cell: usize| cell - cell % SUM_CHUNK;
    // The cells of `r`'s first chunk that began on an earlier rank (global indices).
    let lead = |r: usize| -> Range<usize> {
        let cells = slabs.cells(r);
        let end = cells.start.next_multiple_of(SUM_CHUNK).min(cells.end);
        cells.start..end
    };
    // Whom r's lead goes to (None when r's first cell starts a chunk).
    let lead_to = |r: usize| {
        let cells = slabs.cells(r);
        (cells.start % SUM_CHUNK != 0).then(|| owner(chunk_start(cells.start)))
    };
    let product = &term;
    let my_lead = lead(rank);
    let mut send = Vec::new();
    let mut send_counts = vec![0; ranks];
    if let Some(q) = lead_to(rank) {
        send.extend((my_lead.start - mine.start..my_lead.end - mine.start).map(product));
        send_counts[q] = my_lead.len();
    }
    let recv_counts: Vec<usize> = (0..ranks)
        .map(|s| if s != rank && lead_to(s) == Some(rank) { lead(s).len() } else { 0 })
        .collect();
    let tail = exchange_blocks(exchange, &send, &send_counts, &recv_counts);
    // A self-addressed lead (a chunk that began on this rank and wraps back to it) does not
    // occur: a rank's cells are contiguous, so its lead goes to an earlier rank.
    let starts: Vec<usize> = chunk_starts(&mine).collect();
    let last = starts.len().saturating_sub(1);
    let sums: Vec<f64> = starts
        .par_iter()
        .enumerate()
        .map(|(k, &start)| {
            let end = (start + SUM_CHUNK).min(mine.end);
            let own = (start - mine.start..end - mine.start).map(product);
            if k == last {
                own.chain(tail.iter().copied()).sum::<f64>()
            } else {
                own.sum::<f64>()
            }
        })
        .collect();
    // Every rank's chunk sums, in rank (so chunk) order.
    let counts: Vec<usize> = (0..ranks).map(|r| chunk_starts(&slabs.cells(r)).count()).collect();
    let send: Vec<f64> = (0..ranks).flat_map(|_| sums.iter().copied()).collect();
    let all = exchange_blocks(exchange, &send, &vec![sums.len(); ranks], &counts);
    all.iter().sum()
}

/// `Σ a·b` over every rank's pencil block, as [`crate::ot::bfm::dot`] sums the whole grid's
/// — to the bit, on every rank ([`pencil_sum`]). A collective.
pub fn pencil_dot(
    exchange: &impl Exchange,
    pencils: &PencilDecomposition,
    a: &[f64],
    b: &[f64],
) -> f64 {
    pencil_sum(exchange, pencils, |i| a[i] * b[i])
}

/// `Σ term(i)` over this rank's pencil block (local indices) and every other rank's, added as
/// [`crate::field::ordered_sum`] adds the whole grid's terms — to the bit, on every rank. A
/// pencil block is not contiguous in the grid's order, so the chunks are dealt out to the
/// ranks in contiguous runs and every rank sends each its terms in them (one `Alltoallv`:
/// about N/P values per rank, one transpose's volume); each adds its chunks in index order,
/// then every rank gathers every chunk's sum (one `Alltoallv`) and adds them in chunk order.
/// A collective.
pub fn pencil_sum(
    exchange: &impl Exchange,
    pencils: &PencilDecomposition,
    term: impl Fn(usize) -> f64 + Sync,
) -> f64 {
    let rank = exchange.rank();
    let ranks = pencils.ranks();
    let n = pencils.grid().num_cells();
    let chunks = n.div_ceil(SUM_CHUNK);
    // Rank q adds chunks `dealt(q)`, i.e. the cells `cells_of(q)`.
    let dealt = |q: usize| q * chunks / ranks..(q + 1) * chunks / ranks;
    let cells_of = |q: usize| {
        let c = dealt(q);
        (c.start * SUM_CHUNK).min(n)..(c.end * SUM_CHUNK).min(n)
    };
    // The q with the cell's chunk in dealt(q): the last q whose first chunk is at most the
    // cell's (its run ends where the next, starting beyond the chunk, begins).
    let firsts: Vec<usize> = (0..ranks).map(|q| dealt(q).start).collect();
    let adder = |cell: usize| firsts.partition_point(|&f| f <= cell / SUM_CHUNK) - 1;
    // My terms in the grid's order (a block's local order is increasing in global index),
    // cut where the adder changes.
    let mine = pencils.len(rank);
    let mut send = Vec::with_capacity(mine);
    let mut send_counts = vec![0; ranks];
    let global = |k: usize| pencils.to_global(rank, k);
    let nx = pencils.grid().axis(0).cells;
    for line in 0..mine / nx.max(1) {
        let start = global(line * nx);
        for x in 0..nx {
            send.push(term(line * nx + x));
            send_counts[adder(start + x)] += 1;
        }
    }
    let range = cells_of(rank);
    let mut recv_counts = vec![0; ranks];
    let owners: Vec<usize> = range.clone().map(|g| pencils.to_local(g).0).collect();
    owners.iter().for_each(|&s| recv_counts[s] += 1);
    let recv = exchange_blocks(exchange, &send, &send_counts, &recv_counts);
    // Each sender's terms arrive in increasing global order: merge them back.
    let mut next = super::displacements(&recv_counts);
    let terms: Vec<f64> = owners
        .iter()
        .map(|&s| {
            next[s] += 1;
            recv[next[s] - 1]
        })
        .collect();
    let sums: Vec<f64> =
        terms.par_chunks(SUM_CHUNK).map(|chunk| chunk.iter().copied().sum::<f64>()).collect();
    let counts: Vec<usize> = (0..ranks).map(|q| dealt(q).len()).collect();
    let send: Vec<f64> = (0..ranks).flat_map(|_| sums.iter().copied()).collect();
    let all = exchange_blocks(exchange, &send, &vec![sums.len(); ranks], &counts);
    all.iter().sum()
}

/// The chunk starts (multiples of [`SUM_CHUNK`]) within `cells`.
fn chunk_starts(cells: &Range<usize>) -> impl Iterator<Item = usize> {
    (cells.start.next_multiple_of(SUM_CHUNK)..cells.end).step_by(SUM_CHUNK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::{test_grid, LocalWorld};
    use crate::grid::BoundaryKind::Neumann;
    use crate::ot::bfm::dot;

    /// On 1–12 ranks (slabs and pencils), with blocks shorter and longer than a chunk and more
    /// ranks than chunks, the pencil dot product equals the serial one to the bit on every
    /// rank.
    #[test]
    fn the_pencil_dot_equals_the_serial_one_to_the_bit() {
        for shape in [[37usize, 29, 23], [64, 64, 9], [5, 7, 40], [11, 6, 4]] {
            let grid = test_grid(&shape, &[Neumann; 3]);
            let n = grid.num_cells();
            let a: Vec<f64> = (0..n).map(|i| ((i as f64) * 0.37).sin() * 1e3).collect();
            let b: Vec<f64> = (0..n).map(|i| ((i as f64) * 0.11).cos() + 1e-9 * i as f64).collect();
            let serial = dot(&a, &b);
            for ranks in [1, 2, 3, 4, 6, 7, 8, 12] {
                let Ok(pencils) = PencilDecomposition::new(&grid, ranks) else { continue };
                let sums = LocalWorld::run(ranks, |ex| {
                    let r = ex.rank();
                    pencil_dot(ex, &pencils, &pencils.block(r, &a), &pencils.block(r, &b))
                });
                for s in sums {
                    assert_eq!(s.to_bits(), serial.to_bits(), "{shape:?}, {ranks} ranks");
                }
            }
        }
    }

    /// On 1–7 ranks, with slabs shorter and longer than a chunk, the slab dot product equals
    /// the serial one to the bit on every rank.
    #[test]
    fn the_slab_dot_equals_the_serial_one_to_the_bit() {
        for shape in [[37usize, 29, 23], [64, 64, 9], [5, 7, 40]] {
            let grid = test_grid(&shape, &[Neumann; 3]);
            let n = grid.num_cells();
            let a: Vec<f64> = (0..n).map(|i| ((i as f64) * 0.37).sin() * 1e3).collect();
            let b: Vec<f64> = (0..n).map(|i| ((i as f64) * 0.11).cos() + 1e-9 * i as f64).collect();
            let serial = dot(&a, &b);
            for ranks in 1..=7 {
                let slabs = SlabDecomposition::new(&grid, ranks).unwrap();
                let sums = LocalWorld::run(ranks, |ex| {
                    let c = slabs.cells(ex.rank());
                    slab_dot(ex, &slabs, &a[c.clone()], &b[c])
                });
                for s in sums {
                    assert_eq!(s.to_bits(), serial.to_bits(), "{shape:?}, {ranks} ranks");
                }
            }
        }
    }
}
