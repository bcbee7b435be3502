//! The menu bar with the strength and colour controls, and the keyboard shortcuts. Both
//! only push [`Command`]s (and edit [`Settings`] directly, which is all a slider does).

use super::command::Command;
use super::settings::Settings;
use egui::{Key, KeyboardShortcut, Modifiers};

/// What the menu bar shows besides the settings it edits.
pub struct MenuState {
    pub can_save: bool,
    pub comparing: bool,
    pub can_undo: bool,
    pub can_redo: bool,
    pub has_photo: bool,
}

pub fn menu_bar(
    ui: &mut egui::Ui,
    settings: &mut Settings,
    state: MenuState,
    out: &mut Vec<Command>,
) {
    ui.horizontal_wrapped(|ui| {
        ui.menu_button("File", |ui| file_menu(ui, settings, state.can_save, out));
        ui.menu_button("Edit", |ui| {
            let mut item = |enabled: bool, label: &str, command: Command| {
                if ui.add_enabled(enabled, egui::Button::new(label)).clicked() {
                    ui.close();
                    out.push(command);
                }
            };
            item(state.can_undo, "Undo (Ctrl+Z)", Command::Undo);
            item(state.can_redo, "Redo (Ctrl+Shift+Z)", Command::Redo);
        });
        ui.menu_button("View", |ui| view_menu(ui, settings, out));
        ui.menu_button("Help", |ui| {
            if ui.button("Keyboard shortcuts (F1)").clicked() {
                ui.close();
                out.push(Command::ToggleShortcuts);
            }
        });
        ui.separator();
        if ui
            .add_enabled(state.can_save, egui::Button::new("Export"))
            .on_hover_text("Save the result into Pictures/Atelier in one click (Ctrl+E)")
            .on_disabled_hover_text("Pick a style first")
            .clicked()
        {
            out.push(Command::Export);
        }
        let strength = ui
            .add(egui::Slider::new(&mut settings.strength, 0.0..=1.0).text("Strength"))
            .on_hover_text(
                "Blend between the photo (0) and the full style (1); instant, no re-run",
            );
        let scale = ui
            .add(
                egui::Slider::new(&mut settings.stroke_scale, 0.5..=4.0)
                    .logarithmic(true)
                    .fixed_decimals(2)
                    .text("Stroke size"),
            )
            .on_hover_text(
                "Brush strokes larger (2 = twice) or finer (0.5) at full resolution; \
                 runs the style again when let go",
            );
        // Restyled once the slider is let go, not at every step of the drag.
        if scale.drag_stopped() || (scale.changed() && !scale.dragged()) {
            out.push(Command::StrokeScaleChanged);
        }
        if ui
            .add_enabled(state.has_photo, egui::Button::new("Auto"))
            .on_hover_text(
                "Stroke size for this photo as on a 1024-pixel picture, so large and small \
                 photos get strokes of the same size relative to the picture",
            )
            .clicked()
        {
            out.push(Command::AutoStrokeScale);
        }
        let colours = ui
            .checkbox(&mut settings.preserve_colors, "Keep photo colours")
            .on_hover_text("Take the brush strokes from the style and the colours from the photo");
        if strength.changed() || colours.changed() {
            out.push(Command::BlendChanged);
        }
        ui.menu_button("Mask", |ui| mask_menu(ui, settings, state.has_photo, out))
            .response
            .on_hover_text("Paint where the style goes (B for the brush)");
        if ui
            .selectable_label(state.comparing, "Compare")
            .on_hover_text("Before/after divider (C); hold Space to see the original")
            .clicked()
        {
            out.push(Command::ToggleCompare);
        }
    });
}

