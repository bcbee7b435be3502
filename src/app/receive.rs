//! What arrives from off the UI thread, turned into state and textures once a frame: the
//! worker's previews, tiles and results, the jobs' results, and a finished training.
//! Anything that belongs to a request since replaced is dropped here.

use super::cache::Key;
use super::document::Document;
use super::jobs::{Job, JobResult};
use super::state::Notice;
use super::training::TrainingOutcome;
use super::video_panel::VideoPanel;
use super::worker::WorkerEvent;
use super::AtelierApp;
use image::RgbImage;
use std::path::PathBuf;

impl AtelierApp {
    pub(super) fn receive(&mut self, ctx: &egui::Context) {
        self.receive_worker_events();
        while let Some(r) = self.jobs.try_recv() {
            self.receive_job(r, ctx);
        }
        if let Some(TrainingOutcome::Finished { model, name }) = self.training.poll(ctx) {
            self.jobs.spawn(Job::InstallTrained {
                model,
                name,
                registry: self.gallery.registry.clone(),
            });
        }
    }

    fn current_job(&self) -> Option<u64> {
        self.state
            .doc
            .as_ref()
            .and_then(|d| d.job.as_ref().map(|j| j.0))
    }

    fn receive_worker_events(&mut self) {
        while let Ok(ev) = self.worker.events.try_recv() {
            let current = self.current_job();
            match ev {
                WorkerEvent::Device(d) => self.state.device_name = d,
                WorkerEvent::Preview { id, image, ms } if Some(id) == current => {
                    let doc = self.state.doc.as_mut().expect("job implies a document");
                    let image = if image.dimensions() == doc.display_photo.dimensions() {
                        image
                    } else {
                        let [w, h] = doc.display_size();
                        crate::stylize::resample::bilinear(&image, w, h)
                    };
                    self.display.write_styled(0, 0, &image);
                    doc.styled_display = Some(image);
                    doc.preview_ms = Some(ms);
                }
                WorkerEvent::Tile { id, x, y, image } if Some(id) == current => {
                    let doc = self.state.doc.as_mut().expect("job implies a document");
                    if doc.streams_tiles() {
                        self.display.write_styled(x, y, &image);
                        let [w, h] = doc.display_size();
                        let shown = doc
                            .styled_display
                            .get_or_insert_with(|| RgbImage::new(w, h));
                        image::imageops::replace(shown, &image, x.into(), y.into());
                    }
                }
                WorkerEvent::Started { id, expected } if Some(id) == current => {
                    if let Some(d) = self.state.doc.as_mut() {
                        d.progress = Some(crate::progress::PassProgress::new(expected));
                    }
                }
                WorkerEvent::Progress { id, fraction } if Some(id) == current => {
                    if let Some(p) = self.state.doc.as_mut().and_then(|d| d.progress.as_mut()) {
                        p.reported = fraction;
                    }
                }
                WorkerEvent::Done { id, image, ms } if Some(id) == current => {
                    let doc = self.state.doc.as_mut().expect("job implies a document");
                    let (_, style) = doc.job.take().expect("current job");
                    if !doc.streams_tiles() || doc.styled_display.is_none() {
                        let [w, h] = doc.display_size();
                        let shown = crate::stylize::resample::bilinear(&image, w, h);
                        self.display.write_styled(0, 0, &shown);
                        doc.styled_display = Some(shown);
                    }
                    let key = super::cache::scaled_key(doc.key, doc.job_scale);
                    self.cache.insert(Key::new(key, &style), image.clone());
                    doc.result = Some((image, style));
                    doc.result_scale = doc.job_scale;
                    doc.full_ms = Some(ms);
                    doc.progress = None;
                    self.display.invalidate();
                }
                WorkerEvent::Failed { id, error } if Some(id) == current => {
                    if let Some(d) = self.state.doc.as_mut() {
                        d.job = None;
                    }
                    self.fail_screenshot(&error);
                    self.state.notice = Some(Notice::error("Could not stylise", error));
                }
                // Events of a request that was replaced by a newer one.
                _ => {}
            }
        }
    }

