//! What the user asked for. Menus, shortcuts and panels only push a [`Command`] while they
//! draw; [`AtelierApp::execute`] carries them out after drawing, in one place, so no
//! widget reaches into the app's logic and every action can be driven by tests.

use super::cache::Key;
use super::dialogs::{self, FileBrowser, Native, Purpose};
use super::jobs::{ExportJob, Job, SaveJob};
use super::state::{Notice, PendingSave};
use super::AtelierApp;
use crate::formats::{kind_of, Kind};
use crate::model::registry::StyleEntry;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum Command {
    /// Ask for a photo or video to open.
    OpenDialog,
    /// Open a path as what it is: a photo, a video, or a model to add to the styles
    /// (a drop, a recent file, `--open`).
    Open(PathBuf),
    /// Ask for a session (`.atelier.json`, saved beside each export) to reopen.
    OpenSessionDialog,
    /// Read an image from the clipboard.
    Paste,
    /// An image pasted with Ctrl+V, as egui delivered it.
    PasteImage(std::sync::Arc<egui::ColorImage>),
    /// Ask where to save the result.
    SaveDialog,
    /// Save the result into the export folder (Pictures/Atelier) under a free name.
    Export,
    /// Show a folder in the system's file manager.
    OpenFolder(PathBuf),
    /// Ask for a file or folder: the system's dialog, or the app's own browser.
    Browse(Purpose),
    /// The answer to [`Command::Browse`].
    Picked(Purpose, PathBuf),
    /// Save the result here; asks first if the file exists.
    Save(PathBuf),
    /// The answer to "replace the existing file?".
    ConfirmOverwrite(bool),
    SelectStyle(PathBuf),
    RenameStyle(StyleEntry, String),
    DeleteStyle(StyleEntry),
    /// Ask for a model file to import.
    ImportDialog,
    /// Ask for a painting to use as an instant style.
    UsePaintingDialog,
    /// Make an instant style from this painting, add it to the gallery and select it.
    UsePainting(PathBuf),
    /// Mix two instant styles: `weight` of the second, the rest of the first.
    MixStyles {
        a: PathBuf,
        b: PathBuf,
        weight: f32,
    },
    /// Open the training panel with this instant style's painting filled in.
    TrainFullQuality(StyleEntry),
    /// Show and stylise the open video's frame at this time (seconds).
    Seek(f64),
    /// Ask where to export the open video.
    ExportVideoDialog,
    /// Export the open video here; asks first if the file exists.
    ExportVideo(PathBuf),
    /// `auto`, `cpu`, `cuda[:N]` or `metal`, for the work that follows.
    SetDevice(String),
    Fit,
    ActualSize,
    /// Zoom about the canvas's centre by this factor.
    Zoom(f32),
    ToggleCompare,
    /// The strength or colour setting changed: the CPU fallback must blend again.
    BlendChanged,
    /// Open the bundled example photo.
    TryExample,
    /// Show or hide the keyboard shortcuts.
    ToggleShortcuts,
    /// Paint the strength mask along these points (display pixels) with the brush.
    Paint(Vec<[f32; 2]>),
    /// Swap where the style goes and where it does not.
    InvertMask,
    /// Remove the mask: full strength everywhere.
    ClearMask,
    /// The stroke-scale slider was let go: restyle at the new scale.
    StrokeScaleChanged,
    /// Set the stroke scale for the open photo as `--stroke-scale auto` would, and restyle.
    AutoStrokeScale,
    /// Take the brush in hand (drags paint) or put it down (drags pan).
    ToggleBrush,
    Undo,
    Redo,
    /// Close the window (settings are saved as on any close).
    Quit,
}

/// Where on the window files were dropped (or are held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropTarget {
    /// The canvas, or anywhere that is not the gallery, or nobody knows where.
    Canvas,
    /// The style gallery.
    Gallery,
}

impl Command {
    /// What dropping `path` on `target` asks for, the one place that decides it. On the
    /// gallery a picture becomes an instant style; everything else, and anything dropped
    /// on the canvas, opens as what it is ([`Command::Open`]): a photo, a video, a model
    /// to import (on the gallery as anywhere), a session. A name that says nothing is
    /// opened as a photo even on the gallery, as the importer only takes a painting by
    /// its extension.
    pub fn dropped(path: PathBuf, target: DropTarget) -> Command {
        match (target, kind_of(&path)) {
            (DropTarget::Gallery, Kind::Photo) => Command::UsePainting(path),
            _ => Command::Open(path),
        }
    }
}

