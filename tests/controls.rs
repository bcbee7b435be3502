//! The artist's controls from the command line: `--mask` (and `--stroke-scale`).

mod common;

use atelier::model::Variant;
use image::RgbImage;
use std::path::Path;
use std::process::{Command, Output};

fn atelier(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atelier"));
    c.env("ATELIER_DATA_DIR", data_dir)
        .env("ATELIER_MODELS_DIR", data_dir.join("no-bundled-models"))
        .env_remove("RUST_BACKTRACE");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stylize(d: &Path, model: &Path, photo: &Path, out: &Path, extra: &[&str]) -> Output {
    atelier(d)
        .arg("stylize")
        .arg("--style")
        .arg(model)
        .args(["--device", "cpu"])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(photo)
        .output()
        .unwrap()
}

#[test]
fn a_half_black_half_white_mask_keeps_the_photo_in_the_black_half() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = common::model_file(d, Variant::Johnson, "masked");
    let (w, h) = (64u32, 48u32);
    let photo = common::photo(w, h);
    photo.save(d.join("photo.png")).unwrap();
    // Half the photo's size, so the mask is also resized; colour, so it is read by luma.
    let mask = RgbImage::from_fn(w / 2, h / 2, |x, _| {
        image::Rgb(if x < w / 4 {
            [0, 0, 0]
        } else {
            [255, 255, 255]
        })
    });
    mask.save(d.join("mask.png")).unwrap();

    let o = stylize(d, &model, &d.join("photo.png"), &d.join("plain.png"), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = stylize(
        d,
        &model,
        &d.join("photo.png"),
        &d.join("masked.png"),
        &["--mask", d.join("mask.png").to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let plain = image::open(d.join("plain.png")).unwrap().to_rgb8();
    let masked = image::open(d.join("masked.png")).unwrap().to_rgb8();
    assert_eq!(masked.dimensions(), (w, h));
    assert_ne!(plain, photo, "the style changes the photo");
    // The bilinear seam spans a couple of pixels around the middle; away from it the
    // halves are exact.
    for y in 0..h {
        for x in 0..w / 2 - 2 {
            assert_eq!(masked.get_pixel(x, y), photo.get_pixel(x, y), "({x}, {y})");
        }
        for x in w / 2 + 2..w {
            assert_eq!(masked.get_pixel(x, y), plain.get_pixel(x, y), "({x}, {y})");
        }
    }
}

#[test]
fn a_mask_that_cannot_be_read_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = common::model_file(d, Variant::Johnson, "masked");
    common::photo(32, 32).save(d.join("photo.png")).unwrap();
    std::fs::write(d.join("mask.png"), b"not a png").unwrap();
    let o = stylize(
        d,
        &model,
        &d.join("photo.png"),
        &d.join("out.png"),
        &["--mask", d.join("mask.png").to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("mask"), "{}", text(&o));
    assert!(!d.join("out.png").exists());
}
