//! The style gallery: the user's styles, then the bundled ones, as a grid of tiles (the
//! style's thumbnail with its painting inset in a corner, the name under it) under a
//! search field. Clicking picks a style; user styles can be renamed and deleted; a painting
//! dropped on the panel becomes an instant style and a model dropped there is imported
//! (the app routes drops, [`Command::dropped`]; the panel only draws the drop hint), and
//! styles added this session come first. The panel only emits [`Command`]s for these; the
//! pictures are read by a job ([`Job::Pictures`]) and handed back here.
//!
//! A grid rather than a list grouped by painter: thirty-odd bundled styles by two dozen
//! painters would make as many one-entry groups, while three tiles to a row of a 260-px
//! panel show a dozen styles at once. The painter, title and year are in each tile's
//! tooltip, under a larger copy of the painting, and the search covers them.

use super::command::Command;
use super::jobs::Job;
use crate::model::format::ModelMeta;
use crate::model::registry::{Origin, Registry, StyleEntry};
use egui::accesskit::Role;
use egui::{Align, Color32, Id, Key, Rect, Sense, TextureHandle, Vec2};
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// The narrowest a tile gets before the grid drops a column.
const TILE_MIN_WIDTH: f32 = 76.0;
const TILE_GAP: f32 = 6.0;
const TILE_PAD: f32 = 3.0;
/// The painting in a tile's corner is decoded this small, so the GPU never has to shrink
/// a 256-px texture to thirty points (there are no mipmaps) and it stays crisp at 2×.
const SWATCH_SIDE: u32 = 64;
/// The swatch's largest side as a share of the thumbnail's.
const SWATCH_SHARE: f32 = 0.42;
/// The largest side of the painting in a tile's tooltip.
const TOOLTIP_PAINTING: f32 = 200.0;

/// A model file's pictures, uploaded. `stamp` is the file's modification time, so a file
/// replaced in place is read again and an unchanged one never is.
struct Pictures {
    stamp: Option<SystemTime>,
    thumb: Option<TextureHandle>,
    swatch: Option<TextureHandle>,
    painting: Option<TextureHandle>,
}

/// A style file's pictures, decoded by a job and uploaded on the UI thread.
pub struct DecodedPictures {
    path: PathBuf,
    stamp: Option<SystemTime>,
    thumb: Option<egui::ColorImage>,
    swatch: Option<egui::ColorImage>,
    painting: Option<egui::ColorImage>,
}

pub struct GalleryPanel {
    pub registry: Registry,
    pub entries: Vec<StyleEntry>,
    /// Files that could not be read, shown under the grid.
    pub problems: Vec<String>,
    pub selected: Option<PathBuf>,
    /// What the search field holds.
    pub query: String,
    /// Per entry: name, title, artist and year, folded by [`fold`], built once per refresh
    /// so a keystroke costs a substring test per style.
    haystacks: Vec<String>,
    /// The query `matches` was computed for; `None` after a refresh.
    matched_query: Option<String>,
    /// Indices into `entries` that match the query, user styles first.
    matches: Vec<usize>,
    pictures: HashMap<PathBuf, Pictures>,
    /// The pictures job of the latest refresh, while it runs: its number and its brake.
    loading: Option<(u64, Arc<AtomicBool>)>,
    generation: u64,
    /// The style being renamed, the name so far, and whether the field still wants focus.
    renaming: Option<(PathBuf, String, bool)>,
    confirm_delete: Option<PathBuf>,
    /// The selection last brought into view: one made elsewhere (`--style`, a finished
    /// training) is scrolled to once, while a click in the grid never makes it jump.
    scrolled_to: Option<PathBuf>,
    /// Styles added this session (a painting made an instant style, an import, a mix),
    /// newest first: shown at the top of "Yours", where they were made.
    added: Vec<PathBuf>,
    /// Files are held over the gallery (drawn as a drop hint); set by the app before
    /// [`Self::ui`], which draws it; tests read it.
    pub drop_hover: bool,
    /// Where the gallery's panel was last drawn (screen points), `None` while hidden: a
    /// drop over it makes a painting an instant style.
    pub panel_rect: Option<Rect>,
}

