//! Training never loses an artist's work: bad photos, overflowing steps, two trainers on one
//! folder, changed settings on resume and name clashes are refused or survived with a clear
//! message, and no checkpoint ever holds NaN (issue 13).

mod common;

use atelier::device::DeviceChoice;
use atelier::train::{self, loss::Strength, run_dir::RunDir, TrainConfig, TrainEvent};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cfg: TrainConfig, resume: bool) -> Vec<TrainEvent> {
    let h = train::start(cfg, resume);
    let events: Vec<_> = h.events.iter().collect();
    h.join();
    events
}

fn failure(events: &[TrainEvent]) -> Option<String> {
    events.iter().find_map(|e| match e {
        TrainEvent::Failed { message } => Some(message.clone()),
        _ => None,
    })
}

/// A painting-like image: bold diagonal strokes in a few colours.
fn painting(path: &Path) {
    image::RgbImage::from_fn(96, 96, |x, y| {
        let band = ((x + 2 * y) / 7) % 3;
        let shade = ((x * 13 + y * 7) % 23) as u8;
        match band {
            0 => image::Rgb([220 - shade, 180, 40]),
            1 => image::Rgb([30, 60 + shade, 170]),
            _ => image::Rgb([240, 240 - shade, 220]),
        }
    })
    .save(path)
    .unwrap();
}

/// The example photos (real ones) plus the flat images that used to turn every weight into
/// NaN in one step: all black, 1×1 and 3×3.
fn photos_with_flat_ones(dir: &Path) -> PathBuf {
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/examples");
    for f in ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"] {
        // Downscaled: the test trains on 64² crops.
        let img = atelier::image_io::load_rgb(&examples.join(f)).unwrap();
        atelier::train::resize_longest(&img, 160)
            .save(photos.join(format!("{f}.png")))
            .unwrap();
    }
    image::RgbImage::new(256, 256)
        .save(photos.join("black.png"))
        .unwrap();
    image::RgbImage::from_pixel(1, 1, image::Rgb([120, 30, 200]))
        .save(photos.join("one.png"))
        .unwrap();
    image::RgbImage::from_pixel(3, 3, image::Rgb([10, 200, 30]))
        .save(photos.join("three.png"))
        .unwrap();
    photos
}

fn all_finite(t: &Tensor) -> bool {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .all(|v| v.is_finite())
}

fn checkpoint_tensors(run: &Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(run.join("checkpoint.safetensors"), &Device::Cpu).unwrap()
}

/// The bundled VGG16 and real photos, as a user trains: the weights stay finite and the
/// style loss falls, with flat images in the folder skipped and named.
#[test]
fn real_photos_train_to_finite_weights_and_a_falling_style_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos_with_flat_ones(tmp.path());
    let style = tmp.path().join("painting.png");
    painting(&style);
    let mut cfg = TrainConfig::new(style, photos, tmp.path().join("run"), "Strokes".into());
    cfg.iterations = 30;
    cfg.batch_size = 2;
    cfg.image_size = 64;
    cfg.style_size = Some(96);
    cfg.device = DeviceChoice::Cpu;
    cfg.checkpoint_every = 10;
    cfg.preview_every = 0;
    cfg.lr = 5e-3;
    let events = run(cfg, false);
    assert_eq!(failure(&events), None);
    let skipped = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Finished { skipped, .. } => Some(skipped.clone()),
            _ => None,
        })
        .expect("finished");
    let names: Vec<String> = skipped
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for flat in ["black.png", "one.png", "three.png"] {
        assert!(
            names.iter().any(|n| n == flat),
            "{flat} not skipped: {names:?}"
        );
    }
    let run_dir = tmp.path().join("run");
    for (name, t) in checkpoint_tensors(&run_dir) {
        assert!(all_finite(&t), "{name} holds NaN or infinite values");
    }
    let m = RunDir::read_metrics(&run_dir).unwrap();
    assert_eq!(m.len(), 30);
    assert!(m.iter().all(|m| m.total.is_finite()));
    let first: f64 = m[..5].iter().map(|m| m.style).sum::<f64>() / 5.0;
    let last: f64 = m[25..].iter().map(|m| m.style).sum::<f64>() / 5.0;
    let curve: Vec<String> = m.iter().map(|m| format!("{:.2}", m.style)).collect();
    // 30 small steps from a random start: a steady fall of about an eighth (a NaN or a
    // frozen optimiser would show a flat or non-finite curve).
    assert!(
        last < 0.93 * first,
        "style loss {first:.3} → {last:.3}: {curve:?}"
    );
}

