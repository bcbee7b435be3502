//! Helpers shared by the integration tests: models and images made on the spot.
#![allow(dead_code)]

#[cfg(feature = "app")]
pub mod app;

use atelier::model::{random_model, StyleModel, Variant};
use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// A smooth, colourful test photo (gradients and a few shapes), deterministic.
pub fn photo(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let fx = x as f32 / w.max(1) as f32;
        let fy = y as f32 / h.max(1) as f32;
        let ring = (((fx - 0.5).powi(2) + (fy - 0.4).powi(2)).sqrt() * 20.0).sin() * 0.5 + 0.5;
        image::Rgb([
            (255.0 * fx) as u8,
            (255.0 * (0.3 + 0.7 * fy * ring)) as u8,
            (255.0 * (1.0 - fx * fy)) as u8,
        ])
    })
}

pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mse: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

pub fn model(variant: Variant) -> StyleModel {
    random_model(variant, &format!("random-{variant}")).unwrap()
}

/// Writes a random-weight model file into `dir` and returns its path.
pub fn model_file(dir: &Path, variant: Variant, name: &str) -> PathBuf {
    let mut m = random_model(variant, name).unwrap();
    m.meta.name = name.to_string();
    let path = dir.join(format!("{name}.safetensors"));
    m.save(&path, true, false).unwrap();
    path
}

/// A VGG16-shaped network with few channels and random weights ("caffe" input).
pub fn tiny_vgg(dir: &Path) -> PathBuf {
    tiny_vgg_with(
        dir,
        "tiny-vgg.safetensors",
        &[
            (0, 8),
            (2, 8),
            (5, 12),
            (7, 12),
            (10, 16),
            (12, 16),
            (14, 16),
            (17, 16),
            (19, 16),
            (21, 16),
            (24, 16),
            (26, 16),
            (28, 16),
        ],
    )
}

/// A VGG-shaped network with random weights: `(features index, channels)` per conv. The
/// weights come from a fixed seed: tests that train against it must not pass or fail by luck.
pub fn tiny_vgg_with(dir: &Path, file: &str, layers: &[(usize, usize)]) -> PathBuf {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut c_in = 3;
    let mut tensors = Vec::new();
    for &(i, c_out) in layers {
        let bound = (6.0 / (c_in * 9) as f64).sqrt() as f32;
        let values: Vec<f32> = (0..c_out * c_in * 9)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let w = Tensor::from_vec(values, (c_out, c_in, 3, 3), &Device::Cpu).unwrap();
        tensors.push((format!("features.{i}.weight"), w));
        tensors.push((
            format!("features.{i}.bias"),
            Tensor::zeros(c_out, DType::F32, &Device::Cpu).unwrap(),
        ));
        c_in = c_out;
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert(
        "preprocess".to_string(),
        "caffe: BGR, 0..255, minus mean".to_string(),
    );
    let path = dir.join(file);
    std::fs::write(
        &path,
        safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), Some(meta)).unwrap(),
    )
    .unwrap();
    path
}

/// A short clip made with FFmpeg: moving test pattern (odd size), 25 fps, a sine tone.
pub fn video_clip(dir: &Path) -> PathBuf {
    video_clip_lasting(dir, 1.44)
}

/// A clip of `seconds`; tests that interrupt a run need one long enough that a fast machine is
/// still working on it when the signal comes.
pub fn video_clip_lasting(dir: &Path, seconds: f32) -> PathBuf {
    let p = dir.join("clip.mp4");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=99x67:rate=25",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv444p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&p)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ffmpeg could not make the test clip");
    p
}
