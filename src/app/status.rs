//! The status line: the device, the open photo, the restyle's progress and timings, and
//! the latest notice.

use super::command::Command;
use super::state::{Notice, State};

/// `running`: the style of the restyle in flight, by name; `zoom`: screen pixels per
/// photo pixel.
pub fn status_line(
    ui: &mut egui::Ui,
    state: &State,
    running: Option<&str>,
    zoom: f32,
    out: &mut Vec<Command>,
) {
    ui.horizontal(|ui| {
        ui.label(format!("Device: {}", state.device_name));
        if let Some(doc) = &state.doc {
            ui.separator();
            let (w, h) = doc.photo.dimensions();
            ui.label(format!("{} · {w}×{h}", doc.name));
            ui.label(format!("{:.0} %", zoom * 100.0))
                .on_hover_text("Zoom: Ctrl+0 fits, Ctrl+1 shows 100 %");
            if doc.job.is_some() {
                ui.separator();
                ui.add(egui::Spinner::new());
                ui.label(format!("Stylising with {}", running.unwrap_or("the style")));
                let now = std::time::Instant::now();
                match &doc.progress {
                    Some(p) => {
                        ui.add(
                            egui::ProgressBar::new(p.fraction_at(now))
                                .desired_width(120.0)
                                .show_percentage(),
                        );
                        match p.remaining_at(now) {
                            Some(left) => ui.label(crate::progress::about_left(left)),
                            None => ui.weak("measuring this computer's speed…"),
                        };
                        // The estimate moves with the clock, not only with events.
                        ui.ctx()
                            .request_repaint_after(std::time::Duration::from_millis(250));
                    }
                    None => {
                        ui.weak("quick preview…");
                    }
                }
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
                Notice::Saved(p) => {
                    let r = ui.label(n.to_string());
                    if let Some(dir) = p.parent() {
                        if ui.button("Open folder").clicked() {
                            out.push(Command::OpenFolder(dir.to_path_buf()));
                        }
                    }
                    r
                }
                _ => ui.colored_label(ui.visuals().error_fg_color, n.to_string()),
            };
        }
    });
}
