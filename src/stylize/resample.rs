//! Resizing for display: the quick preview is stylised small and scaled up to the
//! photo's size; very large photos are scaled down to fit a GPU texture.

use image::RgbImage;
use rayon::prelude::*;

/// Bilinear resize (pixel centres aligned), parallel over rows.
pub fn bilinear(src: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (sw, sh) = src.dimensions();
    if (sw, sh) == (w, h) || sw == 0 || sh == 0 {
        return src.clone();
    }
    let mut out = RgbImage::new(w.max(1), h.max(1));
    let sx = sw as f32 / w.max(1) as f32;
    let sy = sh as f32 / h.max(1) as f32;
    // Per-column source indices and weights, shared by every row.
    let cols: Vec<(usize, usize, f32)> = (0..w)
        .map(|x| {
            let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (sw - 1) as f32);
            let x0 = fx.floor() as usize;
            (x0, (x0 + 1).min(sw as usize - 1), fx - x0 as f32)
        })
        .collect();
    let raw = src.as_raw();
    let stride = sw as usize * 3;
    out.as_mut()
        .par_chunks_mut(w as usize * 3)
        .enumerate()
        .for_each(|(y, row)| {
            let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (sh - 1) as f32);
            let y0 = fy.floor() as usize;
            let y1 = (y0 + 1).min(sh as usize - 1);
            let wy = fy - y0 as f32;
            let (r0, r1) = (&raw[y0 * stride..][..stride], &raw[y1 * stride..][..stride]);
            for (px, &(x0, x1, wx)) in row.chunks_exact_mut(3).zip(&cols) {
                for c in 0..3 {
                    let top = r0[x0 * 3 + c] as f32 * (1.0 - wx) + r0[x1 * 3 + c] as f32 * wx;
                    let bot = r1[x0 * 3 + c] as f32 * (1.0 - wx) + r1[x1 * 3 + c] as f32 * wx;
                    px[c] = (top * (1.0 - wy) + bot * wy).round() as u8;
                }
            }
        });
    out
}

/// The size that fits within `max_side` on both axes, keeping the aspect ratio.
pub fn fit_within(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    if w <= max_side && h <= max_side {
        return (w, h);
    }
    let s = max_side as f64 / w.max(h) as f64;
    (
        ((w as f64 * s).round() as u32).clamp(1, max_side),
        ((h as f64 * s).round() as u32).clamp(1, max_side),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_images_stay_constant_and_sizes_fit() {
        let src = RgbImage::from_pixel(7, 5, image::Rgb([10, 200, 30]));
        let up = bilinear(&src, 61, 33);
        assert_eq!(up.dimensions(), (61, 33));
        assert!(up.pixels().all(|p| p.0 == [10, 200, 30]));
        assert_eq!(fit_within(10000, 5000, 8192), (8192, 4096));
        assert_eq!(fit_within(100, 50, 8192), (100, 50));
    }
}
