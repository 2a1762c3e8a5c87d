//! One error type for the library and the CLI.
//!
//! Every variant renders as a single line that names the offending input, so the CLI can
//! print `error: …` and exit with status 2 without a backtrace or a multi-line dump.

use std::path::{Path, PathBuf};

/// Errors raised by otgrid, in variants a caller can match. Each renders as one line that
/// names the offending input; none names a command-line flag (the CLI adds those).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value is out of its admissible range (zero spacing, wrong dimension, NaN, …).
    #[error("{0}")]
    Invalid(String),
    /// A configuration file (grid TOML, problem TOML) cannot be parsed or is inconsistent.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A results file is not laid out as `docs/file-format.md` says.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// An operating-system level I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A sparse factorisation failed: the matrix is not what the factorisation needs.
    #[error("{solver}: factorisation failed: {kind} ({detail})")]
    Factorisation { solver: &'static str, kind: FactorisationFailure, detail: String },
    /// An iterative method stopped without meeting its tolerance.
    #[error(
        "{method}: did not converge in {iterations} iterations (residual {residual:.3e}): {reason}"
    )]
    NotConverged { method: String, iterations: usize, residual: f64, reason: String },
    /// A numerical breakdown (non-finite values, an inaccurate direct solve, …).
    #[error("{0}")]
    Numerical(String),
    /// An input array lives on another grid than the run's (it can be resampled).
    #[error("{what}: {input} lives on {found}, but this run's grid is {expected}; resample it onto the run's grid, or choose the matching grid")]
    GridMismatch { what: String, input: String, found: String, expected: String },
    /// A method was asked to solve a problem outside its range (`suggestion` solves it).
    #[error("{method} does not solve this pair: {reason}; use {suggestion}")]
    UnsuitedMethod { method: &'static str, reason: String, suggestion: &'static str },
    /// A run's estimated peak memory exceeds the limit.
    #[error("this run needs about {} ({detail}), more than {limit_source} ({}); use a smaller grid, or raise the memory limit", crate::resources::human_bytes(*.needed), crate::resources::human_bytes(*.limit))]
    Memory { needed: u64, limit: u64, limit_source: &'static str, detail: String },
    /// A time-dependent run would take an absurd number of steps.
    #[error("t_end = {t_end} with dt = {dt} is {steps:.3e} steps (limit {limit}); raise dt (or use adaptive steps), or force the run")]
    TooManySteps { t_end: f64, dt: f64, steps: f64, limit: u64 },
    /// A failure reported by the HDF5 library while reading or writing a named file.
    #[error("{path}: HDF5: {message}")]
    Hdf5 { path: PathBuf, message: String },
    /// The operation needs a Cargo feature this build was made without.
    #[error("{what} needs otgrid built with the '{feature}' feature")]
    Unsupported { feature: &'static str, what: String },
}

/// Why a sparse factorisation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorisationFailure {
    /// Cholesky met a non-positive pivot: the matrix is not symmetric positive definite.
    NotPositiveDefinite,
    /// LU met a zero pivot: the matrix is singular.
    Singular,
    /// The symbolic analysis failed (pattern too large, …).
    Symbolic,
}

impl std::fmt::Display for FactorisationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FactorisationFailure::NotPositiveDefinite => {
                "the matrix is not symmetric positive definite"
            }
            FactorisationFailure::Singular => "the matrix is singular",
            FactorisationFailure::Symbolic => "symbolic analysis failed",
        })
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }

    pub(crate) fn config(path: &Path, message: impl Into<String>) -> Self {
        Error::Config { path: path.to_path_buf(), message: message.into() }
    }

    /// Shorthand for [`Error::Format`]: `path` is not in the expected format.
    pub fn format(path: &Path, message: impl Into<String>) -> Self {
        Error::Format { path: path.to_path_buf(), message: message.into() }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }

    #[cfg(feature = "hdf5")]
    pub(crate) fn hdf5(path: &Path, source: hdf5::Error) -> Self {
        Error::Hdf5 { path: path.to_path_buf(), message: one_line(&source.to_string()) }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(feature: &'static str, what: impl Into<String>) -> Self {
        Error::Unsupported { feature, what: what.into() }
    }

    /// The process exit status the CLI uses for this error.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

/// Parses TOML text into `T`; errors name `origin`, the line and the key, on one line.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let msg = one_line(e.message());
        let line = e.span().map(|s| {
            let start = s.start.min(text.len());
            let number = text[..start].matches('\n').count() + 1;
            (number, text.lines().nth(number - 1).unwrap_or("").trim())
        });
        match line {
            Some((n, content)) if !content.is_empty() && content.chars().count() <= 80 => {
                Error::config(origin, format!("line {n} ({content}): {msg}"))
            }
            Some((n, _)) => Error::config(origin, format!("line {n}: {msg}")),
            None => Error::config(origin, msg),
        }
    })
}

/// Collapses a possibly multi-line message (HDF5 error stacks, TOML snippets) onto one line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
