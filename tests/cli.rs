//! The `atelier` command line, run as a user runs it.

mod common;

use atelier::model::Variant;
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

/// Writes a fast-style-transfer export (manifest.json + raw little-endian f32 files)
/// with small random weights, as the reference project's exporter lays it out.
fn write_fst_folder(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    // Each layer: weight, then its instance norm's shift and scale. Conv-transposes
    // are [kh, kw, out, in]; every norm has `out` channels.
    let mut layers: Vec<(Vec<usize>, usize)> = vec![
        (vec![9, 9, 3, 32], 32),
        (vec![3, 3, 32, 64], 64),
        (vec![3, 3, 64, 128], 128),
    ];
    layers.extend((0..10).map(|_| (vec![3, 3, 128, 128], 128)));
    layers.extend([
        (vec![3, 3, 64, 128], 64),
        (vec![3, 3, 32, 64], 32),
        (vec![9, 9, 32, 3], 3),
    ]);
    let shapes: Vec<Vec<usize>> = layers
        .into_iter()
        .flat_map(|(w, c)| [w, vec![c], vec![c]])
        .collect();
    let mut manifest = serde_json::Map::new();
    let mut seed = 12345u64;
    for (i, shape) in shapes.iter().enumerate() {
        let name = if i == 0 {
            "Variable".to_string()
        } else {
            format!("Variable_{i}")
        };
        let n: usize = shape.iter().product();
        let bytes: Vec<u8> = (0..n)
            .flat_map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2;
                v.to_le_bytes()
            })
            .collect();
        std::fs::write(dir.join(&name), bytes).unwrap();
        manifest.insert(
            name.clone(),
            serde_json::json!({"filename": name, "shape": shape}),
        );
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::Value::Object(manifest).to_string(),
    )
    .unwrap();
}

#[test]
fn import_list_and_stylize_a_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let fst = d.join("udnie-test");
    write_fst_folder(&fst);
    let o = atelier(d)
        .args(["import"])
        .arg(&fst)
        .args(["--name", "Udnie Test"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let model = d.join("styles/udnie_test.safetensors");
    assert!(model.is_file());
    let loaded = atelier::model::StyleModel::load(&model).unwrap();
    assert_eq!(loaded.meta.variant, Variant::Fst);
    assert!(loaded.thumbnail_png.is_some(), "import renders a thumbnail");

    let o = atelier(d).args(["models", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["name"], "Udnie Test");
    assert_eq!(list[0]["variant"], "fst");

    // A batch with one corrupt file: the others are still written, the exit is non-zero.
    let photos = d.join("photos");
    std::fs::create_dir(&photos).unwrap();
    common::photo(61, 47).save(photos.join("a.png")).unwrap();
    common::photo(30, 20).save(photos.join("b.jpg")).unwrap();
    std::fs::write(photos.join("broken.png"), b"\x89PNG\r\n\x1a\nnope").unwrap();
    let out_dir = d.join("out");
    let o = atelier(d)
        .args([
            "stylize",
            "--style",
            "udnie test",
            "--device",
            "cpu",
            "--out-dir",
        ])
        .arg(&out_dir)
        .args([
            photos.join("a.png"),
            photos.join("broken.png"),
            photos.join("b.jpg"),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("broken.png"), "{}", text(&o));
    let a = image::open(out_dir.join("a_udnie_test.png")).unwrap();
    assert_eq!((a.width(), a.height()), (61, 47));
    assert!(out_dir.join("b_udnie_test.png").is_file());
    assert!(!out_dir.join("broken_udnie_test.png").exists());

    // Existing outputs are kept unless --overwrite.
    let before = std::fs::read(out_dir.join("a_udnie_test.png")).unwrap();
    let restyle = |overwrite: bool| {
        let mut c = atelier(d);
        c.args(["stylize", "--style", "udnie test", "--strength", "0.5"]);
        if overwrite {
            c.arg("--overwrite");
        }
        c.arg("-o")
            .arg(out_dir.join("a_udnie_test.png"))
            .arg(photos.join("a.png"));
        c.output().unwrap()
    };
    let o = restyle(false);
    assert!(!o.status.success());
    assert!(text(&o).contains("--overwrite"), "{}", text(&o));
    assert_eq!(
        std::fs::read(out_dir.join("a_udnie_test.png")).unwrap(),
        before
    );
    let o = restyle(true);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(
        std::fs::read(out_dir.join("a_udnie_test.png")).unwrap(),
        before
    );
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn never_writes_over_the_input_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = common::model_file(d, Variant::Johnson, "rnd");
    let photo = d.join("p.png");
    common::photo(20, 20).save(&photo).unwrap();
    let before = std::fs::read(&photo).unwrap();
    let o = atelier(d)
        .args(["stylize", "--style"])
        .arg(&model)
        .arg(&photo)
        .arg("-o")
        .arg(&photo)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("replace the input"), "{}", text(&o));
    assert_eq!(std::fs::read(&photo).unwrap(), before);
}

#[test]
fn argument_mistakes_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let photo = d.join("p.png");
    common::photo(8, 8).save(&photo).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "stylize".into(),
                "--style".into(),
                "no-such-style".into(),
                photo.display().to_string(),
            ],
            "no style named 'no-such-style'",
        ),
        (
            vec![
                "stylize".into(),
                "--style".into(),
                "x".into(),
                "--strength".into(),
                "2".into(),
                photo.display().to_string(),
            ],
            "between 0 and 1",
        ),
        (
            vec![
                "stylize".into(),
                "--style".into(),
                "x".into(),
                "--device".into(),
                "tpu".into(),
                photo.display().to_string(),
            ],
            "unknown device",
        ),
        (
            vec![
                "stylize".into(),
                "--style".into(),
                "x".into(),
                "-o".into(),
                "o.png".into(),
                "a.png".into(),
                "b.png".into(),
            ],
            "one input image",
        ),
        (
            vec!["import".into(), d.join("nothing.pth").display().to_string()],
            "no such file",
        ),
    ];
    for (args, expect) in cases {
        let o = atelier(d).args(&args).output().unwrap();
        assert!(!o.status.success(), "{args:?} should fail");
        let t = text(&o);
        assert!(t.contains(expect), "{args:?}: {t}");
        assert!(
            !t.contains("panicked") && !t.contains("stack backtrace"),
            "{t}"
        );
    }
}

#[test]
fn bench_prints_json_with_reference_key_names() {
    let tmp = tempfile::tempdir().unwrap();
    let o = atelier(tmp.path())
        .args([
            "bench", "--device", "cpu", "--sizes", "32,48x40", "--runs", "1", "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert!(v["infer_ms_32x32"].as_f64().unwrap() > 0.0);
    assert!(v["infer_ms_48x40"].as_f64().unwrap() > 0.0);
    assert!(v["device"].as_str().unwrap().starts_with("cpu"));
}
