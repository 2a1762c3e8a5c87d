//! Closed-form solutions used to verify the solvers: manufactured solutions for the PDE
//! operators, and analytic Brenier maps: Gaussian → Gaussian ([`gaussian`]), the manufactured
//! periodic case and separable products ([`maps`]); the porous medium's Barenblatt profile and
//! its exact JKO recursion ([`barenblatt`]).

pub mod barenblatt;
pub mod gaussian;
pub mod manufactured;
pub mod maps;
