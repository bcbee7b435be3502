//! Stroke scale: how large the painted texture is relative to the photo. A network
//! paints strokes of a fixed size in *its input's* pixels, so on a 6000-px photo they
//! shrink to noise. Running it at 1/S of the photo's resolution makes them S times
//! larger; the result is upsampled and the photo's own fine luminance detail (what the
//! downsampling took away) is added back, so edges stay sharp at full resolution.

use super::{resample, Hooks, Stylizer, Tiling};
use crate::Result;
use image::RgbImage;

/// The long side the network sees a photo at under `auto`: about what the bundled styles
/// were trained and tuned at, so their strokes look as intended at any photo size.
pub const REFERENCE_SIDE: u32 = 1024;
/// Bounds of the stroke scale: finer than 0.5 quadruples the work for little visible
/// change; coarser than 4 leaves too few network pixels to paint with.
pub const MIN_SCALE: f32 = 0.5;
pub const MAX_SCALE: f32 = 4.0;

/// `--stroke-scale`: a factor, or `auto` for strokes of one size relative to the picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StrokeScale {
    Fixed(f32),
    Auto,
}

impl Default for StrokeScale {
    /// 1: the network at the photo's own resolution, as before stroke scale existed.
    fn default() -> Self {
        Self::Fixed(1.0)
    }
}

impl std::str::FromStr for StrokeScale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        let v: f32 = s
            .parse()
            .map_err(|_| format!("'{s}' is not a number or 'auto'"))?;
        if (MIN_SCALE..=MAX_SCALE).contains(&v) {
            Ok(Self::Fixed(v))
        } else {
            Err(format!(
                "stroke scale must be between {MIN_SCALE} and {MAX_SCALE} (or 'auto')"
            ))
        }
    }
}

impl StrokeScale {
    /// The factor for a `w`×`h` photo.
    pub fn factor(self, w: u32, h: u32) -> f32 {
        match self {
            Self::Fixed(s) => s.clamp(MIN_SCALE, MAX_SCALE),
            Self::Auto => (w.max(h) as f32 / REFERENCE_SIDE as f32).clamp(MIN_SCALE, MAX_SCALE),
        }
    }
}

/// The size the network runs at for stroke scale `s`.
pub fn network_size(w: u32, h: u32, s: f32) -> (u32, u32) {
    (
        ((w as f32 / s).round() as u32).max(16),
        ((h as f32 / s).round() as u32).max(16),
    )
}

/// Resizes for the network's input: area-averaging when shrinking (no aliasing), smooth
/// interpolation when enlarging.
fn resize_for_network(photo: &RgbImage, w: u32, h: u32) -> RgbImage {
    if w <= photo.width() && h <= photo.height() {
        image::imageops::thumbnail(photo, w, h)
    } else {
        image::imageops::resize(photo, w, h, image::imageops::FilterType::CatmullRom)
    }
}

impl Stylizer {
    /// [`Stylizer::stylize_raw`] with strokes `scale` times larger (1 = unchanged), at the
    /// photo's size.
    pub fn stylize_raw_scaled(
        &self,
        photo: &RgbImage,
        tiling: Tiling,
        scale: f32,
        hooks: &mut Hooks,
    ) -> Result<RgbImage> {
        let (w, h) = photo.dimensions();
        let (nw, nh) = network_size(w, h, scale);
        if (nw, nh) == (w, h) || (scale - 1.0).abs() < 1e-3 {
            return self.stylize_raw(photo, tiling, hooks);
        }
        let small = resize_for_network(photo, nw, nh);
        let styled = self.stylize_raw(&small, tiling, hooks)?;
        Ok(restore_detail(photo, &small, &styled))
    }
}

impl Stylizer {
    /// [`Stylizer::stylize_frame`] with strokes `scale` times larger, at the frame's size.
    pub fn stylize_frame_scaled(
        &self,
        frame: &RgbImage,
        temporal: &mut super::TemporalStats,
        scale: f32,
        hooks: &mut Hooks,
    ) -> Result<RgbImage> {
        let (w, h) = frame.dimensions();
        let (nw, nh) = network_size(w, h, scale);
        if (nw, nh) == (w, h) || (scale - 1.0).abs() < 1e-3 {
            return self.stylize_frame(frame, temporal, hooks);
        }
        let small = resize_for_network(frame, nw, nh);
        let styled = self.stylize_frame(&small, temporal, hooks)?;
        Ok(restore_detail(frame, &small, &styled))
    }
}

/// `styled` (network size) brought to the photo's size with the photo's fine luminance
/// detail added back: the photo's luma minus the same luma after the trip down to the
/// network's size and back up. Only luminance, so the style's palette is kept.
pub fn restore_detail(photo: &RgbImage, small: &RgbImage, styled: &RgbImage) -> RgbImage {
    use rayon::prelude::*;
    let (w, h) = photo.dimensions();
    if small.width() >= w {
        // Run larger than the photo (finer strokes): scaled down, nothing was lost.
        return image::imageops::thumbnail(styled, w, h);
    }
    let mut up = resample::bilinear(styled, w, h);
    let blurred = resample::bilinear(small, w, h);
    let luma = |p: &[u8]| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
    up.as_mut()
        .par_chunks_mut(3 * 4096)
        .zip(photo.as_raw().par_chunks(3 * 4096))
        .zip(blurred.as_raw().par_chunks(3 * 4096))
        .for_each(|((o, p), b)| {
            for ((o, p), b) in o
                .chunks_exact_mut(3)
                .zip(p.chunks_exact(3))
                .zip(b.chunks_exact(3))
            {
                let detail = luma(p) - luma(b);
                for c in o.iter_mut() {
                    *c = (*c as f32 + detail).round().clamp(0.0, 255.0) as u8;
                }
            }
        });
    up
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_sees_every_photo_at_the_reference_size_within_bounds() {
        assert_eq!(StrokeScale::Auto.factor(6000, 4000), MAX_SCALE);
        assert_eq!(StrokeScale::Auto.factor(2048, 1000), 2.0);
        assert_eq!(StrokeScale::Auto.factor(300, 200), MIN_SCALE);
        assert_eq!("auto".parse::<StrokeScale>(), Ok(StrokeScale::Auto));
        assert_eq!("2".parse::<StrokeScale>(), Ok(StrokeScale::Fixed(2.0)));
        assert!("9".parse::<StrokeScale>().is_err());
        assert!("big".parse::<StrokeScale>().is_err());
    }

    #[test]
    fn restored_detail_brings_back_an_edge_the_trip_down_blurred() {
        // A sharp vertical edge; the "stylised" image is the flat small photo itself.
        let photo = RgbImage::from_fn(64, 8, |x, _| {
            image::Rgb(if x < 31 {
                [20, 20, 20]
            } else {
                [220, 220, 220]
            })
        });
        let small = image::imageops::thumbnail(&photo, 16, 2);
        let out = restore_detail(&photo, &small, &small);
        // Exactly the photo: the stylised image carried no texture of its own.
        for (a, b) in out.pixels().zip(photo.pixels()) {
            assert!(a.0[0].abs_diff(b.0[0]) <= 1, "{a:?} vs {b:?}");
        }
    }
}
