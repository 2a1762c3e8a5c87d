//! Distributed runs: a grid decomposed over ranks and solvers whose ranks exchange data
//! through one collective transport (issue #23).
//!
//! - [`exchange`]: the collectives a solver needs ([`Exchange`]): one rank, P threads of one
//!   process (tests), or an MPI communicator (`distributed` feature, [`mpi`]);
//! - [`poisson`]: the FFT/DCT/DST Poisson solver on slabs, equal to the serial one to
//!   round-off;
//! - [`legendre`]: the c-transform of the quadratic cost on slabs (bfm's kernel), equal to
//!   [`crate::ot::c_transform`] to round-off.
//!
//! The decomposition itself is [`crate::grid::SlabDecomposition`].

pub mod exchange;
pub mod legendre;
#[cfg(feature = "distributed")]
pub mod mpi;
pub mod poisson;

use std::ops::Range;

pub use exchange::{Exchange, LocalExchange, LocalWorld, Single};
pub use legendre::slab_c_transform;
pub use poisson::SlabPoissonSolver;

/// The balanced split of `n` items over `parts` parts: part r gets `n/parts + 1` items if
/// `r < n mod parts`, else `n/parts` (as [`crate::grid::SlabDecomposition`] splits planes).
pub(crate) fn balanced(n: usize, parts: usize) -> Vec<Range<usize>> {
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|r| {
            let len = base + usize::from(r < extra);
            start += len;
            start - len..start
        })
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
