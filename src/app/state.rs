//! What the app holds while it runs and forgets on exit: the open photo or video, the
//! message in the status line, a question waiting for an answer. What it remembers
//! between launches is [`Settings`](super::settings::Settings), kept apart so that nothing
//! transient is ever persisted.

use super::dialogs::FileBrowser;
use super::document::Document;
use super::video_panel::VideoPanel;
use std::fmt;
use std::path::PathBuf;

pub struct State {
    pub doc: Option<Document>,
    /// Set while a video is open: its scrub bar and export.
    pub video: Option<VideoPanel>,
    pub notice: Option<Notice>,
    /// The device the worker opened, in its own words.
    pub device_name: String,
    /// A save waiting for "replace the existing file?".
    pub pending_save: Option<PendingSave>,
    /// The app's own file browser, while it is open.
    pub browser: Option<FileBrowser>,
    /// Try the system's file dialog first (off once it failed to open, or where there is
    /// none).
    pub native_dialogs: bool,
    /// A reopened session's photo (by path) and painted mask, applied when it opens.
    pub pending_mask: Option<(PathBuf, image::GrayImage)>,
    /// The keyboard shortcuts window is open.
    pub show_shortcuts: bool,
    next_id: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            doc: None,
            video: None,
            notice: None,
            device_name: "starting…".into(),
            pending_save: None,
            browser: None,
            native_dialogs: true,
            show_shortcuts: false,
            pending_mask: None,
            next_id: 1,
        }
    }
}

impl State {
    /// A fresh number for a request to the worker or a job, so that what arrives for a
    /// request since replaced is recognised and dropped.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// A save waiting for "replace the existing file?".
pub struct PendingSave {
    pub path: PathBuf,
    /// The video export rather than the still result.
    pub video: bool,
}

/// The message in the status line. Failures keep their [`crate::Error`] and are worded
/// only when drawn.
#[derive(Debug)]
pub enum Notice {
    Info(String),
    /// A file written; the status line offers to show its folder.
    Saved(PathBuf),
    /// Done, but with something the user must know; drawn like an error.
    Warning(String),
    /// What could not be done (empty when the error says it all) and why.
    Error {
        what: String,
        error: crate::Error,
    },
}

impl Notice {
    pub fn error(what: impl Into<String>, error: crate::Error) -> Self {
        Self::Error {
            what: what.into(),
            error,
        }
    }

    /// A request the app turned down, in its own words.
    pub fn refusal(message: impl Into<String>) -> Self {
        Self::from(crate::Error::Invalid(message.into()))
    }

    pub fn is_error(&self) -> bool {
        !matches!(self, Self::Info(_) | Self::Saved(_))
    }
}

impl From<crate::Error> for Notice {
    fn from(error: crate::Error) -> Self {
        Self::error("", error)
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Info(m) | Self::Warning(m) => f.write_str(m),
            Self::Saved(p) => write!(f, "Saved to {}", p.display()),
            Self::Error { what, error } if what.is_empty() => write!(f, "{error}"),
            Self::Error { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_worded_from_their_error_when_shown() {
        let e = crate::Error::image(std::path::Path::new("/p/broken.jpg"), "not a JPEG");
        let n = Notice::error("Could not open /p/broken.jpg", e);
        assert!(n.is_error());
        assert_eq!(
            n.to_string(),
            "Could not open /p/broken.jpg: /p/broken.jpg: not a JPEG"
        );
        assert_eq!(
            Notice::refusal("Pick a style first.").to_string(),
            "Pick a style first."
        );
        assert!(Notice::Warning("Exported, but".into()).is_error());
        assert!(!Notice::Info("Saved".into()).is_error());
    }
}
