//! `atelier eval`: distances that behave as their names say, and the command as a user runs it.

mod common;

use atelier::eval::{Evaluator, SecondOpinion};
use atelier::train::vgg::Vgg16;
use candle_core::Device;
use image::RgbImage;
use std::process::Command;

fn stripes(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        if (x / 3 + y / 5) % 2 == 0 {
            image::Rgb([230, 40, 20])
        } else {
            image::Rgb([20, 30, 200])
        }
    })
}

#[test]
fn distances_measure_closeness_to_the_painting_and_to_the_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let vgg = Vgg16::load(&common::tiny_vgg(tmp.path()), &Device::Cpu).unwrap();
    let painting = stripes(64, 48);
    let ev = Evaluator::new(vgg, &painting, &Device::Cpu).unwrap();
    let photo = common::photo(48, 40);

    // The photo itself keeps everything and is far from the painting.
    let (style_photo, tex_photo, content_photo) = ev.score(&photo, &photo).unwrap();
    assert_eq!(content_photo, 0.0);
    // A "result" made of the painting's own texture is much closer to it, and far from the photo.
    let painted = stripes(48, 40);
    let (style_p, tex_p, content_p) = ev.score(&photo, &painted).unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&style_p) < 0.2 * mean(&style_photo),
        "{style_p:?} vs {style_photo:?}"
    );
    assert!(
        mean(&tex_p) < 0.2 * mean(&tex_photo),
        "{tex_p:?} vs {tex_photo:?}"
    );
    assert!(content_p > 0.1, "{content_p}");
    // Halfway between the two is in between on both.
    let half = RgbImage::from_fn(48, 40, |x, y| {
        let (a, b) = (photo.get_pixel(x, y).0, painted.get_pixel(x, y).0);
        image::Rgb([0, 1, 2].map(|c| ((a[c] as u16 + b[c] as u16) / 2) as u8))
    });
    let (style_h, _, content_h) = ev.score(&photo, &half).unwrap();
    assert!(mean(&style_h) < mean(&style_photo) && mean(&style_h) > mean(&style_p));
    assert!(content_h > 0.0 && content_h < content_p);
    // Mismatched sizes are an error, not a silent crop.
    assert!(ev.score(&photo, &stripes(10, 10)).is_err());
}

#[test]
fn the_second_opinion_ranks_results_like_the_first() {
    let photo = image::imageops::resize(
        &image::open("assets/examples/chelsea.png")
            .unwrap()
            .to_rgb8(),
        96,
        80,
        image::imageops::FilterType::Triangle,
    );
    let painting = stripes(96, 80);
    let judge = SecondOpinion::bundled(&painting).unwrap();
    let blend = |t: f32| {
        RgbImage::from_fn(96, 80, |x, y| {
            let (a, b) = (photo.get_pixel(x, y).0, painting.get_pixel(x, y).0);
            image::Rgb([0, 1, 2].map(|c| (a[c] as f32 * (1.0 - t) + b[c] as f32 * t) as u8))
        })
    };
    let itself = judge.score(&photo, &photo).unwrap();
    assert_eq!(itself.content, 0.0);
    assert!(itself.photo_to_painting > 0.0);
    assert_eq!(itself.result_to_painting, itself.photo_to_painting);
    // Further towards the painting: closer to its style vector and further from the photo.
    let (near, nearer) = (
        judge.score(&photo, &blend(0.5)).unwrap(),
        judge.score(&photo, &blend(0.9)).unwrap(),
    );
    assert!(
        near.result_to_painting < 0.8 * itself.photo_to_painting,
        "{near:?} {itself:?}"
    );
    assert!(
        nearer.result_to_painting < near.result_to_painting,
        "{nearer:?} {near:?}"
    );
    assert!(
        near.content > 0.01 && nearer.content > near.content,
        "{near:?} {nearer:?}"
    );
    // The evaluator reports them as the photos = 1 and a distance for each model.
    let tmp = tempfile::tempdir().unwrap();
    let vgg = Vgg16::load(&common::tiny_vgg(tmp.path()), &Device::Cpu).unwrap();
    let ev = Evaluator::new(vgg, &painting, &Device::Cpu)
        .unwrap()
        .with_second_opinion(judge);
    let base = ev.evaluate(std::slice::from_ref(&photo), None).unwrap();
    assert_eq!(base.style_vector_distance, Some(1.0));
    assert_eq!(base.mobile_content_distance, Some(0.0));
    let mut restyle = |_: &RgbImage| Ok(blend(0.9));
    let s = ev.evaluate(std::slice::from_ref(&photo), Some(&mut restyle)).unwrap();
    let v = s.style_vector_distance.unwrap();
    assert!(v > 0.0 && v < 0.5, "{v}");
}

#[test]
fn the_command_reports_the_photos_and_each_model() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for i in 0..3u32 {
        common::photo(40 + 4 * i, 36)
            .save(photos.join(format!("p{i}.png")))
            .unwrap();
    }
    let painting = tmp.path().join("painting.png");
    stripes(80, 60).save(&painting).unwrap();
    let model = common::model_file(tmp.path(), atelier::model::Variant::Johnson, "random");
    let out = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .env("ATELIER_DATA_DIR", tmp.path().join("data"))
        .args(["eval", "--json", "--device", "cpu", "--photos"])
        .arg(&photos)
        .arg("--painting")
        .arg(&painting)
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2, "the photos themselves, then the model");
    assert!(rows[0]["model"].is_null());
    assert_eq!(rows[0]["content_distance"], 0.0);
    assert_eq!(rows[1]["photos"], 3);
    for k in [
        "style_distance",
        "texture_distance",
        "content_distance",
        "style_vector_distance",
        "mobile_content_distance",
    ] {
        let v = rows[1][k].as_f64().unwrap();
        assert!(v.is_finite() && v > 0.0, "{k} = {v}");
    }
    // Without a painting to compare with, a clear message.
    let out = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .env("ATELIER_DATA_DIR", tmp.path().join("data"))
        .args(["eval", "--device", "cpu", "--photos"])
        .arg(&photos)
        .arg(&model)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--painting"));
}
