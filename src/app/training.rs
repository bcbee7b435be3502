//! The training panel: pick a painting and a folder of photos, start / pause / stop a
//! run of the library's trainer (its own thread), and watch its losses, speed and
//! preview arrive. The panel only draws what the trainer has sent.

use crate::device::DeviceChoice;
use crate::model::registry::{data_dir, file_stem_for};
use crate::train::{self, Control, Metrics, TrainConfig, TrainEvent, TrainerHandle};
use egui_plot::{Legend, Line, Plot, PlotPoints};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Idle,
    Running,
    Paused,
    Stopped,
    Finished { model: PathBuf },
    Failed(String),
}

/// What the app must do after a panel event (the gallery lives elsewhere).
pub enum TrainingOutcome {
    /// A finished model: install it among the user's styles under `name`.
    Finished { model: PathBuf, name: String },
}

pub struct TrainingPanel {
    pub style_image: String,
    pub content_dir: String,
    pub name: String,
    pub iterations: u64,
    /// The normalised loss's style weight (see [`crate::train::loss::Strength`]).
    pub style_weight: f64,
    pub image_size: u32,
    pub batch_size: usize,
    /// Where runs go: `<data dir>/runs/<name>`.
    pub runs_dir: PathBuf,
    /// Overrides the bundled VGG16 (tests use a tiny one).
    pub vgg: Option<PathBuf>,
    pub device: DeviceChoice,
    pub state: RunState,
    pub metrics: Vec<Metrics>,
    pub total: u64,
    pub device_used: Option<String>,
    pub message: Option<String>,
    pub run_dir: Option<PathBuf>,
    preview: Option<egui::TextureHandle>,
    preview_iteration: u64,
    handle: Option<TrainerHandle>,
}

impl Default for TrainingPanel {
    fn default() -> Self {
        let d = TrainConfig::new(
            PathBuf::new(),
            PathBuf::new(),
            PathBuf::new(),
            String::new(),
        );
        Self {
            style_image: String::new(),
            content_dir: String::new(),
            name: String::new(),
            iterations: d.iterations,
            style_weight: d.style_weight,
            image_size: d.image_size,
            batch_size: d.batch_size,
            runs_dir: data_dir().join("runs"),
            vgg: None,
            device: DeviceChoice::Auto,
            state: RunState::Idle,
            metrics: Vec::new(),
            total: 0,
            device_used: None,
            message: None,
            run_dir: None,
            preview: None,
            preview_iteration: 0,
            handle: None,
        }
    }
}

impl TrainingPanel {
    pub fn is_active(&self) -> bool {
        matches!(self.state, RunState::Running | RunState::Paused)
    }

    /// The form as a trainer config, or what is wrong with it.
    pub fn config(&self) -> Result<TrainConfig, String> {
        let style = PathBuf::from(self.style_image.trim());
        let content = PathBuf::from(self.content_dir.trim());
        if style.as_os_str().is_empty() {
            return Err("Choose a painting to learn the style from.".into());
        }
        if !style.is_file() {
            return Err(format!("The painting {} does not exist.", style.display()));
        }
        if content.as_os_str().is_empty() {
            return Err("Choose a folder of photos to train on.".into());
        }
        if !content.is_dir() {
            return Err(format!("{} is not a folder.", content.display()));
        }
        let name = if self.name.trim().is_empty() {
            style
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "my style".into())
        } else {
            self.name.trim().to_string()
        };
        let run_dir = self.runs_dir.join(file_stem_for(&name));
        let mut cfg = TrainConfig::new(style, content, run_dir, name);
        cfg.iterations = self.iterations;
        cfg.set_strength(crate::train::loss::Strength::Weight(self.style_weight));
        cfg.image_size = self.image_size;
        cfg.batch_size = self.batch_size;
        cfg.vgg = self.vgg.clone();
        cfg.device = self.device;
        cfg.checkpoint_every = (self.iterations / 6).clamp(1, 500);
        cfg.preview_every = (self.iterations / 12).clamp(1, 250);
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    pub fn start(&mut self, ctx: &egui::Context) {
        match self.config() {
            Ok(cfg) => self.launch(cfg, false, ctx),
            Err(e) => self.message = Some(e),
        }
    }

    /// Continues the run saved in `dir` from its last checkpoint.
    pub fn resume(&mut self, dir: &Path, ctx: &egui::Context) {
        match crate::train::run_dir::RunDir::read_config(dir) {
            Ok(mut cfg) => {
                cfg.device = self.device;
                self.name = cfg.name.clone();
                self.iterations = cfg.iterations;
                self.launch(cfg, true, ctx)
            }
            Err(e) => self.message = Some(format!("Cannot resume {}: {e}", dir.display())),
        }
    }

