//! PDE solvers on grids: elliptic, parabolic (θ-scheme) and Fokker–Planck (Scharfetter–Gummel
//! finite volumes), all on the sparse assembly of [`crate::sparse`].

pub mod elliptic;
pub mod fokker_planck;
pub mod parabolic;
pub mod stepper;

pub use elliptic::{EllipticProblem, LinearMethod};
pub use fokker_planck::{FokkerPlanckCheckpoint, FokkerPlanckProblem, FokkerPlanckRun};
pub use parabolic::{
    integrate, integrate_from, Checkpoint, ParabolicProblem, Source, StepControl, TimeSeries,
    TimeSettings,
};
pub use stepper::{ThetaStepper, TimeScheme};

/// What a time stepper's observer sees after each accepted step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    /// Accepted steps so far.
    pub step: usize,
    /// Time reached.
    pub t: f64,
    /// The step just taken.
    pub dt: f64,
    /// The end time of the run.
    pub t_end: f64,
}

/// The observer that watches nothing and never stops a run.
pub fn unobserved(_: &StepRecord) -> std::ops::ControlFlow<()> {
    std::ops::ControlFlow::Continue(())
}

/// Hands a run's state `S` to `save` every `every` steps (e.g. to write a checkpoint file).
pub struct Checkpointing<'a, S> {
    pub every: usize,
    pub save: &'a mut dyn FnMut(&S) -> crate::error::Result<()>,
}

#[cfg(test)]
mod tests;
