//! The style gallery: bundled and user styles with thumbnails. Clicking picks a
//! style; user styles can be renamed and deleted; dropping a model imports it (the app
//! does the importing off the UI thread).

use crate::model::registry::{Origin, Registry, StyleEntry};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};

pub enum GalleryAction {
    Select(PathBuf),
    Rename(StyleEntry, String),
    Delete(StyleEntry),
    ImportFiles,
}

pub struct GalleryPanel {
    pub registry: Registry,
    pub entries: Vec<StyleEntry>,
    /// Files that could not be read, shown under the list.
    pub problems: Vec<String>,
    pub selected: Option<PathBuf>,
    thumbs: HashMap<PathBuf, egui::TextureHandle>,
    thumb_rx: Option<Receiver<(PathBuf, egui::ColorImage)>>,
    renaming: Option<(PathBuf, String)>,
    confirm_delete: Option<PathBuf>,
}

impl GalleryPanel {
    pub fn new(registry: Registry) -> Self {
        let mut g = Self {
            registry,
            entries: Vec::new(),
            problems: Vec::new(),
            selected: None,
            thumbs: HashMap::new(),
            thumb_rx: None,
            renaming: None,
            confirm_delete: None,
        };
        g.refresh(None);
        g
    }

    /// Re-reads both style folders; thumbnails load on a background thread.
    pub fn refresh(&mut self, ctx: Option<&egui::Context>) {
        let (entries, errors) = self.registry.list();
        self.entries = entries;
        self.problems = errors.iter().map(|e| e.to_string()).collect();
        let missing: Vec<PathBuf> = self
            .entries
            .iter()
            .map(|e| e.path.clone())
            .filter(|p| !self.thumbs.contains_key(p))
            .collect();
        if missing.is_empty() {
            return;
        }
        let (tx, rx) = channel();
        let ctx = ctx.cloned();
        std::thread::spawn(move || {
            for path in missing {
                let Ok(Some(png)) = crate::model::format::read_thumbnail(&path) else {
                    continue;
                };
                let Ok(img) = image::load_from_memory(&png) else {
                    continue;
                };
                let rgba = img.into_rgba8();
                let size = [rgba.width() as usize, rgba.height() as usize];
                let ci = egui::ColorImage::from_rgba_unmultiplied(size, rgba.as_raw());
                if tx.send((path, ci)).is_err() {
                    return;
                }
                if let Some(c) = &ctx {
                    c.request_repaint();
                }
            }
        });
        self.thumb_rx = Some(rx);
    }

    pub fn entry(&self, path: &std::path::Path) -> Option<&StyleEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) -> Vec<GalleryAction> {
        if let Some(rx) = &self.thumb_rx {
            while let Ok((path, img)) = rx.try_recv() {
                let tex = ui.ctx().load_texture(
                    format!("thumb:{}", path.display()),
                    img,
                    Default::default(),
                );
                self.thumbs.insert(path, tex);
            }
        }
        let mut actions = Vec::new();
        ui.horizontal(|ui| {
            ui.heading("Styles");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .button("Import…")
                    .on_hover_text("Add a PyTorch .pth/.model file or a fast-style-transfer folder (or drop it here)")
                    .clicked()
                {
                    actions.push(GalleryAction::ImportFiles);
                }
            });
        });
        ui.separator();
        egui::ScrollArea::vertical().show(ui, |ui| {
            if self.entries.is_empty() {
                ui.label("No styles yet. Train one, or drop a model file here.");
            }
            let mut last_origin = None;
            for entry in self.entries.clone() {
                if last_origin != Some(entry.origin) {
                    last_origin = Some(entry.origin);
                    ui.label(
                        egui::RichText::new(match entry.origin {
                            Origin::Bundled => "Bundled",
                            Origin::User => "Yours",
                        })
                        .small()
                        .weak(),
                    );
                }
                self.entry_ui(ui, &entry, &mut actions);
            }
            for p in &self.problems {
                ui.colored_label(ui.visuals().warn_fg_color, p);
            }
        });
        actions
    }

    fn entry_ui(
        &mut self,
        ui: &mut egui::Ui,
        entry: &StyleEntry,
        actions: &mut Vec<GalleryAction>,
    ) {
        let selected = self.selected.as_ref() == Some(&entry.path);
        let frame = egui::Frame::group(ui.style()).fill(if selected {
            ui.visuals().selection.bg_fill
        } else {
            ui.visuals().faint_bg_color
        });
        let inner = frame.show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                let size = egui::Vec2::splat(64.0);
                match self.thumbs.get(&entry.path) {
                    Some(t) => {
                        ui.add(egui::Image::new(t).fit_to_exact_size(size));
                    }
                    None => {
                        ui.allocate_exact_size(size, egui::Sense::hover());
                    }
                }
                ui.vertical(|ui| {
                    if let Some((path, name)) = &mut self.renaming {
                        if path == &entry.path {
                            let r = ui.text_edit_singleline(name);
                            if r.lost_focus() {
                                if ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                                    actions
                                        .push(GalleryAction::Rename(entry.clone(), name.clone()));
                                }
                                self.renaming = None;
                            } else {
                                r.request_focus();
                            }
                            return;
                        }
                    }
                    ui.strong(&entry.meta.name);
                    let by = match (&entry.meta.title, &entry.meta.artist) {
                        (Some(t), Some(a)) => format!("{t} — {a}"),
                        (None, Some(a)) => a.clone(),
                        (Some(t), None) => t.clone(),
                        (None, None) => entry.meta.variant.as_str().to_string(),
                    };
                    ui.label(egui::RichText::new(by).small());
                });
            });
        });
        let response = inner.response.interact(egui::Sense::click());
        let response = response.on_hover_text(entry.path.display().to_string());
        if response.clicked() {
            self.selected = Some(entry.path.clone());
            actions.push(GalleryAction::Select(entry.path.clone()));
        }
        if entry.origin == Origin::User {
            response.context_menu(|ui| {
                if ui.button("Rename…").clicked() {
                    self.renaming = Some((entry.path.clone(), entry.meta.name.clone()));
                    ui.close();
                }
                if ui.button("Delete…").clicked() {
                    self.confirm_delete = Some(entry.path.clone());
                    ui.close();
                }
            });
        }
        if self.confirm_delete.as_ref() == Some(&entry.path) {
            ui.horizontal(|ui| {
                ui.label(format!("Delete '{}'?", entry.meta.name));
                if ui.button("Delete").clicked() {
                    actions.push(GalleryAction::Delete(entry.clone()));
                    self.confirm_delete = None;
                }
                if ui.button("Keep").clicked() {
                    self.confirm_delete = None;
                }
            });
        }
    }
}
