//! The questions the app asks: which file (the system's dialog, or the app's own browser
//! where the system has none) and "replace the existing file?".
//!
//! rfd talks to the xdg-desktop-portal (or zenity); where neither runs — minimal desktops,
//! many tiling window managers, remote sessions — it returns at once with nothing, the
//! same as a cancel. A cancel takes a person at least a moment, so an answer faster than
//! [`HUMAN_CANCEL`] means the dialog never opened, and the app's own [`FileBrowser`]
//! takes over (and is used directly from then on).

use crate::formats::{IMAGE_EXTENSIONS, MODEL_EXTENSIONS, VIDEO_EXTENSIONS};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Faster than anyone closes a file dialog.
const HUMAN_CANCEL: Duration = Duration::from_millis(300);

/// What a file is being asked for; the answer goes back to it.
#[derive(Debug, Clone, PartialEq)]
pub enum Purpose {
    /// A photo or video to open.
    Open,
    /// A model file to import.
    Import,
    /// A session sidecar (`.atelier.json`) to reopen.
    Session,
    /// Where to save the result; the suggested name.
    SaveImage(String),
    /// Where to export the open video; the suggested name.
    ExportVideo(String),
    /// The training panel's painting.
    Painting,
    /// A painting to use as an instant style.
    StylePainting,
    /// The training panel's folder of photos.
    PhotoFolder,
    /// A training run's folder to resume.
    RunFolder,
}

impl Purpose {
    fn title(&self) -> &'static str {
        match self {
            Purpose::Open => "Open a photo or video",
            Purpose::Import => "Import a style",
            Purpose::Session => "Open a session",
            Purpose::SaveImage(_) => "Save the result",
            Purpose::ExportVideo(_) => "Export the video",
            Purpose::Painting => "Choose the painting",
            Purpose::StylePainting => "Use a painting as a style",
            Purpose::PhotoFolder => "Choose the folder of photos",
            Purpose::RunFolder => "Choose a training run",
        }
    }

    /// The extensions offered; empty for any file.
    fn extensions(&self) -> Vec<&'static str> {
        match self {
            Purpose::Open => IMAGE_EXTENSIONS
                .iter()
                .chain(VIDEO_EXTENSIONS)
                .copied()
                .collect(),
            Purpose::Import => MODEL_EXTENSIONS.to_vec(),
            Purpose::Session => vec!["json"],
            Purpose::SaveImage(_) => vec!["png", "jpg", "jpeg", "webp"],
            Purpose::ExportVideo(_) => vec!["mp4", "mkv", "webm"],
            Purpose::Painting | Purpose::StylePainting => IMAGE_EXTENSIONS.to_vec(),
            Purpose::PhotoFolder | Purpose::RunFolder => Vec::new(),
        }
    }

    fn wants_folder(&self) -> bool {
        matches!(self, Purpose::PhotoFolder | Purpose::RunFolder)
    }

    /// The suggested file name when saving.
    fn save_name(&self) -> Option<&str> {
        match self {
            Purpose::SaveImage(n) | Purpose::ExportVideo(n) => Some(n),
            _ => None,
        }
    }
}

/// How the system's dialog went.
pub enum Native {
    Picked(PathBuf),
    Cancelled,
    /// It did not open (no portal, no zenity).
    Unavailable,
}

/// Asks through the system's dialog (blocking, as rfd's dialogs are).
pub fn native(purpose: &Purpose, dir: Option<&Path>) -> Native {
    let mut d = rfd::FileDialog::new().set_title(purpose.title());
    if let Some(dir) = dir {
        d = d.set_directory(dir);
    }
    let exts = purpose.extensions();
    d = match purpose {
        Purpose::Open => d
            .add_filter("Images and videos", &exts)
            .add_filter("Images", IMAGE_EXTENSIONS)
            .add_filter("Videos", VIDEO_EXTENSIONS),
        Purpose::SaveImage(_) => d
            .add_filter("PNG", &["png"])
            .add_filter("JPEG", &["jpg", "jpeg"])
            .add_filter("WebP", &["webp"]),
        Purpose::ExportVideo(_) => d
            .add_filter("MP4", &["mp4"])
            .add_filter("Matroska", &["mkv"])
            .add_filter("WebM", &["webm"]),
        Purpose::Import => d.add_filter("Models", &exts),
        Purpose::Session => d.add_filter("Atelier sessions", &exts),
        Purpose::Painting | Purpose::StylePainting => d.add_filter("Images", &exts),
        Purpose::PhotoFolder | Purpose::RunFolder => d,
    };
    if let Some(name) = purpose.save_name() {
        d = d.set_file_name(name);
    }
    let t = Instant::now();
    let picked = match purpose {
        Purpose::SaveImage(_) | Purpose::ExportVideo(_) => d.save_file(),
        Purpose::PhotoFolder | Purpose::RunFolder => d.pick_folder(),
        _ => d.pick_file(),
    };
    match picked {
        Some(p) => Native::Picked(p),
        None if t.elapsed() < HUMAN_CANCEL => Native::Unavailable,
        None => Native::Cancelled,
    }
}

