//! Studies that combine the solvers into experiments with fitted rates: the sample-based
//! parabolic flow against a known target ([`batches`]).

pub mod batches;

pub use batches::{BatchStudy, BatchStudyResult};
