//! Training a `johnson` style network with a VGG16 perceptual loss.
//!
//! [`start`] runs a [`Trainer`] on its own thread; it reports [`TrainEvent`]s over a
//! channel and obeys [`Control`] messages, so the command line and the app drive the
//! same code.

pub mod adam;
pub mod data;
pub mod loss;
pub mod run_dir;
pub mod vgg;

use crate::device::DeviceChoice;
use crate::model::{ModelMeta, StyleModel};
use crate::nn::{StyleNet, Variant};
use crate::stylize::{image_to_tensor, tensor_to_image, thumbnail};
use crate::{image_io, Error, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use data::{DataPosition, Dataset, Loader};
use image::RgbImage;
use run_dir::{Checkpoint, RunDir};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

/// Everything that defines a run; saved as `config.json` in the run folder.
///
/// Fields added after the first release carry serde defaults that reproduce what runs made
/// before them did, so an old run folder still resumes exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    #[serde(with = "crate::lossless_path")]
    pub style_image: PathBuf,
    #[serde(with = "crate::lossless_path")]
    pub content_dir: PathBuf,
    #[serde(with = "crate::lossless_path")]
    pub run_dir: PathBuf,
    pub name: String,
    pub iterations: u64,
    pub batch_size: usize,
    pub image_size: u32,
    /// Longest side of the style image; default: its own size, capped at `style_cap`.
    pub style_size: Option<u32>,
    /// The longest side a painting is scaled down to when `style_size` is not given
    /// ([`DEFAULT_STYLE_CAP`]); runs made before stop 15 used 1024.
    #[serde(default = "legacy_style_cap")]
    pub style_cap: u32,
    /// How the loss terms are scaled ([`loss::Scaling`]); runs made before stop 12: raw.
    #[serde(default)]
    pub scaling: loss::Scaling,
    #[serde(default = "legacy_content_layer")]
    pub content_layer: String,
    #[serde(default = "legacy_style_layers")]
    pub style_layers: Vec<String>,
    pub content_weight: f64,
    pub style_weight: f64,
    pub tv_weight: f64,
    pub lr: f64,
    pub seed: u64,
    /// Loss network weights; default: the VGG16 bundled in `models/`.
    #[serde(default, with = "crate::lossless_path::opt")]
    pub vgg: Option<PathBuf>,
    pub checkpoint_every: u64,
    pub preview_every: u64,
    #[serde(with = "device_serde")]
    pub device: DeviceChoice,
    /// Whether the finished model goes into the user's style folder (`--no-install` clears it).
    #[serde(default = "yes")]
    pub install: bool,
    /// Whether installing may replace a style of the same name (`--overwrite`).
    #[serde(default)]
    pub overwrite: bool,
    /// A typical photo's Gram energy per style layer (normalised recipe), measured on the
    /// first photos when the run starts and recorded so a resumed run divides by the same.
    #[serde(default)]
    pub photo_gram_energy: Option<Vec<f64>>,
}

/// The painting's default longest side: twice the training crop. At this scale a painting's
/// shapes — Picabia's facets, Hokusai's curling crests, Van Gogh's swirls — are the size of
/// what the deepest style layer (relu4_3) sees in a crop, so the network learns them; at
/// 1000 px and more those shapes outgrow the loss network's view and it learns only their
/// flat insides (Udnie's blotches) and a fine stroke texture (docs/gallery.md).
pub const DEFAULT_STYLE_CAP: u32 = 512;

fn legacy_style_cap() -> u32 {
    1024
}

fn legacy_content_layer() -> String {
    loss::LossSpec::raw(0.0, 0.0, 0.0).content_layer
}

fn legacy_style_layers() -> Vec<String> {
    loss::LossSpec::raw(0.0, 0.0, 0.0).style_layers
}

fn yes() -> bool {
    true
}

