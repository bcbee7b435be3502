//! Bad input gets one clear message naming the file and the problem, never a panic.

mod common;

use atelier::image_io::load_rgb;
use atelier::model::{StyleModel, Variant};
use candle_core::{Device, Tensor};
use std::path::Path;

fn err_of<T: std::fmt::Debug>(r: atelier::Result<T>) -> String {
    r.unwrap_err().to_string()
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    atelier::image_io::encode_png(&common::photo(w, h)).unwrap()
}

#[test]
fn unreadable_images_are_reported_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.png", vec![], "file is empty"),
        ("notes.png", b"hello, this is text".to_vec(), "not an image"),
        (
            "truncated.png",
            png_bytes(64, 64)[..200].to_vec(),
            "corrupt or truncated",
        ),
    ];
    for (name, bytes, expect) in cases {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let msg = err_of(load_rgb(&p));
        assert!(msg.contains(name) && msg.contains(expect), "{name}: {msg}");
    }
    let msg = err_of(load_rgb(&d.join("missing.jpg")));
    assert!(
        msg.contains("missing.jpg") && msg.contains("cannot open"),
        "{msg}"
    );
}

/// Recomputes the IHDR chunk's CRC so the edited header reaches the size checks.
fn fix_ihdr_crc(png: &mut [u8]) {
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
}

/// A PNG whose header claims a huge image: the decoder limit must refuse it before
/// allocating anything.
#[test]
fn decompression_bombs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = png_bytes(16, 16);
    // IHDR starts at byte 16: width and height are big-endian u32s.
    bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    fix_ihdr_crc(&mut bytes);
    let p = dir.path().join("bomb.png");
    std::fs::write(&p, &bytes).unwrap();
    let msg = err_of(load_rgb(&p));
    assert!(
        msg.contains("bomb.png") && msg.contains("larger than"),
        "{msg}"
    );
}

#[test]
fn zero_sized_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = png_bytes(16, 16);
    bytes[16..20].copy_from_slice(&0u32.to_be_bytes());
    fix_ihdr_crc(&mut bytes);
    let p = dir.path().join("zero.png");
    std::fs::write(&p, &bytes).unwrap();
    let msg = err_of(load_rgb(&p));
    assert!(msg.contains("zero.png"), "{msg}");
}

/// EXIF orientation 6 (rotate 90° clockwise): a 40×20 JPEG is shown 20×40.
#[test]
fn exif_orientation_is_honoured() {
    use image::ImageEncoder;
    let img = common::photo(40, 20);
    let mut jpeg = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
    // Little-endian TIFF with one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
    let exif: Vec<u8> = [
        &b"II*\0"[..],
        &8u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &0x0112u16.to_le_bytes(),
        &3u16.to_le_bytes(),
        &1u32.to_le_bytes(),
        &6u16.to_le_bytes(),
        &[0, 0],
        &0u32.to_le_bytes(),
    ]
    .concat();
    enc.set_exif_metadata(exif).unwrap();
    enc.write_image(img.as_raw(), 40, 20, image::ExtendedColorType::Rgb8)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rotated.jpg");
    std::fs::write(&p, jpeg).unwrap();
    assert_eq!(load_rgb(&p).unwrap().dimensions(), (20, 40));
}

