//! PDE solvers on grids: elliptic, parabolic (θ-scheme) and Fokker–Planck (Scharfetter–Gummel
//! finite volumes), all on the sparse assembly of [`crate::sparse`].

pub mod elliptic;
pub mod fokker_planck;
pub mod parabolic;
pub mod stepper;

pub use elliptic::{EllipticProblem, LinearMethod};
pub use fokker_planck::{FokkerPlanckCheckpoint, FokkerPlanckProblem, FokkerPlanckRun};
pub use parabolic::{integrate, integrate_from, Checkpoint, Checkpointing, ParabolicProblem, Source, StepControl, TimeSeries, TimeSettings};
pub use stepper::{ThetaStepper, TimeScheme};

#[cfg(test)]
mod tests;