mod device_serde {
    use crate::device::DeviceChoice;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &DeviceChoice, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceChoice, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl TrainConfig {
    /// Defaults that give a clear, readable stylisation of any painting with the bundled VGG16
    /// (the normalised loss at [`loss::Strength::Balanced`]; docs/gallery.md).
    pub fn new(style_image: PathBuf, content_dir: PathBuf, run_dir: PathBuf, name: String) -> Self {
        let spec = loss::LossSpec::normalised(loss::Strength::Balanced);
        Self {
            style_image,
            content_dir,
            run_dir,
            name,
            iterations: 3000,
            batch_size: 4,
            image_size: 256,
            style_size: None,
            style_cap: DEFAULT_STYLE_CAP,
            scaling: spec.scaling,
            content_layer: spec.content_layer,
            style_layers: spec.style_layers,
            content_weight: spec.content_weight,
            style_weight: spec.style_weight,
            tv_weight: spec.tv_weight,
            lr: 1e-3,
            seed: 42,
            vgg: None,
            checkpoint_every: 500,
            preview_every: 250,
            device: DeviceChoice::Auto,
            install: true,
            overwrite: false,
            photo_gram_energy: None,
        }
    }

    /// The objective this run trains with.
    pub fn loss_spec(&self) -> loss::LossSpec {
        loss::LossSpec {
            scaling: self.scaling,
            content_layer: self.content_layer.clone(),
            style_layers: self.style_layers.clone(),
            content_weight: self.content_weight,
            style_weight: self.style_weight,
            tv_weight: self.tv_weight,
        }
    }

    /// Sets the one user-facing strength control (normalised recipe).
    pub fn set_strength(&mut self, s: loss::Strength) {
        let spec = loss::LossSpec::normalised(s);
        self.scaling = spec.scaling;
        self.content_layer = spec.content_layer;
        self.style_layers = spec.style_layers;
        self.content_weight = spec.content_weight;
        self.style_weight = spec.style_weight;
    }

    /// The strength of a normalised run (None for the raw recipe).
    pub fn strength(&self) -> Option<loss::Strength> {
        (self.scaling == loss::Scaling::Normalised)
            .then(|| loss::Strength::from_weight(self.style_weight))
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.iterations == 0 {
            return bad("iterations must be at least 1".into());
        }
        if self.batch_size == 0 || self.batch_size > 256 {
            return bad("batch size must be between 1 and 256".into());
        }
        if !(16..=2048).contains(&self.image_size) {
            return bad("image size must be between 16 and 2048 pixels".into());
        }
        if let Some(s) = self.style_size {
            if !(16..=4096).contains(&s) {
                return bad(format!(
                    "style size {s} is out of range: the painting's longest side must be between 16 and 4096 pixels"
                ));
            }
        }
        self.loss_spec().validate()?;
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return bad("learning rate must be between 0 and 1".into());
        }
        if self.name.trim().is_empty() {
            return bad("the style needs a name".into());
        }
        match std::fs::metadata(&self.style_image) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return bad(format!(
                    "style image {} is not a regular file",
                    self.style_image.display()
                ))
            }
            Err(_) => {
                return bad(format!(
                    "style image {} does not exist",
                    self.style_image.display()
                ))
            }
        }
        match std::fs::metadata(&self.content_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return bad(format!(
                    "{} is a file; --content-dir takes a folder of photos",
                    self.content_dir.display()
                ))
            }
            Err(_) => {
                return bad(format!(
                    "content folder {} does not exist",
                    self.content_dir.display()
                ))
            }
        }
        Ok(())
    }

    /// What a resumed run's request (`asked`) changes that [`FIXED_ON_RESUME`] forbids, as
    /// "setting: run's value → asked value" lines (empty: nothing conflicts).
    pub fn resume_conflicts(&self, asked: &ResumeRequest) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, have: String, want: Option<String>| {
            if let Some(w) = want {
                if w != have {
                    out.push(format!("{name}: the run has {have}, you asked for {w}"));
                }
            }
        };
        check(
            "--batch-size",
            self.batch_size.to_string(),
            asked.batch_size.map(|v| v.to_string()),
        );
        check(
            "--image-size",
            self.image_size.to_string(),
            asked.image_size.map(|v| v.to_string()),
        );
        check(
            "--style-size",
            format!("{:?}", self.style_size),
            asked.style_size.map(|v| format!("{:?}", Some(v))),
        );
        let strength = match self.strength() {
            Some(s) => s.label(),
            None => format!("style weight {:e} (raw loss)", self.style_weight),
        };
        check("--strength", strength, asked.strength.map(|s| s.label()));
        check(
            "--tv-weight",
            self.tv_weight.to_string(),
            asked.tv_weight.map(|v| v.to_string()),
        );
        check("--lr", self.lr.to_string(), asked.lr.map(|v| v.to_string()));
        check(
            "--seed",
            self.seed.to_string(),
            asked.seed.map(|v| v.to_string()),
        );
        check(
            "--install",
            (if self.install {
                "install"
            } else {
                "--no-install"
            })
            .to_string(),
            asked
                .install
                .map(|v| (if v { "install" } else { "--no-install" }).to_string()),
        );
        out
    }
}

