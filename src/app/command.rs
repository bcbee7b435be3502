//! What the user asked for. Menus, shortcuts and panels only push a [`Command`] while they
//! draw; [`AtelierApp::execute`] carries them out after drawing, in one place, so no
//! widget reaches into the app's logic and every action can be driven by tests.

use super::jobs::{ExportJob, Job, SaveJob};
use super::state::{Notice, PendingSave};
use super::{dialogs, AtelierApp};
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
    /// An image from the clipboard.
    Paste,
    /// Ask where to save the result.
    SaveDialog,
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
}

impl AtelierApp {
    pub fn execute(&mut self, command: Command) {
        match command {
            Command::OpenDialog => {
                if let Some(p) = dialogs::photo_or_video(self.settings.last_dir.as_deref()) {
                    self.open(p);
                }
            }
            Command::Open(p) => self.open(p),
            Command::Paste => self.jobs.spawn(Job::Paste),
            Command::SaveDialog => self.save_dialog(),
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
            Command::ImportDialog => {
                if let Some(p) = dialogs::model() {
                    self.import(p);
                }
            }
            Command::UsePaintingDialog => {
                if let Some(p) = dialogs::painting(self.settings.last_dir.as_deref()) {
                    self.import(p);
                }
            }
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
        }
    }

    /// Sends the current photo to the worker with the selected style, unless that result
    /// is already there.
    pub(super) fn restyle(&mut self) {
        let Some(style) = self.gallery.selected.clone() else {
            return;
        };
        if self
            .state
            .doc
            .as_ref()
            .is_none_or(|d| d.result.as_ref().is_some_and(|(_, s)| *s == style))
        {
            return;
        }
        let id = self.state.next_id();
        let doc = self.state.doc.as_mut().expect("checked above");
        doc.job = Some((id, style.clone()));
        doc.progress = 0.0;
        self.worker.stylize(id, doc.photo.clone(), style, true);
    }

    /// Re-reads the style folders; their pictures load in a job.
    pub fn reload_styles(&mut self) {
        if let Some(job) = self.gallery.refresh() {
            self.jobs.spawn(job);
        }
    }

    fn open(&mut self, path: PathBuf) {
        let job = match kind_of(&path) {
            Kind::Model => return self.import(path),
            Kind::Video => Job::ProbeVideo(path.clone()),
            // A photo, or a name that says nothing: the decoder goes by content.
            Kind::Photo | Kind::Unknown => Job::OpenPhoto(path.clone()),
        };
        self.state.notice = Some(Notice::Info(format!("Opening {}…", path.display())));
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
        let Some(doc) = &self.state.doc else { return };
        if doc.result.is_none() {
            self.state.notice = Some(Notice::refusal("Nothing to save yet: pick a style first."));
            return;
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
        let name = format!("{stem}-{style}.png");
        if let Some(p) = dialogs::save_image(self.settings.last_dir.as_deref(), name) {
            self.request_save(p);
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
        let Some(doc) = &self.state.doc else { return };
        let Some((styled, _)) = doc.result.clone() else {
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
            jpeg_quality: self.settings.jpeg_quality,
            overwrite,
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
        if let Some(p) = dialogs::export_video(v.path.parent(), format!("{stem}-styled.mp4")) {
            self.request_video_export(p);
        }
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
