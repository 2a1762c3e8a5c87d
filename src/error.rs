//! One error type for the library and the CLI.
//!
//! Every variant renders as a single line that names the offending input, so the CLI can
//! print `error: …` and exit with status 2 without a backtrace or a multi-line dump.

use std::path::{Path, PathBuf};

/// Errors raised by otgrid. All of them are caused by input the user can fix
/// (a grid definition, a field, a file, a path), so the CLI exits with status 2.
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
    /// A linear or nonlinear solver failed to converge or broke down.
    #[error("{0}")]
    Solver(String),
    /// A failure reported by the HDF5 library while reading or writing a named file.
    #[error("{path}: HDF5: {message}")]
    Hdf5 { path: PathBuf, message: String },
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

    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        Error::Format { path: path.to_path_buf(), message: message.into() }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn hdf5(path: &Path, source: hdf5::Error) -> Self {
        Error::Hdf5 { path: path.to_path_buf(), message: one_line(&source.to_string()) }
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
