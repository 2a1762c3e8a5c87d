//! Distributed runs: a grid decomposed over ranks and solvers whose ranks exchange data
//! through one collective transport (issue #23).
//!
//! - [`exchange`]: the collectives a solver needs ([`Exchange`]): one rank, P threads of one
//!   process (tests), or an MPI communicator (`distributed` feature, [`mpi`]);
//! - [`poisson`]: the FFT/DCT/DST Poisson solver on slabs, equal to the serial one to
//!   round-off.
//!
//! The decomposition itself is [`crate::grid::SlabDecomposition`].

pub mod exchange;
#[cfg(feature = "distributed")]
pub mod mpi;
pub mod poisson;

pub use exchange::{Exchange, LocalExchange, LocalWorld, Single};
pub use poisson::SlabPoissonSolver;
