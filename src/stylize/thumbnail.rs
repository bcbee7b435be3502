//! Gallery thumbnails: each style rendered by its own network on one of the project's
//! example photos (never the painting, which may not be redistributable).

use super::{Hooks, Stylizer, Tiling};
use crate::{image_io, Result};
use image::{imageops, RgbImage};
use std::path::Path;

const SOURCE: &[u8] = include_bytes!("../../assets/examples/chelsea.png");
pub const THUMBNAIL_SIDE: u32 = 160;

/// The square photo every thumbnail is rendered from.
pub fn source_photo() -> Result<RgbImage> {
    let img = image_io::decode_rgb(SOURCE, Path::new("assets/examples/chelsea.png"))?;
    let side = img.width().min(img.height());
    let crop = imageops::crop_imm(
        &img,
        (img.width() - side) / 2,
        (img.height() - side) / 2,
        side,
        side,
    )
    .to_image();
    Ok(imageops::resize(
        &crop,
        THUMBNAIL_SIDE,
        THUMBNAIL_SIDE,
        imageops::FilterType::CatmullRom,
    ))
}

/// Renders the thumbnail as PNG bytes.
pub fn render(stylizer: &Stylizer) -> Result<Vec<u8>> {
    let styled = stylizer.stylize_raw(&source_photo()?, Tiling::Off, &mut Hooks::default())?;
    image_io::encode_png(&styled)
}
