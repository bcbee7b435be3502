//! The strength brush: paints a per-pixel strength mask over the canvas. The mask lives
//! at display size (bounded by the GPU's texture limit) and is scaled to the photo only
//! when saving, so painting costs a small texture upload and never a network run.

use image::GrayImage;
use serde::{Deserialize, Serialize};

/// The brush's settings; remembered between launches, except whether it is in hand.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Brush {
    /// Drags on the canvas paint instead of panning.
    #[serde(skip)]
    pub active: bool,
    /// Radius in photo pixels, so a brush covers the same part of the picture at any zoom.
    pub radius: f32,
    /// 1: a hard edge; 0: soft all the way from the centre.
    pub hardness: f32,
    /// Take the style away (towards the photo) rather than add it.
    pub erase: bool,
}

impl Default for Brush {
    fn default() -> Self {
        Self {
            active: false,
            radius: 40.0,
            hardness: 0.7,
            erase: true,
        }
    }
}

impl Brush {
    /// How much of the brush reaches a point `t` radii from the stroke's centre line.
    fn coverage(&self, t: f32) -> f32 {
        let hard = self.hardness.clamp(0.0, 1.0);
        if t <= hard {
            1.0
        } else if t >= 1.0 {
            0.0
        } else {
            1.0 - (t - hard) / (1.0 - hard)
        }
    }
}

/// A mask with every pixel at full strength: what "no mask" means.
pub fn full(w: u32, h: u32) -> GrayImage {
    GrayImage::from_pixel(w, h, image::Luma([255]))
}

/// Paints the segment `a`–`b` (display pixels) with a brush `radius` display pixels wide.
/// Paint raises pixels to the brush's coverage and erase lowers them, rather than adding,
/// so going over a spot twice within a stroke does not darken it further.
/// Returns the changed rectangle (x0, y0, x1, y1), if any.
pub fn paint_segment(
    mask: &mut GrayImage,
    a: [f32; 2],
    b: [f32; 2],
    radius: f32,
    brush: &Brush,
) -> Option<[u32; 4]> {
    let (w, h) = mask.dimensions();
    let r = radius.max(0.5);
    let x0 = (a[0].min(b[0]) - r).floor().max(0.0) as u32;
    let y0 = (a[1].min(b[1]) - r).floor().max(0.0) as u32;
    let x1 = ((a[0].max(b[0]) + r).ceil().max(0.0) as u32).min(w);
    let y1 = ((a[1].max(b[1]) + r).ceil().max(0.0) as u32).min(h);
    if x0 >= x1 || y0 >= y1 {
        return None;
    }
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    for y in y0..y1 {
        for x in x0..x1 {
            // Distance from the pixel centre to the segment.
            let (px, py) = (x as f32 + 0.5 - a[0], y as f32 + 0.5 - a[1]);
            let s = if len2 > 0.0 {
                ((px * dx + py * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let d = ((px - s * dx).powi(2) + (py - s * dy).powi(2)).sqrt();
            let c = brush.coverage(d / r);
            if c <= 0.0 {
                continue;
            }
            let v = &mut mask.get_pixel_mut(x, y).0[0];
            *v = if brush.erase {
                (*v).min((255.0 * (1.0 - c)).round() as u8)
            } else {
                (*v).max((255.0 * c).round() as u8)
            };
        }
    }
    Some([x0, y0, x1, y1])
}

/// Full strength where there was none and the other way round.
pub fn invert(mask: &mut GrayImage) {
    for v in mask.iter_mut() {
        *v = 255 - *v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hard_erase_stroke_clears_its_path_and_nothing_else() {
        let mut m = full(100, 60);
        let brush = Brush {
            hardness: 1.0,
            erase: true,
            ..Default::default()
        };
        let r = paint_segment(&mut m, [10.0, 30.0], [90.0, 30.0], 5.0, &brush).unwrap();
        assert_eq!(r, [5, 25, 95, 35]);
        assert_eq!(m.get_pixel(50, 30).0[0], 0);
        assert_eq!(m.get_pixel(50, 10).0[0], 255);
        // Painting back restores it; a soft brush leaves a ramp at the edge.
        let soft = Brush {
            hardness: 0.0,
            erase: false,
            ..brush
        };
        paint_segment(&mut m, [10.0, 30.0], [90.0, 30.0], 8.0, &soft);
        assert_eq!(m.get_pixel(50, 29).0[0], 239);
        invert(&mut m);
        assert_eq!(m.get_pixel(50, 10).0[0], 0);
    }
}