impl AtelierApp {
    pub fn execute(&mut self, command: Command) {
        match command {
            Command::OpenDialog => self.browse(Purpose::Open),
            Command::Open(p) => self.open(p),
            Command::OpenSessionDialog => self.browse(Purpose::Session),
            Command::Paste => self.jobs.spawn(Job::Paste),
            Command::PasteImage(image) => self.jobs.spawn(Job::PasteImage(image)),
            Command::SaveDialog => self.save_dialog(),
            Command::Export => self.export_image(),
            Command::OpenFolder(dir) => {
                if let Err(e) = open_folder(&dir) {
                    self.state.notice = Some(Notice::error(
                        format!("Could not show {}", dir.display()),
                        crate::Error::io("the file manager did not start", e),
                    ));
                }
            }
            Command::Browse(purpose) => self.browse(purpose),
            Command::Picked(purpose, p) => self.picked(purpose, p),
            Command::Save(p) => self.request_save(p),
            Command::ConfirmOverwrite(replace) => {
                let Some(p) = self.state.pending_save.take() else {
                    return;
                };
                match (replace, p.video) {
                    (false, _) => {}
                    (true, false) => self.save_to(p.path, true),
                    (true, true) => self.export_video_to(p.path, true),
                }
            }
            Command::SelectStyle(p) => {
                self.gallery.selected = Some(p.clone());
                self.settings.style = Some(p);
                self.restyle();
            }
            Command::RenameStyle(entry, name) => {
                match self.gallery.registry.rename(&entry, &name) {
                    Ok(_) => self.reload_styles(),
                    Err(e) => self.state.notice = Some(e.into()),
                }
            }
            Command::DeleteStyle(entry) => match self.gallery.registry.delete(&entry) {
                Ok(()) => {
                    if self.gallery.selected.as_ref() == Some(&entry.path) {
                        self.gallery.selected = None;
                    }
                    self.reload_styles();
                    self.state.notice =
                        Some(Notice::Info(format!("Deleted '{}'", entry.meta.name)));
                }
                Err(e) => self.state.notice = Some(e.into()),
            },
            Command::ImportDialog => self.browse(Purpose::Import),
            Command::UsePaintingDialog => self.browse(Purpose::StylePainting),
            // The importer makes an instant style of any image.
            Command::UsePainting(p) => self.import(p),
            Command::MixStyles { a, b, weight } => {
                self.state.notice = Some(Notice::Info("Mixing…".into()));
                self.jobs.spawn(Job::Mix {
                    parts: vec![(a, 1.0 - weight), (b, weight)],
                    registry: self.gallery.registry.clone(),
                });
            }
            Command::TrainFullQuality(entry) => {
                let painting = entry
                    .meta
                    .training
                    .as_ref()
                    .and_then(|t| t.get("painting_path"))
                    .and_then(|p| p.as_str())
                    .map(PathBuf::from)
                    .filter(|p| p.is_file());
                match painting {
                    Some(p) => {
                        self.training.style_image = p.display().to_string();
                        self.training.name = entry.meta.name.clone();
                        self.settings.show_training = true;
                        self.state.notice = Some(Notice::Info(format!(
                            "Training panel ready for '{}': pick your photos folder and press Start",
                            entry.meta.name
                        )));
                    }
                    None => {
                        self.state.notice = Some(Notice::refusal(
                            "The painting this style was made from is no longer where it was; pick it in the training panel.",
                        ));
                        self.settings.show_training = true;
                    }
                }
            }
            Command::Seek(t) => self.fetch_frame(t),
            Command::ExportVideoDialog => self.export_dialog(),
            Command::ExportVideo(p) => self.request_video_export(p),
            Command::SetDevice(device) => {
                self.settings.device = device;
                self.worker.set_device(self.settings.device_choice());
                self.training.device = self.settings.device_choice();
                // Asked for the new device's own result.
                self.cache.clear();
                if let Some(d) = self.state.doc.as_mut() {
                    d.result = None;
                }
                self.restyle();
            }
            Command::Fit => self.canvas.fit = true,
            Command::ActualSize => {
                let scale = self.state.doc.as_ref().map_or(1.0, |d| d.display_scale);
                self.canvas.actual_size(self.ctx.pixels_per_point(), scale);
            }
            Command::Zoom(factor) => self.canvas.zoom_by(factor, None, self.ctx.content_rect()),
            Command::ToggleCompare => self.canvas.toggle_compare(),
            Command::BlendChanged => self.display.invalidate(),
            Command::TryExample => {
                self.inform("Opening the example…".into());
                self.jobs.spawn(Job::Example(
                    crate::model::registry::data_dir().join("examples"),
                ));
            }
            Command::Paint(points) => self.paint(&points),
            Command::InvertMask => self.edit_mask(true),
            Command::ClearMask => self.edit_mask(false),
            Command::ToggleBrush => self.settings.brush.active ^= true,
            Command::StrokeScaleChanged => self.restyle(),
            Command::AutoStrokeScale => {
                if let Some(d) = &self.state.doc {
                    let (w, h) = d.photo.dimensions();
                    let s = crate::stylize::stroke::StrokeScale::Auto.factor(w, h);
                    // Two decimals, as the slider shows it.
                    self.settings.stroke_scale = (s * 100.0).round() / 100.0;
                    self.restyle();
                }
            }
            Command::Undo => self.undo(),
            Command::Redo => self.redo(),
            Command::ToggleShortcuts => self.state.show_shortcuts ^= true,
            Command::Quit => self.ctx.send_viewport_cmd(egui::ViewportCommand::Close),
        }
    }

