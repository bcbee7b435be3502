use super::{open_device, parse_device};
use atelier::bench::{parse_size, random_net, time_inference};
use atelier::device::{describe, DeviceChoice};
use atelier::model::Variant;
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
    /// Network variant to time.
    #[arg(long, default_value = "johnson", value_parser = ["johnson", "fst"])]
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
    let variant = Variant::parse(&a.variant).expect("clap restricts the values");
    let net = random_net(variant, &device)?;
    let mut json = serde_json::Map::new();
    json.insert("atelier".into(), env!("CARGO_PKG_VERSION").into());
    json.insert("device".into(), describe(&device).into());
    json.insert("build".into(), build_info().into());
    json.insert("variant".into(), variant.as_str().into());
    json.insert("runs".into(), runs.into());
    for s in &sizes {
        let size = parse_size(s).ok_or_else(|| anyhow::anyhow!("bad size '{s}': use N or WxH"))?;
        let t = time_inference(&net, &device, size, a.warmup, runs)?;
        let key = format!("{}x{}", t.width, t.height);
        if !a.json {
            let mem = t
                .peak_mem_mb
                .map_or(String::new(), |m| format!(", peak +{m:.0} MB"));
            println!(
                "infer {key}: median {:.1} ms (min {:.1} ms{mem})",
                t.median_ms, t.min_ms
            );
        }
        json.insert(format!("infer_ms_{key}"), t.median_ms.into());
        if let Some(m) = t.peak_mem_mb {
            json.insert(format!("peak_mem_mb_infer_{key}"), m.into());
        }
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
        if std::env::var_os("ATELIER_PROFILE").is_some() {
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
