use super::{parse_device, progress_bar};
use atelier::device::DeviceChoice;
use atelier::model::registry::Registry;
use atelier::train::loss::{Scaling, Strength};
use atelier::train::{self, run_dir::RunDir, Control, ResumeRequest, TrainConfig, TrainEvent};
use std::path::PathBuf;
use std::process::ExitCode;

/// Settings with no default here are taken from the run's `config.json` on `--resume` (where
/// giving a different value is refused) and from [`TrainConfig::new`] otherwise.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The painting whose style to learn.
    #[arg(long, required_unless_present = "resume")]
    style_image: Option<PathBuf>,
    /// A folder of photos (searched recursively); a few hundred varied photos work well.
    #[arg(long, required_unless_present = "resume")]
    content_dir: Option<PathBuf>,
    /// Run folder for config, metrics, checkpoints, previews and the model. Default: runs/<name>.
    #[arg(long = "out")]
    out: Option<PathBuf>,
    /// Style name. Default: the painting's file name.
    #[arg(long)]
    name: Option<String>,
    /// Default 3000.
    #[arg(long)]
    iterations: Option<u64>,
    /// Default 4.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Side of the square photo crops trained on. Default 256.
    #[arg(long)]
    image_size: Option<u32>,
    /// Longest side of the painting (default: its own size, at most 512 — twice the crop).
    #[arg(long)]
    style_size: Option<u32>,
    /// How much of the painting the style carries: subtle, balanced (default), bold, or a
    /// number (the style weight of the normalised loss: balanced is 10).
    #[arg(long, value_parser = parse_strength)]
    strength: Option<Strength>,
    /// (Expert) The loss network layer whose features keep the photo (default relu3_3).
    #[arg(long)]
    content_layer: Option<String>,
    /// (Expert) Comma-separated style layers (default relu1_2,relu2_2,relu3_3,relu4_3).
    #[arg(long, value_delimiter = ',')]
    style_layers: Option<Vec<String>>,
    /// Smoothness: penalises pixel-scale noise relative to the photo's own (default 0.2).
    #[arg(long)]
    tv_weight: Option<f64>,
    /// Default 1e-3.
    #[arg(long)]
    lr: Option<f64>,
    /// Default 42.
    #[arg(long)]
    seed: Option<u64>,
    /// Loss network weights (VGG16 .safetensors or .pth). Default: the bundled one.
    #[arg(long)]
    vgg: Option<PathBuf>,
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    #[arg(long, default_value_t = 250)]
    preview_every: u64,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// Don't copy the finished model into your style folder.
    #[arg(long)]
    no_install: bool,
    /// Let the finished model replace your style of the same name.
    #[arg(long)]
    overwrite: bool,
}

fn parse_strength(s: &str) -> Result<Strength, String> {
    s.parse()
}

