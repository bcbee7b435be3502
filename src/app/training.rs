//! The training panel: pick a painting and a folder of photos, start / pause / stop a
//! run of the library's trainer (its own thread), and watch its losses, speed and
//! preview arrive. The panel only draws what the trainer has sent.

use crate::device::DeviceChoice;
use crate::model::registry::{data_dir, file_stem_for};
use crate::train::{self, Control, Metrics, TrainConfig, TrainEvent, TrainerHandle};
use egui_plot::{Line, Plot, PlotPoints};
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
    /// The time a step takes at the form's settings, measured before Start.
    pub estimate: Estimate,
}

/// The speed of training at given settings on this computer, from a few timed steps.
#[derive(Default)]
pub enum Estimate {
    #[default]
    None,
    Measuring {
        handle: TrainerHandle,
        dir: PathBuf,
        key: EstimateKey,
        /// `elapsed_s` of each step so far.
        steps: Vec<f64>,
    },
    Measured {
        seconds_per_step: f64,
        key: EstimateKey,
    },
    Failed(String),
}

/// What a step's time depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimateKey {
    pub image_size: u32,
    pub batch_size: usize,
    pub device: DeviceChoice,
}

/// Steps timed for an estimate: the first warms up and is not counted.
const ESTIMATE_STEPS: usize = 3;

