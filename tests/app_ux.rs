//! The app as an artist meets it (issue 16), driven through egui_kittest without a window
//! or a desktop portal: export and the app's own file browser, image paste, the compare
//! divider, honest progress, the result cache.

#![cfg(feature = "app")]

mod common;

use common::app::{drag, env, notice, portal_less_harness as harness, run_until, write_photo, Env};

use atelier::app::{AppOptions, AtelierApp, Command};
use atelier::model::registry::Registry;
use atelier::model::Variant;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Opens a photo with the test style selected and waits for its result.
fn styled_photo(e: &Env, h: &mut Harness<'static, AtelierApp>, w: u32, ht: u32) -> PathBuf {
    h.state_mut().gallery.selected = Some(e.styles.join("Test Style.safetensors"));
    let photo = write_photo(&e.root, w, ht);
    h.state_mut().execute(Command::Open(photo.clone()));
    run_until(h, "the result", Duration::from_secs(60), |a| {
        a.state.doc.as_ref().is_some_and(|d| d.result.is_some())
    });
    photo
}

#[test]
fn export_writes_into_pictures_under_a_free_name_without_a_portal() {
    let e = env();
    let mut h = harness(&e);
    styled_photo(&e, &mut h, 64, 48);
    let dir = e.root.join("Pictures").join("Atelier");
    for (n, name) in ["photo-test_style.png", "photo-test_style-2.png"]
        .iter()
        .enumerate()
    {
        h.get_by_label("Export").click();
        run_until(&mut h, "the export", Duration::from_secs(20), |a| {
            notice(a).starts_with("Saved to")
        });
        let p = dir.join(name);
        assert_eq!(notice(h.state()), format!("Saved to {}", p.display()));
        let saved = image::open(&p).unwrap().into_rgb8();
        assert_eq!(saved.dimensions(), (64, 48), "export {n}");
        // The status line offers the folder.
        h.get_by_label("Open folder");
        h.state_mut().state.notice = None;
    }
    // Nothing was overwritten: two pictures (each with its session), no temporaries left.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".atelier.json"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn save_as_without_a_portal_opens_the_apps_own_browser_and_saves() {
    let e = env();
    let mut h = harness(&e);
    styled_photo(&e, &mut h, 64, 48);
    h.state_mut().execute(Command::SaveDialog);
    h.run();
    // The browser starts in the photo's folder with the suggested name.
    {
        let b = h
            .state()
            .state
            .browser
            .as_ref()
            .expect("the browser is open");
        assert_eq!(b.dir, e.root);
        assert_eq!(b.name, "photo-test_style.png");
    }
    h.get_by_label("photo.png");
    h.get_by_label("styles/");
    h.get_by_label("Save").click();
    run_until(&mut h, "the save", Duration::from_secs(20), |a| {
        notice(a).starts_with("Saved to")
    });
    assert!(h.state().state.browser.is_none());
    assert!(e.root.join("photo-test_style.png").is_file());

    // Open… goes through the browser too; Cancel closes it.
    h.state_mut().execute(Command::OpenDialog);
    h.run();
    assert!(h.state().state.browser.is_some());
    h.get_by_label("Cancel").click();
    h.run();
    assert!(h.state().state.browser.is_none());
}

#[test]
fn ctrl_v_with_an_image_on_the_clipboard_opens_it() {
    let e = env();
    let mut h = harness(&e);
    // What egui delivers for Ctrl+V when the clipboard holds an image.
    let photo = common::photo(40, 30);
    let pasted = egui::ColorImage::from_rgb([40, 30], photo.as_raw());
    h.input_mut()
        .events
        .push(egui::Event::PasteImage(std::sync::Arc::new(pasted)));
    h.step();
    run_until(&mut h, "the pasted photo", Duration::from_secs(20), |a| {
        a.state.doc.is_some()
    });
    let doc = h.state().state.doc.as_ref().unwrap();
    assert!(doc.path.is_none());
    assert_eq!(*doc.photo, photo);
    h.get_by_label_contains("pasted image");

    // A copied file arrives as its path (or file:// URI) and opens as that file.
    let file = write_photo(&e.root, 24, 20);
    h.input_mut()
        .events
        .push(egui::Event::Paste(format!("file://{}\n", file.display())));
    h.step();
    run_until(&mut h, "the pasted file", Duration::from_secs(20), |a| {
        a.state
            .doc
            .as_ref()
            .is_some_and(|d| d.path.as_deref() == Some(file.as_path()))
    });
}

