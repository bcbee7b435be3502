//! `atelier --open PHOTO --style NAME --screenshot OUT.png`: once the result has been on
//! screen for a few frames, the window is captured to a PNG and closed; any failure on the
//! way makes the process exit non-zero instead of hanging or writing a blank picture.

use super::AtelierApp;
use crate::image_io::{self, OutputFormat};
use image::RgbImage;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames drawn with the result before capturing: the shader needs one to show it.
const SETTLE_FRAMES: u32 = 3;
const TIME_LIMIT: Duration = Duration::from_secs(600);

pub struct Screenshot {
    path: PathBuf,
    requested: bool,
    shots: Option<Receiver<Arc<egui::ColorImage>>>,
    frames_since_done: u32,
    started: Instant,
}

impl Screenshot {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            requested: false,
            shots: None,
            frames_since_done: 0,
            started: Instant::now(),
        }
    }
}

impl AtelierApp {
    /// Under `--screenshot`, reports `message` and marks the run failed; otherwise the
    /// notice in the window says it.
    pub(super) fn fail_screenshot(&self, message: impl std::fmt::Display) {
        if self.screenshot.is_some() {
            eprintln!("error: {message}");
            self.failed.store(true, Ordering::SeqCst);
        }
    }

    /// Runs after each frame under `--screenshot`.
    pub(super) fn screenshot_step(&mut self, ctx: &egui::Context) {
        let Some(s) = &mut self.screenshot else {
            return;
        };
        // The screenshot event arrives a frame after it is requested.
        if let Some(img) = s.shots.as_ref().and_then(|rx| rx.try_recv().ok()) {
            let rgb = RgbImage::from_fn(img.size[0] as u32, img.size[1] as u32, |x, y| {
                let c = img.pixels[y as usize * img.size[0] + x as usize];
                image::Rgb([c.r(), c.g(), c.b()])
            });
            match image_io::save_rgb(&rgb, &s.path, OutputFormat::Png, true) {
                Ok(()) => eprintln!("screenshot: {}", s.path.display()),
                Err(e) => {
                    eprintln!("error: {e}");
                    self.failed.store(true, Ordering::SeqCst);
                }
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let done = self.state.doc.as_ref().is_some_and(|d| d.result.is_some());
        let failed = self.failed.load(Ordering::SeqCst);
        if failed || s.started.elapsed() > TIME_LIMIT {
            if !failed {
                eprintln!("error: no result within 10 minutes");
                self.failed.store(true, Ordering::SeqCst);
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        if done && !s.requested {
            s.frames_since_done += 1;
            if s.frames_since_done >= SETTLE_FRAMES {
                s.requested = true;
                let (tx, rx) = channel();
                s.shots = Some(rx);
                let c = ctx.clone();
                ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
                    egui::ScreenshotCallback::new(move |img| {
                        let _ = tx.send(img);
                        c.request_repaint();
                    }),
                ));
            }
        }
        ctx.request_repaint();
    }
}
