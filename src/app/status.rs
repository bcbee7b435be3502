//! The status line: the device, the open photo, the restyle's progress and timings, and
//! the latest notice.

use super::state::{Notice, State};

pub fn status_line(ui: &mut egui::Ui, state: &State) {
    ui.horizontal(|ui| {
        ui.label(format!("Device: {}", state.device_name));
        if let Some(doc) = &state.doc {
            ui.separator();
            let (w, h) = doc.photo.dimensions();
            ui.label(format!("{} · {w}×{h}", doc.name));
            if doc.job.is_some() {
                ui.separator();
                ui.add(egui::Spinner::new());
                ui.add(
                    egui::ProgressBar::new(doc.progress)
                        .desired_width(120.0)
                        .show_percentage(),
                );
            }
            if let Some(ms) = doc.preview_ms {
                ui.separator();
                ui.label(format!("preview {ms:.0} ms"));
            }
            if let Some(ms) = doc.full_ms {
                ui.separator();
                ui.label(format!("stylised in {ms:.0} ms"));
            }
        }
        if let Some(n) = &state.notice {
            ui.separator();
            match n {
                Notice::Info(m) => ui.label(m),
                _ => ui.colored_label(ui.visuals().error_fg_color, n.to_string()),
            };
        }
    });
}
