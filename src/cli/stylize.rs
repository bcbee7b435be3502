use super::{cancel_flag, open_device, parse_device, progress_bar};
use atelier::device::DeviceChoice;
use atelier::image_io::{self, OutputFormat};
use atelier::model::format::read_meta;
use atelier::model::registry::{file_stem_for, Registry};
use atelier::output_plan;
use atelier::progress::{about_left, PassProgress, Throughput};
use atelier::stylize::instant::{instant_style, mix, InstantStylizer};
use atelier::stylize::tiling::MIN_CORE;
use atelier::stylize::{blend, Hooks, StylizeOptions, Stylizer, Tiling};
use atelier::Error;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Photos to restyle.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Style name (see `atelier models`) or path to a model file.
    #[arg(
        short,
        long,
        required_unless_present = "style_image",
        conflicts_with = "style_image"
    )]
    style: Option<String>,
    /// Any painting as an instant style (no training): `PAINTING` or `PAINTING:WEIGHT`.
    /// Repeat to mix paintings by weight.
    #[arg(long = "style-image", value_name = "PAINTING[:WEIGHT]", value_parser = parse_style_image)]
    style_image: Vec<(PathBuf, f32)>,
    /// Output file (one input only); the extension picks PNG, JPEG or WebP.
    #[arg(short, long, conflicts_with = "out_dir")]
    output: Option<PathBuf>,
    /// Folder for outputs, named `<photo>_<style>.png`. Default: beside each photo.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// 0 keeps the photo, 1 applies the full style. With --style-image it moves the style
    /// vector from the photo's own towards the painting's.
    #[arg(long, default_value_t = 1.0, value_parser = parse_strength)]
    strength: f32,
    /// Keep the photo's colours; take only brush work and light from the style.
    #[arg(long)]
    preserve_colors: bool,
    /// Where the style goes: an image, white = full strength, black = the photo, grey
    /// between (colour images count by brightness); resized to each photo.
    #[arg(long, value_name = "MASK.png")]
    mask: Option<PathBuf>,
    /// Brush-stroke size: 1 as the network paints at the photo's size, 2 twice as large,
    /// 0.5 finer (0.5 to 4); auto: as on a 1024-pixel picture, so a large and a small
    /// photo of one scene get strokes of the same size relative to the picture.
    #[arg(long, default_value = "auto")]
    stroke_scale: atelier::stylize::stroke::StrokeScale,
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// Downscale photos whose longer side exceeds N pixels first.
    #[arg(long)]
    max_side: Option<u32>,
    /// Tile core size in pixels for bounded memory (0 = never tile, else at least 128).
    /// Default: automatic.
    #[arg(long, value_parser = parse_tile)]
    tile: Option<u32>,
    /// Replace existing output files.
    #[arg(long)]
    overwrite: bool,
    /// Print one JSON line per image instead of progress bars.
    #[arg(long)]
    json: bool,
}

pub fn parse_strength(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("strength must be between 0 and 1".into())
    }
}

fn parse_tile(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number of pixels"))?;
    if v == 0 || v >= MIN_CORE {
        Ok(v)
    } else {
        Err(format!(
            "tiles must be at least {MIN_CORE} pixels (or 0 for no tiling): each tile also computes a 64-pixel border, so smaller tiles run hundreds of times slower"
        ))
    }
}