    /// Shows what is happening now, unless a warning is waiting to be read.
    fn inform(&mut self, message: String) {
        if !matches!(self.state.notice, Some(Notice::Warning(_))) {
            self.state.notice = Some(Notice::Info(message));
        }
    }

    /// Sends the current photo to the worker with the selected style, unless that result
    /// is already there.
    pub(super) fn restyle(&mut self) {
        let Some(style) = self.gallery.selected.clone() else {
            return;
        };
        if self.state.doc.as_ref().is_none_or(|d| {
            d.result.as_ref().is_some_and(|(_, s)| *s == style)
                && d.result_scale == self.settings.stroke_scale
        }) {
            return;
        }
        let scale = self.settings.stroke_scale;
        let doc = self.state.doc.as_mut().expect("checked above");
        let key = Key::new(super::cache::scaled_key(doc.key, scale), &style);
        if let Some(image) = self.cache.get(&key) {
            self.worker.cancel();
            doc.job = None;
            doc.progress = None;
            doc.preview_ms = None;
            doc.full_ms = None;
            let [w, h] = doc.display_size();
            let shown = if image.dimensions() == (w, h) {
                (*image).clone()
            } else {
                crate::stylize::resample::bilinear(&image, w, h)
            };
            self.display.write_styled(0, 0, &shown);
            doc.styled_display = Some(shown);
            doc.result = Some((image, style));
            doc.result_scale = scale;
            self.display.invalidate();
            return;
        }
        let id = self.state.next_id();
        let doc = self.state.doc.as_mut().expect("checked above");
        doc.job = Some((id, style.clone()));
        doc.job_scale = scale;
        doc.progress = None;
        // The timings shown are those of the result on screen, which is being replaced.
        doc.preview_ms = None;
        doc.full_ms = None;
        self.worker
            .stylize(id, doc.photo.clone(), style, scale, true);
    }

    /// Re-reads the style folders; their pictures load in a job.
    pub fn reload_styles(&mut self) {
        if let Some(job) = self.gallery.refresh() {
            self.jobs.spawn(job);
        }
    }

    fn open(&mut self, path: PathBuf) {
        if super::session::is_session(&path) {
            self.inform(format!("Opening the session {}…", path.display()));
            return self.jobs.spawn(Job::OpenSession(path));
        }
        let job = match kind_of(&path) {
            Kind::Model => return self.import(path),
            Kind::Video => Job::ProbeVideo(path.clone()),
            // A photo, or a name that says nothing: the decoder goes by content.
            Kind::Photo | Kind::Unknown => Job::OpenPhoto(path.clone()),
        };
        self.inform(format!("Opening {}…", path.display()));
        self.jobs.spawn(job);
    }