/// A tiny-VGG run for the cases below (fast).
fn tiny_config(root: &Path, run: &str, iterations: u64) -> TrainConfig {
    let photos = root.join("photos");
    if !photos.is_dir() {
        std::fs::create_dir_all(&photos).unwrap();
        for i in 0..4u32 {
            common::photo(40 + 7 * i, 36 + 5 * i)
                .save(photos.join(format!("p{i}.png")))
                .unwrap();
        }
        painting(&root.join("painting.png"));
        common::tiny_vgg(root);
    }
    let mut c = TrainConfig::new(
        root.join("painting.png"),
        photos,
        root.join(run),
        "Stripes".into(),
    );
    c.iterations = iterations;
    c.batch_size = 2;
    c.image_size = 32;
    c.vgg = Some(root.join("tiny-vgg.safetensors"));
    c.device = DeviceChoice::Cpu;
    c.checkpoint_every = 3;
    c.preview_every = 0;
    c
}

/// A step whose loss overflows is not applied: the run stops naming the batch's photos, the
/// checkpoint on disk is the last good one, and nothing non-finite is ever written.
#[test]
fn an_overflowing_step_stops_the_run_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(failure(&run(tiny_config(tmp.path(), "r", 3), false)), None);
    let dir = tmp.path().join("r");
    // Make the output layer's scale explode (no norm follows it): the loss overflows f32.
    let mut tensors = checkpoint_tensors(&dir);
    let w = tensors["deconv3.conv2d.weight"].clone();
    tensors.insert("deconv3.conv2d.weight".into(), (w * 1e25).unwrap());
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let (_, md) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let doctored = safetensors::serialize(tensors.iter(), md.metadata().clone()).unwrap();
    std::fs::write(dir.join("checkpoint.safetensors"), &doctored).unwrap();

    let mut more = RunDir::read_config(&dir).unwrap();
    more.iterations = 6;
    let msg = failure(&run(more, true)).expect("the run must stop");
    assert!(msg.contains("iteration 4"), "{msg}");
    assert!(
        msg.contains("p") && msg.contains(".png"),
        "names the photos: {msg}"
    );
    assert!(msg.contains("iteration 3 is intact"), "{msg}");
    // Untouched: the same bytes, and no metrics past the checkpoint.
    assert_eq!(
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        doctored
    );
    assert!(RunDir::read_metrics(&dir)
        .unwrap()
        .iter()
        .all(|m| m.iteration <= 3));
}

/// Two trainers on one run folder: the second is refused while the first holds it.
#[test]
fn a_run_folder_takes_one_trainer_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let first = train::start(tiny_config(tmp.path(), "r", 1000), false);
    // Wait until the first has started (it holds the lock from then on).
    loop {
        match first.events.recv().unwrap() {
            TrainEvent::Started { .. } => break,
            TrainEvent::Failed { message } => panic!("{message}"),
            _ => {}
        }
    }
    first.send(train::Control::Pause);
    let mut again = tiny_config(tmp.path(), "r", 1000);
    again.iterations = 2000;
    let msg = failure(&run(again.clone(), true)).expect("refused");
    assert!(msg.contains("in use"), "{msg}");
    let msg = failure(&run(again, false)).expect("refused");
    assert!(msg.contains("in use"), "{msg}");
    first.send(train::Control::Stop);
    first.join();
    // Free again once the first has stopped.
    let mut resumed = RunDir::read_config(&tmp.path().join("r")).unwrap();
    resumed.iterations = resumed.iterations.max(1);
    let h = train::start(resumed, true);
    let ev: Vec<_> = h.events.iter().take(1).collect();
    h.send(train::Control::Stop);
    h.join();
    assert!(matches!(ev[0], TrainEvent::Started { .. }), "{:?}", ev[0]);
}

/// A start that fails on bad settings leaves nothing behind that blocks the next one, and a
/// folder whose run never reached a checkpoint can be started afresh.
#[test]
fn a_failed_start_does_not_block_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bad = tiny_config(tmp.path(), "r", 3);
    bad.style_size = Some(0);
    let msg = failure(&run(bad, false)).unwrap();
    assert!(msg.contains("style size 0"), "{msg}");
    assert!(!tmp.path().join("r/config.json").exists());
    let mut file_as_dir = tiny_config(tmp.path(), "r", 3);
    file_as_dir.content_dir = tmp.path().join("painting.png");
    let msg = failure(&run(file_as_dir, false)).unwrap();
    assert!(msg.contains("is a file"), "{msg}");
    // A run that died before its first checkpoint: config.json but nothing else.
    let mut c = tiny_config(tmp.path(), "r", 3);
    c.checkpoint_every = 0;
    std::fs::create_dir_all(tmp.path().join("r")).unwrap();
    std::fs::write(
        tmp.path().join("r/config.json"),
        serde_json::to_vec(&c).unwrap(),
    )
    .unwrap();
    assert_eq!(failure(&run(c, false)), None);
}

