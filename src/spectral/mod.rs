//! Spectral (FFT/DCT/DST) solvers on cell-centred grids.
//!
//! [`PoissonSolver`] solves `(−Δ_h + c) u = f` with per-axis periodic / Neumann / Dirichlet
//! boundaries by diagonalising the operator axis by axis (see the table in `transform`).
//! [`Symbol`] chooses between the finite-difference eigenvalues (exact inverse of the FD
//! operator) and the continuous symbol |k|².

mod convolution;
pub(crate) mod poisson;
pub(crate) mod transform;

pub use convolution::Convolution;
pub use poisson::{MeanPolicy, PoissonSolver};
pub use transform::Symbol;

#[cfg(test)]
mod tests;