impl GalleryPanel {
    /// Empty until the first [`Self::refresh`].
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            entries: Vec::new(),
            problems: Vec::new(),
            selected: None,
            query: String::new(),
            haystacks: Vec::new(),
            matched_query: None,
            matches: Vec::new(),
            pictures: HashMap::new(),
            loading: None,
            generation: 0,
            renaming: None,
            confirm_delete: None,
            scrolled_to: None,
            added: Vec::new(),
            drop_hover: false,
            panel_rect: None,
        }
    }

    /// Shows the style at `path`, just added, first in "Yours" from now on.
    pub fn added(&mut self, path: PathBuf) {
        self.added.retain(|p| *p != path);
        self.added.insert(0, path);
        self.matched_query = None;
    }

    /// The styles in the order the grid last showed them (those matching the search).
    pub fn shown(&self) -> impl Iterator<Item = &StyleEntry> {
        self.matches.iter().filter_map(|&i| self.entries.get(i))
    }

    /// Re-reads both style folders; returns the job that reads the pictures of new or
    /// changed files, for the app to start.
    #[must_use]
    pub fn refresh(&mut self) -> Option<Job> {
        let (entries, errors) = self.registry.list();
        self.entries = entries;
        self.problems = errors.iter().map(|e| e.to_string()).collect();
        self.haystacks = self.entries.iter().map(|e| haystack(&e.meta)).collect();
        self.matched_query = None;

        let present: HashSet<&PathBuf> = self.entries.iter().map(|e| &e.path).collect();
        self.pictures.retain(|p, _| present.contains(p));
        let stale: Vec<(PathBuf, Option<SystemTime>)> = self
            .entries
            .iter()
            .map(|e| (e.path.clone(), modified(&e.path)))
            .filter(|(p, stamp)| self.pictures.get(p).is_none_or(|pic| pic.stamp != *stamp))
            .collect();
        // What an earlier job had not delivered yet is among the stale ones.
        if let Some((_, cancel)) = self.loading.take() {
            cancel.store(true, Ordering::Relaxed);
        }
        if stale.is_empty() {
            return None;
        }
        self.generation += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        self.loading = Some((self.generation, cancel.clone()));
        Some(Job::Pictures {
            generation: self.generation,
            styles: stale,
            cancel,
        })
    }

    pub fn entry(&self, path: &std::path::Path) -> Option<&StyleEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// Whether pictures are still being read from the style files.
    pub fn loading_pictures(&self) -> bool {
        self.loading.is_some()
    }

    /// Whether the painting of the style at `path` has been loaded.
    pub fn has_painting(&self, path: &std::path::Path) -> bool {
        self.pictures
            .get(path)
            .is_some_and(|p| p.painting.is_some())
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Command>) {
        let area = ui.max_rect();
        self.contents(ui, actions);
        if self.drop_hover {
            drop_hint(ui, area);
        }
    }

    fn contents(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            ui.heading("Styles");
            ui.with_layout(egui::Layout::right_to_left(Align::Center), |ui| {
                if ui
                    .button("Use a painting…")
                    .on_hover_text(
                        "Any painting becomes a style at once (an instant style); train it later for full quality",
                    )
                    .clicked()
                {
                    actions.push(Command::UsePaintingDialog);
                }
                if ui
                    .button("Import…")
                    .on_hover_text("Add a PyTorch .pth/.model file or a fast-style-transfer folder (or drop it here)")
                    .clicked()
                {
                    actions.push(Command::ImportDialog);
                }
            });
        });
        self.search_ui(ui, actions);
        self.update_matches();
        ui.separator();
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if self.entries.is_empty() {
                    ui.label("No styles yet. Train one, or drop a model file here.");
                } else if self.matches.is_empty() {
                    ui.label(format!("No styles match “{}”.", self.query.trim()));
                }
                let users = self
                    .matches
                    .partition_point(|&i| self.entries[i].origin == Origin::User);
                self.section(ui, Origin::User, 0..users, actions);
                self.section(ui, Origin::Bundled, users..self.matches.len(), actions);
                for p in &self.problems {
                    ui.colored_label(ui.visuals().warn_fg_color, p);
                }
            });
        self.dialogs(ui.ctx(), actions);
    }

    /// One style's pictures from the job of refresh number `generation`.
    pub fn receive_pictures(&mut self, ctx: &egui::Context, generation: u64, d: DecodedPictures) {
        // An older job's pictures may be of a file since replaced.
        if self.loading.as_ref().is_none_or(|(g, _)| *g != generation) {
            return;
        }
        let upload = |kind: &str, img: Option<egui::ColorImage>| {
            img.map(|img| {
                ctx.load_texture(
                    format!("{kind}:{}", d.path.display()),
                    img,
                    egui::TextureOptions::LINEAR,
                )
            })
        };
        let pictures = Pictures {
            stamp: d.stamp,
            thumb: upload("thumb", d.thumb),
            swatch: upload("swatch", d.swatch),
            painting: upload("painting", d.painting),
        };
        self.pictures.insert(d.path, pictures);
    }

    pub fn pictures_done(&mut self, generation: u64) {
        if self.loading.as_ref().is_some_and(|(g, _)| *g == generation) {
            self.loading = None;
        }
    }

    fn search_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Command>) {
        let find = egui::KeyboardShortcut::new(egui::Modifiers::COMMAND, Key::F);
        let focus = ui.input_mut(|i| i.consume_shortcut(&find));
        ui.horizontal(|ui| {
            ui.with_layout(egui::Layout::right_to_left(Align::Center), |ui| {
                if !self.query.is_empty()
                    && ui
                        .small_button("×")
                        .on_hover_text("Clear the search (Esc)")
                        .clicked()
                {
                    self.query.clear();
                }
                let field = ui.add(
                    egui::TextEdit::singleline(&mut self.query)
                        .id(Id::unique("atelier-gallery-search"))
                        .hint_text("Search styles, painters, years")
                        .desired_width(f32::INFINITY),
                );
                if focus {
                    field.request_focus();
                }
                if field.lost_focus() {
                    let (esc, enter) =
                        ui.input(|i| (i.key_pressed(Key::Escape), i.key_pressed(Key::Enter)));
                    if esc {
                        self.query.clear();
                    } else if enter && !self.query.trim().is_empty() {
                        self.update_matches();
                        if let Some(&i) = self.matches.first() {
                            let path = self.entries[i].path.clone();
                            self.selected = Some(path.clone());
                            self.scrolled_to = None;
                            actions.push(Command::SelectStyle(path));
                        }
                    }
                }
            });
        });
    }

    fn update_matches(&mut self) {
        if self.haystacks.len() != self.entries.len() {
            self.haystacks = self.entries.iter().map(|e| haystack(&e.meta)).collect();
            self.matched_query = None;
        }
        if self.matched_query.as_deref() == Some(self.query.as_str()) {
            return;
        }
        let query = fold(&self.query);
        let words: Vec<&str> = query.split_whitespace().collect();
        let mut matches: Vec<usize> = (0..self.entries.len())
            .filter(|&i| words.iter().all(|w| self.haystacks[i].contains(w)))
            .collect();
        // User styles first, those added this session first among them, newest first;
        // stable, so the rest keep the registry's order by name.
        let added = |i: usize| {
            let path = &self.entries[i].path;
            self.added
                .iter()
                .position(|p| p == path)
                .unwrap_or(usize::MAX)
        };
        matches.sort_by_key(|&i| (self.entries[i].origin != Origin::User, added(i)));
        self.matches = matches;
        self.matched_query = Some(self.query.clone());
    }

    /// A collapsible group of tiles, `matches[range]`; hidden when nothing in it matches.
    fn section(
        &mut self,
        ui: &mut egui::Ui,
        origin: Origin,
        range: Range<usize>,
        actions: &mut Vec<Command>,
    ) {
        if range.is_empty() {
            return;
        }
        let total = self.entries.iter().filter(|e| e.origin == origin).count();
        let title = match origin {
            Origin::User => "Yours",
            Origin::Bundled => "Bundled",
        };
        let header = if range.len() == total {
            format!("{title} ({total})")
        } else {
            format!("{title} ({} of {total})", range.len())
        };
        // A collapsed group would hide search hits, so searching opens it.
        let searching = !self.query.trim().is_empty();
        egui::CollapsingHeader::new(header)
            .id_salt(title)
            .default_open(true)
            .open(searching.then_some(true))
            .show_unindented(ui, |ui| self.grid(ui, range, actions));
    }

    fn grid(&mut self, ui: &mut egui::Ui, range: Range<usize>, actions: &mut Vec<Command>) {
        let width = ui.available_width();
        let cols = (((width + TILE_GAP) / (TILE_MIN_WIDTH + TILE_GAP)).floor() as usize).max(1);
        let tile_w = ((width - TILE_GAP * (cols - 1) as f32) / cols as f32).max(1.0);
        let line = ui.fonts_mut(|f| f.row_height(&name_font(ui)));
        let tile = Vec2::new(tile_w, tile_w + 2.0 * line + TILE_PAD);
        ui.spacing_mut().item_spacing.y = TILE_GAP;
        for row in range.clone().step_by(cols) {
            let (_, row_rect) = ui.allocate_space(Vec2::new(width, tile.y));
            for (c, k) in (row..(row + cols).min(range.end)).enumerate() {
                let min = row_rect.min + Vec2::new(c as f32 * (tile_w + TILE_GAP), 0.0);
                self.tile(ui, self.matches[k], Rect::from_min_size(min, tile), actions);
            }
        }
    }

    fn tile(&mut self, ui: &mut egui::Ui, i: usize, rect: Rect, actions: &mut Vec<Command>) {
        let Self {
            entries,
            pictures,
            selected,
            scrolled_to,
            renaming,
            confirm_delete,
            ..
        } = self;
        let entry = &entries[i];
        let response = ui.interact(rect, ui.scope_id().with(&entry.path), Sense::click());
        if response.clicked() {
            *selected = Some(entry.path.clone());
            *scrolled_to = selected.clone();
            actions.push(Command::SelectStyle(entry.path.clone()));
        }
        let is_selected = selected.as_ref() == Some(&entry.path);
        response.widget_info(|| {
            egui::WidgetInfo::selected(Role::Button, true, is_selected, &entry.meta.name)
        });
        if is_selected && scrolled_to != selected {
            response.scroll_to_me(Some(Align::Center));
            *scrolled_to = selected.clone();
        }
        let pics = pictures.get(&entry.path);
        if ui.is_rect_visible(rect) {
            paint_tile(ui, &response, entry, pics, is_selected);
        }
        let response = response.on_hover_ui(|ui| tooltip(ui, entry, pics));
        if entry.origin == Origin::User {
            response.context_menu(|ui| {
                if entry.meta.variant == crate::model::Variant::Instant {
                    if ui
                        .button("Train for full quality…")
                        .on_hover_text("Open the training panel with this painting filled in")
                        .clicked()
                    {
                        actions.push(Command::TrainFullQuality(entry.clone()));
                        ui.close();
                    }
                    let others: Vec<&StyleEntry> = entries
                        .iter()
                        .filter(|o| {
                            o.path != entry.path && o.meta.variant == crate::model::Variant::Instant
                        })
                        .collect();
                    ui.add_enabled_ui(!others.is_empty(), |ui| {
                        ui.menu_button("Mix half and half with", |ui| {
                            for o in others {
                                if ui.button(&o.meta.name).clicked() {
                                    actions.push(Command::MixStyles {
                                        a: entry.path.clone(),
                                        b: o.path.clone(),
                                        weight: 0.5,
                                    });
                                    ui.close();
                                }
                            }
                        });
                    })
                    .response
                    .on_disabled_hover_text(
                        "Make another instant style from a painting to mix with",
                    );
                    ui.separator();
                }
                if ui.button("Rename…").clicked() {
                    *renaming = Some((entry.path.clone(), entry.meta.name.clone(), true));
                    ui.close();
                }
                if ui.button("Delete…").clicked() {
                    *confirm_delete = Some(entry.path.clone());
                    ui.close();
                }
            });
        }
    }

    /// The rename and delete confirmations, as modal dialogs.
    fn dialogs(&mut self, ctx: &egui::Context, actions: &mut Vec<Command>) {
        if let Some((path, name, want_focus)) = &mut self.renaming {
            let (mut apply, mut cancel) = (false, false);
            let modal = egui::Modal::new(Id::unique("atelier-gallery-rename")).show(ctx, |ui| {
                ui.set_width(280.0);
                ui.heading("Rename style");
                let label = ui.label("New name:");
                let field = ui
                    .add(
                        egui::TextEdit::singleline(name)
                            .id(Id::unique("atelier-gallery-rename-field"))
                            .desired_width(f32::INFINITY),
                    )
                    .labelled_by(label.id);
                // Not while the dialog is being measured: its widgets cannot hold focus then.
                if *want_focus && !ui.is_sizing_pass() {
                    field.request_focus();
                    *want_focus = false;
                }
                apply = field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
                ui.horizontal(|ui| {
                    apply |= ui.button("Rename").clicked();
                    cancel = ui.button("Cancel").clicked();
                });
            });
            if apply {
                if let Some(e) = self.entries.iter().find(|e| &e.path == path) {
                    actions.push(Command::RenameStyle(e.clone(), name.clone()));
                }
            }
            if apply || cancel || modal.should_close() {
                self.renaming = None;
            }
        }
        if let Some(path) = &self.confirm_delete {
            let Some(entry) = self.entries.iter().find(|e| &e.path == path) else {
                self.confirm_delete = None;
                return;
            };
            let (mut delete, mut keep) = (false, false);
            let modal = egui::Modal::new(Id::unique("atelier-gallery-delete")).show(ctx, |ui| {
                ui.label(format!("Delete '{}'?", entry.meta.name));
                ui.label(
                    egui::RichText::new("Its file is removed from your styles folder.")
                        .small()
                        .weak(),
                );
                ui.horizontal(|ui| {
                    delete = ui.button("Delete").clicked();
                    keep = ui.button("Keep").clicked();
                });
            });
            if delete {
                actions.push(Command::DeleteStyle(entry.clone()));
            }
            if delete || keep || modal.should_close() {
                self.confirm_delete = None;
            }
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads and decodes the pictures a style file carries (in a job: this is file I/O).
pub fn decode_pictures(path: PathBuf, stamp: Option<SystemTime>) -> DecodedPictures {
    let decode =
        |bytes: crate::Result<Option<Vec<u8>>>| image::load_from_memory(&bytes.ok()??).ok();
    let thumb = decode(crate::model::format::read_thumbnail(&path));
    let painting = decode(crate::model::format::read_painting(&path));
    let swatch = painting
        .as_ref()
        .map(|p| p.thumbnail(SWATCH_SIDE, SWATCH_SIDE));
    DecodedPictures {
        path,
        stamp,
        thumb: thumb.map(color_image),
        swatch: swatch.map(color_image),
        painting: painting.map(color_image),
    }
}

fn color_image(img: image::DynamicImage) -> egui::ColorImage {
    let rgba = img.into_rgba8();
    let size = [rgba.width() as usize, rgba.height() as usize];
    egui::ColorImage::from_rgba_unmultiplied(size, rgba.as_raw())
}

/// What the search looks in.
fn haystack(m: &ModelMeta) -> String {
    let fields = [
        Some(&m.name),
        m.title.as_ref(),
        m.artist.as_ref(),
        m.year.as_ref(),
    ];
    let joined: Vec<&str> = fields.into_iter().flatten().map(String::as_str).collect();
    fold(&joined.join("\n"))
}

/// Lower case without accents, so "leger" finds Léger and "ohashi" finds Ōhashi: the
/// Latin letters painters' names and titles use, and combining marks dropped.
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let plain = match c {
            'à'..='å' | 'ā' | 'ă' | 'ą' => 'a',
            'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
            'ð' | 'ď' | 'đ' => 'd',
            'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
            'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
            'ĥ' | 'ħ' => 'h',
            'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => 'i',
            'ĵ' => 'j',
            'ķ' => 'k',
            'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => 'l',
            'ñ' | 'ń' | 'ņ' | 'ň' => 'n',
            'ò'..='ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => 'o',
            'ŕ' | 'ŗ' | 'ř' => 'r',
            'ś' | 'ŝ' | 'ş' | 'š' => 's',
            'ţ' | 'ť' | 'ŧ' => 't',
            'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
            'ŵ' => 'w',
            'ý' | 'ÿ' | 'ŷ' => 'y',
            'ź' | 'ż' | 'ž' => 'z',
            'æ' => {
                out.push_str("ae");
                continue;
            }
            'œ' => {
                out.push_str("oe");
                continue;
            }
            'ß' => {
                out.push_str("ss");
                continue;
            }
            '’' | '‘' => '\'',
            '\u{300}'..='\u{36f}' => continue,
            c => c,
        };
        out.push(plain);
    }
    out
}

