use super::{open_device, parse_device};
use atelier::bench::{parse_size, random_net, time_inference};
use atelier::device::{describe, DeviceChoice};
use atelier::model::StyleModel;
use atelier::nn::{Precision, Variant};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// Comma-separated sizes: 512 or WxH. Default: 512,1024 on the CPU, 1024,3840x2160 on a GPU.
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    /// Timed runs per size (median reported). Default: 5 on the CPU, 20 on a GPU.
    #[arg(long)]
    runs: Option<usize>,
    /// Untimed runs first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Network variant to time (`arbitrary`: the bundled instant-style network).
    #[arg(long, default_value = "johnson", value_parser = ["johnson", "fst", "arbitrary"])]
    variant: String,
    /// Also time training steps (batch 4, 256²) for this many iterations (default: 300 on a GPU, 0 on the CPU).
    #[arg(long)]
    train_iters: Option<usize>,
    /// Loss network for the training benchmark (default: the bundled VGG16).
    #[arg(long)]
    vgg: Option<std::path::PathBuf>,
    /// Also time the app's quick preview of a photo of this size (WxH, e.g. 4000x3000):
    /// downscale, stylise at the preview size, scale back up.
    #[arg(long)]
    preview: Option<String>,
    /// Precisions to time, comma-separated (f32, f16). Default: the device's best
    /// (f16 on CUDA with cuDNN, f32 elsewhere), then f32 for comparison.
    #[arg(long, value_delimiter = ',', value_parser = ["f32", "f16"])]
    precision: Vec<String>,
    /// Trained style for the quality check on accelerators (default: the bundled starry_night).
    #[arg(long)]
    quality_model: Option<std::path::PathBuf>,
    /// Folder of photos for the quality check (default: the source tree's assets/examples).
    #[arg(long)]
    quality_photos: Option<std::path::PathBuf>,
    /// Print a JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let device = open_device(a.device, a.json)?;
    let gpu = !device.is_cpu();
    let sizes: Vec<String> = if a.sizes.is_empty() {
        if gpu {
            vec!["1024".into(), "3840x2160".into()]
        } else {
            vec!["512".into(), "1024".into()]
        }
    } else {
        a.sizes.clone()
    };
    let runs = a.runs.unwrap_or(if gpu { 20 } else { 5 });
    if a.variant == "arbitrary" {
        return bench_instant(&a, &device, &sizes, runs);
    }
    let variant = Variant::parse(&a.variant).expect("clap restricts the values");
    let precisions = precisions(&a.precision, variant, &device)?;
    let mut json = serde_json::Map::new();
    json.insert("atelier".into(), env!("CARGO_PKG_VERSION").into());
    json.insert("device".into(), describe(&device).into());
    json.insert("build".into(), build_info().into());
    json.insert("variant".into(), variant.as_str().into());
    json.insert("runs".into(), runs.into());
    json.insert("precision".into(), precisions[0].as_str().into());
    for (i, &precision) in precisions.iter().enumerate() {
        let net = random_net(variant, &device, precision)?;
        // The first precision is the default one; the others are for comparison.
        let tag = if i == 0 {
            String::new()
        } else {
            format!("{}_", precision.as_str())
        };
        for s in &sizes {
            let size =
                parse_size(s).ok_or_else(|| anyhow::anyhow!("bad size '{s}': use N or WxH"))?;
            let t = time_inference(&net, &device, size, a.warmup, runs)?;
            let key = format!("{}x{}", t.width, t.height);
            if !a.json {
                let mem = t
                    .peak_mem_mb
                    .map_or(String::new(), |m| format!(", peak {m:.0} MB"));
                println!(
                    "infer {key} {}: median {:.2} ms (min {:.2} ms{mem})",
                    precision.as_str(),
                    t.median_ms,
                    t.min_ms
                );
            }
            json.insert(format!("infer_ms_{tag}{key}"), t.median_ms.into());
            if let Some(m) = t.peak_mem_mb {
                json.insert(format!("peak_mem_mb_infer_{tag}{key}"), m.into());
            }
            if atelier::tuning::current().profile {
                let spans = atelier::bench::profile_inference(&net, &device, size, 5)?;
                if !a.json {
                    for (label, ms) in &spans {
                        println!("  {label}: {ms:.3} ms");
                    }
                }
                let obj: serde_json::Map<_, _> = spans
                    .into_iter()
                    .map(|(l, ms)| (l, ((ms * 1000.0).round() / 1000.0).into()))
                    .collect();
                json.insert(format!("infer_profile_{tag}{key}"), obj.into());
            }
        }
    }
    if gpu {
        quality_check(&a, &device, &precisions, &mut json)?;
    }
    if let Some(p) = &a.preview {
        let (w, h) = parse_size(p).ok_or_else(|| anyhow::anyhow!("bad size '{p}': use WxH"))?;
        let ms = atelier::bench::time_preview(variant, &device, (w, h), a.warmup, runs)?;
        if !a.json {
            println!(
                "preview {w}x{h} (stylised at {} px): median {ms:.1} ms",
                atelier::stylize::preview_side(&device)
            );
        }
        json.insert(format!("preview_ms_{w}x{h}"), ms.into());
    }
    let train_iters = a.train_iters.unwrap_or(if gpu { 300 } else { 0 });
    if train_iters > 0 {
        let vgg = a
            .vgg
            .clone()
            .or_else(atelier::train::vgg::bundled_vgg_path)
            .ok_or_else(|| anyhow::anyhow!("no VGG16 for the training benchmark; pass --vgg"))?;
        let its =
            atelier::bench::time_training(&device, &vgg, 4, 256, 20.min(train_iters), train_iters)?;
        if !a.json {
            println!("train batch 4, 256x256: {its:.2} it/s");
        }
        json.insert("train_it_per_s_b4_256".into(), its.into());
        if atelier::tuning::current().profile {
            for (phase, ms) in atelier::bench::profile_training(&device, &vgg, 4, 256, 20)? {
                if !a.json {
                    println!("train phase {phase}: {ms:.2} ms");
                }
                json.insert(format!("train_ms_{phase}"), ms.into());
            }
        }
    }
    println!("{}", serde_json::Value::Object(json));
    Ok(ExitCode::SUCCESS)
}

