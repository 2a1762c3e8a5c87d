//! Optimal transport on grids (quadratic cost).
//!
//! - [`problem`]: the shared [`Problem`] / [`Options`] / [`Solution`] shape, the [`Solver`]
//!   trait and the [`Method`] registry (one file per method);
//! - [`bfm`]: the back-and-forth method (default);
//! - [`newton`]: damped Newton for the Monge–Ampère equation (smooth positive densities);
//! - [`parabolic`]: the parabolic Monge–Ampère flow (explicit or linearly implicit steps
//!   under step-size schedules);
//! - [`sinkhorn`]: entropic OT, log-domain Sinkhorn with a separable Gibbs kernel;
//! - [`metric`]: the metric of the back-and-forth gradient steps (H¹ or density-weighted);
//! - [`legendre`]: discrete Legendre and c-transforms in linear time;
//! - [`pushforward`]: push-forwards of densities by maps (deposit, change of variables);
//! - [`density`]: density specifications (Gaussian presets, uniform, HDF5 datasets,
//!   expressions); [`verify`]: errors against closed-form maps.

pub mod bfm;
pub mod density;
mod fastmath;
pub mod flow;
pub(crate) mod gibbs;
pub mod legendre;
pub mod lift;
pub mod method;
pub mod metric;
pub(crate) mod monge_ampere;
pub(crate) mod multilevel;
pub mod newton;
pub mod parabolic;
pub mod problem;
pub mod pushforward;
pub mod sinkhorn;
pub mod verify;

pub use bfm::BackAndForth;
pub use density::DensitySpec;
pub use legendre::{c_transform, legendre_1d, legendre_transform, Maximum};
pub use lift::GaussianLift;
pub use method::{Method, MethodInfo, MIN_CONTRAST};
pub use metric::Metric;
pub use newton::Newton;
pub use parabolic::{Parabolic, Schedule, Stepping};
pub use problem::{
    IterationRecord, Observer, Options, Outcome, Problem, Progress, Solution, Solver, Step,
    Stopping,
};
pub use pushforward::{
    push_forward, push_forward_adaptive, push_forward_by_inverse_potential,
    push_forward_subsampled, JacobianPushForward,
};
pub use sinkhorn::Sinkhorn;
pub use verify::{
    map_error, potential_map_error, verify_case, Case, Exact, MapError, MapErrorSums, Role,
    VerifyRow,
};
