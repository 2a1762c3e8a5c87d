//! Optimal transport on grids (quadratic cost). Building blocks so far: [`legendre`], the
//! exact discrete Legendre transform in linear time, and [`pushforward`]: the mass-conserving
//! deposit of a density along a map, and the density-accurate change of variables through the
//! inverse map's potential; both are what the back-and-forth method is built from.

pub mod legendre;
pub mod pushforward;

pub use legendre::{legendre_1d, legendre_transform};
pub use pushforward::{push_forward, push_forward_by_inverse_potential};
