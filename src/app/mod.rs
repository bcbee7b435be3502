//! The desktop app (eframe + wgpu). One struct per panel; this file wires them to the
//! stylising worker and to background jobs (decoding, saving, importing), and turns
//! what arrives on their channels into textures. Nothing here runs a network.

pub mod blend_pass;
pub mod canvas;
pub mod document;
pub mod gallery;
pub mod settings;
pub mod training;
pub mod video_panel;
pub mod worker;

use crate::image_io::{self, OutputFormat};
use crate::model::registry::Registry;
use canvas::{CanvasInput, CanvasPanel};
use document::Document;
use gallery::{GalleryAction, GalleryPanel};
use image::RgbImage;
use settings::Settings;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use training::{TrainingOutcome, TrainingPanel};
use video_panel::{VideoAction, VideoPanel};
use worker::{WorkerEvent, WorkerHandle};

/// Command-line options of the app (`atelier [--open IMAGE] [--style NAME] …`).
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    pub open: Option<PathBuf>,
    pub style: Option<String>,
    /// Save a screenshot of the window once the photo is stylised, then exit.
    pub screenshot: Option<PathBuf>,
    pub device: Option<String>,
    /// Do not read or write saved settings (tests).
    pub ephemeral: bool,
    /// Style folders to use instead of the standard ones (tests).
    pub registry: Option<Registry>,
    /// Where training runs go instead of `<data dir>/runs` (tests).
    pub runs_dir: Option<PathBuf>,
}

/// Results of work done off the UI thread.
pub enum JobResult {
    Opened(Option<PathBuf>, Result<RgbImage, String>),
    Saved(Result<PathBuf, String>),
    Imported(Result<(PathBuf, String), String>),
    VideoOpened(PathBuf, Result<crate::video::VideoInfo, String>),
}

/// A message in the status line or a notice to the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Info(String),
    Error(String),
}

/// A save waiting for "replace the existing file?".
struct PendingSave {
    path: PathBuf,
    video: bool,
}

pub struct AtelierApp {
    pub settings: Settings,
    pub canvas: CanvasPanel,
    pub gallery: GalleryPanel,
    pub training: TrainingPanel,
    pub doc: Option<Document>,
    /// Set while a video is open: its scrub bar and export.
    pub video: Option<VideoPanel>,
    frame_rx: Option<Receiver<crate::Result<RgbImage>>>,
    pub notice: Option<Notice>,
    pub device_name: String,
    ctx: egui::Context,
    worker: WorkerHandle,
    jobs_tx: Sender<JobResult>,
    jobs_rx: Receiver<JobResult>,
    next_id: u64,
    wgpu: Option<eframe::egui_wgpu::RenderState>,
    max_texture_side: u32,
    fallback: Option<egui::TextureHandle>,
    fallback_photo: Option<egui::TextureHandle>,
    fallback_dirty: bool,
    pending_save: Option<PendingSave>,
    screenshot: Option<ScreenshotState>,
    ephemeral: bool,
    /// Set when `--screenshot` could not be produced; `run` exits non-zero.
    pub failed: Arc<std::sync::atomic::AtomicBool>,
}

struct ScreenshotState {
    path: PathBuf,
    requested: bool,
    shots: Option<Receiver<Arc<egui::ColorImage>>>,
    /// Frames drawn since the result arrived; the shader needs one to show it.
    frames_since_done: u32,
    started: std::time::Instant,
}