/// The precisions to time: the user's list, or the device's best followed by f32.
fn precisions(
    asked: &[String],
    variant: Variant,
    device: &candle_core::Device,
) -> anyhow::Result<Vec<Precision>> {
    let mut out: Vec<Precision> = asked
        .iter()
        .map(|p| {
            if p == "f16" {
                Precision::F16
            } else {
                Precision::F32
            }
        })
        .collect();
    if out.is_empty() {
        out.push(Precision::auto(variant, device));
        if out[0] != Precision::F32 {
            out.push(Precision::F32);
        }
    }
    if let Some(p) = out.iter().find(|p| !p.supported(variant, device)) {
        anyhow::bail!(
            "{} inference of {variant} networks is not available on {}",
            p.as_str(),
            describe(device)
        );
    }
    Ok(out)
}

/// On accelerators: how far each precision's output is from the f32 CPU result on real
/// photos with a trained style (PSNR; the f16 path must stay at or above 40 dB).
fn quality_check(
    a: &Args,
    device: &candle_core::Device,
    precisions: &[Precision],
    json: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    let model_path = a.quality_model.clone().or_else(|| {
        atelier::model::registry::bundled_dir().map(|d| d.join("starry_night.safetensors"))
    });
    let Some(model_path) = model_path.filter(|p| p.is_file()) else {
        eprintln!("quality check skipped: no trained style found (pass --quality-model)");
        return Ok(());
    };
    let model = StyleModel::load(&model_path)?;
    if precisions
        .iter()
        .all(|p| !p.supported(model.meta.variant, device))
    {
        return Ok(());
    }
    let photos = quality_photos(a)?;
    for &precision in precisions {
        if !precision.supported(model.meta.variant, device) {
            continue;
        }
        let q = atelier::bench::quality_against_cpu(&model, device, precision, &photos)?;
        report_quality(
            a,
            &format!("quality ({})", model.meta.name),
            precision,
            &q,
            json,
        );
    }
    Ok(())
}

/// Prints one precision's PSNR against f32 on the CPU and records its minimum.
fn report_quality(
    a: &Args,
    label: &str,
    precision: Precision,
    q: &atelier::bench::Quality,
    json: &mut serde_json::Map<String, serde_json::Value>,
) {
    if !a.json {
        println!(
            "{label} {} vs f32 on the CPU ({} photos): PSNR min {:.1} dB, mean {:.1} dB",
            precision.as_str(),
            q.photos,
            q.min_psnr_db,
            q.mean_psnr_db
        );
    }
    json.insert(
        format!("psnr_db_min_{}_vs_cpu_f32", precision.as_str()),
        q.min_psnr_db.into(),
    );
}

