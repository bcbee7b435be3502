//! Combining the stylised image with the photo: strength and colour preservation.
//! The app does the same in a shader (shaders/blend.wgsl); this is the CPU path used
//! for saving and by the command line, and the two must agree.

use image::RgbImage;
use rayon::prelude::*;

/// BT.601 full-range luma.
#[inline]
fn luma(p: [f32; 3]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// Blends `styled` over `photo`: `strength` 0 gives the photo, 1 the full style.
/// With `preserve_colors` the result takes its luminance from the stylised image and
/// its chroma from the photo, so the painting's texture is kept but not its palette.
pub fn blend(
    photo: &RgbImage,
    styled: &RgbImage,
    strength: f32,
    preserve_colors: bool,
) -> RgbImage {
    assert_eq!(
        photo.dimensions(),
        styled.dimensions(),
        "blend needs equal sizes"
    );
    let s = strength.clamp(0.0, 1.0);
    let mut out = RgbImage::new(photo.width(), photo.height());
    out.as_mut()
        .par_chunks_mut(3 * 4096)
        .zip(photo.as_raw().par_chunks(3 * 4096))
        .zip(styled.as_raw().par_chunks(3 * 4096))
        .for_each(|((o, p), st)| {
            for ((o, p), st) in o
                .chunks_exact_mut(3)
                .zip(p.chunks_exact(3))
                .zip(st.chunks_exact(3))
            {
                let p = [p[0] as f32, p[1] as f32, p[2] as f32];
                let mut t = [st[0] as f32, st[1] as f32, st[2] as f32];
                if preserve_colors {
                    // Replace the photo's luma by the stylised luma: same chroma (Cb, Cr).
                    let dy = luma(t) - luma(p);
                    t = [p[0] + dy, p[1] + dy, p[2] + dy];
                }
                for c in 0..3 {
                    o[c] = (p[c] + (t[c] - p[c]) * s).round().clamp(0.0, 255.0) as u8;
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_endpoints() {
        let a = RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30]));
        let b = RgbImage::from_pixel(3, 2, image::Rgb([200, 100, 0]));
        assert_eq!(blend(&a, &b, 0.0, false), a);
        assert_eq!(blend(&a, &b, 1.0, false), b);
        assert_eq!(blend(&a, &b, 0.5, false).get_pixel(1, 1).0, [105, 60, 15]);
    }
}
