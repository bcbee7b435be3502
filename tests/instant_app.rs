//! Instant styles in the app: a painting becomes a style in the gallery and restyles the
//! open photo, with no training.

#![cfg(feature = "app")]

mod common;

use common::app::{drop_file_at, env, harness, hold_file_at, run_until, write_photo};

use atelier::app::{AppOptions, AtelierApp, Command};
use atelier::model::registry::Registry;
use atelier::model::Variant;
use egui_kittest::Harness;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_painting_becomes_an_instant_style_in_the_gallery_and_on_the_canvas() {
    let tmp = tempfile::tempdir().unwrap();
    let styles = tmp.path().join("styles");
    std::fs::create_dir_all(&styles).unwrap();
    let opts = AppOptions {
        device: Some("cpu".into()),
        ephemeral: true,
        registry: Some(Registry {
            bundled_dir: None,
            user_dir: styles.clone(),
        }),
        runs_dir: Some(tmp.path().join("runs")),
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size([1200.0, 800.0])
        .build_eframe(move |cc| AtelierApp::new(cc, opts));

    let photo = tmp.path().join("photo.png");
    common::photo(120, 80).save(&photo).unwrap();
    h.state_mut().execute(Command::Open(photo));
    run_until(&mut h, "the photo", LIMIT, |a| a.state.doc.is_some());

    let painting = tmp.path().join("Sunflowers at Dusk.png");
    image::RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x % 256) as u8, ((x + y) % 256) as u8, 30])
    })
    .save(&painting)
    .unwrap();
    h.state_mut().execute(Command::UsePainting(painting));
    run_until(&mut h, "the instant style's result", LIMIT, |a| {
        a.state
            .doc
            .as_ref()
            .and_then(|d| d.result.as_ref())
            .is_some_and(|(_, style)| {
                a.gallery.selected.as_ref() == Some(style)
                    && a.gallery
                        .entries
                        .iter()
                        .any(|e| &e.path == style && e.meta.variant == Variant::Instant)
            })
    });
    let app = h.state();
    let entry = app
        .gallery
        .entries
        .iter()
        .find(|e| e.meta.name == "Sunflowers at Dusk")
        .expect("the instant style is in the gallery");
    assert_eq!(entry.meta.variant, Variant::Instant);
    assert_eq!(app.gallery.selected.as_ref(), Some(&entry.path));
    let doc = app.state.doc.as_ref().unwrap();
    let (result, _) = doc.result.as_ref().unwrap();
    assert_eq!(result.dimensions(), (120, 80));
    assert!(
        common::psnr(result, &doc.photo) < 25.0,
        "the instant style left the photo nearly as it was"
    );

    // A second painting, then a half-and-half mix of the two.
    let first = entry.path.clone();
    let painting2 = tmp.path().join("Blue Dots.png");
    common::photo(200, 300).save(&painting2).unwrap();
    h.state_mut().execute(Command::UsePainting(painting2));
    run_until(&mut h, "the second instant style", LIMIT, |a| {
        a.gallery.entries.iter().any(|e| e.meta.name == "Blue Dots")
    });
    let second = h
        .state()
        .gallery
        .entries
        .iter()
        .find(|e| e.meta.name == "Blue Dots")
        .unwrap()
        .path
        .clone();
    h.state_mut().execute(Command::MixStyles {
        a: first.clone(),
        b: second,
        weight: 0.5,
    });
    run_until(&mut h, "the mix", LIMIT, |a| {
        a.gallery
            .entries
            .iter()
            .any(|e| e.meta.name == "Sunflowers at Dusk + Blue Dots")
    });
    let mix = h
        .state()
        .gallery
        .entries
        .iter()
        .find(|e| e.meta.name == "Sunflowers at Dusk + Blue Dots")
        .unwrap()
        .clone();
    assert_eq!(mix.meta.variant, Variant::Instant);
    assert!(mix
        .meta
        .source
        .as_deref()
        .unwrap()
        .contains("50% Blue Dots"));
    run_until(&mut h, "the mix on the canvas", LIMIT, |a| {
        a.state
            .doc
            .as_ref()
            .and_then(|d| d.result.as_ref())
            .is_some_and(|(_, s)| *s == mix.path)
    });

    // "Train for full quality" fills the training panel with the painting.
    let sunflowers = h
        .state()
        .gallery
        .entries
        .iter()
        .find(|e| e.path == first)
        .unwrap()
        .clone();
    h.state_mut().execute(Command::TrainFullQuality(sunflowers));
    h.step();
    assert!(h.state().settings.show_training);
    assert!(h
        .state()
        .training
        .style_image
        .ends_with("Sunflowers at Dusk.png"));
}