/// The photos of `--quality-photos` (default: the source tree's assets/examples), by name.
fn quality_photos(a: &Args) -> anyhow::Result<Vec<image::RgbImage>> {
    let photo_dir = a.quality_photos.clone().unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/examples")
    });
    let mut names: Vec<_> = std::fs::read_dir(&photo_dir)
        .map_err(|e| anyhow::anyhow!("quality photos {}: {e}", photo_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    Ok(names
        .iter()
        .filter_map(|p| atelier::image_io::load_rgb(p).ok())
        .collect())
}

fn build_info() -> String {
    let mut features = Vec::new();
    if cfg!(feature = "cuda") {
        features.push("cuda");
    }
    if cfg!(feature = "cudnn") {
        features.push("cudnn");
    }
    if cfg!(feature = "metal") {
        features.push("metal");
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    format!("{profile} [{}]", features.join(","))
}

/// Times the instant-style network: the predictor on one 256² painting, and the transformer
/// (with padding, conversion and crop, as `stylize --style-image` runs it) at each size and
/// precision; on accelerators also each precision's PSNR against f32 on the CPU.
fn bench_instant(
    a: &Args,
    device: &candle_core::Device,
    sizes: &[String],
    runs: usize,
) -> anyhow::Result<ExitCode> {
    use atelier::stylize::instant::InstantStylizer;
    use atelier::stylize::Hooks;
    let precisions = precisions(&a.precision, Variant::Instant, device)?;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        for _ in 0..a.warmup {
            f()?;
        }
        let mut ms = Vec::new();
        for _ in 0..runs.max(1) {
            let t = std::time::Instant::now();
            f()?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(ms))
    };
    let mut json = serde_json::Map::new();
    json.insert("device".into(), describe(device).into());
    json.insert("build".into(), build_info().into());
    json.insert("variant".into(), "arbitrary".into());
    json.insert("runs".into(), runs.into());
    let painting = image::RgbImage::from_fn(256, 256, |x, y| image::Rgb([x as u8, y as u8, 128]));
    for (i, &precision) in precisions.iter().enumerate() {
        let p = precision.as_str();
        let net = InstantStylizer::bundled_with(device, precision)?;
        // The predictor is f32 at every precision: time it once.
        if i == 0 {
            let predictor_ms = time(&mut || {
                net.style_vector_exact(&painting)?;
                Ok(())
            })?;
            json.insert("predictor_ms".into(), predictor_ms.into());
            if !a.json {
                eprintln!("style predictor (256²): {predictor_ms:.1} ms");
            }
        }
        let vector = net.style_vector_exact(&painting)?;
        for s in sizes {
            let (w, h) = parse_size(s)
                .ok_or_else(|| anyhow::anyhow!("'{s}' is not a size like 1024 or 3840x2160"))?;
            let (w, h) = (w as u32, h as u32);
            let photo = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
            });
            let ms = time(&mut || {
                net.stylize(&photo, &vector, 1.0, &mut Hooks::default())?;
                Ok(())
            })?;
            json.insert(format!("transform_ms_{p}_{w}x{h}"), ms.into());
            if !a.json {
                eprintln!("style transformer {p} {w}x{h}: {ms:.1} ms (median of {runs})");
            }
        }
    }
    if !device.is_cpu() {
        instant_quality_check(a, device, &precisions, &mut json)?;
    }
    if a.json {
        println!("{}", serde_json::Value::Object(json));
    }
    Ok(ExitCode::SUCCESS)
}

/// On accelerators: each precision's instant-style output against f32 on the CPU, on the
/// quality photos, under the style of the quality model's painting (or the first photo's).
fn instant_quality_check(
    a: &Args,
    device: &candle_core::Device,
    precisions: &[Precision],
    json: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    use atelier::stylize::instant::{instant_style, InstantStylizer};
    let photos = quality_photos(a)?;
    let Some(first) = photos.first() else {
        eprintln!("instant quality check skipped: no photos");
        return Ok(());
    };
    let painting = a
        .quality_model
        .as_ref()
        .and_then(|p| StyleModel::load(p).ok())
        .and_then(|m| m.painting_jpg)
        .and_then(|jpg| image::load_from_memory(&jpg).ok())
        .map(|i| i.to_rgb8())
        .unwrap_or_else(|| first.clone());
    let vector = InstantStylizer::bundled_with(&candle_core::Device::Cpu, Precision::F32)?
        .style_vector(&painting)?;
    let model = instant_style(vector, "bench")?;
    for &precision in precisions {
        let q = atelier::bench::quality_against_cpu(&model, device, precision, &photos)?;
        report_quality(a, "instant quality", precision, &q, json);
        json.insert(
            format!("psnr_db_mean_{}_vs_cpu_f32", precision.as_str()),
            q.mean_psnr_db.into(),
        );
    }
    Ok(())
}