/// The settings a `--resume` was given explicitly (None: not given).
#[derive(Debug, Clone, Default)]
pub struct ResumeRequest {
    pub batch_size: Option<usize>,
    pub image_size: Option<u32>,
    pub style_size: Option<u32>,
    pub strength: Option<loss::Strength>,
    pub tv_weight: Option<f64>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
    pub install: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub iteration: u64,
    pub content: f64,
    pub style: f64,
    pub tv: f64,
    pub total: f64,
    pub it_per_s: f64,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone)]
pub enum TrainEvent {
    Started {
        device: String,
        total: u64,
        resumed_from: Option<u64>,
        images: usize,
    },
    Metrics(Metrics),
    Preview {
        iteration: u64,
        path: PathBuf,
        image: RgbImage,
    },
    Checkpoint {
        iteration: u64,
        path: PathBuf,
    },
    Paused {
        iteration: u64,
    },
    Resumed {
        iteration: u64,
    },
    /// Stopped on request; the last checkpoint is current.
    Stopped {
        iteration: u64,
    },
    Finished {
        model: PathBuf,
        iterations: u64,
        seconds: f64,
        skipped: Vec<(PathBuf, String)>,
    },
    Failed {
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Stop,
}

/// A training run on its own thread.
pub struct TrainerHandle {
    pub events: Receiver<TrainEvent>,
    control: Sender<Control>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TrainerHandle {
    pub fn send(&self, c: Control) {
        let _ = self.control.send(c);
    }

    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a new run (`resume = false`) or continues the one in `cfg.run_dir`.
pub fn start(cfg: TrainConfig, resume: bool) -> TrainerHandle {
    let (etx, erx) = channel();
    let (ctx, crx) = channel();
    let thread = std::thread::Builder::new()
        .name("atelier-train".into())
        .spawn(move || {
            // A panic is a bug, but the caller still hears about it as a failure (the
            // command line's exit status, the app's panel) instead of a silent stop.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(cfg, resume, &etx, &crx)
            }));
            let message = match outcome {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => e.to_string(),
                Err(panic) => format!(
                    "the trainer stopped on an internal error ({}); the last checkpoint is kept",
                    panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("panic")
                ),
            };
            let _ = etx.send(TrainEvent::Failed { message });
        })
        .expect("spawn trainer thread");
    TrainerHandle {
        events: erx,
        control: ctx,
        thread: Some(thread),
    }
}

/// Like [`start`], calling `wake` after every event (a UI repaint request).
pub fn start_with_waker(
    cfg: TrainConfig,
    resume: bool,
    wake: impl Fn() + Send + 'static,
) -> TrainerHandle {
    let mut inner = start(cfg, resume);
    let (tx, rx) = channel();
    let source = std::mem::replace(&mut inner.events, rx);
    std::thread::Builder::new()
        .name("atelier-train-events".into())
        .spawn(move || {
            for ev in source {
                if tx.send(ev).is_err() {
                    break;
                }
                wake();
            }
        })
        .expect("spawn trainer event thread");
    inner
}

/// The painting at its training size (its own, capped at `style_cap`, unless `style_size` says).
pub fn load_style_image(cfg: &TrainConfig) -> Result<RgbImage> {
    let style = image_io::load_rgb(&cfg.style_image)?;
    let side = cfg
        .style_size
        .unwrap_or(style.width().max(style.height()).min(cfg.style_cap));
    Ok(resize_longest(&style, side))
}

