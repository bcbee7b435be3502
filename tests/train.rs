//! Training on the CPU with a small random loss network built here, so the tests are
//! self-contained and quick.

mod common;

use atelier::device::DeviceChoice;
use atelier::model::StyleModel;
use atelier::stylize::{Hooks, Stylizer, Tiling};
use atelier::train::{self, run_dir::RunDir, TrainConfig, TrainEvent};
use candle_core::Device;
use std::path::PathBuf;

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    vgg: PathBuf,
    style: PathBuf,
    photos: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let photos = root.join("photos");
    std::fs::create_dir_all(photos.join("nested")).unwrap();
    for i in 0..5u32 {
        common::photo(40 + 7 * i, 36 + 5 * i)
            .save(photos.join(format!("p{i}.png")))
            .unwrap();
    }
    common::photo(50, 50)
        .save(photos.join("nested/q.jpg"))
        .unwrap();
    // A painting: strong stripes, very unlike the photos.
    let style = root.join("painting.png");
    image::RgbImage::from_fn(64, 64, |x, y| {
        if (x / 4 + y / 8) % 2 == 0 {
            image::Rgb([230, 40, 20])
        } else {
            image::Rgb([20, 30, 200])
        }
    })
    .save(&style)
    .unwrap();
    Setup {
        vgg: common::tiny_vgg(&root),
        _tmp: tmp,
        root,
        style,
        photos,
    }
}

fn config(s: &Setup, run: &str, iterations: u64) -> TrainConfig {
    let mut c = TrainConfig::new(
        s.style.clone(),
        s.photos.clone(),
        s.root.join(run),
        "Stripes".into(),
    );
    c.iterations = iterations;
    c.batch_size = 2;
    c.image_size = 32;
    c.vgg = Some(s.vgg.clone());
    c.device = DeviceChoice::Cpu;
    c.checkpoint_every = 3;
    c.preview_every = 0;
    c.lr = 5e-3;
    c
}

/// Runs to the end and returns every event.
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

#[test]
fn a_short_run_lowers_the_style_loss_and_yields_a_usable_model() {
    let s = setup();
    let mut cfg = config(&s, "run", 40);
    cfg.preview_every = 20;
    // With a random loss network the content term would dominate; this test is about the style term.
    cfg.set_strength(atelier::train::loss::Strength::Weight(1e4));
    let events = run(cfg, false);
    assert_eq!(failure(&events), None);
    let metrics = RunDir::read_metrics(&s.root.join("run")).unwrap();
    assert_eq!(metrics.len(), 40);
    let first: f64 = metrics[..5].iter().map(|m| m.style).sum::<f64>() / 5.0;
    let last: f64 = metrics[35..].iter().map(|m| m.style).sum::<f64>() / 5.0;
    assert!(last < 0.7 * first, "style loss {first:.3e} → {last:.3e}");
    assert!(events
        .iter()
        .any(|e| matches!(e, TrainEvent::Preview { iteration: 20, .. })));
    assert!(s.root.join("run/previews/iter_000040.png").is_file());
    let model = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Finished { model, .. } => Some(model.clone()),
            _ => None,
        })
        .expect("finished");
    let m = StyleModel::load(&model).unwrap();
    assert_eq!(m.meta.name, "Stripes");
    assert_eq!(m.meta.training.as_ref().unwrap()["iterations"], 40);
    assert!(m.thumbnail_png.is_some());
    let out = Stylizer::new(&m, &Device::Cpu)
        .unwrap()
        .stylize_raw(&common::photo(33, 21), Tiling::Off, &mut Hooks::default())
        .unwrap();
    assert_eq!(out.dimensions(), (33, 21));
}

#[test]
fn resuming_reproduces_the_uninterrupted_loss_sequence() {
    let s = setup();
    assert_eq!(failure(&run(config(&s, "whole", 6), false)), None);
    assert_eq!(failure(&run(config(&s, "split", 3), false)), None);
    let mut more = RunDir::read_config(&s.root.join("split")).unwrap();
    more.iterations = 6;
    let events = run(more, true);
    assert_eq!(failure(&events), None);
    assert!(events.iter().any(|e| matches!(
        e,
        TrainEvent::Started {
            resumed_from: Some(3),
            ..
        }
    )));
    let a = RunDir::read_metrics(&s.root.join("whole")).unwrap();
    let b = RunDir::read_metrics(&s.root.join("split")).unwrap();
    assert_eq!(a.len(), 6);
    assert_eq!(b.len(), 6);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.iteration, y.iteration);
        let rel = (x.total - y.total).abs() / x.total.abs().max(1e-12);
        assert!(
            rel < 1e-4,
            "iteration {}: {} vs {}",
            x.iteration,
            x.total,
            y.total
        );
    }
}

