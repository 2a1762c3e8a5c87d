//! # otgrid
//!
//! Optimal transport and PDE solvers on regular 2D/3D grids, with results written as HDF5
//! plus an XDMF sidecar that ParaView opens directly.
//!
//! Layout mirrors the mathematics:
//! - [`grid`]: cell-centred regular grids with a boundary kind per axis;
//! - [`field`]: scalar and vector fields on a grid (C-order `[z][y][x]` storage);
//! - [`io`]: the HDF5 results format (`docs/file-format.md`) and its XDMF sidecar;
//! - progress bars for long loops live in the CLI (`src/cli/progress.rs`; hidden when stderr is not a terminal).

// Numerical kernels index several arrays with one index; index loops say that best.
#![allow(clippy::needless_range_loop)]

pub mod analytic;
pub mod distributed;
pub mod error;
pub mod expr;
pub mod field;
pub mod grid;
pub mod io;
pub mod operators;
pub mod ot;
pub mod pde;
pub mod resources;
pub mod sample;
pub mod sparse;
pub mod spectral;
pub mod study;

pub use error::{Error, Result};
pub use field::{ScalarField, VectorField};
pub use grid::{BoundaryKind, Grid};