/// The training loop; returns the final model's path (or the run dir when stopped).
///
/// Everything that can fail on the user's input (settings, painting, photos, loss network,
/// device) is checked before the run folder is touched, so a failed start leaves nothing
/// behind that would block the next attempt.
pub fn run(
    cfg: TrainConfig,
    resume: bool,
    events: &Sender<TrainEvent>,
    control: &Receiver<Control>,
) -> Result<PathBuf> {
    cfg.validate()?;
    let dataset = Arc::new(Dataset::scan(&cfg.content_dir)?);
    if dataset.files.len() < cfg.batch_size {
        return Err(Error::Invalid(format!(
            "found {} images in {}; training needs at least {} (one batch)",
            dataset.files.len(),
            cfg.content_dir.display(),
            cfg.batch_size
        )));
    }
    let vgg_path = match &cfg.vgg {
        Some(p) => p.clone(),
        None => vgg::bundled_vgg_path().ok_or_else(|| {
            Error::Invalid("the bundled VGG16 (models/) is missing; pass --vgg".into())
        })?,
    };
    let device = cfg.device.open()?;
    let vgg = vgg::Vgg16::load(&vgg_path, &device)?;

    let mut cfg = cfg;
    let spec = cfg.loss_spec();
    if spec.scaling == loss::Scaling::Normalised && cfg.photo_gram_energy.is_none() {
        let photos = calibration_batch(&dataset, cfg.image_size, &device)?;
        cfg.photo_gram_energy = Some(loss::photo_gram_energy(&vgg, &photos, &spec)?);
    }
    // Style targets: Gram matrices of the painting, computed once.
    let style = load_style_image(&cfg)?;
    let style_t = image_to_tensor(&style, 0, 0, style.width(), style.height(), &device)?;
    let objective = loss::Perceptual::new(vgg, &style_t, &spec, cfg.photo_gram_energy.as_deref())?;
    let run_dir = RunDir::create(&cfg.run_dir, &cfg, resume)?;

    let _ = device.set_seed(cfg.seed);
    let varmap = VarMap::new();
    let net = StyleNet::new(
        Variant::Johnson,
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
    )?;
    let mut adam = adam::Adam::for_varmap(&varmap, cfg.lr)?;

    let mut start_iter = 0;
    let mut position = DataPosition::default();
    let mut elapsed_before = 0.0;
    if resume {
        let ck = run_dir.load_checkpoint(&device)?;
        for (name, var) in varmap.data().lock().expect("varmap").iter() {
            let t = ck.tensors.get(name).ok_or_else(|| {
                Error::model(&run_dir.checkpoint_path(), format!("missing '{name}'"))
            })?;
            var.set(t)?;
        }
        adam.load_state(&ck.tensors, ck.iteration)?;
        start_iter = ck.iteration;
        position = ck.position;
        elapsed_before = ck.elapsed_s;
        run_dir.truncate_metrics(start_iter)?;
    } else {
        // Deterministic initialisation: seeded weights, independent of device RNG support.
        seed_params(&varmap, cfg.seed)?;
    }
    if start_iter >= cfg.iterations {
        return Err(Error::Invalid(format!(
            "the run is already at iteration {start_iter}; pass a larger --iterations to continue"
        )));
    }
    let _ = events.send(TrainEvent::Started {
        device: crate::device::describe(&device),
        total: cfg.iterations,
        resumed_from: resume.then_some(start_iter),
        images: dataset.files.len(),
    });

    let preview_photo = thumbnail::source_photo()?;
    let loader = Loader::start(
        dataset.clone(),
        cfg.seed,
        cfg.batch_size,
        cfg.image_size,
        position,
    );
    // Unreadable files recur every epoch; report each once.
    let mut skipped = std::collections::BTreeMap::new();
    let started = Instant::now();
    let mut window = (Instant::now(), start_iter);
    let mut it_per_s = 0.0;
    let save = |iter: u64, pos: DataPosition, adam: &adam::Adam, elapsed: f64| -> Result<PathBuf> {
        let mut tensors = adam.state();
        for (k, v) in varmap.data().lock().expect("varmap").iter() {
            tensors.insert(k.clone(), v.as_tensor().clone());
        }
        run_dir.save_checkpoint(&Checkpoint {
            iteration: iter,
            position: pos,
            elapsed_s: elapsed,
            tensors,
        })
    };
    for iter in start_iter + 1..=cfg.iterations {
        // Pausing blocks here until the next message; anything but Resume stops.
        let stop = match control.try_recv() {
            Ok(Control::Stop) | Err(TryRecvError::Disconnected) => true,
            Ok(Control::Pause) => {
                let _ = events.send(TrainEvent::Paused {
                    iteration: iter - 1,
                });
                let resumed = matches!(control.recv(), Ok(Control::Resume));
                if resumed {
                    let _ = events.send(TrainEvent::Resumed {
                        iteration: iter - 1,
                    });
                    window = (Instant::now(), iter - 1);
                }
                !resumed
            }
            _ => false,
        };
        if stop {
            let elapsed = elapsed_before + started.elapsed().as_secs_f64();
            let path = save(iter - 1, position, &adam, elapsed)?;
            let _ = events.send(TrainEvent::Checkpoint {
                iteration: iter - 1,
                path,
            });
            let _ = events.send(TrainEvent::Stopped {
                iteration: iter - 1,
            });
            return Ok(cfg.run_dir.clone());
        }
        let batch = loader.next()?;
        for (path, why) in &batch.skipped {
            skipped.entry(path.clone()).or_insert_with(|| why.clone());
        }
        let s = batch.size as usize;
        let x = Tensor::from_vec(batch.pixels, (batch.n, 3, s, s), &device)?;
        let losses = step(&net, &objective, &mut adam, &x).map_err(|e| match e {
            Error::NonFinite { what } => {
                let last = run_dir.checkpoint_iteration();
                non_finite_stop(iter, &what, &batch.files, last)
            }
            e => e,
        })?;
        position = batch.next;
        let (content, style_l, tv, total) = (losses.content, losses.style, losses.tv, losses.total);
        let total_v = total.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let elapsed = elapsed_before + started.elapsed().as_secs_f64();
        let now = Instant::now();
        let dt = now.duration_since(window.0).as_secs_f64();
        if dt >= 1.0 || iter == cfg.iterations {
            it_per_s = (iter - window.1) as f64 / dt.max(1e-9);
            window = (now, iter);
        }
        let m = Metrics {
            iteration: iter,
            content: content.to_dtype(DType::F64)?.to_scalar()?,
            style: style_l.to_dtype(DType::F64)?.to_scalar()?,
            tv: match &tv {
                Some(t) => t.to_dtype(DType::F64)?.to_scalar()?,
                None => 0.0,
            },
            total: total_v,
            it_per_s,
            elapsed_s: elapsed,
        };
        run_dir.append_metrics(&m)?;
        let _ = events.send(TrainEvent::Metrics(m));
        if cfg.preview_every > 0 && (iter % cfg.preview_every == 0 || iter == cfg.iterations) {
            let pt = image_to_tensor(
                &preview_photo,
                0,
                0,
                preview_photo.width(),
                preview_photo.height(),
                &device,
            )?;
            let image = tensor_to_image(&net.forward(&pt)?.detach())?;
            let path = run_dir.save_preview(iter, &image)?;
            let _ = events.send(TrainEvent::Preview {
                iteration: iter,
                path,
                image,
            });
        }
        if (cfg.checkpoint_every > 0 && iter % cfg.checkpoint_every == 0) || iter == cfg.iterations
        {
            let path = save(iter, position, &adam, elapsed)?;
            let _ = events.send(TrainEvent::Checkpoint {
                iteration: iter,
                path,
            });
        }
    }
    drop(loader);
    let seconds = elapsed_before + started.elapsed().as_secs_f64();
    let model = final_model(&cfg, &varmap, &device, &style, seconds, dataset.files.len())?;
    let path = run_dir.model_path(&cfg.name);
    model.save(&path, true, true)?;
    let skipped = skipped.into_iter().collect();
    let _ = events.send(TrainEvent::Finished {
        model: path.clone(),
        iterations: cfg.iterations,
        seconds,
        skipped,
    });
    Ok(path)
}