/// `PAINTING` or `PAINTING:WEIGHT`; a colon followed by something that is not a number
/// is part of the file name.
fn parse_style_image(s: &str) -> Result<(PathBuf, f32), String> {
    if let Some((path, w)) = s.rsplit_once(':') {
        if let Ok(w) = w.parse::<f32>() {
            if !(w > 0.0 && w.is_finite()) {
                return Err(format!("the weight of '{path}' must be a positive number"));
            }
            return Ok((PathBuf::from(path), w));
        }
    }
    Ok((PathBuf::from(s), 1.0))
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.output.is_some() && a.images.len() > 1 {
        anyhow::bail!("-o/--output takes one input image; use --out-dir for several");
    }
    if let Some(out) = &a.output {
        OutputFormat::from_path(out)?;
    }
    let registry = Registry::from_env();
    let (model_path, style_label) = match &a.style {
        Some(style) => {
            let path = registry.resolve(style)?;
            let label = file_stem_for(&read_meta(&path)?.name);
            (Some(path), label)
        }
        None => (None, instant_label(&a.style_image)),
    };
    let outputs: Vec<PathBuf> = a
        .images
        .iter()
        .map(|input| match &a.output {
            Some(o) => o.clone(),
            None => default_output(input, a.out_dir.as_deref(), &style_label),
        })
        .collect();
    let pairs: Vec<_> = a
        .images
        .iter()
        .cloned()
        .zip(outputs.iter().cloned())
        .collect();
    output_plan::check(&pairs)?;
    // Read once, before the model loads, so a bad mask fails at once; fitted per photo.
    let mask = match &a.mask {
        Some(p) => Some(atelier::stylize::mask::to_luma(
            &image_io::load_rgb(p)
                .map_err(|e| anyhow::anyhow!("cannot read the mask {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let device = open_device(a.device, a.json)?;
    let stylizer = match &model_path {
        Some(path) => Stylizer::load(path, &device)?,
        None => {
            // The paintings' mixed style vector as an in-memory instant style, so stroke
            // scale, masks, tiling and progress work as for any style.
            let net = InstantStylizer::bundled(&device)?;
            let mut parts = Vec::new();
            for (painting, weight) in &a.style_image {
                let img = image_io::load_rgb(painting)?;
                parts.push((net.style_vector(&img)?, *weight));
            }
            Stylizer::new(&instant_style(mix(&parts)?, &style_label)?, &device)?
        }
    };
    let opts = StylizeOptions {
        strength: a.strength,
        preserve_colors: a.preserve_colors,
        tiling: match a.tile {
            None => Tiling::Auto,
            Some(0) => Tiling::Off,
            Some(n) => Tiling::Core(n),
        },
    };
    let cancel = cancel_flag();
    let mut failed = 0;
    let mut speed = Throughput::default();
    for (i, (input, out)) in pairs.iter().enumerate() {
        let started = Instant::now();
        let result = stylize_one(
            &stylizer,
            input,
            out,
            &a,
            (&opts, mask.as_ref()),
            &cancel,
            (i + 1, a.images.len(), &mut speed),
        );
        let ms = started.elapsed().as_secs_f64() * 1e3;
        match &result {
            Ok((w, h)) if a.json => println!(
                "{}",
                // JSON holds text: a name that is not UTF-8 is shown lossily (the
                // files themselves were read and written under their real names).
                serde_json::json!({"input": input.to_string_lossy(), "output": out.to_string_lossy(), "ok": true, "width": w, "height": h, "stroke_scale": a.stroke_scale.factor(*w, *h), "ms": ms})
            ),
            Ok(_) => eprintln!("{} → {} ({:.0} ms)", input.display(), out.display(), ms),
            Err(e) => {
                failed += 1;
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"input": input.to_string_lossy(), "ok": false, "error": e.to_string()})
                    );
                } else {
                    eprintln!("error: {e}");
                }
            }
        }
        if matches!(result, Err(Error::Cancelled)) {
            eprintln!("interrupted: no partial files were written");
            return Ok(ExitCode::from(130));
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `<dir>/<stem>_<style>.png`, keeping the stem's bytes as they are (a stem that is
/// not UTF-8 must not collapse into another photo's name).
fn default_output(input: &Path, out_dir: Option<&Path>, style: &str) -> PathBuf {
    let mut name = input
        .file_stem()
        .map(OsStr::to_os_string)
        .unwrap_or_else(|| "image".into());
    name.push(format!("_{style}.png"));
    let dir = out_dir.map(Path::to_path_buf).unwrap_or_else(|| {
        input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    dir.join(name)
}

/// `<painting>` or `<painting1>+<painting2>` for default output names.
fn instant_label(paintings: &[(PathBuf, f32)]) -> String {
    paintings
        .iter()
        .map(|(p, _)| file_stem_for(&p.file_stem().unwrap_or_default().to_string_lossy()))
        .collect::<Vec<_>>()
        .join("+")
}

fn stylize_one(
    stylizer: &Stylizer,
    input: &Path,
    out: &Path,
    a: &Args,
    // The blend settings and the strength mask (any size; fitted to the photo).
    (opts, mask): (&StylizeOptions, Option<&image::GrayImage>),
    cancel: &std::sync::atomic::AtomicBool,
    // Where in the batch, and the speed measured so far (for the bar's time left).
    (index, count, speed): (usize, usize, &mut Throughput),
) -> Result<(u32, u32), Error> {
    let format = OutputFormat::from_path(out)?;
    if out.exists() && !a.overwrite {
        return Err(Error::image(
            out,
            "output exists (pass --overwrite to replace it)",
        ));
    }
    let mut photo = image_io::load_rgb(input)?;
    if let Some(max) = a.max_side {
        let (w, h) = photo.dimensions();
        if max > 0 && w.max(h) > max {
            let s = max as f64 / w.max(h) as f64;
            let (nw, nh) = (
                ((w as f64 * s).round() as u32).max(1),
                ((h as f64 * s).round() as u32).max(1),
            );
            photo = image::imageops::resize(&photo, nw, nh, image::imageops::FilterType::Lanczos3);
        }
    }
    let pixels = u64::from(photo.width()) * u64::from(photo.height());
    let pb = (!a.json).then(|| {
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pb = progress_bar(1000, format!("[{index}/{count}] {name}"));
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {percent:>3}% {elapsed_precise} {prefix}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb
    });
    if pb.is_some() && speed.expected(pixels).is_none() && pixels > 4 * 256 * 256 {
        // A pass over a thumbnail measures this machine (about 1 % of the work), so even
        // the first image's bar moves at its real pace.
        let (tw, th) = atelier::stylize::resample::fit_within(photo.width(), photo.height(), 256);
        let thumb = image::imageops::thumbnail(&photo, tw, th);
        let t = Instant::now();
        stylizer.stylize_raw(&thumb, Tiling::Off, &mut Hooks::default())?;
        speed.record(u64::from(tw) * u64::from(th), t.elapsed());
    }
    let progress = Mutex::new(PassProgress::new(speed.expected(pixels)));
    let mut report = |done: usize, total: usize| {
        progress.lock().expect("progress lock").reported = done as f32 / total.max(1) as f32;
    };
    let mut hooks = Hooks {
        progress: Some(&mut report),
        tile_done: None,
        cancel: Some(cancel),
    };
    // An instant style's strength moves its style vector towards the photo's own, and the
    // network then runs at full strength.
    let toward = stylizer.toward_photo(&photo, opts.strength)?;
    let (stylizer, strength) = match &toward {
        Some(t) => (t, 1.0),
        None => (stylizer, opts.strength),
    };
    let finished = AtomicBool::new(false);
    let started = Instant::now();
    let result = std::thread::scope(|scope| {
        if let Some(pb) = &pb {
            // Between tiles (and through a whole-image pass, which reports nothing) the
            // bar follows the clock against the measured speed.
            scope.spawn(|| {
                while !finished.load(Ordering::Relaxed) {
                    let p = *progress.lock().expect("progress lock");
                    let now = Instant::now();
                    pb.set_position((p.fraction_at(now) * 1000.0) as u64);
                    pb.set_prefix(match p.remaining_at(now) {
                        Some(left) => about_left(left),
                        None => "measuring speed…".into(),
                    });
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
        let (w, h) = photo.dimensions();
        let scale = a.stroke_scale.factor(w, h);
        let r = if strength <= 0.0 {
            Ok(photo.clone())
        } else {
            stylizer
                .stylize_raw_scaled(&photo, opts.tiling, scale, &mut hooks)
                .map(|styled| match mask {
                    // The strength scaled by the mask: the same blend the app saves with.
                    Some(mask) => blend::blend_masked(
                        &photo,
                        &styled,
                        strength,
                        opts.preserve_colors,
                        &atelier::stylize::mask::fit(mask, w, h),
                    ),
                    None if strength >= 1.0 && !opts.preserve_colors => styled,
                    None => blend::blend(&photo, &styled, strength, opts.preserve_colors),
                })
        };
        finished.store(true, Ordering::Relaxed);
        r
    });
    if result.is_ok() {
        speed.record(pixels, started.elapsed());
    }
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    let styled = result?;
    image_io::save_rgb(&styled, out, format, a.overwrite)?;
    Ok(styled.dimensions())
}
