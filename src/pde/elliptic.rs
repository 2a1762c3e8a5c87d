//! Elliptic problems `−∇·(a∇u) + b·∇u + c u = s` with per-face boundary conditions.

use crate::error::Result;
use crate::field::ScalarField;
use crate::grid::Grid;
use crate::sparse::{
    assemble, BiCgStab, BoundaryConditions, Cg, Coefficient, Direct, KrylovSettings, LinearSolver,
    OperatorSpec, Preconditioner, SolveReport,
};
use crate::spectral::{MeanPolicy, PoissonSolver, Symbol};

/// How the linear system is solved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinearMethod {
    /// Sparse Cholesky (symmetric operators) or LU.
    Direct,
    /// CG with the spectral Poisson preconditioner (symmetric) or BiCGSTAB with Jacobi.
    Iterative { rel_tolerance: f64, max_iterations: usize },
}

/// An elliptic problem on a grid.
#[derive(Clone, Debug)]
pub struct EllipticProblem {
    pub grid: Grid,
    pub operator: OperatorSpec,
    pub bcs: BoundaryConditions,
    pub source: ScalarField,
}

fn mean(c: &Coefficient) -> f64 {
    match c {
        Coefficient::Constant(v) => *v,
        Coefficient::Field(f) => f.integral() / f.grid().volume(),
    }
}

impl EllipticProblem {
    /// Assembles and solves; returns the solution and the linear solver's report.
    pub fn solve(&self, method: LinearMethod) -> Result<(ScalarField, SolveReport)> {
        let sys = assemble(&self.grid, &self.operator, &self.bcs)?;
        if method == LinearMethod::Direct {
            if let Some(why) = self.operator.singular_reason(&self.grid, &self.bcs) {
                return Err(crate::error::Error::invalid(why));
            }
        }
        let rhs: Vec<f64> =
            self.source.data().iter().zip(&sys.boundary_rhs).map(|(s, b)| s + b).collect();
        let mut u = vec![0.0; rhs.len()];
        let report = match method {
            LinearMethod::Direct => Direct::new(&sys.matrix, sys.symmetric)
                .map_err(|e| self.operator.explain(&self.grid, &self.bcs, e))?
                .solve(&rhs, &mut u)?,
            LinearMethod::Iterative { rel_tolerance, max_iterations } => {
                let settings = KrylovSettings { rel_tolerance, max_iterations };
                if sys.symmetric {
                    // (−Δ + c̄/ā)⁻¹/ā approximates the operator's inverse; with only
                    // periodic/Neumann axes and no reaction, the mean is projected out.
                    let a = self.operator.diffusion.as_ref().map_or(1.0, mean);
                    let c = self.operator.reaction.as_ref().map_or(0.0, mean).max(0.0);
                    let all_periodic_neumann =
                        self.grid.boundaries().iter().all(|k| !k.prescribes_value());
                    let shift = if c > 0.0 || !all_periodic_neumann { c / a } else { 0.0 };
                    let pre = PoissonSolver::new(&self.grid, shift, Symbol::Discrete)?
                        .with_mean_policy(MeanPolicy::Project);
                    Cg::new(sys.matrix, Preconditioner::spectral(pre, a), settings)
                        .solve(&rhs, &mut u)?
                } else {
                    let pre = Preconditioner::jacobi(&sys.matrix)?;
                    BiCgStab::new(sys.matrix, pre, settings).solve(&rhs, &mut u)?
                }
            }
        };
        let u = ScalarField::from_vec(&self.grid, u)?;
        Ok((u, report))
    }
}
