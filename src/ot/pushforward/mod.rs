//! Push-forward of a density by a map on grids, `ν = T#μ`, in two ways:
//!
//! - [`deposit`]: each source cell (or sub-cell) carries its mass to `T(x)` and deposits it
//!   by cloud-in-cell weights — any densities, mass conserved to round-off, but grid-scale
//!   aliasing caps the pointwise density at first order;
//! - [`jacobian`]: the change of variables `μ(T⁻¹y) det D(T⁻¹)(y)` through the inverse
//!   potential — second order for smooth densities bounded away from zero;
//!
//! and the multilinear interpolation both rely on ([`interpolate`]).

mod deposit;
mod interpolate;
mod jacobian;

pub(crate) use deposit::{
    fixed_exponent, mass_bound, CellDeposit, FixedCells, FixedPlanes, SubCells,
};
pub use deposit::{
    identity_deposit, push_forward, push_forward_adaptive, push_forward_subsampled, MAX_SUBCELLS,
};
pub(crate) use interpolate::{
    cubic_weights, displacement_preimage, interpolate, interpolate_cubic, interpolate_displacement,
    interpolate_from, linear_stencil,
};
pub(crate) use jacobian::{d1, d2, determinant};
pub use jacobian::{
    push_forward_by_displacement, push_forward_by_inverse_potential, JacobianPushForward,
};

use crate::error::{Error, Result};
use crate::field::{ScalarField, VectorField};
use crate::grid::Grid;
use rayon::prelude::*;