/// The strength brush: paint where the style goes, live, without re-running the network.
fn mask_menu(ui: &mut egui::Ui, settings: &mut Settings, has_photo: bool, out: &mut Vec<Command>) {
    let brush = &mut settings.brush;
    if ui
        .add_enabled(
            has_photo,
            egui::Checkbox::new(&mut brush.active, "Brush (B)"),
        )
        .on_hover_text("Drag on the picture to paint; off: drag pans")
        .changed()
    {
        ui.close();
    }
    ui.horizontal(|ui| {
        ui.radio_value(&mut brush.erase, false, "Paint style");
        ui.radio_value(&mut brush.erase, true, "Erase style");
    });
    ui.add(
        egui::Slider::new(&mut brush.radius, 2.0..=1000.0)
            .logarithmic(true)
            .text("Size (photo px)"),
    );
    ui.add(egui::Slider::new(&mut brush.hardness, 0.0..=1.0).text("Hardness"));
    ui.separator();
    if ui
        .add_enabled(has_photo, egui::Button::new("Invert mask"))
        .clicked()
    {
        ui.close();
        out.push(Command::InvertMask);
    }
    if ui
        .add_enabled(
            has_photo,
            egui::Button::new("Clear mask (style everywhere)"),
        )
        .clicked()
    {
        ui.close();
        out.push(Command::ClearMask);
    }
}

fn file_menu(ui: &mut egui::Ui, settings: &mut Settings, can_save: bool, out: &mut Vec<Command>) {
    let mut item = |ui: &mut egui::Ui, enabled: bool, label: &str, command: Command| {
        if ui.add_enabled(enabled, egui::Button::new(label)).clicked() {
            ui.close();
            out.push(command);
        }
    };
    item(ui, true, "Open… (Ctrl+O)", Command::OpenDialog);
    item(ui, true, "Paste image (Ctrl+V)", Command::Paste);
    item(
        ui,
        true,
        "Use painting as style…",
        Command::UsePaintingDialog,
    );
    item(ui, true, "Open session…", Command::OpenSessionDialog);
    ui.menu_button("Open recent", |ui| {
        if settings.recent.is_empty() {
            ui.label("Nothing yet");
        }
        for p in &settings.recent {
            item(ui, true, &p.display().to_string(), Command::Open(p.clone()));
        }
    });
    ui.separator();
    item(ui, can_save, "Export (Ctrl+E)", Command::Export);
    item(ui, can_save, "Save as… (Ctrl+S)", Command::SaveDialog);
    ui.add(egui::Slider::new(&mut settings.jpeg_quality, 50..=100).text("JPEG quality"));
    ui.separator();
    item(ui, true, "Quit (Ctrl+Q)", Command::Quit);
}

/// Every shortcut, as the Help window lists them.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("Ctrl+O", "Open a photo or video"),
    ("Ctrl+V", "Paste an image"),
    ("Ctrl+E", "Export into Pictures/Atelier"),
    ("Ctrl+S", "Save as…"),
    ("Ctrl+0", "Fit to the window"),
    ("Ctrl+1", "100 %"),
    ("+ / −", "Zoom in / out"),
    ("Wheel, pinch", "Zoom about the pointer"),
    ("Drag", "Pan (or move the compare divider)"),
    ("Double-click", "Fit"),
    ("C", "Before/after divider"),
    ("B", "Strength brush on / off"),
    ("Ctrl+Z", "Undo"),
    ("Ctrl+Shift+Z, Ctrl+Y", "Redo"),
    ("Space (hold)", "Show the original"),
    ("F1", "This list"),
    ("Ctrl+Q", "Quit"),
];

/// The keyboard shortcuts window; `open` is cleared when it is closed.
pub fn shortcuts_window(ctx: &egui::Context, open: &mut bool) {
    egui::Window::new("Keyboard shortcuts")
        .open(open)
        .resizable(false)
        .collapsible(false)
        .show(ctx, |ui| {
            egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
                for (keys, what) in SHORTCUTS {
                    ui.strong(*keys);
                    ui.label(*what);
                    ui.end_row();
                }
            });
        });
}

fn view_menu(ui: &mut egui::Ui, settings: &mut Settings, out: &mut Vec<Command>) {
    if ui.button("Fit (Ctrl+0)").clicked() {
        out.push(Command::Fit);
    }
    if ui.button("100 % (Ctrl+1)").clicked() {
        out.push(Command::ActualSize);
    }
    ui.checkbox(&mut settings.show_gallery, "Style gallery");
    ui.checkbox(&mut settings.show_training, "Training panel");
    ui.separator();
    ui.label("Device (for new work)");
    let mut device = settings.device.clone();
    for (d, label, what) in available_devices() {
        ui.radio_value(&mut device, d.to_string(), label)
            .on_hover_text(what);
    }
    if device != settings.device {
        out.push(Command::SetDevice(device));
    }
}

