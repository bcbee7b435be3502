//! Library error type: every failure names what it was working on, so a user sees
//! which file or which tensor is at fault rather than a bare backend message.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input or output image could not be read, decoded, encoded or written.
    #[error("{}: {message}", path.display())]
    Image { path: PathBuf, message: String },

    /// A model file or folder is missing, malformed or holds the wrong tensors.
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },

    /// A style named on the command line matched no bundled or user model.
    #[error(
        "no style named '{name}' (try `atelier models` to list them, or pass a model file path)"
    )]
    UnknownStyle { name: String },

    /// A style name that several styles answer to: picking one would be a guess.
    #[error(
        "{} styles are named '{name}': {}; pass one of these paths to --style, or rename all but one",
        paths.len(),
        list_paths(paths)
    )]
    AmbiguousStyle { name: String, paths: Vec<PathBuf> },

    /// A large buffer could not be had: reported instead of aborting the process.
    #[error("not enough memory for {what} ({} MB needed)", bytes.div_ceil(1 << 20))]
    OutOfMemory { what: String, bytes: u64 },

    /// Arguments or options that cannot work together.
    #[error("{0}")]
    Invalid(String),

    /// The requested device is not compiled in or not present.
    #[error("device: {0}")]
    Device(String),

    /// A training step produced NaN or infinite values (`what` says which); nothing of it
    /// was applied.
    #[error("{what}")]
    NonFinite { what: String },

    /// The caller asked us to stop.
    #[error("cancelled")]
    Cancelled,

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A tensor operation failed (out of device memory, driver errors…).
    #[error("compute error: {0}")]
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(without_backtrace(e))
    }
}

/// Drops the backtraces candle captures under `RUST_BACKTRACE=1`, at any depth: users
/// need the message, not our stack. [`Tuning::backtraces`](crate::tuning::Tuning::backtraces)
/// keeps them for bug reports.
pub fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    use candle_core::Error as C;
    if crate::tuning::current().backtraces {
        return e;
    }
    match e {
        C::WithBacktrace { inner, .. } => without_backtrace(*inner),
        C::Context { inner, context } => C::Context {
            inner: Box::new(without_backtrace(*inner)),
            context,
        },
        C::WithPath { inner, path } => C::WithPath {
            inner: Box::new(without_backtrace(*inner)),
            path,
        },
        other => other,
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    pub fn image(path: &Path, message: impl std::fmt::Display) -> Self {
        Error::Image {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub fn model(path: &Path, message: impl std::fmt::Display) -> Self {
        Error::Model {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub fn io(context: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
}
