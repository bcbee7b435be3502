use super::{open_device, parse_device};
use anyhow::Context;
use atelier::device::DeviceChoice;
use atelier::eval::{self, Evaluator, Scores, SecondOpinion};
use atelier::model::registry::Registry;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Measures styles on held-out photos: how close to the painting, how much of the photo kept.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Styles to measure: names from `atelier models` or model files.
    #[arg(required = true)]
    models: Vec<String>,
    /// A folder of held-out photos (not the ones trained on).
    #[arg(long)]
    photos: PathBuf,
    /// The painting every model is compared with.
    #[arg(long, conflicts_with = "paintings")]
    painting: Option<PathBuf>,
    /// A folder of paintings: each model is compared with the one named like its file
    /// (`wave.safetensors` → `wave.jpg`).
    #[arg(long)]
    paintings: Option<PathBuf>,
    /// Longest side of the painting when measured (default: its own size, at most 1024, as in
    /// training).
    #[arg(long)]
    painting_size: Option<u32>,
    /// Use only the first N photos (sorted by name).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn painting_for(a: &Args, model: &Path) -> anyhow::Result<PathBuf> {
    if let Some(p) = &a.painting {
        return Ok(p.clone());
    }
    let dir = a
        .paintings
        .as_ref()
        .context("say which painting to compare with: --painting FILE or --paintings DIR")?;
    let stem = model.file_stem().unwrap_or_default();
    atelier::formats::IMAGE_EXTENSIONS
        .iter()
        .map(|e| dir.join(stem).with_extension(e))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no painting for {} in {} (expected {}.jpg or .png)",
                model.display(),
                dir.display(),
                stem.to_string_lossy()
            )
        })
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let device = open_device(a.device, a.json)?;
    let registry = Registry::from_env();
    let models: Vec<PathBuf> = a
        .models
        .iter()
        .map(|m| registry.resolve(m))
        .collect::<atelier::Result<_>>()?;
    let photos: Vec<_> = eval::load_photos(&a.photos, a.limit)?
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    let vgg_path = atelier::train::vgg::bundled_vgg_path()
        .context("the bundled VGG16 (models/) is missing")?;
    // Models sharing a painting share its evaluator and its baseline row.
    let mut groups: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for m in models {
        let p = painting_for(&a, &m)?;
        match groups.iter_mut().find(|(q, _)| *q == p) {
            Some((_, ms)) => ms.push(m),
            None => groups.push((p, vec![m])),
        }
    }
    let mut rows = Vec::new();
    for (painting_path, models) in &groups {
        let original = atelier::image_io::load_rgb(painting_path)?;
        let side = a
            .painting_size
            .unwrap_or(original.width().max(original.height()).min(1024));
        let painting = atelier::train::resize_longest(&original, side);
        let vgg = atelier::train::vgg::Vgg16::load(&vgg_path, &device)?;
        let mut ev = Evaluator::new(vgg, &painting, &device)?;
        // The second opinion needs the bundled instant-style network; without it the VGG
        // measures still stand on their own.
        match SecondOpinion::bundled(&original) {
            Ok(s) => ev = ev.with_second_opinion(s),
            Err(e) => eprintln!("no second opinion (style vector, MobileNet content): {e}"),
        }
        let baseline = ev.evaluate(&photos, None)?;
        if !a.json {
            println!(
                "painting {} at {}×{}; {} photos from {}",
                painting_path.display(),
                painting.width(),
                painting.height(),
                photos.len(),
                a.photos.display()
            );
            header();
            line("(the photos themselves)", &baseline);
        }
        rows.push(row(painting_path, None, &baseline));
        for m in models {
            let s = eval::evaluate_model(&ev, m, &photos, &device)?;
            if !a.json {
                line(&m.file_stem().unwrap_or_default().to_string_lossy(), &s);
            }
            rows.push(row(painting_path, Some(m), &s));
        }
        if !a.json {
            println!();
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "style: distance of channel means/stds from the painting's at {} (lower = closer to the painting)\ntexture: sliced Wasserstein distance of the features at the same layers\ncontent: relative distance from the photo at {} (lower = more of the photo kept)\nS-VEC, M-CONT: the same two questions asked of Magenta's style predictor, which no loss here reads: style-vector distance from the painting's (the photos = 1) and content distance at its block {}",
            eval::STYLE_LAYERS.join(" "),
            eval::CONTENT_LAYER,
            eval::MOBILE_CONTENT_BLOCK
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn header() {
    println!(
        "{:<32} {:>8} {:>8} {:>8} {:>8} {:>8}   {}",
        "MODEL",
        "STYLE",
        "TEXTURE",
        "CONTENT",
        "S-VEC",
        "M-CONT",
        eval::STYLE_LAYERS
            .iter()
            .map(|l| format!("{l:>8}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn line(name: &str, s: &Scores) {
    println!(
        "{:<32} {:>8.4} {:>8.4} {:>8.4} {:>8} {:>8}   {}",
        name,
        s.style_distance,
        s.texture_distance,
        s.content_distance,
        opt(s.style_vector_distance),
        opt(s.mobile_content_distance),
        s.style_by_layer
            .iter()
            .map(|v| format!("{v:>8.4}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

fn row(painting: &Path, model: Option<&PathBuf>, s: &Scores) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "painting": painting,
        "style_distance": s.style_distance,
        "content_distance": s.content_distance,
        "texture_distance": s.texture_distance,
        "style_vector_distance": s.style_vector_distance,
        "mobile_content_distance": s.mobile_content_distance,
        "texture_by_layer": eval::STYLE_LAYERS.iter().zip(&s.texture_by_layer)
            .map(|(l, v)| (l.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "style_by_layer": eval::STYLE_LAYERS.iter().zip(&s.style_by_layer)
            .map(|(l, v)| (l.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "photos": s.photos,
    })
}