#[test]
fn the_compare_divider_follows_a_drag_that_starts_on_it() {
    let e = env();
    let mut h = harness(&e);
    styled_photo(&e, &mut h, 96, 64);
    h.state_mut().execute(Command::ToggleCompare);
    h.run();
    let rect = h.state().canvas.last_image_rect.unwrap();
    let pan = h.state().canvas.pan;
    let x = rect.lerp_inside(egui::vec2(0.5, 0.0)).x;
    // Pressed a few points off the line, as a hand does; the pointer then leaves the line
    // long before egui calls it a drag.
    let from = egui::pos2(x + 6.0, rect.center().y + 20.0);
    drag(&mut h, from, from + egui::vec2(80.0, 0.0));
    let split = h.state().canvas.split.unwrap();
    let want = (from.x + 80.0 - rect.min.x) / rect.width();
    assert!((split - want).abs() < 0.02, "split {split}, want {want}");
    assert_eq!(h.state().canvas.pan, pan, "the image did not pan");

    // A drag that starts away from the divider pans and leaves it alone.
    let far = egui::pos2(rect.min.x + 5.0, rect.center().y);
    drag(&mut h, far, far + egui::vec2(0.0, 40.0));
    assert_eq!(h.state().canvas.split, Some(split));
    let moved = h.state().canvas.pan.y - pan.y;
    assert!(moved > 25.0 && moved <= 40.0, "panned {moved}");
}

#[test]
fn a_tiled_pass_reports_progress_tile_by_tile() {
    let model = common::model(Variant::Johnson);
    let stylizer = atelier::stylize::Stylizer::new(&model, &candle_core::Device::Cpu).unwrap();
    let photo = common::photo(96, 64);
    let mut seen = Vec::new();
    let mut report = |done: usize, total: usize| seen.push(done as f32 / total as f32);
    let mut hooks = atelier::stylize::Hooks {
        progress: Some(&mut report),
        ..Default::default()
    };
    stylizer
        .stylize_raw(&photo, atelier::stylize::Tiling::Core(32), &mut hooks)
        .unwrap();
    assert!(seen.len() > 4, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[1] > w[0]), "{seen:?}");
    assert_eq!(seen.last(), Some(&1.0));
}

