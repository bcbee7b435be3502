//! The desktop app (eframe + wgpu).
//!
//! Each frame, [`AtelierApp`] first takes in what arrived from off the UI thread
//! (`receive`: the stylising `worker`, the background `jobs`, the trainer), then draws the
//! menus, the panels and the canvas, which only push [`Command`]s, and finally executes
//! those commands (`command`). State is split the same way: [`Settings`] is what is
//! remembered between launches, [`State`] what is open now. The UI thread never runs a
//! network or waits on a file: the worker stylises; jobs, each on its own thread, decode,
//! save, export and import (through the library's `install::import_style`, which renders
//! the thumbnail); the trainer trains.

pub mod blend_pass;
pub mod cache;
pub mod canvas;
pub mod command;
pub mod dialogs;
mod display;
pub mod document;
pub mod gallery;
pub mod history;
pub mod jobs;
pub mod mask;
mod menus;
mod receive;
mod screenshot;
pub mod session;
pub mod settings;
pub mod state;
mod status;
pub mod training;
pub mod video_panel;
pub mod worker;

pub use command::{Command, DropTarget};
pub use state::{Notice, State};

use crate::model::registry::Registry;
use canvas::CanvasPanel;
use display::Display;
use gallery::GalleryPanel;
use jobs::Jobs;
use screenshot::Screenshot;
use settings::Settings;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use training::TrainingPanel;
use worker::WorkerHandle;

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
    /// Where Export writes instead of Pictures/Atelier (tests).
    pub export_dir: Option<PathBuf>,
    /// Use the app's own file browser, never the system's dialog (tests; also
    /// `ATELIER_FILE_DIALOG=builtin`).
    pub builtin_dialogs: bool,
}

pub struct AtelierApp {
    /// Remembered between launches.
    pub settings: Settings,
    /// What is open and happening now.
    pub state: State,
    pub canvas: CanvasPanel,
    pub gallery: GalleryPanel,
    pub training: TrainingPanel,
    display: Display,
    worker: WorkerHandle,
    jobs: Jobs,
    ctx: egui::Context,
    screenshot: Option<Screenshot>,
    ephemeral: bool,
    export_dir: Option<PathBuf>,
    /// The window title last set.
    pub title: String,
    /// Results computed this session, per (photo, style).
    pub cache: cache::ResultCache,
    /// Undo and redo of style, strength, colour, stroke size and mask edits.
    pub history: history::History,
    /// Set when `--screenshot` could not be produced; `run` exits non-zero.
    pub failed: Arc<AtomicBool>,
}

impl AtelierApp {
    pub fn new(cc: &eframe::CreationContext<'_>, opts: AppOptions) -> Self {
        let mut settings: Settings = if opts.ephemeral {
            Settings::default()
        } else {
            cc.storage
                .and_then(|s| eframe::get_value(s, settings::STORAGE_KEY))
                .unwrap_or_default()
        };
        if let Some(d) = &opts.device {
            settings.device = d.clone();
        }
        let ctx = cc.egui_ctx.clone();
        let worker = WorkerHandle::spawn(settings.device_choice(), move || ctx.request_repaint());
        let mut training = TrainingPanel::default();
        training.device = settings.device_choice();
        if let Some(d) = &opts.runs_dir {
            training.runs_dir = d.clone();
        }
        let mut app = Self {
            settings,
            state: State::default(),
            canvas: CanvasPanel::default(),
            gallery: GalleryPanel::new(opts.registry.unwrap_or_else(Registry::from_env)),
            training,
            display: Display::new(cc.wgpu_render_state.clone()),
            worker,
            jobs: Jobs::new(cc.egui_ctx.clone()),
            ctx: cc.egui_ctx.clone(),
            screenshot: opts.screenshot.map(Screenshot::new),
            ephemeral: opts.ephemeral,
            export_dir: opts.export_dir,
            cache: Default::default(),
            history: Default::default(),
            title: "Atelier".into(),
            failed: Arc::new(AtomicBool::new(false)),
        };
        app.state.native_dialogs = !opts.builtin_dialogs && dialogs::native_wanted();
        app.reload_styles();
        // Pick the remembered style (or the one asked for) if it still exists.
        let wanted = match &opts.style {
            Some(s) => match app.gallery.registry.resolve(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    app.fail_screenshot(&e);
                    // A warning, which opening the photo does not clear.
                    app.state.notice = Some(Notice::Warning(format!("--style {s}: {e}")));
                    None
                }
            },
            None => app.settings.style.clone().filter(|p| p.is_file()),
        };
        app.gallery.selected = wanted;
        // A warning, so it is still there when the first (faint) result arrives.
        if app.settings.strength < 0.5 && app.state.notice.is_none() {
            app.state.notice = Some(Notice::Warning(format!(
                "Strength is at {:.0} % from last time: results show little of the style \
                 (slider at the top).",
                app.settings.strength * 100.0
            )));
        }
        if let Some(p) = opts.open {
            app.execute(Command::Open(p));
        }
        if app.screenshot.is_some()
            && (app.gallery.selected.is_none() || app.failed.load(Ordering::SeqCst))
        {
            eprintln!("error: --screenshot needs --open IMAGE and --style NAME");
            app.failed.store(true, Ordering::SeqCst);
        }
        app
    }
}

