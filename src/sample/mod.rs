//! The sample side: transport maps applied to points, exact draws from grid densities, and
//! samples deposited on grids (empirical measures as OT inputs), distances between point
//! sets.
//!
//! A Brenier map computed on a grid is a one-step generator: draw points from the source
//! density ([`draw`]) and push them through the map ([`GridMap`]) to sample the target.
//! Point sets are `ndarray` arrays `[n][dim]`; on disk, see [`crate::io::points`].

pub mod deposit;
pub mod divergence;
pub mod draw;
pub mod map;
pub mod metrics;
pub mod regularity;

pub use deposit::{cloud_in_cell, kde, scott_bandwidth, smooth};
pub use divergence::{sinkhorn_divergence, SinkhornDivergence};
pub use draw::draw;
pub use map::{GridMap, Interpolation};
pub use metrics::{mmd_squared, sliced_w2, w2_assignment, MmdKernel};
pub use regularity::{doubling_constant, holder_exponent, HolderEstimate};
