//! What the app remembers between launches (eframe storage).

use crate::device::DeviceChoice;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const STORAGE_KEY: &str = "atelier-settings";
const MAX_RECENT: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub last_dir: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda:N` or `metal`, as on the command line.
    pub device: String,
    pub strength: f32,
    pub preserve_colors: bool,
    pub recent: Vec<PathBuf>,
    pub show_gallery: bool,
    pub show_training: bool,
    /// Path of the last style picked, restored on launch.
    pub style: Option<PathBuf>,
    pub jpeg_quality: u8,
    /// Strokes this many times larger than the network paints at the photo's size.
    pub stroke_scale: f32,
    /// The strength brush's size, hardness and mode.
    pub brush: super::mask::Brush,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            last_dir: None,
            device: "auto".into(),
            strength: 1.0,
            preserve_colors: false,
            recent: Vec::new(),
            show_gallery: true,
            show_training: false,
            style: None,
            jpeg_quality: 92,
            brush: Default::default(),
            stroke_scale: 1.0,
        }
    }
}

impl Settings {
    /// The device for styling and training alike: what was chosen, or automatic when this
    /// build cannot use it (settings saved by a GPU build, read by a CPU-only one).
    pub fn device_choice(&self) -> DeviceChoice {
        match self.device.parse() {
            Ok(DeviceChoice::Cuda(_)) if !cfg!(feature = "cuda") => DeviceChoice::Auto,
            Ok(DeviceChoice::Metal) if !cfg!(feature = "metal") => DeviceChoice::Auto,
            Ok(d) => d,
            Err(_) => DeviceChoice::Auto,
        }
    }

    /// Moves `path` to the front of the recent files and remembers its folder.
    pub fn add_recent(&mut self, path: PathBuf) {
        self.last_dir = path.parent().map(|p| p.to_path_buf());
        self.recent.retain(|p| p != &path);
        self.recent.insert(0, path);
        self.recent.truncate(MAX_RECENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_files_are_unique_newest_first_and_bounded() {
        let mut s = Settings::default();
        for i in 0..12 {
            s.add_recent(PathBuf::from(format!("/photos/{i}.jpg")));
        }
        s.add_recent(PathBuf::from("/photos/5.jpg"));
        assert_eq!(s.recent.len(), MAX_RECENT);
        assert_eq!(s.recent[0], PathBuf::from("/photos/5.jpg"));
        assert_eq!(s.recent.iter().filter(|p| p.ends_with("5.jpg")).count(), 1);
        assert_eq!(s.last_dir, Some(PathBuf::from("/photos")));
        // Settings written by an older version still load.
        let old: Settings = serde_json::from_str(r#"{"strength":0.5}"#).unwrap();
        assert_eq!(old.strength, 0.5);
        assert_eq!(old.device, "auto");
    }
}
