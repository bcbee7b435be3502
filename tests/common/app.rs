//! The desktop app under egui_kittest: a throwaway style folder with one test style, the
//! harness, and stepping the UI while the worker threads run.

use atelier::app::{AppOptions, AtelierApp};
use atelier::model::registry::Registry;
use atelier::model::Variant;
use egui_kittest::Harness;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Env {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub styles: PathBuf,
}

/// A temporary home with a style folder holding "Test Style" (random weights).
pub fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let styles = root.join("styles");
    std::fs::create_dir_all(&styles).unwrap();
    super::model_file(&styles, Variant::Johnson, "Test Style");
    Env {
        _tmp: tmp,
        root,
        styles,
    }
}

/// The app on the CPU, nothing persisted, only `e`'s styles.
pub fn options(e: &Env) -> AppOptions {
    AppOptions {
        device: Some("cpu".into()),
        ephemeral: true,
        registry: Some(Registry {
            bundled_dir: None,
            user_dir: e.styles.clone(),
        }),
        runs_dir: Some(e.root.join("runs")),
        ..Default::default()
    }
}

pub fn harness_with(opts: AppOptions) -> Harness<'static, AtelierApp> {
    Harness::builder()
        .with_size([1200.0, 800.0])
        .build_eframe(move |cc| AtelierApp::new(cc, opts))
}

pub fn harness(e: &Env) -> Harness<'static, AtelierApp> {
    harness_with(options(e))
}

/// As on a desktop without xdg-desktop-portal, exporting into `e`'s own Pictures folder.
pub fn portal_less_harness(e: &Env) -> Harness<'static, AtelierApp> {
    harness_with(AppOptions {
        export_dir: Some(e.root.join("Pictures").join("Atelier")),
        builtin_dialogs: true,
        ..options(e)
    })
}

/// Steps the UI (the worker threads run meanwhile) until `done` holds.
pub fn run_until(
    h: &mut Harness<'static, AtelierApp>,
    what: &str,
    limit: Duration,
    done: impl Fn(&AtelierApp) -> bool,
) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; notice: {:?}",
            h.state().state.notice
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}

/// The status line's notice as text ("" without one).
pub fn notice(a: &AtelierApp) -> String {
    a.state
        .notice
        .as_ref()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

pub fn write_photo(dir: &Path, w: u32, h: u32) -> PathBuf {
    let p = dir.join("photo.png");
    super::photo(w, h).save(&p).unwrap();
    p
}

/// A primary-button drag from `from` to `to` in ten pointer moves.
pub fn drag(h: &mut Harness<'static, AtelierApp>, from: egui::Pos2, to: egui::Pos2) {
    let button = |pos, pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    h.input_mut().events.push(egui::Event::PointerMoved(from));
    h.step();
    h.input_mut().events.push(button(from, true));
    h.step();
    for i in 1..=10 {
        let p = from + (to - from) * (i as f32 / 10.0);
        h.input_mut().events.push(egui::Event::PointerMoved(p));
        h.step();
    }
    h.input_mut().events.push(button(to, false));
    h.step();
}

/// A file dropped on the window, as eframe would deliver it.
#[derive(Debug)]
pub struct Dropped(pub PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Drops `p` on the window wherever the pointer is (nowhere known, unless a test moved
/// it) and steps once.
pub fn drop_file(h: &mut Harness<'static, AtelierApp>, p: &Path) {
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(p.to_path_buf())));
    h.step();
}

/// Drags `p` over the window to `pos` (held, not yet dropped) and steps once.
pub fn hold_file_at(h: &mut Harness<'static, AtelierApp>, p: &Path, pos: egui::Pos2) {
    h.input_mut().events.push(egui::Event::PointerMoved(pos));
    h.input_mut().hovered_files = vec![egui::HoveredFile {
        path: Some(p.to_path_buf()),
        mime: String::new(),
    }];
    h.step();
}

/// Drags `p` to `pos` and drops it there, as a desktop would: held, then let go.
pub fn drop_file_at(h: &mut Harness<'static, AtelierApp>, p: &Path, pos: egui::Pos2) {
    hold_file_at(h, p, pos);
    h.input_mut().events.push(egui::Event::PointerMoved(pos));
    h.input_mut().hovered_files.clear();
    drop_file(h, p);
}
