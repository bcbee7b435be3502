//! Instant styles: Magenta's arbitrary-style networks on candle.
//!
//! The conformance tests read `$ATELIER_REFERENCE_DIR/../models/magenta-arbitrary` (the ONNX
//! files and onnxruntime's float results; `.ci/run` sets the variable). The others use the
//! network bundled in `models/instant/`.

mod common;

use atelier::model::magenta_import;
use atelier::stylize::instant::{mix, InstantStylizer};
use atelier::stylize::Hooks;
use candle_core::Device;
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::process::Command;

fn magenta_dir() -> PathBuf {
    let reference = std::env::var_os("ATELIER_REFERENCE_DIR")
        .map(PathBuf::from)
        .expect("set ATELIER_REFERENCE_DIR to ../shared/reference");
    let dir = reference.join("../models/magenta-arbitrary");
    assert!(dir.is_dir(), "{} is not a folder", dir.display());
    dir
}

fn load_png(p: &Path) -> RgbImage {
    image::open(p).unwrap().to_rgb8()
}

fn expected_vector(dir: &Path, style: &str) -> Vec<f32> {
    let text =
        std::fs::read_to_string(dir.join(format!("expected/style_vector_{style}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn bundled() -> InstantStylizer {
    InstantStylizer::bundled(&Device::Cpu).expect("the bundled instant-style network loads")
}

fn atelier() -> Command {
    Command::new(env!("CARGO_BIN_EXE_atelier"))
}

/// Checks a network against onnxruntime's float results: the style vectors of both paintings
/// and the transformer's output on chicago under each.
fn assert_conforms(net: &InstantStylizer, dir: &Path, min_psnr: f64) {
    let e = dir.join("expected");
    let content = load_png(&e.join("chicago_712x472.png"));
    for style in ["wave", "udnie"] {
        let v = net
            .style_vector_exact(&load_png(&e.join(format!("style_{style}_256.png"))))
            .unwrap();
        let want = expected_vector(dir, style);
        let worst = v
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let scale = want.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-3 * scale.max(1.0),
            "{style}: style vector off by up to {worst}"
        );
        let out = net
            .stylize(&content, &want, 1.0, &mut Hooks::default())
            .unwrap();
        let expected = load_png(&e.join(format!("expected_chicago_{style}.png")));
        let p = common::psnr(&out, &expected);
        assert!(p >= min_psnr, "{style}: {p:.1} dB against onnxruntime");
        eprintln!("{style}: vector within {worst:.2e}, image {p:.1} dB");
    }
}

#[test]
#[ignore = "needs ../shared (ATELIER_REFERENCE_DIR)"]
fn the_onnx_import_reproduces_onnxruntime() {
    let dir = magenta_dir();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("arbitrary.safetensors");
    let st = atelier()
        .arg("import-arbitrary")
        .arg("--predictor")
        .arg(dir.join("arbitrary_predict.onnx"))
        .arg("--transformer")
        .arg(dir.join("arbitrary_transform.onnx"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let net = InstantStylizer::load(&out, &Device::Cpu).unwrap();
    assert_conforms(&net, &dir, 40.0);
}

#[test]
#[ignore = "needs ../shared (ATELIER_REFERENCE_DIR)"]
fn the_bundled_network_reproduces_onnxruntime() {
    assert_conforms(&bundled(), &magenta_dir(), 40.0);
}

#[test]
#[ignore = "needs ../shared (ATELIER_REFERENCE_DIR)"]
fn a_style_file_given_as_the_predictor_is_refused() {
    let dir = magenta_dir();
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.onnx");
    std::fs::write(&junk, b"\x08\x07\x12\x04nope").unwrap();
    let err = magenta_import::params_from_onnx(&dir.join("arbitrary_transform.onnx"), &junk)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("not Magenta's arbitrary-style") || err.contains("ONNX"),
        "{err}"
    );
}

#[test]
fn any_photo_size_comes_back_at_its_own_size() {
    let net = bundled();
    let painting = common::photo(300, 200);
    let v = net.style_vector(&painting).unwrap();
    for (w, h) in [(37, 23), (101, 67), (5, 3), (64, 64)] {
        let out = net
            .stylize(&common::photo(w, h), &v, 1.0, &mut Hooks::default())
            .unwrap();
        assert_eq!(out.dimensions(), (w, h));
    }
}

#[test]
fn strength_moves_from_the_photo_towards_the_painting() {
    let net = bundled();
    // A painting unlike the photo: hard black-and-yellow stripes.
    let painting = RgbImage::from_fn(256, 256, |x, y| {
        if (x / 16 + y / 16) % 2 == 0 {
            image::Rgb([250, 210, 20])
        } else {
            image::Rgb([10, 10, 40])
        }
    });
    let v = net.style_vector(&painting).unwrap();
    let photo = common::photo(96, 72);
    let distance = |strength: f32| {
        let out = net
            .stylize(&photo, &v, strength, &mut Hooks::default())
            .unwrap();
        common::psnr(&out, &photo)
    };
    let (weak, strong) = (distance(0.0), distance(1.0));
    assert!(
        weak > strong + 1.0,
        "strength 0 should stay closer to the photo: {weak:.1} dB vs {strong:.1} dB at 1"
    );
}

#[test]
fn different_paintings_give_different_vectors_and_mixing_lies_between() {
    let net = bundled();
    let a = net.style_vector(&common::photo(200, 300)).unwrap();
    let stripes = RgbImage::from_fn(128, 128, |x, _| image::Rgb([(x * 2) as u8, 0, 255]));
    let b = net.style_vector(&stripes).unwrap();
    let d = |x: &[f32], y: &[f32]| -> f32 {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).powi(2))
            .sum::<f32>()
            .sqrt()
    };
    assert!(
        d(&a, &b) > 1.0,
        "two unlike paintings gave near-equal vectors"
    );
    let m = mix(&[(a.clone(), 1.0), (b.clone(), 1.0)]).unwrap();
    assert!((d(&a, &m) - d(&m, &b)).abs() < 1e-3 * d(&a, &b));
}

#[test]
fn the_command_line_takes_any_painting_and_mixes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let photo = tmp.path().join("photo.png");
    common::photo(90, 61).save(&photo).unwrap();
    let a = tmp.path().join("stripes.png");
    RgbImage::from_fn(300, 180, |x, _| image::Rgb([(x % 256) as u8, 40, 200]))
        .save(&a)
        .unwrap();
    let b = tmp.path().join("dots.png");
    common::photo(120, 160).save(&b).unwrap();

    let out = atelier()
        .arg("stylize")
        .arg(&photo)
        .arg("--style-image")
        .arg(&a)
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let single = load_png(&tmp.path().join("photo_stripes.png"));
    assert_eq!(single.dimensions(), (90, 61));

    let mixed_path = tmp.path().join("mixed.jpg");
    let out = atelier()
        .arg("stylize")
        .arg(&photo)
        .arg("--style-image")
        .arg(format!("{}:3", a.display()))
        .arg("--style-image")
        .arg(format!("{}:1", b.display()))
        .args(["--device", "cpu", "-o"])
        .arg(&mixed_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mixed = load_png(&mixed_path);
    assert_eq!(mixed.dimensions(), (90, 61));
    assert!(
        common::psnr(&mixed, &single) < 60.0,
        "mixing changed nothing"
    );

    let out = atelier()
        .arg("style-vector")
        .arg(&a)
        .args(["--json", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<f32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), 100);

    // --style and --style-image name two different styles.
    let out = atelier()
        .arg("stylize")
        .arg(&photo)
        .args(["--style", "wave", "--style-image"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = atelier()
        .arg("stylize")
        .arg(&photo)
        .arg("--style-image")
        .arg(format!("{}:-1", a.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("positive"));
}

#[test]
fn a_style_model_is_not_taken_for_the_instant_network() {
    let tmp = tempfile::tempdir().unwrap();
    let style = common::model_file(tmp.path(), atelier::model::Variant::Johnson, "x");
    let err = InstantStylizer::load(&style, &Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("not the arbitrary-style network"), "{err}");
}

#[test]
fn a_painting_imported_as_a_style_restyles_like_the_painting_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let photo = tmp.path().join("photo.png");
    common::photo(70, 50).save(&photo).unwrap();
    let painting = tmp.path().join("stripes.png");
    RgbImage::from_fn(200, 120, |x, y| {
        image::Rgb([(x % 256) as u8, (y * 2 % 256) as u8, 60])
    })
    .save(&painting)
    .unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = atelier()
            .env("ATELIER_DATA_DIR", &data)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[
        "import".as_ref(),
        painting.as_os_str(),
        "--name".as_ref(),
        "My Stripes".as_ref(),
    ]);
    let listed = run(&["models".as_ref()]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("My Stripes") && l.contains("instant")),
        "{listed}"
    );
    let by_name = tmp.path().join("by_name.png");
    let by_image = tmp.path().join("by_image.png");
    let cpu: [&std::ffi::OsStr; 2] = ["--device".as_ref(), "cpu".as_ref()];
    run(&[
        &[
            "stylize".as_ref(),
            photo.as_os_str(),
            "--style".as_ref(),
            "My Stripes".as_ref(),
            "-o".as_ref(),
            by_name.as_os_str(),
        ][..],
        &cpu,
    ]
    .concat());
    run(&[
        &[
            "stylize".as_ref(),
            photo.as_os_str(),
            "--style-image".as_ref(),
            painting.as_os_str(),
            "-o".as_ref(),
            by_image.as_os_str(),
        ][..],
        &cpu,
    ]
    .concat());
    assert_eq!(load_png(&by_name), load_png(&by_image));
}

#[test]
fn a_large_photo_is_tiled_without_seams() {
    use atelier::stylize::{Stylizer, Tiling};
    let tmp = tempfile::tempdir().unwrap();
    let painting = tmp.path().join("p.png");
    RgbImage::from_fn(160, 120, |x, y| {
        image::Rgb([(x * 3 % 256) as u8, (y * 5 % 256) as u8, 200])
    })
    .save(&painting)
    .unwrap();
    let model = atelier::stylize::instant::style_from_painting(&painting, "p").unwrap();
    let stylizer = Stylizer::new(&model, &Device::Cpu).unwrap();
    let photo = common::photo(420, 301);
    let whole = stylizer
        .stylize_raw(&photo, Tiling::Off, &mut Hooks::default())
        .unwrap();
    let mut reports = 0;
    let mut progress = |_: usize, _: usize| reports += 1;
    let mut hooks = Hooks {
        progress: Some(&mut progress),
        ..Default::default()
    };
    let tiled = stylizer
        .stylize_raw(&photo, Tiling::Core(128), &mut hooks)
        .unwrap();
    assert!(
        reports > 4,
        "the tiled pass reported progress {reports} times"
    );
    let p = common::psnr(&whole, &tiled);
    assert!(p >= 40.0, "tiled vs whole: {p:.1} dB");
}

#[test]
fn masks_and_stroke_scale_work_for_instant_styles() {
    let tmp = tempfile::tempdir().unwrap();
    let photo_path = tmp.path().join("photo.png");
    let photo = common::photo(96, 64);
    photo.save(&photo_path).unwrap();
    let painting = tmp.path().join("stripes.png");
    RgbImage::from_fn(200, 120, |x, _| image::Rgb([(x % 256) as u8, 30, 220]))
        .save(&painting)
        .unwrap();
    // Black on the left half: the photo stays there.
    let mask = tmp.path().join("mask.png");
    image::GrayImage::from_fn(96, 64, |x, _| image::Luma([if x < 48 { 0 } else { 255 }]))
        .save(&mask)
        .unwrap();
    let out_path = tmp.path().join("out.png");
    let out = atelier()
        .arg("stylize")
        .arg(&photo_path)
        .arg("--style-image")
        .arg(&painting)
        .arg("--mask")
        .arg(&mask)
        .args(["--stroke-scale", "2", "--device", "cpu", "-o"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let styled = load_png(&out_path);
    assert_eq!(styled.dimensions(), (96, 64));
    for y in 0..64 {
        for x in 0..44 {
            assert_eq!(styled.get_pixel(x, y), photo.get_pixel(x, y), "({x}, {y})");
        }
    }
    let right_changed = (52..96)
        .flat_map(|x| (0..64).map(move |y| (x, y)))
        .filter(|&(x, y)| styled.get_pixel(x, y) != photo.get_pixel(x, y))
        .count();
    assert!(
        right_changed > 44 * 64 / 2,
        "the unmasked half kept the photo"
    );
}

#[test]
fn half_precision_keeps_the_predictor_in_f32_and_follows_the_f32_pass() {
    use atelier::model::Variant;
    use atelier::nn::instant::shared_network;
    use atelier::nn::Precision;
    use candle_core::{DType, Tensor};
    // f16 runs only where cuDNN's half kernels exist; elsewhere the request is refused
    // with a message instead of a slow or wrong pass.
    assert!(!Precision::F16.supported(Variant::Instant, &Device::Cpu));
    let err = InstantStylizer::bundled_with(&Device::Cpu, Precision::F16)
        .err()
        .expect("f16 on the CPU is refused");
    assert!(err.to_string().contains("f16"), "{err}");

    // The conversion itself (what the CUDA path runs): convs in f16, the predictor and the
    // style projections in f32, norms' scales in the pass's dtype.
    let f32_net = shared_network(&Device::Cpu, DType::F32).unwrap();
    let half = shared_network(&Device::Cpu, DType::F16).unwrap();
    assert_eq!(f32_net.transformer.dtype(), DType::F32);
    assert_eq!(half.transformer.dtype(), DType::F16);
    let photo = common::photo(64, 48);
    let painting = common::photo(256, 256);
    let net = bundled();
    let v = net.style_vector(&painting).unwrap();
    let style = Tensor::from_slice(&v, (1, v.len()), &Device::Cpu).unwrap();
    let norms = half.transformer.norms_for(&style).unwrap();
    assert!(norms.iter().all(|n| n.weight.dtype() == DType::F16));
    // Same predictor weights: the vector of a painting does not depend on the precision.
    let again = InstantStylizer::bundled(&Device::Cpu).unwrap();
    assert_eq!(again.style_vector(&painting).unwrap(), v);

    // The f16 pass (on the CPU, through the same layers) stays close to the f32 one.
    let x = (Tensor::from_vec(
        photo.as_raw().iter().map(|&b| b as f32).collect::<Vec<_>>(),
        (1, 48, 64, 3),
        &Device::Cpu,
    )
    .unwrap()
    .permute((0, 3, 1, 2))
    .unwrap()
    .contiguous()
    .unwrap()
        / 255.0)
        .unwrap();
    let want = f32_net.transformer.forward(&x, &style).unwrap();
    let got = half
        .transformer
        .forward(&x.to_dtype(DType::F16).unwrap(), &style)
        .unwrap();
    assert_eq!(got.dtype(), DType::F32, "the output comes back in f32");
    let mse = (want - got)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    let psnr = 10.0 * (1.0 / mse.max(1e-20)).log10();
    assert!(psnr >= 35.0, "f16 pass {psnr:.1} dB from the f32 one");
}
