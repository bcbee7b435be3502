//! Combining the stylised image with the photo: strength and colour preservation.
//! The app does the same in a shader (shaders/blend.wgsl); this is the CPU path used
//! for saving and by the command line, and the two must agree.

use image::{GrayImage, RgbImage};
use rayon::prelude::*;

/// BT.601 full-range luma.
#[inline]
pub(crate) fn luma(p: [f32; 3]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// One pixel of the blend; `s` is the strength there, 0..1.
#[inline]
fn mix(o: &mut [u8], p: &[u8], st: &[u8], s: f32, preserve_colors: bool) {
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
                mix(o, p, st, s, preserve_colors);
            }
        });
    out
}

/// [`blend`] with the strength scaled per pixel by `mask` (255 = `strength`, 0 = the
/// photo), which must be the photo's size ([`super::mask::fit`]). The app's painted mask
/// and `--mask` both go through here, so a saved result matches the canvas.
pub fn blend_masked(
    photo: &RgbImage,
    styled: &RgbImage,
    strength: f32,
    preserve_colors: bool,
    mask: &GrayImage,
) -> RgbImage {
    assert_eq!(
        photo.dimensions(),
        styled.dimensions(),
        "blend needs equal sizes"
    );
    assert_eq!(
        photo.dimensions(),
        mask.dimensions(),
        "the mask must be the photo's size"
    );
    let s = strength.clamp(0.0, 1.0);
    let mut out = RgbImage::new(photo.width(), photo.height());
    out.as_mut()
        .par_chunks_mut(3 * 4096)
        .zip(photo.as_raw().par_chunks(3 * 4096))
        .zip(styled.as_raw().par_chunks(3 * 4096))
        .zip(mask.as_raw().par_chunks(4096))
        .for_each(|(((o, p), st), m)| {
            for (((o, p), st), &m) in o
                .chunks_exact_mut(3)
                .zip(p.chunks_exact(3))
                .zip(st.chunks_exact(3))
                .zip(m)
            {
                mix(o, p, st, s * (m as f32 / 255.0), preserve_colors);
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

    #[test]
    fn a_full_mask_is_the_plain_blend_and_an_empty_one_the_photo() {
        let a = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 70, 9]));
        let b = RgbImage::from_fn(5, 3, |x, y| image::Rgb([200, x as u8 * 30, y as u8 * 90]));
        for preserve in [false, true] {
            let full = GrayImage::from_pixel(5, 3, image::Luma([255]));
            assert_eq!(
                blend_masked(&a, &b, 0.7, preserve, &full),
                blend(&a, &b, 0.7, preserve)
            );
            let none = GrayImage::new(5, 3);
            assert_eq!(blend_masked(&a, &b, 0.7, preserve, &none), a);
        }
        let half = GrayImage::from_pixel(5, 3, image::Luma([128]));
        let p = blend_masked(&a, &b, 1.0, false, &half);
        assert_eq!(p.get_pixel(0, 0).0, [100, 0, 4]);
    }
}
