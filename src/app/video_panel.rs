//! Videos in the app: a scrub bar picks the frame that is shown and stylised like a
//! photo; "Export video" runs the library's video pipeline on its own thread with
//! progress and cancel.

use crate::device::DeviceChoice;
use crate::video::{VideoInfo, VideoOptions, VideoReport};
use image::RgbImage;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;

pub struct Export {
    pub output: PathBuf,
    pub cancel: Arc<AtomicBool>,
    pub done: Arc<AtomicU64>,
    pub total: Option<u64>,
    result: Receiver<crate::Result<VideoReport>>,
}

pub enum VideoAction {
    /// Show and stylise the frame at this time.
    Seek(f64),
    Export,
}

pub struct VideoPanel {
    pub path: PathBuf,
    pub info: VideoInfo,
    pub time_s: f64,
    /// The frame being fetched, so a drag does not queue a decode per pixel moved.
    pub fetching: bool,
    pub export: Option<Export>,
}

/// Frames for the canvas are fetched at most this large.
pub const SCRUB_MAX_SIDE: u32 = 2048;

impl VideoPanel {
    pub fn new(path: PathBuf, info: VideoInfo) -> Self {
        Self {
            path,
            info,
            time_s: 0.0,
            fetching: false,
            export: None,
        }
    }

    /// Decodes the frame at `t` on a background thread.
    pub fn fetch_frame(
        &mut self,
        t: f64,
        ctx: &egui::Context,
    ) -> Receiver<crate::Result<RgbImage>> {
        self.fetching = true;
        self.time_s = t;
        let (tx, rx) = channel();
        let path = self.path.clone();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(crate::video::frame_at(&path, t, Some(SCRUB_MAX_SIDE)));
            ctx.request_repaint();
        });
        rx
    }

    /// Starts exporting the whole video with `style` to `output`.
    pub fn start_export(
        &mut self,
        style: PathBuf,
        output: PathBuf,
        device: DeviceChoice,
        opts: VideoOptions,
        ctx: &egui::Context,
    ) {
        let cancel = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (tx, rx) = channel();
        let (input, out) = (self.path.clone(), output.clone());
        let (c, d, ctx) = (cancel.clone(), done.clone(), ctx.clone());
        std::thread::Builder::new()
            .name("atelier-video-export".into())
            .spawn(move || {
                let r = (|| {
                    let device = device.open()?;
                    let stylizer = crate::stylize::Stylizer::load(&style, &device)?;
                    let mut on_frame = |n: u64, _| {
                        d.store(n, Ordering::Relaxed);
                        ctx.request_repaint();
                    };
                    crate::video::stylize_video(
                        &stylizer,
                        &input,
                        &out,
                        &opts,
                        &mut on_frame,
                        Some(&c),
                    )
                })();
                let _ = tx.send(r);
                ctx.request_repaint();
            })
            .expect("spawn the export thread");
        self.export = Some(Export {
            output,
            cancel,
            done,
            total: self.info.frames,
            result: rx,
        });
    }

    /// The export's outcome once it has ended.
    pub fn poll_export(&mut self) -> Option<(PathBuf, crate::Result<VideoReport>)> {
        let r = self.export.as_ref()?.result.try_recv().ok()?;
        let e = self.export.take()?;
        Some((e.output, r))
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<VideoAction> {
        let mut action = None;
        let duration = self.info.duration_s.unwrap_or(0.0).max(0.0);
        ui.horizontal(|ui| {
            ui.label(format!(
                "Video {}×{} · {:.2} fps",
                self.info.width,
                self.info.height,
                self.info.fps()
            ));
            let mut t = self.time_s;
            let slider = ui.add_enabled(
                self.export.is_none(),
                egui::Slider::new(&mut t, 0.0..=duration)
                    .text("Frame time (s)")
                    .fixed_decimals(2),
            );
            // Seek when the drag ends or on a click, not on every pixel of a drag.
            if (slider.drag_stopped() || (slider.changed() && !slider.dragged())) && !self.fetching {
                action = Some(VideoAction::Seek(t));
            }
            self.time_s = t;
            match &self.export {
                None => {
                    if ui
                        .button("Export video…")
                        .on_hover_text("Stylise every frame with the current style, strength and colour setting; audio is kept")
                        .clicked()
                    {
                        action = Some(VideoAction::Export);
                    }
                }
                Some(e) => {
                    let n = e.done.load(Ordering::Relaxed);
                    let frac = e.total.map_or(0.0, |t| n as f32 / t.max(1) as f32);
                    ui.add(
                        egui::ProgressBar::new(frac)
                            .desired_width(160.0)
                            .text(format!("frame {n} / {}", e.total.map_or("?".into(), |t| t.to_string()))),
                    );
                    if ui.button("Cancel export").clicked() {
                        e.cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
        });
        action
    }
}
