//! Imported reference checkpoints reproduce the reference implementations' outputs.
//! Reads `$ATELIER_REFERENCE_DIR` (../shared/reference); `.ci/run` sets it.

mod common;

use atelier::image_io::load_rgb;
use atelier::model::import::import;
use atelier::stylize::{Hooks, Stylizer, Tiling};
use candle_core::Device;
use image::RgbImage;
use std::path::PathBuf;

fn reference_dir() -> PathBuf {
    let dir = std::env::var_os("ATELIER_REFERENCE_DIR")
        .map(PathBuf::from)
        .expect("set ATELIER_REFERENCE_DIR to ../shared/reference");
    assert!(
        dir.is_dir(),
        "ATELIER_REFERENCE_DIR={} is not a folder",
        dir.display()
    );
    dir
}

fn top_rows(img: &RgbImage, h: u32) -> RgbImage {
    image::imageops::crop_imm(img, 0, 0, img.width(), h).to_image()
}

fn check(model: PathBuf, content: PathBuf, expected: PathBuf, tiling: Tiling) -> f64 {
    let m = import(&model, "reference").unwrap();
    let s = Stylizer::new(&m, &Device::Cpu).unwrap();
    let photo = load_rgb(&content).unwrap();
    let out = s
        .stylize_raw(&photo, tiling, &mut Hooks::default())
        .unwrap();
    assert_eq!(out.dimensions(), photo.dimensions());
    // fast-style-transfer's conv-transposes round odd sizes up: compare the rows we share.
    let expected = top_rows(&load_rgb(&expected).unwrap(), out.height());
    let p = common::psnr(&out, &expected);
    // Printed so CI logs show the margin, not just pass/fail.
    eprintln!(
        "{} on {} ({tiling:?}): {p:.1} dB",
        model.display(),
        content.display()
    );
    p
}

#[test]
#[ignore = "needs ATELIER_REFERENCE_DIR"]
fn pytorch_examples_wave_reproduces_expected_output() {
    let r = reference_dir().join("pytorch-examples");
    let p = check(
        r.join("wave.pth"),
        r.join("amber.png"),
        r.join("expected_amber_wave.png"),
        Tiling::Off,
    );
    assert!(p >= 40.0, "PSNR {p:.1} dB");
}

#[test]
#[ignore = "needs ATELIER_REFERENCE_DIR"]
fn fast_style_transfer_checkpoints_reproduce_expected_outputs() {
    let r = reference_dir().join("fast-style-transfer");
    for style in ["udnie", "wave"] {
        let p = check(
            r.join("checkpoints").join(style),
            r.join("content/chicago.png"),
            r.join(format!("expected/chicago_{style}.png")),
            Tiling::Off,
        );
        assert!(p >= 40.0, "{style}: PSNR {p:.1} dB");
    }
}

/// Tiles with whole-image normalisation statistics still match the reference.
#[test]
#[ignore = "needs ATELIER_REFERENCE_DIR"]
fn tiled_inference_reproduces_expected_outputs() {
    let r = reference_dir().join("fast-style-transfer");
    let p = check(
        r.join("checkpoints/wave"),
        r.join("content/chicago.png"),
        r.join("expected/chicago_wave.png"),
        Tiling::Core(200),
    );
    assert!(p >= 40.0, "tiled fst: PSNR {p:.1} dB");
    let r = reference_dir().join("pytorch-examples");
    let p = check(
        r.join("wave.pth"),
        r.join("amber.png"),
        r.join("expected_amber_wave.png"),
        Tiling::Core(400),
    );
    assert!(p >= 40.0, "tiled johnson: PSNR {p:.1} dB");
}