/// "Title, Artist, Year", from what the metadata has.
fn painting_caption(m: &ModelMeta) -> Option<String> {
    let parts: Vec<&str> = [&m.title, &m.artist, &m.year]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `size` scaled to fit a `side`-point square, keeping its shape.
fn fit(size: Vec2, side: f32) -> Vec2 {
    size * (side / size.max_elem().max(1.0))
}

/// The middle square of an image of `size`, as texture coordinates.
fn centre_square(size: Vec2) -> Rect {
    let s = Vec2::splat(size.min_elem()) / size.max(Vec2::splat(1.0));
    Rect::from_center_size(egui::pos2(0.5, 0.5), s)
}

/// A little under body size, so a long word such as "Composition" fits a tile's width
/// instead of breaking mid-word.
fn name_font(ui: &egui::Ui) -> egui::FontId {
    let body = egui::TextStyle::Body.resolve(ui.style());
    egui::FontId::new(body.size * 0.9, body.family)
}

fn paint_tile(
    ui: &egui::Ui,
    response: &egui::Response,
    entry: &StyleEntry,
    pics: Option<&Pictures>,
    selected: bool,
) {
    let visuals = ui.visuals();
    let painter = ui.painter();
    let rect = response.rect;
    let fill = if selected {
        visuals.selection.bg_fill
    } else if response.hovered() {
        visuals.widgets.hovered.weak_bg_fill
    } else {
        Color32::TRANSPARENT
    };
    painter.rect_filled(rect, 4.0, fill);
    if response.has_focus() {
        painter.rect_stroke(
            rect,
            4.0,
            visuals.selection.stroke,
            egui::StrokeKind::Inside,
        );
    }

    let side = rect.width() - 2.0 * TILE_PAD;
    let thumb_rect = Rect::from_min_size(rect.min + Vec2::splat(TILE_PAD), Vec2::splat(side));
    let thumb = pics.and_then(|p| p.thumb.as_ref());
    // Without a thumbnail the painting itself stands in, and needs no swatch.
    match thumb.or(pics.and_then(|p| p.painting.as_ref())) {
        Some(tex) => egui::Image::new(tex)
            .uv(centre_square(tex.size_vec2()))
            .corner_radius(3)
            .paint_at(ui, thumb_rect),
        None => {
            painter.rect_filled(thumb_rect, 3.0, visuals.extreme_bg_color);
            let initial: String = entry.meta.name.chars().take(1).collect();
            painter.text(
                thumb_rect.center(),
                egui::Align2::CENTER_CENTER,
                initial,
                egui::FontId::proportional(side * 0.4),
                visuals.weak_text_color(),
            );
        }
    }
    if let (Some(_), Some(swatch)) = (thumb, pics.and_then(|p| p.swatch.as_ref())) {
        let size = fit(swatch.size_vec2(), side * SWATCH_SHARE);
        let r = Rect::from_min_size(thumb_rect.max - size - Vec2::splat(4.0), size);
        painter.rect_filled(
            r.expand(2.0).translate(Vec2::splat(1.0)),
            2.0,
            Color32::from_black_alpha(90),
        );
        painter.rect_filled(r.expand(1.5), 1.0, Color32::from_gray(245));
        painter.image(
            swatch.id(),
            r,
            Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
            Color32::WHITE,
        );
    }

    let text_top = thumb_rect.bottom() + TILE_PAD;
    if text_top < rect.bottom() {
        let colour = if selected {
            visuals.selection.stroke.color
        } else {
            visuals.text_color()
        };
        let font = name_font(ui);
        let mut job = egui::text::LayoutJob::simple(entry.meta.name.clone(), font, colour, side);
        job.wrap.max_rows = 2;
        job.wrap.overflow_character = Some('…');
        job.halign = Align::Center;
        let galley = painter.layout_job(job);
        painter.galley(egui::pos2(rect.center().x, text_top), galley, colour);
    }
}

fn tooltip(ui: &mut egui::Ui, entry: &StyleEntry, pics: Option<&Pictures>) {
    ui.set_max_width(TOOLTIP_PAINTING + 20.0);
    let caption = painting_caption(&entry.meta);
    if let Some(tex) = pics.and_then(|p| p.painting.as_ref()) {
        let what = caption.as_deref().unwrap_or(&entry.meta.name);
        ui.add(
            egui::Image::new(tex)
                .fit_to_exact_size(fit(tex.size_vec2(), TOOLTIP_PAINTING))
                .alt_text(format!("Painting: {what}")),
        );
    }
    if let Some(c) = caption {
        ui.label(egui::RichText::new(c).strong());
    }
    ui.label(
        // Where it comes from, in the artist's terms; the network's name is for developers.
        egui::RichText::new(format!(
            "{} · {}",
            match entry.origin {
                Origin::User => "One of your styles",
                Origin::Bundled => "Comes with Atelier",
            },
            entry.path.display()
        ))
        .small()
        .weak(),
    );
    if entry.origin == Origin::User {
        ui.label(
            egui::RichText::new("Right-click to rename or delete.")
                .small()
                .weak(),
        );
    }
}

/// Files held over the gallery: a highlighted frame saying what a drop here does.
fn drop_hint(ui: &egui::Ui, area: Rect) {
    let painter = ui.painter_at(area);
    let accent = ui.visuals().selection.bg_fill;
    let frame = area.shrink(4.0);
    painter.rect_filled(frame, 8.0, ui.visuals().panel_fill.gamma_multiply(0.85));
    painter.rect_filled(frame, 8.0, accent.gamma_multiply(0.25));
    painter.rect_stroke(
        frame,
        8.0,
        egui::Stroke::new(3.0, accent),
        egui::StrokeKind::Inside,
    );
    let text = painter.layout(
        "Drop a painting here to use it as a style".into(),
        egui::FontId::proportional(18.0),
        ui.visuals().strong_text_color(),
        (frame.width() - 24.0).max(1.0),
    );
    let text_rect = egui::Align2::CENTER_CENTER.anchor_size(frame.center(), text.size());
    painter.galley(text_rect.min, text, ui.visuals().strong_text_color());
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn folding_drops_case_and_accents() {
        assert_eq!(fold("Fernand LÉGER"), "fernand leger");
        assert_eq!(fold("Shin-Ōhashi"), "shin-ohashi");
        assert_eq!(fold("Cezanne\u{301}"), "cezanne");
        assert_eq!(fold("Œuvre straße"), "oeuvre strasse");
    }
}
