//! Closed-form solutions used to verify the solvers: manufactured solutions for the PDE
//! operators, and analytic Brenier maps (Gaussian → Gaussian so far).

pub mod gaussian;
pub mod manufactured;