/// A painting for the drop tests; its name sorts after "Test Style", the one style `env`
/// has, so a tile at the top of the gallery is there because it was just made.
fn wheatfield(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("Wheatfield with Crows.png");
    image::RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x % 256) as u8, 40, ((x * y) % 256) as u8])
    })
    .save(&p)
    .unwrap();
    p
}

#[test]
fn a_painting_dropped_on_the_gallery_becomes_an_instant_style_at_its_top() {
    let e = env();
    let mut h = harness(&e);
    let photo = write_photo(&e.root, 120, 80);
    h.state_mut().execute(Command::Open(photo.clone()));
    run_until(&mut h, "the photo", LIMIT, |a| a.state.doc.is_some());
    let painting = wheatfield(&e.root);
    let gallery = h.state().gallery.panel_rect.expect("the gallery is shown");

    // Held over the gallery: the gallery offers itself, the canvas does not.
    hold_file_at(&mut h, &painting, gallery.center());
    assert!(h.state().gallery.drop_hover);
    assert!(!h.state().canvas.drop_hover);

    drop_file_at(&mut h, &painting, gallery.center());
    assert!(!h.state().gallery.drop_hover);
    run_until(&mut h, "the dropped painting's result", LIMIT, |a| {
        a.state
            .doc
            .as_ref()
            .and_then(|d| d.result.as_ref())
            .is_some_and(|(_, style)| a.gallery.selected.as_ref() == Some(style))
    });
    let app = h.state();
    let top = app
        .gallery
        .shown()
        .next()
        .expect("the gallery shows styles");
    assert_eq!(top.meta.name, "Wheatfield with Crows");
    assert_eq!(top.meta.variant, Variant::Instant);
    assert_eq!(
        app.gallery.shown().count(),
        2,
        "the new style and Test Style"
    );
    // The photo stayed open and was restyled with the new style.
    let doc = app.state.doc.as_ref().unwrap();
    assert_eq!(doc.path.as_ref(), Some(&photo));
    let (result, style) = doc.result.as_ref().unwrap();
    assert_eq!(style, &top.path);
    assert_eq!(result.dimensions(), (120, 80));
    assert!(
        common::psnr(result, &doc.photo) < 25.0,
        "the instant style left the photo nearly as it was"
    );
}

#[test]
fn a_painting_dropped_on_the_canvas_still_opens_as_the_photo() {
    let e = env();
    let mut h = harness(&e);
    let photo = write_photo(&e.root, 120, 80);
    h.state_mut().execute(Command::Open(photo));
    run_until(&mut h, "the photo", LIMIT, |a| a.state.doc.is_some());
    let painting = wheatfield(&e.root);
    let gallery = h.state().gallery.panel_rect.expect("the gallery is shown");
    let canvas = egui::pos2(gallery.min.x / 2.0, gallery.center().y);

    hold_file_at(&mut h, &painting, canvas);
    assert!(h.state().canvas.drop_hover);
    assert!(!h.state().gallery.drop_hover);

    drop_file_at(&mut h, &painting, canvas);
    run_until(&mut h, "the painting as the photo", LIMIT, |a| {
        a.state
            .doc
            .as_ref()
            .is_some_and(|d| d.path.as_ref() == Some(&painting))
    });
    let app = h.state();
    assert_eq!(
        app.state.doc.as_ref().unwrap().photo.dimensions(),
        (300, 200)
    );
    assert!(
        app.gallery
            .entries
            .iter()
            .all(|e| e.meta.variant != Variant::Instant),
        "no instant style was made"
    );
}
