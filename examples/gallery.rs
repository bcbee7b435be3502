//! Builds the bundled gallery's evidence and metadata (docs/gallery.md):
//!
//! ```sh
//! cargo run --release --example gallery -- meta models/*.safetensors --card "NVIDIA H100 80GB HBM3"
//! cargo run --release --example gallery -- sheet models/*.safetensors -o docs/images/gallery.jpg
//! cargo run --release --example gallery -- losses models/*.safetensors \
//!     --styles ../shared/styles --eval ../shared/datasets/imagenet-sample-256/eval
//! ```
//! `meta` writes title / artist / year / licence for the six public-domain paintings,
//! `sheet` renders each style on three of `assets/examples`, `losses` prints the mean
//! content and style loss (the training weights, VGG16 in models/) over the held-out photos.

use anyhow::{bail, Context, Result};
use atelier::model::format::update_meta;
use atelier::stylize::{Hooks, Stylizer, Tiling};
use candle_core::{Device, Tensor};
use image::{imageops, RgbImage};
use std::path::{Path, PathBuf};

/// (file stem, display name, title, artist, year)
const PAINTINGS: [(&str, &str, &str, &str, &str); 6] = [
    (
        "starry_night",
        "Starry Night",
        "The Starry Night",
        "Vincent van Gogh",
        "1889",
    ),
    (
        "the_scream",
        "The Scream",
        "The Scream",
        "Edvard Munch",
        "1893",
    ),
    (
        "wave",
        "Great Wave",
        "The Great Wave off Kanagawa",
        "Katsushika Hokusai",
        "c. 1831",
    ),
    (
        "udnie",
        "Udnie",
        "Udnie (Young American Girl, The Dance)",
        "Francis Picabia",
        "1913",
    ),
    (
        "composition_vii",
        "Composition VII",
        "Composition VII",
        "Wassily Kandinsky",
        "1913",
    ),
    (
        "the_shipwreck_of_the_minotaur",
        "Shipwreck",
        "The Shipwreck of the Minotaur",
        "J. M. W. Turner",
        "c. 1810",
    ),
];

fn stem(p: &Path) -> String {
    p.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn meta(models: &[PathBuf], card: &str) -> Result<()> {
    for m in models {
        let s = stem(m);
        let Some(&(_, name, title, artist, year)) = PAINTINGS.iter().find(|p| p.0 == s) else {
            bail!("{}: not one of the six gallery paintings", m.display());
        };
        update_meta(m, |meta| {
            meta.name = name.into();
            meta.title = Some(title.into());
            meta.artist = Some(artist.into());
            meta.year = Some(year.into());
            meta.license = Some("public domain".into());
            meta.source = Some(format!("{title}, {artist}, {year} (public domain)"));
            if let Some(serde_json::Value::Object(t)) = meta.training.as_mut() {
                t.insert("card".into(), card.into());
                t.insert(
                    "content_set".into(),
                    "imagenet-sample-256/train (900 photos)".into(),
                );
            }
        })?;
        println!("{}: {name} — {title}, {artist}, {year}", m.display());
    }
    Ok(())
}

fn sheet(models: &[PathBuf], out: &Path) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/examples");
    let photos: Vec<RgbImage> = ["astronaut.png", "chelsea.png", "coffee.png"]
        .iter()
        .map(|n| {
            let img = atelier::image_io::load_rgb(&root.join(n))?;
            let h = 240;
            let w = img.width() * h / img.height();
            Ok(imageops::resize(&img, w, h, imageops::FilterType::Lanczos3))
        })
        .collect::<Result<_>>()?;
    let width: u32 = photos.iter().map(|p| p.width()).sum::<u32>() + 4 * (photos.len() as u32 - 1);
    let rows = models.len() as u32 + 1;
    let mut canvas = RgbImage::from_pixel(
        width,
        rows * 240 + (rows - 1) * 4,
        image::Rgb([255, 255, 255]),
    );
    let place = |canvas: &mut RgbImage, row: u32, imgs: &[RgbImage]| {
        let mut x = 0;
        for i in imgs {
            imageops::replace(canvas, i, x as i64, (row * 244) as i64);
            x += i.width() + 4;
        }
    };
    place(&mut canvas, 0, &photos);
    for (r, m) in models.iter().enumerate() {
        let s = Stylizer::load(m, &Device::Cpu)?;
        let styled: Vec<RgbImage> = photos
            .iter()
            .map(|p| Ok(s.stylize_raw(p, Tiling::Off, &mut Hooks::default())?))
            .collect::<Result<_>>()?;
        place(&mut canvas, r as u32 + 1, &styled);
        println!("row {}: {}", r + 1, s.meta().name);
    }
    let fmt = atelier::image_io::OutputFormat::from_path(out)?;
    atelier::image_io::save_rgb(&canvas, out, fmt, true)?;
    println!("{}", out.display());
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let models: Vec<PathBuf> = args
        .iter()
        .skip(1)
        .take_while(|a| !a.starts_with("--") && *a != "-o")
        .map(PathBuf::from)
        .collect();
    match args.first().map(String::as_str) {
        Some("meta") => meta(&models, &flag("--card").unwrap_or_else(|| "unknown".into())),
        Some("sheet") => sheet(&models, Path::new(&flag("-o").context("-o OUT")?)),
        _ => bail!("usage: gallery meta|sheet|losses MODEL... (see the file's header)"),
    }
}