    fn import(&mut self, src: PathBuf) {
        self.state.notice = Some(Notice::Info(format!("Importing {}…", src.display())));
        self.jobs.spawn(Job::Import {
            src,
            registry: self.gallery.registry.clone(),
        });
    }

    fn save_dialog(&mut self) {
        let Some(name) = self.result_name() else {
            return;
        };
        self.browse(Purpose::SaveImage(format!("{name}.png")));
    }

    /// "photo-style" for the open result; `None` (saying why) when there is nothing to save.
    fn result_name(&mut self) -> Option<String> {
        let doc = self.state.doc.as_ref()?;
        if doc.result.is_none() {
            self.state.notice = Some(Notice::refusal("Nothing to save yet: pick a style first."));
            return None;
        }
        let stem = doc
            .path
            .as_ref()
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pasted".into());
        let style = self
            .gallery
            .selected
            .as_ref()
            .and_then(|p| self.gallery.entry(p))
            .map(|e| crate::model::registry::file_stem_for(&e.meta.name))
            .unwrap_or_else(|| "styled".into());
        Some(format!("{stem}-{style}"))
    }

    /// One click, no questions: into the export folder, under the first free name.
    fn export_image(&mut self) {
        let Some(name) = self.result_name() else {
            return;
        };
        let dir = self
            .export_dir
            .clone()
            .unwrap_or_else(dialogs::default_export_dir);
        self.save_job(dir.join(format!("{name}.png")), false, true);
    }

    /// Asks for a path: the system's dialog where there is one, the app's own otherwise.
    fn browse(&mut self, purpose: Purpose) {
        let dir = match &purpose {
            Purpose::ExportVideo(_) => self
                .state
                .video
                .as_ref()
                .and_then(|v| v.path.parent().map(|p| p.to_path_buf())),
            Purpose::RunFolder => Some(self.training.runs_dir.clone()),
            _ => self.settings.last_dir.clone(),
        };
        if self.state.native_dialogs {
            match dialogs::native(&purpose, dir.as_deref()) {
                Native::Picked(p) => return self.picked(purpose, p),
                Native::Cancelled => return,
                Native::Unavailable => {
                    // Not tried again this session: each try costs a failed D-Bus call.
                    self.state.native_dialogs = false;
                    self.state.notice = Some(Notice::Info(
                        "The system's file dialog is not available here; using Atelier's own."
                            .into(),
                    ));
                }
            }
        }
        self.state.browser = Some(FileBrowser::new(purpose, dir.as_deref()));
    }

    fn picked(&mut self, purpose: Purpose, p: PathBuf) {
        self.state.browser = None;
        match purpose {
            Purpose::Open | Purpose::Session => self.open(p),
            Purpose::Import => self.import(p),
            // The importer makes an instant style of any image.
            Purpose::StylePainting => self.import(p),
            Purpose::SaveImage(_) => self.request_save(p),
            Purpose::ExportVideo(_) => self.request_video_export(p),
            Purpose::Painting => self.training.style_image = p.display().to_string(),
            Purpose::PhotoFolder => self.training.content_dir = p.display().to_string(),
            Purpose::RunFolder => {
                let ctx = self.ctx.clone();
                self.training.resume(&p, &ctx);
            }
        }
    }

    /// Saves to `path`, asking first if it exists; never over the opened photo.
    fn request_save(&mut self, path: PathBuf) {
        let Some(doc) = &self.state.doc else { return };
        if let Some(src) = &doc.path {
            // By inode: a hard link or another spelling of the photo is the photo.
            if crate::fsutil::same_file(src, &path) {
                self.state.notice = Some(Notice::refusal(
                    "That is the photo you opened; choose another file name.",
                ));
                return;
            }
        }
        if path.exists() {
            self.state.pending_save = Some(PendingSave { path, video: false });
        } else {
            self.save_to(path, false);
        }
    }

