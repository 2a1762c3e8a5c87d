//! Sparse finite-difference operators (faer) and the linear solvers that invert them.
//!
//! [`assemble`] turns `−∇·(a∇u) + b·∇u + c u` with per-face [`BoundaryConditions`]
//! (Dirichlet, Neumann, Robin, periodic) into a faer `SparseColMat` plus the boundary data's
//! right-hand side; [`LinearSolver`] is the one interface of the direct ([`Cholesky`],
//! [`Lu`]) and Krylov ([`Cg`], [`BiCgStab`]) solvers; [`bicgstab`] is the matrix-free
//! BiCGSTAB whose operator and inner products the caller supplies (the Monge–Ampère steps,
//! on one process or on the ranks of a decomposed grid).

mod assemble;
mod bc;
mod diagnose;
mod krylov;
mod solver;

pub(crate) use assemble::check_drift_diffusion;
pub use assemble::{
    assemble, bernoulli, AdvectionScheme, Assembled, Coefficient, DriftDiffusion, OperatorSpec,
};
pub use bc::{BoundaryConditions, BoundaryValue, FaceCondition, PointFn};
pub use krylov::{bicgstab, KrylovOps};
pub use solver::{
    matvec, relative_residual, BiCgStab, Cg, Cholesky, Converged, Direct, KrylovSettings,
    LinearSolver, Lu, Preconditioner, RowMatrix, SolveReport,
};

#[cfg(test)]
mod tests;
