//! The style engine through its library API, with random-weight networks.

mod common;

use atelier::model::{StyleModel, Variant};
use atelier::stylize::{Hooks, StylizeOptions, Stylizer, Tiling};
use candle_core::Device;
use common::{photo, psnr};
use std::sync::atomic::AtomicBool;

fn stylizer(variant: Variant) -> Stylizer {
    Stylizer::new(&common::model(variant), &Device::Cpu).unwrap()
}

#[test]
fn output_size_equals_input_size_for_odd_and_tiny_images() {
    for variant in [Variant::Johnson, Variant::Fst] {
        let s = stylizer(variant);
        for (w, h) in [(1, 1), (2, 3), (4, 4), (5, 7), (17, 9), (33, 64), (101, 3)] {
            let out = s
                .stylize_raw(&photo(w, h), Tiling::Off, &mut Hooks::default())
                .unwrap();
            assert_eq!(out.dimensions(), (w, h), "{variant} at {w}x{h}");
        }
    }
}

#[test]
fn tiled_output_matches_untiled_output() {
    for variant in [Variant::Johnson, Variant::Fst] {
        let s = stylizer(variant);
        for (w, h) in [(150, 97), (131, 130)] {
            let img = photo(w, h);
            let whole = s
                .stylize_raw(&img, Tiling::Off, &mut Hooks::default())
                .unwrap();
            let mut tiles_seen = 0;
            let mut on_tile = |_: u32, _: u32, _: &image::RgbImage| tiles_seen += 1;
            let mut hooks = Hooks {
                tile_done: Some(&mut on_tile),
                ..Default::default()
            };
            let tiled = s.stylize_raw(&img, Tiling::Core(48), &mut hooks).unwrap();
            assert!(tiles_seen >= 9, "expected several tiles, got {tiles_seen}");
            let p = psnr(&whole, &tiled);
            assert!(
                p >= 40.0,
                "{variant} {w}x{h}: tiled vs untiled PSNR {p:.1} dB"
            );
        }
    }
}

#[test]
fn strength_zero_returns_the_input_and_one_the_stylised_image() {
    let s = stylizer(Variant::Johnson);
    let img = photo(40, 30);
    let opts = |strength| StylizeOptions {
        strength,
        ..Default::default()
    };
    assert_eq!(
        s.stylize(&img, &opts(0.0), &mut Hooks::default()).unwrap(),
        img
    );
    let full = s.stylize(&img, &opts(1.0), &mut Hooks::default()).unwrap();
    let raw = s
        .stylize_raw(&img, Tiling::Auto, &mut Hooks::default())
        .unwrap();
    assert_eq!(full, raw);
    let half = s.stylize(&img, &opts(0.5), &mut Hooks::default()).unwrap();
    for ((h, a), b) in half.as_raw().iter().zip(img.as_raw()).zip(raw.as_raw()) {
        let expect = (*a as f32 + *b as f32) / 2.0;
        assert!((*h as f32 - expect).abs() <= 1.0);
    }
}

fn ycbcr(p: &[u8]) -> (f32, f32, f32) {
    let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    (
        y,
        -0.168736 * r - 0.331264 * g + 0.5 * b,
        0.5 * r - 0.418688 * g - 0.081312 * b,
    )
}

#[test]
fn preserve_colors_keeps_the_photos_chroma_and_takes_the_styles_luma() {
    let s = stylizer(Variant::Fst);
    let img = photo(48, 40);
    let raw = s
        .stylize_raw(&img, Tiling::Off, &mut Hooks::default())
        .unwrap();
    let opts = StylizeOptions {
        preserve_colors: true,
        ..Default::default()
    };
    let out = s.stylize(&img, &opts, &mut Hooks::default()).unwrap();
    let mut checked = 0;
    for ((o, p), r) in out
        .as_raw()
        .chunks(3)
        .zip(img.as_raw().chunks(3))
        .zip(raw.as_raw().chunks(3))
    {
        let (yo, cbo, cro) = ycbcr(o);
        let (_, cbp, crp) = ycbcr(p);
        let (yr, _, _) = ycbcr(r);
        // Where no channel clipped, chroma is the photo's and luma the stylised image's.
        if o.iter().all(|&v| v > 2 && v < 253) {
            assert!(
                (cbo - cbp).abs() < 1.5 && (cro - crp).abs() < 1.5,
                "chroma moved: {o:?} vs {p:?}"
            );
            assert!(
                (yo - yr).abs() < 1.5,
                "luma not from the style: {yo} vs {yr}"
            );
            checked += 1;
        }
    }
    assert!(
        checked > 100,
        "too few unclipped pixels to judge ({checked})"
    );
}

