//! Strength masks: where the style goes. White is full strength, black the photo, grey
//! in between; `--mask` reads one from a file, the app paints one.

use super::blend::luma;
use crate::{Error, Result};
use image::{GrayImage, RgbImage};
use std::path::Path;

/// Reads a mask image and fits it to a `w`×`h` photo. Colour masks count by their luma
/// (BT.601, as the blend), so a mask painted in any colour still reads as drawn.
pub fn load(path: &Path, w: u32, h: u32) -> Result<GrayImage> {
    let rgb = crate::image_io::load_rgb(path).map_err(|e| match e {
        Error::Image { path, message } => Error::Image {
            path,
            message: format!("cannot read the mask: {message}"),
        },
        e => e,
    })?;
    Ok(fit(&to_luma(&rgb), w, h))
}

/// The luma of each pixel, 0..255.
pub fn to_luma(rgb: &RgbImage) -> GrayImage {
    let raw = rgb
        .as_raw()
        .chunks_exact(3)
        .map(|p| {
            luma([p[0] as f32, p[1] as f32, p[2] as f32])
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect();
    GrayImage::from_raw(rgb.width(), rgb.height(), raw).expect("one byte per pixel")
}

/// `mask` resized to `w`×`h` with bilinear filtering (pixel centres aligned), so a mask
/// drawn at any resolution lines up with the photo.
pub fn fit(mask: &GrayImage, w: u32, h: u32) -> GrayImage {
    let (sw, sh) = mask.dimensions();
    if (sw, sh) == (w, h) || sw == 0 || sh == 0 {
        if sw == 0 || sh == 0 {
            return GrayImage::from_pixel(w, h, image::Luma([255]));
        }
        return mask.clone();
    }
    // Reuse the RGB resampler on a grey image spread over three channels: the mask is
    // small next to the network's work, and one resampler keeps app and CLI in step.
    let rgb = RgbImage::from_fn(sw, sh, |x, y| {
        let v = mask.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    });
    let up = super::resample::bilinear(&rgb, w, h);
    GrayImage::from_fn(w, h, |x, y| image::Luma([up.get_pixel(x, y).0[0]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_two_tone_mask_scales_up_keeping_its_halves() {
        let m = GrayImage::from_fn(4, 2, |x, _| image::Luma([if x < 2 { 0 } else { 255 }]));
        let big = fit(&m, 40, 20);
        assert_eq!(big.dimensions(), (40, 20));
        assert_eq!(big.get_pixel(0, 5).0[0], 0);
        assert_eq!(big.get_pixel(39, 5).0[0], 255);
        // Bilinear: the seam is a ramp, not a step.
        assert!((1..255).contains(&big.get_pixel(20, 5).0[0]));
    }

    #[test]
    fn a_missing_mask_is_a_named_error() {
        let e = load(Path::new("/nonexistent/mask.png"), 4, 4).unwrap_err();
        assert!(e.to_string().contains("mask.png"), "{e}");
    }
}
