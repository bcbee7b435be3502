//! Videos in the app: a scrub bar picks the frame that is shown and stylised like a
//! photo; "Export video" runs the library's video pipeline as a job, with progress and
//! cancel. The panel emits [`Command`]s and builds the jobs; the app runs them.

use super::command::Command;
use super::jobs::{ExportJob, Job};
use crate::video::VideoInfo;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// An export in progress, sharing its counter and brake with the job.
pub struct Export {
    pub output: PathBuf,
    pub cancel: Arc<AtomicBool>,
    pub done: Arc<AtomicU64>,
    pub total: Option<u64>,
}

pub struct VideoPanel {
    pub path: PathBuf,
    pub info: VideoInfo,
    pub time_s: f64,
    /// The frame being fetched (its request number), so a drag does not queue a decode
    /// per pixel moved and a replaced request's frame is dropped.
    pub fetching: Option<u64>,
    pub export: Option<Export>,
}

impl VideoPanel {
    pub fn new(path: PathBuf, info: VideoInfo) -> Self {
        Self {
            path,
            info,
            time_s: 0.0,
            fetching: None,
            export: None,
        }
    }

    /// The job that decodes the frame at `t`, as request `id`.
    pub fn fetch(&mut self, id: u64, t: f64) -> Job {
        self.fetching = Some(id);
        self.time_s = t;
        Job::VideoFrame {
            id,
            path: self.path.clone(),
            time_s: t,
        }
    }

    /// Shows `job`'s progress from now on and returns it to be run.
    pub fn start_export(&mut self, job: ExportJob) -> Job {
        self.export = Some(Export {
            output: job.output.clone(),
            cancel: job.cancel.clone(),
            done: job.frames_done.clone(),
            total: self.info.frames,
        });
        Job::ExportVideo(job)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<Command>) {
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
            let released = slider.drag_stopped() || (slider.changed() && !slider.dragged());
            if released && self.fetching.is_none() {
                out.push(Command::Seek(t));
            }
            self.time_s = t;
            match &self.export {
                None => {
                    if ui
                        .button("Export video…")
                        .on_hover_text("Stylise every frame with the current style, strength and colour setting; audio is kept")
                        .clicked()
                    {
                        out.push(Command::ExportVideoDialog);
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
    }
}
