//! Reading photos safely and writing results atomically.
//!
//! Decoding is bounded (pixel and allocation limits) so a decompression bomb fails
//! with a message instead of exhausting memory; EXIF orientation is applied so the
//! result is upright as the user sees the photo elsewhere.

use crate::{fsutil, Error, Result};
use image::{ImageDecoder, ImageReader, RgbImage};
use std::path::Path;

/// Longest side we accept (decoders and GPUs cope; 100-megapixel photos are ~12k).
pub const MAX_SIDE: u32 = 32_768;
/// Largest image in pixels (≈ 268 megapixels).
pub const MAX_PIXELS: u64 = 1 << 28;

/// Loads an image as 8-bit RGB, upright.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::image(path, format!("cannot open: {e}")))?;
    if file.metadata().map(|m| m.len() == 0).unwrap_or(false) {
        return Err(Error::image(path, "file is empty (0 bytes)"));
    }
    // The format comes from the content, not the extension: a renamed text file is
    // "not an image", not a "corrupt PNG".
    let reader = ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| Error::image(path, format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::image(
            path,
            "not an image (unrecognised or unsupported format)",
        ));
    }
    decode(reader, path)
}

/// Decodes an image held in memory (clipboard, embedded assets).
pub fn decode_rgb(bytes: &[u8], what: &Path) -> Result<RgbImage> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::image(what, format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::image(
            what,
            "not an image (unrecognised or unsupported format)",
        ));
    }
    decode(reader, what)
}

fn decode<R: std::io::BufRead + std::io::Seek>(
    mut reader: ImageReader<R>,
    path: &Path,
) -> Result<RgbImage> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| Error::image(path, describe_decode_error(e)))?;
    let (w, h) = decoder.dimensions();
    check_size(path, w, h)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| Error::image(path, describe_decode_error(e)))?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

fn check_size(path: &Path, w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::image(
            path,
            format!("image is empty ({w}×{h} pixels)"),
        ));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Error::image(
            path,
            format!(
                "image is {w}×{h}, more than the {} megapixel limit",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    Ok(())
}

fn describe_decode_error(e: image::ImageError) -> String {
    use image::error::{ImageError, LimitErrorKind};
    match e {
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError => {
                format!("image is larger than {MAX_SIDE} pixels on a side")
            }
            LimitErrorKind::InsufficientMemory => {
                "image would need more memory than allowed to decode".into()
            }
            _ => format!("image exceeds decoder limits: {l}"),
        },
        ImageError::Unsupported(u) => format!("unsupported image: {u}"),
        ImageError::Decoding(d) => format!("corrupt or truncated image: {d}"),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "corrupt or truncated image: the file ends early".into()
        }
        ImageError::IoError(io) => format!("read error: {io}"),
        other => other.to_string(),
    }
}

/// Output formats we write, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    Jpeg { quality: u8 },
    WebP,
}

impl OutputFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match ext.as_str() {
            "png" => Ok(Self::Png),
            "jpg" | "jpeg" => Ok(Self::Jpeg { quality: 92 }),
            "webp" => Ok(Self::WebP),
            _ => Err(Error::image(
                path,
                "unsupported output type: use .png, .jpg or .webp",
            )),
        }
    }
}

/// Encodes and writes atomically; never replaces an existing file unless `overwrite`.
pub fn save_rgb(img: &RgbImage, path: &Path, format: OutputFormat, overwrite: bool) -> Result<()> {
    fsutil::write_atomic_with(path, overwrite, |w| {
        let res = match format {
            OutputFormat::Png => img.write_with_encoder(image::codecs::png::PngEncoder::new(w)),
            OutputFormat::Jpeg { quality } => img.write_with_encoder(
                image::codecs::jpeg::JpegEncoder::new_with_quality(w, quality),
            ),
            OutputFormat::WebP => {
                img.write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(w))
            }
        };
        res.map_err(|e| match e {
            image::ImageError::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    })
}

/// Encodes an image as PNG in memory (thumbnails).
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .map_err(|e| Error::image(Path::new("<thumbnail>"), e))?;
    Ok(out)
}