/// A loss network file with a NaN is refused when loaded, not used.
#[test]
fn a_loss_network_with_nan_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = common::tiny_vgg(tmp.path());
    let mut t = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let b = t["features.7.bias"].to_vec1::<f32>().unwrap();
    let mut b2 = b.clone();
    b2[3] = f32::NAN;
    t.insert(
        "features.7.bias".into(),
        Tensor::new(b2.as_slice(), &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&t, &path).unwrap();
    let err = atelier::train::vgg::Vgg16::load(&path, &Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("features.7.bias") && err.contains("NaN"),
        "{err}"
    );
}

fn cli(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atelier"));
    c.env("ATELIER_DATA_DIR", data)
        .env("ATELIER_MODELS_DIR", data.join("no-bundled-models"))
        .env_remove("RUST_BACKTRACE");
    c
}

fn train_args(root: &Path, out: &Path) -> Vec<std::ffi::OsString> {
    let _ = tiny_config(root, "unused", 1);
    [
        "train",
        "--style-image",
        root.join("painting.png").to_str().unwrap(),
        "--content-dir",
        root.join("photos").to_str().unwrap(),
        "--vgg",
        root.join("tiny-vgg.safetensors").to_str().unwrap(),
        "--batch-size",
        "2",
        "--image-size",
        "32",
        "--device",
        "cpu",
        "--preview-every",
        "0",
        "--checkpoint-every",
        "2",
        "--name",
        "stripes",
    ]
    .iter()
    .map(Into::into)
    .chain(["--out".into(), out.as_os_str().to_owned()])
    .collect()
}

fn output(c: &mut Command) -> (bool, String) {
    let o = c.output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// `--no-install` is remembered by `--resume`; settings that would change the model are
/// refused on resume; an existing style is never replaced without `--overwrite`.
#[test]
fn resume_keeps_the_run_settings_and_installs_never_replace_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = root.join("data");
    let styles = data.join("styles");
    let run = root.join("run");
    let (ok, out) =
        output(
            cli(&data)
                .args(train_args(root, &run))
                .args(["--iterations", "2", "--no-install"]),
        );
    assert!(ok, "{out}");
    let (ok, out) = output(cli(&data).args([
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--iterations",
        "4",
    ]));
    assert!(ok, "{out}");
    assert!(
        !styles.join("stripes.safetensors").exists(),
        "a --no-install run was installed on resume: {out}"
    );
    // Changed settings are refused, not ignored.
    let (ok, out) = output(cli(&data).args([
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--iterations",
        "6",
        "--image-size",
        "64",
        "--strength",
        "bold",
    ]));
    assert!(!ok);
    assert!(
        out.contains("--image-size") && out.contains("--strength"),
        "{out}"
    );

    // A style called "stripes" exists: a new run of that name is refused before it trains.
    std::fs::create_dir_all(&styles).unwrap();
    let existing = common::model_file(&styles, atelier::model::Variant::Johnson, "stripes");
    let before = std::fs::read(&existing).unwrap();
    let (ok, out) = output(
        cli(&data)
            .args(train_args(root, &root.join("run2")))
            .args(["--iterations", "2"]),
    );
    assert!(!ok);
    assert!(
        out.contains("already exists") && out.contains("--overwrite"),
        "{out}"
    );
    assert!(!root.join("run2/checkpoint.safetensors").exists());
    assert_eq!(std::fs::read(&existing).unwrap(), before);
    // With --overwrite it is replaced by the trained one.
    let (ok, out) = output(cli(&data).args(train_args(root, &root.join("run3"))).args([
        "--iterations",
        "2",
        "--overwrite",
    ]));
    assert!(ok, "{out}");
    assert_ne!(std::fs::read(&existing).unwrap(), before);
}

/// A run folder whose path is not UTF-8 trains, records its config losslessly and resumes.
#[cfg(unix)]
#[test]
fn non_utf8_run_folders_work() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let run = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9-run"));
    let data = root.join("data");
    let (ok, out) =
        output(
            cli(&data)
                .args(train_args(root, &run))
                .args(["--iterations", "2", "--no-install"]),
        );
    assert!(ok, "{out}");
    let cfg = RunDir::read_config(&run).unwrap();
    assert_eq!(cfg.run_dir, run);
    let (ok, out) = output(
        cli(&data)
            .args(["train", "--iterations", "3", "--resume"])
            .arg(&run),
    );
    assert!(ok, "{out}");
    assert_eq!(RunDir::read_metrics(&run).unwrap().len(), 3);
}

/// Strength presets are what `--strength` and the panel offer; numbers pass through.
#[test]
fn strength_parses_presets_and_numbers() {
    assert_eq!("bold".parse::<Strength>().unwrap(), Strength::Bold);
    assert_eq!("7.5".parse::<Strength>().unwrap(), Strength::Weight(7.5));
    assert!("-1".parse::<Strength>().is_err());
    assert!("loud".parse::<Strength>().is_err());
    assert!(Strength::Subtle.style_weight() < Strength::Balanced.style_weight());
    assert!(Strength::Balanced.style_weight() < Strength::Bold.style_weight());
}
