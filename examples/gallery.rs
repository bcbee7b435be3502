//! Builds the bundled gallery's metadata and picture evidence (docs/gallery.md):
//!
//! ```sh
//! # title / artist / year / licence and a small copy of the painting into each model
//! cargo run --release --example gallery -- meta models/*.safetensors \
//!     --paintings ../shared/styles --card "NVIDIA H200"
//! # contact sheets: one row per style (its painting, then three example photos restyled)
//! cargo run --release --example gallery -- sheet models/*.safetensors -o docs/images/gallery.jpg \
//!     [--rows 8]
//! # side by side on the same photos: photo, then each model (e.g. FST's wave, ours)
//! cargo run --release --example gallery -- compare A.safetensors B.safetensors \
//!     --photos DIR [--limit 4] -o docs/images/compare.jpg
//! ```
//! The paintings' details come from `assets/paintings.tsv` (file stem → name, title, artist,
//! year). `--paintings DIR` is searched for `<stem>.jpg` and `more/<stem>.jpg`.

use anyhow::{bail, Context, Result};
use atelier::model::format::{painting_jpeg, update_meta, StyleModel};
use atelier::stylize::{Hooks, Stylizer, Tiling};
use candle_core::Device;
use image::{imageops, RgbImage};
use std::path::{Path, PathBuf};

struct Painting {
    file: String,
    name: String,
    title: String,
    artist: String,
    year: String,
}

