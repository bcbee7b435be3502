//! The open photo and what has been made of it so far.

use image::{GrayImage, RgbImage};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Document {
    /// Where the photo came from; `None` when pasted.
    pub path: Option<PathBuf>,
    pub name: String,
    /// Full resolution, as decoded (EXIF orientation applied).
    pub photo: Arc<RgbImage>,
    /// The photo's fingerprint in the result cache.
    pub key: u64,
    /// What the canvas shows: the photo scaled to fit the GPU's texture limit.
    pub display_photo: RgbImage,
    /// Display pixels per photo pixel.
    pub display_scale: f32,
    /// Display-size stylised pixels as they arrive (preview, then tiles).
    pub styled_display: Option<RgbImage>,
    /// The painted strength mask at display size; `None` is full strength everywhere.
    /// Shared with the undo history, which keeps the masks before each stroke.
    pub mask: Option<Arc<GrayImage>>,
    /// The finished full-resolution result and the style that made it.
    pub result: Option<(Arc<RgbImage>, PathBuf)>,
    /// The stroke scale `result` was made at, and that of the request in flight.
    pub result_scale: f32,
    pub job_scale: f32,
    /// The request in flight, its style and how far it got.
    pub job: Option<(u64, PathBuf)>,
    /// The full-resolution pass in flight, once the worker started it.
    pub progress: Option<crate::progress::PassProgress>,
    pub preview_ms: Option<f64>,
    pub full_ms: Option<f64>,
}

impl Document {
    pub fn new(path: Option<PathBuf>, photo: RgbImage, max_texture_side: u32) -> Self {
        let (w, h) = photo.dimensions();
        let (dw, dh) = crate::stylize::resample::fit_within(w, h, max_texture_side);
        let display_photo = if (dw, dh) == (w, h) {
            photo.clone()
        } else {
            crate::stylize::resample::bilinear(&photo, dw, dh)
        };
        let name = path
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pasted image".into());
        Self {
            path,
            name,
            key: super::cache::photo_key(&photo),
            photo: Arc::new(photo),
            display_scale: dw as f32 / w.max(1) as f32,
            display_photo,
            styled_display: None,
            mask: None,
            result: None,
            job: None,
            result_scale: 1.0,
            job_scale: 1.0,
            progress: None,
            preview_ms: None,
            full_ms: None,
        }
    }

    pub fn display_size(&self) -> [u32; 2] {
        [self.display_photo.width(), self.display_photo.height()]
    }

    /// True while the display holds the full-resolution tiles as they come (no scaling).
    pub fn streams_tiles(&self) -> bool {
        self.display_photo.dimensions() == self.photo.dimensions()
    }
}