    fn save_to(&mut self, path: PathBuf, overwrite: bool) {
        self.save_job(path, overwrite, false);
    }

    /// Writes the result blended as shown; `free_name` picks `name-2.png`… when taken.
    fn save_job(&mut self, path: PathBuf, overwrite: bool, free_name: bool) {
        let Some(doc) = &self.state.doc else { return };
        let Some((styled, styled_with)) = doc.result.clone() else {
            return;
        };
        self.state.notice = Some(Notice::Info(format!("Saving {}…", path.display())));
        self.jobs.spawn(Job::Save(SaveJob {
            path,
            photo: doc.photo.clone(),
            styled,
            source: doc.path.clone(),
            strength: self.settings.strength,
            preserve_colors: self.settings.preserve_colors,
            mask: doc.mask.clone(),
            session: doc.path.as_ref().map(|photo| super::session::Session {
                version: 1,
                photo: photo.clone(),
                style: styled_with.clone(),
                strength: self.settings.strength,
                preserve_colors: self.settings.preserve_colors,
                stroke_scale: doc.result_scale,
                mask: None,
            }),
            jpeg_quality: self.settings.jpeg_quality,
            overwrite,
            free_name,
        }));
    }

    pub(super) fn fetch_frame(&mut self, t: f64) {
        let id = self.state.next_id();
        if let Some(v) = self.state.video.as_mut() {
            self.jobs.spawn(v.fetch(id, t));
        }
    }

    fn export_dialog(&mut self) {
        let Some(v) = &self.state.video else { return };
        if self.gallery.selected.is_none() {
            self.state.notice = Some(Notice::refusal("Pick a style first."));
            return;
        }
        let stem = v
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "video".into());
        self.browse(Purpose::ExportVideo(format!("{stem}-styled.mp4")));
    }

    /// Exports the open video to `path`, asking first if the file exists.
    fn request_video_export(&mut self, path: PathBuf) {
        if path.exists() {
            self.state.pending_save = Some(PendingSave { path, video: true });
        } else {
            self.export_video_to(path, false);
        }
    }

    fn export_video_to(&mut self, output: PathBuf, overwrite: bool) {
        let (Some(v), Some(style)) = (self.state.video.as_mut(), self.gallery.selected.clone())
        else {
            return;
        };
        let options = crate::video::VideoOptions {
            strength: self.settings.strength,
            preserve_colors: self.settings.preserve_colors,
            max_side: None,
            stability: 0.9,
            overwrite,
            stroke_scale: self.settings.stroke_scale,
            // A scrubbed frame's painted mask belongs to that frame only.
            mask: None,
        };
        self.state.notice = Some(Notice::Info(format!("Exporting {}…", output.display())));
        let job = v.start_export(ExportJob {
            input: v.path.clone(),
            output,
            style,
            device: self.settings.device_choice(),
            options,
            frames_done: Default::default(),
            cancel: Default::default(),
        });
        self.jobs.spawn(job);
    }
}

/// Shows `dir` in the system's file manager, without waiting for it.
fn open_folder(dir: &std::path::Path) -> std::io::Result<()> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    let mut child = std::process::Command::new(program)
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // Reaped off the UI thread so it leaves no zombie.
    std::thread::spawn(move || child.wait());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped(p: &str, target: DropTarget) -> Command {
        Command::dropped(PathBuf::from(p), target)
    }

    #[test]
    fn a_picture_dropped_on_the_gallery_is_a_painting_and_on_the_canvas_a_photo() {
        use DropTarget::{Canvas, Gallery};
        assert!(matches!(
            dropped("a/Starry Night.JPG", Gallery),
            Command::UsePainting(_)
        ));
        assert!(matches!(
            dropped("a/Starry Night.JPG", Canvas),
            Command::Open(_)
        ));
        // Models are imported wherever they land (`Open` imports them); videos, sessions
        // and unknown names open as they always did.
        for p in [
            "wave.pth",
            "mine.safetensors",
            "clip.mp4",
            "photo.atelier.json",
            "noext",
        ] {
            assert!(matches!(dropped(p, Gallery), Command::Open(_)), "{p}");
            assert!(matches!(dropped(p, Canvas), Command::Open(_)), "{p}");
        }
    }
}