fn paintings() -> Result<Vec<Painting>> {
    let tsv = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/paintings.tsv");
    let text = std::fs::read_to_string(&tsv).with_context(|| tsv.display().to_string())?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 5 {
                bail!("{}: short line: {l}", tsv.display());
            }
            Ok(Painting {
                file: f[0].into(),
                name: f[1].into(),
                title: f[2].into(),
                artist: f[3].into(),
                year: f[4].into(),
            })
        })
        .collect()
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn find_painting(dir: &Path, stem: &str) -> Option<PathBuf> {
    [
        dir.join(format!("{stem}.jpg")),
        dir.join("more").join(format!("{stem}.jpg")),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

fn meta(models: &[PathBuf], dir: &Path, card: &str) -> Result<()> {
    let table = paintings()?;
    for m in models {
        let s = stem(m);
        let Some(p) = table.iter().find(|p| p.file == s) else {
            bail!("{}: not in assets/paintings.tsv", m.display());
        };
        update_meta(m, |meta| {
            meta.name = p.name.clone();
            meta.title = Some(p.title.clone());
            meta.artist = Some(p.artist.clone());
            meta.year = Some(p.year.clone());
            meta.license = Some("public domain".into());
            meta.source = Some(format!(
                "{}, {}, {} (public domain)",
                p.title, p.artist, p.year
            ));
            if let Some(serde_json::Value::Object(t)) = meta.training.as_mut() {
                t.insert("card".into(), card.into());
                t.insert(
                    "content_set".into(),
                    "imagenet-sample-256/train (900 photos)".into(),
                );
            }
        })?;
        // The small painting copy rides inside the model (the trainer stores one too; this
        // refreshes it from the original for models trained elsewhere).
        let file = find_painting(dir, &s)
            .with_context(|| format!("no painting {s}.jpg in {}", dir.display()))?;
        let mut model = StyleModel::load(m)?;
        model.painting_jpg = Some(painting_jpeg(&atelier::image_io::load_rgb(&file)?)?);
        model.save(m, true, true)?;
        println!(
            "{}: {} — {}, {}, {}",
            m.display(),
            p.name,
            p.title,
            p.artist,
            p.year
        );
    }
    Ok(())
}

const CELL: u32 = 200;
const GAP: u32 = 4;

fn fit_height(img: &RgbImage, h: u32) -> RgbImage {
    let w = (img.width() * h).div_ceil(img.height()).max(1);
    imageops::resize(img, w, h, imageops::FilterType::Lanczos3)
}

fn example_photos() -> Result<Vec<RgbImage>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/examples");
    ["astronaut.png", "chelsea.png", "coffee.png"]
        .iter()
        .map(|n| {
            Ok(fit_height(
                &atelier::image_io::load_rgb(&root.join(n))?,
                CELL,
            ))
        })
        .collect()
}

/// Rows of images side by side, each row `CELL` high, left-aligned on white.
fn grid(rows: &[Vec<RgbImage>]) -> RgbImage {
    let width = rows
        .iter()
        .map(|r| r.iter().map(|i| i.width() + GAP).sum::<u32>())
        .max()
        .unwrap_or(1)
        - GAP;
    let n = rows.len() as u32;
    let mut canvas = RgbImage::from_pixel(
        width,
        n * CELL + n.saturating_sub(1) * GAP,
        image::Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        let mut x = 0;
        for i in row {
            imageops::replace(&mut canvas, i, x as i64, (r as u32 * (CELL + GAP)) as i64);
            x += i.width() + GAP;
        }
    }
    canvas
}

fn save(img: &RgbImage, out: &Path) -> Result<()> {
    let fmt = atelier::image_io::OutputFormat::from_path(out)?;
    atelier::image_io::save_rgb(img, out, fmt, true)?;
    println!("{}", out.display());
    Ok(())
}

fn restyle(m: &Path, photos: &[RgbImage]) -> Result<(String, Vec<RgbImage>)> {
    let s = Stylizer::load(m, &Device::Cpu)?;
    let out = photos
        .iter()
        .map(|p| Ok(s.stylize_raw(p, Tiling::Off, &mut Hooks::default())?))
        .collect::<Result<_>>()?;
    Ok((s.meta().name.clone(), out))
}

/// One row per style: its painting (from the model file), then the example photos restyled.
/// With `rows`, several sheets `out-1.jpg`, `out-2.jpg`, … of that many rows each.
fn sheet(models: &[PathBuf], out: &Path, rows: Option<usize>) -> Result<()> {
    let photos = example_photos()?;
    let mut all = Vec::new();
    for m in models {
        let model = StyleModel::load(m)?;
        let painting = match &model.painting_jpg {
            Some(j) => fit_height(&image::load_from_memory(j)?.into_rgb8(), CELL),
            None => RgbImage::from_pixel(CELL, CELL, image::Rgb([240, 240, 240])),
        };
        let (name, styled) = restyle(m, &photos)?;
        println!("{}: {name}", all.len() + 1);
        let mut row = vec![painting];
        row.extend(styled);
        all.push(row);
    }
    let per = rows.unwrap_or(all.len()).max(1);
    if per >= all.len() {
        let mut with_photos = vec![{
            let mut r = vec![RgbImage::from_pixel(
                CELL,
                CELL,
                image::Rgb([255, 255, 255]),
            )];
            r.extend(photos.iter().cloned());
            r
        }];
        with_photos.extend(all);
        return save(&grid(&with_photos), out);
    }
    for (k, chunk) in all.chunks(per).enumerate() {
        let stem = out.file_stem().unwrap_or_default().to_string_lossy();
        let ext = out.extension().unwrap_or_default().to_string_lossy();
        save(
            &grid(chunk),
            &out.with_file_name(format!("{stem}-{}.{ext}", k + 1)),
        )?;
    }
    Ok(())
}

/// Photos in the first column, each model's results in the next ones.
fn compare(models: &[PathBuf], dir: &Path, limit: usize, out: &Path) -> Result<()> {
    let files = atelier::eval::load_photos(dir, Some(limit))?;
    let photos: Vec<RgbImage> = files.iter().map(|(_, i)| fit_height(i, CELL)).collect();
    let mut columns = vec![photos.clone()];
    for m in models {
        let (name, styled) = restyle(m, &photos)?;
        println!("column {}: {name} ({})", columns.len() + 1, m.display());
        columns.push(styled);
    }
    let rows: Vec<Vec<RgbImage>> = (0..photos.len())
        .map(|r| columns.iter().map(|c| c[r].clone()).collect())
        .collect();
    save(&grid(&rows), out)
}

fn main() -> Result<()> {
    atelier::tuning::Tuning::from_env().install();
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
        Some("meta") => meta(
            &models,
            Path::new(&flag("--paintings").context("--paintings DIR")?),
            &flag("--card").unwrap_or_else(|| "unknown".into()),
        ),
        Some("sheet") => sheet(
            &models,
            Path::new(&flag("-o").context("-o OUT")?),
            flag("--rows").map(|r| r.parse()).transpose()?,
        ),
        Some("compare") => compare(
            &models,
            Path::new(&flag("--photos").context("--photos DIR")?),
            flag("--limit").map(|r| r.parse()).transpose()?.unwrap_or(4),
            Path::new(&flag("-o").context("-o OUT")?),
        ),
        _ => bail!("usage: gallery meta|sheet|compare MODEL... (see the file's header)"),
    }
}
