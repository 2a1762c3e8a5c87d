//! Why an operator `−∇·(a∇u) + b·∇u + c u` with its boundary conditions is singular or not
//! positive definite, in the words of the problem rather than of the factorisation.

use super::{BoundaryConditions, Coefficient, FaceCondition, OperatorSpec};
use crate::error::Error;
use crate::grid::{Grid, AXIS_NAMES};

fn face_name(axis: usize, side: usize) -> String {
    format!("{}_{}", AXIS_NAMES[axis], ["lower", "upper"][side])
}

fn minimum(c: &Coefficient) -> f64 {
    match c {
        Coefficient::Constant(v) => *v,
        Coefficient::Field(f) => f.min(),
    }
}

impl OperatorSpec {
    /// `Some(explanation)` when the operator annihilates constants on `grid` with `bcs`:
    /// no Dirichlet or Robin face and no reaction (a pure Neumann/periodic problem).
    pub fn singular_reason(&self, grid: &Grid, bcs: &BoundaryConditions) -> Option<String> {
        let anchored = (0..grid.dim()).any(|a| {
            (0..2).any(|s| {
                matches!(bcs.face(a, s), FaceCondition::Dirichlet(_) | FaceCondition::Robin { .. })
            })
        });
        let reaction = self.reaction.as_ref().is_some_and(|c| match c {
            Coefficient::Constant(v) => *v != 0.0,
            Coefficient::Field(f) => f.data().iter().any(|v| *v != 0.0),
        });
        (!anchored && !reaction).then(|| {
            "the problem is singular: with only Neumann or periodic faces and no reaction, u is \
             fixed only up to a constant, and a solution exists only if the source balances the \
             boundary flux; add a Dirichlet or Robin face or a positive reaction"
                .to_string()
        })
    }

    /// Rewrites a factorisation failure as the property of the problem that causes it:
    /// a negative reaction or a negative Robin coefficient makes the operator indefinite.
    pub fn explain(&self, grid: &Grid, bcs: &BoundaryConditions, error: Error) -> Error {
        use crate::error::FactorisationFailure as F;
        let Error::Factorisation { kind: F::NotPositiveDefinite | F::Singular, .. } = &error else {
            return error;
        };
        let mut causes = Vec::new();
        if let Some(c) = &self.reaction {
            let min = minimum(c);
            if min < 0.0 {
                causes.push(format!(
                    "the reaction c has negative values (min {min:.6e}); c below −a·λ₁ (λ₁ the \
                     smallest eigenvalue of −Δ with these boundary conditions) makes \
                     −∇·(a∇u) + c u indefinite"
                ));
            }
        }
        for a in 0..grid.dim() {
            for s in 0..2 {
                if let FaceCondition::Robin { alpha, .. } = bcs.face(a, s) {
                    if *alpha < 0.0 {
                        causes.push(format!(
                            "face {} has a negative Robin coefficient alpha = {alpha} (α u + ∂u/∂n \
                             = g with the outward normal needs α ≥ 0 for a definite operator)",
                            face_name(a, s)
                        ));
                    }
                }
            }
        }
        if causes.is_empty() {
            if let Some(why) = self.singular_reason(grid, bcs) {
                causes.push(why);
            }
        }
        if causes.is_empty() {
            return error;
        }
        Error::invalid(format!("the operator is not positive definite: {}", causes.join("; ")))
    }
}
