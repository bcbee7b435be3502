use super::{cancel_flag, open_device, parse_device, progress_bar};
use atelier::device::DeviceChoice;
use atelier::model::registry::Registry;
use atelier::stylize::Stylizer;
use atelier::video::{stylize_video, VideoOptions};
use atelier::Error;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Video to restyle (anything FFmpeg reads).
    input: PathBuf,
    /// Output video; .mp4/.mov (H.264 + AAC), .mkv (H.264, audio copied) or .webm (VP9 + Opus).
    #[arg(short, long)]
    output: PathBuf,
    /// Style name (see `atelier models`) or path to a model file.
    #[arg(short, long)]
    style: String,
    /// 0 keeps the video, 1 applies the full style.
    #[arg(long, default_value_t = 1.0, value_parser = super::stylize::parse_strength)]
    strength: f32,
    /// Keep the video's colours; take only brush work and light from the style.
    #[arg(long)]
    preserve_colors: bool,
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// Scale frames so the longer side is at most N pixels.
    #[arg(long)]
    max_side: Option<u32>,
    /// Less flicker: 0 normalises each frame on its own (as the reference scripts do),
    /// towards 1 the network's normalisation statistics are smoothed over time.
    #[arg(long, default_value_t = 0.9, value_parser = parse_stability)]
    stability: f64,
    /// Brush-stroke size: 1 as the network paints at the video's size, 2 twice as large,
    /// 0.5 finer; auto: as on a 1024-pixel picture, so strokes keep their size relative
    /// to the frame at any resolution.
    #[arg(long, default_value = "auto")]
    stroke_scale: atelier::stylize::stroke::StrokeScale,
    /// Where the style goes, as for `stylize --mask` (white = full strength, black = the
    /// video); resized to the frames.
    #[arg(long, value_name = "MASK.png")]
    mask: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

fn parse_stability(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=0.99).contains(&v) {
        Ok(v)
    } else {
        Err("stability must be between 0 and 0.99".into())
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    // Check the tools and the input before loading a model or a device.
    let info = atelier::video::probe(&a.input)?;
    let mask = match &a.mask {
        Some(p) => Some(atelier::stylize::mask::to_luma(
            &atelier::image_io::load_rgb(p)
                .map_err(|e| anyhow::anyhow!("cannot read the mask {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let model = Registry::from_env().resolve(&a.style)?;
    let device = open_device(a.device, false)?;
    let stylizer = Stylizer::load(&model, &device)?;
    let (w, h) = atelier::video::output_size(info.width, info.height, a.max_side);
    eprintln!(
        "{}: {}x{} at {:.3} fps{} → {w}x{h}",
        a.input.display(),
        info.width,
        info.height,
        info.fps(),
        if info.has_audio { ", with audio" } else { "" }
    );
    let cancel = cancel_flag();
    let pb = progress_bar(info.frames.unwrap_or(0), "frames".into());
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let opts = VideoOptions {
        strength: a.strength,
        preserve_colors: a.preserve_colors,
        max_side: a.max_side,
        stability: a.stability,
        overwrite: a.overwrite,
        stroke_scale: a.stroke_scale.factor(w, h),
        mask,
    };
    let mut on_frame = |done: u64, total: Option<u64>| {
        if let Some(t) = total {
            pb.set_length(t.max(done));
        }
        pb.set_position(done);
    };
    let result = stylize_video(
        &stylizer,
        &a.input,
        &a.output,
        &opts,
        &mut on_frame,
        Some(&cancel),
    );
    pb.finish_and_clear();
    match result {
        Ok(r) => {
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!(
                "{} frames in {:.1} s ({:.2} frames/s) → {}; flicker (output/input frame change): {:.3}",
                r.frames,
                r.seconds,
                r.frames as f64 / r.seconds.max(1e-9),
                a.output.display(),
                r.flicker_ratio
            );
            if atelier::tuning::current().profile {
                let [decode, stylize, finish, encode] = r.stage_seconds;
                eprintln!(
                    "waiting for frames {decode:.1} s, stylising {stylize:.1} s, settle/blend {finish:.1} s, waiting for the encoder {encode:.1} s"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Cancelled) => {
            eprintln!("interrupted: no output was written");
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e.into()),
    }
}
