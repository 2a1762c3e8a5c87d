//! Optimal transport on grids (quadratic cost). Building blocks so far: [`legendre`], the
//! exact discrete Legendre transform in linear time, and [`pushforward`], the mass-conserving
//! push-forward of a density by a map; both are used by the back-and-forth method.

pub mod legendre;
pub mod pushforward;

pub use legendre::{legendre_1d, legendre_transform};
pub use pushforward::push_forward;