    fn receive_job(&mut self, r: JobResult, ctx: &egui::Context) {
        match r {
            JobResult::Photo {
                path,
                image: Ok(image),
            } => {
                self.state.video = None;
                self.set_photo(path, image, ctx);
            }
            JobResult::Photo {
                path,
                image: Err(e),
            } => {
                let what = path
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the clipboard".into());
                self.fail_screenshot(format_args!("could not open {what}: {e}"));
                self.state.notice = Some(Notice::error(could_not_open(&what, &e), e));
            }
            JobResult::Video {
                path,
                info: Ok(info),
            } => {
                self.settings.add_recent(path.clone());
                self.state.video = Some(VideoPanel::new(path, info));
                self.fetch_frame(0.0);
            }
            JobResult::Video { path, info: Err(e) } => {
                let what = path.display().to_string();
                self.state.notice = Some(Notice::error(could_not_open(&what, &e), e));
            }
            JobResult::Frame { id, image } => {
                let Some(v) = self.state.video.as_mut() else {
                    return;
                };
                if v.fetching != Some(id) {
                    return;
                }
                v.fetching = None;
                let (path, time_s) = (v.path.clone(), v.time_s);
                match image {
                    Ok(frame) => {
                        self.set_photo(Some(path), frame, ctx);
                        if let Some(d) = self.state.doc.as_mut() {
                            d.name = format!("{} @ {time_s:.2} s", d.name);
                        }
                    }
                    Err(e) => self.state.notice = Some(e.into()),
                }
            }
            JobResult::Saved(Ok(p)) => {
                self.state.notice = Some(Notice::Saved(p));
            }
            JobResult::Saved(Err(e)) => self.state.notice = Some(Notice::error("Not saved", e)),
            JobResult::Session(Ok((session, mask))) => self.open_session(session, mask),
            JobResult::Session(Err(e)) => {
                self.state.notice = Some(Notice::error("Could not open the session", e))
            }
            JobResult::Imported(Ok(style)) => {
                self.gallery.added(style.path.clone());
                self.reload_styles();
                self.gallery.selected = Some(style.path);
                self.state.notice = Some(Notice::Info(format!("Imported '{}'", style.name)));
                self.restyle();
            }
            JobResult::Imported(Err(e)) => {
                self.state.notice = Some(Notice::error("Import failed", e))
            }
            JobResult::Trained(Ok(path)) => {
                self.gallery.added(path.clone());
                self.reload_styles();
                self.gallery.selected = Some(path);
                self.restyle();
            }
            JobResult::Trained(Err(e)) => {
                self.state.notice = Some(Notice::error("Trained, but not installed", e))
            }
            JobResult::Exported { output, report } => self.exported(output, report),
            JobResult::Picture {
                generation,
                pictures,
            } => self.gallery.receive_pictures(ctx, generation, pictures),
            JobResult::PicturesDone { generation } => self.gallery.pictures_done(generation),
        }
    }

    /// Takes a reopened session's settings and style, then opens its photo; the mask
    /// follows once the photo is there.
    fn open_session(&mut self, s: super::session::Session, mask: Option<image::GrayImage>) {
        self.settings.strength = s.strength.clamp(0.0, 1.0);
        self.settings.preserve_colors = s.preserve_colors;
        self.settings.stroke_scale = s.stroke_scale.clamp(
            crate::stylize::stroke::MIN_SCALE,
            crate::stylize::stroke::MAX_SCALE,
        );
        if s.style.is_file() {
            self.gallery.selected = Some(s.style.clone());
            self.settings.style = Some(s.style);
        } else {
            self.state.notice = Some(Notice::Warning(format!(
                "The session's style {} is gone; pick another.",
                s.style.display()
            )));
        }
        self.state.pending_mask = mask.map(|m| (s.photo.clone(), m));
        self.display.invalidate();
        self.jobs.spawn(super::jobs::Job::OpenPhoto(s.photo));
    }

    /// The mask of a reopened session, once its photo is the document.
    fn apply_pending_mask(&mut self) {
        let Some((photo, mask)) = self.state.pending_mask.take() else {
            return;
        };
        let Some(doc) = self.state.doc.as_mut() else {
            return;
        };
        if doc.path.as_ref() != Some(&photo) {
            return;
        }
        let [w, h] = doc.display_size();
        doc.mask = Some(std::sync::Arc::new(crate::stylize::mask::fit(&mask, w, h)));
        self.display.write_mask(doc.mask.as_deref(), [0, 0, w, h]);
    }

    /// Replaces the document and restyles it with the selected style.
    fn set_photo(&mut self, path: Option<PathBuf>, photo: RgbImage, ctx: &egui::Context) {
        if let Some(p) = &path {
            self.settings.add_recent(p.clone());
        }
        let same_size = self
            .state
            .doc
            .as_ref()
            .is_some_and(|d| d.photo.dimensions() == photo.dimensions());
        let doc = Document::new(path, photo, self.display.max_texture_side);
        self.display.set_photo(ctx, &doc.display_photo);
        // A warning (a style asked for that does not exist) outlives the photo's opening.
        if !matches!(self.state.notice, Some(Notice::Warning(_))) {
            self.state.notice = None;
        }
        self.state.doc = Some(doc);
        self.apply_pending_mask();
        self.reset_history();
        // Scrubbing a video keeps the view; a new photo is fitted.
        if !same_size {
            self.canvas.fit = true;
        }
        self.restyle();
    }

    fn exported(&mut self, output: PathBuf, report: crate::Result<crate::video::VideoReport>) {
        if let Some(v) = self.state.video.as_mut() {
            if v.export.as_ref().is_some_and(|e| e.output == output) {
                v.export = None;
            }
        }
        self.state.notice = Some(match report {
            Ok(rep) if !rep.warnings.is_empty() => Notice::Warning(format!(
                "Exported {} frames to {}, but: {}",
                rep.frames,
                output.display(),
                rep.warnings.join("; ")
            )),
            Ok(rep) => Notice::Info(format!(
                "Exported {} frames to {} ({:.1} frames/s, flicker ratio {:.2})",
                rep.frames,
                output.display(),
                rep.frames as f64 / rep.seconds.max(1e-9),
                rep.flicker_ratio
            )),
            Err(crate::Error::Cancelled) => {
                Notice::Info("Export cancelled; nothing was written.".into())
            }
            Err(e) => Notice::error("Export failed", e),
        });
    }
}

/// "Could not open X", without X when the error names it already.
fn could_not_open(what: &str, e: &crate::Error) -> String {
    if e.to_string().contains(what) {
        "Could not open".into()
    } else {
        format!("Could not open {what}")
    }
}
