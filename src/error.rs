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
    /// Drops candle's captured backtrace: users need the message, not our stack.
    fn from(e: candle_core::Error) -> Self {
        // ATELIER_DEBUG keeps the backtrace for bug reports.
        if std::env::var_os("ATELIER_DEBUG").is_some() {
            return Error::Candle(e);
        }
        let mut e = e;
        while let candle_core::Error::WithBacktrace { inner, .. } = e {
            e = *inner;
        }
        Error::Candle(e)
    }
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