#[test]
fn the_status_line_shows_moving_progress_with_a_time_left() {
    let e = env();
    let mut h = harness(&e);
    h.state_mut().gallery.selected = Some(e.styles.join("Test Style.safetensors"));
    // Wide enough for the quick preview, which measures this machine's speed.
    let photo = write_photo(&e.root, 1400, 400);
    h.state_mut().execute(Command::Open(photo));
    let start = Instant::now();
    let mut fractions = Vec::new();
    let mut said_left = false;
    while h
        .state()
        .state
        .doc
        .as_ref()
        .is_none_or(|d| d.result.is_none())
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no result");
        h.step();
        if let Some(p) = h.state().state.doc.as_ref().and_then(|d| d.progress) {
            fractions.push(p.fraction_at(Instant::now()));
            h.get_by_label_contains("Stylising with Test Style");
            said_left |= h.query_by_label_contains("s left").is_some();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    fractions.dedup();
    assert!(fractions.len() >= 3, "progress did not move: {fractions:?}");
    assert!(fractions.windows(2).all(|w| w[1] >= w[0]), "{fractions:?}");
    assert!(said_left, "no time left was shown");
    // Done: the bar is gone and the timing of this result is shown.
    h.step();
    assert!(h.query_by_label_contains("Stylising with").is_none());
    h.get_by_label_contains("stylised in");
}

#[test]
fn going_back_to_a_computed_style_shows_it_without_running_the_network() {
    let e = env();
    let second = common::model_file(&e.styles, Variant::Johnson, "Other Style");
    let mut h = harness(&e);
    let first = e.styles.join("Test Style.safetensors");
    styled_photo(&e, &mut h, 64, 48);
    let first_result = h
        .state()
        .state
        .doc
        .as_ref()
        .unwrap()
        .result
        .clone()
        .unwrap();

    h.state_mut().execute(Command::SelectStyle(second.clone()));
    h.state_mut().gallery.selected = Some(second.clone());
    run_until(&mut h, "the second style", Duration::from_secs(60), |a| {
        a.state
            .doc
            .as_ref()
            .and_then(|d| d.result.as_ref())
            .is_some_and(|(_, s)| *s == second)
    });
    assert_eq!(h.state().cache.len(), 2);

    // Back to the first: there at once, the same pixels, no request to the worker.
    h.state_mut().gallery.selected = Some(first.clone());
    h.state_mut().execute(Command::SelectStyle(first.clone()));
    let doc = h.state().state.doc.as_ref().unwrap();
    assert!(doc.job.is_none(), "the network was asked to run again");
    let (image, style) = doc.result.as_ref().expect("the cached result");
    assert_eq!(*style, first);
    assert!(std::sync::Arc::ptr_eq(image, &first_result.0));
    h.run();
    assert_eq!(h.state().canvas.last_uniforms.unwrap().has_styled, 1.0);
}

#[test]
fn the_training_panel_times_a_few_steps_before_start() {
    let e = env();
    let mut h = harness(&e);
    h.state_mut().settings.show_training = true;
    let content = e.root.join("photos");
    std::fs::create_dir_all(&content).unwrap();
    for i in 0..4 {
        common::photo(40 + i, 36)
            .save(content.join(format!("{i}.png")))
            .unwrap();
    }
    let painting = e.root.join("painting.png");
    common::photo(48, 48).save(&painting).unwrap();
    {
        let t = &mut h.state_mut().training;
        t.style_image = painting.display().to_string();
        t.content_dir = content.display().to_string();
        t.vgg = Some(common::tiny_vgg(&e.root));
        t.device = atelier::device::DeviceChoice::Cpu;
    }
    h.run();
    // On a processor the panel says so before anything runs; Quick test shrinks the run.
    h.get_by_label_contains("On the processor a full training takes days");
    h.get_by_label("Quick test").click();
    h.run();
    assert_eq!(h.state().training.iterations, 300);
    h.state_mut().training.image_size = 64;
    h.get_by_label("Estimate time").click();
    run_until(&mut h, "the estimate", Duration::from_secs(120), |a| {
        a.training.estimated_seconds().is_some()
    });
    let secs = h.state().training.estimated_seconds().unwrap();
    assert!(secs > 0.0 && secs.is_finite(), "{secs}");
    h.get_by_label_contains("for 300 iterations on this computer");
    // The scratch run leaves nothing among the runs.
    run_until(
        &mut h,
        "the scratch run's removal",
        Duration::from_secs(20),
        |_| !e.root.join("runs").join(".estimate").exists(),
    );
    // Another size is another speed: the estimate no longer applies.
    h.state_mut().training.image_size = 96;
    assert!(h.state().training.estimated_seconds().is_none());
}

#[test]
fn first_steps_an_example_the_title_the_zoom_and_the_shortcuts() {
    let e = env();
    // The example is written into the data folder; keep it in this test's.
    std::env::set_var("ATELIER_DATA_DIR", e.root.join("data"));
    let mut h = harness(&e);
    h.run();
    h.get_by_label("Try an example").click();
    run_until(&mut h, "the example", Duration::from_secs(20), |a| {
        a.state.doc.is_some()
    });
    assert_eq!(
        h.state().state.doc.as_ref().unwrap().photo.dimensions(),
        (451, 300)
    );
    assert_eq!(h.state().title, "chelsea.png — Atelier");
    h.get_by_label_contains(" %");

    h.state_mut().execute(Command::ToggleShortcuts);
    h.run();
    h.get_by_label("Keyboard shortcuts");
    h.get_by_label("Export into Pictures/Atelier");
}

#[test]
fn a_style_asked_for_that_does_not_exist_is_said_and_stays_said() {
    let e = env();
    let photo = write_photo(&e.root, 40, 30);
    let opts = AppOptions {
        device: Some("cpu".into()),
        ephemeral: true,
        open: Some(photo),
        style: Some("nonsense".into()),
        registry: Some(Registry {
            bundled_dir: None,
            user_dir: e.styles.clone(),
        }),
        runs_dir: Some(e.root.join("runs")),
        builtin_dialogs: true,
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size([1200.0, 800.0])
        .build_eframe(move |cc| AtelierApp::new(cc, opts));
    run_until(&mut h, "the photo", Duration::from_secs(20), |a| {
        a.state.doc.is_some()
    });
    h.get_by_label_contains("--style nonsense");
}

#[test]
fn an_unreadable_photo_is_named_once_in_the_message() {
    let e = env();
    let mut h = harness(&e);
    let bad = e.root.join("broken.jpg");
    std::fs::write(&bad, b"not a jpeg").unwrap();
    h.state_mut().execute(Command::Open(bad.clone()));
    run_until(&mut h, "the failure", Duration::from_secs(20), |a| {
        a.state.notice.as_ref().is_some_and(|n| n.is_error())
    });
    let msg = notice(h.state());
    assert_eq!(msg.matches("broken.jpg").count(), 1, "{msg}");
}

#[test]
fn training_pauses_stops_and_resumes_with_its_chart() {
    use atelier::app::training::RunState;
    let e = env();
    let mut h = harness(&e);
    h.state_mut().settings.show_training = true;
    let content = e.root.join("photos");
    std::fs::create_dir_all(&content).unwrap();
    for i in 0..4 {
        common::photo(40 + i, 36)
            .save(content.join(format!("{i}.png")))
            .unwrap();
    }
    let painting = e.root.join("painting.png");
    common::photo(48, 48).save(&painting).unwrap();
    h.run();
    // The painting's "…" asks through the app's own browser here.
    h.get_all_by_label("…").next().unwrap().click();
    h.run();
    assert_eq!(
        h.state().state.browser.as_ref().map(|b| b.purpose.clone()),
        Some(atelier::app::dialogs::Purpose::Painting)
    );
    h.get_by_label("Cancel").click();
    h.run();
    {
        let t = &mut h.state_mut().training;
        t.style_image = painting.display().to_string();
        t.content_dir = content.display().to_string();
        t.name = "Long".into();
        t.iterations = 100_000;
        t.image_size = 64;
        t.batch_size = 1;
        t.vgg = Some(common::tiny_vgg(&e.root));
    }
    h.get_by_label("Start training").click();
    run_until(&mut h, "a few steps", Duration::from_secs(60), |a| {
        a.training.metrics.len() >= 3
    });
    h.get_by_label("Pause").click();
    run_until(&mut h, "the pause", Duration::from_secs(20), |a| {
        a.training.state == RunState::Paused
    });
    h.get_by_label_contains("Paused · iteration");
    assert!(
        h.query_by_label_contains(" left").is_none(),
        "no countdown while paused"
    );
    h.get_by_label("Stop").click();
    run_until(&mut h, "the stop", Duration::from_secs(20), |a| {
        a.training.state == RunState::Stopped
    });
    h.get_by_label_contains("Stopped · iteration");
    let charted = h.state().training.metrics.len();
    h.get_by_label("Resume").click();
    h.run();
    assert!(
        h.state().training.metrics.len() >= charted,
        "Resume cleared the chart"
    );
    run_until(&mut h, "more steps", Duration::from_secs(60), |a| {
        a.training.metrics.len() > charted
    });
    let iterations: Vec<u64> = h
        .state()
        .training
        .metrics
        .iter()
        .map(|m| m.iteration)
        .collect();
    assert!(iterations.windows(2).all(|w| w[1] > w[0]), "{iterations:?}");
    h.get_by_label("Stop").click();
    run_until(&mut h, "the second stop", Duration::from_secs(20), |a| {
        a.training.state == RunState::Stopped
    });
}

#[test]
fn files_held_over_the_window_light_up_the_canvas() {
    let e = env();
    let mut h = harness(&e);
    h.run();
    assert!(!h.state().canvas.drop_hover);
    h.input_mut().hovered_files.push(egui::HoveredFile {
        path: Some(e.root.join("photo.png")),
        mime: String::new(),
    });
    h.step();
    assert!(h.state().canvas.drop_hover);
}
