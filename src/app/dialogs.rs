//! The questions the app asks: the system's file dialogs (their filters from
//! [`crate::formats`], so they offer what the app opens) and "replace the existing file?".

use crate::formats::{IMAGE_EXTENSIONS, MODEL_EXTENSIONS, VIDEO_EXTENSIONS};
use std::path::{Path, PathBuf};

pub fn photo_or_video(dir: Option<&Path>) -> Option<PathBuf> {
    let both: Vec<&str> = IMAGE_EXTENSIONS
        .iter()
        .chain(VIDEO_EXTENSIONS)
        .copied()
        .collect();
    in_dir(rfd::FileDialog::new(), dir)
        .add_filter("Images and videos", &both)
        .add_filter("Images", IMAGE_EXTENSIONS)
        .add_filter("Videos", VIDEO_EXTENSIONS)
        .pick_file()
}

/// A model file to import (a fast-style-transfer folder is dropped instead).
pub fn model() -> Option<PathBuf> {
    rfd::FileDialog::new()
        .add_filter("Models", MODEL_EXTENSIONS)
        .pick_file()
}

/// A painting to use as an instant style.
pub fn painting(dir: Option<&Path>) -> Option<PathBuf> {
    in_dir(rfd::FileDialog::new(), dir)
        .set_title("Use a painting as a style")
        .add_filter("Images", IMAGE_EXTENSIONS)
        .pick_file()
}

/// Where to save the result; `name` is suggested.
pub fn save_image(dir: Option<&Path>, name: String) -> Option<PathBuf> {
    in_dir(rfd::FileDialog::new(), dir)
        .add_filter("PNG", &["png"])
        .add_filter("JPEG", &["jpg", "jpeg"])
        .add_filter("WebP", &["webp"])
        .set_file_name(name)
        .save_file()
}

/// Where to export a video; `name` is suggested.
pub fn export_video(dir: Option<&Path>, name: String) -> Option<PathBuf> {
    in_dir(rfd::FileDialog::new(), dir)
        .add_filter("MP4", &["mp4"])
        .add_filter("Matroska", &["mkv"])
        .add_filter("WebM", &["webm"])
        .set_file_name(name)
        .save_file()
}

fn in_dir(d: rfd::FileDialog, dir: Option<&Path>) -> rfd::FileDialog {
    match dir {
        Some(dir) => d.set_directory(dir),
        None => d,
    }
}

/// "`path` exists. Replace it?" as a modal; the answer once there is one.
pub fn replace_file(ctx: &egui::Context, path: &Path) -> Option<bool> {
    let mut answer = None;
    egui::Modal::new(egui::Id::unique("atelier-overwrite")).show(ctx, |ui| {
        ui.label(format!("{} exists. Replace it?", path.display()));
        ui.horizontal(|ui| {
            if ui.button("Replace").clicked() {
                answer = Some(true);
            }
            if ui.button("Cancel").clicked() {
                answer = Some(false);
            }
        });
    });
    answer
}
