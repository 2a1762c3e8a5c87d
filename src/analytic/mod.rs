//! Closed-form solutions used to verify the solvers: manufactured solutions for the PDE
//! operators (and, as the OT solvers land, analytic Brenier maps and densities).

pub mod manufactured;