/// How many photos the loss's calibration reads.
const CALIBRATION_PHOTOS: usize = 8;

/// The first usable photos of the (sorted) content folder, centre-cropped to `size`², as one
/// `(N, 3, size, size)` batch: the sample [`loss::photo_gram_energy`] is measured on.
fn calibration_batch(dataset: &Dataset, size: u32, device: &Device) -> Result<Tensor> {
    let mut pixels = Vec::new();
    let mut n = 0;
    for path in &dataset.files {
        let Ok(img) = image_io::load_rgb(path) else {
            continue;
        };
        let side = img.width().min(img.height());
        if side < data::MIN_PHOTO_SIDE {
            continue;
        }
        let crop = image::imageops::crop_imm(
            &img,
            (img.width() - side) / 2,
            (img.height() - side) / 2,
            side,
            side,
        )
        .to_image();
        let crop =
            image::imageops::resize(&crop, size, size, image::imageops::FilterType::Triangle);
        if data::is_flat(&crop) {
            continue;
        }
        let hw = (size * size) as usize;
        let start = pixels.len();
        pixels.resize(start + 3 * hw, 0f32);
        for (i, px) in crop.pixels().enumerate() {
            for c in 0..3 {
                pixels[start + c * hw + i] = px.0[c] as f32;
            }
        }
        n += 1;
        if n == CALIBRATION_PHOTOS {
            break;
        }
    }
    if n == 0 {
        return Err(Error::Invalid(format!(
            "no photo in {} can be trained on (all unreadable, too small or flat)",
            dataset.root.display()
        )));
    }
    let s = size as usize;
    Ok(Tensor::from_vec(pixels, (n, 3, s, s), device)?)
}