#[test]
fn unreadable_content_files_are_skipped_and_counted() {
    let s = setup();
    std::fs::write(s.photos.join("broken.png"), b"not a png").unwrap();
    std::fs::write(
        s.photos.join("truncated.jpg"),
        &std::fs::read(s.photos.join("nested/q.jpg")).unwrap()[..100],
    )
    .unwrap();
    std::fs::write(
        s.photos.join("notes.txt"),
        b"ignored: not an image extension",
    )
    .unwrap();
    let events = run(config(&s, "run", 8), false);
    assert_eq!(failure(&events), None);
    let skipped = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Finished { skipped, .. } => Some(skipped.clone()),
            _ => None,
        })
        .unwrap();
    let names: Vec<String> = skipped
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["broken.png", "truncated.jpg"]);
}

#[test]
fn bad_setups_fail_before_training_with_clear_messages() {
    let s = setup();
    let mut c = config(&s, "a", 2);
    c.style_image = s.root.join("missing.jpg");
    assert!(failure(&run(c, false)).unwrap().contains("missing.jpg"));

    let empty = s.root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut c = config(&s, "b", 2);
    c.content_dir = empty;
    assert!(failure(&run(c, false)).unwrap().contains("found 0 images"));

    let mut c = config(&s, "c", 2);
    c.content_dir = s.root.join("nowhere");
    assert!(failure(&run(c, false)).unwrap().contains("does not exist"));

    let wrong_vgg = common::model_file(&s.root, atelier::model::Variant::Johnson, "not-vgg");
    let mut c = config(&s, "d", 2);
    c.vgg = Some(wrong_vgg);
    let msg = failure(&run(c, false)).unwrap();
    assert!(
        msg.contains("not-vgg.safetensors") && msg.contains("not a VGG16"),
        "{msg}"
    );

    // Only one readable photo for a batch of two.
    let few = s.root.join("few");
    std::fs::create_dir(&few).unwrap();
    common::photo(40, 40).save(few.join("ok.png")).unwrap();
    std::fs::write(few.join("bad.png"), b"junk").unwrap();
    let mut c = config(&s, "e", 2);
    c.content_dir = few;
    let msg = failure(&run(c, false)).unwrap();
    assert!(msg.contains("only 1 of 2 images"), "{msg}");

    // A finished run is not silently restarted.
    assert_eq!(failure(&run(config(&s, "f", 1), false)), None);
    let msg = failure(&run(config(&s, "f", 1), false)).unwrap();
    assert!(msg.contains("--resume"), "{msg}");
}

#[test]
fn pause_resume_and_stop_leave_a_resumable_checkpoint() {
    let s = setup();
    let h = train::start(config(&s, "ctl", 500), false);
    let next = || {
        h.events
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("event")
    };
    while !matches!(next(), TrainEvent::Metrics(_)) {}
    h.send(train::Control::Pause);
    while !matches!(next(), TrainEvent::Paused { .. }) {}
    h.send(train::Control::Resume);
    while !matches!(next(), TrainEvent::Resumed { .. }) {}
    h.send(train::Control::Stop);
    let stopped_at = loop {
        if let TrainEvent::Stopped { iteration } = next() {
            break iteration;
        }
    };
    h.join();
    assert!((1..500).contains(&stopped_at));
    let metrics = RunDir::read_metrics(&s.root.join("ctl")).unwrap();
    assert_eq!(metrics.last().unwrap().iteration, stopped_at);
    let mut more = RunDir::read_config(&s.root.join("ctl")).unwrap();
    more.iterations = stopped_at + 2;
    let events = run(more, true);
    assert_eq!(failure(&events), None);
    assert!(events.iter().any(
        |e| matches!(e, TrainEvent::Started { resumed_from: Some(f), .. } if *f == stopped_at)
    ));
}

/// torchvision VGG19 weights work as the loss network too (its relu4_3 is conv 23,
/// after an extra conv3_4 before the third pool).
#[test]
fn a_vgg19_file_is_read_with_its_own_layer_table() {
    let tmp = tempfile::tempdir().unwrap();
    let path = common::tiny_vgg_with(
        tmp.path(),
        "tiny-vgg19.safetensors",
        &[
            (0, 4),
            (2, 4),
            (5, 6),
            (7, 6),
            (10, 8),
            (12, 8),
            (14, 8),
            (16, 9),
            (19, 10),
            (21, 10),
            (23, 11),
        ],
    );
    let vgg = atelier::train::vgg::Vgg16::load(&path, &Device::Cpu).unwrap();
    let x = candle_core::Tensor::rand(0f32, 255f32, (1, 3, 32, 32), &Device::Cpu).unwrap();
    let dims: Vec<Vec<usize>> = vgg
        .features(&x)
        .unwrap()
        .iter()
        .map(|t| t.dims().to_vec())
        .collect();
    assert_eq!(
        dims,
        vec![
            vec![1, 4, 32, 32],
            vec![1, 6, 16, 16],
            vec![1, 8, 8, 8],
            vec![1, 11, 4, 4]
        ]
    );
}