impl eframe::App for AtelierApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.receive(ctx);
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !dropped.is_empty() {
            let target = self.drop_target(ctx);
            for p in dropped {
                self.execute(Command::dropped(p, target));
            }
        }
        self.display
            .refresh(ctx, self.state.doc.as_ref(), &self.settings);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let mut commands = Vec::new();
        let show_original = menus::shortcuts(&ctx, &mut commands);
        let menu_state = menus::MenuState {
            can_save: self.state.doc.as_ref().is_some_and(|d| d.result.is_some()),
            can_undo: self.history.can_undo(),
            can_redo: self.history.can_redo(),
            has_photo: self.state.doc.is_some(),
            comparing: self.canvas.split.is_some(),
        };
        egui::Panel::top("toolbar").show(ui, |ui| {
            menus::menu_bar(ui, &mut self.settings, menu_state, &mut commands)
        });
        let running = self
            .state
            .doc
            .as_ref()
            .and_then(|d| d.job.as_ref())
            .and_then(|(_, style)| self.gallery.entry(style))
            .map(|e| e.meta.name.clone());
        // Screen pixels per photo pixel, so 100 % is what Ctrl+1 shows.
        let zoom = self.canvas.zoom
            * ctx.pixels_per_point()
            * self.state.doc.as_ref().map_or(1.0, |d| d.display_scale);
        egui::Panel::bottom("status").show(ui, |ui| {
            status::status_line(ui, &self.state, running.as_deref(), zoom, &mut commands)
        });
        if let Some(v) = self.state.video.as_mut() {
            egui::Panel::bottom("video").show(ui, |ui| v.ui(ui, &mut commands));
        }
        // Files held over the window: the panel they would land on says so. Decided from
        // the gallery's place last frame, as a drop is (in `logic`).
        let held = ctx.input(|i| !i.raw.hovered_files.is_empty());
        let target = self.drop_target(&ctx);
        self.gallery.drop_hover = held && target == DropTarget::Gallery;
        self.canvas.drop_hover = held && target == DropTarget::Canvas;
        self.gallery.panel_rect = None;
        if self.settings.show_gallery {
            let panel = egui::Panel::right("gallery")
                .resizable(true)
                .default_size(260.0)
                .show(ui, |ui| self.gallery.ui(ui, &mut commands));
            self.gallery.panel_rect = Some(panel.response.rect);
        }
        if self.settings.show_training {
            egui::Panel::left("training")
                .resizable(true)
                .default_size(340.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| self.training.ui(ui, &mut commands));
                });
        }
        egui::CentralPanel::no_frame().show(ui, |ui| {
            let input = self
                .state
                .doc
                .as_ref()
                .map(|d| self.display.canvas_input(d, &self.settings));
            self.canvas.brush = self
                .settings
                .brush
                .active
                .then_some(self.settings.brush.radius);
            self.canvas.ui(ui, input, show_original, &mut commands);
        });
        if let Some(p) = &self.state.pending_save {
            if let Some(replace) = dialogs::replace_file(&ctx, &p.path) {
                commands.push(Command::ConfirmOverwrite(replace));
            }
        }
        menus::shortcuts_window(&ctx, &mut self.state.show_shortcuts);
        self.update_title(&ctx);
        if let Some(b) = self.state.browser.as_mut() {
            match b.ui(&ctx) {
                Some(dialogs::BrowserAction::Picked(p)) => {
                    commands.push(Command::Picked(b.purpose.clone(), p))
                }
                Some(dialogs::BrowserAction::Cancelled) => self.state.browser = None,
                None => {}
            }
        }
        for c in commands {
            self.execute(c);
        }
        // One undo step per drag or stroke: recorded when the pointer is up again.
        let settled = !ctx.input(|i| i.pointer.any_down());
        self.commit_edits(settled);
        self.screenshot_step(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if !self.ephemeral {
            eframe::set_value(storage, settings::STORAGE_KEY, &self.settings);
        }
    }
}

impl AtelierApp {
    /// Where files dropped (or held) now land: the gallery when the pointer is over it,
    /// by the gallery's place as last drawn; the canvas otherwise. The position is the
    /// pointer's as egui knows it this frame (`hover_pos`, which in egui 0.37 is
    /// `latest_pos`): cleared when the pointer leaves the window, so a file dragged in
    /// from outside on a platform that reports no pointer moves during the drag is not
    /// routed by where the pointer once left. With no position the drop goes to the
    /// canvas, as every drop did before.
    fn drop_target(&self, ctx: &egui::Context) -> DropTarget {
        let over_gallery = ctx
            .input(|i| i.pointer.hover_pos())
            .zip(self.gallery.panel_rect)
            .is_some_and(|(pos, rect)| rect.contains(pos));
        if over_gallery {
            DropTarget::Gallery
        } else {
            DropTarget::Canvas
        }
    }

    /// "chelsea.png — Atelier": the window says what is open.
    fn update_title(&mut self, ctx: &egui::Context) {
        let title = match &self.state.doc {
            Some(d) => format!("{} — Atelier", d.name),
            None => "Atelier".to_string(),
        };
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }
}

/// Opens the window and runs until it is closed; `false` when `--screenshot` failed.
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
    let failed = Arc::new(AtomicBool::new(false));
    let f = failed.clone();
    eframe::run_native(
        "atelier",
        native,
        Box::new(move |cc| {
            let mut app = AtelierApp::new(cc, opts);
            // Shared so the exit status survives the window.
            f.fetch_or(app.failed.load(Ordering::SeqCst), Ordering::SeqCst);
            app.failed = f;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    Ok(!failed.load(Ordering::SeqCst))
}