/// The "Quick test" preset: a rough style in minutes even on a processor, to see whether
/// a painting and photos work before a long run.
pub const QUICK_TEST: (u64, u32, usize) = (300, 128, 1);

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
            estimate: Estimate::None,
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

    fn launch(&mut self, mut cfg: TrainConfig, resume: bool, ctx: &egui::Context) {
        // A resumed run continues its chart (the points past its checkpoint are dropped
        // when it reports where it resumed from).
        if !resume {
            self.metrics.clear();
            self.preview = None;
        }
        self.cancel_estimate();
        // The same rule as styling: a graphics card that cannot be used means the
        // processor, said plainly, not a refusal.
        if matches!(cfg.device, DeviceChoice::Cuda(_) | DeviceChoice::Metal)
            && cfg.device.open().is_err()
        {
            cfg.device = DeviceChoice::Cpu;
        }
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

    pub fn estimate_key(&self) -> EstimateKey {
        EstimateKey {
            image_size: self.image_size,
            batch_size: self.batch_size,
            device: self.device,
        }
    }

    /// Times a few steps at the form's settings, in a scratch run that is removed after.
    pub fn start_estimate(&mut self, ctx: &egui::Context) {
        self.cancel_estimate();
        let mut cfg = match self.config() {
            Ok(c) => c,
            Err(e) => {
                self.message = Some(e);
                return;
            }
        };
        let dir = self.runs_dir.join(".estimate");
        let _ = std::fs::remove_dir_all(&dir);
        cfg.run_dir = dir.clone();
        // Stopped after the timed steps, long before these.
        cfg.iterations = 1_000_000;
        cfg.checkpoint_every = 1_000_000;
        cfg.preview_every = 0;
        cfg.install = false;
        let key = self.estimate_key();
        let ctx = ctx.clone();
        let handle = train::start_with_waker(cfg, false, move || ctx.request_repaint());
        self.estimate = Estimate::Measuring {
            handle,
            dir,
            key,
            steps: Vec::new(),
        };
    }

    fn cancel_estimate(&mut self) {
        if let Estimate::Measuring { handle, dir, .. } = std::mem::take(&mut self.estimate) {
            handle.send(Control::Stop);
            // The trainer may still be writing; it is removed again before the next estimate.
            std::thread::spawn(move || {
                handle.join();
                let _ = std::fs::remove_dir_all(dir);
            });
        }
    }

    fn poll_estimate(&mut self) {
        let Estimate::Measuring {
            handle, steps, key, ..
        } = &mut self.estimate
        else {
            return;
        };
        let key = *key;
        let mut failed = None;
        while let Ok(ev) = handle.events.try_recv() {
            match ev {
                TrainEvent::Metrics(m) => steps.push(m.elapsed_s),
                TrainEvent::Failed { message } => failed = Some(message),
                _ => {}
            }
        }
        if steps.len() >= ESTIMATE_STEPS {
            let n = (steps.len() - 1) as f64;
            let seconds_per_step = (steps[steps.len() - 1] - steps[0]) / n;
            self.cancel_estimate();
            self.estimate = Estimate::Measured {
                seconds_per_step,
                key,
            };
        } else if let Some(m) = failed {
            self.cancel_estimate();
            self.estimate = Estimate::Failed(m);
        }
    }

    /// The whole run's time at the form's settings, once measured for them.
    pub fn estimated_seconds(&self) -> Option<f64> {
        match &self.estimate {
            Estimate::Measured {
                seconds_per_step,
                key,
            } if *key == self.estimate_key() => Some(seconds_per_step * self.iterations as f64),
            _ => None,
        }
    }

    /// Drains trainer events; returns what the app must act on.
    pub fn poll(&mut self, ctx: &egui::Context) -> Option<TrainingOutcome> {
        self.poll_estimate();
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
                    self.device_used = Some(plain_device(&device));
                    self.total = total;
                    if let Some(i) = resumed_from {
                        self.metrics.retain(|m| m.iteration <= i);
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
                TrainEvent::Paused { iteration } => {
                    self.state = RunState::Paused;
                    self.message = Some(format!(
                        "Paused at iteration {iteration}; Continue carries on."
                    ));
                }
                TrainEvent::Resumed { .. } => {
                    self.state = RunState::Running;
                    self.message = None;
                }
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

    pub fn ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<super::Command>) {
        use super::dialogs::Purpose;
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
                        .labelled_by(l.id)
                        .on_hover_text("The painting whose style the network learns");
                    if ui.button("…").on_hover_text("Choose the painting").clicked() {
                        out.push(super::Command::Browse(Purpose::Painting));
                    }
                });
                ui.end_row();
                let l = ui.label("Photos");
                ui.horizontal(|ui| {
                    ui.add(egui::TextEdit::singleline(&mut self.content_dir).hint_text("folder of photos").desired_width(180.0))
                        .labelled_by(l.id)
                        .on_hover_text("Everyday photos to practise on; they are never shown");
                    if ui.button("…").on_hover_text("Choose the folder of photos").clicked() {
                        out.push(super::Command::Browse(Purpose::PhotoFolder));
                    }
                });
                ui.end_row();
                let l = ui.label("Name");
                ui.add(egui::TextEdit::singleline(&mut self.name).hint_text("the painting's file name").desired_width(200.0))
                    .labelled_by(l.id)
                    .on_hover_text("The style's name in the gallery");
                ui.end_row();
                let tip = "Training steps. 3000–4000 give a finished style; a few hundred show whether the settings work.";
                let l = ui.label("Iterations").on_hover_text(tip);
                ui.add(egui::DragValue::new(&mut self.iterations).range(1..=100_000).speed(50)).labelled_by(l.id).on_hover_text(tip);
                ui.end_row();
                let tip = "How much of the painting the style carries. Balanced suits most paintings; subtle keeps more of the photo, bold more of the painting. The number is the style weight, for experts.";
                let l = ui.label("Strength").on_hover_text(tip);
                ui.horizontal(|ui| {
                    use crate::train::loss::Strength;
                    for p in Strength::PRESETS {
                        let w = p.style_weight();
                        if ui.selectable_label(self.style_weight == w, p.label()).on_hover_text(tip).clicked() {
                            self.style_weight = w;
                        }
                    }
                    ui.add(egui::DragValue::new(&mut self.style_weight).range(0.1..=1000.0).speed(0.1))
                        .labelled_by(l.id)
                        .on_hover_text("The style weight of the normalised loss (balanced: 10).");
                });
                ui.end_row();
                let tip = "Side of the square training crops. 256 is standard; larger learns larger brush strokes but is slower.";
                let l = ui.label("Image size").on_hover_text(tip);
                ui.add(egui::DragValue::new(&mut self.image_size).range(64..=1024).speed(16)).labelled_by(l.id).on_hover_text(tip);
                ui.end_row();
                let tip = "Photos per step. 4 is standard; lower it if the GPU runs out of memory.";
                let l = ui.label("Batch").on_hover_text(tip);
                ui.add(egui::DragValue::new(&mut self.batch_size).range(1..=32)).labelled_by(l.id).on_hover_text(tip);
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
                let measuring = matches!(self.estimate, Estimate::Measuring { .. });
                if ui
                    .add_enabled(!measuring, egui::Button::new("Estimate time"))
                    .on_hover_text("Time a few training steps at these settings on this computer")
                    .clicked()
                {
                    self.start_estimate(&ctx);
                }
                if ui
                    .button("Quick test")
                    .on_hover_text(
                        "300 steps on small crops, one photo a step: a rough style in minutes \
                         even on a processor, to check the painting and photos first",
                    )
                    .clicked()
                {
                    (self.iterations, self.image_size, self.batch_size) = QUICK_TEST;
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
                    out.push(super::Command::Browse(Purpose::RunFolder));
                }
            }
        });
        if !self.is_active() {
            self.estimate_ui(ui);
        }
        if let Some(m) = &self.message {
            let color = if matches!(self.state, RunState::Failed(_) | RunState::Idle) {
                ui.visuals().error_fg_color
            } else {
                ui.visuals().text_color()
            };
            ui.colored_label(color, m);
        }
        if let Some(last) = self.metrics.last() {
            // A time left only while it runs: paused or stopped, nothing is counting down.
            let status = match &self.state {
                RunState::Running => {
                    let left = self.total.saturating_sub(last.iteration);
                    if last.it_per_s > 0.0 {
                        format!(
                            "Running · {:.2} it/s · {} left",
                            last.it_per_s,
                            format_duration(left as f64 / last.it_per_s)
                        )
                    } else {
                        "Running".to_string()
                    }
                }
                RunState::Paused => "Paused".into(),
                RunState::Stopped => "Stopped".into(),
                RunState::Finished { .. } => "Finished".into(),
                RunState::Failed(_) => "Failed".into(),
                RunState::Idle => String::new(),
            };
            ui.label(format!(
                "{status} · iteration {} / {} · {}",
                last.iteration,
                self.total,
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

    /// Before Start: how long the run would take here, or how to find out.
    fn estimate_ui(&self, ui: &mut egui::Ui) {
        match (&self.estimate, self.estimated_seconds()) {
            (Estimate::Measuring { steps, .. }, _) => {
                ui.horizontal(|ui| {
                    ui.add(egui::Spinner::new());
                    ui.label(format!(
                        "Timing a few steps ({} of {ESTIMATE_STEPS})…",
                        steps.len()
                    ));
                });
            }
            (_, Some(secs)) => {
                let text = format!(
                    "About {} for {} iterations on this computer at these settings.",
                    format_duration(secs),
                    self.iterations
                );
                if secs > 6.0 * 3600.0 {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!("{text} Quick test, a smaller image size or a graphics card make it shorter."),
                    );
                } else {
                    ui.label(text);
                }
            }
            (Estimate::Failed(m), None) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("Could not time it: {m}"),
                );
            }
            _ if matches!(self.device, DeviceChoice::Cpu)
                || (matches!(self.device, DeviceChoice::Auto)
                    && !cfg!(any(feature = "cuda", feature = "metal"))) =>
            {
                ui.weak(
                    "On the processor a full training takes days; Estimate time tells how long, \
                     Quick test gives a rough style in minutes.",
                );
            }
            _ => {}
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
        // The legend sits above the plot, not over the curves.
        const SERIES: [(&str, egui::Color32); 4] = [
            ("total", egui::Color32::from_rgb(230, 160, 40)),
            ("content", egui::Color32::from_rgb(80, 160, 230)),
            ("style", egui::Color32::from_rgb(200, 90, 200)),
            ("tv", egui::Color32::from_rgb(120, 190, 90)),
        ];
        ui.horizontal(|ui| {
            for (name, colour) in SERIES {
                let (swatch, _) =
                    ui.allocate_exact_size(egui::vec2(14.0, 3.0), egui::Sense::hover());
                ui.painter().rect_filled(swatch, 0.0, colour);
                ui.label(name);
            }
        });
        Plot::new("losses")
            .height(180.0)
            .y_axis_label("log10 loss")
            .x_axis_label("iteration")
            .y_axis_formatter(|m, _| format!("1e{:.0}", m.value))
            .show(ui, |p| {
                let values: [fn(&Metrics) -> f64; 4] =
                    [|m| m.total, |m| m.content, |m| m.style, |m| m.tv];
                for ((name, colour), f) in SERIES.into_iter().zip(values) {
                    p.line(Line::new(name, series(f)).color(colour));
                }
            });
    }
}

/// The trainer's device name in an artist's words.
fn plain_device(d: &str) -> String {
    if d.starts_with("cpu") {
        "on the processor".into()
    } else if d.starts_with("cuda") {
        "on the NVIDIA graphics card".into()
    } else if d.starts_with("metal") {
        "on the Mac's graphics".into()
    } else {
        format!("on {d}")
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
