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

/// Sum of squared horizontal and vertical differences: how much edge there is.
fn gradient_energy(img: &RgbImage) -> f64 {
    let (w, h) = img.dimensions();
    let mut e = 0f64;
    for y in 0..h - 1 {
        for x in 0..w - 1 {
            let p = img.get_pixel(x, y).0;
            let r = img.get_pixel(x + 1, y).0;
            let d = img.get_pixel(x, y + 1).0;
            for c in 0..3 {
                e += (p[c] as f64 - r[c] as f64).powi(2) + (p[c] as f64 - d[c] as f64).powi(2);
            }
        }
    }
    e / f64::from(w * h)
}

/// A photo with hard edges: blocks on the smooth test photo.
fn blocky_photo(w: u32, h: u32) -> RgbImage {
    let mut p = common::photo(w, h);
    for (x, y, px) in p.enumerate_pixels_mut() {
        if (x / 12 + y / 12) % 3 == 0 {
            *px = image::Rgb([240, 240, 230]);
        }
    }
    p
}

#[test]
fn a_larger_stroke_scale_changes_the_result_and_keeps_edges_sharper_than_upsampling() {
    use atelier::stylize::{resample, Hooks, Stylizer, Tiling};
    let device = candle_core::Device::Cpu;
    let s = Stylizer::new(&common::model(Variant::Johnson), &device).unwrap();
    let photo = blocky_photo(128, 96);
    let one = s
        .stylize_raw_scaled(&photo, Tiling::Off, 1.0, &mut Hooks::default())
        .unwrap();
    assert_eq!(
        one,
        s.stylize_raw(&photo, Tiling::Off, &mut Hooks::default())
            .unwrap(),
        "scale 1 is today's result"
    );
    let two = s
        .stylize_raw_scaled(&photo, Tiling::Off, 2.0, &mut Hooks::default())
        .unwrap();
    assert_eq!(two.dimensions(), photo.dimensions());
    assert_ne!(two, one);
    // The obvious way: the network at half size, scaled up.
    let small = image::imageops::thumbnail(&photo, 64, 48);
    let naive = resample::bilinear(
        &s.stylize_raw(&small, Tiling::Off, &mut Hooks::default())
            .unwrap(),
        128,
        96,
    );
    let (g2, gn) = (gradient_energy(&two), gradient_energy(&naive));
    assert!(g2 > gn * 1.2, "restored {g2:.1} vs upsampled {gn:.1}");
    // Finer strokes: the network at twice the size, brought back to the photo's.
    let half = s
        .stylize_raw_scaled(&photo, Tiling::Off, 0.5, &mut Hooks::default())
        .unwrap();
    assert_eq!(half.dimensions(), photo.dimensions());
    assert_ne!(half, one);
}

#[test]
fn stroke_scale_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = common::model_file(d, Variant::Johnson, "scaled");
    blocky_photo(96, 64).save(d.join("photo.png")).unwrap();
    let mut outs = Vec::new();
    for s in ["1", "2", "auto"] {
        let out = d.join(format!("out-{s}.png"));
        let o = stylize(
            d,
            &model,
            &d.join("photo.png"),
            &out,
            &["--stroke-scale", s],
        );
        assert!(o.status.success(), "{}", text(&o));
        let img = image::open(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (96, 64));
        outs.push(img);
    }
    assert_ne!(outs[0], outs[1]);
    let o = stylize(
        d,
        &model,
        &d.join("photo.png"),
        &d.join("bad.png"),
        &["--stroke-scale", "9"],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("between 0.5 and 4"), "{}", text(&o));
}

#[test]
#[ignore = "needs ffmpeg"]
fn video_takes_a_stroke_scale_and_a_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = common::model_file(d, Variant::Johnson, "scaled");
    let clip = common::video_clip(d);
    // Output frames are 98×66 (even sizes); the mask keeps the left half the video's.
    let mask = RgbImage::from_fn(98, 66, |x, _| {
        image::Rgb(if x < 49 { [0, 0, 0] } else { [255, 255, 255] })
    });
    mask.save(d.join("mask.png")).unwrap();
    let out = d.join("out.mp4");
    let o = atelier(d)
        .arg("video")
        .arg(&clip)
        .arg("-o")
        .arg(&out)
        .arg("--style")
        .arg(&model)
        .args(["--device", "cpu", "--stroke-scale", "2", "--mask"])
        .arg(d.join("mask.png"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let src = atelier::video::frame_at(&clip, 0.5, None).unwrap();
    let got = atelier::video::frame_at(&out, 0.5, None).unwrap();
    let diff = |x0: u32, x1: u32| {
        let mut s = 0f64;
        let (w, h) = got.dimensions();
        let sw = src.width() as f64 / w as f64;
        for y in 4..h - 4 {
            for x in x0..x1 {
                let a = got.get_pixel(x, y).0;
                let b = src.get_pixel((x as f64 * sw) as u32, y).0;
                s += (0..3).map(|c| a[c].abs_diff(b[c]) as f64).sum::<f64>();
            }
        }
        s / f64::from((x1 - x0) * (h - 8) * 3)
    };
    let (left, right) = (diff(4, 40), diff(58, 94));
    // Video compression keeps the left near, not equal to, the input.
    assert!(left * 3.0 < right, "left {left:.1}, right {right:.1}");
}

#[test]
fn auto_gives_a_large_and_a_small_photo_of_one_scene_the_same_strokes() {
    use atelier::stylize::stroke::StrokeScale;
    use atelier::stylize::{Hooks, Stylizer, Tiling};
    // A trained style: a random network paints no strokes to compare.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let s = Stylizer::load(
        &root.join("models/udnie.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let scene = image::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/examples/coffee.png"),
    )
    .unwrap()
    .into_rgb8();
    let resize = |img: &RgbImage, w, h| {
        image::imageops::resize(img, w, h, image::imageops::FilterType::Lanczos3)
    };
    let (large, small) = (resize(&scene, 1200, 800), resize(&scene, 600, 400));
    let run = |photo: &RgbImage, scale: StrokeScale| {
        let f = scale.factor(photo.width(), photo.height());
        let out = s
            .stylize_raw_scaled(photo, Tiling::Off, f, &mut Hooks::default())
            .unwrap();
        // Compared at the small photo's size.
        resize(&out, 600, 400)
    };
    let auto = common::psnr(
        &run(&large, StrokeScale::Auto),
        &run(&small, StrokeScale::Auto),
    );
    let fixed = common::psnr(
        &run(&large, StrokeScale::Fixed(1.0)),
        &run(&small, StrokeScale::Fixed(1.0)),
    );
    assert!(
        auto > fixed + 3.0,
        "auto {auto:.1} dB apart vs scale 1 {fixed:.1} dB"
    );
}