fn save_params(
    dir: &Path,
    name: &str,
    variant: Variant,
    edit: impl FnOnce(&mut std::collections::HashMap<String, Tensor>),
) -> std::path::PathBuf {
    let m = common::model(variant);
    let mut params = m.params.clone();
    edit(&mut params);
    // Bypass validation to write a broken file, as a buggy tool might.
    let path = dir.join(name);
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("atelier.format_version".to_string(), "1".to_string());
    metadata.insert(
        "atelier.meta".to_string(),
        serde_json::to_string(&m.meta).unwrap(),
    );
    let bytes = safetensors::serialize(params.iter(), Some(metadata)).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn broken_model_files_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let wrong_shape = save_params(d, "shape.safetensors", Variant::Johnson, |p| {
        p.insert(
            "res3.conv1.conv2d.weight".into(),
            Tensor::zeros((128, 64, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let msg = err_of(StyleModel::load(&wrong_shape));
    assert!(
        msg.contains("shape.safetensors")
            && msg.contains("res3.conv1.conv2d.weight")
            && msg.contains("[128, 128, 3, 3]"),
        "{msg}"
    );

    let missing = save_params(d, "missing.safetensors", Variant::Fst, |p| {
        p.remove("in6.bias");
    });
    let msg = err_of(StyleModel::load(&missing));
    assert!(msg.contains("missing tensor 'in6.bias'"), "{msg}");

    let nan = save_params(d, "nan.safetensors", Variant::Johnson, |p| {
        let t = p["in2.weight"].clone();
        let mut v = t.to_vec1::<f32>().unwrap();
        v[3] = f32::NAN;
        p.insert("in2.weight".into(), Tensor::new(v, &Device::Cpu).unwrap());
    });
    let msg = err_of(StyleModel::load(&nan));
    assert!(msg.contains("in2.weight") && msg.contains("NaN"), "{msg}");

    let extra = save_params(d, "extra.safetensors", Variant::Johnson, |p| {
        p.insert(
            "classifier.weight".into(),
            Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(err_of(StyleModel::load(&extra)).contains("unexpected tensor 'classifier.weight'"));

    let good = common::model_file(d, Variant::Johnson, "good");
    let bytes = std::fs::read(&good).unwrap();
    let truncated = d.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let msg = err_of(StyleModel::load(&truncated));
    assert!(
        msg.contains("truncated.safetensors") && msg.contains("not a valid safetensors"),
        "{msg}"
    );

    let garbage = d.join("garbage.safetensors");
    std::fs::write(&garbage, b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk").unwrap();
    assert!(err_of(StyleModel::load(&garbage)).contains("garbage.safetensors"));

    let plain = d.join("plain.safetensors");
    let t = Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    std::fs::write(&plain, safetensors::serialize([("x", &t)], None).unwrap()).unwrap();
    assert!(err_of(StyleModel::load(&plain)).contains("not a native style model"));

    assert!(err_of(StyleModel::load(&d.join("nope.safetensors"))).contains("nope.safetensors"));
}

#[test]
fn bad_checkpoints_fail_to_import_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pth = d.join("random.pth");
    std::fs::write(&pth, b"PK\x03\x04 definitely not a torch zip").unwrap();
    let msg = err_of(atelier::model::import::import(&pth, "x"));
    assert!(
        msg.contains("random.pth") && msg.contains("PyTorch"),
        "{msg}"
    );

    let folder = d.join("fst");
    std::fs::create_dir(&folder).unwrap();
    assert!(err_of(atelier::model::import::import(&folder, "x")).contains("manifest.json"));
    std::fs::write(
        folder.join("manifest.json"),
        r#"{"Variable": {"filename": "../../etc/passwd", "shape": [1]}}"#,
    )
    .unwrap();
    assert!(err_of(atelier::model::import::import(&folder, "x")).contains("variables"));

    let t7 = d.join("old.t7");
    std::fs::write(&t7, b"x").unwrap();
    assert!(err_of(atelier::model::import::import(&t7, "x")).contains(".t7"));
}

/// Under an address-space limit (`ulimit -v`) a photo whose whole-image pass would not fit is
/// stylised in tiles instead of aborting the process in the middle of candle (issue 13,
/// item 6); a pass that cannot fit even in tiles is a clear error, never a signal.
#[cfg(unix)]
#[test]
fn a_memory_limit_is_met_by_tiling_not_an_abort() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let photo = tmp.path().join("big.png");
    common::photo(1200, 1200).save(&photo).unwrap();
    let model = common::model_file(tmp.path(), Variant::Johnson, "style");
    let run = |limit_kb: u32, extra: &str| {
        let out = tmp.path().join(format!("out-{limit_kb}{extra}.png"));
        let cmd = format!(
            "ulimit -v {limit_kb} && exec \"$0\" stylize \"$1\" --style \"$2\" -o \"$3\" --device cpu {extra}"
        );
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .arg(env!("CARGO_BIN_EXE_atelier"))
            .arg(&photo)
            .arg(&model)
            .arg(&out)
            .env("ATELIER_DATA_DIR", tmp.path().join("data"))
            .output()
            .unwrap();
        (o, out)
    };
    // 1.2 GB: the whole-image pass needs about 2 GB of address space, tiles fit.
    let (o, out) = run(1_200_000, "");
    assert_eq!(o.status.signal(), None, "{o:?}");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(load_rgb(&out).unwrap().dimensions(), (1200, 1200));
    // The same limit with tiling switched off: an error that says so, not an abort.
    let (o, _) = run(1_200_000, "--tile 0");
    assert_eq!(o.status.signal(), None, "{o:?}");
    assert!(!o.status.success());
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(msg.contains("not enough memory"), "{msg}");
}
