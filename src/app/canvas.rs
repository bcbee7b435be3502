//! The image canvas: zoom, pan, fit / 100 %, the before/after divider and the
//! hold-to-see-the-original key. Draws through the blend shader when wgpu is there,
//! through a CPU-blended egui texture otherwise (tests, software fallbacks).

use super::blend_pass::{BlendCallback, BlendUniforms};
use super::command::Command;
use egui::{Color32, Pos2, Rect, Sense, Stroke, Vec2};

/// The photo and result as the canvas sees them.
pub struct CanvasInput<'a> {
    /// Size of the display textures (the photo, scaled down if it exceeds the GPU's limit).
    pub display_size: [u32; 2],
    /// Display pixels per photo pixel (1 unless scaled down).
    pub display_scale: f32,
    pub has_styled: bool,
    pub strength: f32,
    pub preserve_colors: bool,
    /// Drawn instead of the shader when there is no wgpu renderer.
    pub fallback: Option<&'a egui::TextureHandle>,
    pub fallback_photo: Option<&'a egui::TextureHandle>,
    pub gpu: bool,
}

/// Zoom and pan state; `zoom` is screen points per display pixel.
pub struct CanvasPanel {
    pub zoom: f32,
    pub pan: Vec2,
    /// Re-fit on the next frame (new photo, window resized while fitted, "Fit" pressed).
    pub fit: bool,
    /// Image x (0..1) of the before/after divider, when comparing.
    pub split: Option<f32>,
    /// What the shader was last given; tests read it.
    pub last_uniforms: Option<BlendUniforms>,
    /// Where the image was last drawn (screen points); tests read it.
    pub last_image_rect: Option<Rect>,
    /// Files are held over the canvas, not the gallery (drawn highlighted); set by the
    /// app before [`Self::ui`], which draws it; tests read it.
    pub drop_hover: bool,
    /// The strength brush's radius in photo pixels while it is in hand: drags paint.
    pub brush: Option<f32>,
    dragging_split: bool,
}

impl Default for CanvasPanel {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            pan: Vec2::ZERO,
            fit: true,
            split: None,
            last_uniforms: None,
            last_image_rect: None,
            drop_hover: false,
            brush: None,
            dragging_split: false,
        }
    }
}

const MIN_ZOOM: f32 = 0.01;
const MAX_ZOOM: f32 = 64.0;
/// How far from the divider (points) a press still takes hold of it.
const SPLIT_GRAB: f32 = 12.0;

impl CanvasPanel {
    /// Zooms by `factor` keeping the image point under `anchor` (screen) fixed.
    pub fn zoom_by(&mut self, factor: f32, anchor: Option<Pos2>, canvas: Rect) {
        let old = self.zoom;
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        let f = self.zoom / old;
        let anchor = anchor.unwrap_or(canvas.center());
        let centre = canvas.center() + self.pan;
        self.pan = (centre - anchor) * f + (anchor - canvas.center());
        self.fit = false;
    }

    /// One display pixel per physical pixel of the *photo* (100 %).
    pub fn actual_size(&mut self, pixels_per_point: f32, display_scale: f32) {
        self.zoom = 1.0 / (pixels_per_point * display_scale.max(1e-6));
        self.pan = Vec2::ZERO;
        self.fit = false;
    }

    pub fn toggle_compare(&mut self) {
        self.split = match self.split {
            Some(_) => None,
            None => Some(0.5),
        };
    }

    fn image_rect(&self, canvas: Rect, size: [u32; 2]) -> Rect {
        let s = Vec2::new(size[0] as f32, size[1] as f32) * self.zoom;
        Rect::from_center_size(canvas.center() + self.pan, s)
    }

