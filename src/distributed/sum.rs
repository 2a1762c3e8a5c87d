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
use crate::grid::SlabDecomposition;
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
