//! The menu bar with the strength and colour controls, and the keyboard shortcuts. Both
//! only push [`Command`]s (and edit [`Settings`] directly, which is all a slider does).

use super::command::Command;
use super::settings::Settings;
use egui::{Key, KeyboardShortcut, Modifiers};

/// What the menu bar shows besides the settings it edits.
pub struct MenuState {
    pub can_save: bool,
    pub comparing: bool,
}

pub fn menu_bar(
    ui: &mut egui::Ui,
    settings: &mut Settings,
    state: MenuState,
    out: &mut Vec<Command>,
) {
    ui.horizontal_wrapped(|ui| {
        ui.menu_button("File", |ui| file_menu(ui, settings, state.can_save, out));
        ui.menu_button("View", |ui| view_menu(ui, settings, out));
        ui.separator();
        let strength = ui
            .add(egui::Slider::new(&mut settings.strength, 0.0..=1.0).text("Strength"))
            .on_hover_text(
                "Blend between the photo (0) and the full style (1); instant, no re-run",
            );
        let colours = ui
            .checkbox(&mut settings.preserve_colors, "Keep photo colours")
            .on_hover_text("Take the brush strokes from the style and the colours from the photo");
        if strength.changed() || colours.changed() {
            out.push(Command::BlendChanged);
        }
        if ui
            .selectable_label(state.comparing, "Compare")
            .on_hover_text("Before/after divider (C); hold Space to see the original")
            .clicked()
        {
            out.push(Command::ToggleCompare);
        }
    });
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
    ui.menu_button("Open recent", |ui| {
        if settings.recent.is_empty() {
            ui.label("Nothing yet");
        }
        for p in &settings.recent {
            item(ui, true, &p.display().to_string(), Command::Open(p.clone()));
        }
    });
    ui.separator();
    item(ui, can_save, "Save as… (Ctrl+S)", Command::SaveDialog);
    ui.horizontal(|ui| {
        ui.label("JPEG quality");
        ui.add(egui::Slider::new(&mut settings.jpeg_quality, 50..=100));
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
    for d in ["auto", "cpu", "cuda", "metal"] {
        ui.radio_value(&mut device, d.to_string(), d);
    }
    if device != settings.device {
        out.push(Command::SetDevice(device));
    }
}

/// Reads this frame's shortcuts; returns whether the original is to be shown instead of
/// the result (Space held).
pub fn shortcuts(ctx: &egui::Context, out: &mut Vec<Command>) -> bool {
    let chords = [
        (Key::O, Command::OpenDialog),
        (Key::S, Command::SaveDialog),
        (Key::Num0, Command::Fit),
        (Key::Num1, Command::ActualSize),
    ];
    for (key, command) in chords {
        let shortcut = KeyboardShortcut::new(Modifiers::COMMAND, key);
        if ctx.input_mut(|i| i.consume_shortcut(&shortcut)) {
            out.push(command);
        }
    }
    // Typing in a field (the search, a rename, the training form) is not a shortcut.
    if ctx.memory(|m| m.focused().is_some()) {
        return false;
    }
    let pasted = ctx.input(|i| {
        i.events.iter().any(|e| {
            matches!(e, egui::Event::Paste(_))
                || matches!(e, egui::Event::Key { key: Key::V, pressed: true, modifiers, .. } if modifiers.command)
        })
    });
    let (zoom_in, zoom_out, compare, space) = ctx.input(|i| {
        (
            i.key_pressed(Key::Plus) || i.key_pressed(Key::Equals),
            i.key_pressed(Key::Minus),
            i.key_pressed(Key::C) && !i.modifiers.command,
            i.key_down(Key::Space),
        )
    });
    let keyed = [
        (pasted, Command::Paste),
        (zoom_in, Command::Zoom(1.25)),
        (zoom_out, Command::Zoom(0.8)),
        (compare, Command::ToggleCompare),
    ];
    out.extend(keyed.into_iter().filter(|(on, _)| *on).map(|(_, c)| c));
    space
}
