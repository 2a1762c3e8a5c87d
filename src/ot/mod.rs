//! Optimal transport on grids (quadratic cost). Building blocks so far:
//! [`legendre`], the exact discrete Legendre transform in linear time, used by the
//! back-and-forth method.

pub mod legendre;

pub use legendre::{legendre_1d, legendre_transform};