    fn launch(&mut self, cfg: TrainConfig, resume: bool, ctx: &egui::Context) {
        self.metrics.clear();
        self.preview = None;
        self.message = None;
        self.total = cfg.iterations;
        self.run_dir = Some(cfg.run_dir.clone());
        self.name = cfg.name.clone();
        self.state = RunState::Running;
        // The trainer wakes the UI for each event it sends.
        let ctx = ctx.clone();
        self.handle = Some(train::start_with_waker(cfg, resume, move || {
            ctx.request_repaint()
        }));
    }

    pub fn control(&mut self, c: Control) {
        if let Some(h) = &self.handle {
            h.send(c);
        }
    }

    /// Drains trainer events; returns what the app must act on.
    pub fn poll(&mut self, ctx: &egui::Context) -> Option<TrainingOutcome> {
        let mut outcome = None;
        let Some(h) = &self.handle else { return None };
        let mut done = false;
        while let Ok(ev) = h.events.try_recv() {
            match ev {
                TrainEvent::Started {
                    device,
                    total,
                    resumed_from,
                    ..
                } => {
                    self.device_used = Some(device);
                    self.total = total;
                    if let Some(i) = resumed_from {
                        self.message = Some(format!("Resumed from iteration {i}."));
                    }
                }
                TrainEvent::Metrics(m) => self.metrics.push(m),
                TrainEvent::Preview {
                    iteration, image, ..
                } => {
                    let size = [image.width() as usize, image.height() as usize];
                    let ci = egui::ColorImage::from_rgb(size, image.as_raw());
                    self.preview =
                        Some(ctx.load_texture("training-preview", ci, Default::default()));
                    self.preview_iteration = iteration;
                }
                TrainEvent::Checkpoint { .. } => {}
                TrainEvent::Paused { .. } => self.state = RunState::Paused,
                TrainEvent::Resumed { .. } => self.state = RunState::Running,
                TrainEvent::Stopped { iteration } => {
                    self.state = RunState::Stopped;
                    self.message = Some(format!(
                        "Stopped at iteration {iteration}; Resume continues from the last checkpoint."
                    ));
                    done = true;
                }
                TrainEvent::Finished {
                    model,
                    iterations,
                    seconds,
                    skipped,
                } => {
                    let mut msg = format!(
                        "Finished {iterations} iterations in {:.1} min; '{}' is now in the gallery.",
                        seconds / 60.0,
                        self.name
                    );
                    if !skipped.is_empty() {
                        msg.push_str(&format!(" Skipped {} unreadable photos.", skipped.len()));
                    }
                    self.message = Some(msg);
                    self.state = RunState::Finished {
                        model: model.clone(),
                    };
                    outcome = Some(TrainingOutcome::Finished {
                        model,
                        name: self.name.clone(),
                    });
                    done = true;
                }
                TrainEvent::Failed { message } => {
                    self.state = RunState::Failed(message.clone());
                    self.message = Some(message);
                    done = true;
                }
            }
        }
        if done {
            self.handle = None;
        }
        outcome
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        ui.heading("Train a style");
        ui.label(
            egui::RichText::new(
                "Pick a painting and a folder of everyday photos (a few hundred to a few \
                 thousand: people, streets, landscapes, objects). Variety matters more than \
                 number; the photos are only used to teach the network, never shown.",
            )
            .small(),
        );
        let editable = !self.is_active();
        ui.add_enabled_ui(editable, |ui| {
            egui::Grid::new("train-form").num_columns(2).show(ui, |ui| {
                let l = ui.label("Painting");
                ui.horizontal(|ui| {
                    ui.add(egui::TextEdit::singleline(&mut self.style_image).hint_text("path to an image").desired_width(180.0))
                        .labelled_by(l.id);
                    if ui.button("…").on_hover_text("Choose the painting").clicked() {
                        if let Some(p) = rfd::FileDialog::new()
                            .add_filter("Images", crate::formats::IMAGE_EXTENSIONS)
                            .pick_file()
                        {
                            self.style_image = p.display().to_string();
                        }
                    }
                });
                ui.end_row();
                let l = ui.label("Photos");
                ui.horizontal(|ui| {
                    ui.add(egui::TextEdit::singleline(&mut self.content_dir).hint_text("folder of photos").desired_width(180.0))
                        .labelled_by(l.id);
                    if ui.button("…").on_hover_text("Choose the folder of photos").clicked() {
                        if let Some(p) = rfd::FileDialog::new().pick_folder() {
                            self.content_dir = p.display().to_string();
                        }
                    }
                });
                ui.end_row();
                let l = ui.label("Name");
                ui.add(egui::TextEdit::singleline(&mut self.name).hint_text("the painting's file name").desired_width(200.0))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Iterations").on_hover_text("Training steps. 3000–4000 give a finished style; a few hundred show whether the settings work.");
                ui.add(egui::DragValue::new(&mut self.iterations).range(1..=100_000).speed(50)).labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Strength").on_hover_text("How much of the painting the style carries. Balanced suits most paintings; subtle keeps more of the photo, bold more of the painting. The number is the style weight, for experts.");
                ui.horizontal(|ui| {
                    use crate::train::loss::Strength;
                    for p in Strength::PRESETS {
                        let w = p.style_weight();
                        if ui.selectable_label(self.style_weight == w, p.label()).clicked() {
                            self.style_weight = w;
                        }
                    }
                    ui.add(egui::DragValue::new(&mut self.style_weight).range(0.1..=1000.0).speed(0.1))
                        .labelled_by(l.id)
                        .on_hover_text("The style weight of the normalised loss (balanced: 10).");
                });
                ui.end_row();
                let l = ui.label("Image size").on_hover_text("Side of the square training crops. 256 is standard; larger learns larger brush strokes but is slower.");
                ui.add(egui::DragValue::new(&mut self.image_size).range(64..=1024).speed(16)).labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Batch").on_hover_text("Photos per step. 4 is standard; lower it if the GPU runs out of memory.");
                ui.add(egui::DragValue::new(&mut self.batch_size).range(1..=32)).labelled_by(l.id);
                ui.end_row();
            });
        });
        ui.horizontal(|ui| match self.state {
            RunState::Running => {
                if ui.button("Pause").clicked() {
                    self.control(Control::Pause);
                }
                if ui.button("Stop").clicked() {
                    self.control(Control::Stop);
                }
            }
            RunState::Paused => {
                if ui.button("Continue").clicked() {
                    self.control(Control::Resume);
                }
                if ui.button("Stop").clicked() {
                    self.control(Control::Stop);
                }
            }
            _ => {
                if ui.button("Start training").clicked() {
                    self.start(&ctx);
                }
                if let (RunState::Stopped | RunState::Failed(_), Some(dir)) =
                    (&self.state, self.run_dir.clone())
                {
                    if dir.join("checkpoint.safetensors").is_file() && ui.button("Resume").clicked()
                    {
                        self.resume(&dir, &ctx);
                    }
                }
                if ui
                    .button("Resume a run…")
                    .on_hover_text("Continue an interrupted run from its folder")
                    .clicked()
                {
                    if let Some(dir) = rfd::FileDialog::new()
                        .set_directory(&self.runs_dir)
                        .pick_folder()
                    {
                        self.resume(&dir, &ctx);
                    }
                }
            }
        });
        if let Some(m) = &self.message {
            let color = if matches!(self.state, RunState::Failed(_) | RunState::Idle) {
                ui.visuals().error_fg_color
            } else {
                ui.visuals().text_color()
            };
            ui.colored_label(color, m);
        }
        if let Some(last) = self.metrics.last() {
            let left = self.total.saturating_sub(last.iteration);
            let eta = if last.it_per_s > 0.0 {
                left as f64 / last.it_per_s
            } else {
                0.0
            };
            ui.label(format!(
                "iteration {} / {} · {:.2} it/s · ETA {} · {}",
                last.iteration,
                self.total,
                last.it_per_s,
                format_duration(eta),
                self.device_used.as_deref().unwrap_or("")
            ));
            ui.add(egui::ProgressBar::new(
                last.iteration as f32 / self.total.max(1) as f32,
            ));
            ui.label(format!(
                "loss {:.3e} = content {:.3e} + style {:.3e} + tv {:.3e}",
                last.total, last.content, last.style, last.tv
            ));
            self.plot_ui(ui);
        }
        if let Some(p) = &self.preview {
            ui.label(format!("Preview at iteration {}", self.preview_iteration));
            ui.add(
                egui::Image::new(p)
                    .max_width(ui.available_width())
                    .max_height(220.0),
            );
        }
    }

    fn plot_ui(&self, ui: &mut egui::Ui) {
        // log10 of each loss: they span orders of magnitude and fall fast at first.
        let series = |f: fn(&Metrics) -> f64| -> PlotPoints {
            self.metrics
                .iter()
                .filter(|m| f(m) > 0.0)
                .map(|m| [m.iteration as f64, f(m).log10()])
                .collect()
        };
        Plot::new("losses")
            .height(180.0)
            .legend(Legend::default())
            .y_axis_label("log10 loss")
            .x_axis_label("iteration")
            .y_axis_formatter(|m, _| format!("1e{:.0}", m.value))
            .show(ui, |p| {
                p.line(Line::new("total", series(|m| m.total)));
                p.line(Line::new("content", series(|m| m.content)));
                p.line(Line::new("style", series(|m| m.style)));
                p.line(Line::new("tv", series(|m| m.tv)));
            });
    }
}

fn format_duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