/// The error that ends a run whose step went non-finite: which step, which photos, and that
/// nothing of it was kept.
fn non_finite_stop(iter: u64, what: &str, files: &[PathBuf], last: Option<u64>) -> Error {
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let kept = match last {
        Some(i) => format!("the checkpoint of iteration {i} is intact; resume from it with --resume after removing or replacing these photos"),
        None => "no checkpoint had been written yet; start again after removing or replacing these photos".into(),
    };
    Error::Invalid(format!(
        "training stopped at iteration {iter}: {what} on the batch of {}. Nothing from this step was applied; {kept}",
        names.join(", ")
    ))
}

/// One optimisation step on batch `x`: forward, perceptual loss, backward, Adam.
///
/// Nothing is applied when the loss or the gradient is not finite ([`Error::NonFinite`]): one
/// such step would turn every weight into NaN, and Adam's moments with them.
pub fn step(
    net: &StyleNet,
    objective: &loss::Perceptual,
    adam: &mut adam::Adam,
    x: &Tensor,
) -> Result<loss::Losses> {
    let y = net.forward(x)?;
    let (losses, grads) = if manual_loss_backward(&y) {
        let (mut losses, grad_y) = objective.compute_with_grad(x, &y.detach())?;
        // Its gradient with respect to `y` is `grad_y`, and autograd takes it from there.
        let mut surrogate = y.mul(&grad_y)?.sum_all()?;
        if let Some(tv) = objective.tv_loss(x, &y)? {
            surrogate = (surrogate + &tv)?;
            losses.total = (&losses.total + tv.detach())?;
            losses.tv = Some(tv.detach());
        }
        let grads = surrogate.backward()?;
        (losses, grads)
    } else {
        let losses = objective.compute(x, &y)?;
        let grads = losses.total.backward()?;
        (losses, grads)
    };
    let total = losses.total.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    if !total.is_finite() {
        return Err(Error::NonFinite {
            what: format!("the loss became {total}"),
        });
    }
    // Backpropagation ends at the first layer: a NaN or an overflow anywhere on the way
    // reaches its gradient, so that one small sum checks the whole step (and catches a
    // gradient too large to square, which would silently freeze Adam).
    if let Some(sentinel) = net.first_weight() {
        if let Some(g) = grads.get(sentinel) {
            let sq = g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()?;
            if !sq.is_finite() {
                return Err(Error::NonFinite {
                    what: "the gradients overflowed (NaN or infinite values)".into(),
                });
            }
        }
    }
    adam.apply(&grads)?;
    Ok(losses)
}

