//! Atelier: fast neural style transfer on candle — the library shared by the command
//! line and the desktop app. `ARCHITECTURE.md` shows how the modules fit together.

#![warn(clippy::undocumented_unsafe_blocks)]

pub mod alloc;
#[cfg(feature = "app")]
pub mod app;
pub mod bench;
pub mod device;
pub mod error;
pub mod eval;
pub mod formats;
pub mod fsutil;
pub mod image_io;
pub mod install;
pub mod lossless_path;
pub mod model;
pub mod nn;
pub mod ops;
pub mod output_plan;
pub mod progress;
pub mod stylize;
pub mod train;
pub mod tuning;
pub mod video;

pub use error::{Error, Result};