/// Whether to try the system's dialog at all: not where it is known to be missing, nor
/// where `ATELIER_FILE_DIALOG=builtin` asks for the app's own.
pub fn native_wanted() -> bool {
    if std::env::var("ATELIER_FILE_DIALOG").is_ok_and(|v| v == "builtin") {
        return false;
    }
    if cfg!(target_os = "linux") {
        // The portal is reached over the session bus; zenity is rfd's other way.
        let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
            || std::env::var_os("XDG_RUNTIME_DIR")
                .is_some_and(|d| Path::new(&d).join("bus").exists());
        return bus || on_path("zenity");
    }
    true
}

/// Where one-click Export writes: Pictures/Atelier, or the nearest thing to it.
pub fn default_export_dir() -> PathBuf {
    let dirs = directories::UserDirs::new();
    dirs.as_ref()
        .and_then(|u| u.picture_dir().map(Path::to_path_buf))
        .or_else(|| dirs.as_ref().map(|u| u.home_dir().join("Pictures")))
        .unwrap_or_else(|| crate::model::registry::data_dir().join("exports"))
        .join("Atelier")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// What the browser's user did this frame.
pub enum BrowserAction {
    Picked(PathBuf),
    Cancelled,
}

/// The app's own file browser: a folder's listing, filtered to what the purpose takes,
/// with a name field when saving. Folders are read when entered, not every frame.
pub struct FileBrowser {
    pub purpose: Purpose,
    pub dir: PathBuf,
    /// What the location field holds; Enter goes there.
    location: String,
    /// The file name (saving) or the selected entry.
    pub name: String,
    entries: Vec<Entry>,
    error: Option<String>,
}

struct Entry {
    name: String,
    is_dir: bool,
}

impl FileBrowser {
    pub fn new(purpose: Purpose, dir: Option<&Path>) -> Self {
        let dir = dir
            .filter(|d| d.is_dir())
            .map(Path::to_path_buf)
            .or_else(|| directories::UserDirs::new().map(|u| u.home_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from("."));
        let name = purpose.save_name().unwrap_or_default().to_string();
        let mut b = Self {
            purpose,
            dir: PathBuf::new(),
            location: String::new(),
            name,
            entries: Vec::new(),
            error: None,
        };
        b.enter(dir);
        b
    }

    /// Lists `dir`; stays where it was if it cannot be read, saying why.
    pub fn enter(&mut self, dir: PathBuf) {
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) => {
                self.error = Some(format!("Cannot open {}: {e}", dir.display()));
                self.location = self.dir.display().to_string();
                return;
            }
        };
        let exts = self.purpose.extensions();
        let folders_only = self.purpose.wants_folder();
        let mut entries: Vec<Entry> = read
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    return None;
                }
                // Follows links, so a linked folder is a folder.
                let is_dir = e.path().is_dir();
                let shown = is_dir
                    || (!folders_only
                        && (exts.is_empty()
                            || Path::new(&name)
                                .extension()
                                .map(|x| x.to_string_lossy().to_ascii_lowercase())
                                .is_some_and(|x| exts.contains(&x.as_str()))));
                shown.then_some(Entry { name, is_dir })
            })
            .collect();
        entries.sort_by(|a, b| {
            (!a.is_dir, a.name.to_lowercase()).cmp(&(!b.is_dir, b.name.to_lowercase()))
        });
        self.entries = entries;
        self.error = None;
        self.location = dir.display().to_string();
        self.dir = dir;
        if self.purpose.save_name().is_none() {
            self.name.clear();
        }
    }

    /// The path the OK button would answer with, if any.
    pub fn answer(&self) -> Option<PathBuf> {
        if self.purpose.wants_folder() {
            return Some(match self.name.as_str() {
                "" => self.dir.clone(),
                n => self.dir.join(n),
            });
        }
        let name = self.name.trim();
        (!name.is_empty()).then(|| self.dir.join(name))
    }

    pub fn ui(&mut self, ctx: &egui::Context) -> Option<BrowserAction> {
        let mut action = None;
        let mut go = None;
        let saving = self.purpose.save_name().is_some();
        let modal = egui::Modal::new(egui::Id::unique("atelier-file-browser")).show(ctx, |ui| {
            ui.set_width(560.0);
            ui.heading(self.purpose.title());
            ui.horizontal(|ui| {
                if ui.button("Up").on_hover_text("The folder above").clicked() {
                    go = self.dir.parent().map(Path::to_path_buf);
                }
                if let Some(u) = directories::UserDirs::new() {
                    if ui.button("Home").clicked() {
                        go = Some(u.home_dir().to_path_buf());
                    }
                    if let Some(p) = u.picture_dir() {
                        if ui.button("Pictures").clicked() {
                            go = Some(p.to_path_buf());
                        }
                    }
                }
                let l = ui.label("Folder");
                let loc = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.location)
                            .desired_width(f32::INFINITY)
                            .hint_text("folder"),
                    )
                    .labelled_by(l.id);
                if loc.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                    go = Some(PathBuf::from(self.location.trim()));
                }
            });
            if let Some(e) = &self.error {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            egui::ScrollArea::vertical()
                .max_height(320.0)
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    if self.entries.is_empty() {
                        ui.weak("Nothing here that fits.");
                    }
                    for e in &self.entries {
                        let label = if e.is_dir {
                            format!("{}/", e.name)
                        } else {
                            e.name.clone()
                        };
                        let r = ui.selectable_label(self.name == e.name, label);
                        if r.double_clicked() {
                            if e.is_dir {
                                go = Some(self.dir.join(&e.name));
                            } else {
                                action = Some(BrowserAction::Picked(self.dir.join(&e.name)));
                            }
                        } else if r.clicked() {
                            if e.is_dir && !self.purpose.wants_folder() {
                                go = Some(self.dir.join(&e.name));
                            } else {
                                self.name = e.name.clone();
                            }
                        }
                    }
                });
            ui.separator();
            ui.horizontal(|ui| {
                let l = ui.label(if saving { "File name" } else { "Selected" });
                ui.add(egui::TextEdit::singleline(&mut self.name).desired_width(300.0))
                    .labelled_by(l.id);
            });
            ui.horizontal(|ui| {
                let ok = if saving {
                    "Save"
                } else if self.purpose.wants_folder() {
                    "Choose this folder"
                } else {
                    "Open"
                };
                let answer = self.answer();
                if ui
                    .add_enabled(answer.is_some(), egui::Button::new(ok))
                    .clicked()
                {
                    action = answer.map(BrowserAction::Picked);
                }
                if ui.button("Cancel").clicked() {
                    action = Some(BrowserAction::Cancelled);
                }
            });
        });
        if modal.should_close() && action.is_none() {
            action = Some(BrowserAction::Cancelled);
        }
        if let Some(dir) = go {
            self.enter(dir);
        }
        action
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_lists_folders_and_fitting_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("Holiday")).unwrap();
        for f in ["b.JPG", "a.png", "notes.txt", ".hidden.png"] {
            std::fs::write(tmp.path().join(f), b"x").unwrap();
        }
        let b = FileBrowser::new(Purpose::Painting, Some(tmp.path()));
        let names: Vec<_> = b.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Holiday", "a.png", "b.JPG"]);
        assert!(b.answer().is_none(), "nothing picked yet");

        let mut b = FileBrowser::new(Purpose::PhotoFolder, Some(tmp.path()));
        assert_eq!(b.entries.len(), 1);
        assert_eq!(b.answer(), Some(tmp.path().to_path_buf()));
        b.enter(tmp.path().join("missing"));
        assert!(b.error.is_some());
        assert_eq!(b.dir, tmp.path());

        let b = FileBrowser::new(
            Purpose::SaveImage("photo-style.png".into()),
            Some(tmp.path()),
        );
        assert_eq!(b.answer(), Some(tmp.path().join("photo-style.png")));
    }
}
