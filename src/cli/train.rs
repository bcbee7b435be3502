use super::{parse_device, progress_bar};
use atelier::device::DeviceChoice;
use atelier::model::registry::Registry;
use atelier::train::{self, run_dir::RunDir, Control, TrainConfig, TrainEvent};
use std::path::PathBuf;
use std::process::ExitCode;

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
    #[arg(long)]
    iterations: Option<u64>,
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    #[arg(long, default_value_t = 256)]
    image_size: u32,
    /// Longest side of the painting (default: its own size, at most 1024).
    #[arg(long)]
    style_size: Option<u32>,
    #[arg(long, default_value_t = 1e5)]
    content_weight: f64,
    /// Higher = more of the painting, less of the photo (2e5 keeps photos readable with the bundled VGG16).
    #[arg(long, default_value_t = 2e5)]
    style_weight: f64,
    #[arg(long, default_value_t = 0.0)]
    tv_weight: f64,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
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
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, resume) = match &a.resume {
        Some(dir) => {
            let mut cfg = RunDir::read_config(dir)?;
            cfg.run_dir = dir.clone();
            if let Some(n) = a.iterations {
                cfg.iterations = n;
            }
            cfg.device = a.device;
            (cfg, true)
        }
        None => {
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
            cfg.iterations = a.iterations.unwrap_or(3000);
            cfg.batch_size = a.batch_size;
            cfg.image_size = a.image_size;
            cfg.style_size = a.style_size;
            cfg.content_weight = a.content_weight;
            cfg.style_weight = a.style_weight;
            cfg.tv_weight = a.tv_weight;
            cfg.lr = a.lr;
            cfg.seed = a.seed;
            cfg.vgg = a.vgg.clone();
            cfg.checkpoint_every = a.checkpoint_every;
            cfg.preview_every = a.preview_every;
            cfg.device = a.device;
            (cfg, false)
        }
    };
    let name = cfg.name.clone();
    let handle = train::start(cfg, resume);
    let stop = super::cancel_flag();
    let mut pb = None;
    let mut result = ExitCode::SUCCESS;
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
                    eprintln!("skipped {} unreadable content files:", skipped.len());
                    for (p, why) in skipped.iter().take(10) {
                        eprintln!("  {}: {why}", p.display());
                    }
                }
                if !a.no_install {
                    match Registry::from_env().install(&model, &name) {
                        Ok(dest) => eprintln!("installed as style '{name}' ({})", dest.display()),
                        Err(e) => {
                            eprintln!("warning: could not install into your style folder: {e}")
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
            }
        }
    }
    handle.join();
    Ok(result)
}