/// Whether [`step`] runs the loss network's backward pass by hand
/// ([`loss::Perceptual::compute_with_grad`]) rather than through candle's autograd: on CUDA with
/// cuDNN, where it is faster; [`Tuning::manual_backward`](crate::tuning::Tuning::manual_backward)
/// off turns it off for comparisons. Both
/// compute the same gradient (tests/loss_gradient.rs).
pub(crate) fn manual_loss_backward(y: &Tensor) -> bool {
    crate::tuning::current().manual_backward && cfg!(feature = "cudnn") && y.device().is_cuda()
}

/// Re-initialises every parameter from a seeded generator (candle's CPU RNG cannot be
/// seeded), keeping each tensor's own initial scale.
fn seed_params(varmap: &VarMap, seed: u64) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let data = varmap.data().lock().expect("varmap");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let t = var.as_tensor();
        let dims = t.dims().to_vec();
        let values: Vec<f32> = if name.ends_with(".weight") && dims.len() == 4 {
            // Kaiming-uniform as PyTorch initialises convs.
            let fan_in = (dims[1] * dims[2] * dims[3]) as f32;
            let bound = (1.0 / fan_in).sqrt();
            (0..t.elem_count())
                .map(|_| rng.random_range(-bound..bound))
                .collect()
        } else if name.ends_with(".bias") && name.contains("conv2d") {
            let fan_in = data[&name.replace(".bias", ".weight")].as_tensor().dims()[1..]
                .iter()
                .product::<usize>() as f32;
            let bound = (1.0 / fan_in).sqrt();
            (0..t.elem_count())
                .map(|_| rng.random_range(-bound..bound))
                .collect()
        } else {
            // Instance-norm affine parameters start as identity.
            t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?
        };
        var.set(&Tensor::from_vec(values, dims, t.device())?)?;
    }
    Ok(())
}

/// Scales so the longer side is `longest` (the style image's training size).
pub fn resize_longest(img: &RgbImage, longest: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w.max(h) == longest {
        return img.clone();
    }
    let s = longest as f64 / w.max(h) as f64;
    let (nw, nh) = (
        ((w as f64 * s).round() as u32).max(1),
        ((h as f64 * s).round() as u32).max(1),
    );
    image::imageops::resize(img, nw, nh, image::imageops::FilterType::Lanczos3)
}

fn final_model(
    cfg: &TrainConfig,
    varmap: &VarMap,
    device: &Device,
    style: &RgbImage,
    seconds: f64,
    images: usize,
) -> Result<StyleModel> {
    let params = varmap
        .data()
        .lock()
        .expect("varmap")
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().detach().to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let mut meta = ModelMeta::new(cfg.name.clone(), Variant::Johnson);
    meta.source = cfg
        .style_image
        .file_name()
        .map(|n| format!("trained on {}", n.to_string_lossy()));
    meta.training = Some(serde_json::json!({
        "trainer": format!("atelier {}", env!("CARGO_PKG_VERSION")),
        "iterations": cfg.iterations,
        "batch_size": cfg.batch_size,
        "image_size": cfg.image_size,
        // `style` is the painting as trained on (load_style_image), so its side is the one used.
        "style_size": style.width().max(style.height()),
        "loss": cfg.scaling,
        "strength": cfg.strength().map(|s| s.label()),
        "content_layer": cfg.content_layer,
        "style_layers": cfg.style_layers,
        "content_weight": cfg.content_weight,
        "style_weight": cfg.style_weight,
        "tv_weight": cfg.tv_weight,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "content_images": images,
        "content_set": cfg.content_dir.file_name().map(|n| n.to_string_lossy().into_owned()),
        "device": crate::device::describe(device),
        "minutes": seconds / 60.0,
    }));
    let mut model = StyleModel::from_params(meta, params, &cfg.run_dir)?;
    let stylizer = crate::stylize::Stylizer::new(&model, &Device::Cpu)?;
    model.thumbnail_png = Some(thumbnail::render(&stylizer)?);
    model.painting_jpg = Some(crate::model::format::painting_jpeg(style)?);
    Ok(model)
}