#[test]
fn cancellation_stops_a_run() {
    let s = stylizer(Variant::Johnson);
    let cancel = AtomicBool::new(true);
    let mut hooks = Hooks {
        cancel: Some(&cancel),
        ..Default::default()
    };
    let err = s
        .stylize_raw(&photo(64, 64), Tiling::Core(16), &mut hooks)
        .unwrap_err();
    assert!(matches!(err, atelier::Error::Cancelled));
}

#[test]
fn model_files_round_trip_in_f32_and_f16() {
    let dir = tempfile::tempdir().unwrap();
    let img = photo(37, 29);
    for variant in [Variant::Johnson, Variant::Fst] {
        let mut m = common::model(variant);
        m.meta.artist = Some("Test Artist".into());
        m.thumbnail_png = Some(atelier::image_io::encode_png(&photo(8, 8)).unwrap());
        let reference = Stylizer::new(&m, &Device::Cpu)
            .unwrap()
            .stylize_raw(&img, Tiling::Off, &mut Hooks::default())
            .unwrap();
        for half in [false, true] {
            let path = dir.path().join(format!("{variant}-{half}.safetensors"));
            m.save(&path, false, half).unwrap();
            let loaded = StyleModel::load(&path).unwrap();
            assert_eq!(loaded.meta, m.meta);
            assert_eq!(loaded.thumbnail_png, m.thumbnail_png);
            assert_eq!(atelier::model::format::read_meta(&path).unwrap(), m.meta);
            let out = Stylizer::new(&loaded, &Device::Cpu)
                .unwrap()
                .stylize_raw(&img, Tiling::Off, &mut Hooks::default())
                .unwrap();
            let p = common::psnr(&reference, &out);
            assert!(
                p >= if half { 40.0 } else { 99.0 },
                "{variant} half={half}: {p:.1} dB"
            );
        }
    }
}

/// Half precision exists only where it is implemented (CUDA with cuDNN); elsewhere the choice is
/// f32, and asking for f16 says why it cannot be had.
#[test]
fn half_precision_is_refused_where_it_is_not_implemented() {
    use atelier::nn::Precision;
    let model = common::model(Variant::Johnson);
    assert_eq!(
        Precision::auto(Variant::Johnson, &Device::Cpu),
        Precision::F32
    );
    assert!(!Precision::F16.supported(Variant::Fst, &Device::Cpu));
    let err = Stylizer::with_precision(&model, &Device::Cpu, Precision::F16)
        .err()
        .expect("f16 on the CPU must be refused")
        .to_string();
    assert!(err.contains("f16") && err.contains("cpu"), "{err}");
}

/// The bench's quality check: PSNR on known images, and a device compared with itself.
#[test]
fn bench_quality_check_measures_psnr() {
    use atelier::bench::{psnr, quality_against_cpu};
    use atelier::nn::Precision;
    let a = image::RgbImage::from_pixel(8, 8, image::Rgb([10, 10, 10]));
    let b = image::RgbImage::from_pixel(8, 8, image::Rgb([11, 11, 11]));
    assert!(psnr(&a, &a).is_infinite());
    assert!((psnr(&a, &b) - 48.13).abs() < 0.01, "{}", psnr(&a, &b));
    let model = common::model(Variant::Johnson);
    let q = quality_against_cpu(&model, &Device::Cpu, Precision::F32, &[photo(24, 16)]).unwrap();
    assert_eq!(q.photos, 1);
    assert!(q.min_psnr_db.is_infinite(), "{}", q.min_psnr_db);
}