/// The devices this build can use, with a name and a line for an artist: a choice this
/// build cannot honour is never offered.
pub fn available_devices() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut v = vec![
        (
            "auto",
            "Automatic",
            "The graphics card when there is one, else the processor",
        ),
        ("cpu", "Processor (CPU)", "Works everywhere; slower"),
    ];
    if cfg!(feature = "cuda") {
        v.push(("cuda", "NVIDIA graphics card", "CUDA"));
    }
    if cfg!(feature = "metal") {
        v.push(("metal", "Apple graphics (Metal)", "The Mac's GPU"));
    }
    v
}

/// Reads this frame's shortcuts; returns whether the original is to be shown instead of
/// the result (Space held).
pub fn shortcuts(ctx: &egui::Context, out: &mut Vec<Command>) -> bool {
    let chords = [
        (Key::O, Command::OpenDialog),
        (Key::S, Command::SaveDialog),
        (Key::E, Command::Export),
        (Key::Q, Command::Quit),
        (Key::Num0, Command::Fit),
        (Key::Num1, Command::ActualSize),
    ];
    for (key, command) in chords {
        let shortcut = KeyboardShortcut::new(Modifiers::COMMAND, key);
        if ctx.input_mut(|i| i.consume_shortcut(&shortcut)) {
            out.push(command);
        }
    }
    if ctx.input_mut(|i| i.consume_key(Modifiers::NONE, Key::F1)) {
        out.push(Command::ToggleShortcuts);
    }
    // Typing in a field (the search, a rename, the training form) is not a shortcut, and
    // Ctrl+Z there undoes the typing.
    if ctx.memory(|m| m.focused().is_some()) {
        return false;
    }
    // Redo first: a plain Ctrl+Z shortcut would also match Ctrl+Shift+Z.
    let undo_keys = [
        (Modifiers::COMMAND | Modifiers::SHIFT, Key::Z, Command::Redo),
        (Modifiers::COMMAND, Key::Z, Command::Undo),
        (Modifiers::COMMAND, Key::Y, Command::Redo),
    ];
    for (modifiers, key, command) in undo_keys {
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(modifiers, key))) {
            out.push(command);
        }
    }
    out.extend(ctx.input(|i| {
        i.events
            .iter()
            .filter_map(paste_command)
            .collect::<Vec<_>>()
    }));
    let (zoom_in, zoom_out, compare, brush, space) = ctx.input(|i| {
        (
            i.key_pressed(Key::Plus) || i.key_pressed(Key::Equals),
            i.key_pressed(Key::Minus),
            i.key_pressed(Key::C) && !i.modifiers.command,
            i.key_pressed(Key::B) && !i.modifiers.command,
            i.key_down(Key::Space),
        )
    });
    let keyed = [
        (zoom_in, Command::Zoom(1.25)),
        (zoom_out, Command::Zoom(0.8)),
        (compare, Command::ToggleCompare),
        (brush, Command::ToggleBrush),
    ];
    out.extend(keyed.into_iter().filter(|(on, _)| *on).map(|(_, c)| c));
    space
}

/// What a paste is: an image (egui reads the clipboard on Ctrl+V), a copied file's path,
/// or — where the window system delivered only the key — a look at the clipboard.
fn paste_command(e: &egui::Event) -> Option<Command> {
    match e {
        egui::Event::PasteImage(image) => Some(Command::PasteImage(image.clone())),
        egui::Event::Paste(text) => {
            // File managers copy a file as its path or a file:// URI.
            let first = text.lines().next().unwrap_or_default().trim();
            let path = std::path::PathBuf::from(first.strip_prefix("file://").unwrap_or(first));
            Some(if path.is_file() {
                Command::Open(path)
            } else {
                Command::Paste
            })
        }
        egui::Event::Key {
            key: Key::V,
            pressed: true,
            modifiers,
            ..
        } if modifiers.command => Some(Command::Paste),
        _ => None,
    }
}
