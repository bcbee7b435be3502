//! Argument parsing and the subcommands; all real work is in the library.

mod bench;
mod eval;
mod import;
mod instant;
mod models;
mod stylize;
mod train;
mod video;

use atelier::device::DeviceChoice;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "atelier",
    version,
    about = "Fast neural style transfer: restyle photos with painting styles"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// (app) Open this photo on start.
    #[arg(long, value_name = "IMAGE")]
    pub open: Option<std::path::PathBuf>,
    /// (app) Select this style on start (a name or a model file).
    #[arg(long, value_name = "NAME")]
    pub style: Option<String>,
    /// (app) Once the photo is stylised, save a screenshot of the window here and exit.
    #[arg(long, value_name = "OUT.png")]
    pub screenshot: Option<std::path::PathBuf>,
    /// (app) auto, cpu, cuda, cuda:N or metal.
    #[arg(long, value_parser = parse_device)]
    pub device: Option<DeviceChoice>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Restyle images with a style (a name from `atelier models`, or a model file).
    Stylize(stylize::Args),
    /// Add a style: a PyTorch or fast-style-transfer checkpoint, or any painting (an instant style).
    Import(import::Args),
    /// Convert Magenta's arbitrary-style ONNX networks into the instant-style network file.
    ImportArbitrary(instant::ImportArgs),
    /// Print the 100-value style vector the instant-style network sees in a painting.
    StyleVector(instant::VectorArgs),
    /// List the bundled and your own styles.
    Models(models::Args),
    /// Train a new style from a painting and a folder of photos.
    Train(train::Args),
    /// Time the style network on a device.
    Bench(bench::Args),
    /// Restyle a video (needs FFmpeg), with less flicker than frame by frame.
    Video(video::Args),
    /// Measure styles on held-out photos: closeness to the painting and how much of the photo is kept.
    Eval(eval::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Stylize(a)) => stylize::run(a),
        Some(Command::Import(a)) => import::run(a),
        Some(Command::ImportArbitrary(a)) => instant::import(a),
        Some(Command::StyleVector(a)) => instant::style_vector(a),
        Some(Command::Models(a)) => models::run(a),
        Some(Command::Train(a)) => train::run(a),
        Some(Command::Eval(a)) => eval::run(a),
        Some(Command::Bench(a)) => bench::run(a),
        Some(Command::Video(a)) => video::run(a),
        #[cfg(not(feature = "app"))]
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            eprintln!("\n(this build has no desktop app: build with the default `app` feature)");
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "app")]
        None => {
            let opts = atelier::app::AppOptions {
                // A scripted screenshot leaves the user's saved settings alone.
                ephemeral: cli.screenshot.is_some(),
                open: cli.open,
                style: cli.style,
                screenshot: cli.screenshot,
                device: cli.device.map(|d| d.to_string()),
                ..Default::default()
            };
            Ok(if atelier::app::run(opts)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Parses `--device`.
pub fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse().map_err(|e: atelier::Error| e.to_string())
}

/// Opens the device and tells the user which one `auto` took.
pub fn open_device(choice: DeviceChoice, quiet: bool) -> anyhow::Result<candle_core::Device> {
    let device = choice.open()?;
    if !quiet {
        eprintln!("device: {}", atelier::device::describe(&device));
    }
    Ok(device)
}

/// A flag set by Ctrl-C, SIGTERM or SIGHUP (ctrlc's `termination` feature: a closed
/// terminal or `kill` must clean up as Ctrl-C does), so long jobs stop between layers
/// and leave no partial files.
pub fn cancel_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // A second signal while we wind down exits at once; temporary files have no name on
    // Linux (see fsutil::PendingFile), so even that leaves none.
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    flag
}

pub fn progress_bar(len: u64, msg: String) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {percent:>3}% {elapsed_precise} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}