impl AtelierApp {
    pub fn new(cc: &eframe::CreationContext<'_>, opts: AppOptions) -> Self {
        let settings: Settings = if opts.ephemeral {
            Settings::default()
        } else {
            cc.storage
                .and_then(|s| eframe::get_value(s, settings::STORAGE_KEY))
                .unwrap_or_default()
        };
        let mut settings = settings;
        if let Some(d) = &opts.device {
            settings.device = d.clone();
        }
        let wgpu = cc.wgpu_render_state.clone();
        let max_texture_side = match &wgpu {
            Some(rs) => blend_pass::install(rs),
            None => 8192,
        };
        let ctx = cc.egui_ctx.clone();
        let worker = WorkerHandle::spawn(settings.device_choice(), move || ctx.request_repaint());
        let (jobs_tx, jobs_rx) = channel();
        let mut gallery =
            GalleryPanel::new(opts.registry.clone().unwrap_or_else(Registry::from_env));
        gallery.refresh(Some(&cc.egui_ctx));
        let mut training = TrainingPanel::default();
        training.device = settings.device_choice();
        if let Some(d) = &opts.runs_dir {
            training.runs_dir = d.clone();
        }
        let mut app = Self {
            settings,
            canvas: CanvasPanel::default(),
            gallery,
            training,
            doc: None,
            video: None,
            frame_rx: None,
            notice: None,
            device_name: "starting…".into(),
            ctx: cc.egui_ctx.clone(),
            worker,
            jobs_tx,
            jobs_rx,
            next_id: 1,
            wgpu,
            max_texture_side,
            fallback: None,
            fallback_photo: None,
            fallback_dirty: false,
            pending_save: None,
            screenshot: opts.screenshot.map(|path| ScreenshotState {
                path,
                requested: false,
                shots: None,
                frames_since_done: 0,
                started: std::time::Instant::now(),
            }),
            ephemeral: opts.ephemeral,
            failed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        // Pick the remembered style (or the one asked for) if it still exists.
        let wanted = match &opts.style {
            Some(s) => match app.gallery.registry.resolve(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    app.notice = Some(Notice::Error(e.to_string()));
                    if app.screenshot.is_some() {
                        eprintln!("error: {e}");
                        app.failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    None
                }
            },
            None => app.settings.style.clone().filter(|p| p.is_file()),
        };
        app.gallery.selected = wanted;
        if let Some(p) = opts.open {
            app.open_path(p);
        }
        if app.screenshot.is_some()
            && (app.gallery.selected.is_none()
                || app.failed.load(std::sync::atomic::Ordering::SeqCst))
        {
            eprintln!("error: --screenshot needs --open IMAGE and --style NAME");
            app.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        app
    }

    /// Decodes a photo (or probes a video) on a background thread.
    pub fn open_path(&mut self, path: PathBuf) {
        let tx = self.jobs_tx.clone();
        self.notice = Some(Notice::Info(format!("Opening {}…", path.display())));
        if crate::formats::kind_of(&path) == crate::formats::Kind::Video {
            std::thread::spawn(move || {
                let r = crate::video::probe(&path).map_err(|e| e.to_string());
                let _ = tx.send(JobResult::VideoOpened(path, r));
            });
            return;
        }
        std::thread::spawn(move || {
            let r = image_io::load_rgb(&path).map_err(|e| e.to_string());
            let _ = tx.send(JobResult::Opened(Some(path), r));
        });
    }

    /// Replaces the document and restyles it with the selected style.
    fn set_photo(&mut self, path: Option<PathBuf>, photo: RgbImage, ctx: &egui::Context) {
        if let Some(p) = &path {
            self.settings.add_recent(p.clone());
        }
        let same_size = self
            .doc
            .as_ref()
            .is_some_and(|d| d.photo.dimensions() == photo.dimensions());
        let doc = Document::new(path, photo, self.max_texture_side);
        if let Some(rs) = &self.wgpu {
            blend_pass::set_photo(rs, &doc.display_photo);
        } else {
            self.fallback_photo = Some(texture_of(ctx, "photo", &doc.display_photo));
            self.fallback = None;
        }
        self.notice = None;
        self.doc = Some(doc);
        // Scrubbing a video keeps the view; a new photo is fitted.
        if !same_size {
            self.canvas.fit = true;
        }
        self.restyle();
    }

    /// Sends the current photo to the worker with the selected style.
    pub fn restyle(&mut self) {
        let (Some(doc), Some(style)) = (&mut self.doc, self.gallery.selected.clone()) else {
            return;
        };
        if doc.result.as_ref().is_some_and(|(_, s)| *s == style) {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        doc.job = Some((id, style.clone()));
        doc.progress = 0.0;
        self.worker.stylize(id, doc.photo.clone(), style, true);
    }

    fn current_job(&self) -> Option<u64> {
        self.doc.as_ref().and_then(|d| d.job.as_ref().map(|j| j.0))
    }

    fn poll_worker(&mut self) {
        while let Ok(ev) = self.worker.events.try_recv() {
            match ev {
                WorkerEvent::Device(d) => self.device_name = d,
                WorkerEvent::Preview { id, image, ms } if Some(id) == self.current_job() => {
                    let doc = self.doc.as_mut().expect("job implies a document");
                    let image = if image.dimensions() == doc.display_photo.dimensions() {
                        image
                    } else {
                        let [w, h] = doc.display_size();
                        crate::stylize::resample::bilinear(&image, w, h)
                    };
                    if let Some(rs) = &self.wgpu {
                        blend_pass::write_styled(rs, 0, 0, &image);
                    }
                    doc.styled_display = Some(image);
                    doc.preview_ms = Some(ms);
                    self.fallback_dirty = true;
                }
                WorkerEvent::Tile { id, x, y, image } if Some(id) == self.current_job() => {
                    let doc = self.doc.as_mut().expect("job implies a document");
                    if doc.streams_tiles() {
                        if let Some(rs) = &self.wgpu {
                            blend_pass::write_styled(rs, x, y, &image);
                        }
                        let [w, h] = doc.display_size();
                        let sd = doc
                            .styled_display
                            .get_or_insert_with(|| RgbImage::new(w, h));
                        image::imageops::replace(sd, &image, x.into(), y.into());
                        self.fallback_dirty = true;
                    }
                }
                WorkerEvent::Progress { id, fraction } if Some(id) == self.current_job() => {
                    if let Some(d) = self.doc.as_mut() {
                        d.progress = fraction;
                    }
                }
                WorkerEvent::Done { id, image, ms } if Some(id) == self.current_job() => {
                    let doc = self.doc.as_mut().expect("job implies a document");
                    let (_, style) = doc.job.take().expect("current job");
                    if !doc.streams_tiles() || doc.styled_display.is_none() {
                        let [w, h] = doc.display_size();
                        let shown = crate::stylize::resample::bilinear(&image, w, h);
                        if let Some(rs) = &self.wgpu {
                            blend_pass::write_styled(rs, 0, 0, &shown);
                        }
                        doc.styled_display = Some(shown);
                    }
                    doc.result = Some((image, style));
                    doc.full_ms = Some(ms);
                    doc.progress = 1.0;
                    self.fallback_dirty = true;
                }
                WorkerEvent::Failed { id, message } if Some(id) == self.current_job() => {
                    if let Some(d) = self.doc.as_mut() {
                        d.job = None;
                    }
                    self.notice = Some(Notice::Error(format!("Could not stylise: {message}")));
                    if let Some(s) = &self.screenshot {
                        eprintln!("error: {message} ({})", s.path.display());
                        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                // Events of a request that was replaced by a newer one.
                _ => {}
            }
        }
    }

    fn poll_jobs(&mut self, ctx: &egui::Context) {
        while let Ok(r) = self.jobs_rx.try_recv() {
            match r {
                JobResult::Opened(path, Ok(img)) => {
                    self.video = None;
                    self.frame_rx = None;
                    self.set_photo(path, img, ctx)
                }
                JobResult::VideoOpened(path, Ok(info)) => {
                    self.settings.add_recent(path.clone());
                    let mut v = VideoPanel::new(path, info);
                    self.frame_rx = Some(v.fetch_frame(0.0, ctx));
                    self.video = Some(v);
                }
                JobResult::VideoOpened(path, Err(e)) => {
                    self.notice = Some(Notice::Error(format!(
                        "Could not open {}: {e}",
                        path.display()
                    )));
                }
                JobResult::Opened(path, Err(e)) => {
                    let what = path
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "the clipboard".into());
                    self.notice = Some(Notice::Error(format!("Could not open {what}: {e}")));
                    if self.screenshot.is_some() {
                        eprintln!("error: could not open {what}: {e}");
                        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                JobResult::Saved(Ok(p)) => {
                    self.notice = Some(Notice::Info(format!("Saved {}", p.display())));
                }
                JobResult::Saved(Err(e)) => {
                    self.notice = Some(Notice::Error(format!("Not saved: {e}")))
                }
                JobResult::Imported(Ok((path, name))) => {
                    self.gallery.refresh(Some(ctx));
                    self.gallery.selected = Some(path);
                    self.notice = Some(Notice::Info(format!("Imported '{name}'")));
                    self.restyle();
                }
                JobResult::Imported(Err(e)) => {
                    self.notice = Some(Notice::Error(format!("Import failed: {e}")))
                }
            }
        }
    }

    /// Adds a dropped or chosen model (file or fast-style-transfer folder) to the user's
    /// styles under a name no style has, off the UI thread.
    pub fn import_model(&mut self, src: PathBuf) {
        let tx = self.jobs_tx.clone();
        let registry = self.gallery.registry.clone();
        self.notice = Some(Notice::Info(format!("Importing {}…", src.display())));
        std::thread::spawn(move || {
            let opts = crate::install::ImportOptions {
                name: None,
                half: false,
                destination: crate::install::Destination::NewStyle,
            };
            let r = crate::install::import_style(&registry, &src, &opts)
                .map(|i| (i.path, i.name))
                .map_err(|e| e.to_string());
            let _ = tx.send(JobResult::Imported(r));
        });
    }

    fn handle_dropped(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for p in dropped {
            self.open_dropped(p);
        }
    }

    /// A dropped path: a model becomes a style (or is refused with a reason), anything
    /// else is opened as a photo or video.
    pub fn open_dropped(&mut self, p: PathBuf) {
        if crate::formats::kind_of(&p) != crate::formats::Kind::Model {
            self.open_path(p);
            return;
        }
        self.import_model(p);
    }

    /// Ctrl+V: an image from the clipboard, decoded off the UI thread.
    fn paste_image(&mut self) {
        let tx = self.jobs_tx.clone();
        std::thread::spawn(move || {
            let r = (|| -> Result<RgbImage, String> {
                let mut cb = arboard::Clipboard::new().map_err(|e| e.to_string())?;
                let img = cb
                    .get_image()
                    .map_err(|_| "the clipboard holds no image".to_string())?;
                let rgba = image::RgbaImage::from_raw(
                    img.width as u32,
                    img.height as u32,
                    img.bytes.into_owned(),
                )
                .ok_or("the clipboard image is malformed")?;
                Ok(image::DynamicImage::ImageRgba8(rgba).into_rgb8())
            })();
            let _ = tx.send(JobResult::Opened(None, r));
        });
    }

    pub fn open_dialog(&mut self) {
        use crate::formats::{IMAGE_EXTENSIONS, VIDEO_EXTENSIONS};
        let both: Vec<&str> = IMAGE_EXTENSIONS
            .iter()
            .chain(VIDEO_EXTENSIONS)
            .copied()
            .collect();
        let mut d = rfd::FileDialog::new()
            .add_filter("Images and videos", &both)
            .add_filter("Images", IMAGE_EXTENSIONS)
            .add_filter("Videos", VIDEO_EXTENSIONS);
        if let Some(dir) = &self.settings.last_dir {
            d = d.set_directory(dir);
        }
        if let Some(p) = d.pick_file() {
            self.open_path(p);
        }
    }

    pub fn save_dialog(&mut self) {
        let Some(doc) = &self.doc else { return };
        if doc.result.is_none() {
            self.notice = Some(Notice::Error(
                "Nothing to save yet: pick a style first.".into(),
            ));
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
        let mut d = rfd::FileDialog::new()
            .add_filter("PNG", &["png"])
            .add_filter("JPEG", &["jpg", "jpeg"])
            .add_filter("WebP", &["webp"])
            .set_file_name(format!("{stem}-{style}.png"));
        if let Some(dir) = &self.settings.last_dir {
            d = d.set_directory(dir);
        }
        if let Some(p) = d.save_file() {
            self.request_save(p);
        }
    }

    /// Saves to `path`, asking first if it exists; never over the opened photo.
    pub fn request_save(&mut self, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        if let Some(src) = &doc.path {
            // By inode: a hard link or another spelling of the photo is the photo.
            if crate::fsutil::same_file(src, &path) {
                self.notice = Some(Notice::Error(
                    "That is the photo you opened; choose another file name.".into(),
                ));
                return;
            }
        }
        if path.exists() {
            self.pending_save = Some(PendingSave { path, video: false });
        } else {
            self.save_to(path, false);
        }
    }

    fn save_to(&mut self, path: PathBuf, overwrite: bool) {
        let Some(doc) = &self.doc else { return };
        let Some((styled, _)) = doc.result.clone() else {
            return;
        };
        let photo = doc.photo.clone();
        let source = doc.path.clone();
        let (strength, preserve) = (self.settings.strength, self.settings.preserve_colors);
        let quality = self.settings.jpeg_quality;
        let tx = self.jobs_tx.clone();
        self.notice = Some(Notice::Info(format!("Saving {}…", path.display())));
        std::thread::spawn(move || {
            let r = (|| -> crate::Result<PathBuf> {
                let format = match OutputFormat::from_path(&path)? {
                    OutputFormat::Jpeg { .. } => OutputFormat::Jpeg { quality },
                    f => f,
                };
                // Checked again here: the file may have been replaced by a link to the
                // photo while the overwrite question was open.
                if source.is_some_and(|src| crate::fsutil::same_file(&src, &path)) {
                    return Err(crate::Error::image(
                        &path,
                        "that is the photo you opened; choose another file name",
                    ));
                }
                let out = crate::stylize::blend::blend(&photo, &styled, strength, preserve);
                image_io::save_rgb(&out, &path, format, overwrite)?;
                Ok(path)
            })();
            let _ = tx.send(JobResult::Saved(r.map_err(|e| e.to_string())));
        });
    }

    fn apply_video(&mut self, action: VideoAction, ctx: &egui::Context) {
        match action {
            VideoAction::Seek(t) => {
                if let Some(v) = self.video.as_mut() {
                    self.frame_rx = Some(v.fetch_frame(t, ctx));
                }
            }
            VideoAction::Export => {
                let Some(v) = &self.video else { return };
                if self.gallery.selected.is_none() {
                    self.notice = Some(Notice::Error("Pick a style first.".into()));
                    return;
                }
                let stem = v
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "video".into());
                let mut d = rfd::FileDialog::new()
                    .add_filter("MP4", &["mp4"])
                    .add_filter("Matroska", &["mkv"])
                    .add_filter("WebM", &["webm"])
                    .set_file_name(format!("{stem}-styled.mp4"));
                if let Some(dir) = v.path.parent() {
                    d = d.set_directory(dir);
                }
                if let Some(p) = d.save_file() {
                    self.request_video_export(p);
                }
            }
        }
    }

    /// Exports the open video to `path`, asking first if the file exists.
    pub fn request_video_export(&mut self, path: PathBuf) {
        if path.exists() {
            self.pending_save = Some(PendingSave { path, video: true });
        } else {
            self.export_video_to(path, false);
        }
    }

    fn export_video_to(&mut self, path: PathBuf, overwrite: bool) {
        let (Some(v), Some(style)) = (self.video.as_mut(), self.gallery.selected.clone()) else {
            return;
        };
        let opts = crate::video::VideoOptions {
            strength: self.settings.strength,
            preserve_colors: self.settings.preserve_colors,
            max_side: None,
            stability: 0.9,
            overwrite,
        };
        self.notice = Some(Notice::Info(format!("Exporting {}…", path.display())));
        v.start_export(style, path, self.settings.device_choice(), opts, &self.ctx);
    }

    fn poll_video(&mut self, ctx: &egui::Context) {
        if let Some(rx) = &self.frame_rx {
            if let Ok(r) = rx.try_recv() {
                self.frame_rx = None;
                let Some(v) = self.video.as_mut() else { return };
                v.fetching = false;
                match r {
                    Ok(frame) => {
                        let path = Some(v.path.clone());
                        self.set_photo(path, frame, ctx);
                        if let (Some(d), Some(v)) = (self.doc.as_mut(), &self.video) {
                            d.name = format!("{} @ {:.2} s", d.name, v.time_s);
                        }
                    }
                    Err(e) => self.notice = Some(Notice::Error(e.to_string())),
                }
            }
        }
        if let Some((out, r)) = self.video.as_mut().and_then(|v| v.poll_export()) {
            self.notice = Some(match r {
                Ok(rep) if !rep.warnings.is_empty() => Notice::Error(format!(
                    "Exported {} frames to {}, but: {}",
                    rep.frames,
                    out.display(),
                    rep.warnings.join("; ")
                )),
                Ok(rep) => Notice::Info(format!(
                    "Exported {} frames to {} ({:.1} frames/s, flicker ratio {:.2})",
                    rep.frames,
                    out.display(),
                    rep.frames as f64 / rep.seconds.max(1e-9),
                    rep.flicker_ratio
                )),
                Err(crate::Error::Cancelled) => {
                    Notice::Info("Export cancelled; nothing was written.".into())
                }
                Err(e) => Notice::Error(format!("Export failed: {e}")),
            });
        }
    }

    fn apply_gallery(&mut self, actions: Vec<GalleryAction>, ctx: &egui::Context) {
        for a in actions {
            match a {
                GalleryAction::Select(p) => {
                    self.settings.style = Some(p);
                    self.restyle();
                }
                GalleryAction::Rename(entry, name) => {
                    match self.gallery.registry.rename(&entry, &name) {
                        Ok(_) => self.gallery.refresh(Some(ctx)),
                        Err(e) => self.notice = Some(Notice::Error(e.to_string())),
                    }
                }
                GalleryAction::Delete(entry) => match self.gallery.registry.delete(&entry) {
                    Ok(()) => {
                        if self.gallery.selected.as_ref() == Some(&entry.path) {
                            self.gallery.selected = None;
                        }
                        self.gallery.refresh(Some(ctx));
                        self.notice = Some(Notice::Info(format!("Deleted '{}'", entry.meta.name)));
                    }
                    Err(e) => self.notice = Some(Notice::Error(e.to_string())),
                },
                GalleryAction::ImportFiles => {
                    if let Some(p) = rfd::FileDialog::new()
                        .add_filter("Models", crate::formats::MODEL_EXTENSIONS)
                        .pick_file()
                    {
                        self.import_model(p);
                    }
                }
            }
        }
    }

    /// Refreshes the CPU-blended texture used when there is no wgpu renderer.
    fn update_fallback(&mut self, ctx: &egui::Context) {
        if self.wgpu.is_some() || !self.fallback_dirty {
            return;
        }
        self.fallback_dirty = false;
        if let Some(doc) = &self.doc {
            if let Some(st) = &doc.styled_display {
                let img = crate::stylize::blend::blend(
                    &doc.display_photo,
                    st,
                    self.settings.strength,
                    self.settings.preserve_colors,
                );
                self.fallback = Some(texture_of(ctx, "styled", &img));
            }
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) -> bool {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let open = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
        let save = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
        let fit = KeyboardShortcut::new(Modifiers::COMMAND, Key::Num0);
        let actual = KeyboardShortcut::new(Modifiers::COMMAND, Key::Num1);
        let text_focus = ctx.memory(|m| m.focused().is_some());
        if ctx.input_mut(|i| i.consume_shortcut(&open)) {
            self.open_dialog();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&save)) {
            self.save_dialog();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&fit)) {
            self.canvas.fit = true;
        }
        if ctx.input_mut(|i| i.consume_shortcut(&actual)) {
            let scale = self.doc.as_ref().map_or(1.0, |d| d.display_scale);
            self.canvas.actual_size(ctx.pixels_per_point(), scale);
        }
        let pasted = ctx.input(|i| {
            i.events.iter().any(|e| {
                matches!(e, egui::Event::Paste(_))
                    || matches!(e, egui::Event::Key { key: Key::V, pressed: true, modifiers, .. } if modifiers.command)
            })
        });
        if pasted && !text_focus {
            self.paste_image();
        }
        if !text_focus {
            let (zoom_in, zoom_out, compare) = ctx.input(|i| {
                (
                    i.key_pressed(Key::Plus) || i.key_pressed(Key::Equals),
                    i.key_pressed(Key::Minus),
                    i.key_pressed(Key::C) && !i.modifiers.command,
                )
            });
            let rect = ctx.content_rect();
            if zoom_in {
                self.canvas.zoom_by(1.25, None, rect);
            }
            if zoom_out {
                self.canvas.zoom_by(0.8, None, rect);
            }
            if compare {
                self.canvas.toggle_compare();
            }
        }
        // Hold Space to see the original.
        !text_focus && ctx.input(|i| i.key_down(Key::Space))
    }

    fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open… (Ctrl+O)").clicked() {
                    ui.close();
                    self.open_dialog();
                }
                if ui.button("Paste image (Ctrl+V)").clicked() {
                    ui.close();
                    self.paste_image();
                }
                ui.menu_button("Open recent", |ui| {
                    if self.settings.recent.is_empty() {
                        ui.label("Nothing yet");
                    }
                    for p in self.settings.recent.clone() {
                        if ui.button(p.display().to_string()).clicked() {
                            ui.close();
                            self.open_path(p);
                        }
                    }
                });
                ui.separator();
                let can_save = self.doc.as_ref().is_some_and(|d| d.result.is_some());
                if ui
                    .add_enabled(can_save, egui::Button::new("Save as… (Ctrl+S)"))
                    .clicked()
                {
                    ui.close();
                    self.save_dialog();
                }
                ui.horizontal(|ui| {
                    ui.label("JPEG quality");
                    ui.add(egui::Slider::new(&mut self.settings.jpeg_quality, 50..=100));
                });
            });
            ui.menu_button("View", |ui| {
                if ui.button("Fit (Ctrl+0)").clicked() {
                    self.canvas.fit = true;
                }
                if ui.button("100 % (Ctrl+1)").clicked() {
                    let scale = self.doc.as_ref().map_or(1.0, |d| d.display_scale);
                    self.canvas.actual_size(ui.ctx().pixels_per_point(), scale);
                }
                ui.checkbox(&mut self.settings.show_gallery, "Style gallery");
                ui.checkbox(&mut self.settings.show_training, "Training panel");
                ui.separator();
                ui.label("Device (for new work)");
                let mut dev = self.settings.device.clone();
                for d in ["auto", "cpu", "cuda", "metal"] {
                    ui.radio_value(&mut dev, d.to_string(), d);
                }
                if dev != self.settings.device {
                    self.settings.device = dev;
                    self.worker.set_device(self.settings.device_choice());
                    self.training.device = self.settings.device_choice();
                    if let Some(d) = self.doc.as_mut() {
                        d.result = None;
                    }
                    self.restyle();
                }
            });
            ui.separator();
            let strength = ui
                .add(egui::Slider::new(&mut self.settings.strength, 0.0..=1.0).text("Strength"))
                .on_hover_text(
                    "Blend between the photo (0) and the full style (1); instant, no re-run",
                );
            let colours = ui
                .checkbox(&mut self.settings.preserve_colors, "Keep photo colours")
                .on_hover_text(
                    "Take the brush strokes from the style and the colours from the photo",
                );
            if strength.changed() || colours.changed() {
                self.fallback_dirty = true;
            }
            let compare = self.canvas.split.is_some();
            if ui
                .selectable_label(compare, "Compare")
                .on_hover_text("Before/after divider (C); hold Space to see the original")
                .clicked()
            {
                self.canvas.toggle_compare();
            }
        });
    }

    fn status_line(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(format!("Device: {}", self.device_name));
            if let Some(doc) = &self.doc {
                ui.separator();
                let (w, h) = doc.photo.dimensions();
                ui.label(format!("{} · {w}×{h}", doc.name));
                if doc.job.is_some() {
                    ui.separator();
                    ui.add(egui::Spinner::new());
                    ui.add(
                        egui::ProgressBar::new(doc.progress)
                            .desired_width(120.0)
                            .show_percentage(),
                    );
                }
                if let Some(ms) = doc.preview_ms {
                    ui.separator();
                    ui.label(format!("preview {ms:.0} ms"));
                }
                if let Some(ms) = doc.full_ms {
                    ui.separator();
                    ui.label(format!("stylised in {ms:.0} ms"));
                }
            }
            if let Some(n) = &self.notice {
                ui.separator();
                match n {
                    Notice::Info(m) => ui.label(m),
                    Notice::Error(m) => ui.colored_label(ui.visuals().error_fg_color, m.as_str()),
                };
            }
        });
    }

    fn overwrite_modal(&mut self, ctx: &egui::Context) {
        let Some(p) = &self.pending_save else { return };
        let (path, video) = (p.path.clone(), p.video);
        let mut decision = None;
        egui::Modal::new(egui::Id::unique("atelier-overwrite")).show(ctx, |ui| {
            ui.label(format!("{} exists. Replace it?", path.display()));
            ui.horizontal(|ui| {
                if ui.button("Replace").clicked() {
                    decision = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    decision = Some(false);
                }
            });
        });
        match decision {
            Some(true) => {
                self.pending_save = None;
                if video {
                    self.export_video_to(path, true);
                } else {
                    self.save_to(path, true);
                }
            }
            Some(false) => self.pending_save = None,
            None => {}
        }
    }

    fn screenshot_step(&mut self, ctx: &egui::Context) {
        let Some(s) = &mut self.screenshot else {
            return;
        };
        // The screenshot event arrives a frame after it is requested.
        let shot = s.shots.as_ref().and_then(|rx| rx.try_recv().ok());
        if let Some(img) = shot {
            let rgb = RgbImage::from_fn(img.size[0] as u32, img.size[1] as u32, |x, y| {
                let c = img.pixels[y as usize * img.size[0] + x as usize];
                image::Rgb([c.r(), c.g(), c.b()])
            });
            match image_io::save_rgb(&rgb, &s.path, OutputFormat::Png, true) {
                Ok(()) => eprintln!("screenshot: {}", s.path.display()),
                Err(e) => {
                    eprintln!("error: {e}");
                    self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let done = self.doc.as_ref().is_some_and(|d| d.result.is_some());
        let failed = self.failed.load(std::sync::atomic::Ordering::SeqCst);
        if failed || s.started.elapsed().as_secs() > 600 {
            if !failed {
                eprintln!("error: no result within 10 minutes");
                self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        if done && !s.requested {
            s.frames_since_done += 1;
            if s.frames_since_done >= 3 {
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

fn texture_of(ctx: &egui::Context, name: &str, img: &RgbImage) -> egui::TextureHandle {
    let size = [img.width() as usize, img.height() as usize];
    ctx.load_texture(
        name,
        egui::ColorImage::from_rgb(size, img.as_raw()),
        Default::default(),
    )
}

impl eframe::App for AtelierApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll_worker();
        self.poll_jobs(ctx);
        if let Some(TrainingOutcome::Finished { model, name }) = self.training.poll(ctx) {
            match self.gallery.registry.install_as_new(&model, &name) {
                Ok((dest, _)) => {
                    self.gallery.refresh(Some(ctx));
                    self.gallery.selected = Some(dest);
                    self.restyle();
                }
                Err(e) => {
                    self.notice = Some(Notice::Error(format!("Trained, but not installed: {e}")))
                }
            }
        }
        self.poll_video(ctx);
        self.handle_dropped(ctx);
        self.update_fallback(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let show_original = self.shortcuts(&ctx);
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_line(ui));
        if let Some(v) = self.video.as_mut() {
            let action = egui::Panel::bottom("video").show(ui, |ui| v.ui(ui)).inner;
            if let Some(a) = action {
                self.apply_video(a, &ctx);
            }
        }
        if self.settings.show_gallery {
            let actions = egui::Panel::right("gallery")
                .resizable(true)
                .default_size(260.0)
                .show(ui, |ui| self.gallery.ui(ui))
                .inner;
            self.apply_gallery(actions, &ctx);
        }
        if self.settings.show_training {
            egui::Panel::left("training")
                .resizable(true)
                .default_size(340.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| self.training.ui(ui));
                });
        }
        egui::CentralPanel::no_frame().show(ui, |ui| {
            let input = self.doc.as_ref().map(|d| CanvasInput {
                display_size: d.display_size(),
                display_scale: d.display_scale,
                has_styled: d.styled_display.is_some(),
                strength: self.settings.strength,
                preserve_colors: self.settings.preserve_colors,
                fallback: self.fallback.as_ref(),
                fallback_photo: self.fallback_photo.as_ref(),
                gpu: self.wgpu.is_some(),
            });
            self.canvas.ui(ui, input, show_original);
        });
        self.overwrite_modal(&ctx);
        self.screenshot_step(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if !self.ephemeral {
            eframe::set_value(storage, settings::STORAGE_KEY, &self.settings);
        }
    }
}

/// Opens the window and runs until it is closed.
pub fn run(opts: AppOptions) -> anyhow::Result<bool> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Atelier")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        persist_window: opts.screenshot.is_none(),
        ..Default::default()
    };
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = failed.clone();
    eframe::run_native(
        "atelier",
        native,
        Box::new(move |cc| {
            let mut app = AtelierApp::new(cc, opts);
            // Shared so the exit status survives the window.
            f.fetch_or(
                app.failed.load(std::sync::atomic::Ordering::SeqCst),
                std::sync::atomic::Ordering::SeqCst,
            );
            app.failed = f;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    Ok(!failed.load(std::sync::atomic::Ordering::SeqCst))
}