/// The run to start or continue, or why the request cannot be honoured.
fn config(a: &Args) -> anyhow::Result<(TrainConfig, bool)> {
    if let Some(dir) = &a.resume {
        let mut cfg = RunDir::read_config(dir)?;
        // Refuse rather than silently ignore: a changed setting would train a different
        // model than the one the folder describes.
        let asked = ResumeRequest {
            batch_size: a.batch_size,
            image_size: a.image_size,
            style_size: a.style_size,
            strength: a.strength,
            tv_weight: a.tv_weight,
            lr: a.lr,
            seed: a.seed,
            install: a.no_install.then_some(false),
        };
        let conflicts = cfg.resume_conflicts(&asked);
        if !conflicts.is_empty() {
            anyhow::bail!(
                "a resumed run keeps the settings it started with; these differ:\n  {}\nleave them out to continue with the run's own, or start a new run with --out",
                conflicts.join("\n  ")
            );
        }
        let ignored: Vec<&str> = [
            ("--content-layer", a.content_layer.is_some()),
            ("--style-layers", a.style_layers.is_some()),
            ("--style-image", a.style_image.is_some()),
            ("--content-dir", a.content_dir.is_some()),
            ("--name", a.name.is_some()),
            ("--out", a.out.is_some()),
            ("--vgg", a.vgg.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, given)| given.then_some(n))
        .collect();
        if !ignored.is_empty() {
            anyhow::bail!(
                "{} cannot be changed on --resume (the run folder records them); leave them out",
                ignored.join(", ")
            );
        }
        cfg.run_dir = dir.clone();
        if let Some(n) = a.iterations {
            cfg.iterations = n;
        }
        cfg.device = a.device;
        cfg.overwrite |= a.overwrite;
        return Ok((cfg, true));
    }
    let style = a.style_image.clone().expect("clap requires it");
    let name = a.name.clone().unwrap_or_else(|| {
        style
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "style".into())
    });
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(atelier::model::registry::file_stem_for(&name))
    });
    let mut cfg = TrainConfig::new(
        style,
        a.content_dir.clone().expect("clap requires it"),
        out,
        name,
    );
    if let Some(s) = a.strength {
        cfg.set_strength(s);
    }
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = a.$f { cfg.$f = v; })* };
    }
    set!(iterations, batch_size, image_size, tv_weight, lr, seed);
    if let Some(l) = &a.content_layer {
        cfg.content_layer = l.clone();
    }
    if let Some(l) = &a.style_layers {
        cfg.style_layers = l.clone();
    }
    cfg.style_size = a.style_size;
    cfg.vgg = a.vgg.clone();
    cfg.checkpoint_every = a.checkpoint_every;
    cfg.preview_every = a.preview_every;
    cfg.device = a.device;
    cfg.install = !a.no_install;
    cfg.overwrite = a.overwrite;
    Ok((cfg, false))
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, resume) = config(&a)?;
    // Minutes of training must not end in "could not install": check the name now.
    if cfg.install {
        Registry::from_env().check_install(&cfg.name, cfg.overwrite)?;
    }
    let (name, install, overwrite) = (cfg.name.clone(), cfg.install, cfg.overwrite);
    if cfg.scaling == Scaling::Normalised {
        let s = cfg.strength().map(|s| s.label()).unwrap_or_default();
        eprintln!("strength: {s}");
    }
    let handle = train::start(cfg, resume);
    let stop = super::cancel_flag();
    let mut pb = None;
    // Until the trainer says how it ended, the run counts as failed: a trainer that dies
    // without a word must not exit 0.
    let mut result = ExitCode::from(1);
    let mut ended = false;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            handle.send(Control::Stop);
        }
        let ev = match handle
            .events
            .recv_timeout(std::time::Duration::from_millis(200))
        {
            Ok(ev) => ev,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        };
        match ev {
            TrainEvent::Started {
                device,
                total,
                resumed_from,
                images,
            } => {
                eprintln!("device: {device}; {images} content images");
                let bar = progress_bar(total, format!("training {name}"));
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:30}] {pos}/{len} eta {eta}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                if let Some(from) = resumed_from {
                    eprintln!("resuming at iteration {from}");
                    bar.set_position(from);
                    bar.reset_eta();
                }
                pb = Some(bar);
            }
            TrainEvent::Metrics(m) => {
                if let Some(bar) = &pb {
                    bar.set_position(m.iteration);
                    bar.set_message(format!(
                        "loss {:.3e} (content {:.2e} style {:.2e}) {:.1} it/s",
                        m.total, m.content, m.style, m.it_per_s
                    ));
                }
            }
            TrainEvent::Checkpoint { .. }
            | TrainEvent::Preview { .. }
            | TrainEvent::Paused { .. }
            | TrainEvent::Resumed { .. } => {}
            TrainEvent::Stopped { iteration } => {
                if let Some(bar) = &pb {
                    bar.abandon();
                }
                eprintln!("stopped at iteration {iteration}; continue with --resume");
                result = ExitCode::from(130);
                ended = true;
            }
            TrainEvent::Finished {
                model,
                iterations,
                seconds,
                skipped,
            } => {
                if let Some(bar) = &pb {
                    bar.finish();
                }
                eprintln!(
                    "trained {iterations} iterations in {:.1} min → {}",
                    seconds / 60.0,
                    model.display()
                );
                if !skipped.is_empty() {
                    eprintln!(
                        "skipped {} content files that cannot be trained on:",
                        skipped.len()
                    );
                    for (p, why) in skipped.iter().take(10) {
                        eprintln!("  {}: {why}", p.display());
                    }
                }
                result = ExitCode::SUCCESS;
                ended = true;
                if install {
                    match Registry::from_env().install(&model, &name, overwrite) {
                        Ok(dest) => eprintln!("installed as style '{name}' ({})", dest.display()),
                        Err(e) => {
                            eprintln!(
                                "warning: not installed into your style folder: {e}\nthe model is kept at {}; install it with `atelier import {} --name NEW_NAME`",
                                model.display(),
                                model.display()
                            );
                            result = ExitCode::from(1);
                        }
                    }
                }
            }
            TrainEvent::Failed { message } => {
                if let Some(bar) = &pb {
                    bar.abandon();
                }
                eprintln!("error: {message}");
                result = ExitCode::from(1);
                ended = true;
            }
        }
    }
    handle.join();
    if !ended {
        eprintln!("error: the trainer stopped without finishing; the last checkpoint is kept");
    }
    Ok(result)
}