    /// Draws the canvas; `show_original` is the hold-to-compare key.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        input: Option<CanvasInput>,
        show_original: bool,
        out: &mut Vec<Command>,
    ) {
        let (canvas, response) =
            ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        self.draw(ui, canvas, &response, input, show_original, out);
        // Files held over the canvas: say where they will go.
        if self.drop_hover {
            let painter = ui.painter_at(canvas);
            let accent = ui.visuals().selection.bg_fill;
            painter.rect_filled(canvas.shrink(4.0), 8.0, accent.gamma_multiply(0.25));
            painter.rect_stroke(
                canvas.shrink(4.0),
                8.0,
                Stroke::new(3.0, accent),
                egui::StrokeKind::Inside,
            );
            painter.text(
                canvas.center(),
                egui::Align2::CENTER_CENTER,
                "Drop to open",
                egui::FontId::proportional(24.0),
                ui.visuals().strong_text_color(),
            );
        }
    }

    fn draw(
        &mut self,
        ui: &mut egui::Ui,
        canvas: Rect,
        response: &egui::Response,
        input: Option<CanvasInput>,
        show_original: bool,
        out: &mut Vec<Command>,
    ) {
        let Some(input) = input else {
            self.last_uniforms = None;
            self.last_image_rect = None;
            ui.painter().text(
                canvas.center(),
                egui::Align2::CENTER_CENTER,
                "Drop a photo here, paste one (Ctrl+V) or open one (Ctrl+O)",
                egui::FontId::proportional(18.0),
                ui.visuals().weak_text_color(),
            );
            let button = Rect::from_center_size(
                canvas.center() + Vec2::new(0.0, 44.0),
                Vec2::new(180.0, 32.0),
            );
            if ui
                .put(button, egui::Button::new("Try an example"))
                .on_hover_text("Open a bundled photo (a cat) to try the styles on")
                .clicked()
            {
                out.push(Command::TryExample);
            }
            return;
        };
        let size = input.display_size;
        if self.fit {
            let z = (canvas.width() / size[0].max(1) as f32)
                .min(canvas.height() / size[1].max(1) as f32);
            self.zoom = z.clamp(MIN_ZOOM, MAX_ZOOM);
            self.pan = Vec2::ZERO;
        }

        // Pointer: wheel zooms about the pointer, pinch too; drag pans or moves the divider.
        if response.hovered() {
            let (scroll, pinch, pointer) = ui.input(|i| {
                (
                    i.smooth_scroll_delta.y,
                    i.zoom_delta(),
                    i.pointer.hover_pos(),
                )
            });
            let factor = pinch * (scroll * 0.002).exp();
            if (factor - 1.0).abs() > 1e-4 {
                self.zoom_by(factor, pointer, canvas);
            }
        }
        let rect = self.image_rect(canvas, size);
        if response.drag_started() {
            // Decided where the button went down: by the time egui calls it a drag the
            // pointer has moved past its threshold, often off the thin divider.
            let origin = ui.input(|i| i.pointer.press_origin());
            self.dragging_split = match (self.split, origin) {
                (Some(s), Some(p)) => {
                    (p.x - rect.lerp_inside(Vec2::new(s, 0.5)).x).abs() < SPLIT_GRAB
                }
                _ => false,
            };
        }
        let to_display = |p: Pos2| {
            let d = (p - rect.min) / self.zoom;
            [d.x, d.y]
        };
        let painting = self.brush.is_some() && !self.dragging_split;
        if painting && response.drag_started() {
            // From where the button went down: egui calls it a drag only once the pointer
            // has moved a few points, and the stroke must not start there.
            let origin = ui.input(|i| i.pointer.press_origin());
            if let (Some(o), Some(p)) = (origin, response.interact_pointer_pos()) {
                out.push(Command::Paint(vec![to_display(o), to_display(p)]));
            }
        } else if painting && response.clicked() {
            if let Some(p) = response.interact_pointer_pos() {
                out.push(Command::Paint(vec![to_display(p)]));
            }
        }
        if response.dragged() {
            if painting {
                if let Some(p) = response.interact_pointer_pos() {
                    let from = p - response.drag_delta();
                    out.push(Command::Paint(vec![to_display(from), to_display(p)]));
                }
            } else if self.dragging_split {
                if let Some(p) = response.interact_pointer_pos() {
                    self.split = Some(((p.x - rect.min.x) / rect.width()).clamp(0.0, 1.0));
                }
            } else {
                self.pan += response.drag_delta();
                self.fit = false;
            }
        }
        if response.double_clicked() && self.brush.is_none() {
            self.fit = true;
        }
        let rect = self.image_rect(canvas, size);
        self.last_image_rect = Some(rect);

        let uniforms = BlendUniforms {
            image_min: [
                (rect.min.x - canvas.min.x) / canvas.width(),
                (rect.min.y - canvas.min.y) / canvas.height(),
            ],
            image_max: [
                (rect.max.x - canvas.min.x) / canvas.width(),
                (rect.max.y - canvas.min.y) / canvas.height(),
            ],
            strength: input.strength,
            preserve_colors: if input.preserve_colors { 1.0 } else { 0.0 },
            split: self.split.unwrap_or(0.0),
            has_styled: if input.has_styled && !show_original {
                1.0
            } else {
                0.0
            },
            target_srgb: 0.0,
            _pad: [0.0; 3],
        };
        self.last_uniforms = Some(uniforms);

        let painter = ui.painter_at(canvas);
        if input.gpu {
            painter.add(eframe::egui_wgpu::Callback::new_paint_callback(
                canvas,
                BlendCallback { uniforms },
            ));
        } else {
            let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
            let shown = if show_original || !input.has_styled {
                input.fallback_photo
            } else {
                input.fallback
            };
            if let Some(t) = shown {
                painter.image(t.id(), rect, uv, Color32::WHITE);
            }
            if let (Some(s), Some(p), false) = (self.split, input.fallback_photo, show_original) {
                let left = Rect::from_min_max(
                    rect.min,
                    Pos2::new(rect.lerp_inside(Vec2::new(s, 0.0)).x, rect.max.y),
                );
                let uv_left = Rect::from_min_max(Pos2::ZERO, Pos2::new(s, 1.0));
                painter.image(p.id(), left, uv_left, Color32::WHITE);
            }
        }
        if let (Some(radius), Some(p)) = (self.brush, response.hover_pos()) {
            // The brush's footprint, in screen points.
            let r = radius * input.display_scale * self.zoom;
            painter.circle_stroke(p, r, Stroke::new(2.5, Color32::from_black_alpha(160)));
            painter.circle_stroke(p, r, Stroke::new(1.0, Color32::WHITE));
            ui.ctx().set_cursor_icon(egui::CursorIcon::Crosshair);
        }
        if let Some(s) = self.split {
            let x = rect.lerp_inside(Vec2::new(s, 0.0)).x;
            let stroke = Stroke::new(2.0, Color32::from_white_alpha(220));
            painter.line_segment([Pos2::new(x, rect.min.y), Pos2::new(x, rect.max.y)], stroke);
            // A handle that reads as one: a knob with arrows both ways.
            let knob = Pos2::new(x, rect.center().y);
            painter.circle(knob, 14.0, Color32::from_black_alpha(170), stroke);
            for dir in [-1.0, 1.0] {
                let tip = knob + Vec2::new(dir * 9.0, 0.0);
                let back = knob + Vec2::new(dir * 3.0, 0.0);
                painter.add(egui::Shape::convex_polygon(
                    vec![tip, back + Vec2::new(0.0, -5.0), back + Vec2::new(0.0, 5.0)],
                    Color32::from_white_alpha(230),
                    Stroke::NONE,
                ));
            }
            if self.dragging_split
                || (response.hovered()
                    && ui
                        .input(|i| i.pointer.hover_pos())
                        .is_some_and(|p| (p.x - x).abs() < SPLIT_GRAB))
            {
                ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_keeps_the_point_under_the_pointer() {
        let canvas = Rect::from_min_size(Pos2::ZERO, Vec2::new(800.0, 600.0));
        let mut c = CanvasPanel {
            fit: false,
            ..Default::default()
        };
        let size = [400, 300];
        let anchor = Pos2::new(600.0, 200.0);
        let before = c.image_rect(canvas, size);
        let u = (anchor - before.min) / before.size();
        c.zoom_by(2.5, Some(anchor), canvas);
        let after = c.image_rect(canvas, size);
        let u2 = (anchor - after.min) / after.size();
        assert!((u - u2).length() < 1e-4, "{u:?} vs {u2:?}");
        assert!((after.width() - 1000.0).abs() < 1e-3);
        c.actual_size(2.0, 0.5);
        assert_eq!(c.zoom, 1.0);
    }
}
