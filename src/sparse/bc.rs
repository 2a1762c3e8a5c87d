//! Boundary conditions per face for the finite-difference assembly.
//!
//! On a cell-centred grid a face lies half a cell from the first unknown. Each condition is
//! imposed through a ghost value beyond the face that is affine in the adjacent unknown,
//! `u_ghost = γ u_0 + δ`, chosen so that the face value `(u_ghost + u_0)/2` and the face
//! derivative `(u_ghost − u_0)/h` (outward) satisfy the condition:
//!
//! | condition                       | γ                               | δ                      |
//! |---------------------------------|---------------------------------|------------------------|
//! | Dirichlet `u = g`               | −1                              | 2g                     |
//! | Neumann `∂u/∂n = g`             | 1                               | h g                    |
//! | Robin `α u + ∂u/∂n = g`         | (1/h − α/2)/(1/h + α/2)         | g/(1/h + α/2)          |
//!
//! `n` is the outward normal. Periodic axes have no faces.

use crate::error::{Error, Result};
use crate::grid::{BoundaryKind, Grid, AXIS_NAMES};
use std::sync::Arc;

/// A shared function of a point (x, y, z order).
pub type PointFn = Arc<dyn Fn(&[f64]) -> f64 + Send + Sync>;

/// Boundary data: a constant or a function of the point on the face (x, y, z order).
#[derive(Clone)]
pub enum BoundaryValue {
    Constant(f64),
    Function(PointFn),
}

impl BoundaryValue {
    /// Wraps a closure of the face point.
    pub fn function(f: impl Fn(&[f64]) -> f64 + Send + Sync + 'static) -> Self {
        BoundaryValue::Function(Arc::new(f))
    }

    /// The value at face point `p`.
    pub fn at(&self, p: &[f64]) -> f64 {
        match self {
            BoundaryValue::Constant(c) => *c,
            BoundaryValue::Function(f) => f(p),
        }
    }
}

impl std::fmt::Debug for BoundaryValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundaryValue::Constant(c) => write!(f, "Constant({c})"),
            BoundaryValue::Function(_) => f.write_str("Function"),
        }
    }
}

/// The condition on one face.
#[derive(Clone, Debug)]
pub enum FaceCondition {
    /// The axis wraps around (both faces of the axis, and only on a periodic grid axis).
    Periodic,
    /// `u = g` on the face.
    Dirichlet(BoundaryValue),
    /// `∂u/∂n = g` (outward normal derivative).
    Neumann(BoundaryValue),
    /// `α u + ∂u/∂n = g`.
    Robin { alpha: f64, value: BoundaryValue },
}

impl FaceCondition {
    /// Ghost coefficients `(γ, δ)` for cell width `h` and boundary value `g`.
    pub(crate) fn ghost(&self, h: f64, g: f64) -> (f64, f64) {
        match self {
            FaceCondition::Periodic => unreachable!("periodic faces have neighbours"),
            FaceCondition::Dirichlet(_) => (-1.0, 2.0 * g),
            FaceCondition::Neumann(_) => (1.0, h * g),
            FaceCondition::Robin { alpha, .. } => {
                let d = 1.0 / h + alpha / 2.0;
                ((1.0 / h - alpha / 2.0) / d, g / d)
            }
        }
    }

    /// The boundary data of a non-periodic face.
    pub(crate) fn value(&self) -> Option<&BoundaryValue> {
        match self {
            FaceCondition::Periodic => None,
            FaceCondition::Dirichlet(v) | FaceCondition::Neumann(v) => Some(v),
            FaceCondition::Robin { value, .. } => Some(value),
        }
    }
}

/// Conditions on the two faces (lower, upper) of every axis, x first.
#[derive(Clone, Debug)]
pub struct BoundaryConditions {
    faces: Vec<[FaceCondition; 2]>,
}

impl BoundaryConditions {
    /// Homogeneous conditions of the grid's boundary kinds (u = 0, ∂u/∂n = 0, or periodic).
    pub fn homogeneous(grid: &Grid) -> BoundaryConditions {
        let zero = || BoundaryValue::Constant(0.0);
        BoundaryConditions {
            faces: grid
                .boundaries()
                .into_iter()
                .map(|k| match k {
                    BoundaryKind::Periodic => [FaceCondition::Periodic, FaceCondition::Periodic],
                    BoundaryKind::Neumann => {
                        [FaceCondition::Neumann(zero()), FaceCondition::Neumann(zero())]
                    }
                    BoundaryKind::Dirichlet => {
                        [FaceCondition::Dirichlet(zero()), FaceCondition::Dirichlet(zero())]
                    }
                })
                .collect(),
        }
    }

    /// Replaces the condition on face `side` (0 lower, 1 upper) of `axis`.
    pub fn set(mut self, axis: usize, side: usize, condition: FaceCondition) -> Self {
        self.faces[axis][side] = condition;
        self
    }

    /// The condition on face `side` of `axis`.
    pub fn face(&self, axis: usize, side: usize) -> &FaceCondition {
        &self.faces[axis][side]
    }

    /// Checks that the conditions fit `grid`: one pair per axis, periodic exactly on the
    /// periodic axes, finite Robin coefficients.
    pub fn validate(&self, grid: &Grid) -> Result<()> {
        if self.faces.len() != grid.dim() {
            return Err(Error::invalid(format!(
                "boundary conditions for {} axes on a {}D grid",
                self.faces.len(),
                grid.dim()
            )));
        }
        for (a, pair) in self.faces.iter().enumerate() {
            let periodic_grid = grid.axis(a).boundary.is_periodic();
            for face in pair {
                let periodic_face = matches!(face, FaceCondition::Periodic);
                if periodic_grid != periodic_face {
                    return Err(Error::invalid(format!(
                        "axis {} is {} on the grid but has a {} face condition",
                        AXIS_NAMES[a],
                        grid.axis(a).boundary,
                        if periodic_face { "periodic" } else { "non-periodic" }
                    )));
                }
                if let FaceCondition::Robin { alpha, .. } = face {
                    if !alpha.is_finite() {
                        return Err(Error::invalid(format!(
                            "Robin coefficient {alpha} is not finite"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
